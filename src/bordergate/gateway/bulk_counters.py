"""Bulk counters kept by the gateway (28 CFR 202.205; :mod:`bordergate.dsp.bulk`).

For each counterparty (a covered principal and its organisation) and each
counter (DSP category, combination, government-related data), the distinct
subjects whose data it was released over the rolling window.  The gateway asks
:meth:`BulkCounters.check` before it logs a read; a read that would make a
counter hold more than its threshold is refused (or held for an approval,
``gateway.service``), and the audit recomputes every figure from the log
(:mod:`bordergate.audit.rules.bulk`).

Counting stays cheap:

* **per-worker memory**: each worker remembers, per counter, the subjects the
  shared table recorded and when; a subject recorded less than ``margin_s``
  ago needs no database call (:meth:`BulkCounters.remembered`);
* **the shared table** (:class:`BulkLedger`, beside the jurisdiction's records:
  SQLite or PostgreSQL) is asked only for a subject new to a counterparty's set
  (or remembered for longer than the margin); its claim counts and records in
  one transaction serialised per counterparty, so no worker ever overshoots:
  every increase of a count passes that check, whatever the other workers do;
* **the safety margin**: a worker does not write every repeated read, so the
  table's last-seen time of a subject may lag by up to ``margin_s``; the table
  therefore counts over ``window_s + margin_s``.  Its figure is never below the
  exact one (the audit's); it may include subjects last read between 12 months
  and 12 months plus the margin ago.  A claim recorded for a read whose entry
  then failed to log counts too (over, never under).

This module must never log or keep a raw subject id (only pseudonyms).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bordergate.dsp.bulk import (
    BulkAction,
    BulkSettings,
    FieldCategories,
    counterparties,
    is_covered,
)
from bordergate.locations import parse_store_location
from bordergate.postgres_tables import SharedConnection
from bordergate.sqlite_connections import ThreadConnections

__all__ = [
    "BulkClaim",
    "BulkCounters",
    "BulkCrossing",
    "BulkLedger",
    "BulkVerdict",
    "MemoryBulkLedger",
    "PostgresBulkLedger",
    "SqliteBulkLedger",
    "open_bulk_ledger",
]


@dataclass(frozen=True)
class BulkClaim:
    """One counter a read adds a subject to: ``limit`` is the most subjects it may hold."""

    counterparty: str
    counter: str
    limit: int


@dataclass(frozen=True)
class BulkCrossing:
    """A counter the read would take over its threshold.

    Attributes:
        counterparty: ``principal:<id>`` or ``org:<name>``.
        counter: the category, ``combined:...`` or ``government_related``.
        subjects: distinct subjects it would hold with this read.
        count: the same in the threshold's unit (devices for precise geolocation).
        threshold: the number it must not exceed.
        action: the configured action.
    """

    counterparty: str
    counter: str
    subjects: int
    count: int
    threshold: int
    action: BulkAction

    def to_json(self) -> dict[str, Any]:
        return {"counterparty": self.counterparty, "counter": self.counter,
                "subjects": self.subjects, "count": self.count,
                "threshold": self.threshold, "action": self.action.value}


@dataclass(frozen=True)
class BulkVerdict:
    """What :meth:`BulkCounters.check` found.

    ``refused`` is the stable error code when the read must not go ahead
    (``bulk_threshold_reached`` or ``bulk_approval_required``), None when it may
    (``crossings`` then non-empty only for a crossing an approval allowed).
    """

    crossings: tuple[BulkCrossing, ...] = ()
    refused: str | None = None


_NOTHING = BulkVerdict()


class BulkLedger(Protocol):
    """The subjects counted per counterparty and counter, shared by every worker."""

    def claim(self, claims: Sequence[BulkClaim], subject: str, now: float, since: float,
              force: bool) -> list[tuple[int, bool]]:
        """Atomically: for each claim, the subjects its counter holds with ``subject``
        (a pseudonym) seen after ``since``, and whether ``subject`` is new to it;
        record ``subject`` as seen at ``now`` in every one unless a new subject would
        make one hold more than its ``limit`` (``force``: record anyway, an approved
        crossing).

        Raises:
            Unavailable: ``store_unavailable``.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _over(claims: Sequence[BulkClaim], counts: Sequence[tuple[int, bool]]) -> bool:
    """Whether the subject is new to a counter it would take over its limit (a
    subject already counted adds nothing, whatever the count)."""
    return any(new and n > c.limit for c, (n, new) in zip(claims, counts, strict=True))


class MemoryBulkLedger:
    """The in-memory twin (one process)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], dict[str, float]] = {}
        self._lock = threading.Lock()

    def claim(self, claims: Sequence[BulkClaim], subject: str, now: float, since: float,
              force: bool) -> list[tuple[int, bool]]:
        with self._lock:
            sets = []
            counts = []
            for c in claims:
                seen = self._seen.setdefault((c.counterparty, c.counter), {})
                for s in [s for s, t in seen.items() if t <= since]:
                    del seen[s]
                sets.append(seen)
                counts.append((len(seen) + (subject not in seen), subject not in seen))
            if force or not _over(claims, counts):
                for seen in sets:
                    seen[subject] = max(now, seen.get(subject, now))
            return counts

    def close(self) -> None:
        pass


_TABLE = """CREATE TABLE IF NOT EXISTS gateway_bulk_subjects (
    counterparty TEXT NOT NULL, counter TEXT NOT NULL, subject TEXT NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL, PRIMARY KEY (counterparty, counter, subject))"""
_INDEX = """CREATE INDEX IF NOT EXISTS gateway_bulk_subjects_seen
    ON gateway_bulk_subjects (counterparty, counter, last_seen)"""
_EXPIRE = ("DELETE FROM gateway_bulk_subjects WHERE counterparty = {0} AND counter = {0} "
           "AND last_seen <= {0}")
_HAS = ("SELECT 1 FROM gateway_bulk_subjects WHERE counterparty = {0} AND counter = {0} "
        "AND subject = {0}")
_COUNT = "SELECT count(*) FROM gateway_bulk_subjects WHERE counterparty = {0} AND counter = {0}"
_UPSERT = ("INSERT INTO gateway_bulk_subjects VALUES ({0}, {0}, {0}, {0}) "
           "ON CONFLICT (counterparty, counter, subject) DO UPDATE SET last_seen = "
           "CASE WHEN excluded.last_seen > gateway_bulk_subjects.last_seen "
           "THEN excluded.last_seen ELSE gateway_bulk_subjects.last_seen END")


def _claim_in(execute: Callable[..., Any], mark: str, claims: Sequence[BulkClaim],
              subject: str, *, now: float, since: float, force: bool
              ) -> list[tuple[int, bool]]:
    """The claim inside a transaction that serialises claims of its counterparties."""
    counts = []
    for c in claims:
        execute(_EXPIRE.format(mark), (c.counterparty, c.counter, since))
        n = int(execute(_COUNT.format(mark), (c.counterparty, c.counter)).fetchone()[0])
        has = execute(_HAS.format(mark), (c.counterparty, c.counter, subject)).fetchone()
        counts.append((n + (has is None), has is None))
    if force or not _over(claims, counts):
        for c in claims:
            execute(_UPSERT.format(mark), (c.counterparty, c.counter, subject, now))
    return counts


class SqliteBulkLedger:
    """The ledger in a table of the jurisdiction's SQLite file (one writer at a time)."""

    def __init__(self, path: str | Path) -> None:
        """Open the table (created if missing).

        Raises:
            Unavailable: ``store_unavailable``.
        """
        self._conns = ThreadConnections(path, what="bulk counters")
        self._conns.run(lambda conn: (conn.execute(_TABLE), conn.execute(_INDEX)))

    def claim(self, claims: Sequence[BulkClaim], subject: str, now: float, since: float,
              force: bool) -> list[tuple[int, bool]]:
        def work(conn: sqlite3.Connection) -> list[tuple[int, bool]]:
            conn.execute("BEGIN IMMEDIATE")  # every worker's claims, one at a time
            try:
                counts = _claim_in(conn.execute, "?", claims, subject, now=now, since=since,
                                   force=force)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return counts
        result: list[tuple[int, bool]] = self._conns.run(work)
        return result

    def close(self) -> None:
        self._conns.close()


class PostgresBulkLedger:
    """The ledger in a table of the jurisdiction's PostgreSQL database."""

    def __init__(self, url: str) -> None:
        """Connect and create the table if missing.

        Raises:
            Unavailable: ``store_unavailable``.
        """
        self._db = SharedConnection(url, ddl=[_TABLE, _INDEX], what="bulk counters")

    def claim(self, claims: Sequence[BulkClaim], subject: str, now: float, since: float,
              force: bool) -> list[tuple[int, bool]]:
        with self._db.using(transaction=True) as conn:
            # claims of one counterparty serialised across every worker (sorted:
            # two claims locking the same pair never wait for each other in turn)
            for party in sorted({c.counterparty for c in claims}):
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("bulk:" + party,))
            return _claim_in(conn.execute, "%s", claims, subject, now=now, since=since,
                             force=force)

    def close(self) -> None:
        self._db.close()


def open_bulk_ledger(store_url: str) -> BulkLedger:
    """The bulk ledger beside the records a store URL names.

    Raises:
        ConfigError: ``store_url`` for an unknown scheme.
        Unavailable: ``store_unavailable``.
    """
    location = parse_store_location(store_url)
    if location.kind == "postgresql":
        return PostgresBulkLedger(location.target)
    if location.kind == "memory":
        return MemoryBulkLedger()
    return SqliteBulkLedger(location.target)


class BulkCounters:
    """One worker's view of the bulk counters (see the module docstring)."""

    _MAX_REMEMBERED = 200_000  # (counter, subject) pairs per worker; then forgotten

    def __init__(self, *, jurisdiction: str, settings: BulkSettings,
                 categories: FieldCategories, ledger: BulkLedger,
                 countries: Iterable[str]) -> None:
        self.settings = settings
        self.categories = categories
        self.ledger = ledger
        self.countries = frozenset(countries)
        self.active = settings.enabled and jurisdiction in settings.jurisdictions
        # (counterparty, counter, subject) -> when the shared table recorded it
        self._recorded: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._plans: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}

    def claims(self, principal: Mapping[str, Any], roster_covered: bool | None,
               collection: str, names: Sequence[str]) -> list[BulkClaim]:
        """The counters a read releasing ``names`` to ``principal`` adds to (none when
        the principal is not a covered person or nothing released has a category)."""
        if not self.active or not is_covered(principal, roster_covered, self.countries):
            return []
        key = (collection, tuple(names))
        counters = self._plans.get(key)
        if counters is None:
            counters = self.categories.counters(collection, names)
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[key] = counters
        s = self.settings
        return [BulkClaim(party, c, s.subject_limit(c))
                for party in counterparties(principal) for c in counters]

    def remembered(self, claims: Sequence[BulkClaim], subject: str, now: float) -> bool:
        """Whether this worker knows every claim's counter holds ``subject`` already
        (recorded by the shared table less than ``margin_s`` ago): no call needed."""
        floor = now - self.settings.margin_s
        for c in claims:
            seen = self._recorded.get((c.counterparty, c.counter, subject))
            if seen is None or seen <= floor:
                return False
        return True

    def check(self, claims: Sequence[BulkClaim], subject: str, now: float, *,
              approved: bool) -> BulkVerdict:
        """Ask the shared table (blocking: call it off the event loop).

        Args:
            claims: as :meth:`claims` (non-empty).
            subject: the subject's pseudonym.
            now: the decision time.
            approved: the read presents a valid approval (a ``require_approval``
                crossing may then go ahead).

        Raises:
            Unavailable: the shared table is down (the read is refused: fail closed).
        """
        s = self.settings
        since = now - s.window_s - s.margin_s
        counts = self.ledger.claim(claims, subject, now, since, force=False)
        crossings = tuple(
            BulkCrossing(c.counterparty, c.counter, n, n * s.subject_weight(c.counter),
                         s.threshold(c.counter), s.action(c.counter))
            for c, (n, new) in zip(claims, counts, strict=True) if new and n > c.limit)
        if not crossings:
            self._remember(claims, subject, now)
            return _NOTHING
        if any(x.action is BulkAction.DENY for x in crossings):
            return BulkVerdict(crossings, "bulk_threshold_reached")
        if not approved:
            return BulkVerdict(crossings, "bulk_approval_required")
        self.ledger.claim(claims, subject, now, since, force=True)
        self._remember(claims, subject, now)
        return BulkVerdict(crossings, None)

    def _remember(self, claims: Sequence[BulkClaim], subject: str, now: float) -> None:
        recorded = self._recorded
        for c in claims:
            key = (c.counterparty, c.counter, subject)
            recorded[key] = now
            recorded.move_to_end(key)
        while len(recorded) > self._MAX_REMEMBERED:
            recorded.popitem(last=False)

    def close(self) -> None:
        self.ledger.close()
