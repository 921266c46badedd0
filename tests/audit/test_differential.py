"""The accelerated inspector finds exactly what the reference inspector finds (issue 10, item 1).

1,000 generated logs (tests/audit/loggen.py: every finding kind, every entry type,
malformed entries, bursts of decision entries that differ only in pseudonyms and
time) go through both inspectors; findings, tally, approvals and the rest of the
saved state must be identical.  The accelerated path is fed in the ways
``audit run`` feeds it: all at once, in batches, and with a later part parsed
ahead by a second inspector (``parse_ahead``/``feed_parsed``, through pickle as
across the helper's pipe).  A second test runs the generator through the
accelerated path under coverage and fails if a line of ``audit/_accelerated.py``
that reports a finding never ran.

A later issue that adds a rule or an entry type extends the generator
(:class:`tests.audit.loggen.LogGenerator`) with a move that breaks it; these tests
then check that the new kind appears and that both paths agree on it.
"""

from __future__ import annotations

import json
import pickle
import random
import re
from pathlib import Path
from typing import Any

import coverage
import pytest

from bordergate.audit import _accelerated
from bordergate.audit._accelerated import AcceleratedInspector
from bordergate.audit.findings import FINDING_KINDS
from bordergate.audit.inspection import ReferenceInspector, open_inspector
from bordergate.audit.rules import keyaccess
from bordergate.entries import ENTRY_TYPES
from tests.approvers import keys_for
from tests.audit.loggen import APPENDERS, BULK, ORIGIN, REVIEWERS, LogGenerator
from tests.releases.keys import review_policy

LOGS = 1000
# reported by the log-level check (audit/logcheck.py), not by an inspector
NOT_INSPECTION_KINDS = {"log_verification_failed", "checkpoint_unwitnessed", "checkpoint_stale"}


@pytest.fixture(scope="module")
def generator() -> LogGenerator:
    return LogGenerator()


@pytest.fixture(scope="module")
def logs(generator: LogGenerator) -> list[list[bytes]]:
    return [generator.log(seed) for seed in range(LOGS)]


def inspector(generator: LogGenerator, *, reference: bool) -> ReferenceInspector:
    return open_inspector(reference=reference, jurisdiction="us", origin=ORIGIN,
                          bundles=generator.lookup, reviewers=review_policy(REVIEWERS, 2),
                          approver_keys=keys_for(["carol", "dave"]), tolerance=5.0,
                          rosters=generator.roster_lookup, appenders=APPENDERS, bulk=BULK)


def reference_run(generator: LogGenerator, entries: list[bytes]) -> ReferenceInspector:
    ref = inspector(generator, reference=True)
    for index, data in enumerate(entries):
        ref.feed(index, data)
    ref.finish()
    keyaccess.settle_key_claims(ref, entries.__getitem__)
    return ref


def accelerated_run(generator: LogGenerator, entries: list[bytes], how: int
                    ) -> AcceleratedInspector:
    """Feed the accelerated inspector all at once (0), in batches (1), or with a later
    part parsed ahead by another inspector (2)."""
    fast = inspector(generator, reference=False)
    assert isinstance(fast, AcceleratedInspector)
    rng = random.Random(len(entries) * 7 + how)
    if how == 0:
        fast.feed_all(0, entries)
    elif how == 1:
        index = 0
        while index < len(entries):
            n = rng.randint(1, 7)
            fast.feed_all(index, entries[index:index + n])
            index += n
    else:
        mid = rng.randrange(len(entries) + 1)
        fast.feed_all(0, entries[:mid])
        helper = inspector(generator, reference=False)
        assert isinstance(helper, AcceleratedInspector)
        batches = [entries[i:i + 5] for i in range(mid, len(entries), 5)]
        for part in helper.parse_ahead(mid, batches):
            fast.feed_parsed(pickle.loads(pickle.dumps(part)))
    fast.finish()
    keyaccess.settle_key_claims(fast, entries.__getitem__)
    return fast


def outcome(inspected: ReferenceInspector) -> dict[str, Any]:
    """Everything an inspection leaves: its saved state (findings, tally, approvals,
    release entries, repeat counts) and the release ledger, as JSON."""
    ledger = {rid: [r.index, r.state, sorted(r.approvals), sorted(r.rejections)]
              for rid, r in inspected.ledger.releases.items()}
    return json.loads(json.dumps({"state": inspected.state.to_json(), "ledger": ledger,
                                  "starts": [repr(s) for s in inspected.ledger.starts]}))


@pytest.mark.slow
def test_both_inspectors_find_the_same_on_generated_logs(generator: LogGenerator,
                                                          logs: list[list[bytes]]) -> None:
    """Issue 10 item 1: on 1,000 generated logs, the accelerated inspector (fed whole, in
    batches, or with a part parsed ahead) gives the reference inspector's findings,
    tally and state; together the logs hold every entry type and finding kind."""
    kinds: set[str] = set()
    types: set[str] = set()
    for seed, entries in enumerate(logs):
        ref = reference_run(generator, entries)
        fast = accelerated_run(generator, entries, seed % 3)
        assert outcome(fast) == outcome(ref), f"log {seed} differs"
        kinds.update(f.kind for f in ref.findings)
        types.update(t for t, n in ref.tally.entries.items() if n)
    assert set(FINDING_KINDS) - NOT_INSPECTION_KINDS - kinds == set()
    assert set(ENTRY_TYPES) | {"malformed"} == types


def _reporting_lines() -> dict[int, str]:
    """The lines of audit/_accelerated.py that report a finding (call a rule or flag)."""
    call = re.compile(r"\b(self\.flag|self\.check|wellformed\.\w+|decisions\.decision_\w+|"
                      r"decisions\.decided_\w+|releases\.decision_\w+|approvals\.approval_use|"
                      r"bulk\.count_access)\(")
    source = Path(_accelerated.__file__).read_text(encoding="utf-8").splitlines()
    return {n: line.strip() for n, line in enumerate(source, 1)
            if call.search(line) and not line.lstrip().startswith(("#", "def "))}


def test_generated_logs_run_every_reporting_line_of_the_fast_path(
        generator: LogGenerator, logs: list[list[bytes]]) -> None:
    """Issue 10 item 1: the differential test exercises every line of the accelerated
    inspector that reports a finding (measured with coverage)."""
    lines = _reporting_lines()
    assert len(lines) >= 8
    path = str(Path(_accelerated.__file__).resolve())
    cov = coverage.Coverage(data_file=None, config_file=False, include=[path])
    cov.start()
    try:
        for seed, entries in enumerate(logs):
            accelerated_run(generator, entries, seed % 3)
    finally:
        cov.stop()
    _, statements, _, missing, _ = cov.analysis2(path)
    unmeasured = {n: text for n, text in lines.items() if n not in statements}
    assert unmeasured == {}, "reporting lines that are not statements"
    assert {n: lines[n] for n in lines if n in missing} == {}
