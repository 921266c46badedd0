"""DSP categories in the classified schema (issue 14, item 1): each field may carry a
28 CFR 202.249 category and a government-related flag; `schema check` validates them with
stable error codes; the demo schema is annotated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.dsp.categories import DspCategory
from bordergate.errors import ConfigError
from bordergate.residency.schema import demo_schema_path, load_schema, parse_schema

runner = CliRunner()
_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_FIELD = st.tuples(st.sampled_from(["public", "protected", "restricted"]),
                   st.none() | st.sampled_from(list(DspCategory)), st.none() | st.booleans())


def _toml(fields: dict[str, tuple[str, DspCategory | None, bool | None]]) -> str:
    out = []
    for name, (cls, category, government) in fields.items():
        out.append(f'[collections.c.fields.{name}]\nclass = "{cls}"\ntype = "string"\n')
        if category is not None:
            out.append(f"dsp_category = {json.dumps(category.value)}\n")
        if government is not None:
            out.append(f"government_related = {str(government).lower()}\n")
    return "".join(out)


@given(st.dictionaries(_NAMES, _FIELD, min_size=1, max_size=8))
def test_categories_and_flags_round_trip_through_the_toml_format(
        fields: dict[str, tuple[str, DspCategory | None, bool | None]]) -> None:
    """Any field may carry any category (or none) and the flag (default false)."""
    schema = parse_schema(_toml(fields))
    for name, (_, category, government) in fields.items():
        spec = schema.collection("c").field(name)
        assert spec.dsp_category == category
        assert spec.government_related is bool(government)


@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40)
       .filter(lambda s: s not in set(DspCategory)))
def test_an_unknown_category_is_refused_with_a_stable_code(name: str) -> None:
    """Bad input gets a stable code: ``unknown_dsp_category``, naming collection and field."""
    text = ('[collections.c.fields.f]\nclass = "protected"\ntype = "string"\n'
            f"dsp_category = {json.dumps(name)}\n")
    with pytest.raises(ConfigError) as caught:
        parse_schema(text)
    assert caught.value.code == "unknown_dsp_category"
    assert "'c'" in str(caught.value) and "'f'" in str(caught.value)


@pytest.mark.parametrize("value", ['"yes"', "1", "[true]"], ids=["text", "int", "list"])
def test_a_non_boolean_government_flag_is_refused(value: str) -> None:
    """``government_related`` must be true or false: ``invalid_government_related``."""
    text = ('[collections.c.fields.f]\nclass = "protected"\ntype = "string"\n'
            f"government_related = {value}\n")
    with pytest.raises(ConfigError) as caught:
        parse_schema(text)
    assert caught.value.code == "invalid_government_related"


def test_schema_check_reports_categories_and_refuses_unknown_ones(tmp_path: Path) -> None:
    """`bordergate schema check`: counts the demo's categories; exits 1 on an unknown one
    with the code, file, collection and field in the message."""
    ok = runner.invoke(app, ["schema", "check", str(demo_schema_path())])
    assert ok.exit_code == 0, ok.output
    assert "covered_personal_identifiers" in ok.output and "precise_geolocation" in ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[collections.users.fields.dna]\nclass = "restricted"\ntype = "string"\n'
                   'dsp_category = "genomic"\n')
    result = runner.invoke(app, ["schema", "check", str(bad)])
    assert result.exit_code == 1
    assert "unknown_dsp_category" in result.output and "'dna'" in result.output
    assert str(bad) in result.output


def test_demo_schema_is_annotated() -> None:
    """The demo schema: locations are precise geolocation, payments personal financial data,
    contact and device data covered personal identifiers; public fields carry none."""
    schema = load_schema(demo_schema_path())
    users, payments = schema.collection("users"), schema.collection("payments")
    assert schema.collection("profiles").field("precise_location").dsp_category \
        is DspCategory.PRECISE_GEOLOCATION
    assert payments.field("card_token").dsp_category is DspCategory.PERSONAL_FINANCIAL
    assert users.field("email").dsp_category is DspCategory.COVERED_PERSONAL_IDENTIFIERS
    for coll in schema.collections.values():
        for spec in coll.fields.values():
            if spec.field_class.value == "public":
                assert spec.dsp_category is None, spec.name
