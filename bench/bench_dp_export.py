"""Benchmark: a differentially private export over 100,000 subjects vs the same export exact.

Issue 11 item 3 (acceptance).  One SQLite store holds 100,000 profiles; an export
groups them by a public field, once with few groups (20 languages) and once with
many (2,000 cities).  The baseline is the export's aggregate alone (what the
gateway released before: exact counts); the measured path adds what a noised
export adds: the OpenDP plan (cached after the first export of a setting) and the
release (discrete Laplace on every count, the noisy threshold on the groups).
Both run in the same process, interleaved, best of 5 rounds; the ratio is
noised time / exact time.

Run: .venv/bin/python bench/bench_dp_export.py   (bounded: about a minute)
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bordergate.keys.backends.memory import MemoryKeyBackend
from bordergate.keys.keyring import KeyRing
from bordergate.privacy.mechanism import OpenDPMechanism, TrueGroup
from bordergate.residency.schema import parse_schema
from bordergate.residency.stores.sqlite import SqliteRecordStore, pack_fields
from bordergate.residency.vault import Vault
from bordergate.subjects import SubjectId

SUBJECTS = 100_000
ROUNDS = 5
SCHEMA = """[collections.profiles.fields.language]
class = "public"
type = "string"
[collections.profiles.fields.city]
class = "public"
type = "string"
"""


def build(root: Path) -> Vault:
    store = SqliteRecordStore(root / "records.db", jurisdiction="us")
    ring = KeyRing(MemoryKeyBackend("us", seed=b"bench-only"), store)
    ring.init()
    records = []
    for i in range(SUBJECTS):
        sid = str(SubjectId.mint("us"))
        records.append(("profiles", sid, sid, pack_fields(
            {"language": f"lang-{i % 20}".encode(), "city": f"city-{i % 2000}".encode()})))
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", records)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return Vault(parse_schema(SCHEMA), store, ring)


def best(fn: Callable[[], object]) -> float:
    return min(_timed(fn) for _ in range(ROUNDS))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    mechanism = OpenDPMechanism()
    with tempfile.TemporaryDirectory(prefix="bench-dp-export-") as tmp:
        vault = build(Path(tmp))
        for group_by in ("language", "city"):
            def exact(g: str = group_by) -> object:
                return vault.aggregate("profiles", g)

            def noised(g: str = group_by) -> object:
                plan = mechanism.plan(1_000_000, 9, 25)
                groups = vault.aggregate("profiles", g).groups
                return mechanism.release(plan, [TrueGroup(x.value, x.records, x.subjects)
                                                for x in groups])

            noised()  # warm: OpenDP's plan for this setting is computed once per process
            exact_s, noised_s = best(exact), best(noised)
            print(f"export of {SUBJECTS:,} subjects by {group_by} "
                  f"({len(vault.aggregate('profiles', group_by).groups)} groups): "
                  f"exact {exact_s * 1000:.1f} ms, differentially private "
                  f"{noised_s * 1000:.1f} ms, ratio {noised_s / exact_s:.3f}")


if __name__ == "__main__":
    main()
