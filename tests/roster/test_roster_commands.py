"""The roster in the deployment file and the ``bordergate roster`` commands (issue 12 item 3).

The deployment names the identity authority's keys per jurisdiction; a local
authority key is for the development and demo profiles only; ``roster publish``
refuses, with a stable code, any version the configured authority did not sign
and publishes the others beside the log with a ``roster`` entry.  Keys are TEST-ONLY.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest

from bordergate.config import load_config, parse_config
from bordergate.entries import parse_entry
from bordergate.errors import ConfigError
from bordergate.gateway.startup import provision
from bordergate.log_access import log_verifier
from bordergate.roster import parse_roster, roster_path
from bordergate.roster.publication import authority_for
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.logdir import read_signer, write_key
from bordergate.tlog.storage import open_storage
from tests.gateway.conftest import BORDERGATE
from tests.gateway.deployment import write_deployment
from tests.roster.test_document import authority_signer
from tests.test_config import GOOD, PRODUCTION


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BORDERGATE, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_production_refuses_a_local_authority_key(tmp_path: Path) -> None:
    """Profiles: `roster.authority_key_file` (a TEST-ONLY key made by gateway init) is
    refused by the production profile, naming the key; `authority_keys` loads."""
    vkey = authority_signer().verifier().key_string
    production = re.sub(r"^roster = .*\n", "", PRODUCTION, flags=re.MULTILINE)
    with pytest.raises(ConfigError) as err:
        parse_config(production + '[jurisdictions.us.roster]\nauthority_key_file = "a.key"\n',
                     base_dir=tmp_path)
    assert err.value.code == "config_invalid"
    assert "jurisdictions.us.roster.authority_key_file" in str(err.value)
    d = parse_config(production + f'[jurisdictions.us.roster]\nauthority_keys = ["{vkey}"]\n',
                     base_dir=tmp_path)
    authority = authority_for(d.jurisdiction("us"))
    assert authority is not None and authority.verifiers[0].key_string == vkey
    with pytest.raises(ConfigError) as err:
        parse_config(GOOD + "[jurisdictions.us.roster]\n", base_dir=tmp_path)
    assert err.value.code == "config_missing_key"
    bad = parse_config(GOOD + '[jurisdictions.us.roster]\nauthority_keys = ["nope"]\n',
                       base_dir=tmp_path)
    with pytest.raises(ConfigError) as err:
        authority_for(bad.jurisdiction("us"))
    assert err.value.code == "roster_authority_key_invalid"


def test_gateway_init_makes_a_development_authority_key(tmp_path: Path) -> None:
    """`gateway init` creates the development authority key (0600) that the deployment
    names, and the gateway trusts its public half."""
    config = write_deployment(tmp_path)
    config.write_text(config.read_text() + '\n[jurisdictions.us.roster]\n'
                      'authority_key_file = "us/roster-authority.key"\n')
    deployment = load_config(config)
    provision(deployment)
    key = tmp_path / "us" / "roster-authority.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    authority = authority_for(deployment.jurisdiction("us"))
    assert authority is not None
    assert authority.verifiers[0].key_string == read_signer(key).verifier().key_string


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    """A deployment trusting the TEST-ONLY authority, and a version it signed."""
    config = write_deployment(tmp_path)
    vkey = authority_signer().verifier().key_string
    config.write_text(config.read_text() +
                      f'\n[jurisdictions.us.roster]\nauthority_keys = ["{vkey}"]\n')
    write_key(tmp_path / "authority.key", authority_signer().key_string)
    source = tmp_path / "roster.toml"
    assert _run("roster", "init", "-j", "us", "--out", str(source)).returncode == 0
    out = tmp_path / "roster.json"
    proc = _run("roster", "sign", str(source), "--key", str(tmp_path / "authority.key"),
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return config, out


def test_publish_appends_the_entry_and_publishes_the_document(signed: tuple[Path, Path]
                                                             ) -> None:
    """`roster publish`: the document at rosters/sha256-<hex>.json, its digest, serial
    and signature as a roster entry of the signed log."""
    config, document = signed
    proc = _run("roster", "publish", str(document), "--config", str(config), "-j", "us")
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    j = load_config(config).jurisdiction("us")
    storage = open_storage(j.log.storage)
    try:
        published = storage.read_object(roster_path(done["roster"]))  # type: ignore[attr-defined]
        client = LogClient(StorageSource(storage), log_verifier(j))
        entry = parse_entry(client.entry(done["log"]["index"], client.checkpoint().checkpoint.size))
    finally:
        storage.close()
    assert parse_roster(published, done["roster"]).document == document.read_bytes()
    assert entry.type == "roster" and entry["roster"] == done["roster"]
    assert entry["serial"] == 1 and "principals" not in entry.body


@pytest.mark.parametrize(("change", "code"), [
    ("other-key", "roster_unknown_key"),
    ("document", "roster_digest_mismatch"),
    ("signature", "roster_signature_invalid"),
    ("sig-file", "roster_signature_malformed"),
], ids=["other-key", "changed-document", "changed-signature", "signature-file"])
def test_publish_refuses_what_the_authority_did_not_sign(signed: tuple[Path, Path],
                                                        change: str, code: str) -> None:
    """A version signed by another key, a changed document or signature, or a damaged
    signature file is refused with its stable code (exit 2), nothing published."""
    config, document = signed
    sig = Path(f"{document}.sig")
    body = json.loads(sig.read_text())
    if change == "other-key":
        write_key(document.parent / "other.key", authority_signer("cn-identity").key_string)
        proc = _run("roster", "sign", str(document.parent / "roster.toml"), "--key",
                    str(document.parent / "other.key"), "--out", str(document))
        assert proc.returncode == 0
    elif change == "document":
        document.write_bytes(document.read_bytes().replace(b'"local"', b'"parent"'))
    elif change == "signature":
        body["serial"] = 2
        sig.write_text(json.dumps(body))
    else:
        sig.write_text("[]")
    proc = _run("roster", "publish", str(document), "--config", str(config), "-j", "us")
    assert proc.returncode == 1 and f"[{code}]" in proc.stderr, proc.stderr


def test_publish_without_a_configured_authority_is_refused(tmp_path: Path) -> None:
    """A jurisdiction that names no roster authority cannot publish a roster."""
    config = write_deployment(tmp_path)
    write_key(tmp_path / "authority.key", authority_signer().key_string)
    (tmp_path / "r.toml").write_text('jurisdiction = "us"\nserial = 1\n[principals.a]\n'
                                     'org = "o"\norg_kind = "local"\nlocation = "us"\n')
    assert _run("roster", "sign", str(tmp_path / "r.toml"), "--key",
                str(tmp_path / "authority.key"), "--out", str(tmp_path / "r.json")
                ).returncode == 0
    proc = _run("roster", "publish", str(tmp_path / "r.json"), "--config", str(config),
                "-j", "us")
    assert proc.returncode == 2 and "[roster_not_configured]" in proc.stderr


def test_sign_refuses_a_malformed_roster_file(tmp_path: Path) -> None:
    """A roster file with an unknown member or an approver without a key is refused."""
    write_key(tmp_path / "authority.key", authority_signer().key_string)
    for text in ('jurisdiction = "us"\nserial = 1\nextra = 1\n[principals]\n',
                 'jurisdiction = "us"\nserial = 1\n[principals.c]\norg = "o"\n'
                 'org_kind = "custodian"\nlocation = "us"\nroles = ["approver"]\n'):
        (tmp_path / "r.toml").write_text(text)
        proc = _run("roster", "sign", str(tmp_path / "r.toml"), "--key",
                    str(tmp_path / "authority.key"), "--out", str(tmp_path / "r.json"))
        assert proc.returncode == 2 and "[roster_malformed]" in proc.stderr
