"""`bordergate migrate plan`: printed and written as JSON, split per home, counted per
collection, field class and data category (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.config import Deployment
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.source import open_source


def test_plan_is_split_per_home_and_counts_categories(tmp_path: Path,
                                                      deployment: Deployment) -> None:
    """Issue 15: the plan's JSON gives subjects and records per home, per collection, per
    field class and per DSP data category (the schema's `dsp_category`; `uncategorised`
    for fields without one),
    lists the dropped column with its reason and the dirty subjects by legacy id; `--home`
    prints one home's part only; the plan changes nothing in the source."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    made = generate_legacy(source, users=30, seed=2)
    source.close()
    config = str(deployment.path)
    runner = CliRunner()
    out = runner.invoke(app, ["migrate", "plan", "--source", url, "--config", config,
                              "--out", str(tmp_path / "plan.json")])
    assert out.exit_code == 0, out.output
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["records"] == 300 and set(plan["homes"]) <= {"us", "eu", "cn"}
    for home in plan["homes"].values():
        assert home["records"] == sum(home["collections"].values())
        assert set(home["categories"]) >= {"covered_personal_identifiers", "uncategorised"}
        assert set(home["categories"]) <= {"covered_personal_identifiers", "uncategorised",
                                           "precise_geolocation", "personal_financial"}
        assert sum(home["field_classes"].values()) == sum(home["categories"].values())
    assert plan["unmapped"] == [] and list(plan["dropped"]) == ["accounts.ad_segment"]
    assert [s["legacy_id"] for s in plan["dirty"]["subjects"]] == list(made.dirty_accounts)
    one = runner.invoke(app, ["migrate", "plan", "--source", url, "--config", config,
                              "--home", "us"])
    assert json.loads(one.output) == {"home": "us", **plan["homes"]["us"]}
    source = open_source(url)
    assert source.journal() == {} and source.query("SELECT COUNT(*) FROM accounts")[0][0] == 34
    source.close()
