"""One home jurisdiction opened in this process for a migration: store, keys, log, policy.

A :class:`Home` holds exactly what that jurisdiction's custodian holds (its
record store, key backend, log key and pseudonym secret, from the deployment
file) and nothing of any other home, so each home's import runs with that
custodian's credentials only.  It writes in batches, in process (not over
HTTP), keeping the gateway's order (docs/log-entries.md, promise 3): decide
every field written, log the ``migration`` entry and the ``key-event`` of
every data key the batch creates, wait until they are durable, then write the
store in one transaction.  When the deployment names the home's key service
the home opens no KEK: the ``migration`` entries are logged first and the key
service creates the batch's new data keys against them (:meth:`Home.create_keys`,
:mod:`bordergate.migration.key_service`) before anything is sealed.

The legacy-id -> subject-id map lives only in the home's store, as one record
per subject in the reserved collection ``_legacy`` (owned by the subject, so
erasing the subject erases it too): its record id is a keyed hash of the
legacy id (:meth:`Home.legacy_lookup_id`) and its one value, the legacy id,
is sealed under the subject's data key like any protected value.

A home's gateway must not run during the migration (one writer per log:
opening the sequencer fails with ``Conflict`` if one does).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bordergate.config import Deployment, Jurisdiction
from bordergate.entries import EntryTemplate, EntryTime, Pseudonymizer
from bordergate.entry_state import state_keys
from bordergate.errors import ConfigError, NotFound, Unavailable
from bordergate.gateway.decisions import (
    DecisionCache,
    access_outcome,
    field_inputs,
    key_event_entry,
)
from bordergate.gateway.startup import read_pseudonym_secret
from bordergate.keys.backend import open_key_backend
from bordergate.keys.envelope import (
    collection_aad_head,
    field_aad_prefix,
    field_aad_suffix,
    record_aad_prefix,
)
from bordergate.keys.events import KeyEvent, KeyEventKind
from bordergate.keys.keyring import KeyRing, SubjectCipher, WrappedDataKey
from bordergate.keys.service_client import KeksHeldElsewhere
from bordergate.migration.key_service import MigrationKeys
from bordergate.policy.bundle import PolicyBundle
from bordergate.policy.engine import PolicyEngine
from bordergate.policy.entities import Principal, RequestContext
from bordergate.residency.schema import FieldSpec, Schema, load_schema
from bordergate.residency.stores import RecordStore, open_record_store
from bordergate.residency.vault import Vault
from bordergate.subjects import SubjectId
from bordergate.tlog.sequencer import Sequencer
from bordergate.tlog.storage import open_storage

__all__ = ["LEGACY_COLLECTION", "Home", "HomeBatch", "KeyEventEntries", "open_home"]

#: The reserved collection of the legacy-id map (schema names start with a letter).
LEGACY_COLLECTION = "_legacy"
_LEGACY_FIELD = "legacy_id"
_PURPOSE = "operations"


@dataclass
class HomeBatch:
    """What one batch writes into one home: sealed records, new keys, their events."""

    records: list[tuple[str, str, SubjectId, Mapping[str, bytes]]] = field(default_factory=list)
    keys: list[WrappedDataKey] = field(default_factory=list)
    key_entries: list[bytes] = field(default_factory=list)
    entries: list[bytes] = field(default_factory=list)
    logged: bool = False  # the entries are durable already (keys from a key service)


class Home:
    """One jurisdiction's store, key ring, policy and log, for a migration."""

    def __init__(self, code: str, *, schema: Schema, engine: PolicyEngine,
                 pseudonyms: Pseudonymizer, store: RecordStore, keyring: KeyRing,
                 sequencer: HomeLog | None, key_service: MigrationKeys | None = None
                 ) -> None:
        self.code = code
        self.schema = schema
        self.engine = engine
        self.pseudonyms = pseudonyms
        self.store = store
        self.keyring = keyring
        self.sequencer = sequencer
        self.key_service = key_service
        self.principal = Principal(id="bordergate-migration", org=f"{code}-custodian",
                                   org_kind="local", location=code,
                                   roles=frozenset({"service"}))
        self.vault = Vault(schema, store, keyring)
        self.key_entries = KeyEventEntries(code, pseudonyms)
        self._decisions = DecisionCache(engine.decide_many)
        self._ciphers: dict[str, SubjectCipher] = {}
        self._aad_heads: dict[tuple[str, str], bytes] = {}  # (subject, collection): per batch
        self._plans: dict[str, dict[str, tuple[FieldSpec, bytes | None]]] = {}
        self._required: dict[str, int] = {}
        self._kek_version: int | None = None  # asked of the backend once per batch

    # -- ids ----------------------------------------------------------------
    def legacy_lookup_id(self, legacy_id: str) -> str:
        """The record id of a legacy id's map row: a keyed hash (no legacy id in clear)."""
        return "s-" + self.pseudonyms.digest_hex("legacy-subject", legacy_id)[-48:]

    def record_id(self, batch: int, table: str, key: object) -> str:
        """The home record id of a source row: batch number and a keyed hash of the row."""
        return f"m{batch}-" + self.pseudonyms.digest_hex("legacy-record", f"{table}/{key}")[-40:]

    def subject_of(self, legacy_id: str) -> SubjectId | None:
        """The subject a legacy id was migrated to, looked up in this home's store."""
        try:
            return self.store.owner(LEGACY_COLLECTION, self.legacy_lookup_id(legacy_id))
        except NotFound:
            return None

    def subjects_of(self, legacy_ids: Sequence[str]) -> dict[str, SubjectId]:
        """:meth:`subject_of` of many legacy ids in one store round; ids never
        migrated here are left out."""
        lookups = {self.legacy_lookup_id(legacy): legacy for legacy in legacy_ids}
        found = self.store.owners(LEGACY_COLLECTION, list(lookups))
        return {lookups[lookup]: subject for lookup, subject in found.items()}

    def legacy_id_of(self, subject: SubjectId, lookup_id: str) -> str:
        """Open a map row (for checks by the custodian: verify, tests)."""
        raw = self.store.get_record(LEGACY_COLLECTION, lookup_id, [_LEGACY_FIELD])
        cipher, _ = self.keyring.cipher_for(subject)
        aad = (field_aad_prefix(self.code, str(subject), LEGACY_COLLECTION, lookup_id)
               + field_aad_suffix(_LEGACY_FIELD))
        return cipher.open(raw.fields[_LEGACY_FIELD], aad).decode()

    # -- decisions ------------------------------------------------------------
    def decide(self, collection: str, fields: Sequence[str], now: float
               ) -> tuple[str, list[dict[str, Any]]]:
        """The write decision of every field of a collection (one per field, as a
        gateway write records them); returns the outcome and the ``decisions`` array."""
        specs = self.schema.fields(collection, list(fields))
        context = RequestContext(purpose=_PURPOSE, now=int(now), gateway=self.code,
                                 k_min=self.engine.bundle.k_min)
        inputs = field_inputs(self.principal, "write", collection, specs, home=self.code,
                              context=context)
        decisions, recorded = self._decisions.decide(inputs)
        return access_outcome(decisions), json.loads(recorded)

    # -- sealing ------------------------------------------------------------
    def cipher(self, subject: SubjectId, batch: HomeBatch, *, minted: bool = False
               ) -> SubjectCipher:
        """The subject's cipher: its stored key, or a new one added to ``batch``
        (``minted``: the subject id was just minted, so no store holds a key for it)."""
        found = self._ciphers.get(str(subject))
        if found is not None:
            return found
        stored = None if minted else self.store.get_data_key(subject)
        if stored is not None:
            cipher, _ = self.keyring.cipher_for(subject)
        else:
            if self._kek_version is None:
                self._kek_version = self.keyring.current_version()
            cipher, wrapped, event = self.keyring.new_data_key(subject, self._kek_version)
            batch.keys.append(wrapped)
            batch.key_entries.append(_key_entry(event, self))
        self._ciphers[str(subject)] = cipher
        return cipher

    def seal(self, collection: str, record_id: str, subject: SubjectId,
             values: Mapping[str, object], batch: HomeBatch) -> None:
        """Validate ``values`` against the schema, seal the encrypted classes, queue.

        The checks and bytes of ``Collection.validate`` then ``Vault.seal_values``
        (every value normalized by its field, required fields present, encrypted
        classes sealed under AAD binding jurisdiction, subject, collection, record
        id and field), in one pass over the record with the per-field work of the
        collection looked up once (:meth:`_plan`): this is the import's hot loop.

        Raises:
            InvalidInput: as ``Collection.validate`` (``unknown_field``, ``wrong_type``,
                ``value_too_large``, ``missing_field``).
        """
        plan = self._plans.get(collection) or self._plan(collection)
        stored: dict[str, bytes] = {}
        sealing: list[str] = []
        clear: list[tuple[bytes, bytes]] = []
        required = 0
        for name, value in values.items():
            step = plan.get(name)
            if step is None:
                self.schema.collection(collection).field(name)  # raises unknown_field
                continue
            if value is None:
                continue  # an absent optional field; required ones are caught below
            spec, suffix = step
            required += spec.required
            raw = spec.canonical_bytes(value)
            if suffix is None:
                stored[name] = raw
            else:
                sealing.append(name)
                clear.append((raw, suffix))
        if required < self._required[collection]:
            self.schema.collection(collection).validate(values)  # raises missing_field
        if sealing:
            owner = str(subject)
            head = self._aad_heads.get((owner, collection))
            if head is None:
                head = self._aad_heads[(owner, collection)] = collection_aad_head(
                    self.code, owner, collection)
            prefix = record_aad_prefix(head, record_id)
            sealed = self.cipher(subject, batch).seal_many(
                [(raw, prefix + suffix) for raw, suffix in clear])
            stored.update(zip(sealing, sealed, strict=True))
        batch.records.append((collection, record_id, subject, stored))

    def _plan(self, collection: str) -> dict[str, tuple[FieldSpec, bytes | None]]:
        """Per field of ``collection``: its spec and, for an encrypted class, its AAD tail."""
        fields = self.schema.collection(collection).fields
        plan = {name: (spec, field_aad_suffix(name) if spec.field_class.encrypted else None)
                for name, spec in fields.items()}
        self._plans[collection] = plan
        self._required[collection] = sum(1 for spec in fields.values() if spec.required)
        return plan

    def seal_legacy_id(self, legacy_id: str, subject: SubjectId, batch: HomeBatch, *,
                       minted: bool = False) -> None:
        """Queue the map row of a subject (sealed; keyed-hash record id); ``minted``
        as in :meth:`cipher`."""
        lookup = self.legacy_lookup_id(legacy_id)
        aad = (field_aad_prefix(self.code, str(subject), LEGACY_COLLECTION, lookup)
               + field_aad_suffix(_LEGACY_FIELD))
        sealed = self.cipher(subject, batch, minted=minted).seal(legacy_id.encode(), aad)
        batch.records.append((LEGACY_COLLECTION, lookup, subject, {_LEGACY_FIELD: sealed}))

    def create_keys(self, batch: HomeBatch, tables: Sequence[Sequence[tuple[SubjectId, str]]],
                    new: Sequence[SubjectId]) -> None:
        """With a key service: log the batch's entries (one per table, in
        ``batch.entries`` order, ``tables`` their (subject, record id) pairs) with
        the log operator's promises, then have the key service create the data keys
        of the ``new`` subjects, each against the first entry whose table it owns a
        record of (:mod:`bordergate.migration.key_service`); the keys go into
        ``batch`` with their ``key-event`` entries, as :meth:`cipher` would.

        Raises:
            Unavailable: the log or the key service; ``migration_subject_without_records``
                for a new subject owning no record of the batch.
        """
        if not isinstance(self.sequencer, ServiceLog) or self.key_service is None:
            raise ConfigError(f"home {self.code} has no key service and log operator",
                              code="home_read_only")
        promises = self.sequencer.append_promised(batch.entries)
        batch.logged = True
        remaining = {str(s): s for s in new}
        for entry, pairs, promise in zip(batch.entries, tables, promises, strict=True):
            owners = {str(s) for s, _ in pairs}
            create = [remaining.pop(k) for k in sorted(remaining) if k in owners]
            if not create:
                continue
            made = self.key_service.create(entry=self.sequencer.logged(entry),
                                           promise=promise, pairs=pairs, create=create)
            for subject in create:
                cipher, wrapped = made[str(subject)]
                self._ciphers[str(subject)] = cipher
                batch.keys.append(wrapped)
                batch.key_entries.append(_key_entry(KeyEvent(
                    KeyEventKind.DATA_KEY_CREATED, self.code, wrapped.kek_version,
                    time.time(), subject), self))
        if remaining:
            raise Unavailable(f"{len(remaining)} new subjects own no record of the batch",
                              code="migration_subject_without_records")

    # -- writing --------------------------------------------------------------
    def commit(self, batch: HomeBatch) -> None:
        """Log the batch's entries and key events (durable), then write the store.

        Raises:
            Unavailable: the log or the store cannot be written (nothing half-done
                in the store: one transaction).
        """
        log = self._log()
        logged = [] if batch.logged else batch.entries
        if logged or batch.key_entries:
            log.append_many(logged + batch.key_entries)
        self.store.put_batch(batch.keys, batch.records)
        self._ciphers.clear()
        self._aad_heads.clear()
        self._kek_version = None

    def append(self, entries: Sequence[bytes]) -> None:
        """Log entries durably (``legacy-deletion``)."""
        log = self._log()
        if entries:
            log.append_many(list(entries))

    def publish(self) -> None:
        """Return once a published checkpoint of the home's log covers every entry it
        sequenced so far (this run's, and those of a killed run before it).

        A part is marked ``done`` only after that: a later run opens only the homes
        with parts not done, so an entry that is durable but not yet in a published
        checkpoint when the run is killed would otherwise stay out of every
        checkpoint (and out of ``verify``'s reading of the log) until some later
        writer of that log recovers it.
        """
        self._log().publish()

    def _log(self) -> HomeLog:
        """The home's log, to write.

        Raises:
            ConfigError: ``home_read_only`` (opened to read only).
        """
        if self.sequencer is None:
            raise ConfigError(f"home {self.code} was opened read-only", code="home_read_only")
        return self.sequencer

    def close(self) -> None:
        if self.sequencer is not None:
            self.sequencer.close()
        if self.key_service is not None:
            self.key_service.close()
        self.store.close()


class HomeLog(Protocol):
    """Where a home's migration entries go: durable before ``append_many`` returns."""

    def append_many(self, entries: list[bytes]) -> int: ...

    def publish(self, timeout: float = 30.0) -> object:
        """Return once a checkpoint covering every entry appended so far is published."""

    def close(self) -> None: ...


class ServiceLog:
    """The log operator's sequencer service, reached with the custodian's append
    credential (every entry stamped with it): the migration is a custodian
    operation and never holds the log key (docs/scale-out.md)."""

    def __init__(self, j: Jurisdiction, credential_file: Path) -> None:
        from bordergate.log_access import remote_appender
        self._j = j
        self._loop = asyncio.new_event_loop()

        async def make() -> Any:
            return remote_appender(j, credential_file)
        self._remote = self._loop.run_until_complete(make())

    def append_many(self, entries: list[bytes]) -> int:
        """Sequence ``entries``; returns once the service says they are durable."""
        return int(self._loop.run_until_complete(self._remote.append_many(entries)))

    def append_promised(self, entries: list[bytes]) -> list[bytes]:
        """Sequence ``entries`` durably; the log operator's promise of inclusion of each."""
        _, promises = self._loop.run_until_complete(self._remote.append_promised(entries))
        return list(promises)

    def logged(self, entry: bytes) -> bytes:
        """The bytes the log holds for ``entry`` (stamped with the credential's id)."""
        return bytes(self._remote.logged(entry))

    def publish(self, timeout: float = 30.0) -> None:
        """Return once the log operator has published a checkpoint (signed with the
        log's key, checked here) covering everything it sequenced so far: this run's
        entries and any a killed run left durable.  ``migrate verify`` and the auditor
        read published checkpoints only, so a part is ``done`` only when they can see
        it.  The service publishes at once when asked (with its witness quorum).

        Raises:
            Unavailable: ``checkpoint_not_published`` (not published in ``timeout``
                seconds, or the service failed; the entries are durable and a later
                run or the service's next publication covers them).
        """
        try:
            self._loop.run_until_complete(self._remote.publish(timeout))
        except Unavailable as e:
            raise Unavailable(f"the log operator of {self._j.code} has not published "
                              f"a checkpoint covering this run's entries: {e}",
                              code="checkpoint_not_published") from e

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._remote.aclose())
        finally:
            self._loop.close()


def _home_log(j: Jurisdiction) -> HomeLog:
    """The log operator's service when the deployment names one (with the custodian's
    credential), else the log storage itself with an in-process sequencer that
    publishes with the log's witness quorum (development: the command is the log's
    writer for the run, refused with ``log_writer_busy`` while a gateway holds it)."""
    if j.log.sequencer is not None:
        path = j.log.sequencer.custodian_credential_file
        if path is None:
            raise ConfigError(f"jurisdictions.{j.code}.log.sequencer names no "
                              "custodian_credential_file", code="custodian_credential_missing")
        return ServiceLog(j, path)
    from bordergate.log_access import log_signer
    from bordergate.log_witnessing import log_witnessing
    sequencer = Sequencer(open_storage(j.log.storage), log_signer(j),
                          witnessing=log_witnessing(j.log), state_keys=state_keys)
    sequencer.start()
    return sequencer


def _key_entry(event: KeyEvent, home: Home) -> bytes:
    return home.key_entries.entry(event, time.time())


class KeyEventEntries:
    """The ``key-event`` entries of the data keys a migration creates.

    Byte-for-byte :func:`~bordergate.gateway.decisions.key_event_entry` with
    the migration's ``gateway`` and ``reason`` (property-tested in
    tests/migration/test_key_event_entries.py), from one
    :class:`~bordergate.entries.EntryTemplate` per event kind and KEK version:
    only ``at``, ``subject`` and ``time`` are encoded per key (a batch creates
    one key per new subject).
    """

    _SLOTS = ("at", "subject")

    def __init__(self, code: str, pseudonyms: Pseudonymizer) -> None:
        self._extra = {"gateway": code, "reason": "migration"}
        self._pseudonyms = pseudonyms
        self._templates: dict[tuple[str, str, int], EntryTemplate] = {}
        self._time = EntryTime()

    def entry(self, event: KeyEvent, now: float) -> bytes:
        """The entry of ``event`` logged at ``now``."""
        body = event.to_entry(self._pseudonyms.subject)
        if body.keys() != {"event", "jurisdiction", "kek_version", "at", "subject"}:
            return key_event_entry(event, self._pseudonyms.subject, now, self._extra)
        shape = (event.kind.value, event.jurisdiction, event.kek_version)
        template = self._templates.get(shape)
        if template is None:
            template = self._templates[shape] = EntryTemplate("key-event", {
                "kind": event.kind.value, "jurisdiction": event.jurisdiction,
                "kek_version": event.kek_version, **self._extra}, self._SLOTS)
        return template.fill([json.dumps(body[name], ensure_ascii=False).encode()
                              for name in self._SLOTS], self._time(now))


def open_home(deployment: Deployment, code: str, *, write: bool = True,
              engine: PolicyEngine | None = None) -> Home:
    """Open one home's store, keys, policy and (to write) its log's sequencer.

    ``engine``: the deployment's policy engine, already loaded (workers forked
    from a parent that loaded it once; the bundle is the deployment's, not a
    home's secret).

    Raises:
        ConfigError: a file or key of the deployment is missing or wrong.
        Unavailable: the store, key backend or log cannot be reached.
        Conflict: another process (a running gateway) writes the log.
    """
    j = deployment.jurisdiction(code)
    schema = load_schema(deployment.schema_path)
    if engine is None:
        engine = PolicyEngine(PolicyBundle.load(deployment.policy_bundle_path))
    pseudonyms = Pseudonymizer(read_pseudonym_secret(j.log.pseudonym_secret_file))
    store = open_record_store(j.store, jurisdiction=code)
    key_service = None
    if j.key_service is not None:  # the key service holds the KEKs: never opened here
        keyring = KeyRing(KeksHeldElsewhere(code), store)
        key_service = MigrationKeys(j.key_service.url,
                                    j.key_service.credential_file.read_text().strip())
    else:
        keyring = KeyRing(open_key_backend(j.keys, jurisdiction=code), store)
    sequencer: HomeLog | None = None
    if write:
        try:
            sequencer = _home_log(j)
        except BaseException:
            store.close()
            raise
    return Home(code, schema=schema, engine=engine, pseudonyms=pseudonyms, store=store,
                keyring=keyring, sequencer=sequencer, key_service=key_service)
