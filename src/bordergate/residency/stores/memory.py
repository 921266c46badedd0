"""The in-memory record store: the test twin of the SQLite and PostgreSQL stores.

Same contract as :class:`~bordergate.residency.stores.RecordStore`, held in
dicts under one lock.  It must never be used for real data: it forgets
everything when the process ends.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence, Set

from bordergate.errors import Conflict, NotFound
from bordergate.keys.keyring import WrappedDataKey
from bordergate.residency.stores import (
    FieldValue,
    GroupCount,
    RawRecord,
    RecordRef,
    StoreErasure,
    erasure_digest,
    record_changed,
    removes_undecided,
    subject_erased,
)
from bordergate.subjects import SubjectId, parse_jurisdiction, require_home

__all__ = ["MemoryRecordStore"]


class MemoryRecordStore:
    """Records and wrapped data keys of one jurisdiction, in memory."""

    kind = "memory"
    inline_point_reads = True  # a dict lookup under a lock held only briefly

    def __init__(self, jurisdiction: str) -> None:
        self._jurisdiction = parse_jurisdiction(jurisdiction)
        self._records: dict[tuple[str, str], tuple[SubjectId, dict[str, bytes]]] = {}
        self._keys: dict[str, WrappedDataKey] = {}
        self._erasures: dict[str, int] = {}  # erasure_digest -> the erasure's log index
        self._lock = threading.Lock()

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction this store is bound to."""
        return self._jurisdiction

    def _check_not_erased(self, subject: SubjectId, logged_at: int | None) -> None:
        """Under the lock: refuse a change logged before the subject's erasure."""
        if logged_at is not None and self._erasures.get(erasure_digest(subject), -1) > logged_at:
            raise subject_erased()

    def put_record(self, collection: str, record_id: str, subject: SubjectId,
                   fields: Mapping[str, bytes], *, logged_at: int | None = None,
                   decided: Set[str] | None = None) -> None:
        """Create or replace a record (see :class:`RecordStore`)."""
        require_home(subject, self._jurisdiction)
        with self._lock:
            self._check_not_erased(subject, logged_at)
            existing = self._records.get((collection, record_id))
            if existing is not None and existing[0] != subject:
                raise Conflict("the record belongs to another subject",
                               code="record_owner_mismatch")
            if existing is not None and removes_undecided(existing[1].keys(), decided):
                raise record_changed()
            self._records[(collection, record_id)] = (subject, dict(fields))

    def put_batch(self, keys: Sequence[WrappedDataKey],
                  records: Sequence[tuple[str, str, SubjectId, Mapping[str, bytes]]]) -> None:
        """Keys and records at once (see :class:`RecordStore`)."""
        for key in keys:
            require_home(key.subject, self._jurisdiction)
        for record in records:
            require_home(record[2], self._jurisdiction)
        with self._lock:
            if any(str(k.subject) in self._keys for k in keys):
                raise Conflict("a subject already has a data key", code="data_key_exists")
            for collection, record_id, subject, _ in records:
                existing = self._records.get((collection, record_id))
                if existing is not None and existing[0] != subject:
                    raise Conflict("a record belongs to another subject",
                                   code="record_owner_mismatch")
            self._keys.update((str(k.subject), k) for k in keys)
            for collection, record_id, subject, fields in records:
                self._records[(collection, record_id)] = (subject, dict(fields))

    def _find(self, collection: str, record_id: str) -> tuple[SubjectId, dict[str, bytes]]:
        found = self._records.get((collection, record_id))
        if found is None:
            raise NotFound("no such record", code="record_not_found")
        return found

    def _snapshot(self) -> list[tuple[tuple[str, str], tuple[SubjectId, dict[str, bytes]]]]:
        # Scans work on a copy taken under the lock (one C-level copy), so the lock
        # is held only briefly and point reads may run on an event loop
        # (``inline_point_reads``); a record's field dict is replaced, never mutated.
        with self._lock:
            return list(self._records.items())

    def get_record(self, collection: str, record_id: str, fields: Sequence[str]) -> RawRecord:
        """Owner and selected stored fields (see :class:`RecordStore`)."""
        with self._lock:
            subject, values = self._find(collection, record_id)
            return RawRecord(subject, {f: values[f] for f in fields if f in values})

    def owner(self, collection: str, record_id: str) -> SubjectId:
        """The owning subject (see :class:`RecordStore`)."""
        with self._lock:
            return self._find(collection, record_id)[0]

    def owners(self, collection: str, record_ids: Sequence[str]) -> dict[str, SubjectId]:
        """Owners of the records that exist (see :class:`RecordStore`)."""
        with self._lock:
            found = {r: self._records.get((collection, r)) for r in record_ids}
        return {r: item[0] for r, item in found.items() if item is not None}

    def delete_record(self, collection: str, record_id: str) -> None:
        """Delete one record (see :class:`RecordStore`)."""
        with self._lock:
            self._find(collection, record_id)
            del self._records[(collection, record_id)]

    def subject_records(self, subject: SubjectId) -> list[RecordRef]:
        """A subject's records (see :class:`RecordStore`)."""
        require_home(subject, self._jurisdiction)
        return sorted(RecordRef(c, r) for (c, r), (s, _) in self._snapshot() if s == subject)

    def erase_subject(self, subject: SubjectId, *,
                      logged_at: int | None = None) -> StoreErasure:
        """Destroy the data key and the rows (see :class:`RecordStore`)."""
        require_home(subject, self._jurisdiction)
        with self._lock:
            if logged_at is not None:
                digest = erasure_digest(subject)
                self._erasures[digest] = max(logged_at, self._erasures.get(digest, -1))
            key = self._keys.pop(str(subject), None)
            doomed = [k for k, (s, _) in self._records.items() if s == subject]
            for k in doomed:
                del self._records[k]
        return StoreErasure(records=len(doomed), data_key=key)

    def group_count(self, collection: str, field: str | None) -> list[GroupCount]:
        """Records and distinct subjects per stored value (see :class:`RecordStore`)."""
        records: Counter[bytes | None] = Counter()
        subjects: dict[bytes | None, set[SubjectId]] = {}
        for (c, _), (s, values) in self._snapshot():
            if c != collection:
                continue
            value = None if field is None else values.get(field)
            records[value] += 1
            subjects.setdefault(value, set()).add(s)
        return [GroupCount(v, n, len(subjects[v])) for v, n in records.items()]

    def field_values(self, collection: str, field: str) -> list[FieldValue]:
        """Every record's stored value of ``field`` (see :class:`RecordStore`)."""
        return [FieldValue(s, r, values.get(field))
                for (c, r), (s, values) in self._snapshot() if c == collection]

    def get_data_key(self, subject: SubjectId) -> WrappedDataKey | None:
        """The subject's wrapped data key, or ``None``."""
        with self._lock:
            return self._keys.get(str(subject))

    def add_data_key(self, key: WrappedDataKey, *,
                     logged_at: int | None = None) -> WrappedDataKey:
        """Store ``key`` unless one exists; return the stored one."""
        require_home(key.subject, self._jurisdiction)
        with self._lock:
            self._check_not_erased(key.subject, logged_at)
            return self._keys.setdefault(str(key.subject), key)

    def rewrap_data_key(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Compare-and-swap one wrapped key."""
        with self._lock:
            if self._keys.get(str(old.subject)) != old:
                return False
            self._keys[str(old.subject)] = new
            return True

    def data_keys_not_under(self, kek_version: int, after: str,
                            limit: int) -> list[WrappedDataKey]:
        """Keys to re-wrap, ordered by subject id."""
        with self._lock:
            keys = sorted((k for s, k in self._keys.items()
                           if k.kek_version != kek_version and s > after),
                          key=lambda k: str(k.subject))
        return keys[:limit]

    def data_key_counts(self) -> dict[int, int]:
        """Data keys per KEK version."""
        with self._lock:
            return dict(Counter(k.kek_version for k in self._keys.values()))

    def close(self) -> None:
        """Nothing to close."""
