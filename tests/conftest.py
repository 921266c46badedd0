"""Fixtures shared by the whole suite: the real PostgreSQL server, vector paths."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bordergate.tlog.storage import LogStorage
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tlog.storage.memory import MemoryStorage
from bordergate.tlog.storage.postgres import PostgresStorage
from tests.postgres_server import PostgresServer

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on loopback, started once for the session."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.database()


@pytest.fixture(params=["memory", "fs", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_factory(request: pytest.FixtureRequest, tmp_path: Path
                    ) -> Iterator[Callable[[], LogStorage]]:
    """Opens new handles on one shared log location, for each LogStorage backend."""
    opened: list[LogStorage] = []
    if request.param == "memory":
        shared = MemoryStorage()

        def factory() -> LogStorage:
            return shared
    elif request.param == "fs":
        def factory() -> LogStorage:
            s = FileStorage(tmp_path / "log")
            opened.append(s)
            return s
    else:
        url = request.getfixturevalue("postgres_url")

        def factory() -> LogStorage:
            s = PostgresStorage(url, log="testlog")
            opened.append(s)
            return s
    yield factory
    for s in opened:
        s.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Behaviour of the suite itself: files holding a ``slow`` test run first.

    ``make test`` runs the files on several pytest-xdist workers in collection
    order; a minute-long test collected last would leave one worker running it
    alone at the end.  The order of the tests within a file is kept (a stable sort).
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
