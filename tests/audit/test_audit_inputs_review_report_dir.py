"""``audit verify-report`` reads a received report directory as it is, never through links.

Found by a review of what the auditor hands to others: ``read_report_dir`` listed
the directory with ``rglob`` and read every path for which ``is_file()`` held,
which follows symbolic links.  A package from someone else could so make the
reader's verifier read the reader's own files (any path a link names), and, run as
root as containers often do, block for ever on a link to ``/proc/kmsg`` (a
"regular" file of size 0 that never ends): ``verify-report`` never answered.  A
symbolic link or special file anywhere under the directory is now
``report_file_not_regular`` (exit 1), before anything is opened.

The package is a real signed report of a real witnessed log (test-only keys); the
second case runs the real ``bordergate`` command in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bordergate.cli import app
from tests.audit.test_audit_inputs_review_signed_report import (
    AUDITOR,
    Files,
    signed_report_files,
)
from tests.tlog.witnessed import bordergate


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """The files of a signed report of a witnessed 5-entry log."""
    return signed_report_files(tmp_path_factory.mktemp("package"))


def written(files: Files, directory: Path) -> Path:
    for rel, data in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(data)
    return directory


def test_a_link_in_a_received_package_is_refused_not_followed(signed: Files,
                                                             tmp_path: Path) -> None:
    """Evidence package (read offline by others): a symbolic link under the report
    directory, to a file of the reader's, is ``report_file_not_regular`` (exit 1): the
    verifier never reads a file outside the directory it was given; the same package
    without the link verifies."""
    report = written(signed, tmp_path / "report")
    key = ["--auditor-key", AUDITOR.verifier().key_string, "--json"]
    assert CliRunner().invoke(app, ["audit", "verify-report", str(report), *key]).exit_code == 0
    secret = tmp_path / "readers-own-file"
    secret.write_bytes(b"the reader's own bytes\n")
    (report / "evidence" / "extra").symlink_to(secret)
    result = CliRunner().invoke(app, ["audit", "verify-report", str(report), *key])
    assert result.exit_code == 1, result.output
    assert "report_file_not_regular" in result.output


@pytest.mark.skipif(not os.access("/proc/kmsg", os.R_OK),
                    reason="/proc/kmsg is readable only by root (containers often run so)")
def test_a_link_to_a_file_that_never_ends_does_not_hold_the_verifier(signed: Files,
                                                                     tmp_path: Path) -> None:
    """Evidence package: a link to ``/proc/kmsg`` under the report directory made
    ``bordergate audit verify-report`` (as root) wait for ever on it; it now answers
    ``report_file_not_regular`` at once (exit 1)."""
    report = written(signed, tmp_path / "report")
    (report / "evidence" / "kmsg").symlink_to("/proc/kmsg")
    try:
        proc = bordergate("audit", "verify-report", str(report), "--auditor-key",
                          AUDITOR.verifier().key_string, "--json", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("verify-report still reads /proc/kmsg after 30 s")
    assert proc.returncode == 1, proc.stderr.decode()
    out = json.loads(proc.stdout or proc.stderr)
    assert "report_file_not_regular" in json.dumps(out)


_CLI_UNDER_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from bordergate.cli import app
app(sys.argv[1:], prog_name="bordergate")
"""


def test_a_package_of_sparse_files_is_refused_before_it_is_read(signed: Files,
                                                                tmp_path: Path) -> None:
    """Evidence package: twenty sparse files of 255 MiB under ``evidence/`` (no disk
    used, 5 GiB apparent) made ``verify-report`` read them all into memory, each under
    the per-file cap: a ``MemoryError`` with a trace under this test's 2 GiB limit, the
    OOM killer without one.  Their sizes are now added up before anything is read, and
    the directory is ``report_too_large`` (exit 1)."""
    report = written(signed, tmp_path / "report")
    for n in range(20):
        with (report / "evidence" / f"pad-{n:02d}").open("wb") as pad:
            pad.truncate(255 << 20)
    proc = subprocess.run(
        [sys.executable, "-c", _CLI_UNDER_LIMIT, "audit", "verify-report", str(report),
         "--auditor-key", AUDITOR.verifier().key_string, "--json"], capture_output=True,
        timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr.decode()[-2000:]
    assert "report_too_large" in (proc.stdout + proc.stderr).decode()
