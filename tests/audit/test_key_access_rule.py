"""The audit's key-access rule (issue 13, item 3): a promise the log did not keep is
critical; a key released for an entry that is not an allowed decision of the
operation about the subject is unjustified; honest releases raise nothing."""

from __future__ import annotations

import base64
import json

from bordergate.audit.findings import FINDING_KINDS
from bordergate.audit.inspection import ReferenceInspector, open_inspector
from bordergate.audit.rules import keyaccess
from bordergate.entries import canonical_json, encode_entry
from bordergate.keys.bulk import subjects_root
from bordergate.tlog import merkle
from tests.audit.scenario import LOCAL, PARENT, PSEUDONYM, T0, EntryFactory
from tests.releases.keys import review_policy

FACTORY = EntryFactory()


def _audit(entries: list[bytes]) -> ReferenceInspector:
    inspector = open_inspector(reference=True, jurisdiction="us", origin="us.test/log",
                               bundles=FACTORY.lookup, reviewers=review_policy())
    for index, data in enumerate(entries):
        inspector.feed(index, data)
    inspector.finish()
    keyaccess.settle_key_claims(inspector, entries.__getitem__)
    return inspector


def _key_access(justified: int, promised: bytes, *, subject: str = PSEUDONYM,
                operation: str = "read") -> bytes:
    return encode_entry("key-access", T0 + 1, {
        "jurisdiction": "us", "operation": operation, "subject": subject,
        "justified": justified, "by": "key-service",
        "leaf": base64.b64encode(merkle.leaf_hash(promised)).decode()})


def _kinds(inspector: ReferenceInspector, prefix: str = "key_") -> set[str]:
    return {f.kind for f in inspector.findings if f.kind.startswith(prefix)}


def test_honest_key_access_is_matched_to_its_decision() -> None:
    """A key-access entry naming an allowed access entry about its subject, with
    that entry's leaf hash, raises nothing and is counted."""
    access = FACTORY.access(LOCAL, ["email"], t=T0)
    inspector = _audit([access, _key_access(0, access)])
    assert _kinds(inspector) == set()
    assert inspector.tally.key_events["key-access:read"] == 1


def test_a_promise_the_log_did_not_keep_is_critical() -> None:
    """The log operator promised entry 0 was X, the key service released a key on
    that promise, and the log holds Y at 0: key_promise_broken, critical."""
    promised = FACTORY.access(LOCAL, ["email"], t=T0)
    held = FACTORY.access(LOCAL, ["phone"], t=T0)
    inspector = _audit([held, _key_access(0, promised)])
    assert _kinds(inspector) == {"key_promise_broken"}
    assert FINDING_KINDS["key_promise_broken"].severity == "critical"


def test_keys_released_for_another_subject_or_operation_are_unjustified() -> None:
    """A key-access entry about another subject than its entry, or a write key
    justified by a read, is key_access_unjustified."""
    access = FACTORY.access(LOCAL, ["email"], t=T0)
    other = _key_access(0, access, subject="subject:" + "cd" * 32)
    assert _kinds(_audit([access, other])) == {"key_access_unjustified"}
    write = _key_access(0, access, operation="write")
    assert _kinds(_audit([access, write])) == {"key_access_unjustified"}


def _intent(subjects: list[str], outcome: str = "allow") -> bytes:
    return encode_entry("export-intent", T0, {
        "principal": LOCAL.to_json(), "collection": "users", "group_by": "email",
        "purpose": "analytics_aggregate", "outcome": outcome, "subjects": len(subjects),
        "root": subjects_root(subjects), "gateway": "us"})


def test_export_keys_are_matched_to_the_subjects_their_intent_commits_to() -> None:
    """A bulk (export) release: key-access entries naming an allowed export-intent
    raise nothing when their pseudonyms are exactly the intent's subjects (count and
    root); a key of a subject outside the intent, fewer subjects than it counts, or
    a denied intent is key_access_unjustified."""
    subjects = ["subject:" + c * 64 for c in "abc"]
    intent = _intent(subjects)
    honest = [intent, *(_key_access(0, intent, subject=s, operation="export")
                        for s in subjects)]
    inspector = _audit(honest)
    assert _kinds(inspector) == set()
    assert inspector.tally.key_events["key-access:export"] == 3
    outside = [*honest, _key_access(0, intent, subject="subject:" + "d" * 64,
                                    operation="export")]
    assert _kinds(_audit(outside)) == {"key_access_unjustified"}
    assert _kinds(_audit(honest[:-1])) == {"key_access_unjustified"}
    denied = _intent(subjects, outcome="deny")
    assert _kinds(_audit([denied, _key_access(0, denied, subject=subjects[0],
                                              operation="export")])) == \
        {"key_access_unjustified"}


def test_migration_keys_are_bounded_by_their_entry_subjects() -> None:
    """Keys a key service created for a migration batch (operation migrate) naming
    an allowed migration entry raise nothing up to the entry's subject count; one
    more subject is key_access_unjustified."""
    migration = encode_entry("migration", T0, {
        "batch": 1, "collection": "users", "records": 2, "subjects": 2,
        "records_root": "00" * 32, "outcome": "allow"})
    keys = [_key_access(0, migration, subject="subject:" + c * 64, operation="migrate")
            for c in "abc"]
    assert _kinds(_audit([migration, *keys[:2]])) == set()
    assert _kinds(_audit([migration, *keys])) == {"key_access_unjustified"}


def test_an_export_must_name_an_earlier_allowed_intent_of_its_own() -> None:
    """An export entry naming its export-intent (principal, collection and grouping
    field the same) raises nothing; one naming an intent of another principal, an
    index that is no intent, or an intent another export already named is
    export_intent_mismatch."""
    subjects = ["subject:" + "a" * 64]
    intent = _intent(subjects)
    export = json.loads(FACTORY.export(LOCAL, "email", 50, t=T0))
    named = canonical_json({**export, "intent": 0})
    assert _kinds(_audit([intent, named]), "export_") == set()
    assert _kinds(_audit([intent, named, named]), "export_") == {"export_intent_mismatch"}
    elsewhere = canonical_json({**export, "intent": 1})
    assert _kinds(_audit([intent, FACTORY.access(LOCAL, ["email"], t=T0), elsewhere]),
                  "export_") == {"export_intent_mismatch"}
    other = json.loads(FACTORY.export(PARENT, "email", 50, t=T0))
    assert _kinds(_audit([intent, canonical_json({**other, "intent": 0})]), "export_") == \
        {"export_intent_mismatch"}
