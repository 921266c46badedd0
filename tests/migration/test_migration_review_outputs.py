"""Review of what the migration writes outside the homes: the verification results
(the auditor's ``separation`` file) and the values it stores.

``migrate verify --out F`` is the file the custodians give the auditor
(docs/migration.md, ``[auditor] separation``); it listed every dirty subject left
in the source by legacy id.  A BLOB in a column mapped to a string field was
stored as its Python repr (``"b'...'"``) while the source's bytes were deleted.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from bordergate.config import Deployment
from bordergate.migration.legacy import MARKER, generate_legacy
from bordergate.migration.source import open_source


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", "migrate", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def test_the_verify_results_for_the_auditor_name_no_legacy_id(
        tmp_path: Path, deployment: Deployment) -> None:
    """Promise 7 for the file the auditor gets: after a migration that leaves dirty
    subjects in the source, ``migrate verify --out F`` names them by source row
    (``accounts/KEY``), and neither the file nor the printed results hold a legacy id
    or any value of the dataset (its marker)."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    made = generate_legacy(source, users=30, seed=41, dirty=2)
    source.close()
    ran = _cli("run", "--source", url, "--config", str(deployment.path), "--no-progress")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = tmp_path / "verify.json"
    checked = _cli("verify", "--source", url, "--config", str(deployment.path),
                   "--out", str(out), "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    written = out.read_bytes()
    assert MARKER not in written and MARKER.decode() not in checked.stdout
    keys = sorted(int(i.rsplit("-", 1)[1]) for i in made.dirty_accounts)
    subjects = json.loads(written)["dirty_in_source"]["subjects"]
    assert sorted(s["row"] for s in subjects) == sorted(f"accounts/{k}" for k in keys)


def test_a_blob_in_a_string_field_is_refused_not_stored_as_its_repr(
        tmp_path: Path, deployment: Deployment) -> None:
    """A value is stored as the source holds it or refused: a BLOB in the profile's
    ``bio`` column (a string field) makes the real ``migrate run`` refuse with the
    schema's ``wrong_type``, and the row and its subject's rows stay in the source."""
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    source = open_source(url)
    generate_legacy(source, users=10, seed=42, dirty=0)
    source.close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE profiles SET bio = ? WHERE id = 3", (b"lgcy-\x00\xff",))
    ran = _cli("run", "--source", url, "--config", str(deployment.path), "--no-progress",
               "--no-parallel", "--json")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["error"] == "wrong_type"
    source = open_source(url)
    try:
        assert source.query("SELECT bio FROM profiles WHERE id = 3") == [(b"lgcy-\x00\xff",)]
        assert source.query("SELECT COUNT(*) FROM accounts WHERE id = 3") == [(1,)]
    finally:
        source.close()
