"""The gateway's read-only dashboard at ``/dashboard``, for the custodian and monitors.

``GET /dashboard/`` serves one page (``bordergate/web/templates/dashboard.html``
with its style sheet inlined) whose script (``/dashboard/dashboard.js``, served
from the package: no CDN, no third-party code) polls ``/dashboard/data.json``
every two seconds and draws:

* the log: size, checkpoint age, the cosignature lines on the checkpoint;
* decisions per second over the last minute, by field class and destination
  (where the principal works);
* bulk counters per counterparty and DSP category (28 CFR 202.205), recomputed
  from the ``access`` entries as the audit does, and the privacy budgets spent
  per principal and collection (the latest each ``export`` entry records);
* pending approvals (from the approvals store), latest releases and gateway
  starts (from the log's release entries);
* the last audit's findings, from the ``report.json`` named by the
  ``BORDERGATE_AUDIT_REPORT`` environment variable (a file, or a directory
  holding ``report.json``) when it is set.

The whole log is read, from entry 0, at most ``per_look`` entries each time the
data is asked for (a long log is read over several polls): until it has caught
up, the document's ``view`` says the view is **partial** (entries read of the
log's size), and the page says so.  What was read is kept in a state file
(:mod:`bordergate.gateway.dashboard_state`; ``BORDERGATE_DASHBOARD_STATE``, or
beside a SQLite store), checked against the log's leaf hash when read back, so
a restart continues where it stopped.

Other parties write what the page shows, so none of it is believed:

* a signature line on the checkpoint counts as a witness cosignature only if it
  verifies with a witness key the gateway was given (``cosigners``, else the
  gateway's ``witness_cosigners``); any other line is listed as *not verified*,
  with no time, and the checkpoint's age is taken from verified cosignatures no
  later than now (else from when this dashboard first saw the checkpoint), so
  neither the log operator nor a witness with a lying clock makes a checkpoint
  look witnessed or fresh;
* an entry whose members are not of the shapes the dashboard reads is counted
  as ``malformed`` and skipped (one entry must not make every load a 500), and
  an audit report of another shape is "cannot be read", not a crash;
* the script shows every value with ``textContent`` and draws each section on
  its own, so a value it cannot show (a time out of range) costs that cell, not
  the page.

The page holds no subject data and no field values (the log holds none).  This
module must never change state, write to the log, show an unverified signature
line as a cosignature, or serve anything but these routes.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bordergate.audit.rules.bulk import BulkCounterState
from bordergate.dsp.bulk import BulkSettings, FieldCategories, counterparties, is_covered
from bordergate.dsp.countries import DEFAULT_COUNTRIES_OF_CONCERN
from bordergate.entries import DECISION_ACTIONS, parse_entry
from bordergate.errors import BordergateError
from bordergate.gateway.dashboard_state import DashboardState, load_state, save_state
from bordergate.tlog import merkle
from bordergate.tlog.cosignature import (
    CosignatureVerifier,
    cosignature_timestamp,
    count_witnesses,
)
from bordergate.tlog.note import note_signatures
from bordergate.tlog.tiles import TILE_WIDTH

if TYPE_CHECKING:
    from bordergate.gateway.service import Gateway
    from bordergate.tlog.checkpoint import SignedCheckpoint

__all__ = ["REPORT_ENV", "STATE_ENV", "DashboardFeed", "dashboard_app"]

REPORT_ENV = "BORDERGATE_AUDIT_REPORT"
STATE_ENV = "BORDERGATE_DASHBOARD_STATE"
_WEB = Path(__file__).resolve().parents[1] / "web"
_PER_LOOK = 65_536    # entries read each time the data is asked for (then: partial view)
_SAVE_EVERY = 5.0     # seconds between state file writes while reading
_SEP = "\x1f"
_WINDOW = 60.0        # seconds of decisions in the rate
_MAX_REPORT = 32 << 20
_CLOCK_SKEW = 300.0   # seconds a verified cosignature's time may be ahead of ours
# what a member of an entry of an unexpected shape raises while it is read
_SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, OverflowError)
_CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@cache
def _asset(name: str) -> str:
    return (_WEB / name).read_text(encoding="utf-8")


class DashboardFeed:
    """What the dashboard shows, read incrementally from one gateway's log and stores."""

    def __init__(self, gateway: Gateway, *, report_path: str | None = None,
                 state_path: str | Path | None = None, clock: Any = time.time,
                 per_look: int = _PER_LOOK,
                 cosigners: Sequence[CosignatureVerifier] | None = None) -> None:
        self.gateway = gateway
        # the witness keys a cosignature line must verify with to be shown as one
        self.cosigners: tuple[CosignatureVerifier, ...] = tuple(
            cosigners if cosigners is not None else gateway.witness_cosigners)
        self.report_path = report_path if report_path is not None else os.environ.get(REPORT_ENV)
        self.clock = clock
        self.per_look = per_look
        found = state_path or os.environ.get(STATE_ENV) or \
            getattr(gateway, "dashboard_state_path", None)
        self.state_path = Path(found) if found else None
        self.state = DashboardState(gateway.origin)
        self.restored: DashboardState | None = None
        self.note: str | None = None        # why the reading started over, if it did
        self.restored_from = 0              # the entry the saved state let us start at
        self.unreadable: str | None = None  # a bundle that could not be read
        if self.state_path is not None:
            self.restored, self.note = load_state(self.state_path)
        self.saved_at = 0.0
        self.decisions: deque[tuple[float, str, str, int]] = deque()
        self.checkpoint_seen: tuple[int, bytes, float] | None = None
        self._bulk_rules()
        self._lock = threading.Lock()

    def _bulk_rules(self) -> None:
        counters = self.gateway.bulk
        if counters is not None:
            self.bulk_settings, self.categories = counters.settings, counters.categories
            self.countries: frozenset[str] = counters.countries
        else:  # not counted at this gateway: shown against the text's thresholds
            self.bulk_settings = BulkSettings()
            self.categories = FieldCategories.from_schema(self.gateway.schema)
            self.countries = frozenset(DEFAULT_COUNTRIES_OF_CONCERN)

    def data(self) -> dict[str, Any]:
        """The dashboard's JSON document, now."""
        with self._lock:
            now = float(self.clock())
            log = self._log(now)
            st = self.state
            return {
                "jurisdiction": self.gateway.jurisdiction, "now": now, "log": log,
                "view": self._view(log["size"]),
                "rates": self._rates(now), "entry_types": dict(st.types.most_common()),
                "approvals": self._approvals(now),
                "releases": sorted(st.releases.values(), key=lambda r: -r["index"])[:10],
                "starts": list(st.starts)[::-1],
                "bulk": self._bulk(),
                "budgets": sorted(st.budgets.values(),
                                  key=lambda b: (-b["period"], b["scope"], b["name"]))[:50],
                "audit": self._audit(),
            }

    def _view(self, size: int) -> dict[str, Any]:
        """How much of the log the view covers, and why it may not be all of it."""
        seen = self.state.seen
        partial = seen < size or self.unreadable is not None
        reason = None
        if self.unreadable is not None:
            reason = f"a part of the log could not be read ({self.unreadable})"
        elif seen < size:
            reason = f"catching up: {seen:,} of {size:,} entries read so far"
        return {"entries_read": seen, "log_size": size, "partial": partial, "reason": reason,
                "restored_from": self.restored_from, "note": self.note,
                "state_file": str(self.state_path) if self.state_path else None}

    # -- the log --------------------------------------------------------------------
    def _log(self, now: float) -> dict[str, Any]:
        signed = self._checkpoint()
        if signed is None:
            return {"origin": self.gateway.origin, "size": 0, "checkpoint_age_s": None,
                    "cosignatures": [], "witnessed": 0}
        cp = signed.checkpoint
        if self.checkpoint_seen is None or self.checkpoint_seen[:2] != (cp.size, cp.root):
            self.checkpoint_seen = (cp.size, cp.root, now)
        cosigs, witnessed = _cosignatures(signed.note, cp.origin, self.cosigners, now)
        stamps = [c["time"] for c in cosigs if c["time"] is not None]
        since = max(stamps) if stamps else self.checkpoint_seen[2]
        self._restore(cp.size)
        self._scan(cp.size, now)
        return {"origin": cp.origin, "size": cp.size, "root": cp.root.hex(),
                "checkpoint_age_s": max(0.0, round(now - since, 1)),
                "cosignatures": cosigs, "witnessed": witnessed}

    def _checkpoint(self) -> SignedCheckpoint | None:
        """The newest checkpoint: the one the log's storage publishes (verified with the
        log key), or the one this gateway's appender last saw if newer.  A worker that
        appends through the sequencer service sees a checkpoint only when it asks for
        one, so its appender alone would show an empty log (issue 16 item 3)."""
        own = self.gateway.log.checkpoint()
        try:
            published: SignedCheckpoint | None = self.gateway.log_reader.checkpoint()
        except BordergateError:
            published = None
        candidates = [c for c in (own, published) if c is not None]
        return max(candidates, key=lambda c: c.checkpoint.size, default=None)

    def _restore(self, size: int) -> None:
        """Take the saved state if it is of this log (its last entry's leaf hash is the
        log's), once; else read from entry 0 and say why."""
        saved, self.restored = self.restored, None
        if saved is None:
            return
        if saved.matches(self.gateway.origin, size, self._leaf_at):
            self.state, self.restored_from = saved, saved.seen
        else:
            self.note = (f"the saved state (entry {saved.seen:,}) does not match this log: "
                         "read again from entry 0")

    def _leaf_at(self, index: int) -> str | None:
        bundle = index // TILE_WIDTH
        try:
            entries = self.gateway.log_reader.bundle(bundle, index % TILE_WIDTH + 1)
        except BordergateError:
            return None
        return merkle.leaf_hash(entries[index % TILE_WIDTH]).hex()

    def _scan(self, size: int, now: float) -> None:
        """Read the entries added since the last look, at most ``per_look`` of them."""
        st = self.state
        reader = self.gateway.log_reader
        index = st.seen
        stop = min(size, index + self.per_look)
        self.unreadable = None
        last = b""
        while index < stop:
            bundle = index // TILE_WIDTH
            width = min(TILE_WIDTH, size - bundle * TILE_WIDTH)
            try:
                entries = reader.bundle(bundle, width)
            except BordergateError as exc:
                self.unreadable = exc.code
                break
            end = min(width, stop - bundle * TILE_WIDTH)
            for offset in range(index - bundle * TILE_WIDTH, end):
                last = entries[offset]
                self._take(bundle * TILE_WIDTH + offset, last, now)
            index = bundle * TILE_WIDTH + end
        if index != st.seen:
            st.seen, st.last_leaf = index, merkle.leaf_hash(last).hex()
            self._save(now, force=index >= size)

    def _save(self, now: float, *, force: bool) -> None:
        if self.state_path is None or (not force and now - self.saved_at < _SAVE_EVERY):
            return
        try:
            save_state(self.state_path, self.state)
            self.saved_at = now
        except OSError as exc:
            self.note = f"the state file cannot be written ({exc.strerror}): kept in memory"

    def _take(self, index: int, data: bytes, now: float) -> None:
        """Count one entry; one whose members are not of the shapes read here is
        ``malformed`` (skipped: it must not stop the reading of the rest)."""
        st = self.state
        try:
            entry = parse_entry(data)
        except BordergateError:
            st.types["malformed"] += 1
            return
        try:
            self._take_entry(index, entry.type, entry.time, entry.body, now)
        except _SHAPE_ERRORS:
            st.types["malformed"] += 1
        else:
            st.types[entry.type] += 1

    def _take_entry(self, index: int, kind: str, t: float, body: Mapping[str, Any],
                    now: float) -> None:
        st = self.state
        if kind in DECISION_ACTIONS:
            if not isinstance(body.get("decisions"), list):
                raise TypeError("decisions is not a list")
            if t >= now - 5 * _WINDOW:
                self._rate(t, kind, body)
            if kind == "access":
                self._count_bulk(body, t)
            elif kind == "export":
                self._budget(index, body)
        elif kind == "release":
            manifest = body.get("manifest")
            if not isinstance(manifest, dict):
                manifest = {}
            st.releases[str(body.get("release"))] = {
                "index": index, "id": str(body.get("release"))[:80], "time": t,
                "version": str(manifest.get("version"))[:40], "approvals": 0, "rejections": 0}
        elif kind == "release-review":
            release = st.releases.get(str(body.get("release")))
            if release is not None:
                key = "approvals" if body.get("verdict") == "approve" else "rejections"
                release[key] += 1
        elif kind == "gateway-start":
            st.starts = [*st.starts[-9:], {"index": index, "time": t,
                                           "release": str(body.get("release"))[:80],
                                           "reviewed": body.get("reviewed") is True}]

    def _rate(self, t: float, kind: str, body: Mapping[str, Any]) -> None:
        principal = body.get("principal")
        where = principal.get("location") if isinstance(principal, dict) else None
        per_class: Counter[str] = Counter()
        for record in body.get("decisions") or []:
            if isinstance(record, dict) and record.get("allowed") is True:
                per_class[str(record.get("class") or kind)[:24]] += 1
        for cls, n in per_class.items():
            self.decisions.append((t, cls, str(where)[:16], n))

    def _count_bulk(self, body: Mapping[str, Any], t: float) -> None:
        """As the audit counts (``audit.rules.bulk``), with the roster in force now."""
        principal, released = body.get("principal"), body.get("released")
        collection, subject = body.get("collection"), body.get("subject")
        if not isinstance(principal, dict) or not isinstance(released, list) or \
                not isinstance(collection, str) or not isinstance(subject, str) or \
                body.get("outcome") not in ("allow", "partial"):
            return
        roster = self.gateway.roster.roster if self.gateway.roster is not None else None
        listed = roster.principal(str(principal.get("id"))) if roster is not None else None
        covered = None if roster is None else bool(listed and listed.covered_person)
        if not is_covered(principal, covered, self.countries):
            return
        names = [n for n in released if isinstance(n, str)]
        for counter in self.categories.counters(collection, names):
            for party in counterparties(principal):
                key = party[:120] + _SEP + counter
                state = self.state.bulk.get(key)
                if state is None:
                    state = self.state.bulk[key] = BulkCounterState()
                units = state.add(subject, t, self.bulk_settings.window_s) * \
                    self.bulk_settings.subject_weight(counter)
                state.peak = max(state.peak, units)

    def _budget(self, index: int, body: Mapping[str, Any]) -> None:
        """The budget an allowed export says it left: spent and limit right after it."""
        budget, principal = body.get("budget"), body.get("principal")
        if not isinstance(budget, dict) or not isinstance(principal, dict):
            return
        period, period_s = budget.get("period"), budget.get("period_s")
        for scope, name in (("principal", principal.get("id")),
                            ("dataset", body.get("collection"))):
            part = budget.get(scope)
            if not isinstance(part, dict) or not isinstance(period, int):
                continue
            spent, limit = part.get("spent_micro"), part.get("limit_micro")
            if isinstance(spent, int) and isinstance(limit, int):
                self.state.budgets[f"{scope}/{name}/{period}"] = {
                    "scope": scope, "name": str(name)[:120], "period": period,
                    "period_s": period_s if isinstance(period_s, int) else None,
                    "spent_micro": spent, "limit_micro": limit, "index": index}

    def _bulk(self) -> list[dict[str, Any]]:
        """The bulk counters, largest share of their threshold first."""
        s = self.bulk_settings
        out: list[dict[str, Any]] = []
        for key, state in self.state.bulk.items():
            party, counter = key.split(_SEP, 1)
            threshold = s.threshold(counter)
            current = len(state.subjects) * s.subject_weight(counter)
            out.append({"counterparty": party, "counter": counter, "current": current,
                        "peak": state.peak, "threshold": threshold,
                        "unit": "devices" if s.subject_weight(counter) > 1 or
                        counter == "precise_geolocation" else "persons",
                        "share": round(state.peak / threshold, 3) if threshold else None})
        out.sort(key=lambda r: (-float(r["share"] if r["share"] is not None else 1e9),
                                str(r["counterparty"]), str(r["counter"])))
        return out[:100]

    def _rates(self, now: float) -> dict[str, Any]:
        while self.decisions and self.decisions[0][0] < now - 5 * _WINDOW:
            self.decisions.popleft()
        by_class: Counter[str] = Counter()
        by_dest: Counter[str] = Counter()
        by_pair: Counter[str] = Counter()
        for t, cls, where, n in self.decisions:
            if t >= now - _WINDOW:
                by_class[cls] += n
                by_dest[where] += n
                by_pair[f"{cls} \u2192 {where}"] += n
        per_s = {k: round(v / _WINDOW, 3) for k, v in by_pair.most_common(20)}
        return {"window_s": _WINDOW,
                "by_class": {k: round(v / _WINDOW, 3) for k, v in by_class.most_common()},
                "by_destination": {k: round(v / _WINDOW, 3) for k, v in by_dest.most_common()},
                "by_class_and_destination": per_s,
                "total_per_s": round(sum(by_class.values()) / _WINDOW, 3)}

    def _approvals(self, now: float) -> list[dict[str, Any]]:
        try:
            pending = self.gateway.approvals.list("pending", now=now, limit=50)
        except BordergateError:
            return []
        return [{"id": r.id, "requester": r.requester, "org": r.requester_org,
                 "location": r.requester_location, "purpose": r.purpose, "reason": r.reason,
                 "classes": list(r.classes), "collections": list(r.collections),
                 "grants": len(r.approvers), "age_s": round(now - r.requested_at)}
                for r in pending]

    def _audit(self) -> dict[str, Any] | None:
        if not self.report_path:
            return None
        path = Path(self.report_path)
        if path.is_dir():
            path = path / "report.json"
        try:
            if path.stat().st_size > _MAX_REPORT:
                return {"error": "report too large"}
            doc = json.loads(path.read_text(encoding="utf-8"))
            summary, findings = doc["summary"], doc["findings"]
            if not isinstance(summary, dict) or not isinstance(findings, list) or \
                    not all(isinstance(f, dict) for f in findings):
                raise TypeError("the summary or a finding is not an object")
            mine = [f for f in findings if f.get("jurisdiction") == self.gateway.jurisdiction]
            return {"generated": _shown(doc.get("generated")),
                    "verdict": _shown(summary.get("verdict")),
                    "findings_total": _shown(summary.get("findings")),
                    "by_kind": summary.get("by_kind"),
                    "findings": [{k: _shown(f.get(k)) for k in (
                        "kind", "severity", "category", "index", "time", "explanation")}
                                 for f in mine[:50]]}
        except (OSError, RecursionError, *_SHAPE_ERRORS) as exc:
            return {"error": f"cannot read the last audit report: {type(exc).__name__}"}


def _shown(value: Any) -> Any:
    """A value of someone else's document as the page may show it: a string (at most
    400 characters), a number, a boolean or None; anything else as its JSON text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:400]


def _cosignatures(note: bytes, origin: str, cosigners: Sequence[CosignatureVerifier],
                  now: float) -> tuple[list[dict[str, Any]], int]:
    """The signature lines of a checkpoint other than the log's own, each marked
    ``verified`` only if it is a valid cosignature by one of ``cosigners`` (a time
    only then, and only if no later than ``now`` + skew), and how many distinct
    witnesses verified."""
    try:
        text, lines = note_signatures(note)
    except BordergateError:
        return [], 0
    message = text.encode("utf-8")
    out: list[dict[str, Any]] = []
    good: list[tuple[str, int]] = []
    for sig in lines:
        if sig.name == origin:
            continue
        verified = any((key.name, key.key_id) == (sig.name, sig.key_id)
                       and key.verify(message, sig.signature) for key in cosigners)
        stamp: float | None = None
        note_text = None if verified else "not verified: no configured witness key"
        if verified:
            good.append((sig.name, sig.key_id))
            try:
                stamp = float(cosignature_timestamp(sig))
            except BordergateError:
                stamp = None
            if stamp is not None and stamp > now + _CLOCK_SKEW:
                stamp, note_text = None, "cosigned at a time in the future"
        out.append({"witness": sig.name[:120], "time": stamp, "verified": verified,
                    "note": note_text})
    return out, count_witnesses(good, cosigners) if good else 0


def dashboard_app(gateway: Gateway, *, report_path: str | None = None,
                  state_path: str | None = None,
                  cosigners: Sequence[CosignatureVerifier] | None = None) -> Starlette:
    """The dashboard's Starlette app, to mount at ``/dashboard`` on the gateway
    (``cosigners``: the witness keys of its log, else the gateway's
    ``witness_cosigners``)."""
    feed = DashboardFeed(gateway, report_path=report_path, state_path=state_path,
                         cosigners=cosigners)
    headers = {"Content-Security-Policy": _CSP, "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff"}

    async def page(request: Request) -> Response:
        data = await asyncio.to_thread(feed.data)
        initial = json.dumps(data).replace("<", "\\u003c").replace("&", "\\u0026")
        html = (_asset("templates/dashboard.html")
                .replace("{{css}}", _asset("static/dashboard.css"))
                .replace("{{jurisdiction}}", _escape(gateway.jurisdiction))
                .replace("{{initial}}", initial))
        return HTMLResponse(html, headers=headers)

    async def data_json(request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(feed.data), headers=headers)

    async def script(request: Request) -> Response:
        return Response(_asset("static/dashboard.js"), media_type="text/javascript",
                        headers=headers)

    app = Starlette(routes=[Route("/", page, methods=["GET"]),
                            Route("/data.json", data_json, methods=["GET"]),
                            Route("/dashboard.js", script, methods=["GET"])])
    app.state.feed = feed
    return app


def _escape(text: str) -> str:
    from html import escape

    return escape(text, quote=True)
