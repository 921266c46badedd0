"""The approver's own signature on every approval change (issue 12, item 4).

A grant, denial or revocation entry carries the approver's signed statement
(:mod:`bordergate.approval_statement`): this log's origin, the approval id, the
digest of its ``approval-request`` entry as the log holds it, the verdict and
the approver, signed by a key the principal roster lists for that approver.
The gateway checks it before logging; this rule checks it again, so a log
rebuilt by whoever holds the log key (or a gateway logging on its own word)
cannot add a grant the approver never made:

* ``approval_unsigned``: the change carries no statement (only a requester
  withdrawing their own request signs nothing);
* ``approval_signature_invalid``: it carries one that is malformed, names
  another request, is made with a key not listed for the approver (in the roster
  version in force at the entry's index: :func:`approver_keys_of`; an entry naming
  another version, a superseded one, fails ``roster_not_in_force``), or does not
  verify for this log, approval, verdict and approver.

A grant with either finding never counts towards the two approvers
(:func:`~.approvals.approval_change`); a denial or revocation with one is still
applied (it only reduces access) but reported.

This module must never read a log or a clock.
"""

from __future__ import annotations

from bordergate.approval_statement import (
    ApprovalStatement,
    ApproverKeys,
    MappingApproverKeys,
    SignedStatement,
    verify_statement,
)
from bordergate.audit.rules.context import RuleContext
from bordergate.audit.rules.rosters import in_force_version
from bordergate.audit.tally import ApprovalTrack
from bordergate.entries import Entry
from bordergate.errors import VerificationError

__all__ = ["approver_keys_of", "signature_required", "statement_problem"]

_NO_KEYS = MappingApproverKeys({})
#: The entry format version from which approval changes carry the approver's statement.
SIGNED_SINCE = 2


def signature_required(entry: Entry, track: ApprovalTrack, actor_id: str,
                       version: int = SIGNED_SINCE) -> bool:
    """Whether ``entry`` must carry an approver's statement: every change of entry
    format ``version`` 2 or later (the version it is checked by: a downgraded
    entry is checked as the highest version before it) but a revocation by the
    approval's own requester.  Older entries cannot have one; the report counts
    them as not checkable (``audit.rules.versions``)."""
    if version < SIGNED_SINCE:
        return False
    return not (entry.type == "approval-revoke" and actor_id == track.requester.get("id"))


def approver_keys_of(ctx: RuleContext, entry: Entry) -> ApproverKeys:
    """Whose keys may sign ``entry``'s statement: those of the roster version in force
    at the entry's index (none when the last ``roster`` entry did not verify: failed
    closed), whatever version the entry names; in a log without a ``roster`` entry, the
    auditor's configured ``approver_keys`` (none for an entry naming a version no
    roster entry logged: the roster rules report it).

    Raises:
        VerificationError: ``roster_not_in_force``: the entry names a version other
            than the one in force (a superseded one whose keys may be removed ones).
    """
    digest = entry.body.get("roster")
    if ctx.state.roster_in_force is None:
        return ctx.approver_keys if digest is None else _NO_KEYS
    in_force = in_force_version(ctx)
    if digest is not None and digest != in_force:
        raise VerificationError("the entry names a roster version other than the one in "
                                "force at its index", code="roster_not_in_force")
    roster = ctx.roster_named(in_force) if in_force is not None else None
    return roster if roster is not None else _NO_KEYS


def statement_problem(ctx: RuleContext, track: ApprovalTrack, entry: Entry, actor_id: str
                      ) -> tuple[str, str] | None:
    """Why ``entry``'s statement does not show that ``actor_id`` made this change
    (``(finding kind, explanation)``), or None when it does (or none is needed)."""
    raw = entry.body.get("statement")
    version = max(entry.version, ctx.state.max_version)
    if version < SIGNED_SINCE:  # not available before format 2: counted as not checked
        return None
    if raw is None and not signature_required(entry, track, actor_id, version):
        return None
    if raw is None:
        return ("approval_unsigned",
                f"it carries no statement signed by the key of {actor_id[:80]!r}")
    try:
        signed = SignedStatement.from_json(raw)
        if track.request is None:
            raise VerificationError("its request entry could not be read",
                                    code="approval_request_unknown")
        try:
            statement = ApprovalStatement(
                origin=ctx.origin, approval=track.id, request=track.request,
                verdict=entry.type.removeprefix("approval-"), approver=actor_id)
        except ValueError:
            raise VerificationError("its approver id cannot be signed for",
                                    code="malformed_approval_signature") from None
        verify_statement(statement, signed, approver_keys_of(ctx, entry))
    except VerificationError as exc:
        return "approval_signature_invalid", f"its statement fails [{exc.code}]: {exc}"
    return None
