"""Released policy bundles, published content-addressed beside the log's tiles.

Every released bundle is stored as ``bundles/sha256-<hex>.tar`` next to the
log's ``checkpoint`` and ``tile/`` (served by ``bordergate log serve`` and the
gateway's ``/v1/log/`` routes).  ``<hex>`` is the **canonical bundle digest**
(the one in release and decision entries), not the tar's own SHA-256, so an
auditor who reads ``"policy": {"digest": "sha256:<hex>"}`` in an entry fetches
``bundles/sha256-<hex>.tar`` and checks it with :func:`open_published_bundle`:
unpack in memory, recompute the canonical digest of the files, compare.  The
tar is the deterministic archive of ``policy.bundle.archive_files``.

:func:`open_published_bundle` is pure (bytes in) and must never trust the tar:
regular files only, clean names, no duplicates, bounded sizes, every failure a
``VerificationError``.  A sparse member (GNU or pax) is refused before it is read:
its holes unpack to zeros the archive does not hold, so a 2 KiB archive could
claim gigabytes (a decompression bomb); and the unpacked files together may not
exceed :data:`MAX_BUNDLE_BYTES` either.  :func:`publish_bundle` only writes through the
storage's ``write_object``.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from typing import Protocol

from bordergate.errors import ConfigError, VerificationError
from bordergate.tree_digest import DIGEST_PREFIX, digest_files

__all__ = ["MAX_BUNDLE_BYTES", "ObjectStore", "bundle_path", "open_published_bundle",
           "publish_bundle"]

MAX_BUNDLE_BYTES = 16 << 20
MAX_BUNDLE_FILES = 4096


class ObjectStore(Protocol):
    """A log storage that holds content-addressed objects."""

    def write_object(self, path: str, data: bytes) -> None:
        """Durably store ``data`` at ``path`` (``bundles/sha256-<hex>.tar``)."""

    def read_object(self, path: str) -> bytes | None:
        """The object at ``path``, or None."""


def bundle_path(digest: str) -> str:
    """``bundles/sha256-<hex>.tar`` for a ``sha256:<hex>`` bundle digest.

    Raises:
        ValueError: not a ``sha256:`` digest (programmer misuse).
    """
    if not digest.startswith(DIGEST_PREFIX):
        raise ValueError(f"not a sha256: digest: {digest!r}")
    return f"bundles/sha256-{digest.removeprefix(DIGEST_PREFIX)}.tar"


def publish_bundle(store: ObjectStore, files: Sequence[tuple[str, bytes]]) -> str:
    """Publish a policy bundle's files as its deterministic archive.

    Returns:
        The object path it was stored at.

    Raises:
        ConfigError: a file name is not clean.
        Unavailable: the storage refused the write.
    """
    from bordergate.policy.bundle import archive_files
    digest = digest_files(files).digest
    path = bundle_path(digest)
    store.write_object(path, archive_files(files))
    return path


def open_published_bundle(data: bytes, digest: str) -> list[tuple[str, bytes]]:
    """Unpack a published bundle archive in memory and check it has ``digest``.

    Args:
        data: the tar bytes fetched from ``bundles/sha256-<hex>.tar``.
        digest: the ``sha256:<hex>`` bundle digest an entry names.

    Returns:
        The bundle's ``(path, bytes)`` files.

    Raises:
        VerificationError: ``bundle_archive_malformed`` (not a tar, a non-regular
            member, a bad or repeated name, too large) or ``bundle_digest_mismatch``.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise VerificationError("bundle archive too large", code="bundle_archive_malformed")
    files: list[tuple[str, bytes]] = []
    unpacked = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if not member.isreg():
                    raise VerificationError(f"bundle member {member.name[:80]!r} is not a "
                                            "regular file", code="bundle_archive_malformed")
                if len(files) >= MAX_BUNDLE_FILES:
                    raise VerificationError("too many files in bundle archive",
                                            code="bundle_archive_malformed")
                if member.sparse is not None or member.type == tarfile.GNUTYPE_SPARSE:
                    raise VerificationError(f"bundle member {member.name[:80]!r} is sparse",
                                            code="bundle_archive_malformed")
                unpacked += member.size
                if unpacked > MAX_BUNDLE_BYTES:
                    raise VerificationError("bundle archive unpacks to more than "
                                            f"{MAX_BUNDLE_BYTES} bytes",
                                            code="bundle_archive_malformed")
                handle = tar.extractfile(member)
                if handle is None:
                    raise VerificationError("unreadable bundle member",
                                            code="bundle_archive_malformed")
                files.append((member.name, handle.read()))
        computed = digest_files(files).digest
    except (tarfile.TarError, OSError, EOFError, ValueError, ConfigError) as e:
        raise VerificationError(f"not a bundle archive: {e}",
                                code="bundle_archive_malformed") from None
    if computed != digest:
        raise VerificationError(f"published bundle has digest {computed}, expected {digest}",
                                code="bundle_digest_mismatch")
    return files
