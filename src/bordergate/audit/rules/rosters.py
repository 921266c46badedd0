"""Rules about the identity authority's roster: every principal as the authority vouches.

A ``roster`` entry logs a roster version (digest, serial, the authority's
signature); the document is published beside the bundles.  The auditor
verifies each with the authority key *it* trusts (``roster_invalid`` when the
signature, the published document or the serial order fails), and from that
entry on the version is in force.  Every decision entry and approval entry
names the version its gateway used (``roster``); the recorded principal
attributes (``principal``, ``requester``, ``approver``, ``by``, ``actor``) must
be exactly that version's for the principal's id:

* ``roster_principal_mismatch``: org, org kind, location or roles differ (the
  relabelling attack: a parent-company principal abroad recorded as local staff,
  with inputs, decisions and released list made consistent, replays clean but
  is named here);
* ``roster_principal_unlisted``: the version does not list the id;
* ``roster_unknown``: no earlier ``roster`` entry logged the version named;
* ``roster_superseded``: the version named is not the one in force at the
  entry's index (reported once per version, with a repeat count);
* ``roster_missing``: an entry after the first ``roster`` entry names none (once,
  with a repeat count); its principals are checked all the same, against the
  version in force at its index, so leaving the member out hides no relabelling.

A log without ``roster`` entries (no roster configured, or written before
issue 12) is not judged.  A decision under a version that did not verify is
not judged further: its ``roster`` entry already has ``roster_invalid``.
Explanations name attribute names, never their values (entry strings are
untrusted).  This module must never read a log or a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bordergate.audit.rules.context import RuleContext
from bordergate.entries import Entry, canonical_json
from bordergate.errors import VerificationError
from bordergate.roster import RosterSignature

__all__ = ["FAILED_CLOSED", "PRINCIPAL_MEMBERS", "RECORDING_TYPES", "decision_roster",
           "in_force_version", "principal_problem", "roster_entry"]

#: The entry types that record a principal (decisions and approvals).
RECORDING_TYPES = frozenset({"access", "write", "export", "erase", "approval-request",
                             "approval-grant", "approval-deny", "approval-revoke",
                             "approval-refused"})
#: The members of decision and approval entries that record a principal.
PRINCIPAL_MEMBERS = ("principal", "requester", "approver", "by", "actor")
_ATTRIBUTES = ("org", "org_kind", "location", "roles")
#: Lookup codes of a version whose signature did not verify (any other failure came
#: after it did: a withheld or wrong document still counts its serial).
_UNSIGNED = frozenset({None, "roster_authority_not_configured", "roster_unknown_key",
                       "roster_signature_invalid", "roster_signature_malformed",
                       "roster_invalid"})
#: The prefix of the state's ``roster_in_force`` after a ``roster`` entry that did not
#: verify (then its index): no version is in force.  A NUL never starts a digest the
#: rules accept as in force (:func:`in_force_version`).
FAILED_CLOSED = "\x00failed-closed@"


def roster_entry(ctx: RuleContext, index: int, entry: Entry) -> None:
    """Verify a ``roster`` entry's version; from here on it is in force if it verifies
    and its serial is above every earlier one the authority signed (a version whose
    document was withheld included).  One that does not (a bad signature, a
    missing document, a rollback) is never in force: from it on no version is, until
    a later one verifies (the gateway fails closed the same way)."""
    body = entry.body
    record = (index, canonical_json(dict(body)).decode("utf-8"))
    try:
        signature = RosterSignature.from_entry_body(body)
    except VerificationError as exc:
        _refused(ctx, index, entry, record, code=exc.code, reason=str(exc))
        return
    found = ctx.roster_lookup(signature)
    if found.roster is None and found.code == "roster_authority_not_configured":
        # the auditor cannot judge any version: as before, named but never verified
        ctx.state.roster_entries[signature.roster] = record
        ctx.state.roster_in_force = signature.roster
        _invalid(ctx, index, entry, found.code, found.reason)
        return
    if found.roster is None:
        if found.code not in _UNSIGNED:  # the authority signed this serial: none below
            previous = ctx.state.roster_serial  # it may come into force after it
            ctx.state.roster_serial = max(signature.serial, previous or 0)
        _refused(ctx, index, entry, record, code=found.code or "roster_invalid",
                 reason=found.reason)
        return
    previous = ctx.state.roster_serial
    if previous is not None and found.roster.serial <= previous:
        _refused(ctx, index, entry, record, code="roster_serial_not_increasing",
                 reason=f"serial {found.roster.serial} is not above the earlier {previous}")
        return
    ctx.state.roster_serial = found.roster.serial
    ctx.state.roster_entries[signature.roster] = record
    ctx.state.roster_in_force = signature.roster


def _refused(ctx: RuleContext, index: int, entry: Entry, record: tuple[int, str], *,
             code: str, reason: str) -> None:
    """A roster entry that does not verify: no version is in force from it on (the
    state names it by a key no digest equals, :data:`FAILED_CLOSED`), and a version
    it names that no earlier entry logged is known (not ``roster_unknown``) but never
    verified for an entry naming it."""
    key = f"{FAILED_CLOSED}{index}"
    ctx.state.roster_entries[key] = record
    digest = entry.body.get("roster")
    if isinstance(digest, str) and digest not in ctx.state.roster_entries:
        ctx.state.roster_entries[digest] = record
    ctx.state.roster_in_force = key
    _invalid(ctx, index, entry, code, reason)


def _invalid(ctx: RuleContext, index: int, entry: Entry, code: str, reason: str) -> None:
    ctx.flag("roster_invalid", index, entry.time,
             f"roster entry {index} does not verify [{code}]: {reason[:200]}",
             {"code": code})


def in_force_version(ctx: RuleContext) -> str | None:
    """The digest of the roster version in force at the entry being checked, or None
    (no ``roster`` entry yet, or the last one did not verify: failed closed)."""
    in_force = ctx.state.roster_in_force
    return None if in_force is None or in_force.startswith(FAILED_CLOSED) else in_force


def decision_roster(ctx: RuleContext, index: int, t: float, entry: Entry) -> None:
    """Check the principal attributes an entry records against the version it names
    (or, naming none, the version in force at its index)."""
    in_force = ctx.state.roster_in_force
    digest = entry.body.get("roster")
    if digest is None:
        if in_force is None:
            return
        if not ctx.repeat("roster:missing"):
            ctx.flag_once("roster_missing", "roster:missing", index, t,
                          explanation=f"{entry.type} entry {index} names no roster version "
                          "though a roster is logged")
        current = in_force_version(ctx)
        if current is not None:  # judged all the same, by the version in force here
            _check_principals(ctx, index, t, entry, digest=current,
                              which="in force at its index (it names none)")
        return
    if not isinstance(digest, str) or digest not in ctx.state.roster_entries:
        key = f"roster:unknown:{str(digest)[:80]}"
        if not ctx.repeat(key):
            ctx.flag_once("roster_unknown", key, index, t,
                          explanation=f"{entry.type} entry {index} names a roster version no "
                          "earlier roster entry logged")
        return
    if digest != in_force_version(ctx):
        key = f"roster:superseded:{digest}"
        if not ctx.repeat(key):
            logged = ctx.state.roster_entries.get(in_force or "", (None,))[0]
            what = "the one in force (logged at entry" if in_force_version(ctx) else \
                "any in force (none is since the roster entry"
            ctx.flag_once("roster_superseded", key, index, t,
                          explanation=f"{entry.type} entry {index} was decided under a roster "
                          f"version other than {what} {logged})")
    _check_principals(ctx, index, t, entry, digest=digest, which="it names")


def _check_principals(ctx: RuleContext, index: int, t: float, entry: Entry, *, digest: str,
                      which: str) -> None:
    """Each principal the entry records against roster version ``digest`` (``which``
    says how it was chosen, for the explanation)."""
    for member in PRINCIPAL_MEMBERS:
        recorded = entry.body.get(member)
        if isinstance(recorded, dict):
            problem = ctx.roster_verdict(digest, recorded)
            if problem is not None:
                kind, differing = problem
                what = f"attributes ({', '.join(differing)}) differ from" if differing \
                    else "principal is not listed in"
                ctx.flag(kind, index, t,
                         f"{entry.type} entry {index}: the recorded {member}'s {what} the "
                         f"roster version {which} ({digest[:19]}...)",
                         {"member": member, "attributes": list(differing),
                          "roster": digest})


def principal_problem(roster_attributes: Mapping[str, Any] | None,
                      recorded: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """The finding kind and differing attribute names, or None when they agree."""
    if roster_attributes is None:
        return "roster_principal_unlisted", ()
    differing = tuple(a for a in _ATTRIBUTES if recorded.get(a) != roster_attributes[a])
    if set(recorded) - {"id", *_ATTRIBUTES}:
        differing = (*differing, "other members")
    return ("roster_principal_mismatch", differing) if differing else None
