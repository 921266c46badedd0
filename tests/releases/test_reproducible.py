"""The package digest is reproducible from a wheel (promise 6, docs/releases.md).

Building the wheel twice and installing each build into its own fresh virtual
environment gives the same package digest, and the documented shell pipeline
(``find | LC_ALL=C sort | sha256sum``) run inside the installed package
directory gives it too.  Slow: two wheel builds and two virtual environments.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = (
    "find . -mindepth 1 \\( -name '.*' -o -name __pycache__ \\) -prune -o -type f -printf '%P\\n'"
    " | LC_ALL=C sort | sed 's|^|./|'"
    " | xargs -r -d '\\n' sha256sum | sed 's|  \\./|  |' | sha256sum"
)
DIGEST = ("import bordergate, pathlib\n"
          "from bordergate.tree_digest import digest_directory\n"
          "d = pathlib.Path(bordergate.__file__).parent\n"
          "print(d)\nprint(digest_directory(d).digest)\n")


def run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False, env={**os.environ, "LC_ALL": "C"})
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_two_builds_in_two_fresh_venvs_give_one_package_digest(tmp_path: Path) -> None:
    """Promise 6: anyone rebuilding and installing the wheel recomputes the same digest."""
    digests = []
    for n in (1, 2):
        wheels = tmp_path / f"wheels{n}"
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", ROOT, "-w", wheels)
        (wheel,) = wheels.glob("bordergate-*.whl")
        venv = tmp_path / f"venv{n}"
        run(sys.executable, "-m", "venv", venv)
        run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", wheel)
        package_dir, digest = run(venv / "bin" / "python", "-c", DIGEST).split()
        assert Path(package_dir).is_relative_to(venv)
        shell = run("sh", "-c", PIPELINE, cwd=Path(package_dir)).split()[0]
        assert digest == "sha256:" + shell
        digests.append(digest)
    assert digests[0] == digests[1]
