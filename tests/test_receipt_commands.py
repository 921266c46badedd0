"""``bordergate receipt verify`` on receipts a monitor is handed (issue 12, item 5;
promise 3 'log before release'): what it prints and its exit codes (0 success, 1
verification failed or refused, 2 usage, 3 unavailable).  Keys are TEST-ONLY
(fixed seeds).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.receipts import ReceiptSigner, released_values
from bordergate.tlog.note import Signer

GATEWAY = ReceiptSigner(Signer.from_seed(
    "us.gateway-receipts-TEST-ONLY", hashlib.sha256(b"TEST-ONLY cli gateway").digest()), "us")


ENTRY = b'{"time":"2026-11-29T00:00:00.000Z","type":"export"}'


def _cli(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["receipt", "verify", *(str(a) for a in args)])
    return result.exit_code, result.output


def _export_receipt(path: Path, **changed: object) -> Path:
    body = {"collection": "users", "group_by": "country", "suppressed": 0, "groups": []}
    receipt, _ = GATEWAY.issue(origin="us.test/log", index=3, entry=ENTRY, action="export",
                               collection="users", fields=["country"],
                               values=released_values("export", body), groups=0,
                               suppressed=0)
    path.write_text(json.dumps({**receipt, **changed}))
    return path


def test_an_index_past_the_json_integer_range_is_malformed_not_a_crash(tmp_path: Path) -> None:
    """Receipts, parsers of untrusted bytes: a receipt whose index is 2^60 (the parser
    took up to 2^63) made ``receipt verify`` die with rfc8785's IntegerDomainError; it
    is ``receipt_malformed``, exit 1, as text and as JSON."""
    receipt = _export_receipt(tmp_path / "big.receipt.json", index=2**60)
    code, out = _cli(receipt)
    assert code == 1 and "receipt_malformed" in out and "Traceback" not in out
    code, out = _cli("--json", receipt)
    assert code == 1
    assert json.loads(out.strip().splitlines()[-1])["error"] == "receipt_malformed"


def test_without_log_or_gateway_key_the_key_is_unverified(tmp_path: Path) -> None:
    """Receipts (issue 12 item 5): a receipt signed by a key its maker named itself
    proves nothing about the gateway; ``receipt verify --json`` without ``--log`` or
    ``--gateway-key`` printed ``"ok": true`` for it.  Now: ``ok`` false, status
    ``key_unverified``, exit 1 (text too); with the gateway's ``--gateway-key`` the
    signature check alone succeeds (exit 0)."""
    receipt = _export_receipt(tmp_path / "self-made.receipt.json")
    code, out = _cli("--json", receipt)
    result = json.loads(out)
    assert code == 1 and result["ok"] is False and result["status"] == "key_unverified"
    assert result["entry_checked"] is False
    code, out = _cli(receipt)
    assert code == 1 and "key_unverified" in out
    code, out = _cli("--json", receipt, "--gateway-key", GATEWAY.key)
    result = json.loads(out)
    assert code == 0 and result["ok"] is True and result["status"] == "signature_verified"
    code, out = _cli(receipt, "--gateway-key", GATEWAY.key)
    assert code == 0 and "entry not checked" in out


def test_an_appender_option_that_is_not_id_equals_role_is_usage(tmp_path: Path) -> None:
    """Receipts (issue 12 item 5): ``--appender`` takes the auditor's ``ID=ROLE`` with a
    role of its appender rule; anything else is a usage error (exit 2)."""
    receipt = _export_receipt(tmp_path / "r.receipt.json")
    for bad in ("us-gw-1", "us-gw-1=admin", "=gateway"):
        code, out = _cli(receipt, "--appender", bad)
        assert code == 2, (bad, out)
