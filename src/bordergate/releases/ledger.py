"""The state of releases, derived from a log's release entries alone.

A :class:`ReleaseLedger` is fed the ``release``, ``release-review`` and
``gateway-start`` entries of one log in index order and answers:

* each release's state: **approved** when at least ``required`` distinct
  configured reviewers approved it with a valid signature and none of them
  rejected it; **rejected** when a configured reviewer rejected it (a later
  approval never undoes a rejection); else **pending**.  A rejection holds for
  the *content* it rejected (package, policy, runtime and deployment digests:
  what a gateway's self-check matches), not only for one release id: the same
  content proposed again (a new id, since the manifest holds its time) stays
  rejected until every reviewer who rejected it approves that proposal;
* which approved release names a given package digest and policy digest;
* what an auditor must flag (:class:`Finding`): reviews by unknown keys, bad
  signatures, duplicate reviews, reviews of unknown releases, release entries
  whose id does not match their manifest, unreviewed gateway starts and starts
  naming a release that was not approved at that point of the log;
* the review throughput (:class:`Throughput`): releases proposed and decided
  per period, the oldest pending release, the review latency.

Pure: entries in, values out.  This module must never read a log, a clock or a
key file (the caller passes the log origin, the reviewers and ``now``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bordergate.entries import Entry, canonical_json, format_time
from bordergate.errors import VerificationError
from bordergate.releases.manifest import Manifest, parse_manifest, release_id
from bordergate.releases.review import ReviewPolicy, verify_review

__all__ = [
    "APPROVED",
    "PENDING",
    "REJECTED",
    "Finding",
    "GatewayStart",
    "ReleaseLedger",
    "ReleaseRecord",
    "Throughput",
]

APPROVED, REJECTED, PENDING = "approved", "rejected", "pending"


@dataclass(frozen=True)
class Finding:
    """Something an auditor must see, with the log index that proves it.

    Attributes:
        index: the entry's index in the log.
        code: stable snake_case kind, e.g. ``unreviewed_start``.
        message: for people.
    """

    index: int
    code: str
    message: str


@dataclass
class ReleaseRecord:
    """One proposed release and the valid reviews it got so far.

    Attributes:
        id: the release id (``sha256:`` of the canonical manifest).
        index: the log index of its ``release`` entry.
        time: the entry's time (epoch seconds).
        manifest: the checked manifest.
        approvals: reviewer name -> index of their first valid approval.
        rejections: reviewer name -> index of their first valid rejection.
        decided: ``(index, time)`` of the review that approved or rejected it.
        vetoes: reviewer name -> index of their first rejection of any release
            with this content (shared by those releases): each blocks this
            release until that reviewer approves it.
    """

    id: str
    index: int
    time: float
    manifest: Manifest
    required: int
    approvals: dict[str, int] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    decided: tuple[int, float] | None = None
    vetoes: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> str:
        if self.rejections or any(r not in self.approvals for r in self.vetoes):
            return REJECTED
        if len(self.approvals) >= self.required:
            return APPROVED
        return PENDING


@dataclass(frozen=True)
class GatewayStart:
    """A ``gateway-start`` entry: which gateway, which release, reviewed or not."""

    index: int
    time: float
    gateway: str
    release: str | None
    reviewed: bool


@dataclass(frozen=True)
class Throughput:
    """Whether reviews keep up with changes.

    Attributes:
        proposed: releases proposed in all.
        decided: releases approved or rejected.
        pending: releases still waiting.
        oldest_pending_age: seconds since the oldest pending release (None if none).
        median_latency: median seconds from proposal to decision (None if none).
        periods: ``(period start, proposed, decided)`` per period, oldest first.
    """

    proposed: int
    decided: int
    pending: int
    oldest_pending_age: float | None
    median_latency: float | None
    periods: tuple[tuple[str, int, int], ...]

    def to_json(self) -> dict[str, Any]:
        return {"proposed": self.proposed, "decided": self.decided, "pending": self.pending,
                "oldest_pending_age_s": None if self.oldest_pending_age is None
                else int(self.oldest_pending_age),
                "median_latency_s": None if self.median_latency is None
                else int(self.median_latency),
                "periods": [{"start": s, "proposed": p, "decided": d}
                            for s, p, d in self.periods]}


class ReleaseLedger:
    """Release state of one log (see the module docstring)."""

    def __init__(self, policy: ReviewPolicy, *, log: str) -> None:
        """Start an empty ledger.

        Args:
            policy: the configured reviewers and the approvals required.
            log: the log's origin (reviews sign it).
        """
        self.policy = policy
        self.log = log
        self.releases: dict[str, ReleaseRecord] = {}
        self.starts: list[GatewayStart] = []
        self.findings: list[Finding] = []
        self.size = 0
        # content (package, policy, runtime, deployment digests) -> its rejections
        self._vetoes: dict[tuple[str, str, str | None, str | None], dict[str, int]] = {}

    def add_all(self, entries: Iterable[tuple[int, Entry]]) -> None:
        """Feed ``(index, entry)`` pairs in index order (other types are ignored)."""
        for index, entry in entries:
            self.add(index, entry)

    def add(self, index: int, entry: Entry) -> None:
        """Feed one entry; entries must come in increasing index order.

        Raises:
            ValueError: ``index`` is not after the previous one (programmer misuse).
        """
        if index < self.size:
            raise ValueError(f"entry {index} fed after {self.size - 1}")
        self.size = index + 1
        if entry.type == "release":
            self._release(index, entry)
        elif entry.type == "release-review":
            self._review(index, entry)
        elif entry.type == "gateway-start":
            self._start(index, entry)

    def _flag(self, index: int, code: str, message: str) -> None:
        self.findings.append(Finding(index, code, message))

    def _release(self, index: int, entry: Entry) -> None:
        try:
            manifest = parse_manifest(entry.body.get("manifest"))
            rid = release_id(canonical_json(entry.body.get("manifest")))
        except (VerificationError, ValueError) as e:
            self._flag(index, "release_malformed", f"release entry {index}: {e}")
            return
        if entry.body.get("release") != rid:
            self._flag(index, "release_id_mismatch",
                       f"release entry {index} names {str(entry.body.get('release'))[:80]!r} "
                       f"but its manifest is {rid}")
            return
        if rid in self.releases:
            self._flag(index, "release_duplicate",
                       f"release {rid} proposed again (first at {self.releases[rid].index})")
            return
        self.releases[rid] = ReleaseRecord(rid, index, entry.time, manifest,
                                           self.policy.required,
                                           vetoes=self._vetoes.setdefault(_content(manifest), {}))

    def _review(self, index: int, entry: Entry) -> None:
        try:
            reviewer = verify_review(entry.body, format_time(entry.time), log=self.log,
                                     policy=self.policy)
        except VerificationError as e:
            self._flag(index, e.code, f"review {index} does not count: {e}")
            return
        record = self.releases.get(entry.body["release"])
        if record is None:
            self._flag(index, "review_unknown_release",
                       f"review {index} by {reviewer.name!r} names no earlier release")
            return
        verdict = entry.body["verdict"]
        who = self.policy.identity(reviewer)  # one key counts once, under any name
        if who in record.approvals or who in record.rejections:
            self._flag(index, "review_duplicate",
                       f"review {index}: {reviewer.name!r} already reviewed {record.id}"
                       + (f" (as {who!r}, the same key)" if who != reviewer.name else ""))
        same = [r for r in self.releases.values() if r.vetoes is record.vetoes]
        before = [r.state for r in same]
        target = record.approvals if verdict == "approve" else record.rejections
        target.setdefault(who, index)
        if verdict != "approve":
            record.vetoes.setdefault(who, index)  # for every release of this content
        for r, was in zip(same, before, strict=True):
            if r.state != was:
                r.decided = (index, entry.time)

    def _start(self, index: int, entry: Entry) -> None:
        body = entry.body
        release = body.get("release") if isinstance(body.get("release"), str) else None
        start = GatewayStart(index, entry.time, str(body.get("gateway"))[:80], release,
                             body.get("reviewed") is True)
        self.starts.append(start)
        if not start.reviewed:
            self._flag(index, "unreviewed_start",
                       f"gateway {start.gateway!r} started unreviewed (entry {index})")
            return
        record = self.releases.get(release or "")
        if record is None or record.state != APPROVED:
            state = "unknown" if record is None else record.state
            self._flag(index, "start_unapproved_release",
                       f"gateway {start.gateway!r} claims reviewed release "
                       f"{str(release)[:80]!r}, which is {state} at entry {index}")
            return
        for key, digest in (("package", record.manifest.package_digest),
                            ("policy", record.manifest.policy_digest),
                            ("bundle", record.manifest.policy_digest)):
            if body.get(key) is not None and body.get(key) != digest:
                self._flag(index, "start_digest_mismatch",
                           f"gateway {start.gateway!r} ran {key} {str(body.get(key))[:80]} "
                           f"but release {record.id} names {digest}")

    # -- questions ------------------------------------------------------------------
    def approved_for(self, package_digest: str, policy_digest: str) -> ReleaseRecord | None:
        """The latest approved release naming both digests, or None."""
        found = [r for r in self.releases.values() if r.state == APPROVED
                 and r.manifest.package_digest == package_digest
                 and r.manifest.policy_digest == policy_digest]
        return max(found, key=lambda r: r.index) if found else None

    def naming(self, package_digest: str | None = None, policy_digest: str | None = None
               ) -> list[ReleaseRecord]:
        """Releases (any state) naming the given digests, oldest first."""
        return [r for r in self.releases.values()
                if package_digest in (None, r.manifest.package_digest)
                and policy_digest in (None, r.manifest.policy_digest)]

    def find(self, ref: str) -> ReleaseRecord | None:
        """A release by id, unique id prefix (``sha256:`` optional) or entry index."""
        if ref.isdigit():
            return next((r for r in self.releases.values() if r.index == int(ref)), None)
        prefix = ref if ref.startswith("sha256:") else "sha256:" + ref
        hits = [r for r in self.releases.values() if r.id.startswith(prefix)]
        return hits[0] if len(hits) == 1 and len(prefix) > len("sha256:") + 3 else None

    def throughput(self, now: float, *, period: float = 7 * 86400) -> Throughput:
        """Proposed vs decided releases per ``period`` seconds, and pending ages.

        Args:
            now: the reference time, epoch seconds.
            period: the length of one period (default a week).
        """
        records = list(self.releases.values())
        pending = [r for r in records if r.state == PENDING]
        decided = [r for r in records if r.decided is not None]
        latencies = [r.decided[1] - r.time for r in decided if r.decided is not None]
        buckets: dict[int, list[int]] = {}
        for r in records:
            buckets.setdefault(int(r.time // period), [0, 0])[0] += 1
            if r.decided is not None:
                buckets.setdefault(int(r.decided[1] // period), [0, 0])[1] += 1
        periods = tuple((format_time(k * period), p, d) for k, (p, d) in sorted(buckets.items()))
        return Throughput(
            proposed=len(records), decided=len(decided), pending=len(pending),
            oldest_pending_age=max((now - r.time for r in pending), default=None),
            median_latency=statistics.median(latencies) if latencies else None,
            periods=periods)


def _content(m: Manifest) -> tuple[str, str, str | None, str | None]:
    """What a release lets run: the digests a gateway's self-check matches."""
    return (m.package_digest, m.policy_digest,
            m.runtime.digest if m.runtime is not None else None,
            m.deployment.digest if m.deployment is not None else None)
