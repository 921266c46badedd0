"""Bulk key releases for an export: the ``export-intent`` entry that justifies them.

An export grouped by a sealed field opens one value per record, so it needs
data keys; it asks for the key of every subject with a record in the collection
(not only those with a value: that list, in the public log, would name who has
one).  Its ``export`` entry cannot justify
that: it records the noisy groups, known only after the keys are opened (and
receipts bind those).  So the gateway first logs an ``export-intent`` entry,
after the export's decision and before asking for any key, carrying:

* ``subjects``: how many subjects' keys the export needs;
* ``root``: the RFC 9162 Merkle root (hex) over their pseudonyms, sorted
  (:func:`subjects_root`: each pseudonym's UTF-8 bytes is one leaf, hashed by
  :mod:`bordergate.tlog.merkle`);
* the principal, collection, grouping field and purpose of the export, and
  ``outcome`` (``allow``: a denied export logs no intent and gets no key).

The key service then releases, in one request, the data keys of exactly the
listed subjects: :func:`check_export_justification` is its whole judgement (pure:
bytes and the time in).  The request must be justified like a single release
(present, proven by the log operator's promise or a witnessed checkpoint,
well-formed, allowed, fresh: the codes of :mod:`bordergate.keys.justification`),
be an ``export-intent`` entry (``key_justification_wrong_operation``) grouping
by a sealed field (``key_justification_no_sealed_field``), and

* list at most ``maximum`` subjects (``key_bulk_too_large``, before any
  signature is checked);
* list each subject once, as many as the intent counts
  (``key_justification_count_mismatch``);
* list exactly the subjects the intent's root commits to: the key service
  recomputes each pseudonym from the subject id and the root over them
  (``key_justification_root_mismatch``), so one subject outside the intent
  changes the root and nothing is released.

A migration batch's new data keys are created the same way against the batch's
logged ``migration`` entry (:func:`check_migration_justification`): its
``records_root`` is the same root over the batch's record pseudonyms, which the
key service recomputes from the (subject, record id) pairs it is sent.

The key service logs one ``key-access`` entry (operation ``export``, or
``migrate`` for a created key) per released key, naming the intent (or the
migration entry); the auditor recomputes the count and root over the
pseudonyms those entries name and matches them to the intent, and counts a
migration entry's created keys against its ``subjects``
(:mod:`bordergate.audit.rules.keyaccess`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bordergate.keys.justification import (
    CheckpointProof,
    JustificationRefused,
    TrustedCheckpoints,
    logged_entry,
)
from bordergate.tlog.merkle import leaf_hash, root_from_leaf_hashes
from bordergate.tlog.note import Verifier

__all__ = ["BULK_REFUSAL_CODES", "MAX_EXPORT_SUBJECTS", "JustifiedBulk",
           "check_export_justification", "check_migration_justification", "subjects_root"]

#: The most subjects one bulk release may list, unless configured otherwise.
MAX_EXPORT_SUBJECTS = 10_000
#: The refusal codes :func:`check_export_justification` adds to the single release's.
BULK_REFUSAL_CODES = ("key_bulk_too_large", "key_justification_count_mismatch",
                      "key_justification_root_mismatch")


def subjects_root(pseudonyms: Sequence[str]) -> str:
    """Hex RFC 9162 Merkle root over the sorted subject pseudonyms (one leaf each)."""
    return root_from_leaf_hashes([leaf_hash(p.encode()) for p in sorted(pseudonyms)]).hex()


@dataclass(frozen=True)
class JustifiedBulk:
    """A checked export intent: what each of the key service's ``key-access`` entries names."""

    index: int  # of the intent in the log
    leaf_hash: bytes  # of the intent, promised or proven
    evidence: str  # "promise" or "checkpoint"


def check_export_justification(*, pseudonyms: Sequence[str], entry: bytes | None,
                               promise: bytes | None, verifier: Verifier, now: float,
                               window: float, maximum: int = MAX_EXPORT_SUBJECTS,
                               sealed: Mapping[str, frozenset[str]] | None = None,
                               proof: CheckpointProof | None = None,
                               trusted: TrustedCheckpoints | None = None) -> JustifiedBulk:
    """Judge one bulk request's justification (see the module docstring for the rules).

    Args:
        pseudonyms: the pseudonyms of the listed subjects, in request order,
            computed by the key service from the subject ids.
        maximum: the most subjects one request may list.
        Others: as :func:`bordergate.keys.justification.check_justification`.

    Raises:
        JustificationRefused: a ``key_justification_*`` code or ``key_bulk_too_large``.
    """
    if len(pseudonyms) > maximum:
        raise JustificationRefused(f"a bulk release lists at most {maximum} subjects",
                                   code="key_bulk_too_large")
    index, leaf, promised_at, parsed = logged_entry(
        entry, promise, proof, verifier, trusted, expected="export-intent",
        needs="an export needs an 'export-intent' entry",
        missing="a bulk release needs its logged export-intent entry and the log's promise "
                "of inclusion (or an inclusion proof)")
    body = parsed.body
    if body.get("outcome") != "allow":
        raise JustificationRefused("the export intent records a denied decision",
                                   code="key_justification_denied")
    if sealed is not None and \
            body.get("group_by") not in sealed.get(str(body.get("collection")), frozenset()):
        raise JustificationRefused("the export intent groups by no sealed field",
                                   code="key_justification_no_sealed_field")
    count = body.get("subjects")
    if len(set(pseudonyms)) != len(pseudonyms) or type(count) is not int or \
            count != len(pseudonyms):
        raise JustificationRefused(f"the request lists {len(pseudonyms)} subjects (each "
                                   f"once), the intent counts {count!r}",
                                   code="key_justification_count_mismatch")
    if subjects_root(pseudonyms) != body.get("root"):
        raise JustificationRefused("the listed subjects are not the intent's subjects",
                                   code="key_justification_root_mismatch")
    if abs(now - parsed.time) > window or \
            (promised_at is not None and abs(now - promised_at) > window):
        raise JustificationRefused(f"the export intent is older than {window:g} s",
                                   code="key_justification_stale")
    return JustifiedBulk(index, leaf, "promise" if promised_at is not None else "checkpoint")


def check_migration_justification(*, collection_records: Sequence[str], subjects: int,
                                  entry: bytes | None, promise: bytes | None,
                                  verifier: Verifier, now: float, window: float,
                                  record_pseudonym: Callable[[str, str], str],
                                  maximum: int = MAX_EXPORT_SUBJECTS,
                                  proof: CheckpointProof | None = None,
                                  trusted: TrustedCheckpoints | None = None
                                  ) -> JustifiedBulk:
    """Judge a migration batch's request to create data keys (``POST /v1/data-keys``,
    operation ``migrate``): ``collection_records`` are the record ids the request
    pairs with subjects, ``subjects`` how many distinct subjects it asks keys for.

    The entry must be an allowed ``migration`` entry (proven, fresh, as for a
    release); the key service recomputes each record's pseudonym in the entry's
    collection (``record_pseudonym(collection, record_id)``) and the root over them:
    as many records as the entry's ``records`` (each once), with its
    ``records_root`` (else ``key_justification_count_mismatch`` /
    ``key_justification_root_mismatch``); at most the entry's ``subjects``
    distinct subjects (``key_justification_count_mismatch``); at most ``maximum``
    records (``key_bulk_too_large``).

    Raises:
        JustificationRefused: as :func:`check_export_justification`.
    """
    if len(collection_records) > maximum:
        raise JustificationRefused(f"a bulk release lists at most {maximum} records",
                                   code="key_bulk_too_large")
    index, leaf, promised_at, parsed = logged_entry(
        entry, promise, proof, verifier, trusted, expected="migration",
        needs="a migration needs a 'migration' entry",
        missing="a migration's keys need its logged migration entry and the log's promise "
                "of inclusion (or an inclusion proof)")
    body = parsed.body
    if body.get("outcome") != "allow":
        raise JustificationRefused("the migration entry records a denied decision",
                                   code="key_justification_denied")
    collection = str(body.get("collection"))
    if len(set(collection_records)) != len(collection_records) or \
            body.get("records") != len(collection_records) or \
            type(body.get("subjects")) is not int or subjects > body["subjects"]:
        raise JustificationRefused(
            f"the request pairs {len(collection_records)} records with {subjects} subjects; "
            f"the entry counts {body.get('records')!r} records of {body.get('subjects')!r}",
            code="key_justification_count_mismatch")
    root = subjects_root([record_pseudonym(collection, r) for r in collection_records])
    if root != body.get("records_root"):
        raise JustificationRefused("the listed records are not the batch's records",
                                   code="key_justification_root_mismatch")
    if abs(now - parsed.time) > window or \
            (promised_at is not None and abs(now - promised_at) > window):
        raise JustificationRefused(f"the migration entry is older than {window:g} s",
                                   code="key_justification_stale")
    return JustifiedBulk(index, leaf, "promise" if promised_at is not None else "checkpoint")
