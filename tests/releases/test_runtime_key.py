"""The key of a cached runtime (``releases.runtime_build.runtime_key``): what goes
into the runtime's wheel changes it, so a cache never hands back a stale runtime.

Found by a fresh clone's CI: the package's files and the pins were the key, but the
wheel's METADATA holds ``pyproject.toml``'s metadata and the README; a change to
either left the key as it was, and the cached runtime's digest differed from a new
build's (tests/releases/test_runtime_attestation.py::test_two_runtime_builds_give_one_digest).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.releases.runtime_build import runtime_key


def _tree(root: Path) -> Path:
    """A TEST-ONLY source tree: src layout, a pyproject naming its readme."""
    pkg = root / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    (root / "pyproject.toml").write_text('[project]\nname = "pkg"\nversion = "1"\n'
                                         'readme = "README.md"\n')
    (root / "README.md").write_text("# pkg\n")
    return pkg


@pytest.mark.parametrize("changed", ["src/pkg/__init__.py", "pyproject.toml", "README.md"])
def test_what_goes_into_the_wheel_changes_the_key(tmp_path: Path, changed: str) -> None:
    """Promise 6 (reproducible releases): the package, the project metadata and the
    readme each change the cached runtime's key; an unrelated file does not."""
    pkg = _tree(tmp_path)
    before = runtime_key(pkg)
    (tmp_path / "notes.txt").write_text("not in the wheel\n")
    assert runtime_key(pkg) == before
    target = tmp_path / changed
    target.write_text(target.read_text() + "# changed\n")
    assert runtime_key(pkg) != before


def test_a_readme_named_as_a_table_is_covered(tmp_path: Path) -> None:
    """Behaviour: ``readme = {file = ...}`` (PEP 621's table form) names the file too."""
    pkg = _tree(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "pkg"\nversion = "1"\n'
                                             'readme = {file = "README.md", '
                                             'content-type = "text/markdown"}\n')
    before = runtime_key(pkg)
    (tmp_path / "README.md").write_text("# pkg, changed\n")
    assert runtime_key(pkg) != before
