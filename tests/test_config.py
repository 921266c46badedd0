"""The deployment file: the shipped example loads; every mistake names its key;
the profile decides what may be left out (docs/config.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bordergate.audit.auditor_config import parse_auditor_config
from bordergate.config import Profile, demo_config_path, load_config, parse_config
from bordergate.errors import ConfigError
from bordergate.keys.backend import KeyFileSettings
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.privacy.budget import PrivacySettings
from bordergate.residency.schema import demo_schema_path
from bordergate.tlog.note import Signer
from tests.releases.keys import reviewer_signer

GOOD = """
[deployment]
profile = "development"
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
    assert deployment.profile is Profile.DEMO
    assert deployment.policy_bundle_path == DEFAULT_BUNDLE_PATH
    assert deployment.jurisdiction("eu").issuer.audience == "eu"


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    """Deployment: relative paths resolve against the config file's directory."""
    d = parse_config(GOOD, base_dir=tmp_path)
    us = d.jurisdiction("us")
    assert us.store == f"sqlite:{tmp_path}/us/records.db"
    assert us.log.key_file == tmp_path / "us/log.key"
    assert us.keys == KeyFileSettings(tmp_path / "us/kek.json")
    assert us.public_url == "http://127.0.0.1:9001"
    assert d.privacy == PrivacySettings()


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
    ("k moved to the bundle", GOOD.replace('profile = "development"\n',
                                          'profile = "development"\nk_min = 10\n'),
     "config_unknown_key", "deployment.k_min"),
    ("zero epsilon", GOOD + "[privacy]\nepsilon_per_export = 0\n", "config_invalid",
     "privacy.epsilon_per_export"),
    ("epsilon over a budget", GOOD + "[privacy]\nepsilon_per_export = 5\nprincipal_budget = 4\n",
     "config_invalid", "privacy.epsilon_per_export"),
    ("privacy typo", GOOD + "[privacy]\nepsilon = 1\n", "config_unknown_key", "privacy.epsilon"),
    # TOML spells nan and inf: refused by name, not a ValueError from round() (review)
    ("nan epsilon", GOOD + "[privacy]\nepsilon_per_export = nan\n", "config_invalid",
     "privacy.epsilon_per_export"),
    ("infinite budget", GOOD + "[privacy]\nprincipal_budget = inf\n", "config_invalid",
     "privacy.principal_budget"),
    ("bad code", GOOD.replace("jurisdictions.us", "jurisdictions.US1"), "config_invalid",
     "jurisdictions.US1"),
    ("quorum above witnesses", GOOD + "quorum = 1\n",
     "config_invalid", "jurisdictions.us.log.quorum"),
    ("no issuer keys", GOOD.replace('["us/issuer.pub"]', "[]"), "config_invalid",
     "jurisdictions.us.issuer.public_keys"),
    ("no jurisdictions", '[deployment]\nprofile = "demo"\n', "config_missing_key",
     "jurisdictions"),
    ("unknown profile", GOOD.replace('"development"', '"staging"'), "config_invalid",
     "deployment.profile"),
    ("padded string", GOOD.replace('origin = "us.example/log"', 'origin = "us.example/log "'),
     "config_invalid", "jurisdictions.us.log.origin"),
    ("bad reviewer key", GOOD.replace('custodian = "c"', 'custodian = "c"\n'
                                      'reviewers = [{ name = "a", public_key = "a+b+c" }]'),
     "config_invalid", "jurisdictions.us.reviewers[0].public_key"),
    ("unknown key backend", GOOD.replace('backend = "file"', 'backend = "vault"'),
     "key_backend_config", "jurisdictions.us.keys.backend"),
    ("key file without path", GOOD.replace(', path = "us/kek.json"', ""),
     "key_backend_config", "jurisdictions.us.keys.path"),
    ("log storage URL", GOOD.replace('storage = "us/log"', 'storage = "s3://bucket"'),
     "config_invalid", "jurisdictions.us.log.storage"),
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


# TEST-ONLY receipt verifier key (fixed seed)
RECEIPT_VKEY = Signer.from_seed("us.gateway-receipts", bytes([7] * 32)).verifier().key_string
# TEST-ONLY identity authority verifier key (fixed seed)
AUTHORITY_VKEY = Signer.from_seed("us-identity", bytes([8] * 32)).verifier().key_string
PRODUCTION = GOOD.replace(
    'profile = "development"\n', 'schema = "schema.toml"\npolicy_bundle = "policy"\n'
).replace("[jurisdictions.us.log]\n", 'receipts = { key_file = "us/receipt.key", public_keys = '
          f'["{RECEIPT_VKEY}"] }}\nroster = {{ authority_keys = ["{AUTHORITY_VKEY}"] }}\n'
          '[jurisdictions.us.log]\n'
          ) + 'witnesses = [{ url = "http://127.0.0.1:9101", vkey = "w+1+x" }]\nquorum = 1\n'


def test_production_is_the_default_and_names_its_files(tmp_path: Path) -> None:
    """Profiles: without a profile key the deployment is production, and a complete
    production file (its own schema and bundle, a witness quorum) loads as written."""
    d = parse_config(PRODUCTION, base_dir=tmp_path)
    assert d.profile is Profile.PRODUCTION
    assert d.schema_path == tmp_path / "schema.toml"
    assert d.policy_bundle_path == tmp_path / "policy"
    assert d.jurisdiction("us").log.quorum == 1


@pytest.mark.parametrize("key", ["schema", "policy_bundle"])
def test_production_without_schema_or_bundle_is_refused(tmp_path: Path, key: str) -> None:
    """Profiles: no silent demo fallback: a production deployment that leaves out
    `schema` or `policy_bundle` is a ConfigError naming that key."""
    text = PRODUCTION.replace(f"{key} = ", f"# {key} = ")
    with pytest.raises(ConfigError) as err:
        parse_config(text, base_dir=tmp_path)
    assert err.value.code == "config_missing_key"
    assert f"deployment.{key}" in str(err.value) and "production" in str(err.value)


def test_production_needs_a_roster_authority(tmp_path: Path) -> None:
    """Issue 12, item 3: a production gateway takes principals' attributes from the
    identity authority's signed roster, never from token claims: a production
    jurisdiction without a roster table is a ConfigError naming it."""
    with pytest.raises(ConfigError) as err:
        parse_config(PRODUCTION.replace("roster = {", "# roster = {"), base_dir=tmp_path)
    assert err.value.code == "config_missing_key"
    assert "jurisdictions.us.roster" in str(err.value)


@pytest.mark.parametrize(("change", "key"), [
    (lambda t: t.replace("receipts = {", "# receipts = {"), "jurisdictions.us.receipts"),
    (lambda t: t.replace(f'["{RECEIPT_VKEY}"]', "[]"), "jurisdictions.us.receipts.public_keys"),
], ids=["no-receipts-table", "no-registered-key"])
def test_production_needs_a_registered_receipt_key(tmp_path: Path, change: Any,
                                                    key: str) -> None:
    """Issue 12, item 5 (registered receipt key): a production deployment names its
    gateways' receipt key file and registers their public keys; leaving either out is
    a ConfigError naming the key."""
    with pytest.raises(ConfigError) as err:
        parse_config(change(PRODUCTION), base_dir=tmp_path)
    assert err.value.code == "config_missing_key"
    assert key in str(err.value)
    us = parse_config(PRODUCTION, base_dir=tmp_path).jurisdiction("us")
    assert us.receipts is not None and us.receipts.public_keys == (RECEIPT_VKEY,)
    assert us.receipt_key_file() == tmp_path / "us/receipt.key"


def test_a_malformed_receipt_key_is_refused(tmp_path: Path) -> None:
    """Issue 12, item 5: a registered receipt key that is not an Ed25519 verifier key is
    refused at load, naming it."""
    with pytest.raises(ConfigError) as err:
        parse_config(PRODUCTION.replace(RECEIPT_VKEY, "us+1+x"), base_dir=tmp_path)
    assert "jurisdictions.us.receipts.public_keys[0]" in str(err.value)


def test_development_receipt_key_defaults_beside_the_pseudonym_secret(tmp_path: Path) -> None:
    """Profiles: development and demo may leave ``receipts`` out; the key file is then
    ``receipt.key`` beside the pseudonym secret and no key is registered."""
    us = parse_config(GOOD, base_dir=tmp_path).jurisdiction("us")
    assert us.receipts is None and us.receipt_key_file() == tmp_path / "us/receipt.key"


def test_production_refuses_witness_quorum_zero(tmp_path: Path) -> None:
    """Profiles: a production log must need at least one witness cosignature (promise 5);
    quorum 0 is a development setting."""
    with pytest.raises(ConfigError) as err:
        parse_config(PRODUCTION.replace("quorum = 1", "quorum = 0"), base_dir=tmp_path)
    assert err.value.code == "config_invalid"
    assert "jurisdictions.us.log.quorum" in str(err.value)
    # no witnesses at all (and so no quorum) is refused the same way
    unwitnessed = PRODUCTION.replace(
        'witnesses = [{ url = "http://127.0.0.1:9101", vkey = "w+1+x" }]\nquorum = 1\n', "")
    assert "witnesses" not in unwitnessed
    with pytest.raises(ConfigError) as err:
        parse_config(unwitnessed, base_dir=tmp_path)
    assert "jurisdictions.us.log.quorum" in str(err.value)
    # witnesses on by default: listed witnesses without a quorum all have to cosign
    every = parse_config(PRODUCTION.replace("quorum = 1\n", ""), base_dir=tmp_path)
    assert every.jurisdiction("us").log.quorum == 1


@pytest.mark.parametrize("profile", ["demo", "development"])
def test_demo_and_development_fall_back_to_packaged_files(tmp_path: Path, profile: str
                                                          ) -> None:
    """Profiles: only demo and development use the packaged demo schema and
    trusted-partner bundle when the file names none, and allow quorum 0."""
    d = parse_config(GOOD.replace('"development"', f'"{profile}"'), base_dir=tmp_path)
    assert d.profile is Profile(profile)
    assert d.schema_path == demo_schema_path()
    assert d.policy_bundle_path == DEFAULT_BUNDLE_PATH
    assert d.jurisdiction("us").log.quorum == 0


def test_both_configuration_files_share_one_reader(tmp_path: Path) -> None:
    """Configuration: the deployment file and the auditor file follow the same rules
    (surrounding whitespace refused, reviewer keys checked), naming the key."""
    vkey = reviewer_signer("alice").verifier().key_string
    auditor = (f"[logs.us]\nlocation = 'x'\nvkey = '{vkey}'\n"
               "reviewers = [{ name = 'a', public_key = 'a+b+c' }]\n").encode()
    with pytest.raises(ConfigError) as err:
        parse_auditor_config(auditor, base_dir=tmp_path)
    assert "logs.us.reviewers[0].public_key" in str(err.value)
    padded = f"[logs.us]\nlocation = 'x'\nvkey = ' {vkey}'\n".encode()
    with pytest.raises(ConfigError) as err:
        parse_auditor_config(padded, base_dir=tmp_path)
    assert err.value.code == "config_invalid" and "logs.us.vkey" in str(err.value)
    listed = f'reviewers = [{{ name = "alice", public_key = "{vkey}" }}]'
    d = parse_config(GOOD.replace('custodian = "c"', f'custodian = "c"\n{listed}'),
                     base_dir=tmp_path)
    assert d.jurisdiction("us").reviewers[0].public_key == vkey


@pytest.mark.parametrize("repeat", ["the same key under another name",
                                    "another key under the same name"])
def test_one_witness_listed_twice_is_refused(tmp_path: Path, repeat: str) -> None:
    """Promise 5 (the review's witness-counting finding): a log's quorum counts
    witnesses, so the deployment file refuses one witness listed twice, by its
    public key under another name (cosignature/v1 does not sign the name) or by its
    name with another key (``witness_key_repeated``, naming the second entry);
    before, quorum 2 could be met by one witness."""
    from bordergate.tlog.cosignature import CosignatureSigner
    first = CosignatureSigner("witness.test/a", bytes([7]) * 32, lambda: 0).verifier()
    second = CosignatureSigner("witness.test/b" if repeat.startswith("the same key") else
                               "witness.test/a",
                               bytes([7 if repeat.startswith("the same key") else 8]) * 32,
                               lambda: 0).verifier()
    listed = (f'witnesses = [{{ url = "http://127.0.0.1:9101", vkey = "{first.key_string}" }}, '
              f'{{ url = "http://127.0.0.1:9102", vkey = "{second.key_string}" }}]\n'
              'quorum = 2\n')
    text = PRODUCTION.replace(
        'witnesses = [{ url = "http://127.0.0.1:9101", vkey = "w+1+x" }]\nquorum = 1\n', listed)
    assert listed in text
    with pytest.raises(ConfigError) as err:
        parse_config(text, base_dir=tmp_path)
    assert err.value.code == "witness_key_repeated"
    assert "jurisdictions.us.log.witnesses[1].vkey" in str(err.value)


@pytest.mark.parametrize(("listed", "quorum", "refused"), [
    (2, 1, True), (2, 2, False), (3, 1, True), (3, 2, False), (4, 2, True), (4, 3, False)])
def test_production_quorum_is_more_than_half_the_witnesses(
        tmp_path: Path, listed: int, quorum: int, refused: bool) -> None:
    """Witness review (threat model L10): with a quorum of half the witnesses or
    fewer, the log operator alone could show two disjoint sets of witnesses two
    histories, each cosigned by a quorum; production refuses such a quorum, naming
    the key and the smallest quorum that holds."""
    witnesses = ", ".join(f'{{ url = "http://127.0.0.1:{9101 + i}", vkey = "w{i}+1+x" }}'
                          for i in range(listed))
    text = PRODUCTION.replace(
        'witnesses = [{ url = "http://127.0.0.1:9101", vkey = "w+1+x" }]\nquorum = 1\n',
        f"witnesses = [{witnesses}]\nquorum = {quorum}\n")
    if not refused:
        assert parse_config(text, base_dir=tmp_path).jurisdiction("us").log.quorum == quorum
        return
    with pytest.raises(ConfigError) as err:
        parse_config(text, base_dir=tmp_path)
    assert err.value.code == "config_invalid"
    assert "jurisdictions.us.log.quorum" in str(err.value)
    assert f"quorum >= {listed // 2 + 1}" in str(err.value)
