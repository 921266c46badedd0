"""README's "Deploying for real", run exactly as written (issue 16, items 4 and 7).

The README's code blocks tagged ``sh walkthrough`` (and, for the PostgreSQL and
SoftHSM2 variant, ``sh walkthrough-hsm``) are joined in document order into one
bash script and run command by command (``set -euo pipefail``: the first command
that fails fails the test) in an empty directory, with this checkout's
``bordergate`` first on ``PATH``: the production template, every party's key
(printed keys captured into shell variables), ``gateway init``, the witness, the
log operator and the key service as real processes, a signed roster, a built
runtime, a release proposed and approved by two reviewers, the gateway started
from its runtime under the production profile, and a request answered.
Background processes the walkthrough starts are stopped when the script exits.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
_BLOCK = re.compile(r"^```sh (walkthrough(?:-[a-z]+)?)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_PROLOGUE = """set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
set -x
"""


def walkthrough(*variants: str) -> str:
    """The README's ``sh walkthrough`` blocks and those of ``variants``, in order."""
    wanted = {"walkthrough", *(f"walkthrough-{v}" for v in variants)}
    blocks = [body for tag, body in _BLOCK.findall((ROOT / "README.md").read_text())
              if tag in wanted]
    assert blocks, "README.md has no walkthrough blocks"
    return "".join(blocks)


def run_walkthrough(directory: Path, script: str, env: dict[str, str]) -> str:
    """Run ``script`` with bash in ``directory``; its output (stdout and trace)."""
    (directory / "walkthrough.sh").write_text(_PROLOGUE + script)
    done = subprocess.run(
        ["bash", "walkthrough.sh"], cwd=directory, capture_output=True, text=True,
        timeout=1500, check=False,
        env={**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-12000:]
    return output


def _check_served(output: str) -> None:
    assert re.search(r'\{"subject":"us-[a-z2-7]{26}","home":"us"\}', output), output[-6000:]
    assert "KEK versions: 1" in output, output[-6000:]
    assert "by us-bob recorded at entry" in output, output[-6000:]


def test_readme_blocks_are_tagged_in_order() -> None:
    """Issue 16 item 7: the README keeps its two set-up commands first, and its
    walkthrough is tagged, captures printed keys into variables and starts the
    gateway under the production template (the fast half of the test below)."""
    readme = (ROOT / "README.md").read_text()
    first = readme.split("```", 2)[1]
    assert "make demo" in first and "make test" in first
    script = walkthrough("hsm")
    assert "bordergate gateway template --out deploy" in script
    assert "REVIEWER_1_KEY=$(bordergate release keygen" in script
    assert "runtime/env/bin/bordergate gateway serve" in script
    assert (ROOT / "src/bordergate/production_template.toml").read_text().count(
        'profile = "production"') == 1


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_walkthrough_with_sqlite_and_a_key_file(tmp_path: Path) -> None:
    """Issue 16 items 4 and 7: README's walkthrough, as written, brings a production
    gateway (SQLite store, KEK file) from the template to an answered request."""
    _check_served(run_walkthrough(tmp_path, walkthrough(), {}))
    assert (tmp_path / "deploy/data/us/records.db").exists()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(1800)
def test_walkthrough_with_postgresql_and_softhsm2(tmp_path: Path,
                                                   postgres_server: PostgresServer) -> None:
    """Issue 16 items 4 and 7: the same walkthrough with its PostgreSQL and SoftHSM2
    blocks (a real server and softhsm2-util) serves too, its KEK in the token and its
    records in PostgreSQL, the PIN read from BORDERGATE_PKCS11_PIN."""
    if shutil.which("softhsm2-util") is None:
        pytest.fail("softhsm2-util is missing: `make system-packages` installs softhsm2")
    url = postgres_server.database()
    output = run_walkthrough(tmp_path, walkthrough("hsm"), {"DATABASE_URL": url})
    _check_served(output)
    assert "(pkcs11 backend)" in output, output[-6000:]
    assert not (tmp_path / "deploy/data/us/records.db").exists()
    assert not (tmp_path / "deploy/data/us/kek.json").exists()
