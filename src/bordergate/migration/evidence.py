"""The evidence of a migration: ``migration`` and ``legacy-deletion`` entries (pure).

A home's log gets, per batch and source table, one ``migration`` entry
before the batch's records are written to its store (promise 3), and per
batch one ``legacy-deletion`` entry after the source rows were deleted.
Both carry digests and pseudonyms only (promise 7):

* ``legacy_keys``: ``sha256:`` and the HMAC-SHA256, under the home's pseudonym
  secret, of the canonical JSON of the sorted ``"table/key"`` strings of the
  rows: the home's custodian can recompute it from the source, the log never
  shows a legacy key, and its reader cannot test guesses (found by a review:
  unkeyed, the legacy accounts of a part of a few subjects were found from the
  log alone by trying every set of that many keys of the batch's range);
* ``records_root``: the RFC 9162 Merkle root (hex) over the sorted record
  pseudonyms the batch wrote (``Pseudonymizer.record``), recomputable from the
  home's store by its custodian (``bordergate migrate verify``).

A batch written again after an interruption is logged again with
``attempt`` > 1 and ``retry: true``.  docs/log-entries.md lists every member.
This module does no I/O and reads no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bordergate.entries import canonical_json, encode_entry
from bordergate.tlog.merkle import leaf_hash, root_from_leaf_hashes

__all__ = [
    "DeletionFacts",
    "MigrationFacts",
    "deletion_entry",
    "legacy_keys_digest",
    "migration_entry",
    "records_root",
]


def legacy_keys_digest(table: str, keys: Iterable[object],
                       keyed: Callable[[str, str], str]) -> str:
    """``sha256:<hex>``: ``keyed("legacy-keys", ...)`` (the home's
    :meth:`~bordergate.entries.Pseudonymizer.digest_hex`, an HMAC-SHA256) of the
    canonical JSON of the sorted ``table/key`` strings (never the keys themselves)."""
    items = sorted(f"{table}/{k}" for k in keys)
    return "sha256:" + keyed("legacy-keys", canonical_json(items).decode("utf-8"))


def records_root(pseudonyms: Iterable[str]) -> str:
    """Hex RFC 9162 Merkle root over the sorted record pseudonyms."""
    return root_from_leaf_hashes([leaf_hash(p.encode()) for p in sorted(pseudonyms)]).hex()


@dataclass(frozen=True, slots=True)
class MigrationFacts:
    """What one batch wrote from one source table into one home."""

    batch: int
    attempt: int
    table: str
    collection: str
    source: str
    legacy_keys: str
    records: int
    subjects: int
    new_subjects: int
    records_root: str
    fields: tuple[str, ...]
    dropped: Mapping[str, str]


def migration_entry(facts: MigrationFacts, *, home: str, time: float, principal: Mapping[str, Any],
                    bundle: str, outcome: str, decisions: Sequence[Mapping[str, Any]]) -> bytes:
    """The ``migration`` entry of one batch, table and home (logged before the write)."""
    return encode_entry("migration", time, {
        "batch": facts.batch, "attempt": facts.attempt, "retry": facts.attempt > 1,
        "table": facts.table, "collection": facts.collection, "source": facts.source,
        "gateway": home, "legacy_keys": facts.legacy_keys, "records": facts.records,
        "subjects": facts.subjects, "new_subjects": facts.new_subjects,
        "counts": {facts.collection: facts.records}, "records_root": facts.records_root,
        "fields": list(facts.fields), "dropped": dict(facts.dropped),
        "principal": dict(principal), "purpose": "operations", "reason": "migration",
        "bundle": bundle, "outcome": outcome, "decisions": list(decisions)})


@dataclass(frozen=True, slots=True)
class DeletionFacts:
    """What one batch deleted from the source for one home: per table, rows and key digest."""

    batch: int
    attempt: int
    source: str
    tables: Mapping[str, tuple[int, str]]


#: What remains of deleted rows where no tool here can look, by source kind.
RESIDUE = {"sqlite": ["file_copies", "backups"],
           "postgres": ["wal", "replicas", "backups", "dead_tuples_until_vacuum"]}


def deletion_entry(facts: DeletionFacts, *, home: str, time: float) -> bytes:
    """The ``legacy-deletion`` entry of one batch and home (logged after the delete)."""
    return encode_entry("legacy-deletion", time, {
        "batch": facts.batch, "attempt": facts.attempt, "retry": facts.attempt > 1,
        "gateway": home, "source": facts.source,
        "rows": sum(n for n, _ in facts.tables.values()),
        "tables": {t: {"rows": n, "legacy_keys": d} for t, (n, d) in facts.tables.items()},
        "secure_delete": facts.source == "sqlite",
        "residue": RESIDUE.get(facts.source, ["backups"])})
