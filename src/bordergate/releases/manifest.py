"""Release manifests: what exactly a release is, as canonical JSON.

A manifest names the code and the policy a gateway may run (docs/design.md,
promise 6)::

    {"format": "bordergate-release/1",
     "version": "0.1.0",                       bordergate's version
     "revision": "<git commit>" | null,        source revision, "-dirty" if changed
     "python": "cpython-3.11.2",               the interpreter that proposed it (informative)
     "package": {"digest": "sha256:<hex>", "files": {"<path>": "<sha256 hex>", ...}},
     "policy":  {"digest": "sha256:<hex>", "files": {...}},
     "dependencies": [{"name": "cryptography", "version": "43.0.1",
                       "record": "sha256:<hex of its RECORD file>"}, ...],
     "time": "2026-11-28T00:19:58.123Z",
     "runtime": {...} | null,                  format /2 only: releases.runtime.RuntimeSlice
     "deployment": {...} | null}               format /2 only: releases.deployment_slice

Format ``bordergate-release/2`` adds ``runtime`` (the hash-locked environment
the gateway runs from, or null when proposed from a development environment)
and ``deployment`` (the jurisdiction's decision-relevant settings).  A
manifest built without either is written in format /1, which still parses.

The package digest is the canonical-file-list digest (``bordergate.tree_digest``) of
the installed ``bordergate`` package directory: every regular file under it
(``*.py``, the shipped policy bundle, templates, ``py.typed``...), skipping
hidden entries and ``__pycache__`` directories (byte-code caches of the ``.py``
files).  A ``*.pyc`` outside ``__pycache__`` *is* counted: Python imports such
a sourceless file as code.  The same files are in the wheel and in a checkout's
``src/bordergate``, so anyone can recompute the digest (docs/releases.md).

The release id is ``sha256:<hex>`` of the canonical manifest bytes: equal for
anyone who reads the manifest, independent of where the entry landed in the
log, and a key for ``release diff``.  The per-file hashes are in the manifest so
that a diff needs nothing but the log.

``build_manifest`` reads the installed files and distribution metadata (and
asks ``git`` for the revision); everything else here is pure.  This module must
never write files, sign anything or touch a log.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bordergate.entries import canonical_json, format_time, parse_time
from bordergate.errors import VerificationError
from bordergate.releases.deployment_slice import (
    DeploymentSlice,
    diff_settings,
    parse_deployment_slice,
)
from bordergate.releases.runtime import RuntimeSlice, diff_slices, parse_slice
from bordergate.tree_digest import DIGEST_PREFIX, FileListDigest, digest_directory

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_FORMAT_2",
    "Dependency",
    "Manifest",
    "ReleaseDiff",
    "build_manifest",
    "dependency_records",
    "diff_manifests",
    "installed_package_dir",
    "parse_manifest",
    "release_id",
    "source_revision",
]

MANIFEST_FORMAT = "bordergate-release/1"
MANIFEST_FORMAT_2 = "bordergate-release/2"
REVISION_FILE = "REVISION"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REQ_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


@dataclass(frozen=True)
class Dependency:
    """One installed distribution the package depends on (transitively).

    Attributes:
        name: normalized distribution name (PEP 503).
        version: installed version.
        record: ``sha256:<hex>`` of its RECORD file, or None when it has none.
    """

    name: str
    version: str
    record: str | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "record": self.record}


@dataclass(frozen=True)
class Manifest:
    """A release manifest (see the module docstring for the JSON form)."""

    version: str
    revision: str | None
    python: str
    package_digest: str
    package_files: Mapping[str, str]
    policy_digest: str
    policy_files: Mapping[str, str]
    dependencies: tuple[Dependency, ...]
    time: str
    runtime: RuntimeSlice | None = None
    deployment: DeploymentSlice | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready object."""
        out = self._json_v1()
        if self.runtime is not None or self.deployment is not None:
            out["format"] = MANIFEST_FORMAT_2
            out["runtime"] = self.runtime.to_json() if self.runtime is not None else None
            out["deployment"] = (self.deployment.to_json() if self.deployment is not None
                                 else None)
        return out

    def _json_v1(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "version": self.version,
            "revision": self.revision,
            "python": self.python,
            "package": {"digest": self.package_digest, "files": dict(self.package_files)},
            "policy": {"digest": self.policy_digest, "files": dict(self.policy_files)},
            "dependencies": [d.to_json() for d in self.dependencies],
            "time": self.time,
        }

    def canonical(self) -> bytes:
        """Canonical JSON bytes (the input of :func:`release_id`)."""
        return canonical_json(self.to_json())

    @property
    def id(self) -> str:
        """The release id: ``sha256:<hex>`` of the canonical manifest."""
        return release_id(self.canonical())


def release_id(canonical_manifest: bytes) -> str:
    """``sha256:<hex>`` of a canonical manifest's bytes."""
    return DIGEST_PREFIX + hashlib.sha256(canonical_manifest).hexdigest()


def installed_package_dir() -> Path:
    """The directory of the ``bordergate`` package this process imported."""
    import bordergate
    return Path(bordergate.__file__).resolve().parent


def source_revision(package_dir: Path) -> str | None:
    """The source revision of ``package_dir``.

    The git commit when ``package_dir`` is in a git checkout (``-dirty``
    appended when its files differ from that commit), else the first line
    of ``package_dir/REVISION`` baked in at build time, else None.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=package_dir,
                              capture_output=True, text=True, timeout=10, check=False)
        if head.returncode == 0 and _HEX_COMMIT.fullmatch(head.stdout.strip()):
            status = subprocess.run(["git", "status", "--porcelain", "--", "."],
                                    cwd=package_dir, capture_output=True, text=True,
                                    timeout=10, check=False)
            dirty = status.returncode != 0 or bool(status.stdout.strip())
            return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        baked = (package_dir / REVISION_FILE).read_text("utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return baked[0][:100] if baked and baked[0] else None


_HEX_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: importlib.metadata.Distribution,
                  extras: frozenset[str]) -> Iterable[tuple[str, frozenset[str]]]:
    """``(name, extras)`` of the requirements that apply with ``extras`` enabled.

    A requirement whose marker asks for an extra counts only when that extra is
    enabled; any other marker (python_version, sys_platform...) counts when the
    distribution is installed, which the caller checks.
    """
    for text in dist.requires or []:
        spec, _, marker = text.partition(";")
        wanted = _EXTRA_MARKER.findall(marker)
        if wanted and not extras & {_normalize(w) for w in wanted}:
            continue
        match = _REQ_NAME.match(spec)
        if match is None:
            continue
        names = frozenset(_normalize(x) for x in (match.group(2) or "").split(",") if x.strip())
        yield _normalize(match.group(1)), names


def _record_digest(dist: importlib.metadata.Distribution) -> str | None:
    for path in dist.files or []:
        if path.name == "RECORD" and path.parent.name.endswith(".dist-info"):
            try:
                data = Path(str(path.locate())).read_bytes()
            except OSError:
                return None
            return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
    return None


def dependency_records(root: str = "bordergate") -> tuple[Dependency, ...]:
    """Every installed distribution ``root`` depends on, transitively, sorted by name.

    Args:
        root: the distribution whose requirements are followed (not listed itself).

    Returns:
        Name, version and RECORD digest of each installed dependency;
        requirements that are not installed (platform markers) are skipped.
    """
    seen: dict[str, Dependency] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(_normalize(root), frozenset())]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if name != _normalize(root) and name not in seen:
            seen[name] = Dependency(name, dist.version, _record_digest(dist))
        todo.extend(_requirements(dist, extras))
    return tuple(seen[n] for n in sorted(seen))


def _python() -> str:
    return f"{platform.python_implementation().lower()}-{platform.python_version()}"


def build_manifest(policy_dir: str | os.PathLike[str], *, now: float,
                   package_dir: str | os.PathLike[str] | None = None,
                   version: str | None = None, revision: str | bool | None = True,
                   dependencies: tuple[Dependency, ...] | None = None,
                   runtime: RuntimeSlice | None = None,
                   deployment: DeploymentSlice | None = None) -> Manifest:
    """Build the manifest of the installed package and a policy bundle directory.

    Args:
        policy_dir: the policy bundle directory the gateway loads.
        now: the release time, epoch seconds.
        package_dir: the package directory (default: the imported one).
        version: defaults to ``bordergate.__version__``.
        revision: a fixed revision, None for none, or True to detect it
            (:func:`source_revision`).
        dependencies: defaults to :func:`dependency_records`.
        runtime: the runtime slice to record (format /2), if any.
        deployment: the jurisdiction's deployment slice to record (format /2), if any.

    Returns:
        The manifest.

    Raises:
        ConfigError: a directory cannot be read or holds a symlink or a badly
            named file (see ``tree_digest.read_tree``).
    """
    from bordergate import __version__
    pkg = Path(package_dir) if package_dir is not None else installed_package_dir()
    package = digest_directory(pkg)
    policy = digest_directory(policy_dir)
    return Manifest(
        version=version if version is not None else __version__,
        revision=source_revision(pkg) if revision is True else (revision or None),
        python=_python(),
        package_digest=package.digest,
        package_files=dict(package.files),
        policy_digest=policy.digest,
        policy_files=dict(policy.files),
        dependencies=dependencies if dependencies is not None else dependency_records(),
        time=format_time(now), runtime=runtime, deployment=deployment,
    )


# -- parsing manifests read from a log (untrusted) ---------------------------------

def _bad(what: str) -> VerificationError:
    return VerificationError(f"release manifest: {what}", code="malformed_manifest")


def _string(obj: Mapping[str, Any], key: str, *, optional: bool = False,
            limit: int = 200) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _bad(f"{key!r} is not a string of 1..{limit} characters")
    return value


def _file_list(obj: Any, key: str) -> tuple[str, dict[str, str]]:
    if not isinstance(obj, dict) or set(obj) != {"digest", "files"}:
        raise _bad(f"{key!r} is not {{digest, files}}")
    digest, files = obj["digest"], obj["files"]
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise _bad(f"{key}.digest is not sha256:<hex>")
    if not isinstance(files, dict) or not all(
            isinstance(p, str) and _clean_path(p) and isinstance(h, str) and _HEX64.fullmatch(h)
            for p, h in files.items()):
        raise _bad(f"{key}.files is not a map of clean relative path to sha256 hex")
    listed = FileListDigest("", tuple(sorted(files.items(), key=lambda i: i[0].encode())))
    computed = DIGEST_PREFIX + hashlib.sha256(listed.manifest().encode()).hexdigest()
    if computed != digest:
        raise _bad(f"{key}.files do not give {key}.digest")
    return digest, files


def _clean_path(path: str) -> bool:
    # the digest scheme's own rule: a name that would change the sha256sum lines
    # (newline, backslash, control characters) could make two lists one digest
    return (bool(path) and not path.startswith("/")
            and all(part not in ("", ".", "..") for part in path.split("/"))
            and not any(ord(c) < 0x20 or c in "\x7f\\" for c in path))


def _dependencies(value: Any) -> tuple[Dependency, ...]:
    if not isinstance(value, list):
        raise _bad("'dependencies' is not a list")
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"name", "version", "record"}:
            raise _bad("a dependency is not {name, version, record}")
        record = item["record"]
        if record is not None and (not isinstance(record, str) or not _DIGEST.fullmatch(record)):
            raise _bad("a dependency record is not sha256:<hex> or null")
        name, version = _string(item, "name"), _string(item, "version")
        assert name is not None and version is not None
        out.append(Dependency(name, version, record))
    return tuple(out)


def parse_manifest(obj: Any) -> Manifest:
    """Check a manifest read from a log entry and return it.

    The file lists must reproduce their digests, so a manifest cannot name one
    digest and list other files.

    Raises:
        VerificationError: code ``malformed_manifest`` for any defect.
    """
    if not isinstance(obj, dict):
        raise _bad("not a JSON object")
    keys = {"format", "version", "revision", "python", "package", "policy", "dependencies",
            "time"}
    if obj.get("format") == MANIFEST_FORMAT_2:
        keys |= {"runtime", "deployment"}
    elif obj.get("format") != MANIFEST_FORMAT:
        raise _bad(f"unknown format {str(obj.get('format'))[:40]!r}")
    if set(obj) != keys:
        raise _bad(f"keys are {sorted(obj)}, expected {sorted(keys)}")
    runtime = parse_slice(obj["runtime"]) if obj.get("runtime") is not None else None
    deployment = (parse_deployment_slice(obj["deployment"])
                  if obj.get("deployment") is not None else None)
    package_digest, package_files = _file_list(obj["package"], "package")
    policy_digest, policy_files = _file_list(obj["policy"], "policy")
    version, time = _string(obj, "version"), _string(obj, "time")
    python = _string(obj, "python")
    try:
        parse_time(time or "")
    except VerificationError:
        raise _bad("'time' is not an RFC 3339 UTC time with milliseconds") from None
    assert version is not None and time is not None and python is not None
    return Manifest(version=version, revision=_string(obj, "revision", optional=True),
                    python=python, package_digest=package_digest, package_files=package_files,
                    policy_digest=policy_digest, policy_files=policy_files,
                    dependencies=_dependencies(obj["dependencies"]), time=time,
                    runtime=runtime, deployment=deployment)


# -- what changed between two releases ------------------------------------------------

@dataclass(frozen=True)
class ReleaseDiff:
    """What reviewers must read between two releases.

    Each list holds ``(kind, name)`` with kind ``added``, ``removed`` or
    ``changed``; ``name`` is a file path (prefixed ``package/`` or ``policy/``)
    or, for dependencies, ``name old-version -> new-version``.
    """

    files: tuple[tuple[str, str], ...]
    dependencies: tuple[tuple[str, str], ...]
    settings: tuple[str, ...] = ()
    runtime: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.files or self.dependencies or self.settings or self.runtime)


def _diff_files(prefix: str, old: Mapping[str, str], new: Mapping[str, str]
                ) -> list[tuple[str, str]]:
    out = []
    for path in sorted(old.keys() | new.keys(), key=lambda p: p.encode()):
        if path not in new:
            out.append(("removed", prefix + path))
        elif path not in old:
            out.append(("added", prefix + path))
        elif old[path] != new[path]:
            out.append(("changed", prefix + path))
    return out


def diff_manifests(old: Manifest, new: Manifest) -> ReleaseDiff:
    """The files and dependencies that differ from ``old`` to ``new``."""
    files = _diff_files("package/", old.package_files, new.package_files) + \
        _diff_files("policy/", old.policy_files, new.policy_files)
    a = {d.name: d for d in old.dependencies}
    b = {d.name: d for d in new.dependencies}
    deps = []
    for name in sorted(a.keys() | b.keys()):
        if name not in b:
            deps.append(("removed", f"{name} {a[name].version}"))
        elif name not in a:
            deps.append(("added", f"{name} {b[name].version}"))
        elif (a[name].version, a[name].record) != (b[name].version, b[name].record):
            deps.append(("changed", f"{name} {a[name].version} -> {b[name].version}"))
    settings: list[str] = []
    if old.deployment is not None and new.deployment is not None:
        settings = diff_settings(old.deployment, new.deployment)
    elif (old.deployment is None) != (new.deployment is None):
        settings = ["deployment settings " + ("added" if old.deployment is None else "removed")]
    runtime: list[str] = []
    if old.runtime is not None and new.runtime is not None:
        runtime = diff_slices(old.runtime, new.runtime)
    elif (old.runtime is None) != (new.runtime is None):
        runtime = ["runtime " + ("added" if old.runtime is None else "removed")]
    return ReleaseDiff(tuple(files), tuple(deps), tuple(settings), tuple(runtime))
