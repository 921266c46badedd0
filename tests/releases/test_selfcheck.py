"""The gateway's start-up self-check: only reviewed code and policy start (promises 6, 4).

The check is called exactly as the gateway calls it, with the package directory
as a parameter: a temporary copy of the installed package stands for "the
gateway's own source files", so one byte can be changed without touching the
installation.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from bordergate.entries import encode_entry
from bordergate.errors import ConfigError, VerificationError
from bordergate.releases.index import ReleaseIndex
from bordergate.releases.ledger import ReleaseLedger
from bordergate.releases.manifest import installed_package_dir
from bordergate.releases.selfcheck import check_release, loaded_outside
from tests.releases.conftest import T0, ReleaseLog
from tests.releases.keys import review_policy


def approve(log: ReleaseLog, package: Path | None, policy: Path) -> str:
    manifest, _ = log.propose(package, policy)
    log.review("alice", manifest.id)
    log.review("bob", manifest.id, now=T0 + 120)
    return manifest.id


def flip_byte(path: Path, at: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x20
    path.write_bytes(bytes(data))


def test_no_release_refuses_naming_the_missing_digest(release_log: ReleaseLog,
                                                      package_copy: Path,
                                                      policy_copy: Path) -> None:
    """Promise 6: without an approved release the gateway refuses, saying what and how."""
    with pytest.raises(ConfigError) as info:
        check_release(release_log.client(), review_policy(), policy_copy,
                      package_dir=package_copy, config_hint="--config d.toml --jurisdiction us")
    assert info.value.code == "release_package_not_approved"
    message = str(info.value)
    assert "MISSING" in message and "package digest sha256:" in message
    assert "bordergate release propose --config d.toml --jurisdiction us --policy" in message


def test_pending_release_refuses_then_reviews_let_it_start(release_log: ReleaseLog,
                                                           package_copy: Path,
                                                           policy_copy: Path) -> None:
    """Promise 6: proposed is not enough; after the required reviews the gateway starts."""
    manifest, index = release_log.propose(package_copy, policy_copy)
    release_log.review("alice", manifest.id)
    with pytest.raises(ConfigError) as info:
        check_release(release_log.client(), review_policy(), policy_copy,
                      package_dir=package_copy)
    assert info.value.code == "release_package_not_approved"
    assert f"release {manifest.id} (entry {index}) names both but is pending: 1/2" \
        in str(info.value)
    release_log.review("bob", manifest.id, now=T0 + 120)
    check = check_release(release_log.client(), review_policy(), policy_copy,
                          package_dir=package_copy)
    assert check.reviewed and check.release is not None and check.release.id == manifest.id
    assert check.package_digest == manifest.package_digest
    assert check.start_body("us") == {"gateway": "us", "release": manifest.id,
                                      "reviewed": True, "package": manifest.package_digest,
                                      "policy": manifest.policy_digest,
                                      "runtime": None, "deployment": None}


def _package_files(package: Path) -> list[str]:
    files = sorted(p.relative_to(package).as_posix() for p in package.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    return [files[0], "releases/selfcheck.py", "policy/default_bundle/policies.cedar",
            files[-1]]


@pytest.mark.parametrize("which", range(4), ids=["first", "selfcheck", "shipped-policy",
                                                 "last"])
def test_one_changed_byte_in_the_code_refuses(release_log: ReleaseLog, package_copy: Path,
                                              policy_copy: Path, which: int) -> None:
    """Promise 6: one changed byte in any of the gateway's own files and it refuses."""
    approve(release_log, package_copy, policy_copy)
    check_release(release_log.client(), review_policy(), policy_copy, package_dir=package_copy)
    flip_byte(package_copy / _package_files(package_copy)[which], at=7)
    with pytest.raises(ConfigError) as info:
        check_release(release_log.client(), review_policy(), policy_copy,
                      package_dir=package_copy)
    assert info.value.code == "release_package_not_approved"
    assert "policy digest" in str(info.value) and "in an approved release" in str(info.value)


def test_an_added_file_in_the_package_refuses(release_log: ReleaseLog, package_copy: Path,
                                              policy_copy: Path) -> None:
    """Promise 6: a file dropped into the package (a new module) changes the digest too."""
    approve(release_log, package_copy, policy_copy)
    (package_copy / "backdoor.py").write_text("print('hi')\n")
    with pytest.raises(ConfigError):
        check_release(release_log.client(), review_policy(), policy_copy,
                      package_dir=package_copy)


def test_one_changed_byte_in_the_policy_refuses(release_log: ReleaseLog, package_copy: Path,
                                                policy_copy: Path) -> None:
    """Promises 6, 4: a policy bundle that is not in an approved release never loads."""
    approve(release_log, package_copy, policy_copy)
    flip_byte(policy_copy / "purposes.toml", at=3)
    with pytest.raises(ConfigError) as info:
        check_release(release_log.client(), review_policy(), policy_copy,
                      package_dir=package_copy)
    assert info.value.code == "release_policy_not_approved"
    assert "policy digest" in str(info.value) and "MISSING" in str(info.value)


def test_policy_changed_on_disk_is_ignored_until_an_approved_restart(
        release_log: ReleaseLog, package_copy: Path, policy_copy: Path) -> None:
    """Promise 4/6: the bundle is loaded once from the checked bytes; a change on disk
    while running is ignored, and a restart without an approved release refuses."""
    approve(release_log, package_copy, policy_copy)
    check = check_release(release_log.client(), review_policy(), policy_copy,
                          package_dir=package_copy)
    bundle = check.policy_bundle()
    text_before = bundle.policies_text
    assert bundle.digest == check.policy_digest == check.release.manifest.policy_digest \
        if check.release else False
    cedar = policy_copy / "policies.cedar"
    cedar.write_text(cedar.read_text() + "\n// unreviewed edit\n")
    assert bundle.digest == check.policy_digest and bundle.policies_text == text_before
    assert check.policy_bundle().digest == check.policy_digest  # same checked bytes
    with pytest.raises(ConfigError):
        check_release(release_log.client(), review_policy(), policy_copy,
                      package_dir=package_copy)
    approve(release_log, package_copy, policy_copy)
    restarted = check_release(release_log.client(), review_policy(), policy_copy,
                              package_dir=package_copy)
    assert "unreviewed edit" in restarted.policy_bundle().policies_text


def test_unreviewed_start_is_logged_and_flagged(release_log: ReleaseLog, package_copy: Path,
                                                policy_copy: Path) -> None:
    """Promise 6: --unreviewed starts anyway; its gateway-start says reviewed=false and the
    audit (the ledger over the log) flags it."""
    check = check_release(release_log.client(), review_policy(), policy_copy,
                          package_dir=package_copy, unreviewed=True)
    assert not check.reviewed and check.release is None
    index = release_log.append(encode_entry("gateway-start", T0 + 5, check.start_body("us")))
    scanned = ReleaseIndex(release_log.origin)
    scanned.update(release_log.client())
    ledger = ReleaseLedger(review_policy(), log=release_log.origin)
    ledger.add_all(scanned.parsed())
    assert [(f.index, f.code) for f in ledger.findings] == [(index, "unreviewed_start")]
    assert ledger.starts[0].reviewed is False


def test_unreviewed_flag_with_an_approved_release_is_reviewed(release_log: ReleaseLog,
                                                              package_copy: Path,
                                                              policy_copy: Path) -> None:
    """Promise 6: the flag only relaxes the refusal; an approved start is still reviewed."""
    rid = approve(release_log, package_copy, policy_copy)
    check = check_release(release_log.client(), review_policy(), policy_copy,
                          package_dir=package_copy, unreviewed=True)
    assert check.reviewed and check.release is not None and check.release.id == rid


def test_installed_package_is_checked_by_default(release_log: ReleaseLog,
                                                 policy_copy: Path) -> None:
    """Promise 6: by default the check digests the package this process imported."""
    assert loaded_outside(installed_package_dir()) == []
    approve(release_log, None, policy_copy)
    check = check_release(release_log.client(), review_policy(), policy_copy)
    assert check.package_dir == installed_package_dir() and check.reviewed


def test_modules_loaded_from_elsewhere_are_named(tmp_path: Path) -> None:
    """Promise 6: a bordergate module imported from outside the checked directory is caught."""
    fake = types.ModuleType("bordergate.evil")
    fake.__file__ = str(tmp_path / "evil.py")
    other = types.ModuleType("json")
    assert loaded_outside(installed_package_dir(),
                          {"bordergate.evil": fake, "json": other}) == ["bordergate.evil"]


def test_index_file_is_incremental_and_survives_damage(release_log: ReleaseLog,
                                                       package_copy: Path, policy_copy: Path,
                                                       tmp_path: Path) -> None:
    """Promise 6 (start-up cost): the saved index reads only new entries; a damaged one is
    ignored (full scan), never trusted."""
    cache = tmp_path / "release-index.json"
    filler = [encode_entry("key-event", T0, {"kind": "x", "kek_version": i}) for i in range(300)]
    release_log.append(*filler)
    with pytest.raises(ConfigError):
        check_release(release_log.client(), review_policy(), policy_copy,
                      package_dir=package_copy, index_file=cache)
    saved = ReleaseIndex.load(cache, release_log.origin)
    assert saved.size == 300 and saved.entries == []
    approve(release_log, package_copy, policy_copy)
    check = check_release(release_log.client(), review_policy(), policy_copy,
                          package_dir=package_copy, index_file=cache)
    assert check.reviewed and check.log_size == 303
    assert ReleaseIndex.load(cache, release_log.origin).size == 303
    cache.write_text(json.dumps({"v": 1, "origin": release_log.origin, "size": 7}))
    assert ReleaseIndex.load(cache, release_log.origin).size == 0
    assert ReleaseIndex.load(cache, "another/log").size == 0
    assert check_release(release_log.client(), review_policy(), policy_copy,
                         package_dir=package_copy, index_file=cache).reviewed


def test_index_refuses_a_log_that_rewrote_scanned_entries(release_log: ReleaseLog,
                                                          package_copy: Path,
                                                          policy_copy: Path) -> None:
    """Promise 5/6: a saved index does not accept a log that no longer extends it."""
    index = ReleaseIndex(release_log.origin)
    release_log.propose(package_copy, policy_copy)
    index.update(release_log.client())
    bundle = release_log.storage.root / "tile" / "entries" / "000.p" / "1"
    data = bytearray(bundle.read_bytes())
    data[-2] ^= 1
    bundle.write_bytes(bytes(data))
    release_log.append(encode_entry("key-event", T0, {"kind": "x", "kek_version": 1}))
    with pytest.raises(VerificationError):
        index.update(release_log.client())
