"""Who appended an entry, attested by the log operator (issue 12, item 2).

Every entry sent to a log's sequencer service carries a top-level member
``"appender": ID`` naming the append credential that sends it
(:mod:`bordergate.tlog.credentials`).  The appender writes the member
(:func:`stamp`, :class:`AttributedLog`); the sequencer service, which alone
holds the log key, refuses an entry whose member is missing or names another
credential than the one that authenticated the request
(:func:`~bordergate.tlog.credentials.require_appender`, re-exported here:
``appender_missing``, ``appender_mismatch``; it reads that one member and no
other part of an entry, so it lives beside the credentials in the tlog room).  So an
entry in a log written through the service states which credential the log
operator accepted it from, and a gateway cannot write as the release tool or
the key custodian.  The auditor checks the member against the appenders it
expects (``bordergate.audit.rules.appenders``).

A credential listed with a role (``bordergate.tlog.credentials``) may append
only the entry types of :data:`ROLE_TYPES` (:func:`entry_check`, which the log
operator's sequencer service runs on every entry, and the auditor's
``appender_not_allowed`` after the fact): the key custodian's key service
cannot write a roster version or an approval, the release tooling a token
revocation, a gateway a release review.

The member is outside the entry vocabulary of :mod:`bordergate.entries`
(every type may carry it; the version ``v`` is unchanged), so this module adds
it to encoded entries without knowing their types.  This module must never do
I/O.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from bordergate.entries import (
    APPROVAL_CHANGE_TYPES,
    DECISION_ACTIONS,
    canonical_json,
    canonical_tail,
)
from bordergate.errors import VerificationError
from bordergate.tlog.checkpoint import SignedCheckpoint
from bordergate.tlog.credentials import (
    APPENDER,
    CredentialList,
    claimed_appender,
    require_appender,
)

__all__ = ["APPENDER", "ROLE_TYPES", "AttributedLog", "claimed_appender", "entry_check",
           "logged_form", "require_appender", "require_role", "stamp"]

#: The entry types each appender role may write.  A gateway writes its decisions
#: (an export's intent before its keys), approvals, starts and key events, and the
#: token revocations a custodian principal asks it for (``POST /v1/tokens/revoke``).
ROLE_TYPES: Mapping[str, frozenset[str]] = MappingProxyType({
    "gateway": frozenset({*DECISION_ACTIONS, *APPROVAL_CHANGE_TYPES, "approval-request",
                          "approval-refused", "gateway-start", "key-event", "bulk-threshold",
                          "export-intent", "token-revoke"}),
    "release": frozenset({"release", "release-review"}),
    "custodian": frozenset({"key-event", "token-revoke", "roster", "migration",
                            "legacy-deletion"}),
    # the key service (``bordergate keys serve``): each data key it released
    "key-service": frozenset({"key-access"}),
})

_APPENDER_KEY = APPENDER.encode()


def require_role(role: str, entry: bytes) -> None:
    """The sequencer service's role check: ``entry`` is of a type ``role`` may write.

    For a canonical entry (no escape) the type is read from the entry's last
    bytes; any other entry is parsed, and its top-level ``type`` decides.

    Raises:
        VerificationError: ``appender_role_refused`` (a type the role may not
            write), ``appender_role_unknown``, ``appender_malformed`` (not JSON).
    """
    allowed = ROLE_TYPES.get(role)
    if allowed is None:
        raise VerificationError(f"unknown appender role {role[:40]!r}",
                                code="appender_role_unknown")
    if b"\\" not in entry:  # no key spelled with an escape: the tail names the type
        tail = canonical_tail(entry)
        if tail is not None and tail[1] in allowed:
            return
    try:
        body = json.loads(entry)
    except (ValueError, RecursionError):
        raise VerificationError("entry is not JSON", code="appender_malformed") from None
    kind = body.get("type") if isinstance(body, dict) else None
    if isinstance(kind, str) and kind in allowed:
        return
    shown = kind[:40] if isinstance(kind, str) else kind
    raise VerificationError(f"a {role} credential may not append a {shown!r} entry",
                            code="appender_role_refused")


def entry_check(credentials: CredentialList) -> Callable[[str, bytes], None]:
    """The sequencer service's check of each entry sent with a credential of
    ``credentials``: it names that credential (:func:`require_appender`) and, for a
    credential listed with a role, is of a type the role may write (:func:`require_role`).

    Raises:
        ConfigError: never; a role the list names that is not one of
            :data:`ROLE_TYPES` refuses every entry of its credential.
    """
    def check(credential_id: str, entry: bytes) -> None:
        require_appender(credential_id, entry)
        role = credentials.role(credential_id)
        if role is not None:
            require_role(role, entry)
    return check


@functools.lru_cache(maxsize=64)
def _member(appender_id: str) -> bytes:
    """``{"appender":ID,`` (a process stamps with one or two credentials, per entry)."""
    return b'{"appender":' + json.dumps(appender_id).encode() + b","


def stamp(entry: bytes, appender_id: str) -> bytes:
    """The canonical entry ``entry`` with ``"appender": appender_id`` added.

    Raises:
        ValueError: ``entry`` is not a canonical JSON object or names an
            appender already (programmer misuse: the caller encoded it).
    """
    # canonical keys are sorted (by code point, which UTF-8 bytes keep): when the
    # first key sorts after "appender", so does every key, and the member goes
    # first without a parse (a decision entry is kilobytes, and its first key,
    # "approval", does); a key with an escape takes the parse
    end = entry.find(b'"', 2)
    if entry[:2] == b'{"' and end > 2 and entry[end + 1:end + 2] == b":" \
            and b"\\" not in entry[2:end] and entry[2:end] > _APPENDER_KEY:
        return _member(appender_id) + entry[1:]
    body = json.loads(entry)
    if not isinstance(body, dict) or APPENDER in body:
        raise ValueError("not an entry without an appender")
    stamped = canonical_json({**body, APPENDER: appender_id})
    return stamped


class AttributedLog:
    """A gateway ``LogAppender`` that stamps every entry with its credential's id
    before handing it to ``inner`` (a :class:`~bordergate.tlog.remote.RemoteSequencer`)."""

    def __init__(self, inner: Any, appender_id: str) -> None:
        self.inner = inner
        self.appender_id = appender_id

    @property
    def origin(self) -> str:
        return str(self.inner.origin)

    async def append_many(self, entries: Sequence[bytes]) -> int:
        """As the inner log's, with each entry stamped."""
        return int(await self.inner.append_many([stamp(e, self.appender_id) for e in entries]))

    async def append(self, entry: bytes) -> int:
        return await self.append_many([entry])

    def logged(self, entry: bytes) -> bytes:
        """The bytes the log holds for ``entry`` once appended here (stamped): what
        a receipt's leaf hash must be computed over."""
        return stamp(entry, self.appender_id)

    async def append_guarded(self, entries: Sequence[bytes],
                             expect: Mapping[str, int]) -> int:
        """As the inner log's, with each entry stamped."""
        return int(await self.inner.append_guarded(
            [stamp(e, self.appender_id) for e in entries], expect))

    async def append_promised(self, entries: Sequence[bytes],
                              expect: Mapping[str, int] | None = None
                              ) -> tuple[int, list[bytes]]:
        """As the inner log's ``append_attested``, with each entry stamped: the index
        of the first and the log operator's signed promise of each (what a key
        service accepts as proof that the entry is logged)."""
        first, promises = await self.inner.append_attested(
            [stamp(e, self.appender_id) for e in entries], expect)
        return int(first), list(promises)

    def checkpoint(self) -> SignedCheckpoint | None:
        result: SignedCheckpoint | None = self.inner.checkpoint()
        return result

    async def publish(self, timeout: float = 30.0) -> SignedCheckpoint:
        result: SignedCheckpoint = await self.inner.publish(timeout)
        return result

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


def logged_form(log: object, entry: bytes) -> bytes:
    """The bytes ``log`` sequences for ``entry``: stamped with the credential's id
    when ``log`` is an :class:`AttributedLog`, else ``entry`` itself."""
    return log.logged(entry) if isinstance(log, AttributedLog) else entry
