"""Review of the migration against a legacy source whose foreign keys cascade.

A part deletes its own subjects' rows, children first.  A foreign key that
refers to a migrated row from a row of *another* subject with ``ON DELETE
CASCADE`` (a message's recipient) makes the database delete that other row too,
whatever the part named: a message sent by a subject of a home whose part had
not run yet was deleted when its recipient's home deleted the recipient's
account, never migrated, while the counts, digests and ``migrate verify`` all
matched.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from bordergate.config import Deployment
from bordergate.migration.legacy import HOME_COUNTRIES, generate_legacy
from bordergate.migration.source import open_source
from bordergate.migration.verify import log_entries
from tests.migration.conftest import HOMES


def test_a_cascading_foreign_key_to_a_mapped_table_refuses_the_run(
        tmp_path: Path, deployment: Deployment) -> None:
    """A row is deleted only after its own home stored it: with ``messages.recipient_id``
    referring to ``accounts`` ON DELETE CASCADE and a message from a subject of one
    home to a subject of a home whose part runs first, the real ``migrate run``
    refuses (``migration_source_triggers``, naming the foreign key) before anything
    is logged or deleted, and the message stays in the source."""
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    source = open_source(url)
    generate_legacy(source, users=30, seed=48, dirty=0)
    homes = {k: HOME_COUNTRIES[c] for k, c in source.query("SELECT id, country FROM accounts")}
    source.close()
    recipient = min(k for k, h in homes.items() if h == "cn")  # cn's part runs first
    sender = min(k for k, h in homes.items() if h != "cn")
    with sqlite3.connect(db) as raw:
        (ddl,) = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'messages'").fetchone()
        raw.execute(ddl.replace("messages", "bare", 1).replace(
            "recipient_id INTEGER", "recipient_id INTEGER REFERENCES accounts(id) "
            "ON DELETE CASCADE"))
        raw.execute("INSERT INTO bare SELECT * FROM messages")
        raw.execute("DROP TABLE messages")
        raw.execute("ALTER TABLE bare RENAME TO messages")
        raw.execute("UPDATE messages SET recipient_id = ? WHERE id = (SELECT MIN(id) FROM "
                    "messages WHERE sender_id = ?)", (recipient, sender))
    raw.close()
    ran = subprocess.run([sys.executable, "-m", "bordergate", "migrate", "run", "--source", url,
                          "--config", str(deployment.path), "--no-progress", "--no-parallel",
                          "--json"], capture_output=True, text=True, timeout=600, check=False)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    refused = json.loads(ran.stdout)
    assert refused["error"] == "migration_source_triggers"
    assert "messages: foreign key recipient_id ON DELETE CASCADE" in refused["message"]
    for code in HOMES:
        assert not list(log_entries(deployment, code))
    source = open_source(url)
    try:
        assert source.query("SELECT COUNT(*) FROM messages WHERE sender_id = ?",
                            (sender,)) == [(2,)]
    finally:
        source.close()
