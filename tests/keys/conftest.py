"""Key-backend fixtures: memory twin, local key file, and PKCS#11 on a real SoftHSM2 token.

TEST-ONLY keys: the memory backend derives KEKs from fixed seeds; the file and
SoftHSM backends generate fresh keys in per-test temporary locations that are
deleted afterwards.  Nothing here is ever a deployment key.
"""

from __future__ import annotations

import os
import secrets
import shutil
import string
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bordergate.keys.backend import KeyBackend
from bordergate.keys.backends.keyfile import LocalKeyFile
from bordergate.keys.backends.memory import MemoryKeyBackend

SOFTHSM_LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "bordergate-test"
TOKEN_PIN = "123456"  # test-only PIN of a throw-away token
TEST_SEED = b"bordergate test-only KEK seed"


def _random_jurisdiction() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))


class SoftHsm:
    """A SoftHSM2 token in a private directory (its own SOFTHSM2_CONF)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bordergate-softhsm-"))
        (self.root / "tokens").mkdir()
        self.conf = self.root / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {self.root / 'tokens'}\n"
                             "objectstore.backend = file\nlog.level = ERROR\n")
        self._old_conf = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
                        "--pin", TOKEN_PIN, "--so-pin", "654321"],
                       check=True, capture_output=True, timeout=60)

    def backend(self, jurisdiction: str) -> KeyBackend:
        from bordergate.keys.backends.hsm import Pkcs11Backend

        return Pkcs11Backend(library=SOFTHSM_LIBRARY, token_label=TOKEN_LABEL, pin=TOKEN_PIN,
                             jurisdiction=jurisdiction)

    def close(self) -> None:
        if self._old_conf is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = self._old_conf
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def softhsm() -> Iterator[SoftHsm]:
    """One SoftHSM2 token for the session; skipped (with the reason) only if not installed."""
    missing = [what for what, ok in (
        (SOFTHSM_LIBRARY, Path(SOFTHSM_LIBRARY).exists()),
        ("softhsm2-util", shutil.which("softhsm2-util") is not None)) if not ok]
    if missing:
        reason = (f"SoftHSM2 not installed ({', '.join(missing)} missing): "
                  "apt-get install softhsm2 (make test does this)")
        print(reason)
        pytest.skip(reason)
    hsm = SoftHsm()
    try:
        yield hsm
    finally:
        hsm.close()


BackendFactory = Callable[[str], KeyBackend]


@pytest.fixture(params=["memory", "file", "pkcs11"])
def backend_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendFactory]:
    """Opens backends of one kind; several calls for one jurisdiction share its KEKs.

    Each test gets a fresh random jurisdiction on the shared SoftHSM token, so
    tests never see each other's keys.
    """
    opened: list[KeyBackend] = []
    memory: dict[str, MemoryKeyBackend] = {}

    def make(jurisdiction: str) -> KeyBackend:
        backend: KeyBackend
        if request.param == "memory":
            backend = memory.setdefault(jurisdiction,
                                        MemoryKeyBackend(jurisdiction, seed=TEST_SEED))
        elif request.param == "file":
            backend = LocalKeyFile(tmp_path / f"{jurisdiction}.kek", jurisdiction=jurisdiction,
                                   create=True)
        else:
            hsm: SoftHsm = request.getfixturevalue("softhsm")
            backend = hsm.backend(jurisdiction)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


@pytest.fixture
def jurisdiction() -> str:
    """A fresh jurisdiction code, so tests on the shared HSM token never collide."""
    return _random_jurisdiction()
