"""Privacy budgets per principal and per dataset per period, shared by every worker.

The deployment sets, per jurisdiction (docs/config.md, ``[privacy]``), the
epsilon of one export, the budget of one principal and of one dataset (a
collection) per period, and the period's length.  Epsilon is an integer number
of millionths everywhere (settings, the store, log entries), so every worker
and the auditor add exactly the same numbers.

:meth:`BudgetStore.spend` checks and debits both budgets of one export in one
transaction of the approvals database (the SQLite file or PostgreSQL database
every worker of the jurisdiction already shares), *before* anything is
released: two workers cannot both spend the last of a budget.  An export that
does not fit is refused with ``privacy_budget_exhausted`` and spends nothing.

This module must never release, log or read a clock (the period is computed
from a time passed in).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bordergate.errors import PolicyDenied
from bordergate.locations import parse_store_location
from bordergate.postgres_tables import SharedConnection
from bordergate.sqlite_connections import ThreadConnections

__all__ = [
    "BudgetState",
    "BudgetStore",
    "MemoryBudgetStore",
    "PostgresBudgetStore",
    "PrivacySettings",
    "SqliteBudgetStore",
    "exhausted",
    "open_budget_store",
    "period_start",
]

T = TypeVar("T")


@dataclass(frozen=True)
class PrivacySettings:
    """The deployment's privacy settings of exports (integers; epsilon in millionths).

    Attributes:
        epsilon_micro: epsilon spent by one export.
        delta_exponent: delta of one export is ``10 ** -delta_exponent``.
        principal_budget_micro: what one principal may spend per period.
        dataset_budget_micro: what all principals together may spend on one
            collection per period.
        period_s: the length of a period in seconds (periods start at multiples
            of it since the Unix epoch).
    """

    epsilon_micro: int = 1_000_000
    delta_exponent: int = 9
    principal_budget_micro: int = 10_000_000
    dataset_budget_micro: int = 50_000_000
    period_s: int = 86_400


def period_start(now: float, period_s: int) -> int:
    """The start (Unix seconds) of the period holding ``now``."""
    return int(now) // period_s * period_s


@dataclass(frozen=True)
class BudgetState:
    """Both budgets of one export right after it was spent."""

    period: int
    period_s: int
    principal_spent: int
    principal_limit: int
    dataset_spent: int
    dataset_limit: int

    def to_json(self) -> dict[str, Any]:
        """The ``budget`` member of an ``export`` entry."""
        return {"period": self.period, "period_s": self.period_s,
                "principal": {"spent_micro": self.principal_spent,
                              "limit_micro": self.principal_limit},
                "dataset": {"spent_micro": self.dataset_spent,
                            "limit_micro": self.dataset_limit}}


def exhausted(scope: str) -> PolicyDenied:
    """The refusal of an export that does not fit in a budget."""
    return PolicyDenied(f"the {scope} privacy budget of this period is spent; nothing was "
                        "released", code="privacy_budget_exhausted")


class BudgetStore(Protocol):
    """Spent epsilon per (scope, name, period), shared by every worker."""

    def spend(self, principal: str, dataset: str, now: float, epsilon_micro: int,
              settings: PrivacySettings) -> BudgetState:
        """Check and debit both budgets at once.

        Raises:
            PolicyDenied: ``privacy_budget_exhausted`` (nothing debited).
            Unavailable: ``store_unavailable``.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _decide(spent: tuple[int, int], epsilon_micro: int, settings: PrivacySettings,
            period: int) -> BudgetState:
    principal, dataset = spent[0] + epsilon_micro, spent[1] + epsilon_micro
    if principal > settings.principal_budget_micro:
        raise exhausted("principal's")
    if dataset > settings.dataset_budget_micro:
        raise exhausted("dataset's")
    return BudgetState(period, settings.period_s, principal, settings.principal_budget_micro,
                       dataset, settings.dataset_budget_micro)


class MemoryBudgetStore:
    """In-memory twin (one process)."""

    def __init__(self) -> None:
        self._spent: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    def spend(self, principal: str, dataset: str, now: float, epsilon_micro: int,
              settings: PrivacySettings) -> BudgetState:
        period = period_start(now, settings.period_s)
        keys = (("principal", principal, period), ("dataset", dataset, period))
        with self._lock:
            state = _decide((self._spent.get(keys[0], 0), self._spent.get(keys[1], 0)),
                            epsilon_micro, settings, period)
            self._spent[keys[0]] = state.principal_spent
            self._spent[keys[1]] = state.dataset_spent
        return state

    def close(self) -> None:
        pass


_TABLE = """CREATE TABLE IF NOT EXISTS privacy_budget (
    scope TEXT NOT NULL, name TEXT NOT NULL, period BIGINT NOT NULL,
    spent BIGINT NOT NULL, PRIMARY KEY (scope, name, period))"""
_SELECT = "SELECT spent FROM privacy_budget WHERE scope = {0} AND name = {0} AND period = {0}"
_UPSERT = ("INSERT INTO privacy_budget VALUES ({0}, {0}, {0}, {0}) "
           "ON CONFLICT (scope, name, period) DO UPDATE SET spent = excluded.spent")


class SqliteBudgetStore:
    """Budgets in a table of the jurisdiction's SQLite file (``BEGIN IMMEDIATE``)."""

    def __init__(self, path: str | Path) -> None:
        """Open the table (created if missing).

        Raises:
            Unavailable: ``store_unavailable``.
        """
        self._conns = ThreadConnections(path, what="privacy budget store", timeout_s=10.0)
        self._conns.run(lambda conn: conn.execute(_TABLE).close())

    def spend(self, principal: str, dataset: str, now: float, epsilon_micro: int,
              settings: PrivacySettings) -> BudgetState:
        period = period_start(now, settings.period_s)
        keys = (("principal", principal, period), ("dataset", dataset, period))

        def transaction(conn: sqlite3.Connection) -> BudgetState:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: no other worker between
            try:
                spent = [conn.execute(_SELECT.format("?"), key).fetchone() for key in keys]
                state = _decide((spent[0][0] if spent[0] else 0, spent[1][0] if spent[1] else 0),
                                epsilon_micro, settings, period)
                conn.execute(_UPSERT.format("?"), (*keys[0], state.principal_spent))
                conn.execute(_UPSERT.format("?"), (*keys[1], state.dataset_spent))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return state

        return self._conns.run(transaction)

    def close(self) -> None:
        self._conns.close()


class PostgresBudgetStore:
    """Budgets in a table of the jurisdiction's PostgreSQL database (row locks)."""

    def __init__(self, url: str) -> None:
        """Connect and create the table if missing.

        Raises:
            Unavailable: ``store_unavailable``.
        """
        self._db = SharedConnection(url, ddl=[_TABLE], what="privacy budget store")

    def spend(self, principal: str, dataset: str, now: float, epsilon_micro: int,
              settings: PrivacySettings) -> BudgetState:
        period = period_start(now, settings.period_s)
        keys = (("dataset", dataset, period), ("principal", principal, period))  # lock order
        with self._db.using(transaction=True) as conn:
            spent = []
            for key in keys:
                conn.execute("INSERT INTO privacy_budget VALUES (%s, %s, %s, 0) "
                             "ON CONFLICT DO NOTHING", key)
                row = conn.execute(_SELECT.format("%s") + " FOR UPDATE", key).fetchone()
                spent.append(int(row[0]) if row else 0)
            state = _decide((spent[1], spent[0]), epsilon_micro, settings, period)
            conn.execute(_UPSERT.format("%s"), (*keys[0], state.dataset_spent))
            conn.execute(_UPSERT.format("%s"), (*keys[1], state.principal_spent))
        return state

    def close(self) -> None:
        self._db.close()


def open_budget_store(store_url: str) -> BudgetStore:
    """The budget table beside the records (and approvals) a store URL names.

    Raises:
        ConfigError: ``store_url`` for an unknown scheme.
        Unavailable: ``store_unavailable``.
    """
    location = parse_store_location(store_url)
    if location.kind == "postgresql":
        return PostgresBudgetStore(location.target)
    if location.kind == "memory":
        return MemoryBudgetStore()
    return SqliteBudgetStore(location.target)
