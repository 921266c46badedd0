"""`bordergate migrate plan`: printed and written as JSON, split per home, counted per
collection, field class and data category (issue 15); `plan`, `run` and `verify` with
`--json` (issue 16 item 5)."""

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


def test_plan_run_and_verify_print_json(tmp_path: Path, deployment: Deployment) -> None:
    """Issue 16 item 5 (docs/cli.md): `migrate plan`, `run` and `verify` take `--json` as a
    flag that prints their result as one JSON document on stdout (the plan; the run's
    counts; the verification), `--out F` writes the same document to a file, and an error
    with `--json` is the common JSON error with its stable code and exit code."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    generate_legacy(source, users=30, seed=2)
    source.close()
    common = ["--source", url, "--config", str(deployment.path)]
    runner = CliRunner()
    planned = runner.invoke(app, ["migrate", "plan", *common, "--json",
                                  "--out", str(tmp_path / "plan.json")])
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)
    assert plan == json.loads((tmp_path / "plan.json").read_text())
    assert plan["records"] == 300 and plan["unmapped"] == []
    migrated = sum(home["records"] for home in plan["homes"].values())

    first = runner.invoke(app, ["migrate", "run", *common, "--json", "--no-parallel",
                                "--batch-subjects", "10"])
    assert first.exit_code == 0, first.output
    ran = json.loads(first.stdout)
    assert ran["ok"] is True and ran["records"] == migrated == 300
    assert ran["batches"] > 1 and (ran["batches_done_before"], ran["retried"]) == (0, 0)
    assert ran["home"] is None and ran["seconds"] >= 0
    assert ran["workers"] == {}  # --no-parallel: one process
    again = json.loads(runner.invoke(app, ["migrate", "run", *common, "--json",
                                           "--no-parallel"]).stdout)
    assert (again["records"], again["batches_done_before"]) == (0, ran["batches"])

    checked = runner.invoke(app, ["migrate", "verify", *common, "--json",
                                  "--out", str(tmp_path / "verify.json")])
    assert checked.exit_code == 0, checked.output
    verified = json.loads(checked.stdout)
    assert verified == json.loads((tmp_path / "verify.json").read_text())
    assert verified["ok"] is True and verified["failures"] == []
    assert verified["dirty_in_source"]["rows_left_in_place"] == \
        plan["dirty"]["rows_left_in_place"]

    missing = runner.invoke(app, ["migrate", "run", *common, "--json",
                                  "--mapping", str(tmp_path / "no-such-mapping.toml")])
    error = json.loads(missing.stdout)
    assert (error["ok"], error["error"], missing.exit_code) == (False, "mapping_unreadable", 2)
    assert "no-such-mapping.toml" in error["message"]
    assert "error [mapping_unreadable]" in missing.stderr
