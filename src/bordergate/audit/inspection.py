"""Entry-by-entry inspection of a verified log: replay, approvals, releases, data flows.

A :class:`LogInspector` is fed the entries of one jurisdiction's log in index
order, after the log-level check (:mod:`bordergate.audit.logcheck`) verified
them, and finds what DESIGN.md's Audit section asks for:

* **replay** (promise 4): every ``access``, ``write``, ``export`` and ``erase``
  decision, and the ``approve`` decision of approval changes, is re-evaluated
  with the policy bundle its entry names (:class:`~bordergate.audit.bundlestore.BundleStore`);
  the recorded input must also describe the entry's own request (principal,
  purpose, collection, gateway, time), and what the entry released must be
  what the decisions allowed;
* **approvals**: the auditor rebuilds each approval from ``approval-*``
  entries and checks every use: requested, granted by two distinct custodian
  approvers (never the requester), not expired, not revoked, scope covering
  the access;
* **releases** (promise 6): ``release``, ``release-review`` and
  ``gateway-start`` entries go through :class:`~bordergate.releases.ledger.ReleaseLedger`;
* **data flows** (promises 1, 2): no restricted field released across a
  border, to the parent organisation or in an export; no protected field
  released abroad without an approval; exports over at least k subjects;
  denied attempts by covered persons (the parent organisation abroad) are
  reported as denied attempts, not violations;
* **the entries themselves**: well-formed, time-ordered within the tolerance,
  no field values or raw ids (promise 7, :mod:`bordergate.audit.personal_data`).

Speed: entries are handled in chunks; decision lists (the ``decisions``
member, byte for byte) are parsed and replayed once per distinct list and
bundle, and each chunk's new lists are replayed in one batched Cedar call per
bundle.  Caching by identical bytes is exact: a decision is a pure function of
its recorded input and the bundle.

Pure apart from the injected bundle lookup: this module must never read a log
or a clock, and never put an entry's string values into a finding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bordergate.audit.bundlestore import BundleLookup
from bordergate.audit.findings import FINDING_KINDS, Finding
from bordergate.audit.personal_data import scan_entry
from bordergate.audit.tally import ApprovalTrack, Tally
from bordergate.entries import Entry, canonical_json, parse_entry
from bordergate.errors import VerificationError
from bordergate.policy.engine import Decision, PolicyEngine
from bordergate.policy.entities import DecisionInput, Field, RequestContext
from bordergate.releases.ledger import APPROVED, ReleaseLedger
from bordergate.releases.review import ReviewPolicy

__all__ = ["DECISION_TYPES", "InspectionState", "LogInspector"]

DECISION_TYPES = {"access": "read", "write": "write", "export": "export", "erase": "erase"}
_APPROVAL_CHANGES = ("approval-grant", "approval-deny", "approval-revoke")
_RELEASE_TYPES = ("release", "release-review", "gateway-start")
_CHUNK = 4096
_GROUP_CACHE = 65_536
_PLACEHOLDER = "\x00bordergate-audit-decisions\x00"
_PLACEHOLDER_JSON = json.dumps(_PLACEHOLDER).encode()
_DECISIONS_KEY = b'"decisions":['
_AFTER_DECISIONS = b'],"gateway":"'


def _reject_float(value: str) -> Any:
    raise ValueError("floats are not allowed in log entries")


@dataclass
class _Record:
    """One recorded decision of a list."""

    field: str | None
    field_class: str | None
    allowed: bool
    policy_ids: tuple[str, ...]
    errors: bool
    input: DecisionInput


@dataclass
class _Group:
    """A distinct recorded decision list (with its bundle), parsed once and replayed once."""

    digest: str
    records: list[_Record]
    problem: str | None = None          # why the list does not describe one request
    unreplayable: str | None = None     # a code, when it cannot be replayed
    mismatch: str | None = None         # what differs, when replay disagrees
    replayed: bool = False
    principal: dict[str, Any] = field(default_factory=dict)
    purpose: str = ""
    now: int = 0
    gateway: str = ""
    collection: str | None = None
    k: int | None = None
    action: str = ""
    approval_id: str | None = None
    allowed: frozenset[str] = frozenset()
    all_allowed: bool = False
    classes: dict[str, str] = field(default_factory=dict)
    needs_approval: frozenset[str] = frozenset()  # allowed fields whose permit needed it
    denials: list[tuple[str, str]] = field(default_factory=list)  # (class, reason)


@dataclass
class InspectionState:
    """What an inspector carries from one run to the next (JSON in the auditor's state).

    Attributes:
        size: entries inspected so far (the next index expected).
        max_time: the latest entry time seen.
        tally: the counts.
        approvals: the approvals by id.
        findings: every finding so far.
        release_entries: ``(index, entry text)`` of release-related entries (the
            ledger is rebuilt from them each run).
        flagged: dedupe keys of findings reported once per cause, with repeat counts.
    """

    size: int = 0
    max_time: float | None = None
    tally: Tally = field(default_factory=Tally)
    approvals: dict[str, ApprovalTrack] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    release_entries: list[tuple[int, str]] = field(default_factory=list)
    flagged: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "max_time": self.max_time, "tally": self.tally.to_json(),
                "approvals": {k: v.to_json() for k, v in self.approvals.items()},
                "findings": [f.to_json() for f in self.findings],
                "release_entries": [[i, t] for i, t in self.release_entries],
                "flagged": self.flagged}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InspectionState:
        """Rebuild from :meth:`to_json`.

        Raises:
            KeyError, TypeError, ValueError: a damaged state (the caller wraps it).
        """
        return cls(
            size=int(data["size"]),
            max_time=None if data["max_time"] is None else float(data["max_time"]),
            tally=Tally.from_json(data["tally"]),
            approvals={str(k): ApprovalTrack.from_json(v)
                       for k, v in dict(data["approvals"]).items()},
            findings=[Finding.from_json(f) for f in data["findings"]],
            release_entries=[(int(i), str(t)) for i, t in data["release_entries"]],
            flagged={str(k): int(v) for k, v in dict(data["flagged"]).items()})


class LogInspector:
    """Inspects one log's entries in index order (see the module docstring)."""

    def __init__(self, *, jurisdiction: str, origin: str,
                 bundles: Callable[[str], BundleLookup], reviewers: ReviewPolicy,
                 approvers: Iterable[str] = (), k_min: int = 50, tolerance: float = 5.0,
                 state: InspectionState | None = None) -> None:
        """Start (or continue from ``state``) the inspection of one log.

        Args:
            jurisdiction: the log's jurisdiction code (the home of its data).
            origin: the log's origin line.
            bundles: looks a policy bundle up by digest.
            reviewers: the release reviewers and approvals required.
            approvers: principal ids allowed to grant approvals (empty: any
                custodian principal with the ``approver`` role at home).
            k_min: the minimum subjects of an export.
            tolerance: seconds of clock disorder allowed between entries.
            state: the state saved by the last run, if any.
        """
        self.home = jurisdiction
        self.origin = origin
        self.bundles = bundles
        self.approvers = frozenset(approvers)
        self.k_min = k_min
        self.tolerance = tolerance
        self.state = state or InspectionState()
        self.ledger = ReleaseLedger(reviewers, log=origin)
        self._ledger_seen = 0
        for index, text in self.state.release_entries:
            self.ledger.add(index, parse_entry(text.encode("utf-8")))
        self._ledger_seen = len(self.ledger.findings)
        self._groups: dict[tuple[str, bytes], _Group] = {}
        self._chunk: list[tuple[int, bytes, Entry | VerificationError, _Group | None]] = []
        self._new_groups: list[_Group] = []
        self._release_ok: dict[tuple[str, str], bool] = {}

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far (earlier runs included), in the order found."""
        return self.state.findings

    @property
    def tally(self) -> Tally:
        return self.state.tally

    # -- feeding ----------------------------------------------------------------
    def feed(self, index: int, data: bytes) -> None:
        """Inspect the entry at ``index`` (indexes must follow each other).

        Raises:
            ValueError: ``index`` is not the next one (programmer misuse).
        """
        if index != self.state.size:
            raise ValueError(f"entry {index} fed, expected {self.state.size}")
        self.state.size = index + 1
        try:
            entry, group = self._parse(data)
        except VerificationError as exc:
            self._chunk.append((index, data, exc, None))
        else:
            self._chunk.append((index, data, entry, group))
        if len(self._chunk) >= _CHUNK:
            self.flush()

    def feed_all(self, first: int, entries: Iterable[bytes]) -> None:
        """Feed consecutive entries starting at ``first``."""
        for offset, data in enumerate(entries):
            self.feed(first + offset, data)

    def flush(self) -> None:
        """Replay the pending chunk's new decision lists and check its entries."""
        self._replay(self._new_groups)
        self._new_groups = []
        chunk, self._chunk = self._chunk, []
        for index, data, entry, group in chunk:
            if isinstance(entry, VerificationError):
                self.state.tally.entries["malformed"] += 1
                self._flag("entry_malformed", index, None,
                           f"entry {index} is not a well-formed log entry ({entry.code}): "
                           f"{_describe(entry)}", {"code": entry.code})
            else:
                self._check(index, data, entry, group)
        if len(self._groups) > _GROUP_CACHE:
            self._groups.clear()

    def finish(self) -> InspectionState:
        """Flush and return the state to save."""
        self.flush()
        return self.state

    # -- parsing ------------------------------------------------------------------
    def _parse(self, data: bytes) -> tuple[Entry, _Group | None]:
        split = _split_decisions(data)
        if split is not None:
            rest, decisions = split
            try:
                entry = parse_entry(rest)
            except VerificationError:
                entry = None
            if entry is not None and entry.body.get("decisions") == _PLACEHOLDER \
                    and rest.count(_PLACEHOLDER_JSON) == 1 and entry.type in DECISION_TYPES:
                digest = entry.body.get("bundle")
                key = (digest if isinstance(digest, str) else "", decisions)
                group = self._groups.get(key)
                if group is None:
                    value = _canonical_list(decisions)
                    if value is not None:
                        group = self._group(key, value)
                if group is not None:
                    return entry, group
        entry = parse_entry(data)
        if entry.type in DECISION_TYPES:
            value = entry.body.get("decisions")
            if not isinstance(value, list):
                raise VerificationError("decisions is not a list", code="malformed_entry")
            digest = entry.body.get("bundle")
            key = (digest if isinstance(digest, str) else "", canonical_json(value))
            return entry, self._groups.get(key) or self._group(key, value)
        if entry.type in _APPROVAL_CHANGES and isinstance(entry.body.get("decision"), dict):
            digest = entry.body.get("bundle")
            value = [entry.body["decision"]]
            key = (digest if isinstance(digest, str) else "", canonical_json(value))
            return entry, self._groups.get(key) or self._group(key, value)
        return entry, None

    def _group(self, key: tuple[str, bytes], value: list[Any]) -> _Group:
        group = _parse_group(key[0], value)
        self._groups[key] = group
        if group.problem is None:
            self._new_groups.append(group)
        return group

    # -- replay -------------------------------------------------------------------
    def _replay(self, groups: list[_Group]) -> None:
        by_digest: dict[str, list[_Group]] = {}
        for g in groups:
            if not g.replayed:
                by_digest.setdefault(g.digest, []).append(g)
        for digest, todo in by_digest.items():
            lookup = self.bundles(digest)
            for g in todo:
                g.replayed = True
            if lookup.engine is None:
                for g in todo:
                    g.unreplayable = lookup.code or "bundle_unavailable"
                continue
            _replay_with(lookup.engine, todo)

    # -- checks -------------------------------------------------------------------
    def _check(self, index: int, data: bytes, entry: Entry, group: _Group | None) -> None:
        st = self.state
        tally = st.tally
        t = entry.time
        tally.entries[entry.type] += 1
        if tally.first_time is None or t < tally.first_time:
            tally.first_time = t
        if tally.last_time is None or t > tally.last_time:
            tally.last_time = t
        if st.max_time is not None and t < st.max_time - self.tolerance:
            self._flag("entry_time_regression", index, t,
                       f"entry {index} is {st.max_time - t:.3f} s older than an earlier entry "
                       f"(tolerance {self.tolerance:g} s)",
                       {"behind_s": round(st.max_time - t, 3)})
        if st.max_time is None or t > st.max_time:
            st.max_time = t
        hits = scan_entry(data, lambda: self._full_body(entry, group))
        if hits:
            tally.pii_hits += 1
            kinds = sorted({k for k, _ in hits})
            self._flag("personal_data_in_entry", index, t,
                       f"entry {index} holds what looks like {', '.join(kinds)} at "
                       f"{', '.join(p for _, p in hits[:5])}",
                       {"kinds": kinds, "paths": [p for _, p in hits[:20]]})
        kind = entry.type
        if kind in DECISION_TYPES:
            assert group is not None
            self._decision_entry(index, entry, group)
        elif kind == "approval-request":
            self._approval_request(index, entry)
        elif kind in _APPROVAL_CHANGES:
            self._approval_change(index, entry, group)
        elif kind in _RELEASE_TYPES:
            st.release_entries.append((index, data.decode("utf-8")))
            self.ledger.add(index, entry)
            if kind == "release-review":
                self._release_ok.clear()
            self._ledger_findings(entry)
        elif kind == "key-event":
            tally.key_events[str(entry.body.get("kind"))[:40]] += 1

    def _full_body(self, entry: Entry, group: _Group | None) -> Mapping[str, Any]:
        if group is None or entry.body.get("decisions") != _PLACEHOLDER:
            return entry.body
        return {**entry.body, "decisions": [{"field": r.field, "class": r.field_class,
                                             "input": r.input.to_json()}
                                            for r in group.records]}

    def _ledger_findings(self, entry: Entry) -> None:
        new = self.ledger.findings[self._ledger_seen:]
        self._ledger_seen = len(self.ledger.findings)
        for f in new:
            code = f.code if f.code in FINDING_KINDS else "review_invalid"
            self._flag(code, f.index, entry.time, _clean(f.message), {"code": f.code})

    # decisions ---------------------------------------------------------------------
    def _decision_entry(self, index: int, entry: Entry, group: _Group) -> None:
        body = entry.body
        tally = self.state.tally
        t = entry.time
        outcome = body.get("outcome")
        tally.outcomes[f"{entry.type}/{outcome}"[:60]] += 1
        principal = body.get("principal")
        if not isinstance(principal, dict):
            principal = {}
        location = str(principal.get("location"))[:16]
        org_kind = str(principal.get("org_kind"))[:16]
        tally.principals[f"{org_kind}/{location}"] += 1
        digest = str(body.get("bundle"))[:80]
        tally.bundles[digest] += len(group.records)
        tally.replay["decisions"] += len(group.records)
        if group.problem is not None:
            self._flag("decision_input_inconsistent", index, t,
                       f"{entry.type} entry {index}: {group.problem}")
            tally.minute(t, 2)
            return
        if not self._replay_verdict(index, entry, group):
            tally.minute(t, 2)
            return
        problem = self._consistency(entry, group, principal)
        if problem is not None:
            self._flag("decision_input_inconsistent", index, t,
                       f"{entry.type} entry {index}: the recorded decision input {problem}")
        self._release_check(index, entry)
        purpose = group.purpose
        if entry.type == "access":
            self._access(index, entry, group, principal=principal, location=location,
                         org_kind=org_kind, purpose=purpose)
        elif entry.type == "export":
            self._export(index, entry, group, location, purpose)
        else:
            if outcome == "allow" and not group.all_allowed:
                self._flag("released_without_permit", index, t,
                           f"{entry.type} entry {index} says 'allow' but its recorded "
                           "decisions did not allow everything")
            tally.minute(t, 0 if outcome == "allow" else 2)
        for cls, reason in group.denials:
            tally.denials[reason] += 1
            tally.withheld[f"{location}>{self.home}>{cls}>{purpose}"] += 1

    def _replay_verdict(self, index: int, entry: Entry, group: _Group) -> bool:
        """Flag replay problems; False when the entry's decisions cannot be trusted."""
        tally = self.state.tally
        if group.unreplayable is not None:
            tally.replay["unreplayed"] += len(group.records)
            code = group.unreplayable
            if code in ("bundle_unavailable", "bundle_digest_mismatch"):
                lookup = self.bundles(group.digest)
                self._flag_once(code, f"{code}:{group.digest}", index, entry.time,
                                explanation=f"{entry.type} entry {index} names policy bundle "
                                f"{_short(group.digest)}: {_clean(lookup.reason)}",
                                detail={"bundle": _short(group.digest)})
            else:
                self._flag("decision_unreplayable", index, entry.time,
                           f"{entry.type} entry {index}: its recorded decision input cannot be "
                           f"replayed ({code})", {"code": code})
            return False
        if group.mismatch is not None:
            tally.replay["mismatches"] += 1
            self._flag("decision_mismatch", index, entry.time,
                       f"{entry.type} entry {index}: {group.mismatch}")
            return False
        return True

    def _consistency(self, entry: Entry, group: _Group,  # noqa: PLR0911 (one rule each)
                     principal: Mapping[str, Any]) -> str | None:
        body = entry.body
        if group.action != DECISION_TYPES[entry.type]:
            return f"is a {group.action!r} decision"
        if group.principal != principal:
            return "names another principal than the entry"
        if group.purpose != body.get("purpose"):
            return "names another purpose than the entry"
        if group.gateway != self.home or body.get("gateway", self.home) != self.home:
            return f"was not decided by the gateway of {self.home}"
        if entry.type != "erase" and group.collection != body.get("collection"):
            return "names another collection than the entry"
        if abs(group.now - entry.time) > self.tolerance + 1:
            return f"was decided {abs(group.now - entry.time):.0f} s away from the entry's time"
        if entry.type == "export" and group.k != body.get("k"):
            return "names another k than the entry"
        if entry.type == "access" and group.approval_id is not None and \
                group.approval_id != body.get("approval"):
            return "presents another approval than the entry"
        return None

    def _release_check(self, index: int, entry: Entry) -> None:
        release = entry.body.get("release")
        digest = entry.body.get("bundle")
        if not isinstance(release, str):
            return  # a gateway without a release started unreviewed: flagged at its start
        key = (release, str(digest))
        ok = self._release_ok.get(key)
        if ok is None:
            record = self.ledger.releases.get(release)
            ok = record is not None and record.state == APPROVED and \
                record.manifest.policy_digest == digest
            self._release_ok[key] = ok
        if not ok:
            self._flag_once("decision_release_mismatch", f"release:{release}:{digest}", index,
                            entry.time,
                            explanation=f"{entry.type} entry {index} names release "
                            f"{_short(release)}, which is not an approved release of policy bundle "
                            f"{_short(str(digest))} at that point of the log")

    def _access(self, index: int, entry: Entry, group: _Group, *,
                principal: Mapping[str, Any], location: str, org_kind: str,
                purpose: str) -> None:
        body = entry.body
        tally = self.state.tally
        t = entry.time
        released = body.get("released")
        if not isinstance(released, list):
            released = []
        names = [r for r in released if isinstance(r, str)]
        outcome = body.get("outcome")
        extra = [n for n in names if n not in group.allowed]
        if extra or len(names) != len(released) or (outcome == "allow" and
                                                     not group.all_allowed):
            self._flag("released_without_permit", index, t,
                       f"access entry {index} released {len(extra)} field(s) its recorded "
                       "decisions denied", {"fields": [_name(n) for n in extra[:20]]})
        abroad = location != self.home
        classes = {group.classes.get(n) for n in names if n in group.allowed}
        tally.minute(t, 0 if outcome == "allow" else 1 if names else 2)
        for n in names:
            cls = group.classes.get(n)
            if cls is not None:
                tally.flows[f"{location}>{self.home}>{cls}>{purpose}"] += 1
        if "restricted" in classes and abroad:
            self._flag("restricted_released_abroad", index, t,
                       f"access entry {index} released restricted data of {self.home} to a "
                       f"principal located in {_code(location)}")
        elif "restricted" in classes and org_kind == "parent":
            self._flag("restricted_released_to_parent", index, t,
                       f"access entry {index} released restricted data to the parent "
                       "organisation")
        approval_id = body.get("approval")
        used = [n for n in names if n in group.needs_approval]
        if isinstance(approval_id, str):
            self._approval_use(index, entry, group, principal=principal,
                               approval_id=approval_id, used=used)
        if "protected" in classes and abroad:
            unapproved = [n for n in names if group.classes.get(n) == "protected"
                          and n not in group.needs_approval]
            if unapproved:
                self._flag("protected_released_abroad_without_approval", index, t,
                           f"access entry {index} released {len(unapproved)} protected "
                           f"field(s) of {self.home} to a principal located in "
                           f"{_code(location)} without an approval",
                           {"fields": [_name(n) for n in unapproved[:20]]})
        if org_kind == "parent" and abroad:
            denied = sorted({c for c, _ in group.denials if c in ("protected", "restricted")})
            if denied:
                self._flag("covered_person_denied", index, t,
                           f"access entry {index}: a parent-organisation principal located in "
                           f"{_code(location)} asked for {' and '.join(denied)} data of "
                           f"{self.home} and was denied", {"classes": denied})

    def _export(self, index: int, entry: Entry, group: _Group, location: str,
                purpose: str) -> None:
        body = entry.body
        tally = self.state.tally
        t = entry.time
        allowed = body.get("outcome") == "allow"
        tally.exports["allowed" if allowed else "denied"] += 1
        tally.minute(t, 0 if allowed else 2)
        if not allowed:
            return
        if not group.all_allowed:
            self._flag("released_without_permit", index, t,
                       f"export entry {index} was released though its decision denied it")
        k = body.get("k")
        if isinstance(k, int) and not isinstance(k, bool) and \
                (tally.min_export_k is None or k < tally.min_export_k):
            tally.min_export_k = k
        for cls in {group.classes.get(n) for n in group.allowed}:
            tally.flows[f"{location}>{self.home}>{cls} (aggregate)>{purpose}"] += 1
        if not isinstance(k, int) or isinstance(k, bool) or k < self.k_min:
            self._flag("export_below_k", index, t,
                       f"export entry {index} released an aggregate over k={_int(k)} subjects; "
                       f"the minimum is {self.k_min}", {"k": _int(k), "k_min": self.k_min})
        if "restricted" in group.classes.values():
            self._flag("restricted_exported", index, t,
                       f"export entry {index} released an aggregate of a restricted field")

    # approvals ----------------------------------------------------------------------
    def _approval_request(self, index: int, entry: Entry) -> None:
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
                home=str(body.get("gateway", self.home)),
                requested_at=_whole(body.get("requested_at", int(entry.time))),
                expires=_whole(body["expires"]))
        except (KeyError, TypeError, ValueError):
            self._flag("entry_malformed", index, entry.time,
                       f"approval-request entry {index} lacks a well-formed approval, requester "
                       "or scope", {"code": "malformed_approval"})
            return
        if approval in self.state.approvals:
            self._flag("approval_invalid_transition", index, entry.time,
                       f"approval-request entry {index} reuses the id of the approval requested "
                       f"at entry {self.state.approvals[approval].index}")
            return
        self.state.approvals[approval] = track

    def _approval_change(self, index: int, entry: Entry, group: _Group | None) -> None:
        body = entry.body
        t = entry.time
        if group is not None:
            if group.problem is not None:
                self._flag("decision_input_inconsistent", index, t,
                           f"{entry.type} entry {index}: {group.problem}")
            elif self._replay_verdict(index, entry, group):
                self.state.tally.replay["decisions"] += len(group.records)
        track = self.state.approvals.get(str(body.get("approval")))
        if track is None:
            self._flag("approval_unknown", index, t,
                       f"{entry.type} entry {index} names an approval never requested in "
                       "this log")
            return
        who = body.get("approver") if entry.type != "approval-revoke" else body.get("by")
        actor = dict(who) if isinstance(who, dict) else {}
        actor_id = str(actor.get("id"))
        closed = track.state in ("denied", "revoked")
        if closed or (t >= track.expires and entry.type != "approval-revoke"):
            self._flag("approval_invalid_transition", index, t,
                       f"{entry.type} entry {index} changes the approval requested at entry "
                       f"{track.index}, which was already {track.state if closed else 'expired'}")
            return
        if entry.type == "approval-revoke":
            track.state, track.closed = "revoked", [index, t, actor_id[:80]]
            return
        if entry.type == "approval-deny":
            track.state, track.closed = "denied", [index, t, actor_id[:80]]
            return
        problem = self._grant_problem(track, actor)
        track.grants.append([actor_id[:80], index, t, problem is None])
        if problem is not None:
            kind, why = problem
            track.flagged = track.flagged or kind
            self._flag(kind, index, t, f"approval-grant entry {index} (approval requested at "
                                       f"entry {track.index}): {why}")
        if len(track.valid_approvers()) >= 2 and track.state == "pending":
            track.state, track.granted = "granted", [index, t]
        elif body.get("state") == "granted" and track.state != "granted" and problem is None:
            track.flagged = track.flagged or "approval_single_approver"
            self._flag("approval_single_approver", index, t,
                       f"approval-grant entry {index} declares the approval requested at entry "
                       f"{track.index} granted with {len(track.valid_approvers())} valid "
                       "custodian approver(s); two distinct ones are required")

    def _grant_problem(self, track: ApprovalTrack, actor: Mapping[str, Any]
                       ) -> tuple[str, str] | None:
        actor_id = actor.get("id")
        if actor_id == track.requester.get("id"):
            return "approval_self_granted", "the requester granted their own request"
        roles = actor.get("roles")
        is_approver = (actor.get("org_kind") == "custodian" and isinstance(roles, list)
                       and "approver" in roles and actor.get("location") == track.home)
        if self.approvers:
            is_approver = is_approver and actor_id in self.approvers
        if not is_approver:
            return ("approval_by_non_approver",
                    "the grantor is not a custodian approver of this jurisdiction")
        if any(g[0] == actor_id for g in track.grants):
            return ("approval_invalid_transition",
                    "the same approver granted twice (it counts once)")
        return None

    def _approval_use(self, index: int, entry: Entry, group: _Group, *,
                      principal: Mapping[str, Any], approval_id: str, used: list[str]) -> None:
        track = self.state.approvals.get(approval_id)
        if track is not None:
            track.uses += 1
            track.released += len(used)
        if not used:
            return  # presented but not needed for anything released
        t = entry.time
        problem = self._use_problem(track, group, principal, used, t)
        if problem is not None:
            kind, why = problem
            self._flag(kind, index, t, f"access entry {index} released {len(used)} field(s) "
                                       f"under an approval that {why}",
                       {"fields": [_name(n) for n in used[:20]]})

    def _use_problem(self, track: ApprovalTrack | None,  # noqa: PLR0911 (one rule each)
                     group: _Group, principal: Mapping[str, Any], used: list[str], t: float
                     ) -> tuple[str, str] | None:
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

    # flags ------------------------------------------------------------------------------
    def _flag(self, kind: str, index: int | None, time: float | None, explanation: str,
              detail: Mapping[str, Any] | None = None) -> None:
        self.state.findings.append(Finding(kind, self.home, self.origin, index, explanation,
                                           time, dict(detail or {})))

    def _flag_once(self, kind: str, key: str, index: int, time: float, *, explanation: str,
                   detail: Mapping[str, Any] | None = None) -> None:
        """Flag the first entry of one cause; later ones only count (shown in the report)."""
        seen = self.state.flagged.get(key)
        if seen is not None:
            self.state.flagged[key] = seen + 1
            return
        self.state.flagged[key] = 0
        self._flag(kind, index, time, explanation, {**(detail or {}), "repeat_key": key})


# -- decision lists ---------------------------------------------------------------------
def _split_decisions(data: bytes) -> tuple[bytes, bytes] | None:
    """The entry with its decisions array replaced by a placeholder, and that array.

    Only a shortcut: the caller re-checks both halves, and falls back to a full
    parse whenever they do not recombine into a canonical entry.
    """
    i = data.find(_DECISIONS_KEY)
    if i < 0:
        return None
    start = i + len(_DECISIONS_KEY) - 1
    j = data.find(_AFTER_DECISIONS, start)
    if j < 0:
        return None
    return data[:start] + _PLACEHOLDER_JSON + data[j + 1:], data[start:j + 1]


def _canonical_list(data: bytes) -> list[Any] | None:
    try:
        value = json.loads(data, parse_float=_reject_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    try:
        if canonical_json(value) != data:
            return None
    except ValueError:
        return None
    return value


def _parse_group(digest: str, value: list[Any]) -> _Group:  # noqa: PLR0911 (one per defect)
    records: list[_Record] = []
    group = _Group(digest, records)
    if not value:
        group.problem = "records no decision"
        return group
    for i, item in enumerate(value):
        try:
            if not isinstance(item, dict):
                raise TypeError("not an object")
            decision_input = DecisionInput.from_json(item.get("input"))
            allowed, ids = item.get("allowed"), item.get("policy_ids")
            if not isinstance(allowed, bool) or not isinstance(ids, list) or \
                    not all(isinstance(x, str) for x in ids):
                raise TypeError("allowed or policy_ids")
        except (TypeError, VerificationError) as exc:
            group.problem = f"decision {i} is malformed ({_describe(exc)})"
            return group
        resource = decision_input.resource
        name = item.get("field")
        cls = item.get("class")
        if isinstance(resource, Field) and (name != resource.name or
                                            cls != resource.field_class):
            group.problem = f"decision {i} names another field or class than its input"
            return group
        records.append(_Record(name if isinstance(name, str) else None,
                               cls if isinstance(cls, str) else None, allowed,
                               tuple(sorted(ids)), bool(item.get("errors")), decision_input))
    first = records[0].input
    context = first.context
    group.principal = first.principal.to_json()
    group.purpose, group.now, group.gateway = context.purpose, context.now, context.gateway
    group.k, group.action = context.k, first.action
    group.approval_id = context.approval.id if context.approval is not None else None
    if isinstance(first.resource, Field):
        group.collection = first.resource.collection
    for r in records[1:]:
        if r.input.principal != first.principal or r.input.context != context or \
                r.input.action != first.action:
            group.problem = "holds decisions of different requests"
            return group
        if isinstance(r.input.resource, Field) and r.input.resource.collection != \
                group.collection:
            group.problem = "holds decisions about different collections"
            return group
    homes = {getattr(r.input.resource, "home", None) for r in records}
    if len(homes) != 1:
        group.problem = "holds decisions about data of different homes"
        return group
    group.allowed = frozenset(r.field for r in records if r.allowed and r.field is not None)
    group.all_allowed = all(r.allowed for r in records)
    group.classes = {r.field: r.field_class for r in records
                     if r.field is not None and r.field_class is not None}
    return group


def _replay_with(engine: PolicyEngine, groups: list[_Group]) -> None:
    """Replay every decision of ``groups`` in one batch; set each group's verdict."""
    purposes = engine.bundle.purposes
    ok: list[_Group] = []
    for g in groups:
        if any(r.input.context.purpose not in purposes for r in g.records):
            g.unreplayable = "unknown_purpose"
        else:
            ok.append(g)
    inputs = [r.input for g in ok for r in g.records]
    # The approval's part in each allowed decision that presented one: decided again
    # without it (exact: same bundle, same input, approval removed).
    bare: list[DecisionInput] = []
    for g in ok:
        for r in g.records:
            if r.allowed and r.input.context.approval is not None:
                bare.append(_without_approval(r.input))
    decided = engine.decide_many(inputs + bare) if inputs else []
    results = iter(decided[:len(inputs)])
    bare_results = iter(decided[len(inputs):])
    for g in ok:
        needs: set[str] = set()
        for i, r in enumerate(g.records):
            d = next(results)
            if g.mismatch is None and (d.allowed != r.allowed or d.policy_ids != r.policy_ids):
                g.mismatch = (f"decision {i} was recorded as "
                              f"{'allow' if r.allowed else 'deny'} {list(r.policy_ids)} but "
                              f"replays as {'allow' if d.allowed else 'deny'} "
                              f"{list(d.policy_ids)}")
            if not r.allowed:
                g.denials.append((r.field_class or "subject", _reason(r, d)))
            if r.allowed and r.input.context.approval is not None and \
                    not next(bare_results).allowed and r.field is not None:
                needs.add(r.field)
        g.needs_approval = frozenset(needs)


def _without_approval(item: DecisionInput) -> DecisionInput:
    c = item.context
    return DecisionInput(item.principal, item.action, item.resource,
                         RequestContext(c.purpose, c.now, c.gateway, c.k_min, c.k, None))


def _reason(record: _Record, decision: Decision) -> str:
    """Why a field was denied, as the gateway explains it (gateway.decisions.withheld_reason)."""
    if decision.errors or record.errors:
        return "policy_error"
    if record.policy_ids:
        return " + ".join(record.policy_ids)
    if record.field_class == "protected":
        return "no_approval" if record.input.context.approval is None else "approval_not_valid"
    return "not_permitted"


# -- small text helpers: never echo untrusted strings verbatim ---------------------------
def _describe(exc: BaseException) -> str:
    return _clean(str(exc))[:160]


def _clean(text: str) -> str:
    """A message with anything that is not plain printable ASCII replaced."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:400]


def _short(text: str) -> str:
    return _clean(text)[:24] + ("..." if len(text) > 24 else "")


def _code(text: str) -> str:
    return text if text.isascii() and text.isalnum() and len(text) <= 16 else "?"


def _name(text: str) -> str:
    return _clean(text)[:64]


def _int(value: object) -> int | str:
    return value if isinstance(value, int) and not isinstance(value, bool) else "?"


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError("not a whole number of seconds")
    return value

