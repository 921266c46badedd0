"""The key service's judgement of a bulk release (issue 13, item 3), pure: an export's
keys only for exactly the subjects its logged export-intent commits to, a
migration batch's new keys only for the records its migration entry commits to;
each refusal has its stable code."""

from __future__ import annotations

from bordergate.entries import encode_entry
from bordergate.keys.bulk import (
    BULK_REFUSAL_CODES,
    check_export_justification,
    check_migration_justification,
    subjects_root,
)
from bordergate.keys.justification import JustificationRefused
from bordergate.tlog.note import Signer
from bordergate.tlog.promise import promise_for

LOG = Signer.from_seed("us.test/log", b"\x01" * 32)  # TEST-ONLY
NOW = 1_800_000_000.0
SUBJECTS = ["subject:" + c * 64 for c in "abc"]
SEALED = {"users": frozenset({"email"})}


def _intent(*, subjects: list[str] = SUBJECTS, group_by: str = "email",
            kind: str = "export-intent", t: float = NOW) -> bytes:
    body = {"principal": {"id": "p"}, "collection": "users", "group_by": group_by,
            "purpose": "analytics_aggregate", "outcome": "allow", "subjects": len(subjects),
            "root": subjects_root(subjects)}
    if kind == "access":
        body.update({"subject": subjects[0], "record": "r", "bundle": "b", "decisions": []})
    return encode_entry(kind, t, body)


def _export(entry: bytes, pseudonyms: list[str], *, promise: bytes | None = None,
            maximum: int = 10) -> str:
    try:
        check_export_justification(
            pseudonyms=pseudonyms, entry=entry,
            promise=promise_for(LOG, 7, entry, int(NOW * 1000)) if promise is None else promise,
            verifier=LOG.verifier(), now=NOW, window=30, maximum=maximum, sealed=SEALED)
    except JustificationRefused as exc:
        return exc.code
    return "released"


def test_an_export_gets_exactly_its_intents_subjects() -> None:
    """The intent's subjects (any order) are released; a subject more or less, one
    listed twice, one swapped for another, a public grouping field, another entry
    type, no promise, or more than the maximum are each refused with their code."""
    assert _export(_intent(), list(reversed(SUBJECTS))) == "released"
    outsider = "subject:" + "d" * 64
    cases = {
        "key_justification_count_mismatch": (_intent(), SUBJECTS[:2]),
        "key_justification_root_mismatch": (_intent(), [*SUBJECTS[:2], outsider]),
        "key_justification_no_sealed_field": (_intent(group_by="handle"), SUBJECTS),
        "key_justification_wrong_operation": (_intent(kind="access"), SUBJECTS),
        "key_justification_stale": (_intent(t=NOW - 31), SUBJECTS),
    }
    for code, (entry, listed) in cases.items():
        assert _export(entry, listed) == code, code
    assert _export(_intent(), [*SUBJECTS[:2], SUBJECTS[0]]) == "key_justification_count_mismatch"
    assert _export(_intent(), SUBJECTS, promise=b"") == "key_justification_missing"
    assert _export(_intent(), SUBJECTS, maximum=2) == "key_bulk_too_large"
    assert set(BULK_REFUSAL_CODES) <= {*cases, "key_bulk_too_large"}


def test_a_migration_batch_gets_keys_only_for_its_records() -> None:
    """The records the migration entry's root commits to, with at most its subject
    count, pass; another record, a missing one or one subject more are refused."""
    records = ["m1-a", "m1-b"]

    def pseudonym(collection: str, record: str) -> str:
        return f"record:{collection}/{record}"
    entry = encode_entry("migration", NOW, {
        "batch": 1, "collection": "users", "records": 2, "subjects": 1, "outcome": "allow",
        "records_root": subjects_root([pseudonym("users", r) for r in records])})
    promise = promise_for(LOG, 3, entry, int(NOW * 1000))

    def judge(listed: list[str], subjects: int) -> str:
        try:
            check_migration_justification(
                collection_records=listed, subjects=subjects, entry=entry, promise=promise,
                verifier=LOG.verifier(), now=NOW, window=30, record_pseudonym=pseudonym)
        except JustificationRefused as exc:
            return exc.code
        return "created"
    assert judge(records, 1) == "created"
    assert judge(["m1-a", "m1-c"], 1) == "key_justification_root_mismatch"
    assert judge(["m1-a"], 1) == "key_justification_count_mismatch"
    assert judge(records, 2) == "key_justification_count_mismatch"
