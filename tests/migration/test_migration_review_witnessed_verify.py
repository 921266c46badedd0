"""Review of the log view ``migrate verify`` trusts: a checkpoint the witnesses cosigned.

``verify`` read each home's ``migration`` and ``legacy-deletion`` entries under any
checkpoint the log key signed.  The log operator holds that key: a fork of the log
without one batch's entries (re-signed, never cosigned), with the custodian's store
and the source's manifest trimmed to match, made ``verify`` say "all matched" for a
home that lost a whole batch of migrated records, while the witnessed log (the
auditor's) still shows the batch migrated and its source rows deleted.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from bordergate.config import load_config
from bordergate.entries import parse_entry
from bordergate.log_access import log_verifier
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.source import open_source
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.logdir import read_signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage import open_storage
from bordergate.tlog.storage.fs import FileStorage
from tests.migration.conftest import make_deployment
from tests.tlog.witnessed import WitnessServer


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", "migrate", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def test_verify_refuses_a_log_view_the_witnesses_did_not_cosign(tmp_path: Path) -> None:
    """Promise 5 for ``migrate verify``: with the us log witnessed (one witness process,
    quorum 1), verify passes the honest migration; after the log operator forks the us
    log without batch 1's entries and the store and manifest are trimmed to match,
    the real ``migrate verify`` fails (``witness_quorum_not_met``) instead of saying
    all matched."""
    root = tmp_path / "deploy"
    deployment = make_deployment(root)
    config = deployment.path
    us = deployment.jurisdiction("us")
    assert us.log.key_file is not None
    signer = read_signer(us.log.key_file)
    witness = WitnessServer(tmp_path, 0, [signer]).start()
    try:
        text = config.read_text()
        line = next(x for x in text.splitlines() if x.startswith('log = { storage = "data/us/'))
        config.write_text(text.replace(line, line[:-2] + f', witnesses = [{{ url = '
                                       f'"{witness.url}", vkey = '
                                       f'"{witness.verifier.key_string}" }}], quorum = 1 }}'))
        deployment = load_config(config)
        us = deployment.jurisdiction("us")
        assert us.log.quorum == 1
        db = tmp_path / "legacy.db"
        url = f"sqlite:{db}"
        source = open_source(url)
        generate_legacy(source, users=60, seed=50, dirty=0)
        source.close()
        ran = _cli("run", "--source", url, "--config", str(config), "--no-progress",
                   "--batch-subjects", "20")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        honest = _cli("verify", "--source", url, "--config", str(config), "--json")
        assert honest.returncode == 0, honest.stdout + honest.stderr

        # the custodian loses batch 1's records and trims the manifest; the log operator
        # forks the us log without batch 1's entries, signed with the log key only
        storage = open_storage(us.log.storage)
        try:
            client = LogClient(StorageSource(storage), log_verifier(us))
            size = client.checkpoint().checkpoint.size
            entries = [client.entry(i, size) for i in range(size)]
        finally:
            storage.close()
        kept = [e for e in entries
                if not (parse_entry(e).type in ("migration", "legacy-deletion")
                        and parse_entry(e).body.get("batch") == 1)]
        assert len(kept) < len(entries)
        fork = FileStorage(root / "data" / "us" / "forked-log")
        create_log(fork, signer)
        with Sequencer(fork, signer) as seq:
            seq.append_many(kept)
            seq.publish()
        fork.close()
        store = root / us.store.removeprefix("sqlite:")
        with sqlite3.connect(store) as raw:
            gone = raw.execute("DELETE FROM records WHERE record_id LIKE 'm1-%'").rowcount
        raw.close()
        assert gone > 0
        with sqlite3.connect(db) as raw:
            raw.execute("DELETE FROM bordergate_migration_parts WHERE batch = 1 AND home = 'us'")
        raw.close()
        with sqlite3.connect(db) as raw:
            raw.execute("VACUUM")  # and leaves the file compacted, as the run did
        raw.close()
        config.write_text(config.read_text().replace('storage = "data/us/log"',
                                                     'storage = "data/us/forked-log"', 1))
        checked = _cli("verify", "--source", url, "--config", str(config), "--json")
        assert checked.returncode != 0, checked.stdout
        assert json.loads(checked.stdout)["error"] == "witness_quorum_not_met"
    finally:
        witness.stop()
