"""The countries of concern are a reviewed setting (issue 14, item 2): part of every
jurisdiction's deployment slice, so changing them is a changed release (promise 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.config import load_config
from bordergate.dsp.countries import DEFAULT_COUNTRIES_OF_CONCERN, unflagged_principals
from bordergate.errors import ConfigError
from bordergate.releases.deployment_slice import deployment_slice, diff_settings
from tests.gateway.deployment import write_deployment


def test_countries_of_concern_are_in_the_slice_and_a_change_is_named(tmp_path: Path) -> None:
    """Default: the list of 28 CFR 202.601 (China with Hong Kong and Macau); an edited
    `[dsp]` list changes the slice's digest and the refusal names the setting."""
    config = write_deployment(tmp_path, k_min=5)
    before = deployment_slice(load_config(config), "us")
    assert before.settings["countries_of_concern"] == list(DEFAULT_COUNTRIES_OF_CONCERN)
    text = config.read_text()
    config.write_text(text + '\n[dsp]\ncountries_of_concern = ["RU", "CN", "CN"]\n')
    after = deployment_slice(load_config(config), "us")
    assert after.settings["countries_of_concern"] == ["CN", "RU"]
    assert after.digest != before.digest
    assert [line.split(":")[0] for line in diff_settings(before, after)] == \
        ["countries_of_concern"]
    config.write_text(text + '\n[dsp]\ncountries_of_concern = ["China"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.code == "config_invalid" and "countries_of_concern" in str(caught.value)


def test_principals_in_a_country_of_concern_not_marked_covered_are_listed() -> None:
    """The cross-check of roster and setting: a principal located in a country of concern
    whom the roster does not mark covered (202.211(a)(4)) is named for the auditor."""
    principals = {"wei": {"location": "cn", "covered_person": True},
                  "li": {"location": "cn", "covered_person": False},
                  "alice": {"location": "us", "covered_person": False}}
    where = {"cn": "CN", "us": "US"}
    assert unflagged_principals(principals, where, DEFAULT_COUNTRIES_OF_CONCERN) == ["li"]
    assert unflagged_principals(principals, where, ["RU"]) == []
