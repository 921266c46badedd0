"""The record-store seam: where one jurisdiction's records and wrapped data keys live.

A :class:`RecordStore` is bound to exactly one jurisdiction and refuses any
subject homed elsewhere with :class:`~bordergate.errors.WrongJurisdiction`
(code ``wrong_jurisdiction``, ``home`` naming the subject's home), which the
gateway answers with 421 and the right gateway (promise 1).  It stores field
values as opaque bytes: the :class:`~bordergate.residency.vault.Vault` above
it seals ``protected``/``restricted`` values first, so a store only ever sees
ciphertext for them.  It also keeps the subject's wrapped data key (it is the
:class:`~bordergate.keys.keyring.DataKeyStore` of its jurisdiction), so that
erasing a subject destroys its key and its rows in one transaction
(promise 8).

An erasure decided by a logged entry also leaves, in the same transaction, the
SHA-256 of the subject id and that entry's log index (never the id itself), so
that a change decided by an *older* entry (a write sequenced before the
erasure whose store change lands after it) is refused with
:class:`~bordergate.errors.Conflict` ``subject_erased`` instead of bringing
the subject back; a change logged after the erasure writes the subject again.
A write also names the fields it decided, and a record holding another (added
by a concurrent write after this one was decided) is not replaced
(``record_changed``): the replacement would remove that field undecided.

Backends, one module each, chosen by URL (:func:`open_record_store`):
``sqlite:///path/us.db`` (embedded default, one file per jurisdiction),
``postgresql://.../bordergate_us`` (one database per jurisdiction), and
``memory:`` (the in-memory twin for tests).  Infrastructure failures surface
as :class:`~bordergate.errors.Unavailable` (code ``store_unavailable``),
never as driver exceptions.

This package must never see a protected value in clear or log any value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bordergate.errors import Conflict
from bordergate.keys.keyring import WrappedDataKey
from bordergate.locations import parse_store_location
from bordergate.subjects import SubjectId

__all__ = [
    "FieldValue",
    "GroupCount",
    "RawRecord",
    "RecordRef",
    "RecordStore",
    "StoreErasure",
    "erasure_digest",
    "open_record_store",
    "record_changed",
    "removes_undecided",
    "subject_erased",
]


def erasure_digest(subject: SubjectId) -> str:
    """What a store keeps of an erased subject: the SHA-256 (hex) of its id."""
    return hashlib.sha256(str(subject).encode("ascii")).hexdigest()


def record_changed() -> Conflict:
    """The refusal of a write that would remove a stored field it did not decide."""
    return Conflict("the record gained a field this write was not decided for; nothing "
                    "was written, write again", code="record_changed")


def removes_undecided(stored: Set[str], decided: Set[str] | None) -> bool:
    """Whether replacing a record holding ``stored`` fields by a write that decided
    ``decided`` (None: not checked) would remove a field it did not decide."""
    return decided is not None and not stored <= decided


def subject_erased() -> Conflict:
    """The refusal of a change decided before the subject's erasure was logged."""
    return Conflict("the subject was erased after this change was logged; nothing was "
                    "written", code="subject_erased")


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as stored: its owner and the selected fields' stored bytes."""

    subject: SubjectId
    fields: dict[str, bytes]


@dataclass(frozen=True, slots=True, order=True)
class RecordRef:
    """Where a record lives: collection and record id."""

    collection: str
    record_id: str


@dataclass(frozen=True, slots=True)
class FieldValue:
    """One record's stored value of one field (``None`` if the record lacks it)."""

    subject: SubjectId
    record_id: str
    value: bytes | None


@dataclass(frozen=True, slots=True)
class GroupCount:
    """One group of an aggregate: stored value (``None``: field absent) and counts."""

    value: bytes | None
    records: int
    subjects: int


@dataclass(frozen=True, slots=True)
class StoreErasure:
    """What erasing a subject removed from a store.

    A store cannot know what copies of it exist (backups, replicas, file
    copies, PostgreSQL's dead row versions and WAL): what remains of the
    subject elsewhere is the vault's answer
    (:attr:`~bordergate.residency.vault.ErasureReport.residue`), not the store's.

    Attributes:
        records: rows of records deleted.
        data_key: the wrapped data key destroyed (``None`` if there was none);
            its ``kek_version`` is the KEK that still opens any copy of it
            taken before the erasure, until that version is destroyed.
    """

    records: int
    data_key: WrappedDataKey | None


class RecordStore(Protocol):
    """Records and wrapped data keys of one jurisdiction; values are opaque bytes."""

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction this store is bound to."""
        ...

    @property
    def kind(self) -> str:
        """``sqlite``, ``postgres`` or ``memory``."""
        ...

    #: Whether ``get_record``, ``owner`` and ``get_data_key`` (bounded reads of
    #: one record or key) are cheap enough to call on an event loop: an
    #: embedded store answers them in microseconds, less than a thread hop;
    #: a networked one (a round trip, a pool that may wait) is not.
    inline_point_reads: bool

    def put_record(self, collection: str, record_id: str, subject: SubjectId,
                   fields: Mapping[str, bytes], *, logged_at: int | None = None,
                   decided: Set[str] | None = None) -> None:
        """Create or wholly replace a record.  ``logged_at``: the log index of the
        entry that decided the write (None: not checked against erasures);
        ``decided``: the field names it decided (None: not checked), which must
        hold every field the stored record has (a replaced record loses the others).

        Raises:
            WrongJurisdiction: the subject is homed elsewhere.
            Conflict: ``record_owner_mismatch`` if the record belongs to another subject;
                ``subject_erased`` if its erasure was logged after ``logged_at``;
                ``record_changed`` if it holds a field outside ``decided``.
            Unavailable: ``store_unavailable``.
        """
        ...

    def put_batch(self, keys: Sequence[WrappedDataKey],
                  records: Sequence[tuple[str, str, SubjectId, Mapping[str, bytes]]]) -> None:
        """Add new data keys and create or replace records, in one durable
        transaction (a bulk import: bordergate.migration).

        Raises:
            WrongJurisdiction: a subject is homed elsewhere (nothing written).
            Conflict: ``data_key_exists`` if a subject of ``keys`` has a key, or
                ``record_owner_mismatch`` (nothing written).
            Unavailable: ``store_unavailable``.
        """
        ...

    def get_record(self, collection: str, record_id: str, fields: Sequence[str]) -> RawRecord:
        """The owner and the stored bytes of the selected fields that are present.

        Raises:
            NotFound: ``record_not_found``.
            Unavailable: ``store_unavailable``.
        """
        ...

    def owner(self, collection: str, record_id: str) -> SubjectId:
        """The subject a record belongs to.

        Raises:
            NotFound: ``record_not_found``.
            Unavailable: ``store_unavailable``.
        """
        ...

    def owners(self, collection: str, record_ids: Sequence[str]) -> dict[str, SubjectId]:
        """The subject of each of ``record_ids`` that exists (absent ones are left
        out): :meth:`owner` of many in one round (a bulk import's lookups).

        Raises:
            Unavailable: ``store_unavailable``.
        """
        ...

    def delete_record(self, collection: str, record_id: str) -> None:
        """Delete one record.

        Raises:
            NotFound: ``record_not_found``.
            Unavailable: ``store_unavailable``.
        """
        ...

    def subject_records(self, subject: SubjectId) -> list[RecordRef]:
        """Every record of a subject, ordered by collection then record id.

        Raises:
            WrongJurisdiction: the subject is homed elsewhere.
            Unavailable: ``store_unavailable``.
        """
        ...

    def erase_subject(self, subject: SubjectId, *,
                      logged_at: int | None = None) -> StoreErasure:
        """Destroy the subject's data key (overwrite, then delete) and all its rows;
        with ``logged_at`` (the erasure's log index), remember it (the id's digest).

        Raises:
            WrongJurisdiction: the subject is homed elsewhere.
            Unavailable: ``store_unavailable``.
        """
        ...

    def group_count(self, collection: str, field: str | None) -> list[GroupCount]:
        """Records and distinct subjects per stored value of ``field`` (one group if None).

        Raises:
            Unavailable: ``store_unavailable``.
        """
        ...

    def field_values(self, collection: str, field: str) -> list[FieldValue]:
        """Every record's stored value of ``field`` (for grouping by decrypted values).

        Raises:
            Unavailable: ``store_unavailable``.
        """
        ...

    def get_data_key(self, subject: SubjectId) -> WrappedDataKey | None:
        """The subject's wrapped data key, or ``None``."""
        ...

    def add_data_key(self, key: WrappedDataKey, *,
                     logged_at: int | None = None) -> WrappedDataKey:
        """Store ``key`` unless the subject already has one; return the stored one.
        ``logged_at``: as :meth:`put_record`.

        Raises:
            WrongJurisdiction: the subject is homed elsewhere.
            Conflict: ``subject_erased`` as :meth:`put_record`.
        """
        ...

    def rewrap_data_key(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Replace ``old`` by ``new`` if ``old`` is still stored."""
        ...

    def data_keys_not_under(self, kek_version: int, after: str,
                            limit: int) -> list[WrappedDataKey]:
        """Up to ``limit`` keys not under ``kek_version`` with subject id > ``after``."""
        ...

    def data_key_counts(self) -> dict[int, int]:
        """How many data keys are wrapped under each KEK version."""
        ...

    def close(self) -> None:
        """Close connections."""
        ...


def open_record_store(url: str, *, jurisdiction: str, base_dir: Path | None = None,
                      pool_size: int = 8) -> RecordStore:
    """Open the store a deployment names for ``jurisdiction``.

    ``sqlite:///abs/path.db``, ``sqlite:rel/path.db`` (relative to ``base_dir``),
    a bare path ending in ``.db``, ``postgresql://...``/``postgres://...``, or
    ``memory:`` (:func:`bordergate.locations.parse_store_location`).

    Raises:
        ConfigError: ``store_url`` for an unknown scheme, or as the backend raises.
        Unavailable: ``store_unavailable``.
    """
    location = parse_store_location(url, base_dir=base_dir)
    if location.kind == "postgresql":
        from bordergate.residency.stores.postgres import PostgresRecordStore

        return PostgresRecordStore(location.target, jurisdiction=jurisdiction,
                                   pool_size=pool_size)
    if location.kind == "memory":
        from bordergate.residency.stores.memory import MemoryRecordStore

        return MemoryRecordStore(jurisdiction)
    from bordergate.residency.stores.sqlite import SqliteRecordStore

    return SqliteRecordStore(Path(location.target), jurisdiction=jurisdiction)
