"""Keys review: a key or credential file is written whole or not at all.

The promise (docs/config.md): key and credential files are created once, mode
0600, and never overwritten.  ``write_key`` opened the final path and wrote into
it, so a write cut short (a full disk, a file-size limit, a crash before the page
cache reached the disk) left a truncated key there, which every later run kept
("never overwrites"): ``log credential`` could no longer issue that credential,
``gateway init`` kept a cut log key or secret for ever.  The credential list was
written through a fixed ``LIST.part`` name, so a link planted there had the list
written over its target.  The commands run in their own processes.

TEST-ONLY credentials, created in the test's temporary directory.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from bordergate.tlog.credentials import read_credential, read_credential_list


def _credential(tmp: Path, *, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def cap() -> None:
        if limit is not None:  # as a full disk would cut the write
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([sys.executable, "-B", "-m", "bordergate", "log", "credential",
                           "us-gw-2", "--out", str(tmp / "us-gw-2.cred"), "--credentials",
                           str(tmp / "appenders.txt")], check=False, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ), preexec_fn=cap)


def test_a_credential_write_cut_short_leaves_no_file(tmp_path: Path) -> None:
    """Key and credential files are whole or absent: a ``log credential`` whose write
    fails part way leaves no credential file, and the next run issues the credential,
    which the list then accepts."""
    cut = _credential(tmp_path, limit=30)
    assert cut.returncode != 0
    left = tmp_path / "us-gw-2.cred"
    assert not left.exists(), f"a cut credential was left: {left.read_bytes()!r}"
    again = _credential(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    credential = read_credential(left)
    assert len(credential.secret) == 43  # 32 random bytes, whole
    listed = read_credential_list(tmp_path / "appenders.txt")
    assert listed.authenticate(f"Bearer {credential.token}") == "us-gw-2"
    assert oct(left.stat().st_mode & 0o777) == "0o600"


def test_a_link_planted_at_the_list_part_name_is_not_written_through(tmp_path: Path) -> None:
    """The log operator's files are written only where named: a symbolic link planted
    at ``appenders.txt.part`` (pointing at the operator's log key) is not followed by
    ``log credential``; the key is unchanged and the list is a regular file."""
    log_key = tmp_path / "log.key"
    log_key.write_text("PRIVATE+KEY+TEST-ONLY-stand-in\n")
    log_key.chmod(0o600)
    (tmp_path / "appenders.txt.part").symlink_to(log_key)
    done = _credential(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert log_key.read_text() == "PRIVATE+KEY+TEST-ONLY-stand-in\n"
    assert not (tmp_path / "appenders.txt").is_symlink()
    assert "us-gw-2" in read_credential_list(tmp_path / "appenders.txt").ids


@pytest.mark.parametrize("command", [
    ["witness", "init", "--name", "witness.test/w1"],
    ["approval", "keygen"],
    ["principal", "keygen"],
], ids=["witness-init", "approval-keygen", "principal-keygen"])
def test_a_private_key_write_cut_short_leaves_no_file(tmp_path: Path,
                                                      command: list[str]) -> None:
    """Key files are whole or absent, and faults fail with a stable code: a key
    command whose write fails part way exits with an error (no traceback) and
    leaves no key file, so the next run writes the key."""
    key = tmp_path / "private.key"

    def run(limit: int | None) -> subprocess.CompletedProcess[str]:
        def cap() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return subprocess.run([sys.executable, "-B", "-m", "bordergate", *command,
                               "--key-file", str(key)], check=False, capture_output=True,
                              text=True, timeout=120, env=dict(os.environ), preexec_fn=cap)

    cut = run(30)
    assert cut.returncode != 0
    assert "Traceback" not in cut.stderr, cut.stderr[-2000:]
    assert not key.exists(), f"a cut key was left: {key.read_bytes()!r}"
    again = run(None)
    assert again.returncode == 0, again.stdout + again.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
