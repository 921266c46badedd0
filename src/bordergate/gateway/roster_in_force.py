"""The roster version in force at a gateway: principals' attributes from the authority.

A token says who is calling (its ``sub``, signed by the jurisdiction's issuer);
the jurisdiction's identity authority says *what* they are (org, org kind,
location, roles) in a signed roster version (:mod:`bordergate.roster`).  A
gateway whose deployment names a roster authority decides with the roster's
attributes, never the token's: :meth:`RosterInForce.vouch` looks the token's
subject up in the version in force (one dict access) and refuses

    principal_not_in_roster   (401) the subject is not listed
    roster_claims_mismatch    (401) the token's org, org kind, location or roles
                              differ from the roster's (a relabelled principal)
    roster_unavailable        (503) no verified roster version yet, or the
                              latest logged one does not verify (fail closed:
                              a version that may remove someone is never skipped)

and gives the decision entry's ``roster`` member (the version's digest, one
constant mapping per version, so entries of one shape stay one shape).

Versions come from the log: a ``roster`` entry names a version's digest, serial
and the authority's signature; the document is read from the log storage's
content-addressed ``rosters/sha256-<hex>.json``, checked against the digest and
the authority key the deployment names.  The worker's
:class:`~bordergate.gateway.log_follower.LogFollower` reads the log at start-up
and then polls it (with the token revocations, ``gateway.revocations``), so a
newly logged version is in force on every worker within about 2 seconds.
``RosterInForce.version`` is the log index of the last ``roster`` entry read.
The auditor reports a decision that names a version other than the one in force
at its own index (``roster_superseded``), and the gateway never logs one: every
decision's entry goes to the sequencer guarded by the version it was decided
under (``gateway.decided_state``), so a decision made before a newer version was
sequenced is refused, and the gateway catches up and decides again.

This module must never take an attribute from a token when a roster is
configured, and never use a roster document whose digest and signature it did
not check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Protocol

from bordergate.entries import parse_entry
from bordergate.entry_state import ROSTER_KEY, state_keys
from bordergate.errors import BordergateError, Unauthenticated, Unavailable, VerificationError
from bordergate.policy.entities import Principal
from bordergate.roster import Roster, RosterAuthority, RosterSignature, roster_path

__all__ = ["ObjectReader", "RosterInForce"]

log = logging.getLogger(__name__)

_MARK = b'"type":"roster"'


class ObjectReader(Protocol):
    """Where published roster documents are read (the log storage)."""

    def read_object(self, path: str) -> bytes | None:
        """The object at ``path`` (``rosters/sha256-<hex>.json``), or None."""
        ...


class RosterInForce:
    """The verified roster version a gateway decides under (see the module docstring).

    Attributes:
        authority: the jurisdiction's identity authority (its verifier keys).
        next_index: the first log index not read yet.
        version: the log index of the last ``roster`` entry read (the one in
            force, or the one that failed it closed), or -1: the version of the
            sequencer's ``roster`` state key (``entry_state``).
        highest_signed: the highest serial a ``roster`` entry logged with a valid
            authority signature, its document published or not (0: none); a version
            at or below it is refused (``roster_serial_not_increasing``).
    """

    def __init__(self, authority: RosterAuthority, objects: ObjectReader) -> None:
        self.authority = authority
        self.objects = objects
        self.next_index = 0
        self.version = -1
        self.highest_signed = 0
        # one attribute, swapped whole: (roster, its entry member, why unusable)
        self._state: tuple[Roster | None, Mapping[str, str], str | None] = (
            None, MappingProxyType({}), "no roster version is logged yet")

    @property
    def roster(self) -> Roster | None:
        """The version in force, or None when none verifies."""
        return self._state[0]

    def approver_keys(self, principal_id: str) -> tuple[bytes, ...]:
        """Raw Ed25519 keys of approver ``principal_id`` in the version in force
        (``()`` when none is in force, or the principal is not a listed approver)."""
        roster = self._state[0]
        return () if roster is None or self._state[2] is not None \
            else roster.approver_keys(principal_id)

    def vouch(self, claimed: Principal) -> tuple[Principal, Mapping[str, str]]:
        """The roster's principal for a token's, and the entry member naming the version.

        Returns:
            ``(principal, {"roster": "sha256:<hex>"})``: the principal to decide
            and record with, and the member every entry recording it carries.

        Raises:
            Unauthenticated: ``principal_not_in_roster``, ``roster_claims_mismatch``.
            Unavailable: ``roster_unavailable``.
        """
        roster, member, failure = self._state
        if roster is None or failure is not None:
            raise Unavailable(f"no roster version in force: {failure}", code="roster_unavailable")
        listed = roster.principals.get(claimed.id)
        if listed is None:
            raise Unauthenticated(f"principal {claimed.id[:80]!r} is not in the roster of "
                                  f"{roster.jurisdiction}", code="principal_not_in_roster")
        if listed.principal != claimed:
            raise Unauthenticated(f"the token's attributes of {claimed.id[:80]!r} differ from "
                                  "the roster's", code="roster_claims_mismatch")
        return listed.principal, member

    def apply(self, first_index: int, entries: Iterable[bytes]) -> int:
        """Apply the ``roster`` entries among ``entries`` (the log's, from
        ``first_index`` on, contiguous); returns how many versions were applied.

        A version that does not verify (bad signature, document missing or not
        the signed one) puts the gateway in the fail-closed state until a later
        version verifies; one whose serial is not above every serial the
        authority signed in an earlier entry (verified or withheld) is refused
        the same way (a rollback to an older list, or past a withheld newer one),
        and so is a ``roster`` entry that is not a well-formed entry.
        """
        applied = 0
        index = first_index - 1
        for index, raw in enumerate(entries, first_index):
            if _MARK not in raw:
                continue
            try:
                entry = parse_entry(raw)
            except VerificationError as exc:  # the mark's bytes occur in no string
                log.error("roster entry %d is malformed, failing closed: %s", index, exc)
                self._state = (self._state[0], self._state[1], f"[{exc.code}] {exc}")
            else:
                if entry.type != "roster":
                    continue
                self._state = self._verified(entry.body)
            # after the state (a request reading this version sees it), as the log's
            # sequencer counts it
            if ROSTER_KEY in state_keys(raw):
                self.version = index
            applied += 1
        self.next_index = max(self.next_index, index + 1)
        return applied

    def _verified(self, body: Mapping[str, object]
                  ) -> tuple[Roster | None, Mapping[str, str], str | None]:
        current = self._state[0]
        try:
            signature = RosterSignature.from_entry_body(body)
            self.authority.check_signature(signature)
            # a version the authority signed counts even if its document is withheld:
            # nothing at or below its serial may come back into force after it
            if signature.serial <= self.highest_signed:
                raise VerificationError(f"roster serial {signature.serial} is not above "
                                        f"{self.highest_signed}, already logged",
                                        code="roster_serial_not_increasing")
            self.highest_signed = signature.serial
            document = self.objects.read_object(roster_path(signature.roster))
            if document is None:
                raise VerificationError(f"{roster_path(signature.roster)} is not published",
                                        code="roster_unpublished")
            roster = self.authority.verify(document, signature)
            if current is not None and roster.serial <= current.serial:
                raise VerificationError(f"roster serial {roster.serial} is not above "
                                        f"{current.serial}", code="roster_serial_not_increasing")
        except (BordergateError, ValueError) as exc:
            code = getattr(exc, "code", "roster_malformed")
            log.error("roster version refused, failing closed: [%s] %s", code, exc)
            return current, self._state[1], f"[{code}] {exc}"
        log.info("roster %s serial %d in force (%d principals)", roster.digest,
                 roster.serial, len(roster.principals))
        return roster, MappingProxyType({"roster": roster.digest}), None
