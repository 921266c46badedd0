"""The deployment file: the shipped example loads; every mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.config import demo_config_path, load_config, parse_config
from bordergate.errors import ConfigError
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH

GOOD = """
[deployment]
k_min = 10
[jurisdictions.us]
custodian = "c"
listen = "127.0.0.1:9001"
store = "sqlite:us/records.db"
keys = { backend = "file", path = "us/kek.json" }
issuer = { issuer = "https://i.us", public_keys = ["us/issuer.pub"] }
[jurisdictions.us.log]
storage = "us/log"
origin = "us.example/log"
key_file = "us/log.key"
pseudonym_secret_file = "us/p.secret"
"""


def test_demo_config_loads_with_three_jurisdictions() -> None:
    """Deployment: the shipped example is valid and names us, eu and cn."""
    deployment = load_config(demo_config_path())
    assert sorted(deployment.jurisdictions) == ["cn", "eu", "us"]
    assert deployment.policy_bundle_path == DEFAULT_BUNDLE_PATH
    assert deployment.jurisdiction("eu").issuer.audience == "eu"


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    """Deployment: relative paths resolve against the config file's directory."""
    d = parse_config(GOOD, base_dir=tmp_path)
    us = d.jurisdiction("us")
    assert us.store == f"sqlite:{tmp_path}/us/records.db"
    assert us.log.key_file == tmp_path / "us/log.key"
    assert us.keys["path"] == str(tmp_path / "us/kek.json")
    assert us.public_url == "http://127.0.0.1:9001" and d.k_min == 10


BAD = [
    ("not toml", "[deployment", "config_syntax", "not UTF-8 TOML"),
    ("unknown top key", GOOD + "\n[extra]\n", "config_unknown_key", "extra"),
    ("typo in jurisdiction", GOOD.replace("custodian =", "custodain ="),
     "config_unknown_key", "jurisdictions.us.custodain"),
    ("missing origin", GOOD.replace('origin = "us.example/log"', ""),
     "config_missing_key", "jurisdictions.us.log.origin"),
    ("bad listen", GOOD.replace("127.0.0.1:9001", "nowhere"), "config_invalid",
     "jurisdictions.us.listen"),
    ("bad store", GOOD.replace("sqlite:us/records.db", "mysql://x"), "config_invalid",
     "jurisdictions.us.store"),
    ("bad k", GOOD.replace("k_min = 10", "k_min = 0"), "config_invalid", "deployment.k_min"),
    ("bad code", GOOD.replace("jurisdictions.us", "jurisdictions.US1"), "config_invalid",
     "jurisdictions.US1"),
    ("quorum above witnesses", GOOD + "quorum = 1\n",
     "config_invalid", "jurisdictions.us.log.quorum"),
    ("no issuer keys", GOOD.replace('["us/issuer.pub"]', "[]"), "config_invalid",
     "jurisdictions.us.issuer.public_keys"),
    ("no jurisdictions", "[deployment]\n", "config_missing_key", "jurisdictions"),
]


@pytest.mark.parametrize(("text", "code", "key"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_mistakes_name_their_key(tmp_path: Path, text: str, code: str, key: str) -> None:
    """Deployment: each mistake is a ConfigError with a stable code naming the key."""
    with pytest.raises(ConfigError) as err:
        parse_config(text, base_dir=tmp_path)
    assert err.value.code == code
    assert key in str(err.value)


def test_unknown_jurisdiction_and_unreadable_file(tmp_path: Path) -> None:
    """Deployment: asking for a jurisdiction not configured, or a missing file, is clear."""
    with pytest.raises(ConfigError) as err:
        parse_config(GOOD, base_dir=tmp_path).jurisdiction("eu")
    assert err.value.code == "unknown_jurisdiction"
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "missing.toml")
    assert err.value.code == "config_unreadable"
