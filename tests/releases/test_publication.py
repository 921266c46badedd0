"""Released policy bundles published content-addressed beside the tiles (promise 6).

Also the storage side: ``write_object``/``read_object`` on every log storage
backend (memory, files, PostgreSQL), in the style of tests/tlog/test_storage.py.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bordergate.errors import VerificationError
from bordergate.policy.bundle import archive_files
from bordergate.releases.publication import bundle_path, open_published_bundle, publish_bundle
from bordergate.tlog.server import make_log_app
from bordergate.tlog.storage import LogStorage
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tree_digest import digest_directory, read_tree

Factory = Callable[[], LogStorage]


NAME = "bundles/sha256-" + "ab" * 32 + ".tar"


def test_objects_round_trip_on_every_backend(storage_factory: Factory) -> None:
    """Promise 6: a published object reads back exactly from a fresh handle, and is idempotent."""
    writer = storage_factory()
    assert writer.read_object(NAME) is None  # type: ignore[attr-defined]
    writer.write_object(NAME, b"tar bytes")  # type: ignore[attr-defined]
    writer.write_object(NAME, b"tar bytes")  # type: ignore[attr-defined]
    assert storage_factory().read_object(NAME) == b"tar bytes"  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["bundles/sha256-AB.tar", "../bundles/x", "checkpoint",
                                  "tile/0/000", "bundles/sha256-" + "a" * 64 + ".tar/../x",
                                  "bundles/sha256-" + "a" * 63 + ".tar", ""])
def test_object_paths_outside_the_namespace_are_refused(storage_factory: Factory,
                                                        path: str) -> None:
    """Bad input: only bundles/sha256-<64 hex>.tar is ever written or read (no traversal)."""
    s = storage_factory()
    with pytest.raises(VerificationError):
        s.write_object(path, b"x")  # type: ignore[attr-defined]
    with pytest.raises(VerificationError):
        s.read_object(path)  # type: ignore[attr-defined]


def test_fs_objects_live_under_bundles(tmp_path: Path) -> None:
    """Promise 6: on files the object is DIR/bundles/<name>, servable by any web server."""
    s = FileStorage(tmp_path / "log")
    s.write_object(NAME, b"x")
    assert (tmp_path / "log" / NAME).read_bytes() == b"x"
    with pytest.raises(VerificationError):
        s.read(NAME)  # the tile reader still refuses it


def test_published_bundle_is_served_and_checks(tmp_path: Path, policy_copy: Path) -> None:
    """Promise 6: the auditor fetches bundles/sha256-<digest>.tar, unpacks it in memory and
    recomputes the canonical digest named in the release entry."""
    storage = FileStorage(tmp_path / "log")
    files = read_tree(policy_copy)
    digest = digest_directory(policy_copy).digest
    path = publish_bundle(storage, files)
    assert path == bundle_path(digest) == f"bundles/sha256-{digest[7:]}.tar"
    served = asyncio.run(_get(storage, "/" + path))
    assert served.status_code == 200
    assert served.headers["cache-control"].endswith("immutable")
    assert open_published_bundle(served.content, digest) == files
    assert served.content == archive_files(files)  # deterministic: republishing is a no-op


async def _get(storage: LogStorage, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=make_log_app(storage))
    async with httpx.AsyncClient(transport=transport, base_url="http://log") as client:
        return await client.get(path)


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info


MALFORMED = {
    "not a tar": b"this is not a tar archive at all" * 40,
    "truncated": archive_files([("a.cedar", b"x" * 2000)])[:700],
    "symlink member": _tar([(_member("a.cedar", tarfile.SYMTYPE), b"")]),
    "directory member": _tar([(_member("dir", tarfile.DIRTYPE), b"")]),
    "dotdot name": _tar([(_member("../a.cedar"), b"x")]),
    "absolute name": _tar([(_member("/etc/a.cedar"), b"x")]),
    "duplicate name": _tar([(_member("a.cedar"), b"x"), (_member("a.cedar"), b"y")]),
    "too large": b"\0" * (16 << 20 | 1),
}


@pytest.mark.parametrize("case", sorted(MALFORMED), ids=sorted(MALFORMED))
def test_malformed_archive_is_a_verification_error(case: str) -> None:
    """Bad input: a fetched archive is untrusted; every defect is bundle_archive_malformed."""
    with pytest.raises(VerificationError) as info:
        open_published_bundle(MALFORMED[case], "sha256:" + "0" * 64)
    assert info.value.code == "bundle_archive_malformed"


def test_archive_with_other_files_is_a_digest_mismatch() -> None:
    """Promise 6: an archive that is not the approved bundle is refused by digest."""
    with pytest.raises(VerificationError) as info:
        open_published_bundle(archive_files([("a.cedar", b"x")]), "sha256:" + "0" * 64)
    assert info.value.code == "bundle_digest_mismatch"
