"""Fixtures shared by the whole suite: the real PostgreSQL server, vector paths, and
the Hypothesis profile every property test runs under."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from bordergate.tlog.storage import LogStorage
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tlog.storage.memory import MemoryStorage
from bordergate.tlog.storage.postgres import PostgresStorage
from tests.chromium import launched
from tests.postgres_server import PostgresServer

VECTORS = Path(__file__).parent / "vectors"

# ``make test`` must give the same verdict on the same code, and a failure it reports
# must replay: every property test draws its examples from a seed fixed by the test
# itself (``derandomize``), with no example database carried from run to run.
# ``BORDERGATE_FUZZ_SEED=random`` (``make fuzz``) draws fresh examples instead, as
# it does for the schemathesis runs (tests/gateway/conftest.py: FUZZ_SEED), and keeps
# the failing ones in ``.hypothesis/`` to replay.
settings.register_profile("suite", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", print_blob=True)
settings.load_profile("fuzz" if os.environ.get("BORDERGATE_FUZZ_SEED") == "random"
                      else "suite")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, once per module of browser tests (tests/chromium.py)."""
    yield from launched()


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
