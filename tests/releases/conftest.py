"""Fixtures of the releases tests: a log, a package copy, a policy copy, helpers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bordergate.entries import encode_entry
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.releases.manifest import Manifest, build_manifest, installed_package_dir
from bordergate.releases.review import review_body
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.fs import FileStorage
from tests.releases.keys import reviewer_signer
from tests.tlog.logkeys import log_signer

T0 = 1_800_000_000.0


@dataclass
class ReleaseLog:
    """A file-system log and helpers that write release entries to it."""

    storage: FileStorage
    signer: Signer

    @property
    def origin(self) -> str:
        return self.signer.name

    def client(self) -> LogClient:
        return LogClient(StorageSource(self.storage), self.signer.verifier())

    def append(self, *entries: bytes) -> int:
        with Sequencer(self.storage, self.signer) as seq:
            first = seq.append_many(list(entries))
            seq.publish()
        return first

    def propose(self, package_dir: Path | None, policy_dir: Path, now: float = T0
                ) -> tuple[Manifest, int]:
        manifest = build_manifest(policy_dir, now=now, package_dir=package_dir,
                                  revision=None, dependencies=())
        body = {"release": manifest.id, "manifest": manifest.to_json()}
        return manifest, self.append(encode_entry("release", now, body))

    def review_entry(self, name: str, release: str, verdict: str = "approve",
                     now: float = T0 + 60, note: str = "read every changed file",
                     signer: Signer | None = None) -> bytes:
        body = review_body(signer or reviewer_signer(name), log=self.origin, release=release,
                           verdict=verdict, note=note, now=now)
        return encode_entry("release-review", now, body)

    def review(self, name: str, release: str, verdict: str = "approve",
               now: float = T0 + 60) -> int:
        return self.append(self.review_entry(name, release, verdict, now))


@pytest.fixture
def release_log(tmp_path: Path) -> Iterator[ReleaseLog]:
    """An empty file-system log signed with the test log key."""
    storage = FileStorage(tmp_path / "log")
    signer = log_signer()
    create_log(storage, signer)
    yield ReleaseLog(storage, signer)
    storage.close()


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the installed bordergate package directory (no byte-code caches)."""
    target = tmp_path / "pkg" / "bordergate"
    shutil.copytree(installed_package_dir(), target,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A copy of the shipped policy bundle."""
    target = tmp_path / "policy"
    shutil.copytree(DEFAULT_BUNDLE_PATH, target)
    return target
