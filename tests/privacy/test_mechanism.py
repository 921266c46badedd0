"""Issue 11 item 3: the noise of exports (bordergate.privacy.mechanism).

What is asserted is deterministic: the plan OpenDP's privacy maps give, that the
mechanism keeps groups by a noisy threshold and releases only its own draws, and
(with a wrapping twin) that the gateway releases nothing it did not get from the
mechanism.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bordergate.errors import ConfigError, PolicyDenied
from bordergate.privacy.mechanism import (
    OPENDP_FEATURES,
    ExportPlan,
    NoisyGroup,
    NoisyRelease,
    OpenDPMechanism,
    TrueGroup,
)


def test_plan_spends_exactly_the_configured_epsilon() -> None:
    """The three measurements together spend the export's epsilon by OpenDP's own maps,
    each at scale 3/epsilon, and the threshold is at least k and raised for delta."""
    plan = OpenDPMechanism().plan(1_000_000, 9, 25)
    assert (plan.scale, plan.spent_micro, plan.k) == (3.0, 1_000_000, 25)
    assert plan.threshold > 25
    loose = OpenDPMechanism().plan(1_000_000, 2, 25)
    assert loose.threshold == 25  # delta 1e-2 is met at k already
    assert plan.to_json()["scale_micro"] == 3_000_000
    assert OPENDP_FEATURES == ("contrib",)


@pytest.mark.parametrize(("epsilon", "delta", "k"), [(0, 9, 5), (1, 0, 5), (1_000_000, 9, 0),
                                                    (101_000_000, 9, 5)],
                         ids=["epsilon-zero", "delta-exponent-zero", "k-zero", "epsilon-huge"])
def test_bad_settings_give_no_plan(epsilon: int, delta: int, k: int) -> None:
    """Settings outside the documented ranges are refused with privacy_config."""
    with pytest.raises(ConfigError) as err:
        OpenDPMechanism().plan(epsilon, delta, k)
    assert err.value.code == "privacy_config"


def test_a_group_far_below_the_threshold_is_never_released() -> None:
    """A group of 1 subject under a threshold 60 above it (scale 0.3) is suppressed and
    never named: its noisy count would need to exceed it by 200 scales (p < e^-200)."""
    mechanism = OpenDPMechanism()
    plan = mechanism.plan(10_000_000, 6, 60)
    groups = [TrueGroup("rare", 1, 1), TrueGroup("common", 5000, 5000)]
    for _ in range(20):
        out = mechanism.release(plan, groups)
        assert [g.value for g in out.groups] == ["common"]


class Recording:
    """A wrapping twin: the real plan, a release shifted by 1000 so that no true count
    (all below 1000 here) can appear unless the gateway bypasses the mechanism."""

    def __init__(self) -> None:
        self.real = OpenDPMechanism()
        self.plans: list[ExportPlan] = []
        self.seen: list[list[TrueGroup]] = []

    def plan(self, epsilon_micro: int, delta_exponent: int, k: int) -> ExportPlan:
        plan = self.real.plan(epsilon_micro, delta_exponent, k)
        self.plans.append(plan)
        return plan

    def release(self, plan: ExportPlan, groups: Sequence[TrueGroup]) -> NoisyRelease:
        self.seen.append(list(groups))
        kept = [NoisyGroup(g.value, g.records + 1000, g.subjects + 1000)
                for g in groups if g.subjects >= 3]
        return NoisyRelease(tuple(kept), 1000 + len(groups) - len(kept))


def test_gateway_releases_only_what_the_mechanism_gave(tmp_path: Path) -> None:
    """Every number in an export's body and entry comes from the mechanism (none is a
    true count), the mechanism gets the configured epsilon, delta and k, and the budget
    is refused exactly when spent, before the mechanism sees any data."""
    from tests.audit.scenario import LOCAL, GatewayScenario

    scenario = GatewayScenario(tmp_path)
    gw = scenario.start(unreviewed=True)
    twin = Recording()
    gw.mechanism = twin
    gw.privacy = type(gw.privacy)(epsilon_micro=2_000_000, delta_exponent=6,
                                  principal_budget_micro=4_000_000,
                                  dataset_budget_micro=100_000_000, period_s=86_400)

    async def traffic() -> tuple[list[dict[str, object]], PolicyDenied]:
        auth = scenario.auth(LOCAL)
        for i in range(5):
            s = (await gw.mint_subject(auth)).body["subject"]
            await gw.write(auth, "users", f"us-dp{i}", purpose="operations", payload={
                "subject": s, "values": {"handle": f"h{i}", "email": f"{i}@example.test",
                                         "created_at": "2024-01-01T00:00:00Z",
                                         "country": "US" if i < 4 else "FR"}})
        body = {"collection": "users", "group_by": "country",
                "purpose": "analytics_aggregate"}
        out = [(await gw.export(auth, body)).body for _ in range(2)]
        with pytest.raises(PolicyDenied) as refused:
            await gw.export(auth, body)
        return out, refused.value

    try:
        bodies, refused = scenario.run(traffic())
    finally:
        scenario.stop()
    assert refused.code == "privacy_budget_exhausted" and len(twin.seen) == 2
    assert [(p.epsilon_micro, p.delta_exponent, p.k) for p in twin.plans] == [
        (2_000_000, 6, 25)] * 3
    for body in bodies:
        assert body["groups"] == [{"value": "US", "records": 1004, "subjects": 1004}]
        assert body["suppressed"] == 1001  # FR (1 subject): suppressed, never named
        # (the receipt's signature and salt are random base64, which may spell "FR")
        assert "FR" not in str({k: v for k, v in body.items()
                                if k not in ("receipt", "receipt_salt")})
