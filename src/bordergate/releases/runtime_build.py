"""Build a gateway runtime: the release's wheel in its own hash-locked environment.

``bordergate release build-runtime --out DIR`` (promise 6, docs/runtime-attestation.md):

1. builds bordergate's wheel from the source tree (``pip wheel SOURCE --no-deps``,
   hatchling: reproducible) into ``DIR/wheelhouse``;
2. downloads, into the same wheelhouse, a wheel of every runtime dependency at
   the version installed here, and of ``pip`` and ``setuptools`` (pinned);
3. writes ``DIR/requirements.lock``: ``name==version --hash=sha256:<hex>`` per wheel;
4. makes ``DIR/env`` (``python -m venv --without-pip`` from this base
   interpreter) and installs the lock into it with
   ``pip install --require-hashes --no-deps --no-index`` (non-editable);
5. writes the environment's lock (``releases.runtime.write_lock``).

Steps 2-4 need network access to the package index for step 2 only.  This module
runs ``pip`` and ``venv``; it must never touch a log.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bordergate.errors import ConfigError, Unavailable
from bordergate.releases.manifest import dependency_records, installed_package_dir
from bordergate.releases.runtime import write_lock

__all__ = ["BuiltRuntime", "build_runtime", "cached_runtime", "lock_digest", "requirements_lock",
           "runtime_key", "source_tree"]

PINNED_TOOLS = ("pip", "setuptools")
_WHEEL_NAME = re.compile(r"([^-]+)-([^-]+)-.*\.whl")


@dataclass(frozen=True)
class BuiltRuntime:
    """A built runtime: its directory, environment and lock."""

    out: Path
    env: Path
    requirements: Path
    lock: dict[str, Any]


def source_tree(package_dir: Path | None = None) -> Path:
    """The source tree holding ``pyproject.toml`` of the imported package (src layout).

    Raises:
        ConfigError: ``runtime_source_not_found`` (an installed, not checked-out, package).
    """
    pkg = package_dir or installed_package_dir()
    for parent in pkg.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    raise ConfigError(f"no pyproject.toml above {pkg}: pass --source",
                      code="runtime_source_not_found")


def _pip(*args: str, cwd: Path | None = None) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=1800, check=False, cwd=cwd, env=env)
    if done.returncode != 0:
        raise Unavailable(f"pip {args[0]} failed: {done.stderr.strip()[-2000:]}",
                          code="runtime_build_failed")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> list[tuple[str, str]]:
    """``(name, version)`` of every runtime dependency and pinned tool installed here."""
    out = [(d.name, d.version) for d in dependency_records()]
    for tool in PINNED_TOOLS:
        out.append((tool, importlib.metadata.version(tool)))
    return sorted(set(out))


def requirements_lock(wheelhouse: Path) -> str:
    """``name==version --hash=sha256:<hex>`` lines for every wheel in ``wheelhouse``."""
    lines = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        match = _WHEEL_NAME.fullmatch(wheel.name)
        if match is None:
            continue
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{_normal(match.group(1))}=={match.group(2)} --hash=sha256:{digest}")
    return "\n".join(lines) + "\n"


def lock_digest(out: Path) -> str:
    """sha256 hex of ``out/requirements.lock`` (the key of a cached runtime)."""
    return hashlib.sha256((out / "requirements.lock").read_bytes()).hexdigest()


def build_runtime(out: Path, *, source: Path | None = None) -> BuiltRuntime:
    """Build the runtime of the installed source tree into ``out`` (see the module docstring).

    Raises:
        ConfigError: the source tree is not found, or the environment cannot be
            locked (``runtime_editable``, ``runtime_file_unrecorded``...).
        Unavailable: ``runtime_build_failed`` (pip or venv failed: network, index).
    """
    src = source or source_tree()
    out.mkdir(parents=True, exist_ok=True)
    wheelhouse = out / "wheelhouse"
    shutil.rmtree(wheelhouse, ignore_errors=True)
    wheelhouse.mkdir()
    _pip("wheel", str(src), "--no-deps", "--quiet", "-w", str(wheelhouse))
    _pip("download", "--no-deps", "--only-binary=:all:", "--quiet", "-d", str(wheelhouse),
         *(f"{n}=={v}" for n, v in pins()))
    requirements = out / "requirements.lock"
    requirements.write_text(requirements_lock(wheelhouse), "utf-8")
    env = out / "env"
    shutil.rmtree(env, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    made = subprocess.run([base, "-m", "venv", "--without-pip", str(env)], capture_output=True,
                          text=True, timeout=300, check=False)
    if made.returncode != 0:
        raise Unavailable(f"venv failed: {made.stderr.strip()[-2000:]}",
                          code="runtime_build_failed")
    _pip("--python", str(env / "bin" / "python"), "install", "--require-hashes", "--no-deps",
         "--no-index", "--quiet", "--find-links", str(wheelhouse), "-r", str(requirements))
    return BuiltRuntime(out, env, requirements, write_lock(env))


def runtime_key(package_dir: Path | None = None) -> str:
    """sha256 hex of what determines the runtime's lock: the package, the project's
    metadata (``pyproject.toml`` and the readme it names: the wheel's METADATA holds
    them, so a change to either changes the wheel's hash and the runtime's digest),
    the pins, the Python.

    (The requirements lock itself needs the wheel built first; these are its inputs.)
    """
    from bordergate.tree_digest import digest_directory
    pkg = package_dir or installed_package_dir()
    parts = [digest_directory(pkg).digest, *_metadata_digests(pkg), sys.version,
             *(f"{n}=={v}" for n, v in pins())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _metadata_digests(package_dir: Path) -> list[str]:
    """``name sha256`` of the source tree's ``pyproject.toml`` and of the readme it
    names; none for an installed (not checked-out) package, which cannot be built."""
    import tomllib
    try:
        tree = source_tree(package_dir)
    except ConfigError:
        return []
    pyproject = tree / "pyproject.toml"
    files = [pyproject]
    try:
        readme = tomllib.loads(pyproject.read_text("utf-8")).get("project", {}).get("readme")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        readme = None  # pip's build refuses it too; the key still covers its bytes
    if isinstance(readme, dict):
        readme = readme.get("file")
    if isinstance(readme, str) and (tree / readme).is_file():
        files.append(tree / readme)
    return [f"{f.name} {hashlib.sha256(f.read_bytes()).hexdigest()}" for f in files]


def cached_runtime(cache_dir: Path) -> BuiltRuntime:
    """The runtime of the installed source tree, built once under ``cache_dir``.

    Reused when ``cache_dir/runtime-<key>`` (:func:`runtime_key`) holds one that
    still verifies against its lock; built otherwise (minutes: see
    docs/runtime-attestation.md).

    Raises:
        ConfigError, Unavailable: as :func:`build_runtime`.
    """
    import json

    from bordergate.releases.runtime import check_runtime, lock_path
    out = cache_dir / f"runtime-{runtime_key()[:24]}"
    env = out / "env"
    if lock_path(env).is_file():
        try:
            check_runtime(env)
            lock = json.loads(lock_path(env).read_text("utf-8"))
            return BuiltRuntime(out, env, out / "requirements.lock", lock)
        except (ConfigError, ValueError):
            pass  # damaged or changed: build it again
    return build_runtime(out)
