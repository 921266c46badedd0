"""Release manifests: contents, release ids, parsing untrusted manifests, diffs (promise 6)."""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

from bordergate.entries import canonical_json
from bordergate.errors import VerificationError
from bordergate.releases.manifest import (
    Dependency,
    build_manifest,
    dependency_records,
    diff_manifests,
    parse_manifest,
    release_id,
    source_revision,
)
from bordergate.tree_digest import digest_directory
from tests.releases.conftest import T0


def test_manifest_names_both_digests_and_every_file(package_copy: Path, policy_copy: Path
                                                    ) -> None:
    """Promise 6: the manifest carries the package and policy digests and their file lists."""
    m = build_manifest(policy_copy, now=T0, package_dir=package_copy, revision=None,
                       dependencies=())
    assert m.package_digest == digest_directory(package_copy).digest
    assert m.policy_digest == digest_directory(policy_copy).digest
    assert "releases/manifest.py" in m.package_files
    assert "policies.cedar" in m.policy_files
    assert not any("__pycache__" in p for p in m.package_files)
    assert m.id == "sha256:" + hashlib.sha256(canonical_json(m.to_json())).hexdigest()
    assert m.id == release_id(m.canonical())
    assert parse_manifest(m.to_json()) == m


def test_release_id_changes_with_any_byte(package_copy: Path, policy_copy: Path) -> None:
    """Promise 6: one changed byte anywhere gives another digest and another release id."""
    before = build_manifest(policy_copy, now=T0, package_dir=package_copy, revision=None,
                            dependencies=())
    target = package_copy / "errors.py"
    data = bytearray(target.read_bytes())
    data[10] ^= 1
    target.write_bytes(bytes(data))
    after = build_manifest(policy_copy, now=T0, package_dir=package_copy, revision=None,
                           dependencies=())
    assert after.package_digest != before.package_digest
    assert after.policy_digest == before.policy_digest
    assert after.id != before.id
    assert diff_manifests(before, after).files == (("changed", "package/errors.py"),)


def test_dependencies_are_transitive_with_record_hashes() -> None:
    """Promise 6: every installed dependency, with its version and RECORD file's sha256."""
    deps = {d.name: d for d in dependency_records()}
    for name in ("cryptography", "cedarpy", "starlette", "anyio", "psycopg-binary"):
        assert name in deps, name  # anyio via starlette, psycopg-binary via psycopg[binary]
    assert "pytest" not in deps and "bordergate" not in deps  # dev extra, the root itself
    dist = importlib.metadata.distribution("cryptography")
    record = next(p for p in dist.files or [] if p.name == "RECORD")
    expected = hashlib.sha256(Path(str(record.locate())).read_bytes()).hexdigest()
    assert deps["cryptography"] == Dependency("cryptography", dist.version, "sha256:" + expected)


def test_source_revision_from_git_or_baked_file(tmp_path: Path) -> None:
    """Promise 6: the revision is git's HEAD in a checkout, else the baked REVISION file."""
    bare = tmp_path / "plain"
    bare.mkdir()
    assert source_revision(bare) is None
    (bare / "REVISION").write_text("0123abcd\n")
    assert source_revision(bare) == "0123abcd"
    here = source_revision(Path(__file__).parent)
    assert here is None or here.split("-")[0].isalnum()


def _manifest_json(package_copy: Path, policy_copy: Path) -> dict[str, Any]:
    return build_manifest(policy_copy, now=T0, package_dir=package_copy, revision="abc",
                          dependencies=(Dependency("x", "1", None),)).to_json()


def _set(path: tuple[str, ...], value: Any) -> Any:
    def change(obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        target = out
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return out
    return change


_DELETE = object()
MALFORMED = {
    "not an object": lambda m: [m],
    "missing key": _set(("time",), _DELETE),
    "extra key": _set(("extra",), 1),
    "unknown format": _set(("format",), "other/9"),
    "bad digest": _set(("package", "digest"), "md5:00"),
    "files do not give digest": _set(("policy", "files", "extra.txt"), "0" * 64),
    "newline in a path": _set(("policy", "files", "a\nb"), "0" * 64),
    "dotdot path": _set(("policy", "files", "../x"), "0" * 64),
    "bad file hash": _set(("policy", "files", "policies.cedar"), "zz"),
    "dependencies not a list": _set(("dependencies",), {}),
    "dependency record not a digest": _set(("dependencies",),
                                           [{"name": "x", "version": "1", "record": "abc"}]),
    "dependency missing version": _set(("dependencies",), [{"name": "x", "record": None}]),
    "empty version": _set(("version",), ""),
    "bad time": _set(("time",), "yesterday"),
    "revision not a string": _set(("revision",), 5),
}


@pytest.mark.parametrize("case", sorted(MALFORMED), ids=sorted(MALFORMED))
def test_malformed_manifest_is_a_verification_error(case: str, package_copy: Path,
                                                    policy_copy: Path) -> None:
    """Bad input: a manifest read from a log is untrusted; each defect is malformed_manifest."""
    bad = MALFORMED[case](_manifest_json(package_copy, policy_copy))
    with pytest.raises(VerificationError) as info:
        parse_manifest(bad)
    assert info.value.code == "malformed_manifest"


def test_diff_lists_files_and_dependencies(package_copy: Path, policy_copy: Path) -> None:
    """Promise 6: the diff names exactly what reviewers must read."""
    a = build_manifest(policy_copy, now=T0, package_dir=package_copy, revision=None,
                       dependencies=(Dependency("old", "1", None), Dependency("lib", "1", None)))
    (policy_copy / "README.txt").write_text("new\n")
    (package_copy / "errors.py").unlink()
    b = build_manifest(policy_copy, now=T0 + 1, package_dir=package_copy, revision=None,
                       dependencies=(Dependency("lib", "2", None), Dependency("new", "1", None)))
    d = diff_manifests(a, b)
    assert d.files == (("removed", "package/errors.py"), ("added", "policy/README.txt"))
    assert d.dependencies == (("changed", "lib 1 -> 2"), ("added", "new 1"),
                              ("removed", "old 1"))
    assert diff_manifests(a, a).empty
