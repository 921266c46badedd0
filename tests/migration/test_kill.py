"""Issue 15: `migrate run` killed with SIGKILL at 20 random points and run again each time
ends exactly where an uninterrupted run ends.

The kill loop uses a smaller legacy database (300 users, 3,000 records, in
batches of 5 subjects: 61 batches) so that 20 kills and re-runs of a real
`bordergate migrate run` process take about two minutes on a loaded machine;
the 100,000-record migration is its own test (test_migration.py).  Each kill
lands a random 0-1 s after the run's first step is durable in the source's
journal (so that slow start-ups on a loaded machine do not make every kill
land before the work), anywhere in batches, deletion, logging or compaction.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bordergate.migration.legacy import MARKER, generate_legacy
from bordergate.migration.source import open_source
from bordergate.migration.verify import log_entries
from tests.migration.conftest import (
    HOMES,
    home_contents,
    make_deployment,
    migrate,
    store_and_log_files,
)
from tests.migration.test_migration import _source_legacy_ids, _verify

USERS, SEED, BATCH = 300, 21, 5
KILLS = 20


def _run_command(directory: Path) -> list[str]:
    return [sys.executable, "-m", "bordergate", "migrate", "run",
            "--source", f"sqlite:{directory / 'legacy.db'}",
            "--config", str(directory / "deploy" / "bordergate.toml"),
            "--batch-subjects", str(BATCH), "--no-progress"]


def _journal_now(directory: Path) -> list[tuple[int, str, int]]:
    """The journal's (batch, state, attempts), read-only ([] before it exists)."""
    path = directory / "legacy.db"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT batch, state, attempts FROM bordergate_migration "
                          "ORDER BY batch, home").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


#: A part's journal states in the order a run moves it through them.
_STEPS = {"planned": 0, "started": 1, "stored": 2, "deleted": 3, "logged": 4, "done": 5}


def _progress(journal: list[tuple[int, str, int]]) -> int:
    """How far the parts have got: the sum of their steps (:data:`_STEPS`)."""
    return sum(_STEPS[state] for _, state, _ in journal)


def _kill_inside(process: subprocess.Popen[bytes], directory: Path, rng: random.Random,
                 kills_left: int) -> None:
    """SIGKILL ``process`` at a random point of what it has left to do: once its parts
    have taken a random number of the journal steps left before they are all
    ``logged``, at most the share of them of one of the ``kills_left`` kills (so that
    the kills spread over the whole migration; none left: somewhere in the run's last
    phase), after a random pause of up to 50 ms.  A point chosen by the run's
    progress, not by the clock, lands inside the run however fast the host runs it (a
    pause of up to a second after the journal's first change once outlasted a whole
    run, and no kill tested anything)."""
    before = _journal_now(directory)
    deadline = time.monotonic() + 120
    while (process.poll() is None and _journal_now(directory) == before
           and time.monotonic() < deadline):
        time.sleep(0.005)
    journal = _journal_now(directory)
    start = _progress(journal)
    left = max(0, _STEPS["logged"] * len(journal) - start)
    target = start + rng.randrange(left // max(1, kills_left) + 1)
    while (process.poll() is None and _progress(_journal_now(directory)) < target
           and time.monotonic() < deadline):
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.05))
    process.send_signal(signal.SIGKILL)


def _states(directory: Path) -> Counter[str]:
    source = open_source(f"sqlite:{directory / 'legacy.db'}")
    try:
        return Counter(row.state for row in source.journal().values())
    finally:
        source.close()


@pytest.mark.slow
def test_sigkill_at_twenty_random_points_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """Promises 1 and 3, issue 15: after 20 SIGKILLs at random points, each followed by a
    new run, nothing is duplicated, lost or deleted before it is durable and logged: each
    home holds exactly what an uninterrupted run gives (by legacy id and values), retried
    batches are marked as retries in the log, the source holds none of the migrated rows
    (raw scan) and `migrate verify` passes."""
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for directory in (killed, clean):
        directory.mkdir()
        make_deployment(directory / "deploy")
        source = open_source(f"sqlite:{directory / 'legacy.db'}")
        generate_legacy(source, users=USERS, seed=SEED)
        source.close()
    source = open_source(f"sqlite:{clean / 'legacy.db'}")
    clean_deployment = make_deployment(clean / "deploy")
    migrate(source, clean_deployment, batch_subjects=BATCH)
    source.close()

    rng = random.Random(15)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    interrupted = 0
    for kill in range(KILLS):
        process = subprocess.Popen(_run_command(killed), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        _kill_inside(process, killed, rng, KILLS - kill)
        _, err = process.communicate(timeout=60)
        assert process.returncode in (0, -signal.SIGKILL), err.decode()
        states = _states(killed) if (killed / "legacy.db").exists() else Counter()
        if process.returncode == -signal.SIGKILL and set(states) - {"done"}:
            interrupted += 1
    finished = subprocess.run(_run_command(killed), env=env, capture_output=True, timeout=600,
                              check=False)
    assert finished.returncode == 0, finished.stderr.decode()
    print(f"{interrupted} of {KILLS} kills interrupted a run with batches left")
    assert interrupted >= KILLS // 2, "most kills landed after a run had finished"

    killed_deployment = make_deployment(killed / "deploy")
    for code in HOMES:
        assert home_contents(killed_deployment, code) == home_contents(clean_deployment, code)
    source = open_source(f"sqlite:{killed / 'legacy.db'}")
    journal = source.journal()
    source.close()
    for code in HOMES:
        attempts: dict[tuple[int, str], list[int]] = {}
        for _, entry in log_entries(killed_deployment, code):
            if entry.type == "migration":
                assert entry["retry"] is (entry["attempt"] > 1)
                attempts.setdefault((entry["batch"], entry["table"]), []).append(
                    entry["attempt"])
        for (batch, _), seen in attempts.items():
            assert seen == sorted(set(seen))  # each attempt logged once, in order
            assert seen[-1] <= journal[(batch, code)].attempts
    for path in store_and_log_files(killed_deployment):
        assert MARKER not in path.read_bytes(), f"a legacy value in clear in {path}"
    assert _source_legacy_ids(killed / "legacy.db") == set(range(USERS + 1, USERS + 5))
    result = _verify(f"sqlite:{killed / 'legacy.db'}", killed_deployment)
    assert result["ok"], result["failures"]
    shutil.rmtree(tmp_path, ignore_errors=True)
