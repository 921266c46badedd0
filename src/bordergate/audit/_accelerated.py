"""The accelerated inspector: the reference inspector's findings, faster (the default path).

:class:`AcceleratedInspector` gives exactly the findings, tally and state of
:class:`~bordergate.audit.inspection.ReferenceInspector` (``audit run --reference``)
and holds no rule of its own: every rule is a function of
:mod:`bordergate.audit.rules`, and every entry that is not of a hot shape goes
to :meth:`ReferenceInspector.check`.  The differential test
(tests/audit/test_differential.py) runs both on generated logs and checks, with
coverage, that every line here that reports a finding is exercised.

The speed-ups:

* **shapes**: entries byte-identical but for their record and subject pseudonyms
  and their time (:data:`_SHAPE`) share their parse, their personal-data scan and
  their :class:`~bordergate.audit.rules.decisions.DecisionChecks`; each shape is
  checked once against a sentinel copy (:meth:`AcceleratedInspector._same_shape`),
  and later entries of it are checked from their time alone
  (:meth:`AcceleratedInspector._check_shaped`);
* **templates**: entries of one shape but for their decision list share the rest,
  and lists that differ only in their decision time share their parse
  (:meth:`AcceleratedInspector._group_from_bytes`);
* **batched replay**: decision lists (byte for byte, with their bundle) are parsed
  and replayed once, in one Cedar call per bundle and chunk of entries;
* **a second CPU**: :meth:`AcceleratedInspector.parse_ahead` (in a forked helper,
  see :func:`bordergate.audit.run._inspect`) parses and replays a later part of
  the log; :meth:`AcceleratedInspector.feed_parsed` checks it here, in order.

Caching by identical bytes is exact: a decision is a pure function of its
recorded input and the bundle; every cache is bounded (cleared when full).

Private (the switch is :func:`bordergate.audit.inspection.open_inspector`).  This
module must never hold a rule that the reference inspector lacks, read a log or
a clock, or put an entry's string values into a finding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bordergate.audit.decision_lists import (
    DecisionList,
    DecisionRecord,
    list_scan,
    parse_decision_list,
    replay,
)
from bordergate.audit.inspection import DECISION_TYPES, ReferenceInspector, guarded
from bordergate.audit.inspection_state import InspectionState
from bordergate.audit.personal_data import scan_entry
from bordergate.audit.rules import (
    approvals,
    bulk,
    decisions,
    privacy,
    releases,
    tokens,
    versions,
    wellformed,
)
from bordergate.audit.rules.decisions import ENTRY_INDEX, DecisionChecks
from bordergate.entries import (
    ENTRY_TYPES,
    Entry,
    canonical_json,
    is_entry_version,
    parse_entry,
)
from bordergate.errors import VerificationError
from bordergate.policy.entities import DecisionInput, RequestContext

__all__ = ["AcceleratedInspector", "fast_parse_entry"]

_CHUNK = 4096  # entries checked per batched replay
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


_ShapeKey = tuple[bytes, bytes, bytes]
_Scan = list[tuple[str, str]]
# a scan split where the decision list goes: the hits before it and after it
_RestScan = tuple[_Scan, _Scan]


@dataclass(slots=True)
class _Shape:
    """What every entry of one shape shares (see :meth:`AcceleratedInspector._parse_new`).

    ``entry`` is the first entry of the shape: its record, subject and time are its
    own, everything else is every entry's of the shape.
    """

    key: _ShapeKey
    entry: Entry
    group: DecisionList
    rest_hits: _RestScan                # the personal-data scan but for the decision list
    hits: _Scan | None = None           # the whole scan (set at the first check)
    plan: DecisionChecks | None = None  # set at the first check, after replay
    counts: list[tuple[Any, str, int]] = field(default_factory=list)  # with the entry count
    version: int = 0                    # the entry version (part of the shape)
    hooks: tuple[Any, ...] = ()         # its versioned checks (audit.rules.versions)
    unchecked: list[tuple[Any, str, int]] = field(default_factory=list)  # what it misses


class AcceleratedInspector(ReferenceInspector):
    """The reference inspector, with its hot entry shapes checked from caches
    (see the module docstring)."""

    def __init__(self, **settings: Any) -> None:
        """As :class:`~bordergate.audit.rules.context.RuleContext`."""
        super().__init__(**settings)
        self._groups: dict[tuple[str, bytes], DecisionList] = {}
        self._chunk: list[tuple[int, bytes | _RestScan, Entry | VerificationError,
                                DecisionList | None, _ShapeKey | None]
                          | tuple[int, float, _Shape, bytes]] = []
        self._plans: dict[_ShapeKey, DecisionChecks] = {}
        self._now_templates: dict[tuple[str, bytes], DecisionList] = {}
        self._new_groups: list[DecisionList] = []
        self._release_ok: dict[tuple[str, str], bool] = {}
        self._scans: dict[bytes, _RestScan] = {}
        self._shapes: dict[_ShapeKey, _Shape] = {}
        self._rest_shapes: dict[_ShapeKey, Entry] = {}
        self._minute: int | None = None     # the last minute counted, and its row
        self._ahead: list[tuple[list[Any], list[Any]]] | None = None  # see parse_ahead
        self._sent: list[_Shape] = []
        self._received: list[_Shape] = []
        self._minute_row: list[int] = []

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
                        chunk.append((index, t, hit, m[4]))  # + the subject's hex
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
            if len(item) == 4:
                number = sent.get(id(item[2]))
                if number is None:
                    number = sent[id(item[2])] = len(self._sent)
                    self._sent.append(item[2])  # kept: ids stay unique
                    new.append(item[2])
                items.append((item[0], item[1], number, item[3]))
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
        self._chunk = [(i[0], i[1], shapes[i[2]], i[3]) if len(i) == 4 else i for i in items]
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
            if len(item) == 4:
                guarded(self, item[0], item[1], item[2].entry.type, self._check_shaped, *item)
                continue
            index, data, entry, group, _ = item
            if isinstance(entry, VerificationError):
                wellformed.entry_malformed(self, index, entry)
            else:
                self.check(index, entry, group, self._scan(data, entry, group))

    def finish(self) -> InspectionState:
        """Flush and return the state to save."""
        self.flush()
        return self.state

    def _parse_new(self, data: bytes, m: re.Match[bytes] | None
                   ) -> tuple[Entry, DecisionList | None, bytes | _RestScan, _ShapeKey | None]:
        """The entry, its decision list, and either the bytes the personal-data scan must
        read (without the decision list, scanned once per list) or that scan's result;
        for an entry of no known shape (``m``: its match of :data:`_SHAPE`).

        Entries of one shape but for their decision list (most often its decision
        time) share the rest: that rest, with a placeholder for the list, is parsed
        once, checked like a shape against a sentinel copy, and reused (the list is
        parsed on its own, see :meth:`_group_from_bytes`).
        """
        # an entry presenting an approval is checked by the reference rules: its
        # subject and record (which a shape leaves out) decide the approval's reach
        # so is an export naming its export-intent (which a shape leaves out)
        shape = None if _PRESENTS_APPROVAL in data or _NAMES_INTENT in data else _shape(m)
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
        if shape is not None and group is not None and \
                self._same_shape(shape, entry, group):
            hits = self._rest_scan(scanned, entry, group)
            if len(self._shapes) > _GROUP_CACHE:
                self._shapes.clear()
            self._shapes[shape[0]] = _Shape(shape[0], entry, group, hits)
            return entry, group, hits, shape[0]
        return entry, group, scanned, None

    def _new_shape(self, key: _ShapeKey, entry: Entry, group: DecisionList, rest: bytes
                   ) -> tuple[Entry, DecisionList, _RestScan, _ShapeKey]:
        hits = self._rest_scan(rest, entry, group)
        list_scan(group)  # here: a helper of parse_ahead does it for its half
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
                    entry: Entry, group: DecisionList) -> bool:
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

    def _parse_full(self, data: bytes) -> tuple[Entry, DecisionList | None, bytes]:
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
            value = wellformed.decision_list_of(entry)
            digest = entry.body.get("bundle")
            key = (digest if isinstance(digest, str) else "", canonical_json(value))
            return entry, self._groups.get(key) or self._group(key, value), data
        if entry.type in approvals.APPROVAL_CHANGES and \
                isinstance(entry.body.get("decision"), dict):
            digest = entry.body.get("bundle")
            value = [entry.body["decision"]]
            key = (digest if isinstance(digest, str) else "", canonical_json(value))
            return entry, self._groups.get(key) or self._group(key, value), data
        return entry, None, data

    def _group_from_bytes(self, key: tuple[str, bytes]) -> DecisionList | None:
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

    def _group(self, key: tuple[str, bytes], value: list[Any]) -> DecisionList:
        group = parse_decision_list(key[0], value)
        group.raw = key[1]
        self._groups[key] = group
        if group.problem is None:
            self._new_groups.append(group)
        return group

    def _replay(self, groups: list[DecisionList]) -> None:
        replay(groups, self.bundles)

    # -- checks -------------------------------------------------------------------
    def check(self, index: int, entry: Entry, group: DecisionList | None,
              pii: list[tuple[str, str]]) -> None:
        """:meth:`ReferenceInspector.check`, forgetting which releases were approved when
        the ledger changes."""
        if entry.type in releases.RELEASE_TYPES:
            self._release_ok.clear()
        super().check(index, entry, group, pii)

    def _check_shaped(self, index: int, t: float, shape: _Shape,  # noqa: PLR0912
                      subject: bytes) -> None:
        """:meth:`ReferenceInspector.check` of an entry of a known decision shape, at
        time ``t``: the same rules, in the same order, with what follows from the shape
        computed once."""
        st = self.state
        tally = st.tally
        mt = st.max_time
        if tally.first_time is None or t < tally.first_time:
            tally.first_time = t
        if tally.last_time is None or t > tally.last_time:
            tally.last_time = t
        if mt is not None and t < mt - self.tolerance:
            wellformed.entry_time_regression(self, index, t, mt)
        if mt is None or t > mt:
            st.max_time = t
        plan = shape.plan or self._first_of_shape(shape)
        for counter, key, n in shape.counts:
            counter[key] += n
        version = shape.version
        if version < st.max_version:  # a downgrade: flagged, checked as the higher version
            version = versions.settle_version(self, index, t, shape.entry, version)
        else:
            st.max_version = version
        if shape.hits:
            wellformed.personal_data_in_entry(self, index, t, shape.hits)
        tokens.revoked_token_use(self, index, t, shape.entry)  # jti is part of the shape
        releases.decision_without_start(self, index, t, shape.entry)  # so are both named
        group = shape.group
        if plan.replay_issue is not None:
            decisions.decision_unreplayable(self, index, t, shape.entry.type, group=group,
                                            code=plan.replay_issue)
        for kind, text, detail in plan.flags:
            self.flag(kind, index, t, text.replace(ENTRY_INDEX, str(index)), detail)
        slot = plan.slot
        if slot is not None:
            minute = int(t // 60)
            if minute == self._minute:
                self._minute_row[slot] += 1
            else:
                tally.minute(t, slot)
                self._minute, self._minute_row = minute, tally.minutes[str(minute)]
        if plan.budget is not None:
            privacy.budget_spent(self, index, t, plan.budget)
        if plan.bulk is not None:  # the subject is the entry's own (a window of the shape)
            bulk.count_access(self, index, t, plan.bulk, "subject:" + subject.decode("ascii"))
        if plan.trusted:
            if abs(group.now - t) > self.tolerance + 1:
                decisions.decided_away_from_entry_time(self, index, t, shape.entry.type,
                                                       group)
            if plan.release is not None and self._release_ok.get(plan.release) is not True:
                self._release_ok[plan.release] = releases.decision_release_mismatch(
                    self, index, t, shape.entry)
        if version == shape.version:
            for hook in shape.hooks:
                hook(self, index, t, shape.entry)
            for counter, key, n in shape.unchecked:
                counter[key] += n
        else:
            versions.apply_versioned_checks(self, index, t, shape.entry, version)
        # no shaped entry presents an approval (see _parse_new): the reference
        # rules check every use of one, with its subject and record

    def _first_of_shape(self, shape: _Shape) -> DecisionChecks:
        """Compute, at the first check of a shape, what every entry of it shares."""
        tally = self.state.tally
        entry = shape.entry
        shape.hits = self._scan(shape.rest_hits, entry, shape.group)
        plan = shape.plan = self._shape_plan(entry, shape.group, shape.key)
        v = shape.version = entry.version  # the version is part of the shape
        shape.counts = [(tally.entries, entry.type, 1), (tally.versions, str(v), 1),
                        *plan.counts]
        shape.hooks = versions.checks_for(entry.type, v)
        shape.unchecked = [(tally.unchecked, key, 1)
                           for key in versions.unchecked_keys(entry.type, v)]
        return plan

    def _shape_plan(self, entry: Entry, group: DecisionList, shape: _ShapeKey) -> DecisionChecks:
        plan = self._plans.get(shape)
        if plan is None:
            plan = decisions.decision_checks(self, entry, group)
            if len(self._plans) > _GROUP_CACHE:
                self._plans.clear()
            self._plans[shape] = plan
        return plan

    def _scan(self, scanned: bytes | _RestScan, entry: Entry,
              group: DecisionList | None) -> list[tuple[str, str]]:
        """The personal-data scan of one entry (promise 7), as
        ``scan_entry(data, entry.body)`` finds it, cached where that is exact.

        A decision list is scanned once.  The rest of an entry is scanned once per
        shape: its keyed pseudonyms and time, once checked to be exactly that (so
        they hold nothing), are cut out of the bytes that key the cache.  The hits
        keep the order of a scan of the whole entry (its keys are sorted): those
        before the decision list, the list's, those after it.
        """
        before, after = scanned if isinstance(scanned, tuple) \
            else self._rest_scan(scanned, entry, group)
        if group is not None and entry.body.get("decisions") == _PLACEHOLDER:
            return [*before, *list_scan(group), *after]
        return [*before, *after]

    def _rest_scan(self, data: bytes, entry: Entry, group: DecisionList | None) -> _RestScan:
        body = entry.body
        key = data
        for name in ("subject", "record"):
            value = body.get(name)
            if isinstance(value, str) and _PSEUDONYM.fullmatch(value):
                key = key.replace(value.encode(), b"", 1)
        key = key.replace(str(body.get("time")).encode(), b"", 1)
        found = self._scans.get(key)
        if found is None:
            if body.get("decisions") != _PLACEHOLDER:
                found = (scan_entry(data, body), [])
            else:  # the keys before and after the list (stage one reads the same bytes)
                found = (scan_entry(data, lambda: {k: v for k, v in body.items()
                                                   if k < "decisions"}),
                         scan_entry(data, lambda: {k: v for k, v in body.items()
                                                   if k > "decisions"}))
            if len(self._scans) > _GROUP_CACHE:
                self._scans.clear()
            self._scans[key] = found
        return found


# -- parsing -------------------------------------------------------------------------
_SECONDS: dict[str, int] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# strptime alone also takes one-digit months, days and hours: the canonical form has two
_CANONICAL_SECONDS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")


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
    if not isinstance(body, dict) or not is_entry_version(body.get("v")):
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
    """``entries.parse_time`` of the canonical form ``entries.format_time`` writes
    (``YYYY-MM-DDTHH:MM:SS.mmmZ``, ASCII digits), the seconds cached; None for
    anything else (then ``parse_entry`` decides).  Accepts exactly the strings that
    round-trip through ``format_time``."""
    if not isinstance(text, str) or len(text) != 24 or text[19] != "." or text[23] != "Z":
        return None
    ms = text[20:23]
    if not (ms.isascii() and ms.isdigit()):
        return None
    head = text[:19]
    base = _SECONDS.get(head)
    if base is None:
        if _CANONICAL_SECONDS.fullmatch(head) is None:
            return None
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
_PRESENTS_APPROVAL = b'"approval":"'
_NAMES_INTENT = b'"intent":'
_RECORD_KEY = b',"record":"record:'
# An entry's shape: everything but the hex of its record and subject pseudonyms (the
# last such members before the end) and its time, which must end the entry but for its
# type and version (each version its own shape: the version table applies per shape).
# The windows hold no quote, backslash, control or non-ASCII byte.
_SHAPE = re.compile(
    rb'(.*,"record":"record:)([0-9a-f]{64})(".*,"subject":"subject:)([0-9a-f]{64})'
    rb'","time":"([^"\\\x00-\x1f\x7f-\xff]{24})'
    rb'(","type":"(?:access|write|erase)","v":[12]\})\Z', re.DOTALL)
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


def _with_now(template: DecisionList, now: int, raw: bytes) -> DecisionList:
    """A copy of a parsed group whose decisions were taken at ``now`` (not replayed)."""
    c = template.records[0].input.context
    context = RequestContext(c.purpose, now, c.gateway, c.k_min, c.k, c.approval)
    records = [DecisionRecord(r.field, r.field_class, r.allowed, r.policy_ids, r.errors,
                       DecisionInput(r.input.principal, r.input.action, r.input.resource,
                                     context)) for r in template.records]
    return DecisionList(template.digest, records, principal=template.principal,
                  purpose=template.purpose, now=now, gateway=template.gateway,
                  collection=template.collection, k=template.k, action=template.action,
                  approval_id=template.approval_id, allowed=template.allowed,
                  all_allowed=template.all_allowed, classes=template.classes, raw=raw,
                  pii=template.pii, value=template.value)  # scans alike: only ints differ


