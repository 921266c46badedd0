"""Exports and migration batches through the key service (issue 13, item 3), against
real processes.

The us sequencer, key service and gateway run as their own processes (the
``keyed`` deployment of :mod:`tests.keys.test_key_service_processes`); the gateway
holds no KEK.  An export grouped by a sealed field logs an ``export-intent``
entry (count and Merkle root of its subjects' pseudonyms) before asking for any
key, and the key service releases exactly those subjects' keys in one request
(``POST /v1/data-keys``, :mod:`bordergate.keys.bulk`).  A migration batch's new
data keys are created the same way against its logged ``migration`` entry.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bordergate.appender import AttributedLog
from bordergate.config import load_config
from bordergate.entries import encode_entry, parse_entry
from bordergate.keys.bulk import subjects_root
from bordergate.keys.keyring import SubjectCipher
from bordergate.log_access import log_signer, remote_appender
from bordergate.migration.evidence import MigrationFacts, migration_entry, records_root
from bordergate.migration.homes import open_home
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.mapping import demo_mapping_path, load_mapping
from bordergate.migration.plan import make_plan
from bordergate.migration.run import run_migration
from bordergate.migration.source import open_source
from bordergate.policy.entities import Principal
from bordergate.residency.schema import load_schema
from bordergate.residency.stores import open_record_store
from bordergate.residency.vault import Vault
from bordergate.subjects import SubjectId
from bordergate.tlog.promise import promise_for
from tests.gateway.deployment import Tokens
from tests.keys.test_key_service_processes import (
    EMAIL,
    LOCAL,
    KeyedDeployment,
    _no_kek_ring,
    audited,
    keyed_deployment,
)

ANALYST = Principal("kx-analyst", "ttus", "local", "us", frozenset({"analyst"}))
EXPORT = {"collection": "users", "group_by": "email", "purpose": "analytics_aggregate"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedDeployment]:
    """A TEST-ONLY deployment: us with sequencer, key service and gateway processes."""
    yield from keyed_deployment(tmp_path_factory.mktemp("keyed-export"))


def _intent(keyed: KeyedDeployment, subjects: list[str], *, t: float | None = None,
            outcome: str = "allow", count: int | None = None) -> tuple[bytes, bytes]:
    """Log an ``export-intent`` entry over ``subjects`` with the gateway's append
    credential (the test plays the gateway); the bytes the log holds and the log
    operator's promise."""
    p = keyed.pseudonyms()
    pseudonyms = [p.subject(s) for s in subjects]
    entry = encode_entry("export-intent", time.time() if t is None else t, {
        "principal": ANALYST.to_json(), **EXPORT, "outcome": outcome,
        "subjects": len(subjects) if count is None else count,
        "root": subjects_root(pseudonyms), "gateway": "us"})

    async def append() -> tuple[bytes, bytes]:
        assert keyed.us.log.sequencer is not None
        log: AttributedLog = remote_appender(keyed.us, keyed.us.log.sequencer.credential_file)
        try:
            _, promises = await log.append_promised([entry])
        finally:
            await log.aclose()
        return log.logged(entry), promises[0]
    return asyncio.run(append())


def _ask(keyed: KeyedDeployment, entry: bytes, promise: bytes,
         subjects: list[str]) -> httpx.Response:
    assert keyed.us.key_service is not None
    return httpx.post(keyed.us.key_service.url + "/v1/data-keys", headers=keyed.key_headers(),
                      timeout=60, json={
                          "operation": "export", "entry": base64.b64encode(entry).decode(),
                          "promise": promise.decode(),
                          "subjects": [{"subject": s, "wrapped": keyed.wrapped(s)}
                                       for s in subjects]})


@pytest.mark.slow
def test_export_by_a_sealed_field_through_the_key_service(keyed: KeyedDeployment) -> None:
    """Issue 13.3 (exports): an export grouped by a protected field, through a gateway
    that holds no KEK, answers 200; its export entry names the export-intent logged
    before it, whose count and root are over the subjects with an email; the key
    service logged one key-access entry per subject naming the intent, with its own
    credential; the audit matches them to the intent, and the export to its intent
    (no key_access_unjustified, no export_intent_mismatch)."""
    with httpx.Client(base_url=keyed.us.public_url, headers=Tokens().header(ANALYST, "us"),
                      timeout=60) as http:
        r = http.post("/v1/exports", json=EXPORT)
    assert r.status_code == 200, r.text
    index = r.json()["log"]["index"]
    entries = keyed.entries(index + 1)
    export = parse_entry(entries[index])
    intent_index = export.body["intent"]
    intent = parse_entry(entries[intent_index])
    assert intent.type == "export-intent" and intent_index < index
    p = keyed.pseudonyms()
    mine = {p.subject(keyed.subject), p.subject(keyed.other)}
    accesses = [parse_entry(e) for e in entries if b'"type":"key-access"' in e]
    released = {a.body["subject"] for a in accesses
                if a.body["operation"] == "export" and a.body["justified"] == intent_index}
    assert mine <= released and len(released) == intent.body["subjects"]
    assert intent.body["root"] == subjects_root(sorted(released))
    assert {a.body.get("appender") for a in accesses} == {"us-keys"}
    inspector = audited(keyed, entries)
    assert inspector.tally.key_events["key-access:export"] == len(released)
    kinds = {f.kind for f in inspector.findings}
    assert not kinds & {"key_promise_broken", "key_access_unjustified", "key_access_malformed",
                        "export_intent_mismatch"}


def test_bulk_releases_outside_the_logged_intent_are_refused(keyed: KeyedDeployment) -> None:
    """Issue 13.3 (exports): with the gateway's credential, a bulk request listing a
    subject outside the intent's root, a list whose count differs from the intent's,
    a stale intent, an intent promised by another log's key, a denied intent and a
    list over the maximum are each refused with their stable code; the intent's own
    subject list gets keys that open those subjects' records."""
    intent, promise = _intent(keyed, [keyed.subject])
    eu = load_config(keyed.config).jurisdiction("eu")
    foreign = promise_for(log_signer(eu), 0, intent, int(time.time() * 1000))
    stale = _intent(keyed, [keyed.subject], t=time.time() - 120)
    denied = _intent(keyed, [keyed.subject], outcome="deny")
    cases = {
        "key_justification_root_mismatch": (intent, promise, [keyed.other]),
        "key_justification_count_mismatch": (intent, promise, [keyed.subject, keyed.other]),
        "key_justification_stale": (*stale, [keyed.subject]),
        "key_justification_unproven": (intent, foreign, [keyed.subject]),
        "key_justification_denied": (*denied, [keyed.subject]),
        "key_bulk_too_large": (intent, promise, [keyed.subject] * 10_001),
    }
    for code, (entry, proof, subjects) in cases.items():
        r = _ask(keyed, entry, proof, subjects)
        assert (r.status_code, r.json()["code"]) == (403, code), r.text
    r = _ask(keyed, intent, promise, [keyed.subject])
    assert r.status_code == 200, r.text
    [answer] = r.json()["keys"]
    cipher = SubjectCipher(SubjectId.parse(keyed.subject), bytes.fromhex(answer["key_id"]),
                           answer["kek_version"], base64.b64decode(answer["data_key"]))
    store = open_record_store(keyed.us.store, jurisdiction="us")
    try:
        vault = Vault(load_schema(load_config(keyed.config).schema_path), store,
                      _no_kek_ring(store))  # type: ignore[arg-type]
        sealed = vault.get_sealed("users", keyed.subject, ["email"])
        assert vault.open_sealed(sealed, cipher).values["email"] == EMAIL
    finally:
        store.close()


def test_a_denied_export_logs_no_intent_and_releases_no_key(keyed: KeyedDeployment) -> None:
    """Issue 13.3 (exports): an export below the bundle's k_min is denied (403, logged
    as an export entry) before any intent is logged or key asked for: no
    export-intent and no key-access entry follows the denial."""
    with httpx.Client(base_url=keyed.us.public_url, headers=Tokens().header(ANALYST, "us"),
                      timeout=60) as http:
        r = http.post("/v1/exports", json={**EXPORT, "min_subjects": 1})
    assert r.status_code == 403, r.text
    index = r.json()["log"]["index"]
    entries = keyed.entries(index)
    before = {parse_entry(e).type for e in entries[index - 1:index]}
    assert parse_entry(entries[index]).body["outcome"] == "deny"
    assert "export-intent" not in before
    assert not any(b'"type":"key-access"' in e and b'"operation":"export"' in e
                   and parse_entry(e).body["justified"] >= index - 1 for e in entries)


def _migration_entry(keyed: KeyedDeployment, records: list[str], subjects: int
                     ) -> tuple[bytes, bytes]:
    """Log a migration batch's ``migration`` entry over ``records`` of ``users`` (the
    test plays the custodian's migration run); the bytes the log holds and the
    promise."""
    p = keyed.pseudonyms()
    facts = MigrationFacts(
        batch=1, attempt=1, table="accounts", collection="users", source="sqlite",
        legacy_keys="sha256:" + "0" * 64, records=len(records), subjects=subjects,
        new_subjects=subjects, records_root=records_root(p.record("users", r) for r in records),
        fields=("email",), dropped={})
    entry = migration_entry(facts, home="us", time=time.time(),
                            principal=ANALYST.to_json(), bundle="b", outcome="allow",
                            decisions=[])

    async def append() -> tuple[bytes, bytes]:
        assert keyed.us.log.sequencer is not None
        custodian = keyed.us.log.sequencer.custodian_credential_file
        assert custodian is not None  # the migration run appends as the custodian
        log: AttributedLog = remote_appender(keyed.us, custodian)
        try:
            _, promises = await log.append_promised([entry])
        finally:
            await log.aclose()
        return log.logged(entry), promises[0]
    return asyncio.run(append())


def test_a_migration_batch_gets_keys_only_for_the_records_its_entry_commits_to(
        keyed: KeyedDeployment) -> None:
    """Issue 13.3 (migration): the key service creates the data keys of a batch's
    new subjects against the batch's logged migration entry, recomputing the root
    over the record pseudonyms of the (subject, record) pairs it is sent; a pair
    list whose root does not match (one other record) is refused
    key_justification_root_mismatch, more subjects than the entry counts
    key_justification_count_mismatch, a key for a subject owning no listed record
    key_justification_subject_mismatch; the matching request gets one new key per
    subject, each logged as a key-access entry (operation migrate) naming the entry."""
    new = [str(SubjectId.mint("us")) for _ in range(2)]
    records = ["record:mig-1", "record:mig-2", "record:mig-3"]
    pairs = [{"subject": new[0], "record": records[0]},
             {"subject": new[0], "record": records[1]},
             {"subject": new[1], "record": records[2]}]
    entry, promise = _migration_entry(keyed, records, subjects=2)
    assert keyed.us.key_service is not None
    url = keyed.us.key_service.url + "/v1/data-keys"

    def ask(pairs: list[dict[str, str]], create: list[str]) -> httpx.Response:
        return httpx.post(url, headers=keyed.key_headers(), timeout=60, json={
            "operation": "migrate", "entry": base64.b64encode(entry).decode(),
            "promise": promise.decode(), "records": pairs, "create": create})
    other = [*pairs[:2], {"subject": new[1], "record": "record:not-in-batch"}]
    cases = {
        "key_justification_root_mismatch": (other, new),
        "key_justification_count_mismatch": (pairs, [*new, str(SubjectId.mint("us"))]),
        "key_justification_subject_mismatch": ([*pairs[:2], {**pairs[2], "subject": new[0]}],
                                               new),
    }
    for code, (listed, create) in cases.items():
        r = ask(listed, create)
        assert (r.status_code, r.json()["code"]) == (403, code), r.text
    r = ask(pairs, new)
    assert r.status_code == 200, r.text
    assert sorted(k["subject"] for k in r.json()["keys"]) == sorted(new)
    assert all(k["wrapped"] for k in r.json()["keys"])
    first = r.json()["key_access"]
    logged = [parse_entry(e) for e in keyed.entries(first + 1)[first:first + 2]]
    assert {(a.type, a.body["operation"], a.body["subject"]) for a in logged} == \
        {("key-access", "migrate", keyed.pseudonyms().subject(s)) for s in new}


def test_a_migration_run_creates_its_keys_through_the_key_service(
        keyed: KeyedDeployment, tmp_path: Path) -> None:
    """Issue 13.3 (migration): ``run_migration`` for a home whose deployment names a
    key service opens no KEK: each batch's migration entries are logged first, the
    key service creates the new subjects' data keys against them (one key-access
    entry, operation migrate, per new subject, naming a migration entry), and the
    records sealed with those keys open with keys the key service releases; the
    audit finds no unjustified key access."""
    deployment = load_config(keyed.config)
    source = open_source(f"sqlite:{tmp_path / 'legacy.db'}")
    generate_legacy(source, users=40, seed=13)
    schema = load_schema(deployment.schema_path)
    mapping = load_mapping(demo_mapping_path(), schema)
    plan = make_plan(source, mapping, schema, batch_subjects=20)
    home = open_home(deployment, "us")
    try:
        assert home.key_service is not None
        report = run_migration(source, mapping, plan, {"us": home}, schema=schema, only="us")
    finally:
        home.close()
        source.close()
    assert report.records > 0
    store = open_record_store(keyed.us.store, jurisdiction="us")
    try:
        migrated = next(v.record_id for v in store.field_values("users", "email")
                        if v.value is not None and str(v.subject) not in
                        (keyed.subject, keyed.other))
    finally:
        store.close()
    with httpx.Client(base_url=keyed.us.public_url, headers=Tokens().header(LOCAL, "us"),
                      timeout=60) as http:
        r = http.get(f"/v1/users/{migrated}", params={"purpose": "operations",
                                                      "fields": "email"})
    assert r.status_code == 200 and "@" in r.json()["fields"]["email"], r.text
    # once a checkpoint covers the read's entry: it was logged after every key the
    # migration had created (a checkpoint published earlier may not cover them all yet)
    entries = keyed.entries(r.json()["log"]["index"])
    parsed = [parse_entry(e) for e in entries]
    migrations = {i for i, e in enumerate(parsed) if e.type == "migration"}
    created = [e for e in parsed if e.type == "key-access" and e.body["operation"] == "migrate"]
    new = sum(e.body.get("new_subjects", 0) for e in parsed if e.type == "migration")
    assert new > 0 and len(created) == new
    assert {e.body["justified"] for e in created} <= migrations
    inspector = audited(keyed, entries)
    kinds = {f.kind for f in inspector.findings}
    assert not kinds & {"key_promise_broken", "key_access_unjustified", "key_access_malformed"}
