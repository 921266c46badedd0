"""A local bundle directory is used only with the bytes whose digest was checked.

Found by a review of what the auditor reads from outside the log: ``BundleStore``
digests every local bundle directory the auditor names once, at its first lookup,
to know which digest each holds, and later read the directory again to build the
engine -- without recomputing the digest of what it read.  A directory changed in
between (a shared checkout, a directory the custodian's tooling syncs, a long
audit) made the auditor replay decisions with a policy other than the one the
entry names, under that entry's digest: a forged decision replays as clean.
The files read are now digested again and used only if they are the bundle asked
for (else the lookup is ``bundle_digest_mismatch``, never an engine).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bordergate.audit.bundlestore import BundleStore
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH, default_bundle
from bordergate.tree_digest import digest_directory

PERMIT_ALL = b'@id("everything")\npermit (principal, action, resource);\n'


def test_a_local_bundle_changed_after_it_was_digested_is_not_used(tmp_path: Path) -> None:
    """Promise 4 (each decision is replayed with the bundle its entry names): a local
    bundle directory the auditor names, replaced by a permit-everything policy after
    the store digested it, gives no engine for the digest it had; the engine of an
    unchanged directory still has exactly the digest asked for."""
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(DEFAULT_BUNDLE_PATH, first)
    shutil.copytree(DEFAULT_BUNDLE_PATH, second)
    (second / "NOTES").write_text("a second release of the same policy\n")
    before = digest_directory(second).digest
    store = BundleStore(None, local_dirs=[str(first), str(second)], use_shipped=False)
    found = store.lookup(default_bundle().digest)  # every local directory is digested now
    assert found.engine is not None and found.engine.digest == default_bundle().digest
    policies = sorted(p for p in second.iterdir() if p.suffix == ".cedar")
    assert policies
    for path in policies:
        path.write_bytes(PERMIT_ALL)
    changed = store.lookup(before)
    assert changed.engine is None or changed.engine.digest == before, \
        "an engine built from files whose digest is not the one asked for"
    assert changed.engine is None and changed.code == "bundle_digest_mismatch"
