"""The gateway's read-only dashboard at ``/dashboard``, for the custodian and monitors.

``GET /dashboard/`` serves one page (``bordergate/web/templates/dashboard.html``
with its style sheet inlined) whose script (``/dashboard/dashboard.js``, served
from the package: no CDN, no third-party code) polls ``/dashboard/data.json``
every two seconds and draws:

* the log: size, checkpoint age, the cosignature lines on the checkpoint;
* decisions per second over the last minute, by field class and destination
  (where the principal works), read from the log's newest entries;
* pending approvals (from the approvals store), latest releases and gateway
  starts (from the log's release entries);
* the last audit's findings, from the ``report.json`` named by the
  ``BORDERGATE_AUDIT_REPORT`` environment variable (a file, or a directory
  holding ``report.json``) when it is set.

The page holds no subject data and no field values (the log holds none);
everything shown is escaped by the script (``textContent`` only).  This module
must never change state, write to the log, or serve anything but these routes.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter, deque
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bordergate.entries import DECISION_ACTIONS, parse_entry
from bordergate.errors import BordergateError
from bordergate.tlog.cosignature import cosignature_timestamp
from bordergate.tlog.note import parse_signature_lines
from bordergate.tlog.tiles import TILE_WIDTH

if TYPE_CHECKING:
    from bordergate.gateway.service import Gateway
    from bordergate.tlog.checkpoint import SignedCheckpoint

__all__ = ["REPORT_ENV", "DashboardFeed", "dashboard_app"]

REPORT_ENV = "BORDERGATE_AUDIT_REPORT"
_WEB = Path(__file__).resolve().parents[1] / "web"
_TAIL = 4096          # newest entries read when the dashboard starts on a long log
_WINDOW = 60.0        # seconds of decisions in the rate
_MAX_REPORT = 32 << 20
_CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@cache
def _asset(name: str) -> str:
    return (_WEB / name).read_text(encoding="utf-8")


class DashboardFeed:
    """What the dashboard shows, read incrementally from one gateway's log and stores."""

    def __init__(self, gateway: Gateway, *, report_path: str | None = None,
                 clock: Any = time.time) -> None:
        self.gateway = gateway
        self.report_path = report_path if report_path is not None else os.environ.get(REPORT_ENV)
        self.clock = clock
        self.seen = 0
        self.decisions: deque[tuple[float, str, str, int]] = deque()
        self.types: Counter[str] = Counter()
        self.releases: dict[str, dict[str, Any]] = {}
        self.starts: deque[dict[str, Any]] = deque(maxlen=10)
        self.checkpoint_seen: tuple[int, bytes, float] | None = None
        self._lock = threading.Lock()

    def data(self) -> dict[str, Any]:
        """The dashboard's JSON document, now."""
        with self._lock:
            now = float(self.clock())
            log = self._log(now)
            return {
                "jurisdiction": self.gateway.jurisdiction, "now": now, "log": log,
                "rates": self._rates(now), "entry_types": dict(self.types.most_common()),
                "approvals": self._approvals(now),
                "releases": sorted(self.releases.values(), key=lambda r: -r["index"])[:10],
                "starts": list(self.starts)[::-1],
                "audit": self._audit(),
            }

    # -- the log --------------------------------------------------------------------
    def _log(self, now: float) -> dict[str, Any]:
        signed = self._checkpoint()
        if signed is None:
            return {"origin": self.gateway.origin, "size": 0, "checkpoint_age_s": None,
                    "cosignatures": []}
        cp = signed.checkpoint
        if self.checkpoint_seen is None or self.checkpoint_seen[:2] != (cp.size, cp.root):
            self.checkpoint_seen = (cp.size, cp.root, now)
        cosigs = _cosignatures(signed.note, cp.origin)
        stamps = [c["time"] for c in cosigs if c["time"] is not None]
        since = max(stamps) if stamps else self.checkpoint_seen[2]
        self._scan(cp.size)
        return {"origin": cp.origin, "size": cp.size, "root": cp.root.hex(),
                "checkpoint_age_s": max(0.0, round(now - since, 1)),
                "cosignatures": cosigs}

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

    def _scan(self, size: int) -> None:
        """Read the entries added since the last look (at most the newest ``_TAIL``)."""
        start = max(self.seen, size - _TAIL)
        reader = self.gateway.log_reader
        index = start
        while index < size:
            bundle = index // TILE_WIDTH
            width = min(TILE_WIDTH, size - bundle * TILE_WIDTH)
            try:
                entries = reader.bundle(bundle, width)
            except BordergateError:
                break
            for offset in range(index - bundle * TILE_WIDTH, width):
                self._take(bundle * TILE_WIDTH + offset, entries[offset])
            index = bundle * TILE_WIDTH + width
        self.seen = index

    def _take(self, index: int, data: bytes) -> None:
        try:
            entry = parse_entry(data)
        except BordergateError:
            self.types["malformed"] += 1
            return
        self.types[entry.type] += 1
        body = entry.body
        if entry.type in DECISION_ACTIONS:
            principal = body.get("principal")
            where = principal.get("location") if isinstance(principal, dict) else None
            per_class: Counter[str] = Counter()
            for record in body.get("decisions") or []:
                if isinstance(record, dict) and record.get("allowed") is True:
                    per_class[str(record.get("class") or entry.type)[:24]] += 1
            for cls, n in per_class.items():
                self.decisions.append((entry.time, cls, str(where)[:16], n))
        elif entry.type == "release":
            manifest = body.get("manifest")
            if not isinstance(manifest, dict):
                manifest = {}
            self.releases[str(body.get("release"))] = {
                "index": index, "id": str(body.get("release"))[:80], "time": entry.time,
                "version": str(manifest.get("version"))[:40], "approvals": 0, "rejections": 0}
        elif entry.type == "release-review":
            release = self.releases.get(str(body.get("release")))
            if release is not None:
                key = "approvals" if body.get("verdict") == "approve" else "rejections"
                release[key] += 1
        elif entry.type == "gateway-start":
            self.starts.append({"index": index, "time": entry.time,
                                "release": str(body.get("release"))[:80],
                                "reviewed": body.get("reviewed") is True})

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
            summary = doc["summary"]
            mine = [f for f in doc["findings"]
                    if f.get("jurisdiction") == self.gateway.jurisdiction]
            return {"generated": doc.get("generated"), "verdict": summary.get("verdict"),
                    "findings_total": summary.get("findings"),
                    "by_kind": summary.get("by_kind"),
                    "findings": [{k: f.get(k) for k in ("kind", "severity", "category",
                                                        "index", "time", "explanation")}
                                 for f in mine[:50]]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return {"error": f"cannot read the last audit report: {type(exc).__name__}"}


def _cosignatures(note: bytes, origin: str) -> list[dict[str, Any]]:
    """The signature lines of a checkpoint other than the log's own (not verified here)."""
    _, sep, block = note.partition(b"\n\n")
    if not sep:
        return []
    try:
        lines = parse_signature_lines(block)
    except BordergateError:
        return []
    out = []
    for sig in lines:
        if sig.name == origin:
            continue
        try:
            stamp: float | None = float(cosignature_timestamp(sig))
        except BordergateError:
            stamp = None
        out.append({"witness": sig.name[:120], "time": stamp})
    return out


def dashboard_app(gateway: Gateway, *, report_path: str | None = None) -> Starlette:
    """The dashboard's Starlette app, to mount at ``/dashboard`` on the gateway."""
    feed = DashboardFeed(gateway, report_path=report_path)
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
