"""The identity authority's signature on a roster version, and its check.

The authority holds an Ed25519 key in the C2SP signed-note key format (the
format of log and reviewer keys: ``PRIVATE+KEY+<name>+<id>+<base64>`` in a
0600 file; the public ``<name>+<id>+<base64>`` verifier key string goes into
the deployment file per jurisdiction and into the auditor's file).  A
signature covers the canonical JSON statement::

    {"context": "bordergate roster v1", "jurisdiction": "<code>",
     "roster": "sha256:<hex>", "serial": <n>}

so it can be moved neither to another document (the digest covers every
byte) nor to another jurisdiction, nor replayed as another serial.  A
``roster`` log entry carries the digest, serial, the authority's verifier
key and the base64 signature (:meth:`RosterSignature.entry_body`); the
document itself is published content-addressed beside the policy bundles,
never in the log (a person's covered-person status must not be written into
an append-only public log forever).

Pure: values in, values out.  Codes: ``roster_signature_malformed``,
``roster_unknown_key``, ``roster_signature_invalid``,
``roster_digest_mismatch`` (and :func:`~bordergate.roster.document.parse_roster`'s).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bordergate.entries import canonical_json
from bordergate.errors import ConfigError, VerificationError
from bordergate.roster.document import Roster, parse_roster
from bordergate.tlog.note import Ed25519Verifier, Signer, decode_base64

__all__ = [
    "ROSTER_CONTEXT",
    "RosterAuthority",
    "RosterSignature",
    "roster_statement",
    "sign_roster",
]

ROSTER_CONTEXT = "bordergate roster v1"
_SIG_MEMBERS = frozenset({"roster", "serial", "key", "signature"})


def roster_statement(*, jurisdiction: str, digest: str, serial: int) -> bytes:
    """The canonical bytes the authority signs (see the module docstring)."""
    return canonical_json({"context": ROSTER_CONTEXT, "jurisdiction": jurisdiction,
                           "roster": digest, "serial": serial})


@dataclass(frozen=True)
class RosterSignature:
    """The authority's signature on one roster version (what the log holds).

    Attributes:
        roster: the version's digest, ``sha256:<hex>``.
        serial: the version's serial.
        key: the authority's verifier key string.
        signature: the raw Ed25519 signature of :func:`roster_statement`.
    """

    roster: str
    serial: int
    key: str
    signature: bytes

    def entry_body(self) -> dict[str, Any]:
        """The members of the ``roster`` log entry (also the ``.sig`` file's JSON)."""
        return {"roster": self.roster, "serial": self.serial, "key": self.key,
                "signature": base64.b64encode(self.signature).decode("ascii")}

    @classmethod
    def from_entry_body(cls, body: Mapping[str, Any]) -> RosterSignature:
        """Read a ``roster`` entry's members (or a ``.sig`` file's JSON); other
        members of ``body`` (``v``, ``type``, ``time``) are ignored.

        Raises:
            VerificationError: ``roster_signature_malformed``.
        """
        values = {k: body.get(k) for k in _SIG_MEMBERS}
        serial = values["serial"]
        if not isinstance(values["roster"], str) or not isinstance(values["key"], str) or \
                not isinstance(values["signature"], str) or isinstance(serial, bool) or \
                not isinstance(serial, int):
            raise VerificationError("a roster signature has string roster, key and signature "
                                    "and an integer serial", code="roster_signature_malformed")
        raw = decode_base64(values["signature"], code="roster_signature_malformed",
                            what="the roster signature")  # canonical: one text per signature
        return cls(values["roster"], serial, values["key"], raw)


def sign_roster(roster: Roster, signer: Signer) -> RosterSignature:
    """The authority's signature on ``roster``."""
    statement = roster_statement(jurisdiction=roster.jurisdiction, digest=roster.digest,
                                 serial=roster.serial)
    return RosterSignature(roster.digest, roster.serial, signer.verifier().key_string,
                           signer.sign(statement))


@dataclass(frozen=True)
class RosterAuthority:
    """The identity authority of one jurisdiction, as a verifier of its rosters.

    Attributes:
        jurisdiction: whose data the rosters it signs govern.
        verifiers: its accepted verifier keys (more than one during a key change).
    """

    jurisdiction: str
    verifiers: tuple[Ed25519Verifier, ...]

    @classmethod
    def from_key_strings(cls, jurisdiction: str, keys: Iterable[str]) -> RosterAuthority:
        """An authority from verifier key strings (the deployment or auditor file).

        Raises:
            ConfigError: ``roster_authority_key_invalid``: a key does not parse,
                or none is given.
        """
        verifiers = []
        for key in keys:
            try:
                verifiers.append(Ed25519Verifier.from_key_string(key.strip()))
            except VerificationError as exc:
                raise ConfigError(f"roster authority of {jurisdiction!r}: {exc}",
                                  code="roster_authority_key_invalid") from None
        if not verifiers:
            raise ConfigError(f"roster authority of {jurisdiction!r}: no key",
                              code="roster_authority_key_invalid")
        return cls(jurisdiction, tuple(verifiers))

    def check_signature(self, signature: RosterSignature) -> None:
        """Check ``signature`` is this authority's over its digest and serial.

        Raises:
            VerificationError: ``roster_unknown_key`` (not a key of this
                authority), ``roster_signature_invalid``.
        """
        verifier = next((v for v in self.verifiers if v.key_string == signature.key), None)
        if verifier is None:
            raise VerificationError(f"roster {signature.roster[:80]} is signed with a key that "
                                    f"is not {self.jurisdiction}'s roster authority's",
                                    code="roster_unknown_key")
        statement = roster_statement(jurisdiction=self.jurisdiction, digest=signature.roster,
                                     serial=signature.serial)
        if not verifier.verify(statement, signature.signature):
            raise VerificationError(f"roster {signature.roster[:80]}: the authority's signature "
                                    "does not verify", code="roster_signature_invalid")

    def verify(self, document: bytes, signature: RosterSignature) -> Roster:
        """Parse ``document`` and check it is the version ``signature`` signs.

        Returns:
            The verified roster version.

        Raises:
            VerificationError: as :meth:`check_signature` and
                :func:`~bordergate.roster.document.parse_roster`;
                ``roster_digest_mismatch`` also when the document's jurisdiction
                or serial is not the signed one.
        """
        self.check_signature(signature)
        roster = parse_roster(document, signature.roster)
        if roster.jurisdiction != self.jurisdiction or roster.serial != signature.serial:
            raise VerificationError(
                f"roster {roster.digest[:80]} is {roster.jurisdiction} serial {roster.serial}, "
                f"signed as {self.jurisdiction} serial {signature.serial}",
                code="roster_digest_mismatch")
        return roster
