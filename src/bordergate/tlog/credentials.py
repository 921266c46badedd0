"""Append credentials: who may send entries to a log's sequencer service.

The log operator (the sequencer process, which alone holds the log key) lets
each appender (a gateway worker, the release CLI, the key custodian, ...)
append with its own credential.  A credential has an id (``us-gw-1``) and a
secret; the appender keeps both in its *credential file* (one line,
``ID.SECRET``, mode 0600) and sends them as ``Authorization: Bearer ID.SECRET``.
The sequencer keeps only the *credential list*: one line per appender,
``ID sha256:HEX ROLE`` (the SHA-256 of the secret, and the appender's role:
``gateway``, ``release``, ``custodian``, ``key-service``), so the list reveals
no secret and a leaked list appends nothing.  The role says which entry types
the credential may append (``bordergate.appender.ROLE_TYPES``, checked by the
sequencer service the log operator runs); a line without one (a list written
before roles) restricts nothing.

Every entry sent with a credential must name it in a top-level member
``"appender": ID`` (:func:`require_appender`, the sequencer service's check:
it reads that member and nothing else of an entry, so the log operator attests
who appended without interpreting entries; :mod:`bordergate.appender` adds the
member on the appender's side).

This module is pure (bytes and strings in, values out) apart from
:func:`read_credential` and :func:`read_credential_list`, which read one file.
It must never log a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bordergate.errors import ConfigError, VerificationError

__all__ = ["APPENDER", "AppendCredential", "CredentialList", "claimed_appender",
           "parse_credential", "parse_credential_list", "read_credential",
           "read_credential_list", "require_appender"]

#: The entry member naming the append credential.
APPENDER = "appender"
_KEY = b'"appender"'

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}\Z")
_SECRET = re.compile(r"[A-Za-z0-9_-]{32,128}\Z")
_LIST_LINE = re.compile(
    r"([a-z0-9][a-z0-9._-]{0,62}) sha256:([0-9a-f]{64})(?: ([a-z][a-z-]{0,30}))?\Z")


def _is_id(text: str) -> bool:
    return _ID.match(text) is not None and ".." not in text


@dataclass(frozen=True)
class AppendCredential:
    """One appender's credential: its id and secret (keep the secret secret)."""

    id: str
    secret: str

    @classmethod
    def issue(cls, credential_id: str) -> AppendCredential:
        """A new credential with 32 random bytes of secret.

        Raises:
            ValueError: the id is not ``[a-z0-9][a-z0-9._-]{0,62}`` (programmer misuse).
        """
        if not _is_id(credential_id) or "." in credential_id:
            raise ValueError(f"invalid credential id {credential_id!r}")
        return cls(credential_id, secrets.token_urlsafe(32))

    @property
    def token(self) -> str:
        """The bearer token and credential file text: ``ID.SECRET``."""
        return f"{self.id}.{self.secret}"

    @property
    def list_line(self) -> str:
        """This credential's line in the sequencer's credential list (no role)."""
        return f"{self.id} sha256:{_digest(self.secret)}"

    def list_line_as(self, role: str) -> str:
        """This credential's line in the list, with the appender's ``role``.

        Raises:
            ValueError: ``role`` is not a role word (programmer misuse).
        """
        if re.fullmatch(r"[a-z][a-z-]{0,30}", role) is None:
            raise ValueError(f"invalid role {role!r}")
        return f"{self.list_line} {role}"

    def __repr__(self) -> str:
        return f"AppendCredential(id={self.id!r})"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_credential(text: str) -> AppendCredential:
    """A credential from its token text ``ID.SECRET`` (surrounding space ignored).

    Raises:
        VerificationError: ``malformed_credential``.
    """
    credential_id, dot, secret = text.strip().rpartition(".")
    if not dot or "." in credential_id or not _is_id(credential_id) \
            or _SECRET.match(secret) is None:
        raise VerificationError("an append credential is ID.SECRET",
                                code="malformed_credential")
    return AppendCredential(credential_id, secret)


class CredentialList:
    """The credentials a sequencer accepts: id -> SHA-256 of the secret."""

    def __init__(self, digests: Mapping[str, str],
                 roles: Mapping[str, str] | None = None) -> None:
        self._digests = {k: bytes.fromhex(v) for k, v in digests.items()}
        self._roles = dict(roles or {})

    @classmethod
    def of(cls, credentials: Iterable[AppendCredential],
           roles: Mapping[str, str] | None = None) -> CredentialList:
        """The list that accepts exactly ``credentials`` (with ``roles`` by id)."""
        return cls({c.id: _digest(c.secret) for c in credentials}, roles)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._digests)

    def role(self, credential_id: str) -> str | None:
        """The role listed for ``credential_id``; None for a line without one."""
        return self._roles.get(credential_id)

    def authenticate(self, authorization: str) -> str | None:
        """The id of the credential an ``Authorization`` header value presents,
        or None when it is missing, malformed, unknown or wrong (compared in
        constant time for a known id)."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            credential = parse_credential(token)
        except VerificationError:
            return None
        expected = self._digests.get(credential.id)
        if expected is None:
            return None
        given = hashlib.sha256(credential.secret.encode("ascii")).digest()
        return credential.id if hmac.compare_digest(given, expected) else None

    def to_text(self) -> str:
        """The list file's text (sorted by id)."""
        return "".join(
            f"{k} sha256:{v.hex()}" + (f" {self._roles[k]}" if k in self._roles else "") + "\n"
            for k, v in sorted(self._digests.items()))


def parse_credential_list(text: str) -> CredentialList:
    """Parse a credential list: lines ``ID sha256:HEX [ROLE]``; blank lines and ``#``
    comments.

    Raises:
        VerificationError: ``malformed_credential_list`` (a bad line, a repeated id).
    """
    digests: dict[str, str] = {}
    roles: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LIST_LINE.match(line)
        if m is None or not _is_id(m[1]) or "." in m[1] or m[1] in digests:
            raise VerificationError(f"credential list line {n}: expected a new "
                                    "'ID sha256:HEX [ROLE]'", code="malformed_credential_list")
        digests[m[1]] = m[2]
        if m[3] is not None:
            roles[m[1]] = m[3]
    return CredentialList(digests, roles)


def read_credential(path: Path) -> AppendCredential:
    """The append credential in ``path``.

    Raises:
        ConfigError: ``credential_unreadable`` or ``malformed_credential``.
    """
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read append credential {path}: {e.strerror}",
                          code="credential_unreadable") from None
    try:
        return parse_credential(text)
    except VerificationError as e:
        raise ConfigError(f"{path}: {e}", code=e.code) from None


def read_credential_list(path: Path) -> CredentialList:
    """The credential list in ``path``.

    Raises:
        ConfigError: ``credential_list_unreadable`` or ``malformed_credential_list``.
    """
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read credential list {path}: {e.strerror}",
                          code="credential_list_unreadable") from None
    try:
        return parse_credential_list(text)
    except VerificationError as e:
        raise ConfigError(f"{path}: {e}", code=e.code) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def claimed_appender(entry: bytes) -> str | None:
    """The top-level ``appender`` of an entry, None if it names none.

    Raises:
        VerificationError: ``appender_malformed``: not a JSON object with
            unique keys, or the member is not a string.
    """
    try:
        body = json.loads(entry, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        raise VerificationError("entry is not a JSON object with unique keys",
                                code="appender_malformed") from None
    if not isinstance(body, dict):
        raise VerificationError("entry is not a JSON object", code="appender_malformed")
    claimed = body.get(APPENDER)
    if claimed is not None and not isinstance(claimed, str):
        raise VerificationError("the appender member is not a string",
                                code="appender_malformed")
    return claimed


def require_appender(credential_id: str, entry: bytes) -> None:
    """The sequencer service's check: ``entry`` names exactly ``credential_id``.

    Raises:
        VerificationError: ``appender_missing``, ``appender_mismatch`` or
            ``appender_malformed``.
    """
    prefix = b'{"appender":' + json.dumps(credential_id).encode() + b","
    # the fast path (no parse) only where no key can be spelled another way: an
    # escaped ``"\u0061ppender"`` is a second appender to any JSON reader (any
    # backslash takes the parse: one memchr, where a canonical entry has none)
    if entry.startswith(prefix) and entry.count(_KEY) == 1 and b"\\" not in entry:
        return
    claimed = claimed_appender(entry)
    if claimed is None:
        raise VerificationError(f"entry names no appender (credential {credential_id})",
                                code="appender_missing")
    if claimed != credential_id:
        raise VerificationError(f"entry claims appender {claimed[:64]!r} but was sent with "
                                f"credential {credential_id!r}", code="appender_mismatch")
