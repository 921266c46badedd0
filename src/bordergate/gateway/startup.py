"""Opening, starting and serving one jurisdiction's gateway from the deployment file.

``open_gateway`` opens everything the gateway of a jurisdiction needs (schema,
policy bundle and engine, token verifier, store, key ring, vault, approvals,
pseudonym secret, log storage, and the client of the log operator's sequencer
process, or in development the in-process sequencer) and fails with a clear
error if anything is missing.  Outside the development profile a gateway
never reads the log key: its configuration names only the log's verifier key
and its append credential (:mod:`bordergate.log_access`).  It then reconciles the approvals table
with the log: a crash between an ``approval-*`` entry and the table update
must not leave, say, a revoked approval usable.  ``start_gateway`` also logs the
``gateway-start`` entry (with the release, when the releases room found an
approved one) and is the one place startup checks hook into.  ``serve_gateway``
runs it on uvicorn, or, if it cannot start, serves a refusing app that answers
503 with the reason (fail closed).  ``provision`` creates the keys, logs and
stores of every jurisdiction of a deployment (``bordergate gateway init``).

Callers may hand in an already opened log storage (embedding; the test
suite wraps the real one to inject faults from outside, as
``tests/gateway/dead_disk_gateway.py`` does): nothing here exists for tests only.

This module must never serve a request itself, and never start a gateway
whose log it cannot write.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bordergate.approval_statement import ApproverKeys, MappingApproverKeys
from bordergate.config import Deployment, Jurisdiction, Limits
from bordergate.dsp.bulk import FieldCategories
from bordergate.entries import Entry, Pseudonymizer, parse_entry
from bordergate.entry_state import state_keys
from bordergate.errors import BordergateError, ConfigError, VerificationError
from bordergate.gateway.approval_scope import open_subject_ledger
from bordergate.gateway.approvals import (
    ApprovalStore,
    open_approval_store,
    rebuild_approvals,
    reconcile_approvals,
)
from bordergate.gateway.auth import TokenVerifier, parse_public_key
from bordergate.gateway.bulk_counters import BulkCounters, open_bulk_ledger
from bordergate.gateway.log_follower import FollowedState, LogFollower, follow
from bordergate.gateway.revocations import TokenRevocations
from bordergate.gateway.roster_in_force import RosterInForce
from bordergate.gateway.service import Gateway, LogAppender, SequencerLog
from bordergate.gateway.signing import SigningHelper
from bordergate.key_service_process import provision_key_service
from bordergate.keys.backend import KeyFileSettings, open_key_backend
from bordergate.keys.keyring import KeyRing, initialise, refuse_new_kek
from bordergate.keys.service_client import KeksHeldElsewhere, KeyServiceClient
from bordergate.locations import parse_log_location, parse_store_location
from bordergate.log_access import (
    log_signer,
    log_verifier,
    provision_sequencer,
    read_pseudonym_secret,
    refuse_gateway_log_key,
    witness_cosigners,
)
from bordergate.log_witnessing import log_witnessing
from bordergate.policy.bundle import PolicyBundle
from bordergate.policy.engine import PolicyEngine
from bordergate.privacy.budget import open_budget_store
from bordergate.profile import Profile, refuse_unreviewed
from bordergate.receipts import ReceiptSigner
from bordergate.releases.deployment_slice import SettingsFiles
from bordergate.residency.schema import Schema, load_schema, parse_schema
from bordergate.residency.stores import open_record_store
from bordergate.residency.vault import Vault
from bordergate.roster.publication import authority_for, create_development_authority_key
from bordergate.tlog.checkpoint import Checkpoint
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.credentials import read_credential
from bordergate.tlog.logdir import make_dirs, read_signer, write_key, write_public
from bordergate.tlog.note import Ed25519Verifier, Signer, note_signatures
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage import CHECKPOINT_PATH, LogStorage, open_storage

__all__ = [
    "open_gateway",
    "provision",
    "read_pseudonym_secret",
    "receipt_signer",
    "serve_gateway",
    "start_gateway",
]

log = logging.getLogger(__name__)



def _verifier(j: Jurisdiction, limits: Limits,
              checked: tuple[bytes, ...] | None = None) -> TokenVerifier:
    """The token verifier of ``j``: from the issuer key bytes the release self-check
    digested (``checked``), else (no self-check: embedding, tests) from the files."""
    keys = []
    for i, path in enumerate(j.issuer.public_key_files):
        try:
            data = checked[i] if checked is not None else path.read_bytes()
            text = data.decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read issuer key {path}: {exc.strerror}",
                              code="issuer_key_unreadable") from exc
        except UnicodeDecodeError:
            raise ConfigError(f"issuer key {path} is not UTF-8 text",
                              code="issuer_key_invalid") from None
        keys.append(parse_public_key(text))
    return TokenVerifier.for_keys(issuer=j.issuer.issuer, audience=j.issuer.audience,
                                  keys=keys, leeway=float(limits.token_leeway),
                                  max_lifetime=float(limits.max_token_lifetime))


def _key_service_client(j: Jurisdiction) -> KeyServiceClient | None:
    """The client of ``j``'s key service, with the gateway's credential to it, or None.

    Raises:
        ConfigError: the credential file is unreadable or malformed.
    """
    ks = j.key_service
    if ks is None:
        return None
    credential = read_credential(ks.credential_file)
    return KeyServiceClient(ks.url, credential.token, cache_seconds=float(ks.cache_seconds))


def refuse_local_keks(profile: Profile, j: Jurisdiction) -> None:
    """Outside development and the demo, a gateway holds no KEK: the jurisdiction
    names its key service (issue 13).

    Raises:
        ConfigError: ``key_service_required`` under the production profile.
    """
    if profile is Profile.PRODUCTION and j.key_service is None:
        raise ConfigError(
            f"jurisdictions.{j.code}.key_service: under the production profile the KEKs "
            "are held by the jurisdiction's key service (bordergate keys serve), never by "
            "a gateway", code="key_service_required")


def _log_appender(j: Jurisdiction, storage: LogStorage) -> LogAppender:
    """The client of the log operator's sequencer service, or (development) the
    in-process sequencer.

    With ``log.sequencer`` the gateway holds only its append credential
    (``log.sequencer.credential_file``) and every entry names it
    (:mod:`bordergate.appender`); several workers share one log, each with its
    own credential (docs/scale-out.md), and only read the log's storage.
    """
    if j.log.sequencer is not None:
        from bordergate.log_access import remote_appender
        return remote_appender(j, j.log.sequencer.credential_file)
    sequencer = Sequencer(storage, log_signer(j), witnessing=log_witnessing(j.log),
                          state_keys=state_keys)
    sequencer.start()
    return SequencerLog(sequencer)


def receipt_signer(deployment: Deployment, code: str) -> ReceiptSigner:
    """The gateway's receipt signer (docs/gateway.md, "Receipts"), checked against the
    keys the deployment file registers for the jurisdiction.

    Raises:
        ConfigError: ``receipt_key_unreadable``, ``receipt_key_invalid``, or
            ``receipt_key_unregistered`` (the key is not one of
            ``receipts.public_keys``; under the production profile that list is
            required).
    """
    j = deployment.jurisdiction(code)
    path = j.receipt_key_file()
    try:
        signer = read_signer(path)
    except ConfigError as exc:
        kind = "unreadable" if exc.code == "key_file_unreadable" else "invalid"
        raise ConfigError(f"receipt key of {code}: {exc} (`bordergate gateway init` creates "
                          "it)", code=f"receipt_key_{kind}") from None
    registered = j.receipts.public_keys if j.receipts is not None else ()
    vkey = signer.verifier().key_string
    if registered and vkey not in registered:
        raise ConfigError(f"the receipt key in {path} ({vkey}) is not one of "
                          f"jurisdictions.{code}.receipts.public_keys",
                          code="receipt_key_unregistered")
    if not registered:
        log.warning("gateway %s signs receipts with %s, which the deployment file does not "
                    "register (receipts.public_keys; %s profile)", code, vkey,
                    deployment.profile.value)
    return ReceiptSigner(signer, code)


class _ApprovalEntries:
    """The log's ``approval-*`` entries, gathered by the start-up read of the log
    (:func:`~bordergate.gateway.log_follower.follow`, with the worker's other states).
    Only entries whose canonical encoding names an ``approval-`` type are parsed."""

    def __init__(self) -> None:
        self.next_index = 0
        self.found: list[tuple[int, Entry]] = []

    def apply(self, first_index: int, entries: Iterable[bytes]) -> None:
        """Gather the approval entries among ``entries`` (from ``first_index`` on).

        An entry that names an approval type but does not parse is named in a
        warning and passed over: no gateway writes one, and an entry any append
        credential can write must not stop every later start of every worker (the
        log is append-only; the auditor reports it as ``entry_malformed``).
        """
        index = first_index - 1
        for index, raw in enumerate(entries, first_index):
            if _APPROVAL_MARK in raw:
                try:
                    entry = parse_entry(raw)
                except VerificationError as exc:
                    log.warning("log entry %d names an approval type but does not parse "
                                "[%s]: %s; passed over", index, exc.code, exc)
                    continue
                if entry.type.startswith("approval-"):
                    self.found.append((index, entry))
        self.next_index = max(self.next_index, index + 1)


def _reconcile_approvals(approvals: ApprovalStore, replayed: _ApprovalEntries, *,
                         origin: str, approver_keys: ApproverKeys) -> None:
    """Replay the published log's ``approval-*`` entries into the approvals table,
    each change checked as the gateway checked it (signed statements against the
    roster in force: ``approvals.rebuild_approvals``).

    The sequencer has published what its recovery found, so the checkpoint
    covers every entry written before a crash.
    """
    def refused(index: int, approval: str, error: BordergateError) -> None:
        log.warning("approval %s: the change logged at index %d does not replay [%s]: %s; "
                    "not applied", approval, index, error.code, error)
    repaired = reconcile_approvals(approvals, rebuild_approvals(
        replayed.found, origin=origin, approver_keys=approver_keys, on_refused=refused))
    if repaired:
        log.warning("approvals table behind the log (an earlier crash?): repaired %s",
                    ", ".join(repaired))


_APPROVAL_MARK = b'"type":"approval-'


def open_gateway(deployment: Deployment, code: str, *,
                 bundle: PolicyBundle | None = None,
                 log_storage: LogStorage | None = None,
                 settings_files: SettingsFiles | None = None) -> Gateway:
    """Open everything a jurisdiction's gateway needs and start its sequencer.

    ``bundle`` and ``log_storage`` replace the configured ones (embedding, and
    tests that wrap the real storage to inject faults); an empty
    ``log_storage`` gets a new log.  ``settings_files`` are the schema and
    issuer key bytes the release self-check digested: the gateway loads those,
    never a second read of the files (which could give other bytes).

    Raises:
        ConfigError: a file or key is missing or wrong (the message says which).
        Unavailable: the store, key backend or log cannot be reached.
        Conflict: another process already writes this jurisdiction's log.
    """
    j = deployment.jurisdiction(code)
    schema = load_schema(deployment.schema_path) if settings_files is None else \
        parse_schema(settings_files.schema, source=str(deployment.schema_path))
    engine = PolicyEngine(bundle or PolicyBundle.load(deployment.policy_bundle_path))
    verifier = _verifier(j, deployment.limits,
                         None if settings_files is None else settings_files.issuer_keys)
    pseudonyms = Pseudonymizer(read_pseudonym_secret(j.log.pseudonym_secret_file))
    refuse_gateway_log_key(deployment.profile, j)
    # the log key the release self-check read its release entries under (and the
    # slice names), not a second read of the file
    log_vkey = log_verifier(j) if settings_files is None else \
        Ed25519Verifier.from_key_string(settings_files.log_key)
    store = open_record_store(j.store, jurisdiction=code)
    key_service = _key_service_client(j)
    # with a key service the gateway never opens the KEK backend (issue 13): every
    # local KEK operation fails closed, and keys come only against logged entries
    backend = KeksHeldElsewhere(code) if key_service is not None \
        else open_key_backend(j.keys, jurisdiction=code)
    vault = Vault(schema, store, KeyRing(backend, store))
    approvals = open_approval_store(j.store)
    budgets = open_budget_store(j.store)
    storage = open_storage(j.log.storage) if log_storage is None else log_storage
    if log_storage is not None and log_storage.read(CHECKPOINT_PATH) is None:
        create_log(log_storage, log_signer(j))
    appender = _log_appender(j, storage)
    try:
        revocations = TokenRevocations()
        reader = LogClient(StorageSource(storage), log_vkey)
        authority = authority_for(j)
        rosters = None if authority is None else RosterInForce(
            authority, storage)  # type: ignore[arg-type]  # every backend has read_object
        followed: list[FollowedState] = [s for s in (revocations, rosters) if s is not None]
        replayed = _ApprovalEntries()
        follow([replayed, *followed], reader)  # the whole log, once, before serving
        _reconcile_approvals(approvals, replayed, origin=j.log.origin, approver_keys=(
            rosters if rosters is not None else MappingApproverKeys({})))
    except BaseException:
        appender.close()
        raise
    receipts = receipt_signer(deployment, code)
    gateway = Gateway(
        jurisdiction=code, schema=schema, engine=engine, verifier=verifier, vault=vault,
        receipts=receipts,
        log=appender, log_storage=storage, log_verifier=log_vkey,
        pseudonyms=pseudonyms, approvals=approvals, peers=deployment.gateway_urls(),
        subject_ledger=open_subject_ledger(j.store),
        limits=deployment.limits, privacy=deployment.privacy,
        budgets=budgets, revocations=revocations, roster=rosters, key_service=key_service,
        bulk=_bulk_counters(deployment, code, schema, j.store))
    gateway.witness_cosigners = tuple(witness_cosigners(j))
    location = parse_store_location(j.store)
    if location.kind == "sqlite":  # the dashboard's state file, beside the records
        gateway.dashboard_state_path = str(Path(location.target).with_name(
            f"dashboard-{code}.json"))
    # every worker applies the log's token-revoke entries (gateway.revocations) and
    # roster versions (gateway.roster_in_force) as they are published
    gateway.log_follower = LogFollower(followed, reader)
    gateway.log_follower.start()
    return gateway


def _bulk_counters(deployment: Deployment, code: str, schema: Schema,
                   store: str) -> BulkCounters | None:
    """The worker's bulk counters (28 CFR 202.205), or None where none are kept
    (disabled, or the jurisdiction's subjects are not U.S. persons)."""
    settings = deployment.bulk
    if not settings.enabled or code not in settings.jurisdictions:
        return None
    return BulkCounters(jurisdiction=code, settings=settings,
                        categories=FieldCategories.from_schema(schema),
                        ledger=open_bulk_ledger(store),
                        countries=deployment.countries_of_concern)


async def start_gateway(deployment: Deployment, code: str, *, unreviewed: bool,
                        log_storage: LogStorage | None = None) -> Gateway:
    """Open the gateway and log its ``gateway-start`` entry.

    Args:
        deployment: the deployment.
        code: the jurisdiction to serve.
        unreviewed: started with ``--unreviewed`` (development; logged, flagged by audits).
        log_storage: an opened log storage to use instead of the configured one
            (as :func:`open_gateway`).

    Returns:
        The started gateway; the caller closes it.

    Raises:
        ConfigError: ``unreviewed_refused`` for ``unreviewed`` under the
            production profile; ``gateway_holds_log_key`` for a log key named
            outside the development profile; and as :func:`open_gateway`.
        Unavailable, Conflict: as :func:`open_gateway`, or the
            ``gateway-start`` entry could not be logged.
    """
    if unreviewed:
        refuse_unreviewed(deployment.profile)
    refuse_gateway_log_key(deployment.profile, deployment.jurisdiction(code))
    refuse_local_keks(deployment.profile, deployment.jurisdiction(code))
    # -- releases self-check (issue 6, promise 6; see bordergate/releases/selfcheck.py) --
    # Refuses (ConfigError release_*_not_approved) unless an approved release in this
    # log names the installed package digest and the policy bundle digest; the engine
    # is built once from the exact bytes checked (no hot reload); --unreviewed starts
    # anyway and the gateway-start entry records reviewed=false.  The release must also
    # record this jurisdiction's deployment settings and, when started through
    # runtime_boot, the attested runtime (issue 13; production requires it).
    from bordergate.releases.selfcheck import start_check
    check = await asyncio.to_thread(start_check, deployment, code, unreviewed=unreviewed)
    release, unreviewed = check.release_id, not check.reviewed
    gateway = await asyncio.to_thread(open_gateway, deployment, code,
                                      bundle=check.policy_bundle(), log_storage=log_storage,
                                      settings_files=check.settings_files)
    # -- end of the releases self-check --
    try:
        await gateway.announce_start(unreviewed=unreviewed, release=release,
                                     runtime=check.runtime_digest,
                                     deployment=check.deployment_digest)
    except BaseException:
        gateway.close()
        raise
    return gateway


async def serve_gateway(deployment: Deployment, code: str, *, unreviewed: bool,
                        http: str = "auto", log_storage: LogStorage | None = None,
                        admin_listen: tuple[str, int] | None = None) -> None:
    """Serve one jurisdiction's gateway on its configured addresses until stopped.

    Two listeners: the public one (``listen``) and the admin one
    (``admin_listen``, loopback by default; ``admin_listen`` here overrides the
    deployment file) with the dashboard and ``/metrics`` (``gateway.admin``).
    While serving, a log that failed closed is recovered as soon as it takes
    durable writes again (``gateway.readiness.recover_while_serving``).

    If it cannot start (bundle unreadable, store, keys or log unavailable), it
    serves a refusing app answering 503 with the reason instead (fail closed),
    and no admin listener.  ``log_storage`` replaces the configured log storage
    (as :func:`open_gateway`).
    """
    from bordergate.gateway.admin import create_admin_app
    from bordergate.gateway.app import create_app, refusing_app
    from bordergate.gateway.readiness import recover_while_serving

    j = deployment.jurisdiction(code)
    gateway: Gateway | None = None
    app: Any
    admin: Any = None
    try:
        gateway = await start_gateway(deployment, code, unreviewed=unreviewed,
                                      log_storage=log_storage)
        # reads' receipt signatures off the event loop (gateway.signing)
        gateway.receipt_helper = SigningHelper(gateway.receipts.signer)
        gateway.receipt_helper.start()
        app = create_app(gateway)
        admin = create_admin_app(gateway, app)
    except BordergateError as exc:
        log.error("gateway %s refuses to serve: [%s] %s", code, exc.code, exc)
        app = refusing_app(exc.code, f"the gateway of {code} cannot serve: {exc}")
    servers = [_server(app, j.listen_host, j.listen_port, http)]
    if admin is not None:
        host, port = admin_listen or (j.admin_host, j.admin_port)
        servers.append(_server(admin, host, port, http))
    recovery = (asyncio.create_task(recover_while_serving(gateway))
                if gateway is not None else None)
    try:
        await _serve_together(servers)
    finally:
        if recovery is not None:
            recovery.cancel()
        if gateway is not None:
            if gateway.receipt_helper is not None:  # on its event loop (not thread-safe)
                gateway.receipt_helper.close()
                gateway.receipt_helper = None
            await asyncio.to_thread(gateway.close)


def _server(app: Any, host: str, port: int, http: str) -> Any:
    import uvicorn

    from bordergate.serving import server_config

    protocol: Any = http
    if http in ("auto", "httptools") and importlib.util.find_spec("httptools") is not None:
        from bordergate.gateway.one_write import OneWriteProtocol
        protocol = OneWriteProtocol  # uvicorn's httptools protocol, one write per answer
    return uvicorn.Server(server_config(app, host=host, port=port, http=protocol,
                                        access_log=False, lifespan="off"))


async def _serve_together(servers: list[Any]) -> None:
    """Run uvicorn servers until one stops (a signal, or a port it could not bind);
    then stop the others."""
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for s in servers:
            s.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


def provision(deployment: Deployment) -> list[str]:
    """Create what every jurisdiction needs and is missing: keys, logs, stores.

    Idempotent: existing files and logs are kept.  Returns one line per action.

    Raises:
        ConfigError, Unavailable: as the backends raise.
    """
    done: list[str] = []
    for code, j in deployment.jurisdictions.items():
        done += _provision_one(code, j, deployment.profile)
    return done


def _receipt_key_name(code: str, profile: Profile) -> str:
    """The receipt key's name: says when it is a demo or development key, so nobody
    takes such a receipt for a production gateway's."""
    suffix = "" if profile is Profile.PRODUCTION else f"-{profile.value}-only"
    return f"{code}.gateway-receipts{suffix}"


def _provision_kek(code: str, j: Jurisdiction) -> list[str]:
    """KEK version 1 and the store, unless the backend has a KEK already.  A store
    holding data keys whose backend has no KEK (a key file missing, another token)
    gets none: a new KEK would open none of them (``kek_missing_for_stored_keys``).

    Raises:
        ConfigError, Unavailable: as the store and backend raise.
    """
    if isinstance(j.keys, KeyFileSettings):
        make_dirs(j.keys.path.parent)
    store = open_record_store(j.store, jurisdiction=code)
    try:
        stored = store.data_key_counts()
    finally:
        store.close()
    if isinstance(j.keys, KeyFileSettings) and not j.keys.path.exists():
        refuse_new_kek(code, stored)  # before an empty key file is made
    backend = open_key_backend(j.keys, jurisdiction=code, create=True)
    try:
        if backend.versions():
            return []
        initialise(backend, stored=stored)
        return [f"{code}: KEK version 1 ({backend.kind})"]
    finally:
        backend.close()


def _provision_pseudonym_secret(code: str, j: Jurisdiction) -> list[str]:
    """The log's pseudonym secret, unless it exists.  A log that already holds
    entries gets none: its entries' pseudonyms were keyed by the missing secret, and
    a new one would cut every subject off from its past entries (its erasure and
    key-access proofs, the auditor's matching) without a word
    (``pseudonym_secret_missing``; found by the keys review).

    Raises:
        ConfigError: ``pseudonym_secret_missing``; as the log storage raises.
    """
    path = j.log.pseudonym_secret_file
    if path.exists():
        return []
    held = _logged_entries(j)
    if held:
        raise ConfigError(
            f"{code}: the pseudonym secret {path} is missing but the log {j.log.origin} "
            f"holds {'entries' if held < 0 else f'{held} entries'} keyed by it: a new secret "
            "would cut every subject off from its past entries; restore the file",
            code="pseudonym_secret_missing")
    write_key(path, secrets.token_hex(32))
    return [f"{code}: pseudonym secret {path}"]


def _logged_entries(j: Jurisdiction) -> int:
    """How many entries the log's stored checkpoint counts (0 for no log yet, -1 for
    a checkpoint that does not parse: it cannot say it is empty).  Read, not
    verified: this only decides whether a secret may be created."""
    location = parse_log_location(j.log.storage)
    if location.kind == "directory" and not Path(location.target).is_dir():
        return 0
    storage = open_storage(j.log.storage)
    try:
        note = storage.read(CHECKPOINT_PATH)
    finally:
        storage.close()
    if note is None:
        return 0
    try:
        return Checkpoint.parse(note_signatures(note)[0]).size
    except VerificationError:
        return -1


def _provision_one(code: str, j: Jurisdiction, profile: Profile) -> list[str]:
    done: list[str] = []
    receipt_key = j.receipt_key_file()
    make_dirs(receipt_key.parent)
    if not receipt_key.exists():
        signer = Signer.generate(_receipt_key_name(code, profile))
        write_key(receipt_key, signer.key_string)
        done.append(f"{code}: receipt key {receipt_key}; register it in the deployment "
                    f"file: jurisdictions.{code}.receipts.public_keys = "
                    f"[\"{signer.verifier().key_string}\"]")
    for path in (j.log.pseudonym_secret_file,
                 *j.issuer.public_key_files, j.issuer.private_key_file):
        if path is not None:
            make_dirs(path.parent)
    done += _provision_pseudonym_secret(code, j)
    done += provision_sequencer(j) + provision_key_service(j)
    location = parse_log_location(j.log.storage)
    if location.kind == "directory":
        make_dirs(Path(location.target))
    storage = open_storage(j.log.storage)
    try:
        if storage.read(CHECKPOINT_PATH) is None:
            key_file = j.sequencer.key_file if j.sequencer is not None else None
            create_log(storage, log_signer(j, key_file))
            done.append(f"{code}: log {j.log.origin} at {j.log.storage}")
    finally:
        storage.close()
    done += _provision_kek(code, j)
    open_approval_store(j.store).close()
    private = j.issuer.private_key_file
    if private is not None and not private.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        write_key(private, pem.decode("ascii").strip())
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        write_public(j.issuer.public_key_files[0], public.decode("ascii"))
        done.append(f"{code}: issuer key {private} (development only)")
    authority_key = j.roster.authority_key_file if j.roster is not None else None
    if authority_key is not None and not authority_key.exists():
        create_development_authority_key(authority_key, code)
        done.append(f"{code}: roster authority key {authority_key} (TEST-ONLY: development "
                    "and demo; a real identity authority keeps its key)")
    return done
