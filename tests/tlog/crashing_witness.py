"""TEST-ONLY launcher: `bordergate witness serve` whose state store crashes the process.

Usage: python -m tests.tlog.crashing_witness STAGE [witness serve options...]

STAGE is ``before_store`` (the process ends with ``os._exit(137)`` when the
witness first tries to write its state, before anything is written) or
``after_store`` (it ends right after the first state write is durable, before
answering).  The real command runs unchanged: only its SQLite state store is
wrapped from the outside, so nothing of this fault lives in ``src/``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import bordergate.tlog.witness_sqlite as witness_sqlite
from bordergate.cli import app
from bordergate.tlog.witness import StateChange

STAGES = ("before_store", "after_store")
CRASH_STATUS = 137  # what a SIGKILLed process reports


def crashing_state(stage: str) -> type[witness_sqlite.SqliteWitnessState]:
    """A :class:`SqliteWitnessState` that ends the process at ``stage`` of its first write."""

    class CrashingWitnessState(witness_sqlite.SqliteWitnessState):
        def compare_and_set(self, changes: Sequence[StateChange]) -> bool:
            if stage == "before_store":
                os._exit(CRASH_STATUS)
            written = super().compare_and_set(changes)
            if written and stage == "after_store":
                os._exit(CRASH_STATUS)
            return written

    return CrashingWitnessState


def main() -> None:
    stage, options = sys.argv[1], sys.argv[2:]
    if stage not in STAGES:
        raise SystemExit(f"STAGE must be one of {STAGES}")
    witness_sqlite.SqliteWitnessState = crashing_state(stage)  # type: ignore[misc]
    app(["witness", "serve", *options])


if __name__ == "__main__":
    main()
