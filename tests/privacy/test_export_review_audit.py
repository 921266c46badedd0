"""Review of exports (auditor side): a gateway that under-reports its privacy budget.

The promise (docs/exports.md, "What the auditor checks"; threat model G8): the
auditor adds every allowed export's epsilon per principal, collection and period
from the entries alone, so a gateway that spends more than a budget is found
whatever its entries say they spent.

The attack: a lying gateway records honest epsilon, honest limits and honest
``spent`` numbers for each export, but charges each export to a budget period of
its own, either another period length (``period_s`` 86,400, 86,401, ...) or a
period that starts at the export's own time.  The auditor summed per
(period, period length), so the sums never passed a limit.  It also trusted each
entry's own limit and period length, so one raised per entry, or a period of a
minute where the release was reviewed with a day, passed too.  Each test runs
with both inspectors (the reference and the accelerated one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bordergate.audit.inspection import ReferenceInspector, open_inspector
from bordergate.entries import encode_entry, parse_entry
from bordergate.releases.deployment_slice import DeploymentSlice
from bordergate.releases.manifest import Manifest, build_manifest
from bordergate.releases.review import ReviewPolicy
from tests.audit.scenario import LOCAL, T0, EntryFactory

LIMITS = (2_000_000, 50_000_000)  # two exports of epsilon 1 per principal and day
DAY = 86_400
PRIVACY = {"epsilon_micro": 1_000_000, "delta_exponent": 9, "principal_budget_micro": LIMITS[0],
           "dataset_budget_micro": LIMITS[1], "period_s": DAY}


@pytest.fixture(params=[False, True], ids=["accelerated", "reference"])
def reference(request: pytest.FixtureRequest) -> Iterator[bool]:
    yield bool(request.param)


def _inspect(entries: list[bytes], f: EntryFactory, reference: bool) -> list[tuple[str, int]]:
    inspector: ReferenceInspector = open_inspector(
        reference=reference, jurisdiction="us", origin="us.test/log", bundles=f.lookup,
        reviewers=ReviewPolicy((), 1))
    inspector.feed_all(0, entries)
    inspector.finish()
    return [(x.kind, x.index or 0) for x in inspector.findings
            if x.kind in ("export_not_private", "privacy_budget_overspent")]


def _export(f: EntryFactory, n: int, *, budget: dict[str, Any] | None = None,
            dp: dict[str, Any] | None = None, release: str | None = None) -> bytes:
    """The n-th export of LOCAL today, recording honest spent numbers (n + 1) unless
    ``budget``/``dp`` members are overridden."""
    entry = parse_entry(f.export(LOCAL, "country", 30, t=T0 + n, limits=LIMITS,
                                 spent=((n + 1) * 1_000_000, (n + 1) * 1_000_000)))
    body = {k: v for k, v in entry.body.items() if k not in ("v", "type", "time")}
    body["budget"] = {**body["budget"], **(budget or {})}
    body["dp"] = {**body["dp"], **(dp or {})}
    body["release"] = release
    return encode_entry("export", entry.time, body)


def test_the_honest_overspending_is_found(reference: bool) -> None:
    """Control: three exports of one day over a budget of two are found by the sum."""
    f = EntryFactory()
    found = _inspect([_export(f, n) for n in range(3)], f, reference)
    assert ("privacy_budget_overspent", 2) in found


def test_a_period_length_of_its_own_per_export_is_found(reference: bool) -> None:
    """G8: five exports charged to periods of 86,400, 86,401, ... seconds (each then a
    sum of its own) are reported: the period length changed without a release stating
    it, so the sums cannot be compared."""
    f = EntryFactory()
    log = []
    for n in range(5):
        period_s = DAY + n
        log.append(_export(f, n, budget={"period_s": period_s,
                                         "period": int(T0 + n) // period_s * period_s,
                                         "principal": {"spent_micro": 1_000_000,
                                                       "limit_micro": LIMITS[0]},
                                         "dataset": {"spent_micro": 1_000_000,
                                                     "limit_micro": LIMITS[1]}}))
    found = _inspect(log, f, reference)
    assert {i for kind, i in found if kind == "export_not_private"} >= {1, 2, 3, 4}, found


def test_a_period_starting_at_the_export_is_found(reference: bool) -> None:
    """G8: exports each charged to a period starting at its own time (a period not at a
    multiple of its length) are reported, every one."""
    f = EntryFactory()
    log = [_export(f, n, budget={"period": int(T0) + n,
                                 "principal": {"spent_micro": 1_000_000,
                                               "limit_micro": LIMITS[0]}})
           for n in range(4)]
    found = _inspect(log, f, reference)
    assert [i for kind, i in found if kind == "export_not_private"] == [0, 1, 2, 3], found


def test_a_limit_raised_per_export_is_found(reference: bool) -> None:
    """G8: a gateway raising the principal's limit it records, export by export, so that
    its own spent never passes it, is reported at each raise."""
    f = EntryFactory()
    log = [_export(f, n, budget={"principal": {"spent_micro": (n + 1) * 1_000_000,
                                               "limit_micro": (n + 2) * 1_000_000}})
           for n in range(4)]
    found = _inspect(log, f, reference)
    assert [i for kind, i in found if kind == "export_not_private"] == [1, 2, 3], found


def test_an_epsilon_below_the_recorded_noise_is_found(reference: bool) -> None:
    """G8: an export recording epsilon 0.000001 but the scale of epsilon 1 (the noise
    it drew spent a whole epsilon) is not a well-formed record of its noise."""
    f = EntryFactory()
    found = _inspect([_export(f, 0, dp={"epsilon_micro": 1})], f, reference)
    assert ("export_not_private", 0) in found, found


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    policy = tmp_path_factory.mktemp("bundle")
    (policy / "policies.cedar").write_text("// empty\n")
    package: Path = tmp_path_factory.mktemp("pkg")
    (package / "__init__.py").write_text("")
    built = build_manifest(policy, now=T0, package_dir=package, revision=None,
                           dependencies=())
    return dataclasses.replace(built, deployment=DeploymentSlice("us", {"privacy": PRIVACY}))


def test_terms_other_than_the_reviewed_release_are_found(reference: bool,
                                                         manifest: Manifest) -> None:
    """G8: a gateway whose release was reviewed with a period of a day and a limit of 2
    records, from its very first export on, consistent terms of its own (a period of a
    minute, a limit of 100): every such export is reported, and exports recording
    exactly the reviewed terms are not."""
    f = EntryFactory()
    release = encode_entry("release", T0 - 10, {"release": manifest.id,
                                                "manifest": manifest.to_json()})
    honest = [_export(f, n, release=manifest.id) for n in range(2)]
    lying = [_export(f, n, release=manifest.id, budget={
        "period": int(T0 + n) // 60 * 60, "period_s": 60,
        "principal": {"spent_micro": 1_000_000, "limit_micro": 100_000_000}})
        for n in range(5, 8)]
    found = _inspect([release, *honest, *lying], f, reference)
    assert [i for kind, i in found if kind == "export_not_private"] == [3, 4, 5], found
    assert not [i for kind, i in found if kind == "privacy_budget_overspent" and i < 3]
