"""Versioned entries (issue 12 item 7): the auditor applies each check by the entry's
format version, logs written by earlier releases (v1) still audit with their limits
stated in the report, and a version that goes back is a finding.  Every inspector test
runs on both paths (the reference and the accelerated inspector)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.inspection import ReferenceInspector, open_inspector
from bordergate.audit.report import build_report, write_report
from bordergate.audit.rules import versions
from bordergate.audit.rules.context import RuleContext
from bordergate.audit.run import run_audit
from bordergate.entries import ENTRY_VERSION, Entry
from bordergate.releases.review import ReviewPolicy
from tests.audit.loggen import LogGenerator
from tests.audit.rebuilt_log import rebuild_log
from tests.audit.scenario import LOCAL, PARENT, T0, EntryFactory, GatewayScenario

older = LogGenerator.older


@pytest.fixture(params=[False, True], ids=["accelerated", "reference"])
def reference(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def inspect(entries: list[bytes], *, reference: bool) -> ReferenceInspector:
    f = EntryFactory()
    inspector = open_inspector(reference=reference, jurisdiction="us", origin="us.test/log",
                               bundles=f.lookup, reviewers=ReviewPolicy((), 1), tolerance=5)
    inspector.feed_all(0, entries)
    inspector.finish()
    return inspector


def burst(n: int, t: float = T0, *, version: int = ENTRY_VERSION) -> list[bytes]:
    """``n`` reads alike but for their time (one shape for the accelerated path)."""
    f = EntryFactory()
    out = [f.access(LOCAL, ["handle"], t=t + i * 0.001) for i in range(n)]
    return out if version == ENTRY_VERSION else [older(e) for e in out]


def test_v1_entries_audit_and_count_what_they_miss(reference: bool) -> None:
    """Item 7: a log of v1 entries (an earlier release) is audited like any other, and
    each entry is counted against every check it could not get (by version and check)."""
    f = EntryFactory()
    log = [*burst(4, version=1),
           older(f.approval_change("approval-grant", "apr-" + "a" * 26, LOCAL, t=T0 + 1))]
    inspector = inspect(log, reference=reference)
    kinds = {x.kind for x in inspector.findings}
    assert "entry_malformed" not in kinds and "entry_version_downgrade" not in kinds
    assert inspector.tally.versions == {"1": 5}
    # the roster check applies to decisions and approval entries alike
    assert inspector.tally.unchecked["1>roster"] == 5
    assert inspector.tally.unchecked["1>approver signatures"] == 1
    assert inspector.tally.unchecked["1>appender"] == 5
    assert inspector.tally.replay["decisions"] == 4


def test_v1_entry_after_a_v2_entry_is_a_downgrade(reference: bool) -> None:
    """Item 7: a v1 entry after a v2 entry in the same log (a writer that dropped what v2
    attests, or a rewrite to escape a check) is ``entry_version_downgrade``, one per
    entry, and is checked as v2 (it is not counted as missing v2's checks)."""
    log = [*burst(2, version=1), *burst(2, T0 + 1), *burst(3, T0 + 2, version=1)]
    inspector = inspect(log, reference=reference)
    found = [(x.kind, x.index) for x in inspector.findings if x.kind == "entry_version_downgrade"]
    assert found == [("entry_version_downgrade", i) for i in (4, 5, 6)]
    assert inspector.tally.unchecked["1>roster"] == 2


def test_a_versioned_check_runs_on_the_versions_it_applies_to(
        reference: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 7: a row of the version table with its rule plugged in (as the integrator
    wires the roster check) runs for v2 decision entries only, on both paths (shaped
    entries included); v1 entries are counted as not getting it."""
    seen: list[int] = []

    def hook(ctx: RuleContext, index: int, t: float, entry: Entry) -> None:
        seen.append(index)
        ctx.flag("decision_input_inconsistent", index, t, f"hooked {index} at {t}")

    row = versions.VersionedCheck("roster", 2, frozenset({"access"}), "no roster check", hook)
    monkeypatch.setattr(versions, "VERSIONED_CHECKS", (row,))
    caches = (versions.checks_for, versions.missing_for, versions.unchecked_keys)
    for cached in caches:
        cached.cache_clear()
    try:
        inspector = inspect([*burst(3, version=1), *burst(5, T0 + 1)], reference=reference)
    finally:
        for cached in caches:
            cached.cache_clear()
    assert seen == [3, 4, 5, 6, 7]
    hooked = [(x.index, x.time) for x in inspector.findings if x.explanation.startswith("hooked")]
    assert hooked == [(i, T0 + 1 + (i - 3) * 0.001) for i in range(3, 8)]
    assert inspector.tally.unchecked == {"1>roster": 3}


def test_report_states_what_v1_entries_could_not_get(tmp_path: Path) -> None:
    """Item 7: a log written by an earlier release (every entry v1, signed by its log key)
    still audits, and report.json and report.html say how many v1 entries could not get
    which check ("N v1 entries: no roster check, grants unsigned, ...")."""
    sc = GatewayScenario(tmp_path / "v1")
    sc.start()
    asyncio.run(sc.clean_traffic())
    asyncio.run(sc.covered_person_attempt())
    sc.stop()
    rebuilt = rebuild_log(sc.log_dir, sc.signer, lambda es: [older(e) for e in es])
    config = load_auditor_config(sc.auditor_config(tmp_path / "auditor.toml"))
    report = build_report(run_audit(config, tmp_path / "state"))
    # the rebuilt log is re-signed without its witnesses (issue 12.1 reports that)
    assert set(report["summary"]["by_kind"]) == {"covered_person_denied",
                                                 "checkpoint_unwitnessed"}
    versions_doc = report["entry_versions"]
    assert versions_doc["entries"] == {"1": len(rebuilt)}
    statement, *idle = versions_doc["statements"]
    # checks whose rule is not plugged in yet are named as run on no entry at all
    not_run = [c.name for c in versions.VERSIONED_CHECKS if c.hook is None and not c.inline]
    assert idle == ([f"not run by this auditor on any entry (no rule plugged in): "
                     f"{', '.join(not_run)}"] if not_run else [])
    assert statement.startswith(f"{len(rebuilt)} v1 entries: no roster check, grants unsigned")
    by_check = {r["check"]: r["entries"] for r in versions_doc["not_checked"]}
    assert by_check["appender"] == len(rebuilt)
    assert by_check["approver signatures"] == 2  # the two grants of clean traffic
    _, html = write_report(report, tmp_path / "out")
    assert statement in html.read_text()


def test_parent_reads_stay_judged_in_v1_logs(reference: bool) -> None:
    """Promise 1: the data-flow rules are not versioned: a v1 read of restricted data by
    the parent abroad is found as in v2."""
    f = EntryFactory()
    log = [older(f.access(PARENT, ["government_id"], forged=[True]))]
    kinds = [x.kind for x in inspect(log, reference=reference).findings]
    assert "restricted_released_abroad" in kinds


def _pre_exports_bundle() -> list[tuple[str, bytes]]:
    """The shipped bundle as released before issue 11: no exports.toml (k_min was the
    deployment's)."""
    from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH, EXPORTS_FILE
    from bordergate.tree_digest import read_tree

    return [(p, b) for p, b in read_tree(DEFAULT_BUNDLE_PATH) if p != EXPORTS_FILE]


def test_bundle_released_before_exports_toml_replays_v1_entries(reference: bool) -> None:
    """Item 7 (the known gap of issue 11): a published bundle without exports.toml loads
    again for version 1 entries, with k_min the deployment's as it was (the auditor's
    ``v1_k_min``): its v1 exports replay, one below that k_min is found; a version 2
    entry naming it is reported (a v2 gateway cannot load it)."""
    from bordergate.audit.bundlestore import BundleStore
    from bordergate.policy.bundle import PolicyBundle, archive_files
    from bordergate.releases.publication import bundle_path
    from tests.audit.test_audit_run import DictSource

    files = _pre_exports_bundle()
    old = PolicyBundle(files, legacy_k_min=50)
    store = BundleStore(DictSource({bundle_path(old.digest): archive_files(files)}),
                        use_shipped=False, v1_k_min=50)
    found = store.lookup(old.digest)
    assert found.engine is not None and found.legacy and found.engine.bundle.k_min == 50
    f = EntryFactory(old)
    log = [older(f.export(LOCAL, "country", 60, t=T0)),
           older(f.export(LOCAL, "country", 30, t=T0 + 1)),
           f.export(LOCAL, "country", 60, t=T0 + 2)]
    inspector = open_inspector(reference=reference, jurisdiction="us", origin="us.test/log",
                               bundles=store.lookup, reviewers=ReviewPolicy((), 1),
                               tolerance=5)
    inspector.feed_all(0, log)
    inspector.finish()
    found_kinds = [(x.kind, x.index, x.detail.get("code")) for x in inspector.findings
                   if x.kind != "decision_without_start"]
    assert found_kinds == [("export_below_k", 1, None),
                           ("decision_unreplayable", 2, "bundle_needs_v1_rules")]
    assert inspector.tally.replay["decisions"] == 3 and not inspector.tally.replay["unreplayed"]
