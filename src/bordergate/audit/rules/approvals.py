"""Rules about approvals: their life cycle in the log, and every use of one.

The auditor rebuilds each approval from ``approval-*`` entries
(:class:`~bordergate.audit.tally.ApprovalTrack`) and checks every use: requested,
granted by two distinct custodian approvers (never the requester), not expired,
not revoked, its scope covering the access (subjects and records too, as
pseudonyms), no more distinct subjects read under it than its cap, and decided
under the approval's current state (the ``approval_version`` an access entry
records is the index of the approval's last change before it:
:func:`approval_state_stale`).  Each request is checked against the approval
limits of the bundle it names (:func:`request_limits`), and refused attempts
(``approval-refused``) are counted (:func:`approval_refused`).

This module must never read a log or a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bordergate.approval_statement import request_digest
from bordergate.audit.decision_lists import DecisionList
from bordergate.audit.quoting import name, whole_seconds
from bordergate.audit.rules.context import RuleContext
from bordergate.audit.rules.statements import statement_problem
from bordergate.audit.tally import ApprovalTrack
from bordergate.entries import APPROVAL_CHANGE_TYPES, Entry, canonical_json

__all__ = ["APPROVAL_CHANGES", "APPROVAL_REFUSED", "LAST_TIME", "approval_change",
           "approval_refused", "approval_request", "approval_state_stale", "approval_use",
           "grant_problem", "request_limits", "request_seconds", "scope_of_request",
           "use_problem"]

APPROVAL_CHANGES = APPROVAL_CHANGE_TYPES
APPROVAL_REFUSED = "approval-refused"
_ACTIONS = ("grant", "deny", "revoke")
#: 9999-12-31T23:59:59Z: the last second an RFC 3339 time (the report's) can name
LAST_TIME = 253_402_300_799


def request_seconds(value: object) -> int:
    """A request's ``requested_at`` or ``expires``: whole seconds no later than year 9999.

    Raises:
        ValueError: anything else (the request is then ``entry_malformed``).
    """
    seconds = whole_seconds(value)
    if seconds > LAST_TIME:
        raise ValueError("a time beyond the year 9999")
    return seconds


def approval_request(ctx: RuleContext, index: int, entry: Entry) -> None:
    """An ``approval-request`` entry: well-formed, and an id never used before."""
    body = entry.body
    approval = body.get("approval")
    requester, scope = body.get("requester"), body.get("scope")
    try:
        if not isinstance(approval, str) or not isinstance(requester, dict) or \
                not isinstance(scope, dict):
            raise TypeError("approval-request fields")
        track = ApprovalTrack(
            id=approval, index=index, requester=dict(requester),
            purpose=str(body["purpose"]), reason=str(body.get("reason")),
            collections=[str(c) for c in scope["collections"]],
            classes=[str(c) for c in scope["classes"]],
            home=str(body.get("gateway", ctx.home)),
            requested_at=request_seconds(body.get("requested_at", int(entry.time))),
            expires=request_seconds(body["expires"]), changed_at=index,
            request=request_digest(canonical_json(dict(body))))
        scope_of_request(track, body)
    except (KeyError, TypeError, ValueError):
        ctx.flag("entry_malformed", index, entry.time,
                 f"approval-request entry {index} lacks a well-formed approval, requester, "
                 "scope or times (whole seconds, at most year 9999)",
                 {"code": "malformed_approval"})
        return
    if approval in ctx.state.approvals:
        ctx.state.approvals[approval].changed_at = index  # the log's sequencer counts it
        ctx.flag("approval_invalid_transition", index, entry.time,
                 f"approval-request entry {index} reuses the id of the approval requested "
                 f"at entry {ctx.state.approvals[approval].index}")
        return
    ctx.state.approvals[approval] = track
    request_limits(ctx, index, entry.time, track)


def scope_of_request(track: ApprovalTrack, body: Mapping[str, Any]) -> None:
    """Copy a request's narrowing (subject and record pseudonyms, ticket), its cap of
    subjects and its bundle into ``track``.

    Raises:
        TypeError, ValueError: a malformed scope or cap.
    """
    scope = body["scope"]
    for key in ("subjects", "records"):
        names = scope.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"scope.{key}")
        setattr(track, key, [str(n) for n in names])
    ticket, cap, bundle = scope.get("ticket"), body.get("max_subjects"), body.get("bundle")
    if ticket is not None and not isinstance(ticket, str):
        raise TypeError("scope.ticket")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError("max_subjects")
    if bundle is not None and not isinstance(bundle, str):
        raise TypeError("bundle")
    track.ticket, track.max_subjects, track.bundle = ticket, cap, bundle


def request_limits(ctx: RuleContext, index: int, t: float, track: ApprovalTrack) -> None:
    """approval_beyond_limits: a request longer, or with a higher (or no) cap of
    subjects, than the approval limits of the bundle its entry names.  Requests that
    name no bundle predate the limits; an unavailable bundle is reported where
    decisions are replayed."""
    if track.bundle is None:
        return
    engine = ctx.bundles(track.bundle).engine
    if engine is None:
        return
    limits = engine.bundle.approval_limits
    problems = []
    if track.expires - track.requested_at > limits.max_duration_s:
        problems.append(f"{track.expires - track.requested_at} s asked, at most "
                        f"{limits.max_duration_s} s allowed")
    if limits.max_subjects is not None and \
            (track.max_subjects is None or track.max_subjects > limits.max_subjects):
        problems.append(f"a cap of {track.max_subjects} subjects declared, at most "
                        f"{limits.max_subjects} allowed")
    if problems:
        ctx.flag("approval_beyond_limits", index, t,
                 f"approval-request entry {index}: {'; '.join(problems)} by its bundle")


def approval_refused(ctx: RuleContext, index: int, entry: Entry) -> None:
    """An ``approval-refused`` entry (a grant, deny or revoke the gateway refused):
    well-formed, and counted by ``action/code`` in the tally and on its approval."""
    body = entry.body
    actor, action, code = body.get("actor"), body.get("action"), body.get("code")
    if not isinstance(body.get("approval"), str) or not isinstance(actor, dict) or \
            action not in _ACTIONS or not isinstance(code, str) or not code:
        ctx.flag("entry_malformed", index, entry.time,
                 f"approval-refused entry {index} lacks a well-formed approval, actor, "
                 "action or code", {"code": "malformed_approval"})
        return
    ctx.state.tally.refused[f"{action}/{code[:40]}"] += 1
    track = ctx.state.approvals.get(body["approval"])
    if track is not None:
        track.refused += 1


def approval_change(ctx: RuleContext, index: int, entry: Entry) -> None:
    """An ``approval-grant``, ``-deny`` or ``-revoke`` entry: its transition must be
    allowed, a grant must come from a custodian approver other than the requester
    (its recorded ``approve`` decision is checked by
    :func:`~.decisions.approval_decision`), and the change must carry the
    approver's own signed statement (:func:`~.statements.statement_problem`); a
    grant without a valid one never counts."""
    body = entry.body
    t = entry.time
    track = ctx.state.approvals.get(str(body.get("approval")))
    if track is None:
        ctx.flag("approval_unknown", index, t,
                 f"{entry.type} entry {index} names an approval never requested in "
                 "this log")
        return
    track.changed_at = index  # every change entry is a new version, valid or not
    who = body.get("approver") if entry.type != "approval-revoke" else body.get("by")
    actor = dict(who) if isinstance(who, dict) else {}
    actor_id = str(actor.get("id"))
    closed = track.state in ("denied", "revoked")
    if closed or (t >= track.expires and entry.type != "approval-revoke"):
        ctx.flag("approval_invalid_transition", index, t,
                 f"{entry.type} entry {index} changes the approval requested at entry "
                 f"{track.index}, which was already {track.state if closed else 'expired'}")
        return
    signature = statement_problem(ctx, track, entry, actor_id)
    if entry.type in ("approval-revoke", "approval-deny"):
        if signature is not None:  # applied all the same: it only reduces access
            ctx.flag(signature[0], index, t, f"{entry.type} entry {index} (approval "
                                             f"requested at entry {track.index}): {signature[1]}")
        track.state = "revoked" if entry.type == "approval-revoke" else "denied"
        track.closed = [index, t, actor_id[:80]]
        return
    key = _statement_key(entry) if signature is None else None
    problem = grant_problem(ctx, track, actor) or signature or _key_problem(track, key)
    track.grants.append([actor_id[:80], index, t, problem is None, key])
    if problem is not None:
        kind, why = problem
        track.flagged = track.flagged or kind
        ctx.flag(kind, index, t, f"approval-grant entry {index} (approval requested at "
                                 f"entry {track.index}): {why}")
    if len(track.valid_approvers()) >= 2 and track.state == "pending":
        track.state, track.granted = "granted", [index, t]
    elif body.get("state") == "granted" and track.state != "granted" and problem is None:
        track.flagged = track.flagged or "approval_single_approver"
        ctx.flag("approval_single_approver", index, t,
                 f"approval-grant entry {index} declares the approval requested at entry "
                 f"{track.index} granted with {len(track.valid_approvers())} valid "
                 "custodian approver(s); two distinct ones are required")


def _statement_key(entry: Entry) -> str | None:
    """The key a (verified) statement names, or None (an unsigned older entry)."""
    statement = entry.body.get("statement")
    key = statement.get("key") if isinstance(statement, dict) else None
    return key[:80] if isinstance(key, str) else None


def _key_problem(track: ApprovalTrack, key: str | None) -> tuple[str, str] | None:
    """A grant signed with the key of an earlier counted grant of the same approval
    (one key-holder under two ids counts once)."""
    if key is not None and any(len(g) > 4 and g[3] and g[4] == key for g in track.grants):
        return ("approval_invalid_transition",
                "it is signed with the key of an earlier grant (one key-holder counts once)")
    return None


def grant_problem(ctx: RuleContext, track: ApprovalTrack, actor: Mapping[str, Any]
                  ) -> tuple[str, str] | None:
    """Why ``actor`` may not grant ``track``: ``(finding kind, explanation)``, or None."""
    actor_id = actor.get("id")
    if actor_id == track.requester.get("id"):
        return "approval_self_granted", "the requester granted their own request"
    roles = actor.get("roles")
    is_approver = (actor.get("org_kind") == "custodian" and isinstance(roles, list)
                   and "approver" in roles and actor.get("location") == track.home)
    if ctx.approvers:
        is_approver = is_approver and actor_id in ctx.approvers
    if not is_approver:
        return ("approval_by_non_approver",
                "the grantor is not a custodian approver of this jurisdiction")
    if any(g[0] == actor_id for g in track.grants):
        return ("approval_invalid_transition",
                "the same approver granted twice (it counts once)")
    return None


def approval_use(ctx: RuleContext, index: int, t: float, group: DecisionList, *,
                 principal: Mapping[str, Any], approval_id: str, used: list[str],
                 version: object = None, subject: object = None, record: object = None
                 ) -> None:
    """An access entry that presented an approval; ``used``: the fields it released
    that needed it; ``version``: its ``approval_version`` member (None when absent,
    as in entries written before it was recorded); ``subject``, ``record``: the
    entry's pseudonyms.  Counts the use, and flags a use the approval does not allow."""
    track = ctx.state.approvals.get(approval_id)
    if track is not None:
        track.uses += 1
        track.released += len(used)
        if version is not None and version != track.changed_at:
            approval_state_stale(ctx, index, t, track, version)
    if not used:
        return  # presented but not needed for anything released
    problem = use_problem(track, group, principal, used, t) or \
        reach_problem(track, subject, record)
    if problem is not None:
        kind, why = problem
        ctx.flag(kind, index, t, f"access entry {index} released {len(used)} field(s) "
                                 f"under an approval that {why}",
                 {"fields": [name(n) for n in used[:20]]})


def approval_state_stale(ctx: RuleContext, index: int, t: float, track: ApprovalTrack,
                         version: object) -> None:
    """approval_state_stale: an access entry decided under another state of the
    approval than the log's last change of it before the entry (the sequencer
    refuses such an entry; a gateway that logs one bypassed that check)."""
    shown = version if isinstance(version, int) and not isinstance(version, bool) \
        else "a malformed version"
    ctx.flag("approval_state_stale", index, t,
             f"access entry {index} was decided under the state of entry {shown} of the "
             f"approval requested at entry {track.index}, whose last change before it is "
             f"entry {track.changed_at}")


def reach_problem(track: ApprovalTrack | None, subject: object, record: object
                  ) -> tuple[str, str] | None:
    """Why a use of ``track`` (otherwise allowed) on ``subject``'s ``record`` goes beyond
    its reach: outside its subjects or records, or one distinct subject past its cap.
    Counts the subject as read under it when not."""
    if track is None:
        return None
    if (track.subjects and subject not in track.subjects) or \
            (track.records and record not in track.records):
        return ("approval_scope_exceeded",
                f"(requested at entry {track.index}) is limited to other subjects or records")
    if track.max_subjects is None or subject in track.read_subjects:
        return None
    if len(track.read_subjects) >= track.max_subjects:
        return ("approval_subject_cap_exceeded",
                f"(requested at entry {track.index}) had already released protected "
                f"fields of {track.max_subjects} distinct subjects, its cap")
    track.read_subjects.append(str(subject)[:80])
    return None


def use_problem(track: ApprovalTrack | None,  # noqa: PLR0911 (one rule each)
                group: DecisionList, principal: Mapping[str, Any], used: list[str], t: float
                ) -> tuple[str, str] | None:
    """Why a use of ``track`` at time ``t`` is not allowed (``(finding kind,
    explanation)``): unknown, out of scope, revoked or denied, expired, or not granted
    by two valid custodian approvers.  None when it is allowed."""
    if track is None:
        return "approval_unknown", "was never requested in this log"
    classes = {group.classes.get(n) for n in used}
    if principal.get("id") != track.requester.get("id") or \
            group.purpose != track.purpose or group.collection not in track.collections \
            or not classes <= set(track.classes):
        return ("approval_scope_exceeded",
                f"(requested at entry {track.index}) does not cover this principal, "
                "purpose, collection or class")
    if track.state in ("revoked", "denied"):
        assert track.closed is not None
        return ("approval_revoked",
                f"(requested at entry {track.index}) was {track.state} at entry "
                f"{track.closed[0]}")
    if t >= track.expires or group.now >= track.expires:
        return "approval_expired", f"(requested at entry {track.index}) had expired"
    valid = track.valid_approvers()
    if len(valid) >= 2:
        return None
    if len(valid) == 1:
        return ("approval_single_approver",
                f"(requested at entry {track.index}) had one valid custodian approver, "
                "not two")
    if track.flagged in ("approval_self_granted", "approval_by_non_approver"):
        return (track.flagged, f"(requested at entry {track.index}) was granted only by "
                               "principals who may not grant it")
    return "approval_not_granted", f"(requested at entry {track.index}) was not granted"
