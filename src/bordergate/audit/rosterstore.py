"""Roster versions by digest, for the roster rule: fetched where the custodian publishes them.

A ``roster`` entry names a roster version's digest, serial and the identity
authority's signature; the document is published as ``rosters/sha256-<hex>.json``
in the bundle store (a :class:`~bordergate.tlog.client.LogSource`: the log's
directory or URL by default, the same store :class:`~.bundlestore.BundleStore`
reads bundles from).  :class:`RosterStore` checks the signature with the
authority key the *auditor* trusts (never one the log names), fetches the
document, checks it is the signed version (digest, jurisdiction, serial), and
keeps the answer per digest.

This module must never return a roster whose digest and signature it did not
check.
"""

from __future__ import annotations

from dataclasses import dataclass

from bordergate.errors import VerificationError
from bordergate.roster import (
    MAX_ROSTER_BYTES,
    Roster,
    RosterAuthority,
    RosterSignature,
    roster_path,
)
from bordergate.tlog.client import LogSource

__all__ = ["RosterLookup", "RosterStore"]


@dataclass(frozen=True)
class RosterLookup:
    """The answer for one signed version: the roster, or why there is none.

    Attributes:
        digest: the digest asked for.
        roster: the verified roster, or None.
        code: why not (``roster_authority_not_configured``, ``roster_unavailable``
            and the codes of :mod:`bordergate.roster`), None when verified.
        reason: for people.
    """

    digest: str
    roster: Roster | None
    code: str | None = None
    reason: str = ""


class RosterStore:
    """Verified roster versions by digest (see the module docstring)."""

    def __init__(self, source: LogSource | None, authority: RosterAuthority | None) -> None:
        """Fetch documents from ``source``; trust ``authority`` (None: none configured)."""
        self.source = source
        self.authority = authority
        self._found: dict[str, RosterLookup] = {}

    def lookup(self, signature: RosterSignature) -> RosterLookup:
        """The verified version ``signature`` signs (cached per digest and signature).

        Raises:
            Unavailable: the bundle store cannot be reached.
        """
        key = f"{signature.roster}\x00{signature.serial}\x00{signature.key}\x00" \
              f"{signature.signature.hex()}"
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = self._lookup(signature)
        return found

    def _lookup(self, signature: RosterSignature) -> RosterLookup:
        digest = signature.roster[:80]
        try:
            authority, data = self._document(signature)
            return RosterLookup(digest, authority.verify(data, signature))
        except VerificationError as exc:
            return RosterLookup(digest, None, exc.code, str(exc))

    def _document(self, signature: RosterSignature) -> tuple[RosterAuthority, bytes]:
        """The authority and the published document of a version whose signature verifies.

        Raises:
            VerificationError: ``roster_authority_not_configured``,
                ``roster_signature_malformed``, ``roster_unavailable`` and the
                signature codes of :mod:`bordergate.roster`.
            Unavailable: the bundle store cannot be reached.
        """
        if self.authority is None:
            raise VerificationError("the auditor names no roster authority for this log",
                                    code="roster_authority_not_configured")
        self.authority.check_signature(signature)
        try:
            path = roster_path(signature.roster)
        except ValueError:
            raise VerificationError("the entry names no sha256 roster digest",
                                    code="roster_signature_malformed") from None
        try:
            data = self.source.fetch(path, MAX_ROSTER_BYTES) if self.source else None
        except VerificationError as exc:
            raise VerificationError(f"{path}: {exc}", code="roster_unavailable") from None
        if data is None:
            raise VerificationError(f"{path} is not published", code="roster_unavailable")
        return self.authority, data
