"""The auditor on a real migration's logs: clean evidence passes, a deletion the log's
migration entries do not account for is found (audit/rules/migration.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bordergate.audit.inspection import open_inspector
from bordergate.config import Deployment
from bordergate.entries import canonical_json, encode_entry
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.source import open_source
from bordergate.migration.verify import log_entries
from tests.audit.loggen import REVIEWERS, LogGenerator
from tests.migration.conftest import migrate
from tests.releases.keys import review_policy


def _findings(entries: list[bytes], reference: bool) -> list[str]:
    inspector = open_inspector(reference=reference, jurisdiction="eu", origin="eu.test/log",
                               bundles=LogGenerator().lookup,
                               reviewers=review_policy(REVIEWERS, 2), tolerance=5.0)
    inspector.feed_all(0, entries)
    return [f.kind for f in inspector.finish().findings]


@pytest.mark.parametrize("reference", [True, False], ids=["reference", "accelerated"])
def test_migration_evidence_audits_clean_and_an_unmatched_deletion_is_found(
        tmp_path: Path, deployment: Deployment, reference: bool) -> None:
    """Promises 5 and 7, issue 15: the migration and legacy-deletion entries of a real run
    raise no finding (no personal data, consistent counts and digests); a legacy-deletion
    claiming more rows than its batch's migration entries is `legacy_deletion_unmatched`."""
    source = open_source(f"sqlite:{tmp_path / 'legacy.db'}")
    generate_legacy(source, users=40, seed=8)
    migrate(source, deployment, batch_subjects=20)
    source.close()
    entries = [canonical_json(dict(e.body)) for _, e in log_entries(deployment, "eu")]
    assert entries and _findings(entries, reference) == []
    last = json.loads(entries[-1])
    assert last["type"] == "legacy-deletion"
    body = {k: v for k, v in last.items() if k not in ("v", "type", "time")}
    table = sorted(body["tables"])[0]
    body["tables"][table]["rows"] += 1
    body["rows"] += 1
    forged = encode_entry("legacy-deletion", 1_900_000_000, body)
    assert _findings([*entries, forged], reference) == ["legacy_deletion_unmatched"]
