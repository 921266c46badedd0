"""Keys review: what ``gateway init`` creates is not writable by other users, whatever
the umask.

The promise (docs/config.md: key and credential files are mode 0600, the log's
verifier key and the issuer's public key are what every party checks
signatures with): another local user can neither read a secret nor change a key
the deployment trusts.  The files holding secrets were 0600 whatever the umask,
but ``gateway init`` created the directories holding them, and the public keys
it writes (``log.vkey``, ``issuer.pub``), with the process's umask: under umask
0 (a service manager's ``UMask=0000``, a container entry point) every key
directory was 0777 and both public keys 0666, so any local user could put their
own log verifier key or token issuer key in place, or rename their own
credential list over the sequencer's.  The command is run in its own process under
umask 0; when the test runs as root the attacker's writes are made as ``nobody``.

TEST-ONLY keys: everything is created in a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

SECRET_SUFFIXES = (".key", ".cred", ".secret", ".pem", ".txt", ".json")
PUBLIC_KEYS = ("log.vkey", "issuer.pub")


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A directory another local user can reach (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="bordergate-umask-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _init_under_umask_0(root: Path) -> None:
    config = root / "bordergate.toml"
    config.write_text(resources.files("bordergate").joinpath("demo_config.toml")
                      .read_text(encoding="utf-8"))
    config.chmod(0o644)
    done = subprocess.run([sys.executable, "-m", "bordergate", "gateway", "init", "--config",
                           str(config)], cwd=root, check=False, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ), preexec_fn=lambda: os.umask(0))
    assert done.returncode == 0, done.stderr


def _as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-I", "-c", code], check=False, capture_output=True,
                          text=True, timeout=60)


def test_gateway_init_under_umask_0_leaves_nothing_writable_by_others(
        shared_root: Path) -> None:
    """Key files stay owner-only and keys the deployment trusts stay unchangeable by
    other users: after ``gateway init`` under umask 0, no directory on the way to a
    key, credential or secret file, and no public key it wrote, is writable by group
    or others; as root, ``nobody`` can neither rewrite ``log.vkey`` nor plant a file
    beside the credentials."""
    _init_under_umask_0(shared_root)
    data = shared_root / "data"
    kept: list[str] = []
    for path in sorted(data.rglob("*")):
        if "log" in path.relative_to(data).parts[1:2]:
            continue  # the log's own tiles (public, tamper-evident): the log's storage
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir() and mode & 0o022:
            kept.append(f"directory {path.relative_to(shared_root)} is {mode:04o}")
        elif path.name in PUBLIC_KEYS and mode & 0o022:
            kept.append(f"public key {path.relative_to(shared_root)} is {mode:04o}")
        elif path.is_file() and path.suffix in SECRET_SUFFIXES and mode & 0o077:
            kept.append(f"secret {path.relative_to(shared_root)} is {mode:04o}")
    if data.stat().st_mode & 0o022:
        kept.append(f"directory data is {stat.S_IMODE(data.stat().st_mode):04o}")

    if os.geteuid() == 0 and shutil.which("setpriv") is not None:
        vkey = data / "us" / "log.vkey"
        before = vkey.read_bytes()
        attack = _as_nobody(
            "import sys\n"
            f"try:\n open({str(vkey)!r}, 'w').write('attacker+00000000+AAAA\\n')\n"
            "except PermissionError: pass\nelse: print('vkey rewritten')\n"
            f"try:\n open({str(data / 'us' / 'log-operator' / 'appenders.txt.new')!r}, 'w')\n"
            "except PermissionError: pass\nelse: print('file planted beside the credentials')\n")
        assert attack.returncode == 0, attack.stderr
        kept += attack.stdout.splitlines()
        assert vkey.read_bytes() == before or "vkey rewritten" in kept
    assert not kept, "; ".join(kept)


def test_log_init_under_umask_0_keeps_its_key_directory_private(shared_root: Path) -> None:
    """Key files stay the owner's: ``log init`` under umask 0 creates the directory
    holding the log signing key (``DIR.key``, or ``--key-file``'s) and the log
    directory writable by nobody else, so no other user can replace the key or
    plant one where the log operator reads it."""
    for args in (["logs/one"], ["logs2/two", "--key-file", "logs2/two.key"]):
        done = subprocess.run([sys.executable, "-m", "bordergate", "log", "init", *args,
                               "--origin", "example.test/log"], cwd=shared_root, check=False,
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ), preexec_fn=lambda: os.umask(0))
        assert done.returncode == 0, done.stdout + done.stderr
    kept = [f"{d} is {stat.S_IMODE((shared_root / d).stat().st_mode):04o}"
            for d in ("logs", "logs/one", "logs2", "logs2/two")
            if (shared_root / d).stat().st_mode & 0o022]
    kept += [f"{k} is {stat.S_IMODE((shared_root / k).stat().st_mode):04o}"
             for k in ("logs/one.key", "logs2/two.key")
             if (shared_root / k).stat().st_mode & 0o077]
    pointer = shared_root / "logs2" / "two" / ".sequencer" / "key-path"
    if pointer.stat().st_mode & 0o022:
        kept.append(f"the key pointer is {stat.S_IMODE(pointer.stat().st_mode):04o}")
    assert not kept, "; ".join(kept)


def test_keygen_commands_under_umask_0_keep_their_key_directories_private(
        shared_root: Path) -> None:
    """Key files stay the owner's: ``roster keygen`` (the identity authority's roster
    signing key) and ``gateway receipt-keygen`` under umask 0 create the directories
    they write their key into writable by nobody else, and ``gateway template``
    writes the deployment file 0644 in such a directory."""
    for args in (["roster", "keygen", "--key-file", "authority/us/roster.key", "-j", "us"],
                 ["gateway", "receipt-keygen", "--key-file", "receipts/us/receipt.key",
                  "-j", "us"],
                 ["gateway", "template", "--out", "deploy"]):
        done = subprocess.run([sys.executable, "-m", "bordergate", *args], cwd=shared_root,
                              check=False, capture_output=True, text=True, timeout=120,
                              env=dict(os.environ), preexec_fn=lambda: os.umask(0))
        assert done.returncode == 0, done.stdout + done.stderr
    kept = [f"{d} is {stat.S_IMODE((shared_root / d).stat().st_mode):04o}"
            for d in ("authority", "authority/us", "receipts", "receipts/us", "deploy",
                      "deploy/bordergate.toml")
            if (shared_root / d).stat().st_mode & 0o022]
    assert not kept, "; ".join(kept)
