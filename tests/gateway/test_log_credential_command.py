"""`bordergate log credential`: the log operator issues a new appender's credential
(a second gateway worker, docs/scale-out.md) and revokes it, against the real
sequencer process (issue 16's gap "no command to issue a second worker credential";
issue 12.2, every appender authenticated by its own credential)."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import httpx

from bordergate.config import load_config
from bordergate.tlog.credentials import read_credential, read_credential_list
from tests.gateway.conftest import BORDERGATE, stop_process
from tests.gateway.deployment import free_port, use_sequencer_service, write_deployment
from tests.gateway.test_log_operator import start_log_operator


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BORDERGATE, *argv], check=False, capture_output=True, text=True,
                          timeout=120)


def _append_status(url: str, token: str) -> int:
    """The status of an append the sequencer authenticates with ``token`` (the entry
    names no appender, so an accepted credential gets 400 for the entry itself)."""
    r = httpx.post(f"{url}/append", content=b"\x00\x02{}",
                   headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return r.status_code


def test_issue_then_revoke_a_worker_credential(tmp_path: Path) -> None:
    """A credential issued with `log credential us-gw-2 --out F` is a 0600 file whose
    secret is printed nowhere; after the sequencer's restart it is accepted (the
    append gets past authentication), and after `--revoke` and another restart it is
    refused with 401.  Issuing a listed id again, or over an existing file, is refused
    with a stable code and changes nothing."""
    config = write_deployment(tmp_path)
    use_sequencer_service(config, free_port())
    us = load_config(config).jurisdiction("us")
    assert us.sequencer is not None and us.log.sequencer_url is not None
    out = tmp_path / "us" / "us-gw-2.cred"
    done = _cli("log", "credential", "us-gw-2", "--out", str(out), "--config", str(config),
                "-j", "us", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["issued"] == "us-gw-2" and result["file"] == str(out)
    token = read_credential(out).token
    assert token.split(".", 1)[1] not in done.stdout + done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "us-gw-2" in read_credential_list(us.sequencer.credentials_file).ids

    again = _cli("log", "credential", "us-gw-2", "--out", str(tmp_path / "x.cred"),
                 "--config", str(config), "-j", "us", "--json")
    assert again.returncode == 1
    assert json.loads(again.stdout)["error"] == "credential_id_taken"
    over = _cli("log", "credential", "us-gw-3", "--out", str(out), "--config", str(config),
                "-j", "us", "--json")
    assert over.returncode == 2  # an output file that exists: a usage error (docs/cli.md)
    assert json.loads(over.stdout)["error"] == "credential_file_exists"
    assert "us-gw-3" not in read_credential_list(us.sequencer.credentials_file).ids

    sequencer = start_log_operator(config)
    try:
        assert _append_status(us.log.sequencer_url, token) != 401
        assert _append_status(us.log.sequencer_url, "us-gw-9.wrongwrongwrongwrongwrong") == 401
    finally:
        stop_process(sequencer)
    revoked = _cli("log", "credential", "us-gw-2", "--revoke", "--config", str(config),
                   "-j", "us")
    assert revoked.returncode == 0, revoked.stderr
    assert "us-gw-2" not in read_credential_list(us.sequencer.credentials_file).ids
    assert "us-gw-1" in read_credential_list(us.sequencer.credentials_file).ids
    sequencer = start_log_operator(config)
    try:
        assert _append_status(us.log.sequencer_url, token) == 401
    finally:
        stop_process(sequencer)
    unknown = _cli("log", "credential", "us-gw-2", "--revoke", "--config", str(config),
                   "-j", "us", "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["error"] == "credential_not_listed"
