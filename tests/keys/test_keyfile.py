"""The local key file: 0600, refused when readable by others, key bytes nowhere else."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from bordergate.errors import ConfigError
from bordergate.keys.backends.keyfile import LocalKeyFile
from bordergate.keys.envelope import data_key_aad


def _kek_bytes(path: Path) -> list[bytes]:
    doc = json.loads(path.read_text())
    return [base64.b64decode(k) for k in doc["versions"].values()]


def test_created_owner_only_and_refused_when_readable_by_others(tmp_path: Path) -> None:
    """Promise 1: the key file is created 0600 and a group/world-readable one is refused."""
    path = tmp_path / "us.kek"
    LocalKeyFile(path, jurisdiction="us", create=True).create_version()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError) as info:
        LocalKeyFile(path, jurisdiction="us")
    assert info.value.code == "key_file_permissions"


def test_key_bytes_live_only_in_the_key_file(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Promise 1: KEK bytes appear in the key file and in no other file, output or repr."""
    keys = tmp_path / "keys"
    keys.mkdir()
    backend = LocalKeyFile(keys / "us.kek", jurisdiction="us", create=True)
    for _ in range(3):
        backend.create_version()
    backend.destroy_version(1)
    wrapped = backend.wrap(bytes(32), data_key_aad("us", "s", 2), 2)
    kek = _kek_bytes(keys / "us.kek")
    assert len(kek) == 2
    encodings = [form for k in kek for form in (k, base64.b64encode(k), k.hex().encode())]
    others = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "us.kek"]
    assert [p.name for p in others] == ["us.kek.lock"]  # no temporary copies left
    out = capsys.readouterr()
    blobs = [p.read_bytes() for p in others] + [repr(backend).encode(), wrapped,
                                                 out.out.encode(), out.err.encode()]
    assert not any(enc in blob for enc in encodings for blob in blobs)


BAD_FILES = {
    "not-json": (b"{", "key_file_invalid"),
    "wrong-format": (json.dumps({"format": "x"}).encode(), "key_file_invalid"),
    "bad-base64": (json.dumps({"format": "bordergate-kek-file/1", "jurisdiction": "us",
                               "versions": {"1": "!!"}}).encode(), "key_file_invalid"),
    "short-key": (json.dumps({"format": "bordergate-kek-file/1", "jurisdiction": "us",
                              "versions": {"1": base64.b64encode(b"x").decode()}}).encode(),
                  "key_file_invalid"),
    "bad-version": (json.dumps({"format": "bordergate-kek-file/1", "jurisdiction": "us",
                                "versions": {"v1": base64.b64encode(bytes(32)).decode()}}
                               ).encode(), "key_file_invalid"),
    "other-jurisdiction": (json.dumps({"format": "bordergate-kek-file/1",
                                       "jurisdiction": "eu", "versions": {}}).encode(),
                           "key_file_jurisdiction"),
}


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_malformed_key_files(tmp_path: Path, case: tuple[bytes, str]) -> None:
    """Behaviour: a malformed or foreign key file is a ConfigError with a stable code."""
    data, code = case
    path = tmp_path / "us.kek"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, data)
    os.close(fd)
    with pytest.raises(ConfigError) as info:
        LocalKeyFile(path, jurisdiction="us")
    assert info.value.code == code


def test_missing_key_file(tmp_path: Path) -> None:
    """Behaviour: opening a missing key file without create says to run keys init."""
    with pytest.raises(ConfigError) as info:
        LocalKeyFile(tmp_path / "nope.kek", jurisdiction="us")
    assert info.value.code == "key_file_missing"
    assert "keys init" in str(info.value)


def test_destroyed_version_is_gone_from_the_file(tmp_path: Path) -> None:
    """Promise 8: destroying a KEK version removes its bytes from the key file."""
    path = tmp_path / "us.kek"
    backend = LocalKeyFile(path, jurisdiction="us", create=True)
    backend.create_version()
    backend.create_version()
    first = _kek_bytes(path)[0]
    backend.destroy_version(1)
    assert base64.b64encode(first) not in path.read_bytes()
    assert LocalKeyFile(path, jurisdiction="us").versions() == (2,)
