"""Issue 11 item 3: privacy budgets, spent atomically across workers (bordergate.privacy.budget)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bordergate.errors import PolicyDenied
from bordergate.privacy.budget import (
    BudgetStore,
    MemoryBudgetStore,
    PrivacySettings,
    SqliteBudgetStore,
    open_budget_store,
    period_start,
)
from tests.postgres_server import PostgresServer

SETTINGS = PrivacySettings(epsilon_micro=1_000_000, delta_exponent=9,
                           principal_budget_micro=5_000_000, dataset_budget_micro=8_000_000,
                           period_s=3600)
NOW = 1_800_000_000.0


def _race(stores: list[BudgetStore], principals: list[str]) -> tuple[list[int], int]:
    """Spend once per principal, at once, through the stores in turn; (spent, refused)."""
    def one(i: int) -> int | None:
        try:
            state = stores[i % len(stores)].spend(principals[i], "profiles", NOW, 1_000_000,
                                                  SETTINGS)
        except PolicyDenied as exc:
            assert exc.code == "privacy_budget_exhausted"
            return None
        return state.dataset_spent

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(len(principals))))
    return sorted(r for r in results if r is not None), results.count(None)


def _check_store(make: Callable[[], BudgetStore]) -> None:
    stores = [make(), make()]  # two connections: two workers
    try:
        spent, refused = _race(stores, ["alice"] * 12)
        assert (spent, refused) == ([n * 1_000_000 for n in range(1, 6)], 7)
        spent, refused = _race(stores, [f"p{i}" for i in range(6)])  # the dataset's 3 left
        assert (spent, refused) == ([6_000_000, 7_000_000, 8_000_000], 3)
        later = stores[0].spend("alice", "profiles", NOW + 3600, 1_000_000, SETTINGS)
        assert (later.principal_spent, later.dataset_spent) == (1_000_000, 1_000_000)
    finally:
        for store in stores:
            store.close()


def test_memory_store_spends_exactly() -> None:
    """The in-memory twin: five of twelve exports fit a budget of five, then the dataset's."""
    store = MemoryBudgetStore()
    _check_store(lambda: store)


def test_sqlite_store_is_atomic_across_connections(tmp_path: Path) -> None:
    """Two connections racing on one SQLite file (two workers) never overspend: exactly
    the budget is spent, the rest refused with privacy_budget_exhausted, and a refused
    export spends nothing (the dataset budget fills to exactly its limit)."""
    _check_store(lambda: SqliteBudgetStore(tmp_path / "records.db"))


@pytest.mark.postgres
def test_postgres_store_is_atomic_across_connections(postgres_server: PostgresServer) -> None:
    """As on SQLite, with two PostgreSQL connections (row locks)."""
    url = postgres_server.database(prefix="budget")
    _check_store(lambda: open_budget_store(url))


def test_periods_start_at_multiples_of_their_length() -> None:
    """A period is [n * period_s, (n + 1) * period_s): the auditor recomputes it alike."""
    assert period_start(7199.9, 3600) == 3600 and period_start(7200, 3600) == 7200
