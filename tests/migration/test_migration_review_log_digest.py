"""Review of what a ``migration`` entry tells a reader of the log about who moved where.

``legacy_keys`` was the SHA-256 of the sorted ``table/key`` strings of the part's
rows: no secret.  Legacy keys are small integers in a known range (a batch is a
range of subject keys, ``records`` says how many), so a reader of the log alone
could try every set of that many keys of the batch and learn exactly which
legacy accounts went to which home: for a part of a few subjects, in a
fraction of a second.  Where a legacy key is public (a numeric user id in
URLs), that is each person's home jurisdiction, read from the public log
(promise 7: entries carry digests and keyed pseudonyms only).
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from bordergate.config import Deployment
from bordergate.entries import canonical_json
from bordergate.migration.legacy import HOME_COUNTRIES, generate_legacy
from bordergate.migration.source import open_source
from bordergate.migration.verify import log_entries
from tests.migration.conftest import migrate


def _guess(table: str, keys: range, count: int, digest: str) -> tuple[int, ...] | None:
    """Every set of ``count`` keys of ``keys``, hashed as the entry's digest was."""
    for chosen in itertools.combinations(keys, count):
        items = sorted(f"{table}/{k}" for k in chosen)
        if "sha256:" + hashlib.sha256(canonical_json(items)).hexdigest() == digest:
            return chosen
    return None


def test_a_log_reader_cannot_recover_which_legacy_accounts_went_to_a_home(
        tmp_path: Path, deployment: Deployment) -> None:
    """Promise 7 for ``migration`` entries: a reader of a home's log who knows the batch
    size and the legacy key range cannot find the legacy accounts of a part by trying
    every set of ``records`` keys against the entry's ``legacy_keys``: the digest is
    keyed with the home's pseudonym secret.  Before the fix the accounts of the
    smallest part were found this way."""
    source = open_source(f"sqlite:{tmp_path / 'legacy.db'}")
    generate_legacy(source, users=40, seed=45, dirty=0)
    homes = {k: HOME_COUNTRIES[c] for k, c in source.query("SELECT id, country FROM accounts")}
    migrate(source, deployment, batch_subjects=20)
    source.close()
    parts = [(code, e.body) for code in ("cn", "eu", "us")
             for _, e in log_entries(deployment, code)
             if e.type == "migration" and e.body["table"] == "accounts"]
    code, body = min(parts, key=lambda p: p[1]["records"])  # the smallest part
    batch = range(20 * body["batch"] + 1, 20 * body["batch"] + 21)
    assert body["records"] <= 5  # small enough to try every set here
    truth = tuple(k for k in batch if homes[k] == code)
    assert len(truth) == body["records"]
    assert _guess("accounts", batch, body["records"], body["legacy_keys"]) is None
