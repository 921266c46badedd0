"""Entry-by-entry inspection of a verified log: replay, approvals, releases, data flows.

A :class:`LogInspector` is fed the entries of one jurisdiction's log in index
order, after the log-level check (:mod:`bordergate.audit.logcheck`) verified
them, and finds what docs/design.md ("The auditor") asks for:

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
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bordergate.audit.bundlestore import BundleLookup
from bordergate.audit.findings import FINDING_KINDS, Finding
from bordergate.audit.personal_data import scan_entry
from bordergate.audit.tally import ApprovalTrack, Tally
from bordergate.entries import ENTRY_TYPES, ENTRY_VERSION, Entry, canonical_json, parse_entry
from bordergate.errors import VerificationError
from bordergate.policy.engine import Decision, PolicyEngine
from bordergate.policy.entities import DecisionInput, Field, RequestContext
from bordergate.releases.ledger import APPROVED, ReleaseLedger
from bordergate.releases.review import ReviewPolicy

__all__ = ["DECISION_TYPES", "InspectionState", "LogInspector", "fast_parse_entry"]

DECISION_TYPES = {"access": "read", "write": "write", "export": "export", "erase": "erase"}
_APPROVAL_CHANGES = ("approval-grant", "approval-deny", "approval-revoke")
_RELEASE_TYPES = ("release", "release-review", "gateway-start")
_CHUNK = 4096
_GROUP_CACHE = 65_536
_PLACEHOLDER = "\x00bordergate-audit-decisions\x00"
_PLACEHOLDER_JSON = json.dumps(_PLACEHOLDER).encode()
_PSEUDONYM = re.compile(r"(?:subject|record):[0-9a-f]{64}")
_DECISIONS_KEY = b'"decisions":['
_NOW = re.compile(rb'"now":([0-9]+)')
_CANONICAL_INT = re.compile(rb"0|[1-9][0-9]{0,18}")
_MAX_LONG = 2**63 - 1
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
    raw: bytes = b""                    # the list's canonical bytes
    pii: list[tuple[str, str]] | None = None  # its personal-data scan, once


_INDEX = "\x00index\x00"
_ShapeKey = tuple[bytes, bytes, bytes]
_Scan = list[tuple[str, str]]


@dataclass(slots=True)
class _Shape:
    """What every entry of one shape shares (see :meth:`LogInspector._parse`).

    ``entry`` is the first entry of the shape: its record, subject and time are its
    own, everything else is every entry's of the shape.
    """

    key: _ShapeKey
    entry: Entry
    group: _Group
    rest_hits: _Scan                    # the personal-data scan but for the decision list
    hits: _Scan | None = None           # the whole scan (set at the first check)
    plan: _Plan | None = None           # set at the first check, after replay
    counts: list[tuple[Any, str, int]] = field(default_factory=list)  # with the entry count


@dataclass
class _Plan:
    """The shape-determined checks of a decision entry (see LogInspector._decision_entry)."""

    counts: list[tuple[Any, str, int]] = field(default_factory=list)
    flags: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    slot: int | None = None
    trusted: bool = False
    replay_issue: str | None = None
    approval: tuple[str, list[str]] | None = None
    principal: dict[str, Any] = field(default_factory=dict)
    release: tuple[str, str] | None = None  # (release, bundle) when the entry names one


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
        self._chunk: list[tuple[int, bytes | _Scan, Entry | VerificationError,
                                _Group | None, _ShapeKey | None] | tuple[int, float, _Shape]
                          ] = []
        self._plans: dict[_ShapeKey, _Plan] = {}
        self._now_templates: dict[tuple[str, bytes], _Group] = {}
        self._new_groups: list[_Group] = []
        self._release_ok: dict[tuple[str, str], bool] = {}
        self._scans: dict[bytes, list[tuple[str, str]]] = {}
        self._shapes: dict[_ShapeKey, _Shape] = {}
        self._rest_shapes: dict[_ShapeKey, Entry] = {}
        self._minute: int | None = None     # the last minute counted, and its row
        self._ahead: list[tuple[list[Any], list[Any]]] | None = None  # see parse_ahead
        self._sent: list[_Shape] = []
        self._received: list[_Shape] = []
        self._minute_row: list[int] = []

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
        self.feed_all(index, (data,))

    def feed_all(self, first: int, entries: Iterable[bytes]) -> None:
        """Feed consecutive entries starting at ``first`` (:meth:`feed` each, faster).

        Raises:
            ValueError: ``first`` is not the next index (programmer misuse).
        """
        st = self.state
        if first != st.size:
            raise ValueError(f"entry {first} fed, expected {st.size}")
        match = _SHAPE.match
        shapes = self._shapes
        window_time = _window_time
        micros, fractions = _WINDOW_MICROS, _FRACTION_MICROS
        index = first
        for data in entries:
            st.size = index + 1
            chunk = self._chunk
            m = match(data)
            if m is not None:
                hit = shapes.get((m[1], m[3], m[6]))
                if hit is not None:
                    when = m[5]
                    base, frac = micros.get(when[:19]), fractions.get(when[19:])
                    t = (base + frac) / 10**6 if base is not None and frac is not None \
                        else window_time(when)  # as _window_time, inline
                    if t is not None:  # an entry of a known shape: parsed already
                        chunk.append((index, t, hit))
                        if len(chunk) >= _CHUNK:
                            self.flush()
                        index += 1
                        continue
            try:
                entry, group, scanned, shape = self._parse_new(data, m)
            except VerificationError as exc:
                chunk.append((index, data, exc, None, None))
            else:
                chunk.append((index, scanned, entry, group, shape))
            if len(chunk) >= _CHUNK:
                self.flush()
            index += 1

    def parse_ahead(self, first: int, batches: Iterable[list[bytes]]
                    ) -> Iterator[tuple[list[Any], list[Any]]]:
        """Parse and replay entries for another inspector, checking nothing.

        For an auditor using a second CPU: this inspector (fresh, in another
        process) parses the entries from ``first`` and replays their decision
        lists; the inspector holding the state gets each yielded part, in order,
        through :meth:`feed_parsed` and checks it exactly as if it had been fed
        the entries.  Parsing and replay depend on nothing but the entries and the
        bundles, so where they run does not change any finding.

        Yields:
            ``(new shapes, items)`` per chunk (picklable).
        """
        self.state.size = first
        ready: list[tuple[list[Any], list[Any]]] = []
        self._ahead = ready
        sent: dict[int, int] = {}
        for entries in batches:
            self.feed_all(first, entries)
            first += len(entries)
            while ready:
                yield self._numbered(ready.pop(0), sent)
        self.flush()
        while ready:
            yield self._numbered(ready.pop(0), sent)

    def _numbered(self, part: tuple[list[Any], list[Any]], sent: dict[int, int]
                  ) -> tuple[list[Any], list[Any]]:
        """A chunk whose shapes are sent once, then named by number."""
        new: list[_Shape] = []
        items: list[Any] = []
        for item in part[1]:
            if len(item) == 3:
                number = sent.get(id(item[2]))
                if number is None:
                    number = sent[id(item[2])] = len(self._sent)
                    self._sent.append(item[2])  # kept: ids stay unique
                    new.append(item[2])
                items.append((item[0], item[1], number))
            else:
                items.append(item)
        return new, items

    def feed_parsed(self, part: tuple[list[Any], list[Any]]) -> None:
        """Check a part that :meth:`parse_ahead` yielded (its entries come next).

        Raises:
            ValueError: the part does not start at the next index (programmer misuse).
        """
        new, items = part
        self._received.extend(new)
        self.flush()
        if not items:
            return
        if items[0][0] != self.state.size:
            raise ValueError(f"entry {items[0][0]} fed, expected {self.state.size}")
        shapes = self._received
        self._chunk = [(i[0], i[1], shapes[i[2]]) if len(i) == 3 else i for i in items]
        self.state.size = items[-1][0] + 1
        self.flush()

    def flush(self) -> None:
        """Replay the pending chunk's new decision lists and check its entries."""
        self._replay(self._new_groups)
        self._new_groups = []
        chunk, self._chunk = self._chunk, []
        if len(self._groups) > _GROUP_CACHE:
            self._groups.clear()
        if self._ahead is not None:
            self._ahead.append(([], chunk))
            return
        for item in chunk:
            if len(item) == 3:
                self._check_shaped(*item)
                continue
            index, data, entry, group, shape = item
            if isinstance(entry, VerificationError):
                self.state.tally.entries["malformed"] += 1
                self._flag("entry_malformed", index, None,
                           f"entry {index} is not a well-formed log entry ({entry.code}): "
                           f"{_describe(entry)}", {"code": entry.code})
            else:
                self._check(index, data, entry, group, shape)

    def finish(self) -> InspectionState:
        """Flush and return the state to save."""
        self.flush()
        return self.state

    # -- parsing ------------------------------------------------------------------
    def _parse(self, data: bytes) -> tuple[Entry, _Group | None, bytes | _Scan,
                                           _ShapeKey | None]:
        """The entry, its decision list, and either the bytes the personal-data scan must
        read (without the decision list, scanned once per list) or that scan's result.

        Entries of one *shape* (byte-identical but for their record and subject
        pseudonyms and their time) parse alike: the first is parsed in full and
        checked to differ from a sentinel copy only in those three members; the
        others reuse its parse (see :func:`_shape`).  :meth:`feed` does the same
        without building the others' entries (their checks read only the time).
        """
        m = _SHAPE.match(data)
        shape = _shape(m)
        if shape is not None:
            key, windows = shape
            hit = self._shapes.get(key)
            if hit is not None:
                entry = _reshaped(hit.entry, windows)
                if entry is not None:
                    return entry, hit.group, hit.rest_hits, key
        return self._parse_new(data, m)

    def _parse_new(self, data: bytes, m: re.Match[bytes] | None
                   ) -> tuple[Entry, _Group | None, bytes | _Scan, _ShapeKey | None]:
        """:meth:`_parse` of an entry of no known shape (``m``: its match of :data:`_SHAPE`).

        Entries of one shape but for their decision list (most often its decision
        time) share the rest: that rest, with a placeholder for the list, is parsed
        once, checked like a shape against a sentinel copy, and reused (the list is
        parsed on its own, see :meth:`_group_from_bytes`).
        """
        shape = _shape(m)
        layout = _layout(data, m)
        if shape is not None and layout is not None:
            rest, decisions, rest_key = layout
            template = self._rest_shapes.get(rest_key)
            entry_or_none = None if template is None else _reshaped(template, shape[1])
            if entry_or_none is not None:
                digest = entry_or_none.body.get("bundle")
                key = (digest if isinstance(digest, str) else "", decisions)
                found = self._groups.get(key) or self._group_from_bytes(key)
                if found is not None:
                    return self._new_shape(shape[0], entry_or_none, found, rest)
        entry, group, scanned = self._parse_full(data)
        if shape is not None and layout is not None and group is not None and \
                scanned == layout[0] and entry.body.get("decisions") == _PLACEHOLDER and \
                self._same_rest_shape(layout[2], shape[1], entry):
            if len(self._rest_shapes) > _GROUP_CACHE:
                self._rest_shapes.clear()
            self._rest_shapes[layout[2]] = entry
            return self._new_shape(shape[0], entry, group, scanned)
        if shape is not None and group is not None and isinstance(scanned, bytes) and \
                self._same_shape(shape, entry, group):
            hits = self._rest_scan(scanned, entry, group)
            if len(self._shapes) > _GROUP_CACHE:
                self._shapes.clear()
            self._shapes[shape[0]] = _Shape(shape[0], entry, group, hits)
            return entry, group, hits, shape[0]
        return entry, group, scanned, None

    def _new_shape(self, key: _ShapeKey, entry: Entry, group: _Group, rest: bytes
                   ) -> tuple[Entry, _Group, _Scan, _ShapeKey]:
        hits = self._rest_scan(rest, entry, group)
        _list_scan(group)  # here: a helper of parse_ahead does it for its half
        if len(self._shapes) > _GROUP_CACHE:
            self._shapes.clear()
        self._shapes[key] = _Shape(key, entry, group, hits)
        return entry, group, hits, key

    def _same_rest_shape(self, rest_key: _ShapeKey, windows: tuple[bytes, bytes, bytes],
                         entry: Entry) -> bool:
        """:meth:`_same_shape` of an entry's rest (its decision list a placeholder)."""
        (head, middle, suffix), (record, subject, when) = rest_key, windows
        s_record = b"0" * 64 if record != b"0" * 64 else b"1" * 64
        s_subject = b"0" * 64 if subject != b"0" * 64 else b"1" * 64
        s_when = b"2001-01-01T00:00:00.000Z" if when != b"2001-01-01T00:00:00.000Z" \
            else b"2002-02-02T00:00:00.000Z"
        sentinel = b"".join((head, s_record, middle, s_subject, _TAIL_TIME, s_when, suffix))
        try:
            other = fast_parse_entry(sentinel) or parse_entry(sentinel)
        except VerificationError:
            return False
        expected = {**entry.body, "record": "record:" + s_record.decode(),
                    "subject": "subject:" + s_subject.decode(), "time": s_when.decode()}
        return other.type == entry.type and other.body == expected and \
            sentinel.count(_PLACEHOLDER_JSON) == 1

    def _same_shape(self, shape: tuple[_ShapeKey, tuple[bytes, bytes, bytes]],
                    entry: Entry, group: _Group) -> bool:
        """Whether the three windows of ``shape`` are exactly the entry's record, subject
        and time members: a sentinel copy must parse to the same entry but for them."""
        (head, middle, suffix), (record, subject, when) = shape
        s_record = b"0" * 64 if record != b"0" * 64 else b"1" * 64
        s_subject = b"0" * 64 if subject != b"0" * 64 else b"1" * 64
        s_when = b"2001-01-01T00:00:00.000Z" if when != b"2001-01-01T00:00:00.000Z" \
            else b"2002-02-02T00:00:00.000Z"
        sentinel = b"".join((head, s_record, middle, s_subject, _TAIL_TIME, s_when, suffix))
        try:
            other, other_group, _ = self._parse_full(sentinel)
        except VerificationError:
            return False
        expected = {**entry.body, "record": "record:" + s_record.decode(),
                    "subject": "subject:" + s_subject.decode(), "time": s_when.decode()}
        return other.type == entry.type and other_group is group and other.body == expected

    def _parse_full(self, data: bytes) -> tuple[Entry, _Group | None, bytes]:
        split = _split_decisions(data)
        if split is not None:
            rest, decisions = split
            try:
                entry = fast_parse_entry(rest) or parse_entry(rest)
            except VerificationError:
                entry = None
            if entry is not None and entry.body.get("decisions") == _PLACEHOLDER \
                    and rest.count(_PLACEHOLDER_JSON) == 1 and entry.type in DECISION_TYPES:
                digest = entry.body.get("bundle")
                key = (digest if isinstance(digest, str) else "", decisions)
                group = self._groups.get(key) or self._group_from_bytes(key)
                if group is not None:
                    return entry, group, rest
        entry = fast_parse_entry(data) or parse_entry(data)
        if entry.type in DECISION_TYPES:
            value = entry.body.get("decisions")
            if not isinstance(value, list):
                raise VerificationError("decisions is not a list", code="malformed_entry")
            digest = entry.body.get("bundle")
            key = (digest if isinstance(digest, str) else "", canonical_json(value))
            return entry, self._groups.get(key) or self._group(key, value), data
        if entry.type in _APPROVAL_CHANGES and isinstance(entry.body.get("decision"), dict):
            digest = entry.body.get("bundle")
            value = [entry.body["decision"]]
            key = (digest if isinstance(digest, str) else "", canonical_json(value))
            return entry, self._groups.get(key) or self._group(key, value), data
        return entry, None, data

    def _group_from_bytes(self, key: tuple[str, bytes]) -> _Group | None:
        """The group of a decision list given as bytes (None if not canonical JSON).

        A list that differs from one parsed before only in its decision time (the
        ``"now"`` of its context: a key that only contexts have, and that cannot occur
        inside a string) reuses that parse with the new time; it is replayed anew.
        """
        digest, data = key
        nows = _NOW.findall(data)
        shape = (digest, _NOW.sub(b'"now":#', data))
        template = self._now_templates.get(shape)
        if template is not None and len(nows) == len(template.records) and \
                len(set(nows)) == 1 and _CANONICAL_INT.fullmatch(nows[0]):
            now = int(nows[0])
            if now <= _MAX_LONG:
                group = _with_now(template, now, data)
                self._groups[key] = group
                self._new_groups.append(group)
                return group
        value = _canonical_list(data)
        if value is None:
            return None
        group = self._group(key, value)
        if group.problem is None and len(nows) == len(group.records) and \
                len(set(nows)) == 1 and int(nows[0]) == group.now:
            if len(self._now_templates) > _GROUP_CACHE:
                self._now_templates.clear()
            self._now_templates[shape] = group
        return group

    def _group(self, key: tuple[str, bytes], value: list[Any]) -> _Group:
        group = _parse_group(key[0], value)
        group.raw = key[1]
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
    def _check(self, index: int, data: bytes | list[tuple[str, str]], entry: Entry,
               group: _Group | None, shape: _ShapeKey | None) -> None:
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
        self._personal_data(index, t, self._scan(data, entry, group))
        kind = entry.type
        if kind in DECISION_TYPES:
            assert group is not None
            self._decision_entry(index, entry, group, shape)
        elif kind == "approval-request":
            self._approval_request(index, entry)
        elif kind in _APPROVAL_CHANGES:
            self._approval_change(index, entry, group)
        elif kind in _RELEASE_TYPES:
            assert isinstance(data, bytes)  # release entries are never reshaped
            st.release_entries.append((index, data.decode("utf-8")))
            self.ledger.add(index, entry)
            if kind == "release-review":
                self._release_ok.clear()
            self._ledger_findings(entry)
        elif kind == "key-event":
            tally.key_events[str(entry.body.get("kind"))[:40]] += 1

    def _check_shaped(self, index: int, t: float, shape: _Shape) -> None:  # noqa: PLR0912
        """:meth:`_check` of an entry of a known shape, at time ``t`` (the same checks,
        in the same order, with what follows from the shape computed once)."""
        st = self.state
        tally = st.tally
        mt = st.max_time
        if tally.first_time is None or t < tally.first_time:
            tally.first_time = t
        if tally.last_time is None or t > tally.last_time:
            tally.last_time = t
        if mt is not None and t < mt - self.tolerance:
            self._flag("entry_time_regression", index, t,
                       f"entry {index} is {mt - t:.3f} s older than an earlier entry "
                       f"(tolerance {self.tolerance:g} s)", {"behind_s": round(mt - t, 3)})
        if mt is None or t > mt:
            st.max_time = t
        plan = shape.plan
        if plan is None:
            shape.hits = self._scan(shape.rest_hits, shape.entry, shape.group)
            plan = shape.plan = self._shape_plan(shape.entry, shape.group, shape.key)
            shape.counts = [(tally.entries, shape.entry.type, 1), *plan.counts]
        for counter, key, n in shape.counts:
            counter[key] += n
        self._personal_data(index, t, shape.hits)
        group = shape.group
        if plan.replay_issue is not None:
            self._replay_issue(index, t, shape.entry, group, plan.replay_issue)
        for kind, text, detail in plan.flags:
            self._flag(kind, index, t, text.replace(_INDEX, str(index)), detail)
        slot = plan.slot
        if slot is not None:
            minute = int(t // 60)
            if minute == self._minute:
                self._minute_row[slot] += 1
            else:
                tally.minute(t, slot)
                self._minute, self._minute_row = minute, tally.minutes[str(minute)]
        if not plan.trusted:
            return
        if abs(group.now - t) > self.tolerance + 1:
            self._flag("decision_input_inconsistent", index, t,
                       f"{shape.entry.type} entry {index}: the recorded decision input was "
                       f"decided {abs(group.now - t):.0f} s away from the entry's time")
        if plan.release is not None and self._release_ok.get(plan.release) is not True:
            self._release_check(index, t, shape.entry)
        if plan.approval is not None:
            approval_id, used = plan.approval
            self._approval_use(index, t, group, principal=plan.principal,
                               approval_id=approval_id, used=used)

    def _scan(self, scanned: bytes | list[tuple[str, str]], entry: Entry,
              group: _Group | None) -> list[tuple[str, str]]:
        """The personal-data scan of one entry (promise 7), cached where that is exact.

        A decision list is scanned once.  The rest of an entry is scanned once per
        shape: its keyed pseudonyms and time, once checked to be exactly that (so
        they hold nothing), are cut out of the bytes that key the cache.
        """
        hits: list[tuple[str, str]] = []
        if group is not None and entry.body.get("decisions") == _PLACEHOLDER:
            hits.extend(_list_scan(group))
        hits.extend(scanned if isinstance(scanned, list)
                    else self._rest_scan(scanned, entry, group))
        return hits

    def _rest_scan(self, data: bytes, entry: Entry, group: _Group | None
                   ) -> list[tuple[str, str]]:
        body = entry.body
        key = data
        for name in ("subject", "record"):
            value = body.get(name)
            if isinstance(value, str) and _PSEUDONYM.fullmatch(value):
                key = key.replace(value.encode(), b"", 1)
        key = key.replace(str(body.get("time")).encode(), b"", 1)
        found = self._scans.get(key)
        if found is None:
            found = scan_entry(data, lambda: self._full_body(entry, group))
            if len(self._scans) > _GROUP_CACHE:
                self._scans.clear()
            self._scans[key] = found
        if body.get("decisions") != _PLACEHOLDER:
            return found
        return [h for h in found if not h[1].startswith("$.decisions")]

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
    # A decision entry's checks split in two: what follows from its bytes but for the
    # record, subject and time (the plan: replay verdict, consistency, released fields,
    # data-flow rules, counts), computed once per shape; and what depends on its time
    # and on the log before it (time of decision, release state, approval state).
    def _decision_entry(self, index: int, entry: Entry, group: _Group,
                        shape: _ShapeKey | None) -> None:
        plan = self._shape_plan(entry, group, shape)
        self._planned(index, entry.time, entry, group, plan)

    def _shape_plan(self, entry: Entry, group: _Group, shape: _ShapeKey | None) -> _Plan:
        plan = self._plans.get(shape) if shape is not None else None
        if plan is None:
            plan = self._plan(entry, group)
            if shape is not None:
                if len(self._plans) > _GROUP_CACHE:
                    self._plans.clear()
                self._plans[shape] = plan
        return plan

    def _planned(self, index: int, t: float, entry: Entry, group: _Group, plan: _Plan) -> None:
        """The checks of a decision entry at time ``t`` (``entry``: one of its shape)."""
        tally = self.state.tally
        for counter, key, n in plan.counts:
            counter[key] += n
        if plan.replay_issue is not None:
            self._replay_issue(index, t, entry, group, plan.replay_issue)
        for kind, text, detail in plan.flags:
            self._flag(kind, index, t, text.replace(_INDEX, str(index)), detail)
        if plan.slot is not None:
            tally.minute(t, plan.slot)
        if not plan.trusted:
            return
        if abs(group.now - t) > self.tolerance + 1:
            self._flag("decision_input_inconsistent", index, t,
                       f"{entry.type} entry {index}: the recorded decision input was decided "
                       f"{abs(group.now - t):.0f} s away from the entry's time")
        self._release_check(index, t, entry)
        if plan.approval is not None:
            approval_id, used = plan.approval
            self._approval_use(index, t, group, principal=plan.principal,
                               approval_id=approval_id, used=used)

    def _plan(self, entry: Entry, group: _Group) -> _Plan:
        """The checks of a decision entry that follow from its shape (see above)."""
        body = entry.body
        tally = self.state.tally
        plan = _Plan()
        release = body.get("release")
        if isinstance(release, str):
            plan.release = (release, str(body.get("bundle")))
        outcome = body.get("outcome")
        principal = body.get("principal")
        if not isinstance(principal, dict):
            principal = {}
        plan.principal = principal
        location = str(principal.get("location"))[:16]
        org_kind = str(principal.get("org_kind"))[:16]
        n = len(group.records)
        plan.counts += [(tally.outcomes, f"{entry.type}/{outcome}"[:60], 1),
                        (tally.principals, f"{org_kind}/{location}", 1),
                        (tally.bundles, str(body.get("bundle"))[:80], n),
                        (tally.replay, "decisions", n)]
        what = f"{entry.type} entry {_INDEX}"
        if group.problem is not None:
            plan.flags.append(("decision_input_inconsistent", f"{what}: {group.problem}", {}))
            plan.slot = 2
            return plan
        if group.unreplayable is not None:
            plan.counts.append((tally.replay, "unreplayed", n))
            plan.replay_issue = group.unreplayable
            plan.slot = 2
            return plan
        if group.mismatch is not None:
            plan.counts.append((tally.replay, "mismatches", 1))
            plan.flags.append(("decision_mismatch", f"{what}: {group.mismatch}", {}))
            plan.slot = 2
            return plan
        plan.trusted = True
        problem = self._consistency(entry, group, principal)
        if problem is not None:
            plan.flags.append(("decision_input_inconsistent",
                               f"{what}: the recorded decision input {problem}", {}))
        purpose = group.purpose
        if entry.type == "access":
            self._plan_access(plan, entry, group, location=location, org_kind=org_kind)
        elif entry.type == "export":
            self._plan_export(plan, entry, group, location)
        else:
            if outcome == "allow" and not group.all_allowed:
                plan.flags.append(("released_without_permit",
                                   f"{what} says 'allow' but its recorded decisions did not "
                                   "allow everything", {}))
            plan.slot = 0 if outcome == "allow" else 2
        for cls, reason in group.denials:
            plan.counts += [(tally.denials, reason, 1),
                            (tally.withheld, f"{location}>{self.home}>{cls}>{purpose}", 1)]
        return plan

    def _replay_issue(self, index: int, t: float, entry: Entry, group: _Group, code: str
                      ) -> None:
        if code in ("bundle_unavailable", "bundle_digest_mismatch"):
            if self._repeat(f"{code}:{group.digest}"):
                return
            lookup = self.bundles(group.digest)
            self._flag_once(code, f"{code}:{group.digest}", index, t,
                            explanation=f"{entry.type} entry {index} names policy bundle "
                            f"{_short(group.digest)}: {_clean(lookup.reason)}",
                            detail={"bundle": _short(group.digest)})
        else:
            self._flag("decision_unreplayable", index, t,
                       f"{entry.type} entry {index}: its recorded decision input cannot be "
                       f"replayed ({code})", {"code": code})

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
        if entry.type == "export" and group.k != body.get("k"):
            return "names another k than the entry"
        if entry.type == "access" and group.approval_id is not None and \
                group.approval_id != body.get("approval"):
            return "presents another approval than the entry"
        return None

    def _release_check(self, index: int, t: float, entry: Entry) -> None:
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
        if not ok and not self._repeat(f"release:{release}:{digest}"):
            self._flag_once("decision_release_mismatch", f"release:{release}:{digest}", index,
                            t,
                            explanation=f"{entry.type} entry {index} names release "
                            f"{_short(release)}, which is not an approved release of policy "
                            f"bundle {_short(str(digest))} at that point of the log")

    def _plan_access(self, plan: _Plan, entry: Entry, group: _Group, *, location: str,
                     org_kind: str) -> None:
        body = entry.body
        tally = self.state.tally
        what = f"access entry {_INDEX}"
        released = body.get("released")
        if not isinstance(released, list):
            released = []
        names = [r for r in released if isinstance(r, str)]
        outcome = body.get("outcome")
        extra = [n for n in names if n not in group.allowed]
        if extra or len(names) != len(released) or (outcome == "allow" and
                                                     not group.all_allowed):
            plan.flags.append(("released_without_permit",
                               f"{what} released {len(extra)} field(s) its recorded decisions "
                               "denied", {"fields": [_name(n) for n in extra[:20]]}))
        abroad = location != self.home
        classes = {group.classes.get(n) for n in names if n in group.allowed}
        plan.slot = 0 if outcome == "allow" else 1 if names else 2
        for n in names:
            cls = group.classes.get(n)
            if cls is not None:
                plan.counts.append((tally.flows, f"{location}>{self.home}>{cls}>{group.purpose}",
                                    1))
        if "restricted" in classes and abroad:
            plan.flags.append(("restricted_released_abroad",
                               f"{what} released restricted data of {self.home} to a principal "
                               f"located in {_code(location)}", {}))
        elif "restricted" in classes and org_kind == "parent":
            plan.flags.append(("restricted_released_to_parent",
                               f"{what} released restricted data to the parent organisation",
                               {}))
        approval_id = body.get("approval")
        if isinstance(approval_id, str):
            plan.approval = (approval_id, [n for n in names if n in group.needs_approval])
        if "protected" in classes and abroad:
            unapproved = [n for n in names if group.classes.get(n) == "protected"
                          and n not in group.needs_approval]
            if unapproved:
                plan.flags.append((
                    "protected_released_abroad_without_approval",
                    f"{what} released {len(unapproved)} protected field(s) of {self.home} to a "
                    f"principal located in {_code(location)} without an approval",
                    {"fields": [_name(n) for n in unapproved[:20]]}))
        if org_kind == "parent" and abroad:
            denied = sorted({c for c, _ in group.denials if c in ("protected", "restricted")})
            if denied:
                plan.flags.append((
                    "covered_person_denied",
                    f"{what}: a parent-organisation principal located in {_code(location)} "
                    f"asked for {' and '.join(denied)} data of {self.home} and was denied",
                    {"classes": denied}))

    def _plan_export(self, plan: _Plan, entry: Entry, group: _Group, location: str) -> None:
        body = entry.body
        tally = self.state.tally
        what = f"export entry {_INDEX}"
        allowed = body.get("outcome") == "allow"
        plan.counts.append((tally.exports, "allowed" if allowed else "denied", 1))
        plan.slot = 0 if allowed else 2
        if not allowed:
            return
        if not group.all_allowed:
            plan.flags.append(("released_without_permit",
                               f"{what} was released though its decision denied it", {}))
        k = body.get("k")
        if isinstance(k, int) and not isinstance(k, bool) and \
                (tally.min_export_k is None or k < tally.min_export_k):
            tally.min_export_k = k
        for cls in {group.classes.get(n) for n in group.allowed}:
            plan.counts.append((tally.flows,
                                f"{location}>{self.home}>{cls} (aggregate)>{group.purpose}", 1))
        if not isinstance(k, int) or isinstance(k, bool) or k < self.k_min:
            plan.flags.append(("export_below_k",
                               f"{what} released an aggregate over k={_int(k)} subjects; the "
                               f"minimum is {self.k_min}", {"k": _int(k), "k_min": self.k_min}))
        if "restricted" in group.classes.values():
            plan.flags.append(("restricted_exported",
                               f"{what} released an aggregate of a restricted field", {}))

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
            elif group.unreplayable is not None:
                self._replay_issue(index, t, entry, group, group.unreplayable)
            elif group.mismatch is not None:
                self.state.tally.replay["mismatches"] += 1
                self._flag("decision_mismatch", index, t,
                           f"{entry.type} entry {index}: {group.mismatch}")
            else:
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

    def _approval_use(self, index: int, t: float, group: _Group, *,
                      principal: Mapping[str, Any], approval_id: str, used: list[str]) -> None:
        track = self.state.approvals.get(approval_id)
        if track is not None:
            track.uses += 1
            track.released += len(used)
        if not used:
            return  # presented but not needed for anything released
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
    def _personal_data(self, index: int, t: float,
                       hits: Sequence[tuple[str, str]] | None) -> None:
        """Flag an entry whose text looks like personal data (kinds and JSON paths only)."""
        if not hits:
            return
        self.state.tally.pii_hits += 1
        kinds = sorted({k for k, _ in hits})
        self._flag("personal_data_in_entry", index, t,
                   f"entry {index} holds what looks like {', '.join(kinds)} at "
                   f"{', '.join(p for _, p in hits[:5])}",
                   {"kinds": kinds, "paths": [p for _, p in hits[:20]]})

    def _flag(self, kind: str, index: int | None, time: float | None, explanation: str,
              detail: Mapping[str, Any] | None = None) -> None:
        self.state.findings.append(Finding(kind, self.home, self.origin, index, explanation,
                                           time, dict(detail or {})))

    def _repeat(self, key: str) -> bool:
        """Whether a finding of this cause was flagged already (then count one more)."""
        seen = self.state.flagged.get(key)
        if seen is None:
            return False
        self.state.flagged[key] = seen + 1
        return True

    def _flag_once(self, kind: str, key: str, index: int, time: float, *, explanation: str,
                   detail: Mapping[str, Any] | None = None) -> None:
        """Flag the first entry of one cause (callers ask :meth:`_repeat` first)."""
        self.state.flagged[key] = 0
        self._flag(kind, index, time, explanation, {**(detail or {}), "repeat_key": key})


# -- parsing ---------------------------------------------------------------------------
_SECONDS: dict[str, int] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fast_parse_entry(data: bytes) -> Entry | None:  # noqa: PLR0911 (one per check)
    """:func:`~bordergate.entries.parse_entry`'s checks, faster; None when unsure.

    Accepts exactly what ``parse_entry`` accepts and returns an equal ``Entry``
    (the seconds of entry times are parsed once and cached); anything it does not
    accept returns None, and the caller then asks ``parse_entry`` itself.
    """
    try:
        body = json.loads(data, parse_float=_reject_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("v") != ENTRY_VERSION:
        return None
    kind = body.get("type")
    required = ENTRY_TYPES.get(kind) if isinstance(kind, str) else None
    if required is None or not required <= body.keys():
        return None
    when = _fast_time(body.get("time"))
    if when is None:
        return None
    try:
        again = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False).encode("utf-8")
    except ValueError:
        return None
    if again != data:
        return None
    assert isinstance(kind, str)
    return Entry(kind, when, body)


def _fast_time(text: object) -> float | None:
    """``entries.parse_time`` for its exact format, the seconds cached; None when unsure."""
    if not isinstance(text, str) or len(text) != 24 or text[19] != "." or text[23] != "Z":
        return None
    ms = text[20:23]
    if not (ms.isascii() and ms.isdigit()):
        return None
    head = text[:19]
    base = _SECONDS.get(head)
    if base is None:
        try:
            dt = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            return None
        delta = dt - _EPOCH
        base = delta.days * 86400 + delta.seconds
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        _SECONDS[head] = base
    # the same arithmetic as datetime.timestamp() (timedelta.total_seconds)
    return (base * 10**6 + int(ms) * 1000) / 10**6


# -- shapes --------------------------------------------------------------------------------
_TAIL_TIME = b'","time":"'
_RECORD_KEY = b',"record":"record:'
# An entry's shape: everything but the hex of its record and subject pseudonyms (the
# last such members before the end) and its time, which must end the entry but for its
# type and version.  The windows hold no quote, backslash, control or non-ASCII byte.
_SHAPE = re.compile(
    rb'(.*,"record":"record:)([0-9a-f]{64})(".*,"subject":"subject:)([0-9a-f]{64})'
    rb'","time":"([^"\\\x00-\x1f\x7f-\xff]{24})'
    rb'(","type":"(?:access|write|erase)","v":1\})\Z', re.DOTALL)
_WINDOW_MICROS: dict[bytes, int] = {}  # b"2026-01-02T03:04:05" -> its epoch microseconds
_FRACTION_MICROS = {b".%03dZ" % ms: ms * 1000 for ms in range(1000)}


def _shape(m: re.Match[bytes] | None) -> tuple[_ShapeKey, tuple[bytes, bytes, bytes]] | None:
    """An entry's shape (its bytes but for three windows) and the windows: the record
    pseudonym's hex, the subject pseudonym's hex and the time, from a match of
    :data:`_SHAPE`.

    Only a cache key: the caller checks, once per shape, that the windows are exactly
    those members (a sentinel copy parses the same but for them).  Windows hold no
    quote, backslash or control byte, so the string boundaries of every entry of a
    shape are the same, and each window's bytes are its JSON string's text.
    """
    if m is None:
        return None
    return (m[1], m[3], m[6]), (m[2], m[4], m[5])


def _reshaped(template: Entry, windows: tuple[bytes, bytes, bytes]) -> Entry | None:
    record, subject, when = windows
    text = when.decode("ascii", "replace")
    t = _fast_time(text)
    if t is None:
        return None
    body = dict(template.body)
    body["record"] = "record:" + record.decode()
    body["subject"] = "subject:" + subject.decode()
    body["time"] = text
    return Entry(template.type, t, body)


def _layout(data: bytes, m: re.Match[bytes] | None
            ) -> tuple[bytes, bytes, _ShapeKey] | None:
    """An entry of a shape (``m``) whose decision list comes before its windows: the
    entry with a placeholder for the list (as :func:`_split_decisions`), the list, and
    the shape of the former (its bytes but for the same three windows)."""
    if m is None:
        return None
    i = data.find(_DECISIONS_KEY)
    if i < 0:
        return None
    start = i + len(_DECISIONS_KEY) - 1
    j = data.find(_AFTER_DECISIONS, start)
    r = m.start(2)
    if j < 0 or j + 1 > r - len(_RECORD_KEY):
        return None
    rest = data[:start] + _PLACEHOLDER_JSON + data[j + 1:]
    off = len(data) - len(rest)
    return rest, data[start:j + 1], (rest[:r - off], rest[m.end(2) - off:m.start(4) - off],
                                     m[6])


def _window_time(when: bytes) -> float | None:
    """:func:`_fast_time` of a time window's bytes; None when unsure."""
    base = _WINDOW_MICROS.get(when[:19])
    frac = _FRACTION_MICROS.get(when[19:])
    if base is None or frac is None:
        text = when.decode("ascii")
        t = _fast_time(text)
        if t is not None:
            if len(_WINDOW_MICROS) > 100_000:
                _WINDOW_MICROS.clear()
            _WINDOW_MICROS[when[:19]] = _SECONDS[text[:19]] * 10**6
        return t
    # the same arithmetic as datetime.timestamp() (timedelta.total_seconds)
    return (base + frac) / 10**6


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
    try:  # floats were refused by the parser; NaN and infinities are refused here
        again = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False).encode("utf-8")
    except ValueError:
        return None
    return value if again == data else None


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


def _list_scan(group: _Group) -> list[tuple[str, str]]:
    """The personal-data scan of a decision list (its bytes), once per list."""
    if group.pii is None:
        records = {"decisions": [{"field": r.field, "class": r.field_class,
                                  "input": r.input.to_json()} for r in group.records]}
        group.pii = scan_entry(group.raw, records)
    return group.pii


def _with_now(template: _Group, now: int, raw: bytes) -> _Group:
    """A copy of a parsed group whose decisions were taken at ``now`` (not replayed)."""
    c = template.records[0].input.context
    context = RequestContext(c.purpose, now, c.gateway, c.k_min, c.k, c.approval)
    records = [_Record(r.field, r.field_class, r.allowed, r.policy_ids, r.errors,
                       DecisionInput(r.input.principal, r.input.action, r.input.resource,
                                     context)) for r in template.records]
    return _Group(template.digest, records, principal=template.principal,
                  purpose=template.purpose, now=now, gateway=template.gateway,
                  collection=template.collection, k=template.k, action=template.action,
                  approval_id=template.approval_id, allowed=template.allowed,
                  all_allowed=template.all_allowed, classes=template.classes, raw=raw,
                  pii=template.pii)


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

