"""Keys a newcomer needs (issue 16 item 1): a log's verifier key, a deployment's public
keys, and an auditor configuration written from public information only.

``audit init`` must give a file that drives a real ``bordergate audit run`` (a
process, over a log with entries appended through the deployment's own writer)
to a verified log with no finding but the missing witness quorum of a
development deployment, and that holds no private key material.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bordergate.config import load_config
from bordergate.tlog.logdir import read_signer
from tests.gateway.deployment import CODES, receipt_signer, write_deployment

pytestmark = pytest.mark.filterwarnings("error")

BORDERGATE = str(Path(sys.executable).with_name("bordergate"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BORDERGATE, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def _secrets(root: Path) -> list[str]:
    """Every long token (key or secret material) of every private file under ``root``
    (keys, secrets, credentials, KEKs)."""
    private = [p for p in root.rglob("*") if p.is_file() and (
        p.suffix in (".key", ".secret", ".pem", ".cred") or p.name.startswith("kek"))]
    assert private
    return [token for path in private
            for token in re.findall(r"[A-Za-z0-9+/=_.-]{24,}", path.read_text(errors="replace"))]


def test_log_vkey_prints_the_public_half(tmp_path: Path) -> None:
    """`log vkey DIR` and `log vkey --key-file F` print the verifier key `log init`
    printed; neither or both is a usage error (exit 2)."""
    init = _run("log", "init", str(tmp_path / "log"), "--origin", "k.test/log")
    assert init.returncode == 0, init.stderr
    vkey = init.stdout.strip().splitlines()[-1]
    assert _run("log", "vkey", str(tmp_path / "log")).stdout.strip() == vkey
    by_file = _run("log", "vkey", "--key-file", str(tmp_path / "log.key"), "--json")
    assert json.loads(by_file.stdout) == {"origin": "k.test/log", "vkey": vkey}
    assert "PRIVATE" not in by_file.stdout
    assert _run("log", "vkey").returncode == 2
    missing = _run("log", "vkey", str(tmp_path / "elsewhere"))
    assert missing.returncode == 2 and "--key-file" in missing.stderr


def test_public_keys_lists_what_witnesses_auditors_and_clients_need(tmp_path: Path) -> None:
    """`gateway public-keys --config F --json` lists each jurisdiction's log verifier key
    (the public half of its log key), its registered receipt key and its issuer key,
    and nothing private; -j narrows it to one jurisdiction."""
    config = write_deployment(tmp_path)
    proc = _run("gateway", "public-keys", "--config", str(config), "--json")
    assert proc.returncode == 0, proc.stderr
    keys = json.loads(proc.stdout)["keys"]
    deployment = load_config(config)
    for code in CODES:
        j = deployment.jurisdiction(code)
        mine = {(k["role"], k["key"]) for k in keys if k["jurisdiction"] == code}
        assert j.log.key_file is not None
        assert ("log", read_signer(j.log.key_file).verifier().key_string) in mine
        assert ("receipt", receipt_signer(code).verifier().key_string) in mine
        assert any(role == "issuer" and "PUBLIC KEY" in key for role, key in mine)
    for secret in _secrets(tmp_path):
        assert secret not in proc.stdout
    one = _run("gateway", "public-keys", "--config", str(config), "-j", "us")
    assert one.returncode == 0 and one.stdout.startswith("us  log")
    assert {line[:4] for line in one.stdout.splitlines() if not line.startswith(" ")} \
        == {"us  "}


def test_audit_init_drives_a_real_audit_run(tmp_path: Path) -> None:
    """The file `audit init` writes holds no private key material and drives `audit run`:
    every log verifies with the key it names, the entry appended through the
    deployment's writer is audited, and the only finding is the development
    deployment's missing witness quorum."""
    config = write_deployment(tmp_path / "deployment")
    revoked = _run("gateway", "revoke-token", "--config", str(config), "-j", "us",
                   "--jti", "stolen-token-00001")
    assert revoked.returncode == 0, revoked.stderr
    auditor = tmp_path / "auditor" / "auditor.toml"
    auditor.parent.mkdir()
    made = _run("audit", "init", "--deployment", str(config), "--out", str(auditor),
                "--log-location", "storage")
    assert made.returncode == 0, made.stderr
    text = auditor.read_text()
    assert "PRIVATE" not in text
    secrets = _secrets(tmp_path / "deployment")
    assert sum(t.startswith("PRIVATE+KEY+") for t in secrets) >= 2 * len(CODES)
    for secret in secrets:
        assert secret not in text
    again = _run("audit", "init", "--deployment", str(config), "--out", str(auditor))
    assert again.returncode == 2 and "error [out_exists]" in again.stderr
    report = tmp_path / "report"
    run = _run("audit", "run", "--config", str(auditor), "--state", str(tmp_path / "state"),
               "--report", str(report))
    doc = json.loads((report / "report.json").read_text())
    assert [(log["jurisdiction"], log["verified"]) for log in doc["logs"]] \
        == [(code, True) for code in sorted(CODES)], run.stdout + run.stderr
    assert doc["summary"]["entries"] >= 1
    assert set(doc["summary"]["by_kind"]) == {"checkpoint_unwitnessed"}, doc["summary"]
    assert run.returncode == 1  # an unwitnessed checkpoint is not a verified current state


def test_audit_init_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    """Before `gateway init` there is no verifier key to write: public_key_unreadable,
    exit 2, in the common format, and no file written."""
    config = write_deployment(tmp_path)
    for code in CODES:
        j = load_config(config).jurisdiction(code)
        assert j.log.key_file is not None
        j.log.key_file.unlink()
    out = tmp_path / "auditor.toml"
    proc = _run("audit", "init", "--deployment", str(config), "--out", str(out))
    assert proc.returncode == 2 and "error [public_key_unreadable]" in proc.stderr
    assert "what to do:" in proc.stderr and not out.exists()
