"""The vault: a jurisdiction's records, validated, sealed and crypto-shreddable.

This is the API the gateway calls (promises 1 and 8).  A :class:`Vault`
joins the classified :class:`~bordergate.residency.schema.Schema`, a
:class:`~bordergate.residency.stores.RecordStore` and a
:class:`~bordergate.keys.keyring.KeyRing`, all of one jurisdiction:

* ``put`` checks the subject's home, the record id and every value against
  the schema *before* anything is written, then seals every ``protected`` and
  ``restricted`` value with the subject's data key (AAD binds jurisdiction,
  subject, collection, record id and field) and stores the record; ``public``
  values are stored in clear.  The raw store never sees a protected value.
* ``get`` reads only the fields asked for and opens only those.
* ``erase`` destroys the subject's data key and rows (crypto-shredding) and
  evicts the cached key; given the erasure's log index, the store remembers
  it, and a write given the index of an older entry
  (``put``/``put_sealed_with`` with ``logged_at``: a write sequenced before
  the erasure, carried out after it) is refused with ``subject_erased``
  rather than bring the subject back. It answers ``until_kek_destroyed``
  with the KEK version: copies of the store taken before stay openable until
  that version is destroyed (docs/gateway.md, "When an erasure is final").
* ``aggregate`` counts records and distinct subjects per group for
  k-anonymous exports: grouping by a ``public`` field (or none) runs in the
  store; grouping by a ``protected``/``restricted`` field opens each value in
  this process and groups in memory, never writing the clear values anywhere.
  Groups with fewer than ``min_subjects`` subjects are dropped and counted.

Whether a principal may do any of this is the policy's business, not the
vault's.  This module must never log values or return values of fields that
were not asked for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass

from bordergate.errors import Conflict, NotFound, VerificationError
from bordergate.keys.envelope import field_aad_prefix, field_aad_suffix
from bordergate.keys.events import KeyEvent
from bordergate.keys.keyring import KeyRing, SubjectCipher
from bordergate.residency.schema import FieldSpec, Schema
from bordergate.residency.stores import FieldValue, RecordRef, RecordStore
from bordergate.subjects import SubjectId, parse_record_id, require_home

__all__ = [
    "Aggregate",
    "AggregateGroup",
    "ErasureReport",
    "ResidentRecord",
    "SealedRecord",
    "Vault",
]


@dataclass(frozen=True, slots=True)
class ResidentRecord:
    """A record read back: its owner and the values of the fields asked for that it has."""

    subject: SubjectId
    values: dict[str, object]


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """A record read from the store but not opened (the key-service read path:
    the entry is logged and the data key released before anything opens).

    Attributes:
        collection, record_id: the record.
        subject: its owner.
        raw: the stored bytes of the fields asked for that it has.
    """

    collection: str
    record_id: str
    subject: SubjectId
    raw: dict[str, bytes]
    sealed: frozenset[str]  # the names in ``raw`` whose values are sealed

    @property
    def needs_key(self) -> bool:
        """Whether opening needs the subject's data key."""
        return bool(self.sealed)


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What erasing a subject did (promise 8); the gateway logs it as an ``erase`` entry.

    Attributes:
        subject: the erased subject (to be pseudonymised by the logger).
        records: records deleted.
        data_key_destroyed: whether a data key existed and was destroyed.
        residue: ``until_kek_destroyed`` whenever a data key was destroyed:
            a copy of the store taken before the erasure (a backup, a replica,
            a copied SQLite file, PostgreSQL's dead row versions or WAL) still
            holds the wrapped data key, and it opens under its KEK version
            until that version is rotated away and destroyed; only then is the
            erasure final.  ``none`` if the subject had no data key (nothing
            sealed; ``public`` values are not protected in copies, whatever
            the answer).
        residue_kek_version: the KEK version that wrapped the destroyed data
            key (``None`` with residue ``none``).  Copies taken before an
            earlier rotation hold it wrapped under an older version: every
            version up to this one must be gone (``bordergate keys rotate
            --destroy-old`` does that).
        events: the ``subject-shredded`` key event, if a key was destroyed.
    """

    subject: SubjectId
    records: int
    data_key_destroyed: bool
    residue: str
    residue_kek_version: int | None
    events: tuple[KeyEvent, ...]


@dataclass(frozen=True, slots=True)
class AggregateGroup:
    """One group: its value (``None`` if the field is absent or no grouping) and counts."""

    value: object | None
    records: int
    subjects: int


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Groups with at least ``min_subjects`` subjects, and how many were suppressed."""

    collection: str
    group_by: str | None
    groups: tuple[AggregateGroup, ...]
    suppressed: int


def _subject(subject: SubjectId | str) -> SubjectId:
    return subject if isinstance(subject, SubjectId) else SubjectId.parse(subject)


class Vault:
    """Validated, sealed, erasable records of one jurisdiction."""

    def __init__(self, schema: Schema, store: RecordStore, keyring: KeyRing) -> None:
        """Bind a schema, a store and a key ring.

        Raises:
            ValueError: if the store and key ring belong to different
                jurisdictions (the key ring's constructor already refuses this).
        """
        if store.jurisdiction != keyring.jurisdiction:
            raise ValueError("store and key ring of different jurisdictions")
        self.schema = schema
        self.store = store
        self.keyring = keyring
        self.jurisdiction = store.jurisdiction

    @property
    def inline_point_reads(self) -> bool:
        """Whether ``get`` and ``owner`` of one record may run on an event loop:
        the store declares its point reads cheap and the key backend unwraps in
        memory (every other vault call blocks and belongs on a worker thread)."""
        return self.store.inline_point_reads and self.keyring.inline_unwraps

    def mint_subject(self) -> SubjectId:
        """A new subject id homed here."""
        return SubjectId.mint(self.jurisdiction)

    def put(self, collection: str, record_id: str, subject: SubjectId | str,
            values: Mapping[str, object], *, logged_at: int | None = None,
            decided: Set[str] | None = None) -> list[KeyEvent]:
        """Create or wholly replace a record; returns key events (a new data key).

        Everything is checked before anything is written.  ``logged_at``: the log
        index of the entry that decided the write; it is refused if the subject's
        erasure was logged after it (promise 8).  ``decided``: the field names the
        write decided; it is refused if the stored record holds another (which the
        replacement would remove undecided, promise 2).

        Raises:
            InvalidInput: ``malformed_subject_id``, ``malformed_record_id``,
                ``unknown_collection``, ``unknown_field``, ``wrong_type``,
                ``value_too_large``, ``missing_field``.
            WrongJurisdiction: the subject is homed elsewhere.
            Conflict: ``record_owner_mismatch``, ``subject_erased``, ``record_changed``.
            Unavailable: store or key backend down.
        """
        owner = require_home(_subject(subject), self.jurisdiction)
        parse_record_id(record_id)
        coll = self.schema.collection(collection)
        clean = coll.validate(values)
        try:
            if self.store.owner(collection, record_id) != owner:
                raise Conflict("the record belongs to another subject",
                               code="record_owner_mismatch")
        except NotFound:
            pass
        sealed_needed = any(coll.fields[n].field_class.encrypted for n in clean)
        events: list[KeyEvent] = []
        cipher: SubjectCipher | None = None
        if sealed_needed:
            cipher, event = self._write_cipher(owner, logged_at)
            if event is not None:
                events.append(event)
        stored = self.seal_values(collection, record_id, owner, clean,
                                  lambda: _require(cipher))
        self.store.put_record(collection, record_id, owner, stored, logged_at=logged_at,
                              decided=decided)
        return events

    def _write_cipher(self, owner: SubjectId, logged_at: int | None
                      ) -> tuple[SubjectCipher, KeyEvent | None]:
        """The cipher a write seals under, its data key created if the subject has
        none; with ``logged_at`` a new key is stored only if the subject's erasure
        was not logged after the write (``subject_erased``).  An erasure landing
        between the lookup and the key ring's own creation can still leave a fresh,
        unused data key; the record itself is then refused by ``put_record``."""
        if logged_at is None or self.store.get_data_key(owner) is not None:
            return self.keyring.cipher_for(owner, create=True)
        cipher, wrapped, event = self.keyring.new_data_key(owner)
        kept = self.store.add_data_key(wrapped, logged_at=logged_at)
        if kept.key_id == wrapped.key_id:
            self.keyring.cache.put(cipher)
            return cipher, event
        return self.keyring.cipher_for(owner, create=True)  # another writer's key

    def seal_values(self, collection: str, record_id: str, owner: SubjectId,
                    clean: Mapping[str, object],
                    cipher: Callable[[], SubjectCipher]) -> dict[str, bytes]:
        """The stored bytes of validated values: ``public`` ones encoded, the others
        sealed with ``cipher()`` (asked for only if a value needs it) under AAD binding
        jurisdiction, subject, collection, record id and field (promise 1).  Also
        used by bulk imports (``bordergate.migration``), which store in batches."""
        coll = self.schema.collection(collection)
        prefix = field_aad_prefix(self.jurisdiction, str(owner), collection, record_id)
        stored: dict[str, bytes] = {}
        opened: SubjectCipher | None = None
        for name, value in clean.items():
            spec = coll.fields[name]
            raw = spec.encode(value)
            if spec.field_class.encrypted:
                opened = opened or cipher()
                raw = opened.seal(raw, prefix + field_aad_suffix(name))
            stored[name] = raw
        return stored

    def get(self, collection: str, record_id: str,
            fields: Sequence[str] | None = None) -> ResidentRecord:
        """Read the fields asked for (all if ``None``) of one record.

        Raises:
            InvalidInput: ``malformed_record_id``, ``unknown_collection``, ``unknown_field``.
            NotFound: ``record_not_found``.
            VerificationError: a stored value does not open (tampered or moved).
            Unavailable: store or key backend down.
        """
        parse_record_id(record_id)
        specs = self.schema.fields(collection, fields)
        raw = self.store.get_record(collection, record_id, [s.name for s in specs])
        subject = raw.subject
        prefix = field_aad_prefix(self.jurisdiction, str(subject), collection, record_id)
        values: dict[str, object] = {}
        cipher: SubjectCipher | None = None
        for spec in specs:
            data = raw.fields.get(spec.name)
            if data is None:
                continue
            if spec.field_class.encrypted:
                if cipher is None:
                    cipher, _ = self.keyring.cipher_for(subject)
                data, cipher = self._open(cipher, data, prefix + field_aad_suffix(spec.name))
            values[spec.name] = spec.decode(data)
        return ResidentRecord(subject, values)

    def get_sealed(self, collection: str, record_id: str,
                   fields: Sequence[str] | None = None) -> SealedRecord:
        """Read the fields asked for of one record without opening them.

        Raises:
            InvalidInput, NotFound, Unavailable: as :meth:`get`.
        """
        parse_record_id(record_id)
        specs = self.schema.fields(collection, fields)
        raw = self.store.get_record(collection, record_id, [s.name for s in specs])
        present = {s.name: raw.fields[s.name] for s in specs if raw.fields.get(s.name) is not None}
        sealed = frozenset(s.name for s in specs
                           if s.name in present and s.field_class.encrypted)
        return SealedRecord(collection, record_id, raw.subject, present, sealed)

    def open_sealed(self, record: SealedRecord,
                    cipher: SubjectCipher | None) -> ResidentRecord:
        """Open a :class:`SealedRecord` with the subject's ``cipher`` (needed only if
        :attr:`SealedRecord.needs_key`).

        Raises:
            VerificationError: a value does not open under ``cipher``
                (``decryption_failed``), or no cipher was given for a sealed value.
        """
        coll = self.schema.collection(record.collection)
        prefix = field_aad_prefix(self.jurisdiction, str(record.subject), record.collection,
                                  record.record_id)
        values: dict[str, object] = {}
        for name, data in record.raw.items():
            spec = coll.fields[name]
            if name in record.sealed:
                if cipher is None or cipher.subject != record.subject:
                    raise VerificationError("no data key of the record's subject",
                                            code="decryption_failed")
                values[name] = spec.decode(cipher.open(data, prefix + field_aad_suffix(name)))
            else:
                values[name] = spec.decode(data)
        return ResidentRecord(record.subject, values)

    def needs_key(self, collection: str, values: Mapping[str, object]) -> bool:
        """Whether writing ``values`` seals any of them (needs the data key)."""
        coll = self.schema.collection(collection)
        return any(coll.fields[n].field_class.encrypted for n in values if n in coll.fields)

    def put_sealed_with(self, collection: str, record_id: str, subject: SubjectId | str,
                        values: Mapping[str, object], cipher: SubjectCipher | None, *,
                        logged_at: int | None = None, decided: Set[str] | None = None
                        ) -> None:
        """:meth:`put` with the subject's data key given (the key-service write path:
        the gateway obtained it against the logged write decision).

        Raises:
            as :meth:`put`; ValueError: a sealed value and no ``cipher``.
        """
        owner = require_home(_subject(subject), self.jurisdiction)
        parse_record_id(record_id)
        clean = self.schema.collection(collection).validate(values)
        try:
            if self.store.owner(collection, record_id) != owner:
                raise Conflict("the record belongs to another subject",
                               code="record_owner_mismatch")
        except NotFound:
            pass

        def given() -> SubjectCipher:
            if cipher is None or cipher.subject != owner:
                raise ValueError("a sealed value needs the subject's data key")
            return cipher
        stored = self.seal_values(collection, record_id, owner, clean, given)
        self.store.put_record(collection, record_id, owner, stored, logged_at=logged_at,
                              decided=decided)

    def _open(self, cipher: SubjectCipher, data: bytes,
              aad: bytes) -> tuple[bytes, SubjectCipher]:
        try:
            return cipher.open(data, aad), cipher
        except VerificationError:
            # The cached key may be stale (erased and re-created elsewhere): retry once.
            fresh = self.keyring.refresh(cipher.subject)
            if fresh.key_id == cipher.key_id:
                raise
            return fresh.open(data, aad), fresh

    def owner(self, collection: str, record_id: str) -> SubjectId:
        """The subject a record belongs to.

        Raises:
            InvalidInput: ``malformed_record_id``, ``unknown_collection``.
            NotFound: ``record_not_found``.
            Unavailable: store down.
        """
        parse_record_id(record_id)
        self.schema.collection(collection)
        return self.store.owner(collection, record_id)

    def delete(self, collection: str, record_id: str) -> None:
        """Delete one record.

        Raises:
            InvalidInput: ``malformed_record_id``, ``unknown_collection``.
            NotFound: ``record_not_found``.
            Unavailable: store down.
        """
        parse_record_id(record_id)
        self.schema.collection(collection)
        self.store.delete_record(collection, record_id)

    def records_of(self, subject: SubjectId | str) -> list[RecordRef]:
        """Every record of a subject (for access requests and erasure previews).

        Raises:
            InvalidInput: ``malformed_subject_id``.
            WrongJurisdiction: the subject is homed elsewhere.
            Unavailable: store down.
        """
        return self.store.subject_records(require_home(_subject(subject), self.jurisdiction))

    def erase(self, subject: SubjectId | str, *, logged_at: int | None = None
              ) -> ErasureReport:
        """Crypto-shred a subject: destroy its data key, delete its rows (promise 8).
        ``logged_at``: the erasure's log index, which the store remembers so that
        no write logged before it lands after it.

        Returns:
            What was erased and what remains: ``until_kek_destroyed`` and the
            KEK version whenever a data key was destroyed (see :class:`ErasureReport`).

        Raises:
            InvalidInput: ``malformed_subject_id``.
            WrongJurisdiction: the subject is homed elsewhere.
            Unavailable: store down.
        """
        owner = require_home(_subject(subject), self.jurisdiction)
        done = self.store.erase_subject(owner, logged_at=logged_at)
        if done.data_key is None:
            self.keyring.cache.evict(str(owner))
            return ErasureReport(subject=owner, records=done.records, data_key_destroyed=False,
                                 residue="none", residue_kek_version=None, events=())
        # No store can vouch for copies of itself taken before now (promise 8 is
        # final only once the KEK version that wrapped the key is destroyed).
        version = done.data_key.kek_version
        return ErasureReport(
            subject=owner, records=done.records, data_key_destroyed=True,
            residue="until_kek_destroyed", residue_kek_version=version,
            events=(self.keyring.shredded(owner, version),))

    def aggregate(self, collection: str, group_by: str | None = None, *,
                  min_subjects: int = 1,
                  sealed: tuple[Sequence[FieldValue], Mapping[str, SubjectCipher]] | None = None
                  ) -> Aggregate:
        """Count records and distinct subjects, optionally grouped by one field.

        ``sealed``: for a sealed ``group_by``, the stored values already read and
        each subject's data key (by subject id), released by a key service for
        exactly those values (:mod:`bordergate.gateway.export_keys`); else the
        key ring opens them.

        Raises:
            InvalidInput: ``unknown_collection``, ``unknown_field``.
            VerificationError: a stored value does not open.
            Unavailable: store or key backend down.
        """
        coll = self.schema.collection(collection)
        spec = None if group_by is None else coll.field(group_by)
        if spec is None or not spec.field_class.encrypted:
            groups = [AggregateGroup(_decoded(spec, g.value), g.records, g.subjects)
                      for g in self.store.group_count(collection, group_by)]
        else:
            groups = self._grouped_in_process(collection, spec, sealed)
        kept = tuple(sorted((g for g in groups if g.subjects >= min_subjects),
                            key=lambda g: (g.value is None, repr(g.value))))
        return Aggregate(collection=collection, group_by=group_by, groups=kept,
                         suppressed=len(groups) - len(kept))

    def _grouped_in_process(self, collection: str, spec: FieldSpec,
                            sealed: tuple[Sequence[FieldValue], Mapping[str, SubjectCipher]]
                            | None) -> list[AggregateGroup]:
        records: Counter[object] = Counter()
        subjects: dict[object, set[SubjectId]] = {}
        items = self.store.field_values(collection, spec.name) if sealed is None else sealed[0]
        for item in items:
            value: object | None = None
            if item.value is not None:
                cipher = self.keyring.cipher_for(item.subject)[0] if sealed is None \
                    else sealed[1][str(item.subject)]
                aad = (field_aad_prefix(self.jurisdiction, str(item.subject), collection,
                                        item.record_id) + field_aad_suffix(spec.name))
                value = spec.decode(self._open(cipher, item.value, aad)[0])
            records[value] += 1
            subjects.setdefault(value, set()).add(item.subject)
        return [AggregateGroup(v, n, len(subjects[v])) for v, n in records.items()]


def _require(cipher: SubjectCipher | None) -> SubjectCipher:
    assert cipher is not None  # put asked for one whenever a value is sealed
    return cipher


def _decoded(spec: FieldSpec | None, value: bytes | None) -> object | None:
    if spec is None or value is None:
        return None
    return spec.decode(value)
