"""Workers starting together on a fresh PostgreSQL database (docs/scale-out.md): the
tables beside a jurisdiction's records (approvals, approval subjects, privacy budgets,
bulk counters) and the log's tables are created once, whoever comes first; a worker
never fails its start with ``store_unavailable`` because another was creating the same
table (found by tests/gateway/test_scale_out_postgres.py: a worker served 503
"approval subject ledger unreachable: UniqueViolation" for good)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from bordergate.gateway.approval_scope import PostgresSubjectLedger
from bordergate.gateway.approvals import PostgresApprovalStore
from bordergate.gateway.bulk_counters import PostgresBulkLedger
from bordergate.privacy.budget import PostgresBudgetStore
from bordergate.tlog.storage.postgres import PostgresStorage
from tests.postgres_server import PostgresServer


def _log_read_once(url: str) -> PostgresStorage:
    """A log storage that has opened its tables (its first read creates them)."""
    storage = PostgresStorage(url)
    storage.read("checkpoint")
    return storage


_OPENERS: dict[str, Callable[[str], Any]] = {
    "approvals": PostgresApprovalStore,
    "approval subjects": PostgresSubjectLedger,
    "privacy budget": PostgresBudgetStore,
    "bulk counters": PostgresBulkLedger,
    "log": _log_read_once,
}



def _open_together(opener: Callable[[str], Any], url: str, count: int
                   ) -> tuple[list[Any], list[BaseException]]:
    """``count`` threads call ``opener(url)`` at the same moment (a barrier)."""
    barrier = threading.Barrier(count)
    opened: list[Any] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(opener(url))
        except BaseException as exc:  # collected: the assertion names it
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return opened, errors


@pytest.mark.postgres
@pytest.mark.parametrize("name", list(_OPENERS))
def test_eight_workers_opening_a_fresh_database_at_once_all_start(
        postgres_server: PostgresServer, name: str) -> None:
    """Eight connections create the same tables at the same moment (a barrier), five
    rounds on fresh databases: every one opens, none gets an error."""
    for _ in range(5):
        opened, errors = _open_together(_OPENERS[name],
                                        postgres_server.database(prefix="race"), 8)
        assert errors == [], [f"{type(e).__name__}: {e}" for e in errors]
        assert len(opened) == 8
        for item in opened:
            item.close()
