"""TEST-ONLY: a log rebuilt from edited entries and re-signed with the log key, as a
malicious log operator (who holds the key) would make it (issue 12).

:func:`rebuild_log` reads every entry of a scenario's log, lets the caller edit the
list, and writes a fresh log with the same origin and key in its place, with the
published policy bundle: to an auditor with no saved state it verifies like the
original.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.releases.publication import publish_bundle
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tree_digest import read_tree


def read_entries(log_dir: Path, signer: Signer) -> list[bytes]:
    """Every entry of the log at ``log_dir``, in index order (its checkpoint verified)."""
    client = LogClient(DirectorySource(log_dir), signer.verifier())
    size = client.checkpoint().checkpoint.size
    return [client.entry(i, size) for i in range(size)]


def rebuild_log(log_dir: Path, signer: Signer,
                edit: Callable[[list[bytes]], list[bytes]]) -> list[bytes]:
    """Replace the log at ``log_dir`` with one holding ``edit(entries)``, signed with
    ``signer`` (the log key); returns the new entries."""
    entries = edit(read_entries(log_dir, signer))
    shutil.rmtree(log_dir)
    storage = FileStorage(log_dir)
    try:
        create_log(storage, signer)
        publish_bundle(storage, read_tree(DEFAULT_BUNDLE_PATH))
    finally:
        storage.close()
    storage = FileStorage(log_dir)
    try:
        with Sequencer(storage, signer) as seq:
            if entries:
                seq.append_many(entries)
            seq.publish(timeout=30)
    finally:
        storage.close()
    return entries
