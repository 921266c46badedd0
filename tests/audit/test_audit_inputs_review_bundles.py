"""A published policy bundle archive is unpacked within bounds, or refused with a code.

Found by a review of what the auditor reads from outside the log: the bundle store
(the custodian's, or whoever serves ``bundles/``) can publish any bytes under
``bundles/sha256-<hex>.tar``, and ``open_published_bundle`` capped the archive at
16 MiB but read every "regular" member whole, sparse ones included.  A sparse
member's holes unpack to zeros the archive does not hold: a 2 KiB archive claiming
an 8 GiB member made the auditor allocate 8 GiB (twice), before the digest was ever
compared: the audit died of memory (``MemoryError`` with a trace, or the kernel's
OOM killer), and so did ``audit verify-report`` on such a package.  Sparse members
(old GNU and pax) are now refused before they are read, and the unpacked files may
not exceed the archive cap together (``bundle_archive_malformed``; the lookup is
``bundle_digest_mismatch``, as for any archive that is not the bundle named).

Each lookup runs in its own process under a 2 GiB address-space limit, so that the
unfixed code fails the test instead of exhausting the machine.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bordergate.releases.publication import bundle_path
from bordergate.tlog.storage.fs import FileStorage
from tests.tlog.witnessed import make_log

CLAIMED = (8 << 30) - 512 * 4
"""What the sparse member claims to unpack to (the largest 11-digit octal size)."""
DIGEST = "sha256:" + "ab" * 32

_LOOKUP = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from bordergate.audit.bundlestore import BundleStore
from bordergate.errors import VerificationError
from bordergate.releases.publication import bundle_path, open_published_bundle
from bordergate.tlog.client import DirectorySource
source = DirectorySource(sys.argv[1])
found = BundleStore(source, use_shipped=False).lookup(sys.argv[2])
try:  # the check audit verify-report also runs on a package's bundles
    open_published_bundle(source.fetch(bundle_path(sys.argv[2]), 16 << 20) or b"", sys.argv[2])
    opened = None
except VerificationError as exc:
    opened = exc.code
print(json.dumps({"engine": found.engine is not None, "code": found.code,
                  "reason": found.reason, "opened": opened}))
"""


def _octal(n: int) -> bytes:
    return b"%011o\0" % n


def gnu_sparse_bomb(name: str = "policies.cedar") -> bytes:
    """An old-GNU sparse member (type ``S``): one 512-byte chunk at the end of a hole."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.GNUTYPE_SPARSE
    info.size = 512
    block = bytearray(info.tobuf(format=tarfile.GNU_FORMAT)[:512])
    block[386:398] = _octal(CLAIMED - 512)   # sparse map: offset, size of the one chunk
    block[398:410] = _octal(512)
    block[483:495] = _octal(CLAIMED)         # the member's real (unpacked) size
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block) + b"x" * 512 + b"\0" * 1024


def pax_sparse_bomb(name: str = "policies.cedar") -> bytes:
    """A pax (GNU 0.1) sparse member: the same hole, described in pax headers."""
    info = tarfile.TarInfo(name)
    info.size = 512
    info.pax_headers = {"GNU.sparse.size": str(CLAIMED),
                        "GNU.sparse.map": f"{CLAIMED - 512},512"}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b"x" * 512))
    return out.getvalue()


def published_store(root: Path, archive: bytes) -> Path:
    """A log directory whose bundle store holds ``archive`` under :data:`DIGEST`."""
    make_log(root)
    storage = FileStorage(root)
    try:
        storage.write_object(bundle_path(DIGEST), archive)
    finally:
        storage.close()
    return root


@pytest.mark.parametrize("bomb", [gnu_sparse_bomb, pax_sparse_bomb])
def test_a_sparse_bundle_member_is_refused_before_it_is_unpacked(tmp_path: Path,
                                                                 bomb: object) -> None:
    """Promise 4 (the auditor replays only the bundle an entry names, and always ends
    with an answer): a published archive of at most 10 KiB whose member claims 8 GiB of holes is
    refused as ``bundle_archive_malformed`` in the auditor's bundle store (a
    ``bundle_digest_mismatch`` lookup), in its own process under a 2 GiB memory limit:
    no ``MemoryError``, no trace, no engine; the archive check itself (which
    ``audit verify-report`` also runs) names it ``bundle_archive_malformed``."""
    assert callable(bomb)
    archive = bomb()
    assert len(archive) <= 10240  # one tar record at most
    store = published_store(tmp_path / "log", archive)
    proc = subprocess.run([sys.executable, "-c", _LOOKUP, str(store), DIGEST],
                          capture_output=True, timeout=120, check=False,
                          cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    found = json.loads(proc.stdout)
    assert found["engine"] is False and found["code"] == "bundle_digest_mismatch"
    assert "sparse" in found["reason"] and found["opened"] == "bundle_archive_malformed"

