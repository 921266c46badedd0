"""The runtime and deployment slices of release manifests, and the boot's comparisons
(promise 6; issue 13 items 1 and 2; docs/runtime-attestation.md).

Fast tests without a built runtime: the slices round-trip through a manifest
and any changed member is refused (Hypothesis); ``compare`` names each changed,
missing and unexpected file; a ``.pth`` path outside the runtime is refused;
the production profile refuses a process that was not attested; byte-code
caches are never read under the boot's ``pycache_prefix``.
"""

from __future__ import annotations

import copy
import json
import py_compile
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bordergate.config import load_config
from bordergate.errors import ConfigError, VerificationError
from bordergate.profile import Profile
from bordergate.releases.deployment_slice import (
    DeploymentSlice,
    deployment_slice,
    diff_settings,
    parse_deployment_slice,
)
from bordergate.releases.manifest import (
    MANIFEST_FORMAT_2,
    build_manifest,
    diff_manifests,
    parse_manifest,
)
from bordergate.releases.runtime import RuntimeSlice, diff_slices, parse_slice
from bordergate.releases.selfcheck import check_release
from bordergate.runtime_boot import RuntimeRefused, _pth_paths, compare, read_lock
from tests.gateway.deployment import write_deployment
from tests.releases.conftest import T0, ReleaseLog
from tests.releases.keys import review_policy, reviewer_signer

HEX = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h)
NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
SLICES = st.builds(
    RuntimeSlice,
    python=st.sampled_from(["cpython-3.11.7", "cpython-3.12.1"]),
    interpreter=st.dictionaries(st.sampled_from(["python", "libpython"]), HEX, min_size=1),
    stdlib=HEX,
    distributions=st.dictionaries(NAMES, st.tuples(st.from_regex(r"[0-9][0-9.]{0,8}",
                                                                 fullmatch=True), HEX)
                                  .map(" ".join), max_size=8))


@given(SLICES)
def test_runtime_slice_round_trips_and_names_its_digest(found: RuntimeSlice) -> None:
    """A runtime slice parses back to itself; its digest is over every member."""
    assert parse_slice(json.loads(json.dumps(found.to_json()))) == found


@given(SLICES, st.sampled_from(["python", "stdlib", "interpreter", "distributions"]))
def test_a_changed_runtime_member_breaks_the_digest(found: RuntimeSlice, member: str) -> None:
    """A slice whose member changed but whose digest did not is malformed."""
    obj: dict[str, Any] = copy.deepcopy(found.to_json())
    if member == "python":
        obj["python"] = obj["python"] + "x"
    elif member == "stdlib":
        obj["stdlib"] = "sha256:" + ("0" * 64 if obj["stdlib"][-1] != "0" else "1" * 64)
    elif member == "interpreter":
        obj["interpreter"]["other"] = obj["stdlib"]
    else:
        obj["distributions"]["planted"] = "1.0 " + obj["stdlib"]
    with pytest.raises(VerificationError) as info:
        parse_slice(obj)
    assert info.value.code == "malformed_manifest"


@settings(max_examples=30)
@given(st.dictionaries(NAMES, st.one_of(st.integers(), NAMES, st.none()), max_size=6))
def test_deployment_slice_round_trips_and_refuses_a_changed_setting(settings_: dict[str, Any]
                                                                    ) -> None:
    """A deployment slice parses back; one changed setting under the old digest is refused."""
    found = DeploymentSlice("us", settings_)
    assert parse_deployment_slice(json.loads(json.dumps(found.to_json()))) == found
    obj = found.to_json()
    obj["settings"] = {**settings_, "k_min": 1 if settings_.get("k_min") != 1 else 2}
    with pytest.raises(VerificationError):
        parse_deployment_slice(obj)


def test_a_manifest_with_runtime_and_deployment_is_format_2(tmp_path: Path) -> None:
    """Format /2 carries both slices through the log's parser; /1 still parses."""
    config = write_deployment(tmp_path, k_min=5)
    dep = deployment_slice(load_config(config), "us")
    runtime = RuntimeSlice("cpython-3.11.7", {"python": "sha256:" + "a" * 64},
                           "sha256:" + "b" * 64, {"cedarpy": "4.1 sha256:" + "c" * 64})
    manifest = build_manifest(tmp_path / "policy", now=T0, revision=None, dependencies=(),
                              runtime=runtime, deployment=dep)
    obj = json.loads(manifest.canonical())
    assert obj["format"] == MANIFEST_FORMAT_2
    assert parse_manifest(obj) == manifest
    plain = build_manifest(tmp_path / "policy", now=T0, revision=None, dependencies=())
    assert parse_manifest(json.loads(plain.canonical())).runtime is None


def test_settings_and_runtime_differences_are_named(tmp_path: Path) -> None:
    """Item 2: the refusal's lines name k_min and the distribution that changed."""
    config = write_deployment(tmp_path, k_min=5)
    before = deployment_slice(load_config(config), "us")
    (tmp_path / "policy" / "exports.toml").write_text("k_min = 1\n")
    after = deployment_slice(load_config(config), "us")
    lines = diff_settings(before, after)
    assert "k_min: 5 -> 1" in lines and any(x.startswith("policy_bundle:") for x in lines)
    old = build_manifest(tmp_path / "policy", now=T0, revision=None, dependencies=(),
                         deployment=before)
    new = build_manifest(tmp_path / "policy", now=T0, revision=None, dependencies=(),
                         deployment=after)
    assert "k_min: 5 -> 1" in diff_manifests(old, new).settings  # what `release diff` shows
    a = RuntimeSlice("cpython-3.11.7", {"python": "sha256:" + "a" * 64},
                     "sha256:" + "b" * 64, {"cedarpy": "4.1 sha256:" + "c" * 64})
    b = RuntimeSlice("cpython-3.11.7", {"python": "sha256:" + "a" * 64},
                     "sha256:" + "b" * 64, {"cedarpy": "4.1 sha256:" + "d" * 64})
    assert diff_slices(a, b) == [f"distribution cedarpy: 4.1 sha256:{'c' * 64} -> "
                                 f"4.1 sha256:{'d' * 64}"]


def test_another_jurisdictions_settings_are_not_in_this_slice(tmp_path: Path) -> None:
    """Item 2: eu's reviewers are not in us's slice (no release needed in us)."""
    config = write_deployment(tmp_path)
    before = deployment_slice(load_config(config), "us")
    key = reviewer_signer("dave").verifier().key_string
    config.write_text(config.read_text().replace(
        "[jurisdictions.eu]\n", f'[jurisdictions.eu]\nreviewers = [{{ name = "dave", '
        f'public_key = "{key}" }}]\n'))
    assert deployment_slice(load_config(config), "us") == before
    assert deployment_slice(load_config(config), "eu").settings["reviewers"]


def test_compare_names_changed_missing_and_unexpected_files() -> None:
    """Item 1: the boot names every differing file (first kind is the code)."""
    locked = {"site": {"a.py": "1", "b.py": "2"}, "stdlib": {}, "interpreter": {}}
    with pytest.raises(RuntimeRefused) as info:
        compare(locked, {"site": {"a.py": "9", "c.pth": "3"}, "stdlib": {}, "interpreter": {}})
    assert info.value.code == "runtime_file_changed"
    assert "changed: site/a.py" in str(info.value)
    assert "missing: site/b.py" in str(info.value)
    assert "unexpected: site/c.pth" in str(info.value)
    compare(locked, copy.deepcopy(locked))


def test_pth_paths_inside_are_added_outside_refused_imports_skipped(tmp_path: Path) -> None:
    """Item 1: a path-only .pth is honoured (by hash, in the lock); an editable path is not."""
    site = tmp_path / "site"
    (site / "extra").mkdir(parents=True)
    (site / "ok.pth").write_text("extra\nimport os; os.system('false')\n")
    allowed = (str(site.resolve()),)
    assert _pth_paths(str(site), {"ok.pth": "x"}, allowed) == [str((site / "extra").resolve())]
    (site / "editable.pth").write_text(str(tmp_path / "src") + "\n")
    with pytest.raises(RuntimeRefused) as info:
        _pth_paths(str(site), {"ok.pth": "x", "editable.pth": "y"}, allowed)
    assert info.value.code == "runtime_pth_outside"


def test_production_refuses_a_process_that_was_not_attested(release_log: ReleaseLog,
                                                            tmp_path: Path) -> None:
    """Item 1: the production profile needs the attested runtime (development does not)."""
    assert Profile.PRODUCTION.requires_attested_runtime
    assert not Profile.DEVELOPMENT.requires_attested_runtime
    with pytest.raises(ConfigError) as info:
        check_release(release_log.client(), review_policy(), tmp_path, require_runtime=True)
    assert info.value.code == "runtime_not_attested"


def test_byte_code_caches_are_not_read_under_the_boot_prefix(tmp_path: Path) -> None:
    """Item 1: with an absent pycache_prefix, a planted cache in __pycache__ never runs."""
    (tmp_path / "m.py").write_text("WHO = 'source'\n")
    evil = tmp_path / "evil.py"
    evil.write_text("WHO = 'planted'\n")
    cache = tmp_path / "__pycache__" / f"m.{sys.implementation.cache_tag}.pyc"
    py_compile.compile(str(tmp_path / "m.py"), cfile=str(cache))
    planted = tmp_path / "planted.pyc"
    py_compile.compile(str(evil), cfile=str(planted))
    # same header (source mtime and size) as the real cache, other code
    cache.write_bytes(cache.read_bytes()[:16] + planted.read_bytes()[16:])
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import m; print(m.WHO)"
    plain = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                           check=True)
    assert plain.stdout.strip() == "planted"  # the attack works without the prefix
    booted = subprocess.run([sys.executable, "-I", "-B", "-X",
                             f"pycache_prefix={tmp_path / 'absent'}", "-c", code],
                            capture_output=True, text=True, check=True)
    assert booted.stdout.strip() == "source"


@given(st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=5)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(st.text(max_size=8), inner,
                                                            max_size=3)), max_leaves=12))
def test_a_malformed_lock_is_refused_with_its_code(tmp_path_factory: pytest.TempPathFactory,
                                                   junk: Any) -> None:
    """Item 1: any JSON that is not a lock is refused as runtime_lock_unreadable, never a crash."""
    assume(not (isinstance(junk, dict) and set(junk) == {"interpreter", "stdlib", "site"}))
    path = tmp_path_factory.mktemp("lock") / "bordergate-runtime.json"
    path.write_text(json.dumps({"format": "bordergate-runtime/1", "python": [3, 11, 7],
                                "files": junk}))
    with pytest.raises(RuntimeRefused) as info:
        read_lock(str(path))
    assert info.value.code == "runtime_lock_unreadable"
