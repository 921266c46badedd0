"""Keys review: a missing KEK is never replaced by a new one while data keys need it.

The promise (docs/design.md, promises 1 and 8; docs/config.md: ``gateway init``
"never overwrites"): a subject's data key is stored wrapped under a KEK version,
and only that KEK opens it.  ``gateway init`` and ``keys init --config`` created
KEK version 1 whenever the backend had none, so with the key file missing (an
unmounted volume, a mistyped path, a file moved away) or another PKCS#11 token,
they made a *new* version 1 over a store whose data keys were wrapped under the
old one: no error, ``keys status`` healthy, every stored subject unreadable, and
new subjects sealed under a KEK the old file's return would clash with.  Both
commands are run here as the custodian would, in their own processes.

TEST-ONLY keys: everything is created in the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from bordergate.keys.backends.keyfile import LocalKeyFile
from bordergate.keys.keyring import KeyRing
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.subjects import SubjectId


def _bordergate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", *args], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))


def test_init_refuses_to_replace_a_missing_kek_the_store_still_needs(tmp_path: Path) -> None:
    """Promise 8 and ``gateway init`` never overwrites: with data keys stored under
    KEK version 1 and the key file gone, ``gateway init`` and ``keys init --config``
    refuse (``kek_missing_for_stored_keys``, exit 2) and create no KEK; the file put
    back still opens every stored data key."""
    config = tmp_path / "bordergate.toml"
    config.write_text(resources.files("bordergate").joinpath("demo_config.toml")
                      .read_text(encoding="utf-8"))
    first = _bordergate("gateway", "init", "--config", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    kek = tmp_path / "data" / "us" / "kek.json"
    store = SqliteRecordStore(tmp_path / "data" / "us" / "records.db", jurisdiction="us")
    subject = SubjectId.mint("us")
    try:
        cipher, _ = KeyRing(LocalKeyFile(kek, jurisdiction="us"), store).cipher_for(
            subject, create=True)
        sealed = cipher.seal(b"value", b"aad")
    finally:
        store.close()

    away = tmp_path / "kek.json.away"
    shutil.move(kek, away)  # the key volume is not mounted
    again = _bordergate("gateway", "init", "--config", str(config), cwd=tmp_path)
    assert not kek.exists(), f"gateway init made a new KEK file: {again.stdout}"
    assert again.returncode == 2, again.stdout + again.stderr
    assert "kek_missing_for_stored_keys" in again.stdout + again.stderr

    keys_init = _bordergate("keys", "init", "-j", "us", "--config", str(config), cwd=tmp_path)
    assert keys_init.returncode == 2, keys_init.stdout + keys_init.stderr
    assert "kek_missing_for_stored_keys" in keys_init.stdout + keys_init.stderr
    assert not kek.exists() or LocalKeyFile(kek, jurisdiction="us").versions() == ()

    if kek.exists():
        kek.unlink()
    shutil.move(away, kek)  # the volume is back: nothing was lost
    store = SqliteRecordStore(tmp_path / "data" / "us" / "records.db", jurisdiction="us")
    try:
        reopened, _ = KeyRing(LocalKeyFile(kek, jurisdiction="us"), store).cipher_for(subject)
        assert reopened.open(sealed, b"aad") == b"value"
    finally:
        store.close()
