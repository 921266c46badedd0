"""Bulk thresholds (issue 14 item 3): settings, counters, the shared table, prohibited data.

The thresholds are checked against the committed text of 28 CFR 202.205; the
workers' shared table (real SQLite) is driven by two workers' counters at once;
human 'omic data can never be let across its threshold (§202.303).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from bordergate.config import load_config
from bordergate.dsp.bulk import (
    DEFAULT_THRESHOLDS,
    BulkAction,
    BulkSettings,
    FieldCategories,
    parse_bulk_settings,
)
from bordergate.errors import ConfigError
from bordergate.gateway.bulk_counters import BulkCounters, MemoryBulkLedger, open_bulk_ledger
from bordergate.residency.schema import demo_schema_path, load_schema
from tests.gateway.deployment import write_deployment

REGULATIONS = Path(__file__).parent.parent / "data" / "regulations"
PARENT = {"id": "bob", "org": "bytedance", "org_kind": "parent", "location": "cn",
          "roles": ["engineer"]}
LOCAL = {"id": "alice", "org": "ttus", "org_kind": "local", "location": "us", "roles": []}
CATEGORIES = FieldCategories({"genomes": {"sequence": ("human_genomic", False)},
                              "users": {"email": ("covered_personal_identifiers", False),
                                        "where": ("precise_geolocation", False),
                                        "agency_badge": (None, True)}})


def counters(settings: BulkSettings, ledger: object | None = None) -> BulkCounters:
    return BulkCounters(jurisdiction="us", settings=settings, categories=CATEGORIES,
                        ledger=ledger or MemoryBulkLedger(),  # type: ignore[arg-type]
                        countries=("CN",))


def subject(n: int) -> str:
    return f"subject:{n:064x}"


def test_default_thresholds_are_the_texts() -> None:
    """§202.205 (committed excerpt): genomic more than 100, other 'omic, biometric and
    geolocation (devices) more than 1,000, health and financial more than 10,000,
    covered personal identifiers more than 100,000; government-related data: any."""
    text = (REGULATIONS / "28cfr202.205.txt").read_text(encoding="utf-8")
    assert "more than 1,000 U.S. devices" in text  # (c): geolocation in devices
    numbers = [int(n.replace(",", "")) for n in re.findall(r"more than ([0-9,]+) U\.S\.", text)]
    assert sorted(set(numbers)) == [100, 1_000, 10_000, 100_000]
    assert DEFAULT_THRESHOLDS == {
        "human_genomic": 100, "human_omic": 1_000, "biometric_identifiers": 1_000,
        "precise_geolocation": 1_000, "personal_health": 10_000,
        "personal_financial": 10_000, "covered_personal_identifiers": 100_000,
        "government_related": 0}
    combined = BulkSettings().threshold("combined:personal_health+precise_geolocation")
    assert combined == 1_000  # §202.205(g): the lowest threshold of its categories


def test_thresholds_are_part_of_the_deployment_slice(tmp_path: Path) -> None:
    """Promise 6: the thresholds and actions are reviewed settings: a changed
    threshold changes the jurisdiction's deployment slice."""
    from bordergate.releases.deployment_slice import deployment_slice

    path = write_deployment(tmp_path)
    plain = load_config(path)
    with path.open("a") as f:
        f.write("\n[dsp.bulk]\nthresholds = { personal_health = 500 }\n")
    changed = load_config(path)
    a, b = deployment_slice(plain, "us"), deployment_slice(changed, "us")
    assert a.settings["bulk"]["thresholds"]["personal_health"] == 10_000
    assert b.settings["bulk"]["thresholds"]["personal_health"] == 500
    assert a.digest != b.digest


@pytest.mark.parametrize("table, words", [
    ({"actions": {"human_genomic": "require_approval"}}, "prohibited"),
    ({"actions": {"human_omic": "require_approval"}}, "prohibited"),
    ({"thresholds": {"personal_health": -1}}, "non-negative"),
    ({"thresholds": {"gossip": 3}}, "unknown category"),
    ({"actions": {"personal_health": "shrug"}}, "'deny' or 'require_approval'"),
    ({"devices_per_subject": 0}, "devices_per_subject"),
    ({"colour": "red"}, "unknown key"),
], ids=["genomic-approvable", "omic-approvable", "negative", "unknown-category",
        "unknown-action", "no-devices", "unknown-key"])
def test_bad_bulk_settings_are_refused(table: dict[str, object], words: str) -> None:
    """Bad input gets a stable code: ``[dsp.bulk]`` refuses what the text or the
    product cannot do; human 'omic data is a prohibited transaction at bulk (§202.303)."""
    text = (REGULATIONS / "28cfr202.303.txt").read_text(encoding="utf-8")
    assert "access by that country of concern or covered person to bulk" in text
    assert "bulk human `omic data" in text  # the prohibition PROHIBITED_AT_BULK encodes
    with pytest.raises(ValueError, match=words):
        parse_bulk_settings(table)


def test_config_names_the_bad_bulk_key(tmp_path: Path) -> None:
    """A deployment file whose ``[dsp.bulk]`` makes genomic data approvable does not
    load (``config_invalid``, naming ``dsp.bulk``)."""
    path = write_deployment(tmp_path)
    with path.open("a") as f:
        f.write('\n[dsp.bulk]\nactions = { human_genomic = "require_approval" }\n')
    with pytest.raises(ConfigError, match=r"dsp\.bulk") as info:
        load_config(path)
    assert info.value.code == "config_invalid"


def test_a_default_require_approval_never_reaches_omic_data() -> None:
    """§202.303: with ``default_action = "require_approval"``, the 'omic categories
    still deny; other categories take the default."""
    s = parse_bulk_settings({"default_action": "require_approval"})
    assert s.action("human_genomic") is BulkAction.DENY
    assert s.action("personal_health") is BulkAction.REQUIRE_APPROVAL
    assert s.action("combined:human_omic+personal_health") is BulkAction.DENY


def test_prohibited_category_is_refused_even_with_an_approval() -> None:
    """§202.303: a read that would take human genomic data over its threshold is
    refused (``bulk_threshold_reached``) although the read presents a valid approval;
    a ``require_approval`` category crossing goes ahead with one and is recorded."""
    s = parse_bulk_settings({"thresholds": {"human_genomic": 1, "precise_geolocation": 1},
                             "actions": {"precise_geolocation": "require_approval"}})
    c = counters(s)
    genomic = c.claims(PARENT, None, "genomes", ["sequence"])
    assert c.check(genomic, subject(1), 1000.0, approved=True).refused is None
    verdict = c.check(genomic, subject(2), 1001.0, approved=True)
    assert verdict.refused == "bulk_threshold_reached"
    assert {(x.counterparty, x.counter, x.count, x.threshold) for x in verdict.crossings} == {
        ("principal:bob", "human_genomic", 2, 1), ("org:bytedance", "human_genomic", 2, 1)}
    where = c.claims(PARENT, None, "users", ["where"])
    assert c.check(where, subject(1), 1002.0, approved=False).refused is None
    held = c.check(where, subject(2), 1003.0, approved=False)
    assert held.refused == "bulk_approval_required"
    passed = c.check(where, subject(2), 1004.0, approved=True)
    assert passed.refused is None and passed.crossings
    assert c.check(where, subject(2), 1005.0, approved=False).refused is None  # counted now


def test_only_covered_persons_are_counted_and_government_data_is_any_volume() -> None:
    """A local principal is not a counterparty; the roster's word overrides location;
    one subject's government-related data crosses its threshold (§202.222: any)."""
    c = counters(BulkSettings())
    assert c.claims(LOCAL, None, "users", ["email"]) == []
    assert c.claims(PARENT, False, "users", ["email"]) == []  # the roster says not covered
    assert c.claims(LOCAL, True, "users", ["email"])  # the roster says covered
    gov = c.claims(PARENT, None, "users", ["agency_badge"])
    verdict = c.check(gov, subject(1), 10.0, approved=False)
    assert verdict.refused == "bulk_threshold_reached"
    assert {x.counter for x in verdict.crossings} == {"government_related"}


def test_devices_per_subject_scales_precise_geolocation() -> None:
    """§202.205(c) counts devices: with 3 devices per subject and a threshold of 7
    devices, 2 subjects (6 devices) pass and the third (9) crosses."""
    c = counters(parse_bulk_settings({"thresholds": {"precise_geolocation": 7},
                                      "devices_per_subject": 3}))
    claims = c.claims(PARENT, None, "users", ["where"])
    assert c.check(claims, subject(1), 1.0, approved=False).refused is None
    assert c.check(claims, subject(2), 2.0, approved=False).refused is None
    verdict = c.check(claims, subject(3), 3.0, approved=False)
    assert verdict.refused and {x.count for x in verdict.crossings} == {9}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store URL of one jurisdiction, SQLite or PostgreSQL (real servers)."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'records.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_workers_sharing_the_table_never_overshoot(store_url: str) -> None:
    """Counting stays cheap and safe: four workers (threads, each its own counters and
    connection) read 60 distinct subjects between them against one shared table
    (SQLite, PostgreSQL) with a threshold of 25: exactly 25 are let through, whoever
    asks; a subject a worker counted is answered from its memory, without the table."""
    s = parse_bulk_settings({"thresholds": {"covered_personal_identifiers": 25}})
    workers = [counters(s, open_bulk_ledger(store_url)) for _ in range(4)]
    allowed: list[str] = []
    lock = threading.Lock()

    def work(w: BulkCounters, mine: list[int]) -> None:
        claims = w.claims(PARENT, None, "users", ["email"])
        for n in mine:
            if w.check(claims, subject(n), 100.0 + n, approved=False).refused is None:
                with lock:
                    allowed.append(subject(n))

    threads = [threading.Thread(target=work, args=(w, list(range(i, 60, 4))))
               for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 25
    w = workers[0]
    claims = w.claims(PARENT, None, "users", ["email"])
    known = next(a for a in allowed if int(a[8:], 16) % 4 == 0)
    assert w.remembered(claims, known, 200.0)
    assert not w.remembered(claims, known, 200.0 + s.margin_s + 1)  # then the table again
    for x in workers:
        x.close()


def test_demo_schema_categories_give_counters() -> None:
    """The demo schema's annotations (item 1) give the counters: a payment row released
    whole is personal financial data and covered personal identifiers, combined."""
    cats = FieldCategories.from_schema(load_schema(demo_schema_path()))
    assert cats.counters("payments", ["amount_minor", "tax_id", "currency"]) == (
        "covered_personal_identifiers", "personal_financial",
        "combined:covered_personal_identifiers+personal_financial")
    assert cats.counters("messages", ["body"]) == ()


def test_the_auditor_states_its_own_schema_thresholds_and_countries(tmp_path: Path) -> None:
    """The audit's bulk rules come from the auditor's configuration (``schema``, ``bulk``,
    ``countries_of_concern`` per log), checked like the deployment's: an approvable
    'omic category is refused with ``config_invalid``; without ``schema`` no rules."""
    from bordergate.audit.auditor_config import parse_auditor_config
    from bordergate.audit.run import _bulk_rules
    from bordergate.tlog.note import Signer

    vkey = Signer.from_seed("us.test/log", bytes(32)).verifier().key_string
    (tmp_path / "schema.toml").write_bytes(demo_schema_path().read_bytes())
    base = f'[logs.us]\nlocation = "log"\nvkey = "{vkey}"\n'
    plain = parse_auditor_config(base.encode(), base_dir=tmp_path).logs["us"]
    assert _bulk_rules(plain) is None
    stated = parse_auditor_config(
        (base + 'schema = "schema.toml"\ncountries_of_concern = ["RU"]\n'
                'bulk = { thresholds = { personal_financial = 50 } }\n').encode(),
        base_dir=tmp_path).logs["us"]
    rules = _bulk_rules(stated)
    assert rules is not None and rules.countries == ("RU",)
    assert rules.settings.threshold("personal_financial") == 50
    assert rules.categories.counters("payments", ["amount_minor"]) == ("personal_financial",)
    with pytest.raises(ConfigError) as info:
        parse_auditor_config((base + 'bulk = { actions = { human_omic = "require_approval" } }\n'
                              ).encode(), base_dir=tmp_path)
    assert info.value.code == "config_invalid"
