"""``bordergate schema check FILE``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.residency.schema import demo_schema_path

runner = CliRunner()


def test_demo_schema_checks_ok() -> None:
    """Promise 1: the shipped demo schema passes the check and every class is counted."""
    result = runner.invoke(app, ["schema", "check", str(demo_schema_path())])
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output and "payments: 7 fields" in result.output
    path = runner.invoke(app, ["schema", "demo-path"])
    assert path.output.strip() == str(demo_schema_path())


def test_bad_schema_names_where_and_exits_1(tmp_path: Path) -> None:
    """Behaviour: an unclassified field fails with its code, file, collection and field."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[collections.users.fields.email]\ntype = 'string'\n")
    result = runner.invoke(app, ["schema", "check", str(bad)])
    assert result.exit_code == 1
    assert "unclassified_field" in result.output
    assert str(bad) in result.output and "'users'" in result.output
    assert "'email'" in result.output


def test_missing_schema_exits_3(tmp_path: Path) -> None:
    """Behaviour: an unreadable schema file is an I/O error: exit 3 (bordergate.exit_codes)."""
    result = runner.invoke(app, ["schema", "check", str(tmp_path / "none.toml")])
    assert result.exit_code == 3 and "schema_unreadable" in result.output
