"""A jurisdiction's key service: the only process that holds its KEKs (issue 13, item 3).

``bordergate keys serve --config F -j X`` runs it (:mod:`bordergate.keys.serve_command`),
on loopback, over the jurisdiction's file or PKCS#11 backend
(:func:`bordergate.keys.backend.open_key_backend`).  Gateways configured with
``[jurisdictions.X.key_service]`` never open the backend: they keep the wrapped data
keys in their record store as before, and ask this service to unwrap one (or to
create a new subject's) with ``POST /v1/data-key``::

    {"operation": "read" | "write", "subject": SUBJECT-ID,
     "entry": base64(the justifying entry, as the log holds it),
     "promise": the log operator's signed promise of inclusion of that entry,
     "wrapped": {"key_id": hex, "kek_version": N, "wrapped": base64} | null}

or, instead of ``promise``, ``"proof": {"checkpoint": the signed checkpoint
note with its witness cosignatures, "index": N, "path": [base64 hash, ...]}``: the
entry's inclusion proof in a checkpoint cosigned by the log's witness quorum
(the key service's ``trusted`` witnesses; none trusted: refused).

``POST /v1/data-keys`` releases an export's keys in one request,
``{"operation": "export", "entry": the export-intent entry, "promise" (or
"proof"), "subjects": [{"subject": ID, "wrapped": {...}}, ...]}``, judged by
:func:`bordergate.keys.bulk.check_export_justification` and answered
``{"keys": [{"subject", "data_key", "key_id", "kek_version"}, ...]}``; with
``{"operation": "migrate", "entry": a migration batch's entry, "promise",
"records": [{"subject", "record"}, ...], "create": [ID, ...]}`` it creates the
data keys of a migration batch's new subjects (answered wrapped too).

Both are authenticated with the gateway's credential to this service (``Authorization:
Bearer ID.SECRET``, checked against a credential list as the sequencer service
checks append credentials).  The justification is judged by
:func:`bordergate.keys.justification.check_justification`; the wrapped key is
opened under AAD binding the jurisdiction, the subject and the KEK version, so a
justification for one subject never opens another's key.  ``write`` without
``wrapped`` creates the subject's data key under the current KEK version and
returns it wrapped too (the gateway stores it).

Before answering, the service appends one ``key-access`` entry per released key
to the jurisdiction's log, through the log operator, with its own append
credential (role ``key-service``): the index and leaf hash of the entry that
justified it, the subject's pseudonym and the operation.  Concurrent releases go
to the sequencer together (the log client batches them), and no key is answered
before its ``key-access`` entry is durable.  The auditor matches every
``key-access`` entry to its decision and checks the log kept the promise
(:mod:`bordergate.audit.rules.keyaccess`).

Refusals are problem documents with stable codes: ``unauthenticated`` (401),
``malformed_key_request`` (400), the ``key_justification_*`` codes (403),
``kek_version_not_found`` (404), ``decryption_failed`` (422),
``log_unavailable``/``key_backend_unavailable`` (503).

This module must never log or return key bytes except the one data key answered
to an authenticated, justified request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bordergate.entries import Pseudonymizer, encode_entry
from bordergate.errors import BordergateError, InvalidInput, VerificationError
from bordergate.keys.backend import KeyBackend
from bordergate.keys.bulk import (
    MAX_EXPORT_SUBJECTS,
    JustifiedBulk,
    check_export_justification,
    check_migration_justification,
)
from bordergate.keys.envelope import DATA_KEY_BYTES, data_key_aad
from bordergate.keys.justification import (
    CheckpointProof,
    JustificationRefused,
    JustifiedAccess,
    TrustedCheckpoints,
    check_justification,
)
from bordergate.subjects import SubjectId, require_home
from bordergate.tlog.credentials import CredentialList
from bordergate.tlog.note import Verifier

__all__ = ["MAX_KEY_REQUEST", "KeyService", "KeyServiceApp", "make_key_service_app"]

#: Bytes of a ``/v1/data-key`` request body (an entry is at most 64 KiB, base64 more).
MAX_KEY_REQUEST = 128 * 1024
#: Bytes of a ``/v1/data-keys`` (bulk) request body: the entry and, per subject, its id
#: and wrapped key (about 200 bytes each) for :data:`MAX_EXPORT_SUBJECTS` subjects.
MAX_BULK_REQUEST = 128 * 1024 + 256 * MAX_EXPORT_SUBJECTS
_STATUS = {"unauthenticated": 401, "malformed_key_request": 400,
           "kek_version_not_found": 404, "decryption_failed": 422}


class KeyService:
    """Unwraps and creates data keys of one jurisdiction against logged decisions."""

    def __init__(self, *, jurisdiction: str, backend: KeyBackend, pseudonyms: Pseudonymizer,
                 log_verifier: Verifier, record: Callable[[list[bytes]], Awaitable[int]],
                 window: float = 30.0, cache_seconds: float = 10.0,
                 sealed: Mapping[str, frozenset[str]] | None = None,
                 trusted: TrustedCheckpoints | None = None,
                 max_bulk: int = MAX_EXPORT_SUBJECTS,
                 clock: Callable[[], float] = time.time) -> None:
        """Bind the backend, the log's pseudonym secret and verifier key, and
        ``record``, which appends ``key-access`` entries durably (index of the first);
        ``sealed`` names each collection's sealed fields (an entry that released
        none justifies no key); ``trusted``, the witnesses whose checkpoints it
        accepts inclusion proofs in (None: promises only); ``max_bulk``, the most
        subjects one bulk (export) release may list.

        Raises:
            ValueError: the backend belongs to another jurisdiction.
        """
        if backend.jurisdiction != jurisdiction:
            raise ValueError("key backend of another jurisdiction")
        self.jurisdiction = jurisdiction
        self.backend = backend
        self.pseudonyms = pseudonyms
        self.log_verifier = log_verifier
        self.record = record
        self.window = window
        self.cache_seconds = cache_seconds
        self.sealed = sealed
        self.trusted = trusted
        self.max_bulk = max_bulk
        self.clock = clock

    async def release(self, request: dict[str, Any]) -> dict[str, Any]:
        """Judge one parsed request and answer the data key (see the module docstring).

        Raises:
            InvalidInput: ``malformed_key_request``.
            JustificationRefused: a ``key_justification_*`` code.
            NotFound, VerificationError: the wrapped key does not open.
            Unavailable: the backend or the log cannot be reached.
        """
        operation, subject, entry, promise, wrapped = _parse_request(request, self.jurisdiction)
        proof = _parse_proof(request.get("proof"))
        justified = check_justification(
            operation=operation, subject_pseudonym=self.pseudonyms.subject(str(subject)),
            entry=entry, promise=promise, verifier=self.log_verifier, now=self.clock(),
            window=self.window, sealed=self.sealed, proof=proof, trusted=self.trusted)
        if wrapped is None and operation == "read":
            raise InvalidInput("a read sends the subject's wrapped data key",
                               code="malformed_key_request")
        if self.backend.inline_unwraps:  # one AES-GCM open: cheaper than a thread hop
            answer = self._open_or_create(subject, wrapped)
        else:
            answer = await asyncio.to_thread(self._open_or_create, subject, wrapped)
        index = await self.record([self._key_access(justified, "create" if wrapped is None
                                                    else operation)])
        answer.update({"key_access": index, "lifetime": self.cache_seconds})
        return answer

    async def release_export(self, request: dict[str, Any]) -> dict[str, Any]:
        """Judge one parsed bulk request (``POST /v1/data-keys``) and answer the data
        keys of exactly the subjects its ``export-intent`` entry commits to
        (:mod:`bordergate.keys.bulk`), once their ``key-access`` entries are durable.

        Raises:
            InvalidInput: ``malformed_key_request``.
            JustificationRefused: a ``key_justification_*`` code or ``key_bulk_too_large``.
            NotFound, VerificationError: a wrapped key does not open.
            Unavailable: the backend or the log cannot be reached.
        """
        entry, promise, listed = _parse_bulk_request(request, self.jurisdiction, self.max_bulk)
        proof = _parse_proof(request.get("proof"))
        pseudonyms = [self.pseudonyms.subject(str(subject)) for subject, _ in listed]
        justified = check_export_justification(
            pseudonyms=pseudonyms, entry=entry, promise=promise, verifier=self.log_verifier,
            now=self.clock(), window=self.window, maximum=self.max_bulk, sealed=self.sealed,
            proof=proof, trusted=self.trusted)
        keys = await asyncio.to_thread(
            lambda: [{"subject": str(subject), **self._open_or_create(subject, wrapped)}
                     for subject, wrapped in listed])
        # one append (one sequencer batch): the log holds all of them or none, so
        # the auditor never sees part of a bulk release (at most about 3 MB)
        first = await self.record([self._bulk_access(justified, p) for p in pseudonyms]) \
            if pseudonyms else None
        return {"keys": keys, "key_access": first, "lifetime": 0}

    async def create_for_migration(self, request: dict[str, Any]) -> dict[str, Any]:
        """Judge a migration batch's request (``POST /v1/data-keys``, operation
        ``migrate``) and create a data key for each subject of ``create``, once the
        ``key-access`` entries naming the batch's ``migration`` entry are durable
        (:func:`bordergate.keys.bulk.check_migration_justification`).

        Raises:
            InvalidInput: ``malformed_key_request``.
            JustificationRefused: a ``key_justification_*`` code or ``key_bulk_too_large``;
                ``key_justification_subject_mismatch`` for a subject to create that
                no listed record belongs to.
            Unavailable: the backend or the log cannot be reached.
        """
        entry, promise, pairs, create = _parse_migration_request(
            request, self.jurisdiction, self.max_bulk)
        proof = _parse_proof(request.get("proof"))
        justified = check_migration_justification(
            collection_records=[record for _, record in pairs], subjects=len(create),
            entry=entry, promise=promise, verifier=self.log_verifier, now=self.clock(),
            window=self.window, record_pseudonym=self.pseudonyms.record,
            maximum=self.max_bulk, proof=proof, trusted=self.trusted)
        owners = {str(subject) for subject, _ in pairs}
        if not {str(s) for s in create} <= owners:
            raise JustificationRefused("a key to create is of a subject no listed record "
                                       "belongs to",
                                       code="key_justification_subject_mismatch")
        keys = await asyncio.to_thread(
            lambda: [{"subject": str(subject), **self._open_or_create(subject, None)}
                     for subject in create])
        first = await self.record([
            self._bulk_access(justified, self.pseudonyms.subject(str(s)), "migrate")
            for s in create]) if create else None
        return {"keys": keys, "key_access": first, "lifetime": 0}

    def _bulk_access(self, justified: JustifiedBulk, pseudonym: str,
                     operation: str = "export") -> bytes:
        return encode_entry("key-access", self.clock(), {
            "jurisdiction": self.jurisdiction, "operation": operation, "subject": pseudonym,
            "justified": justified.index, "leaf": _b64(justified.leaf_hash),
            "by": "key-service"})

    def _open_or_create(self, subject: SubjectId,
                        wrapped: tuple[bytes, int, bytes] | None) -> dict[str, Any]:
        if wrapped is None:
            version = self.backend.versions()[-1] if self.backend.versions() else None
            if version is None:
                raise InvalidInput(f"no KEK for {self.jurisdiction} (run keys init)",
                                   code="keys_not_initialised")
            data_key, key_id = os.urandom(DATA_KEY_BYTES), os.urandom(16)
            sealed = self.backend.wrap(
                data_key, data_key_aad(self.jurisdiction, str(subject), version), version)
            return {"data_key": _b64(data_key), "key_id": key_id.hex(), "kek_version": version,
                    "wrapped": _b64(sealed)}
        key_id, version, sealed = wrapped
        data_key = self.backend.unwrap(
            sealed, data_key_aad(self.jurisdiction, str(subject), version), version)
        if len(data_key) != DATA_KEY_BYTES:
            raise VerificationError("unwrapped data key has the wrong size",
                                    code="decryption_failed")
        return {"data_key": _b64(data_key), "key_id": key_id.hex(), "kek_version": version}

    def _key_access(self, justified: JustifiedAccess, operation: str) -> bytes:
        return encode_entry("key-access", self.clock(), {
            "jurisdiction": self.jurisdiction, "operation": operation,
            "subject": justified.subject, "justified": justified.index,
            "leaf": _b64(justified.leaf_hash), "by": "key-service"})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be base64 text", code="malformed_key_request")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not base64", code="malformed_key_request") from None


def _parse_request(body: dict[str, Any], jurisdiction: str
                   ) -> tuple[str, SubjectId, bytes | None, bytes | None,
                              tuple[bytes, int, bytes] | None]:
    """The members of a ``/v1/data-key`` request, checked.

    Raises:
        InvalidInput: ``malformed_key_request``; ``WrongJurisdiction`` for a subject
            homed elsewhere.
    """
    unknown = set(body) - {"operation", "subject", "entry", "promise", "proof", "wrapped"}
    operation = body.get("operation")
    if unknown or operation not in ("read", "write") or not isinstance(body.get("subject"),
                                                                        str):
        raise InvalidInput("members: operation (read|write), subject, entry, promise or "
                           "proof, wrapped",
                           code="malformed_key_request")
    try:
        subject = require_home(SubjectId.parse(body["subject"]), jurisdiction)
    except InvalidInput:
        raise InvalidInput("subject is not a subject id", code="malformed_key_request") from None
    entry = None if body.get("entry") is None else _unb64(body["entry"], "entry")
    promise = body.get("promise")
    if promise is not None and not isinstance(promise, str):
        raise InvalidInput("promise must be text", code="malformed_key_request")
    raw = body.get("wrapped")
    wrapped = None
    if raw is not None:
        if not isinstance(raw, dict) or set(raw) != {"key_id", "kek_version", "wrapped"} or \
                type(raw["kek_version"]) is not int or not isinstance(raw["key_id"], str):
            raise InvalidInput("wrapped: {key_id, kek_version, wrapped}",
                               code="malformed_key_request")
        try:
            key_id = bytes.fromhex(raw["key_id"])
        except ValueError:
            raise InvalidInput("wrapped.key_id is not hex",
                               code="malformed_key_request") from None
        wrapped = (key_id, raw["kek_version"], _unb64(raw["wrapped"], "wrapped.wrapped"))
    return (str(operation), subject, entry,
            None if promise is None else promise.encode("utf-8"), wrapped)


def _parse_wrapped(raw: object) -> tuple[bytes, int, bytes]:
    """A ``{key_id, kek_version, wrapped}`` member, checked for form.

    Raises:
        InvalidInput: ``malformed_key_request``.
    """
    if not isinstance(raw, dict) or set(raw) != {"key_id", "kek_version", "wrapped"} or \
            type(raw["kek_version"]) is not int or not isinstance(raw["key_id"], str):
        raise InvalidInput("wrapped: {key_id, kek_version, wrapped}",
                           code="malformed_key_request")
    try:
        key_id = bytes.fromhex(raw["key_id"])
    except ValueError:
        raise InvalidInput("wrapped.key_id is not hex", code="malformed_key_request") from None
    return key_id, raw["kek_version"], _unb64(raw["wrapped"], "wrapped.wrapped")


def _parse_bulk_request(body: dict[str, Any], jurisdiction: str, maximum: int
                        ) -> tuple[bytes | None, bytes | None,
                                   list[tuple[SubjectId, tuple[bytes, int, bytes]]]]:
    """The members of a ``/v1/data-keys`` request: ``operation`` (``export``),
    ``entry``, ``promise`` or ``proof``, and ``subjects``, a list of
    ``{subject, wrapped}``; at most ``maximum`` are parsed (more: the judgement
    refuses ``key_bulk_too_large``, so the list is cut one past it).

    Raises:
        InvalidInput: ``malformed_key_request``.
    """
    unknown = set(body) - {"operation", "entry", "promise", "proof", "subjects"}
    raw = body.get("subjects")
    if unknown or body.get("operation") != "export" or not isinstance(raw, list):
        raise InvalidInput("members: operation (export), entry, promise or proof, subjects",
                           code="malformed_key_request")
    listed: list[tuple[SubjectId, tuple[bytes, int, bytes]]] = []
    for item in raw[: maximum + 1]:
        if not isinstance(item, dict) or set(item) != {"subject", "wrapped"} or \
                not isinstance(item["subject"], str):
            raise InvalidInput("subjects: [{subject, wrapped}]", code="malformed_key_request")
        try:
            subject = require_home(SubjectId.parse(item["subject"]), jurisdiction)
        except InvalidInput:
            raise InvalidInput("subject is not a subject id",
                               code="malformed_key_request") from None
        listed.append((subject, _parse_wrapped(item["wrapped"])))
    entry = None if body.get("entry") is None else _unb64(body["entry"], "entry")
    promise = body.get("promise")
    if promise is not None and not isinstance(promise, str):
        raise InvalidInput("promise must be text", code="malformed_key_request")
    return entry, None if promise is None else promise.encode("utf-8"), listed


def _parse_migration_request(body: dict[str, Any], jurisdiction: str, maximum: int
                             ) -> tuple[bytes | None, bytes | None,
                                        list[tuple[SubjectId, str]], list[SubjectId]]:
    """The members of a ``migrate`` request: ``entry``, ``promise`` or ``proof``,
    ``records`` (``[{subject, record}]``: every record of the batch's table, with
    its owner) and ``create`` (the subject ids to create keys for, each once); at
    most ``maximum`` + 1 records are parsed.

    Raises:
        InvalidInput: ``malformed_key_request``.
    """
    unknown = set(body) - {"operation", "entry", "promise", "proof", "records", "create"}
    raw, create = body.get("records"), body.get("create")
    if unknown or body.get("operation") != "migrate" or not isinstance(raw, list) or \
            not isinstance(create, list) or len(set(map(str, create))) != len(create):
        raise InvalidInput("members: operation (migrate), entry, promise or proof, records, "
                           "create (each subject once)", code="malformed_key_request")

    def subject_of(value: object) -> SubjectId:
        try:
            return require_home(SubjectId.parse(str(value)), jurisdiction)
        except InvalidInput:
            raise InvalidInput("subject is not a subject id",
                               code="malformed_key_request") from None
    pairs: list[tuple[SubjectId, str]] = []
    for item in raw[: maximum + 1]:
        if not isinstance(item, dict) or set(item) != {"subject", "record"} or \
                not isinstance(item["subject"], str) or not isinstance(item["record"], str):
            raise InvalidInput("records: [{subject, record}]", code="malformed_key_request")
        pairs.append((subject_of(item["subject"]), item["record"]))
    subjects = [subject_of(s) for s in create[: maximum + 1] if isinstance(s, str)]
    if len(subjects) != len(create[: maximum + 1]):
        raise InvalidInput("create: [subject id]", code="malformed_key_request")
    entry = None if body.get("entry") is None else _unb64(body["entry"], "entry")
    promise = body.get("promise")
    if promise is not None and not isinstance(promise, str):
        raise InvalidInput("promise must be text", code="malformed_key_request")
    return entry, None if promise is None else promise.encode("utf-8"), pairs, subjects


def _parse_proof(raw: object) -> CheckpointProof | None:
    """A request's ``proof`` member, checked for form (not yet verified).

    Raises:
        InvalidInput: ``malformed_key_request``.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"checkpoint", "index", "path"} or \
            not isinstance(raw["checkpoint"], str) or type(raw["index"]) is not int or \
            not 0 <= raw["index"] < 2**63 or not isinstance(raw["path"], list) or \
            len(raw["path"]) > 64:
        raise InvalidInput("proof: {checkpoint, index, path (at most 64 hashes)}",
                           code="malformed_key_request")
    path = tuple(_unb64(h, "proof.path") for h in raw["path"])
    return CheckpointProof(raw["checkpoint"].encode("utf-8"), raw["index"], path)


async def _read_body(receive: Callable[[], Awaitable[dict[str, Any]]],
                     limit: int = MAX_KEY_REQUEST) -> bytes | None:
    """The request body, or None past ``limit`` bytes (or cut short)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _unicode_text(parsed: object) -> bool:
    """Whether every string of a parsed body is Unicode text: JSON may escape a lone
    surrogate (``"\\ud800"``), which no member this service reads may hold (found by
    a review: each such member failed with a traceback and a 500)."""
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _problem(code: str, detail: str) -> dict[str, Any]:
    return {"code": code, "detail": detail}


def _status(exc: BordergateError) -> int:
    from bordergate.errors import PolicyDenied, Unavailable
    if isinstance(exc, PolicyDenied):
        return 403
    if isinstance(exc, Unavailable):
        return 503
    return _STATUS.get(exc.code, 400)


def make_key_service_app(service: KeyService, credentials: CredentialList) -> KeyServiceApp:
    """The key service's HTTP app: ``POST /v1/data-key``, ``POST /v1/data-keys`` (an
    export's bulk release) and ``GET /healthz``."""
    return KeyServiceApp(service, credentials)


_Scope = dict[str, Any]
_Receive = Callable[[], Awaitable[dict[str, Any]]]
_Send = Callable[[dict[str, Any]], Awaitable[None]]


class KeyServiceApp:
    """The key service's ASGI app, written directly (no router or middleware: two
    routes, each request one JSON body in and one out; about a third of
    Starlette's cost per request on the key service's hot path)."""

    def __init__(self, service: KeyService, credentials: CredentialList) -> None:
        self.service = service
        self.credentials = credentials

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"])
        if route == ("POST", "/v1/data-key"):
            status, answer = await self._data_key(scope, receive, bulk=False)
        elif route == ("POST", "/v1/data-keys"):
            status, answer = await self._data_key(scope, receive, bulk=True)
        elif route == ("GET", "/healthz"):
            status, answer = await self._healthz()
        elif scope["path"] in ("/v1/data-key", "/v1/data-keys", "/healthz"):
            status, answer = 405, {"code": "method_not_allowed", "detail": "wrong method"}
        else:
            status, answer = 404, {"code": "not_found", "detail": "no such path"}
        body = json.dumps(answer, separators=(",", ":")).encode()
        kind = b"application/json" if status == 200 else b"application/problem+json"
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", kind), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})

    async def _data_key(self, scope: _Scope, receive: _Receive, *,  # noqa: PLR0911 (one per refusal)
                        bulk: bool) -> tuple[int, dict[str, Any]]:
        authorization = next((v.decode("latin-1") for k, v in scope["headers"]
                              if k == b"authorization"), "")
        if self.credentials.authenticate(authorization) is None:
            return 401, _problem("unauthenticated", "bad or missing key service credential")
        body = await _read_body(receive, MAX_BULK_REQUEST if bulk else MAX_KEY_REQUEST)
        if body is None:
            return 413, _problem("malformed_key_request", "request body too large")
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return 400, _problem("malformed_key_request", "the body is not JSON")
        if not isinstance(parsed, dict):
            return 400, _problem("malformed_key_request", "the body is not a JSON object")
        if b"\\u" in body and not _unicode_text(parsed):
            return 400, _problem("malformed_key_request",
                                 "the body holds a string that is not Unicode text")
        try:
            if bulk and parsed.get("operation") == "migrate":
                return 200, await self.service.create_for_migration(parsed)
            if bulk:
                return 200, await self.service.release_export(parsed)
            return 200, await self.service.release(parsed)
        except BordergateError as exc:
            return _status(exc), _problem(exc.code, str(exc))

    async def _healthz(self) -> tuple[int, dict[str, Any]]:
        try:
            versions = await asyncio.to_thread(self.service.backend.versions)
        except BordergateError as exc:
            return 503, _problem(exc.code, str(exc))
        return 200, {"jurisdiction": self.service.jurisdiction,
                     "kek_version": versions[-1] if versions else None}
