"""``bordergate keys init|rotate|destroy|status`` on the file backend and on SoftHSM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.keys.backends.keyfile import LocalKeyFile
from bordergate.keys.keyring import KeyRing
from bordergate.residency.schema import demo_schema_path, load_schema
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.residency.vault import Vault
from tests.keys.conftest import SOFTHSM_LIBRARY, TOKEN_LABEL, TOKEN_PIN, SoftHsm


def _kek_path(j: object) -> Path:
    """The KEK file of a jurisdiction configured with the ``file`` key backend."""
    from bordergate.keys.backend import KeyFileSettings

    settings = j.keys
    assert isinstance(settings, KeyFileSettings)
    return settings.path

runner = CliRunner()


def _events(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_init_rotate_status_with_a_key_file(tmp_path: Path) -> None:
    """Promise 8: the custodian rotates from the CLI; data stays readable; an unlogged
    --destroy-old is refused (destruction is logged: tests/gateway/test_erasure.py)."""
    kek, db = tmp_path / "us.kek", tmp_path / "us.db"
    result = runner.invoke(app, ["keys", "init", "-j", "us", "--key-file", str(kek)])
    assert result.exit_code == 0, result.output
    assert _events(result.output)[0]["event"] == "kek-created"
    again = runner.invoke(app, ["keys", "init", "-j", "us", "--key-file", str(kek)])
    assert again.exit_code == 1 and "keys_already_initialised" in again.output

    store = SqliteRecordStore(db, jurisdiction="us")
    vault = Vault(load_schema(demo_schema_path()), store,
                  KeyRing(LocalKeyFile(kek, jurisdiction="us"), store))
    alice = vault.mint_subject()
    vault.put("messages", "m1", alice, {"recipient": "bob", "body": "hi",
                                        "sent_at": "2024-01-01T00:00:00Z"})
    unlogged = runner.invoke(app, ["keys", "rotate", "-j", "us", "--key-file", str(kek),
                                   "--store", f"sqlite:{db}", "--destroy-old"])
    assert unlogged.exit_code == 2 and "destroy_needs_log" in unlogged.output
    result = runner.invoke(app, ["keys", "rotate", "-j", "us", "--key-file", str(kek),
                                 "--store", f"sqlite:{db}"])
    assert result.exit_code == 0, result.output
    events = _events(result.output)
    assert [e["event"] for e in events] == ["kek-created", "kek-rotated"]
    assert events[1]["count"] == 1 and events[1]["kek_version"] == 2
    assert not any("subject" in e or "log" in e for e in events)

    vault.keyring.cache.evict(str(alice))
    assert vault.get("messages", "m1", ["body"]).values == {"body": "hi"}
    status = runner.invoke(app, ["keys", "status", "-j", "us", "--key-file", str(kek),
                                 "--store", f"sqlite:{db}", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output) == {"jurisdiction": "us", "backend": "file",
                                         "versions": [1, 2], "current": 2,
                                         "data_keys": {"2": 1}}
    store.close()


def test_errors_have_codes_and_exit_status(tmp_path: Path) -> None:
    """Behaviour: config errors exit 2 with their code; rotation needs the store."""
    missing = runner.invoke(app, ["keys", "status", "-j", "us", "--key-file",
                                  str(tmp_path / "none.kek")])
    assert missing.exit_code == 2 and "key_file_missing" in missing.output
    runner.invoke(app, ["keys", "init", "-j", "us", "--key-file", str(tmp_path / "us.kek")])
    no_store = runner.invoke(app, ["keys", "rotate", "-j", "us", "--key-file",
                                   str(tmp_path / "us.kek")])
    assert no_store.exit_code == 2 and "store_url" in no_store.output
    bad = runner.invoke(app, ["keys", "init", "-j", "US!", "--key-file",
                              str(tmp_path / "x.kek")])
    assert bad.exit_code == 2 and "malformed_jurisdiction" in bad.output


def test_pkcs11_backend_from_the_cli(softhsm: SoftHsm, jurisdiction: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Promise 1: the same commands drive KEKs on a real PKCS#11 token (SoftHSM2)."""
    monkeypatch.setenv("TEST_TOKEN_PIN", TOKEN_PIN)
    hsm = ["-j", jurisdiction, "--backend", "pkcs11", "--pkcs11-library", SOFTHSM_LIBRARY,
           "--token", TOKEN_LABEL, "--pin-env", "TEST_TOKEN_PIN"]
    assert runner.invoke(app, ["keys", "init", *hsm]).exit_code == 0
    status = runner.invoke(app, ["keys", "status", *hsm, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["versions"] == [1]
    assert TOKEN_PIN not in status.output


def _key_events(log_dir: Path, key_file: Path) -> list[dict[str, object]]:
    from bordergate.entries import parse_entry
    from bordergate.tlog.client import DirectorySource, LogClient
    from bordergate.tlog.logdir import read_signer

    client = LogClient(DirectorySource(log_dir), read_signer(key_file).verifier())
    found: list[dict[str, object]] = []

    def collect(first: int, batch: list[bytes]) -> None:
        found.extend(dict(e.body) for e in map(parse_entry, batch) if e.type == "key-event")

    client.rebuild(client.checkpoint(), on_entries=collect)
    return found


def test_destroy_is_logged_and_refused_while_a_data_key_uses_the_version(
        tmp_path: Path) -> None:
    """Promise 8 (issue 11 item 6): `keys destroy --config` refuses a version that still
    wraps a live data key, and the current one, logging nothing; once the keys are
    re-wrapped it destroys the version and the log holds the kek-destroyed entry."""
    from bordergate.config import load_config
    from tests.gateway.deployment import write_deployment

    config = write_deployment(tmp_path)
    j = load_config(config).jurisdiction("us")
    kek = _kek_path(j)
    store = SqliteRecordStore(Path(j.store.removeprefix("sqlite:")), jurisdiction="us")
    vault = Vault(load_schema(demo_schema_path()), store,
                  KeyRing(LocalKeyFile(kek, jurisdiction="us"), store))
    vault.put("payments", "p1", vault.mint_subject(), {
        "amount_minor": 1, "currency": "USD", "paid_at": "2024-01-01T00:00:00Z"})
    LocalKeyFile(kek, jurisdiction="us").create_version()  # v2, nothing re-wrapped yet
    destroy = ["keys", "destroy", "-j", "us", "--config", str(config), "--version"]
    in_use = runner.invoke(app, [*destroy, "1"])
    assert in_use.exit_code == 1 and "kek_version_in_use" in in_use.output
    current = runner.invoke(app, [*destroy, "2"])
    assert current.exit_code == 1 and "kek_version_current" in current.output
    assert _key_events(Path(j.log.storage), j.log.key_file) == []
    mixed = runner.invoke(app, ["keys", "rotate", "-j", "us", "--config", str(config),
                                "--store", f"sqlite:{store.path}"])
    assert mixed.exit_code == 2 and "keys_options_conflict" in mixed.output

    rotated = runner.invoke(app, ["keys", "rotate", "-j", "us", "--config", str(config)])
    assert rotated.exit_code == 0, rotated.output
    done = runner.invoke(app, [*destroy, "1"])
    assert done.exit_code == 0, done.output
    (line,) = _events(done.output)
    logged = _key_events(Path(j.log.storage), j.log.key_file)
    assert [(e["kind"], e["kek_version"]) for e in logged] == [
        ("kek-created", 3), ("kek-rotated", 3), ("kek-destroyed", 1)]
    assert all(e["by"] == "custodian" and "subject" not in e for e in logged)
    assert line["log"] == {"origin": j.log.origin, "index": 2}  # after 2 rotation entries
    assert LocalKeyFile(kek, jurisdiction="us").versions() == (2, 3)
    store.close()


def test_init_with_config_logs_kek_created(tmp_path: Path) -> None:
    """Issue 13 item 4: `keys init --config` creates KEK version 1 of the deployment's
    backend and logs its kek-created entry through the log's single writer; a second
    init is refused (keys_already_initialised) and logs nothing more."""
    from bordergate.config import load_config
    from tests.gateway.deployment import write_deployment

    config = write_deployment(tmp_path)
    j = load_config(config).jurisdiction("us")
    _kek_path(j).unlink()  # gateway init made KEK version 1 unlogged: start again
    done = runner.invoke(app, ["keys", "init", "-j", "us", "--config", str(config)])
    assert done.exit_code == 0, done.output
    (line,) = _events(done.output)
    assert line["log"] == {"origin": j.log.origin, "index": 0}
    logged = _key_events(Path(j.log.storage), j.log.key_file)
    assert [(e["kind"], e["kek_version"], e["by"]) for e in logged] == [
        ("kek-created", 1, "custodian")]
    again = runner.invoke(app, ["keys", "init", "-j", "us", "--config", str(config)])
    assert again.exit_code == 1 and "keys_already_initialised" in again.output
    assert len(_key_events(Path(j.log.storage), j.log.key_file)) == 1


def test_status_reads_the_deployment_file(tmp_path: Path) -> None:
    """Configuration (issue 16 item 4): `keys status --config F -j us` reads the
    jurisdiction's key backend and store from the deployment file (read only), and
    refuses to be given them twice."""
    from tests.gateway.deployment import write_deployment

    config = write_deployment(tmp_path / "d")
    status = runner.invoke(app, ["keys", "status", "--config", str(config), "-j", "us",
                                 "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output) == {"jurisdiction": "us", "backend": "file",
                                         "versions": [1], "current": 1, "data_keys": {}}
    both = runner.invoke(app, ["keys", "status", "--config", str(config), "-j", "us",
                               "--store", f"sqlite:{tmp_path / 'x.db'}"])
    assert both.exit_code == 2 and "keys_options_conflict" in both.output
