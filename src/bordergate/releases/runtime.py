"""The gateway's runtime as a release records it: a hash-locked environment (promise 6).

A *runtime* is a virtual environment holding a non-editable install of the
release's wheel and its hash-pinned dependencies (``releases.runtime_build``
makes one).  Its **lock** (``ENV/bordergate-runtime.json``, written by
:func:`write_lock`) lists the sha256 of every file the gateway could import::

    {"format": "bordergate-runtime/1", "python": [3, 11, 7], "implementation": "cpython",
     "files": {"interpreter": {"python": hex, "libpython": hex},
               "stdlib": {"<path>": hex, ...},          without site-packages, __pycache__
               "site":   {"<path>": hex, ...}},        every file, caches included
     "distributions": {"<name>": {"version": "...", "files": ["<site path>", ...]}},
     "digest": "sha256:<hex of the runtime slice>"}

and ``runtime_boot`` compares the environment with it before the gateway
imports anything.  Every site-packages file must be listed in some
distribution's RECORD (its hash re-computed and compared with the RECORD's),
except byte-code caches; an editable install is refused.

A release manifest carries the compact **runtime slice** (:class:`RuntimeSlice`):
the interpreter files' digests, the standard library's tree digest and each
distribution's version and tree digest (byte-code caches and RECORD files left
out: caches are neutralised at start, and neither is reproducible across
installs; the local lock still lists both, so a change to either is refused).
Its ``digest`` identifies the runtime; two builds of one source tree with one
set of pins give one digest (tests/releases).

This module reads files and runs the environment's interpreter (for what *it*
would import); it must never write to a log or decide about releases.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bordergate import runtime_boot
from bordergate.entries import canonical_json
from bordergate.errors import ConfigError, VerificationError
from bordergate.tree_digest import DIGEST_PREFIX, FileListDigest

__all__ = [
    "RuntimeSlice",
    "build_lock",
    "check_runtime",
    "current_runtime",
    "diff_slices",
    "lock_path",
    "parse_slice",
    "read_lock_slice",
    "write_lock",
]

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_DIST_VALUE = re.compile(r"(\S{1,100}) (sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class RuntimeSlice:
    """What a release records of its runtime (see the module docstring).

    Attributes:
        python: ``cpython-3.11.7``.
        interpreter: ``{"python": "sha256:..", "libpython": "sha256:.."}``.
        stdlib: tree digest of the standard library.
        distributions: name -> ``"<version> sha256:<tree digest>"``.
    """

    python: str
    interpreter: Mapping[str, str]
    stdlib: str
    distributions: Mapping[str, str]

    def body(self) -> dict[str, Any]:
        return {"python": self.python, "interpreter": dict(self.interpreter),
                "stdlib": self.stdlib, "distributions": dict(self.distributions)}

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical slice: the runtime's identity."""
        return DIGEST_PREFIX + hashlib.sha256(canonical_json(self.body())).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, **self.body()}


def _tree(files: Mapping[str, str]) -> str:
    listed = FileListDigest("", tuple(sorted(files.items(), key=lambda i: i[0].encode())))
    return DIGEST_PREFIX + hashlib.sha256(listed.manifest().encode()).hexdigest()


def _cached(path: str) -> bool:
    return "__pycache__" in path.split("/")


def _install_specific(path: str) -> bool:
    """Files a second install of the same wheels writes differently: byte-code caches
    (source mtimes) and RECORD files (they hash the console scripts, whose first line
    names the environment's interpreter).  Every file a RECORD lists is hashed itself."""
    parts = path.split("/")
    return _cached(path) or (len(parts) == 2 and parts[0].endswith(".dist-info")
                             and parts[1] == "RECORD")


def slice_of(lock: Mapping[str, Any]) -> RuntimeSlice:
    """The runtime slice of a lock object.

    Raises:
        ConfigError: ``runtime_lock_invalid`` (a malformed lock);
            ``runtime_file_unrecorded`` (a site-packages file no distribution owns).
    """
    try:
        files = lock["files"]
        site = files["site"]
        dists = {}
        owned: set[str] = set()
        for name, dist in lock["distributions"].items():
            listed = {p: site[p] for p in dist["files"] if not _install_specific(p)}
            dists[name] = f"{dist['version']} {_tree(listed)}"
            owned.update(dist["files"])
        # the boot lets every file of files.site run; the digest covers only the
        # distributions' files: a file no distribution owns would run unnamed
        stray = sorted(p for p in site if p not in owned and not _cached(p))
        if stray:
            raise ConfigError(f"the runtime lock lists {len(stray)} site-packages file(s) no "
                              f"distribution owns, e.g. {', '.join(stray[:5])}: they would "
                              "run without being in the runtime digest",
                              code="runtime_file_unrecorded")
        return RuntimeSlice(
            python=f"{lock['implementation']}-{'.'.join(str(n) for n in lock['python'])}",
            interpreter={k: DIGEST_PREFIX + v for k, v in files["interpreter"].items()},
            stdlib=_tree(files["stdlib"]), distributions=dists)
    except (KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"malformed runtime lock: {e!r}", code="runtime_lock_invalid") from None


def _record(dist_info: Path) -> dict[str, str | None]:
    """Site-relative path -> urlsafe-base64 sha256 (or None) of a RECORD file."""
    out: dict[str, str | None] = {}
    text = (dist_info / "RECORD").read_text("utf-8")
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        path = os.path.normpath(row[0]).replace(os.sep, "/")
        hashed = row[1] if len(row) > 1 else ""
        out[path] = hashed.removeprefix("sha256=") if hashed.startswith("sha256=") else None
    return out


def _metadata(dist_info: Path) -> tuple[str, str]:
    name = version = ""
    for line in (dist_info / "METADATA").read_text("utf-8").splitlines():
        if line.startswith("Name: "):
            name = line[6:].strip()
        elif line.startswith("Version: "):
            version = line[9:].strip()
        elif not line:
            break
    return re.sub(r"[-_.]+", "-", name).lower(), version


def _editable(dist_info: Path) -> bool:
    try:
        direct = json.loads((dist_info / "direct_url.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(direct, dict) and direct.get("dir_info", {}).get("editable"))


def build_lock(observed: Mapping[str, Any], site: Path) -> dict[str, Any]:
    """The lock of an environment from what its interpreter observed (``--observe``).

    Every site-packages file must be in a distribution's RECORD with the hash
    the RECORD gives (when it gives one), byte-code caches excepted.

    Raises:
        ConfigError: ``runtime_editable`` (an editable install),
            ``runtime_record_mismatch`` (a file differs from its RECORD),
            ``runtime_file_unrecorded`` (a file no RECORD lists).
    """
    files: dict[str, str] = observed["files"]["site"]
    dists: dict[str, dict[str, Any]] = {}
    owned: set[str] = set()
    for info in sorted(site.glob("*.dist-info")):
        if _editable(info):
            raise ConfigError(f"{info.name}: an editable install is not a runtime (install the "
                              "wheel)", code="runtime_editable")
        name, version = _metadata(info)
        listed = []
        for path, want in _record(info).items():
            have = files.get(path)
            if have is None:
                continue  # e.g. a .pyc pip recorded but did not compile
            if want is not None and base64.urlsafe_b64encode(bytes.fromhex(have)) \
                    .rstrip(b"=").decode() != want:
                raise ConfigError(f"{path} differs from the RECORD of {name}",
                                  code="runtime_record_mismatch")
            listed.append(path)
            owned.add(path)
        dists[name] = {"version": version, "files": sorted(listed)}
    stray = sorted(p for p in files if p not in owned and not _cached(p))
    if stray:
        raise ConfigError(f"{len(stray)} site-packages file(s) no RECORD lists, e.g. "
                          f"{', '.join(stray[:5])}", code="runtime_file_unrecorded")
    lock: dict[str, Any] = {"format": runtime_boot.LOCK_FORMAT, "python": observed["python"],
                            "implementation": observed["implementation"],
                            "files": observed["files"], "distributions": dists}
    lock["digest"] = slice_of(lock).digest
    return lock


def lock_path(env: Path) -> Path:
    """Where environment ``env`` keeps its lock."""
    return env / runtime_boot.LOCK_NAME


def _run_boot(env: Path, *args: str) -> dict[str, Any]:
    python = env / "bin" / "python"
    script = Path(runtime_boot.__file__)
    done = subprocess.run([str(python), "-I", "-S", "-B", str(script), str(lock_path(env)),
                           *args], capture_output=True, text=True, timeout=600, check=False,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        code = re.match(r"error \[([a-z_]+)\]", last[0])
        raise ConfigError(f"runtime {env}: {done.stderr.strip()[-2000:]}",
                          code=code.group(1) if code else "runtime_unusable")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def write_lock(env: Path) -> dict[str, Any]:
    """Observe environment ``env`` with its own interpreter and write its lock.

    Returns:
        The lock.

    Raises:
        ConfigError: as :func:`build_lock`, or the interpreter cannot run.
    """
    observed = _run_boot(env, "--observe")
    lock = build_lock(observed, Path(observed["roots"]["site"]))
    lock_path(env).write_text(json.dumps(lock, sort_keys=True) + "\n", "utf-8")
    return lock


def check_runtime(env: Path) -> RuntimeSlice:
    """Verify environment ``env`` against its lock (with its own interpreter); its slice.

    Raises:
        ConfigError: ``runtime_file_*`` naming what differs, ``runtime_lock_*``.
    """
    _run_boot(env, "--check")
    return read_lock_slice(lock_path(env))


def read_lock_slice(path: Path) -> RuntimeSlice:
    """The runtime slice of the lock file at ``path``.

    Raises:
        ConfigError: ``runtime_lock_unreadable`` / ``runtime_lock_invalid``.
    """
    try:
        lock = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read runtime lock {path}: {e}",
                          code="runtime_lock_unreadable") from None
    return slice_of(lock)


def current_runtime() -> RuntimeSlice | None:
    """The slice this process was attested against at start, or None (not attested)."""
    attested = runtime_boot.ATTESTED
    if attested is None:
        return None
    locked = attested.get("locked")
    if not isinstance(locked, dict):  # the boot always records it: fail closed
        raise ConfigError("the boot recorded no verified lock", code="runtime_lock_invalid")
    return slice_of(locked)  # the lock the boot compared, not the file read again


# -- the slice in a manifest read from a log (untrusted) --------------------------------

def parse_slice(obj: Any) -> RuntimeSlice:
    """Check a manifest's ``runtime`` member and return it.

    Raises:
        VerificationError: ``malformed_manifest``.
    """
    def bad(what: str) -> VerificationError:
        return VerificationError(f"release manifest runtime: {what}", code="malformed_manifest")
    if not isinstance(obj, dict) or set(obj) != {"digest", "python", "interpreter", "stdlib",
                                                 "distributions"}:
        raise bad("not {digest, python, interpreter, stdlib, distributions}")
    interp, dists = obj["interpreter"], obj["distributions"]
    if not isinstance(obj["python"], str) or not 0 < len(obj["python"]) <= 60:
        raise bad("python is not a short string")
    if not isinstance(obj["stdlib"], str) or not _DIGEST.fullmatch(obj["stdlib"]):
        raise bad("stdlib is not sha256:<hex>")
    if not isinstance(interp, dict) or not interp or not all(
            isinstance(k, str) and isinstance(v, str) and _DIGEST.fullmatch(v)
            for k, v in interp.items()):
        raise bad("interpreter is not a map of name to sha256:<hex>")
    if not isinstance(dists, dict) or not all(
            isinstance(k, str) and 0 < len(k) <= 100 and isinstance(v, str)
            and _DIST_VALUE.fullmatch(v) for k, v in dists.items()):
        raise bad("distributions is not a map of name to '<version> sha256:<hex>'")
    found = RuntimeSlice(obj["python"], interp, obj["stdlib"], dists)
    if found.digest != obj["digest"]:
        raise bad("digest does not match the slice")
    return found


def diff_slices(approved: RuntimeSlice, running: RuntimeSlice) -> list[str]:
    """What differs from the approved runtime to the running one, one line each."""
    out = []
    if approved.python != running.python:
        out.append(f"python {approved.python} -> {running.python}")
    for name in sorted(approved.interpreter.keys() | running.interpreter.keys()):
        if approved.interpreter.get(name) != running.interpreter.get(name):
            out.append(f"interpreter file {name} changed")
    if approved.stdlib != running.stdlib:
        out.append("standard library changed")
    for name in sorted(approved.distributions.keys() | running.distributions.keys()):
        a, b = approved.distributions.get(name), running.distributions.get(name)
        if a != b:
            out.append(f"distribution {name}: {a or 'absent'} -> {b or 'absent'}")
    return out
