"""Every file the boot lets run is in the runtime digest a release names (promise 6).

The isolated boot (``runtime_boot``) compares site-packages with the lock's
``files``; the runtime slice (``releases.runtime.slice_of``), whose digest a
release approves, hashed only the files some distribution's RECORD owns.  The
lock sits in the runtime directory the custodian controls, so a custodian
planted a module no distribution owns (``brotli.py``: httpx, which the gateway
imports, runs ``import brotli`` when it can; many dependencies import optional
modules the same way), added its hash to the lock's ``files``, and the boot
accepted the runtime while its digest stayed the approved one.  Now a lock
with a site-packages file no distribution owns has no runtime slice
(``runtime_file_unrecorded``), and the slice is computed from the lock the
boot verified, not from a second read of the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bordergate import runtime_boot
from bordergate.errors import ConfigError
from bordergate.releases import runtime
from bordergate.releases.runtime import build_lock, read_lock_slice, slice_of

SITE = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=") \
        .decode()


def _env(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A runtime directory with one tiny distribution, and its honest lock."""
    env = tmp_path / "env"
    site = env / SITE
    (site / "tinydist").mkdir(parents=True)
    code = b"VALUE = 1\n"
    (site / "tinydist" / "__init__.py").write_bytes(code)
    info = site / "tinydist-1.0.dist-info"
    info.mkdir()
    metadata = b"Metadata-Version: 2.1\nName: tinydist\nVersion: 1.0\n\n"
    (info / "METADATA").write_bytes(metadata)
    (info / "RECORD").write_text(
        f"tinydist/__init__.py,{_record_hash(code)},{len(code)}\n"
        f"tinydist-1.0.dist-info/METADATA,{_record_hash(metadata)},{len(metadata)}\n"
        "tinydist-1.0.dist-info/RECORD,,\n")
    observed = {"python": list(sys.version_info[:3]), "implementation": sys.implementation.name,
                "roots": runtime_boot.roots(str(env)),
                "files": runtime_boot.observe(str(env), cache_path=None)}
    lock = build_lock(observed, site)
    (env / runtime_boot.LOCK_NAME).write_text(json.dumps(lock, sort_keys=True))
    return env, lock


def _boot_check(env: Path) -> subprocess.CompletedProcess[str]:
    """The boot's comparison, run as the gateway's boot runs it (its own process)."""
    return subprocess.run([sys.executable, "-I", "-S", "-B", runtime_boot.__file__,
                           str(env / runtime_boot.LOCK_NAME), "--check", "--cold"],
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_planted_module_the_lock_lists_but_no_distribution_owns_is_not_approved(
        tmp_path: Path) -> None:
    """Promise 6 ("every line of code that runs there was reviewed"): a module
    planted in site-packages and added to the lock's files either fails the boot
    or gives a runtime whose digest is not the approved one; never the approved
    digest with the planted code on the path."""
    env, honest = _env(tmp_path)
    approved = slice_of(honest).digest
    assert _boot_check(env).returncode == 0

    planted = b"import os\nos.environ['BORDERGATE_PWNED'] = '1'\n"
    (env / SITE / "brotli.py").write_bytes(planted)
    edited = json.loads(json.dumps(honest))
    edited["files"]["site"]["brotli.py"] = hashlib.sha256(planted).hexdigest()
    (env / runtime_boot.LOCK_NAME).write_text(json.dumps(edited, sort_keys=True))

    booted = _boot_check(env).returncode == 0
    try:
        running = read_lock_slice(env / runtime_boot.LOCK_NAME).digest
    except ConfigError as e:
        assert e.code == "runtime_file_unrecorded"
        return
    assert not booted or running != approved, "planted code runs under the approved digest"


def test_the_slice_is_the_lock_the_boot_verified(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Promise 6: after the boot verified the runtime against its lock, putting
    the approved lock back in place (the files still changed) does not make the
    self-check see the approved runtime."""
    env, honest = _env(tmp_path)
    approved = slice_of(honest).digest
    changed = b"VALUE = 2  # not reviewed\n"
    (env / SITE / "tinydist" / "__init__.py").write_bytes(changed)
    edited = json.loads(json.dumps(honest))
    edited["files"]["site"]["tinydist/__init__.py"] = hashlib.sha256(changed).hexdigest()
    lock_file = env / runtime_boot.LOCK_NAME
    lock_file.write_text(json.dumps(edited, sort_keys=True))
    result = runtime_boot.attest(str(lock_file), cold=True, isolated=False)
    monkeypatch.setattr(runtime_boot, "ATTESTED", result)
    lock_file.write_text(json.dumps(honest, sort_keys=True))  # the swap back
    current = runtime.current_runtime()
    assert current is not None and current.digest != approved
