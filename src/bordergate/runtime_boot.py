"""The isolated start of a gateway: verify the whole runtime, then import it (promise 6).

A runtime environment built by ``bordergate release build-runtime`` holds, in
its root, a lock (``bordergate-runtime.json``): the sha256 of every file of
the interpreter (its binary and ``libpython``), of the standard library and of
every installed distribution (each file listed in the distribution's RECORD,
re-hashed).  The gateway is started through this file, run as a *script* by
the environment's interpreter in isolated mode::

    ENV/bin/python -I -S -B -X pycache_prefix=ENV/bordergate-no-pycache \\
        ENV/lib/python3.X/site-packages/bordergate/runtime_boot.py ENV/bordergate-runtime.json \\
        gateway serve --config ... --jurisdiction ...

(``bordergate gateway serve`` run from the environment re-executes itself so).
Before anything outside the standard library is imported it:

1. refuses a start with ``PYTHONPATH``, ``PYTHONSTARTUP``, ``PYTHONHOME``,
   ``PYTHONUSERBASE``... or ``LD_PRELOAD``/``LD_AUDIT``/``LD_LIBRARY_PATH`` set
   (``-I`` ignores the Python ones anyway: refusing makes the attempt visible),
   and a start without ``-I -S -B`` and the private, absent ``pycache_prefix``
   (``runtime_not_isolated``);
2. re-hashes the interpreter, the standard library and the site-packages
   directory and compares them with the lock: a changed, missing or unexpected
   file is refused, naming it (``runtime_file_changed`` / ``_missing`` /
   ``_unexpected``), so a modified dependency, a planted module, ``.pth`` file,
   ``sitecustomize`` or ``.pyc`` in site-packages stops the start;
3. adds site-packages to ``sys.path`` itself, with the path lines of its
   (locked) ``.pth`` files; an ``import`` line of a ``.pth`` is never executed
   (``-S``: the ``site`` module does not run), and a path outside the attested
   directories (an editable install) is refused (``runtime_pth_outside``);
4. checks that every module already imported comes from the standard library,
   records the result for ``bordergate.releases`` (:data:`ATTESTED`) and runs
   the command line;
5. from then on imports Python source only with the bytes the lock names,
   hashed as it is read (a file changed after the comparison is refused at its
   import, ``runtime_file_changed``), and never a byte-code cache.

Byte-code caches are neutralised, not trusted: the absent ``pycache_prefix``
makes Python compile every module from its (verified) source, and ``-B`` keeps
it from writing caches.  ``__pycache__`` files of site-packages are still in
the lock so a planted one is refused; those of the standard library are
ignored (the system may add caches there).

A process cannot fully attest itself: the interpreter, the dynamic loader and
the few standard modules this file imports (``os``, ``sys``, ``json``,
``hashlib``, ``stat``, ``sysconfig``) ran before the check; the check shows
they are the locked files, not that the loaded copies are.  See
docs/runtime-attestation.md.

A hash cache keyed by each file's stat (device, inode, size, mtime, ctime)
makes a warm start cheap (``bordergate-runtime.cache.json`` beside the lock;
protect it as the code is protected, or pass ``--cold``).

This module must import only the standard library, and nothing at module level
beyond ``contextlib``, ``hashlib``, ``json``, ``os``, ``stat``, ``sys`` and ``typing``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
from typing import Any

__all__ = [
    "ATTESTED",
    "CACHE_NAME",
    "LOCK_FORMAT",
    "LOCK_NAME",
    "NO_PYCACHE",
    "REFUSED_VARIABLES",
    "RuntimeRefused",
    "boot_command",
    "compare",
    "observe",
    "roots",
]

LOCK_NAME = "bordergate-runtime.json"
CACHE_NAME = "bordergate-runtime.cache.json"
NO_PYCACHE = "bordergate-no-pycache"
LOCK_FORMAT = "bordergate-runtime/1"
REFUSED_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE",
                     "PYTHONINSPECT", "PYTHONPLATLIBDIR", "PYTHONPYCACHEPREFIX",
                     "PYTHONEXECUTABLE", "PYTHONBREAKPOINT", "LD_PRELOAD", "LD_AUDIT",
                     "LD_LIBRARY_PATH")
_STDLIB_SKIPPED = frozenset({"site-packages", "dist-packages", "__pycache__"})
_MAX_REPORTED = 10

#: What the boot established, set once verification passed (None: not started through it).
ATTESTED: dict[str, Any] | None = None


class RuntimeRefused(Exception):
    """The runtime differs from its lock, or the start is not isolated.

    Outside ``bordergate.errors`` on purpose: it is raised before anything but
    the standard library may be imported.  Its codes are as stable as the
    tree's; ``releases.runtime`` reports them as ``ConfigError`` with the same code.

    Attributes:
        code: a stable error code (``runtime_*``).
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def roots(env: str) -> dict[str, str]:
    """The attested directories of the environment ``env`` run by this interpreter."""
    import sysconfig
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return {"stdlib": os.path.realpath(sysconfig.get_paths()["stdlib"]),
            "site": os.path.realpath(os.path.join(env, "lib", version, "site-packages"))}


def interpreter_files() -> dict[str, str]:
    """Name -> absolute path of the interpreter binary and its shared ``libpython``."""
    import sysconfig
    exe = getattr(sys, "_base_executable", None) or sys.executable
    out = {"python": os.path.realpath(exe)}
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        lib = os.path.join(str(sysconfig.get_config_var("LIBDIR")),
                           str(sysconfig.get_config_var("LDLIBRARY")))
        if os.path.exists(lib):
            out["libpython"] = os.path.realpath(lib)
    return out


class _HashCache:
    """sha256 of files, remembered by their stat so an unchanged file is not re-read."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.known: dict[str, list[Any]] = {}
        self.fresh: dict[str, list[Any]] = {}
        if path is not None:
            try:
                with open(path, encoding="utf-8") as f:
                    loaded = json.load(f)
                if isinstance(loaded, dict):
                    self.known = loaded
            except (OSError, ValueError):
                self.known = {}

    def digest(self, path: str, st: os.stat_result) -> str:
        key = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        seen = self.known.get(path)
        if isinstance(seen, list) and len(seen) == 6 and seen[:5] == key:
            hexdigest = str(seen[5])
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            hexdigest = h.hexdigest()
        self.fresh[path] = [*key, hexdigest]
        return hexdigest

    def save(self) -> None:
        if self.path is None or self.fresh == self.known:
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.fresh, f)
            os.replace(tmp, self.path)
        except OSError:  # only a cache: the next start re-hashes
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _walk(root: str, cache: _HashCache, skipped: frozenset[str]) -> dict[str, str]:
    """Relative POSIX path -> sha256 hex of every file under ``root``.

    Raises:
        RuntimeRefused: a symbolic link, device or other non-regular file
            (``runtime_file_unexpected``).
    """
    out: dict[str, str] = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for entry in it:
                name = f"{rel}/{entry.name}" if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    if entry.name not in skipped:
                        todo.append(name)
                elif stat.S_ISREG(st.st_mode):
                    out[name] = cache.digest(entry.path, st)
                else:
                    raise RuntimeRefused(f"{os.path.join(root, name)} is not a regular file",
                                         code="runtime_file_unexpected")
    return out


def observe(env: str, *, cache_path: str | None) -> dict[str, dict[str, str]]:
    """Hash what the environment ``env`` would import: ``{root: {path: sha256 hex}}``.

    Roots are ``interpreter`` (names ``python``, ``libpython``), ``stdlib``
    (without site-packages and ``__pycache__``) and ``site`` (everything).
    """
    cache = _HashCache(cache_path)
    where = roots(env)
    observed = {"interpreter": {name: cache.digest(path, os.stat(path))
                                for name, path in interpreter_files().items()},
                "stdlib": _walk(where["stdlib"], cache, _STDLIB_SKIPPED),
                "site": _walk(where["site"], cache, frozenset())}
    cache.save()
    return observed


def compare(locked: dict[str, dict[str, str]], observed: dict[str, dict[str, str]]) -> None:
    """Refuse any difference between the lock's files and the observed ones.

    Raises:
        RuntimeRefused: ``runtime_file_changed``, ``runtime_file_missing`` or
            ``runtime_file_unexpected`` (the first kind found), naming up to ten files.
    """
    problems: list[tuple[str, str]] = []
    for root in ("interpreter", "stdlib", "site"):
        want, have = locked.get(root, {}), observed.get(root, {})
        for path in sorted(want.keys() | have.keys()):
            if path not in have:
                problems.append(("runtime_file_missing", f"{root}/{path}"))
            elif path not in want:
                problems.append(("runtime_file_unexpected", f"{root}/{path}"))
            elif want[path] != have[path]:
                problems.append(("runtime_file_changed", f"{root}/{path}"))
    if problems:
        shown = "\n".join(f"  {code.removeprefix('runtime_file_')}: {path}"
                          for code, path in problems[:_MAX_REPORTED])
        more = len(problems) - _MAX_REPORTED
        raise RuntimeRefused("the runtime differs from its lock:\n" + shown
                             + (f"\n  ... and {more} more" if more > 0 else ""),
                             code=problems[0][0])


def read_lock(lock_path: str) -> dict[str, Any]:
    """The lock file's JSON object.

    Raises:
        RuntimeRefused: ``runtime_lock_unreadable``.
    """
    try:
        with open(lock_path, encoding="utf-8") as f:
            lock: dict[str, Any] = json.load(f)
    except (OSError, ValueError) as e:
        raise RuntimeRefused(f"cannot read the runtime lock {lock_path}: {e}",
                             code="runtime_lock_unreadable") from None
    if not _well_formed(lock):
        raise RuntimeRefused(f"{lock_path} is not a {LOCK_FORMAT} lock",
                             code="runtime_lock_unreadable")
    return lock


def _well_formed(lock: Any) -> bool:
    """A lock object: format, python version, and ``{root: {path: hex}}`` for the three roots."""
    if not isinstance(lock, dict) or lock.get("format") != LOCK_FORMAT:
        return False
    files, python = lock.get("files"), lock.get("python")
    if not isinstance(python, list) or not all(isinstance(n, int) for n in python):
        return False
    return isinstance(files, dict) and set(files) == {"interpreter", "stdlib", "site"} and all(
        isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str)
                                    for k, v in m.items()) for m in files.values())


def _check_isolated(env: str) -> None:
    present = [v for v in REFUSED_VARIABLES if os.environ.get(v)]
    if present:
        raise RuntimeRefused(f"environment variable {', '.join(present)} set: refused "
                             "(it could load code the release does not name)",
                             code="runtime_environment_refused")
    prefix = os.path.join(env, NO_PYCACHE)
    flags = sys.flags
    if not (flags.isolated and flags.no_site and flags.dont_write_bytecode
            and sys.pycache_prefix == prefix):
        raise RuntimeRefused("not started isolated: run " + " ".join(boot_command(env)[:7])
                             + " ...", code="runtime_not_isolated")
    if os.path.lexists(prefix):
        raise RuntimeRefused(f"{prefix} exists: byte-code caches would be read from it",
                             code="runtime_not_isolated")


def _pth_paths(site: str, files: dict[str, str], allowed: tuple[str, ...]) -> list[str]:
    """The directories the locked top-level ``.pth`` files add (import lines are not run)."""
    out = []
    for name in sorted(p for p in files if "/" not in p and p.endswith(".pth")):
        with open(os.path.join(site, name), encoding="utf-8") as f:
            for line in f.read().splitlines():
                if not line.strip() or line.startswith("#") or \
                        line.startswith(("import ", "import\t")):
                    continue  # -S: an import line is never executed
                path = os.path.realpath(os.path.join(site, line.rstrip()))
                if not any(path == a or path.startswith(a + os.sep) for a in allowed):
                    raise RuntimeRefused(f"{name} adds {path}, outside the attested runtime "
                                         "(an editable install?)", code="runtime_pth_outside")
                if os.path.isdir(path) and path not in out:
                    out.append(path)
    return out


def _check_loaded(allowed: tuple[str, ...]) -> None:
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file is None or name == "__main__":
            continue
        path = os.path.realpath(file)
        if not any(path.startswith(a + os.sep) for a in allowed):
            raise RuntimeRefused(f"module {name} was loaded from {path}, outside the "
                                 "attested standard library", code="runtime_module_outside")


def _verify_imports(where: dict[str, str], files: dict[str, dict[str, str]]) -> None:
    """From now on, import Python source only as the lock has it, and no byte-code cache.

    The comparison above hashed the files; the imports come later (the whole
    gateway is imported after it, much of it lazily), so a file changed in
    between, or a byte-code prefix created since, would run unhashed.  A path
    hook placed first hands every directory on ``sys.path`` to a finder whose
    source loader hashes the bytes it reads and refuses (``ImportError`` naming
    ``runtime_file_changed`` / ``runtime_file_unexpected``) any that are not
    the locked ones, and never reads a cache (``OSError``: Python then
    compiles the verified source).  Sourceless ``.pyc`` files are not
    importable at all.  Extension modules (``.so``) are loaded by the dynamic
    loader from the file, which this cannot check again: they are covered by
    the comparison only.
    """
    from importlib import machinery

    expected: dict[str, str] = {}
    for root in ("stdlib", "site"):
        for rel, hexdigest in files.get(root, {}).items():
            expected[os.path.join(where[root], *rel.split("/"))] = hexdigest

    class VerifiedSourceLoader(machinery.SourceFileLoader):
        def get_data(self, path: str) -> bytes:
            if path != self.path:  # a byte-code cache: only verified source runs
                raise OSError("byte-code caches are not read in an attested runtime")
            real = os.path.realpath(path)
            want = expected.get(real)
            if want is None:
                raise ImportError(f"[runtime_file_unexpected] {real} is not in the "
                                  "runtime's lock", path=path)
            data = super().get_data(path)
            if hashlib.sha256(data).hexdigest() != want:
                raise ImportError(f"[runtime_file_changed] {real} differs from the "
                                  "runtime's lock (changed after the start's check)",
                                  path=path)
            return data

    hook = machinery.FileFinder.path_hook(
        (VerifiedSourceLoader, machinery.SOURCE_SUFFIXES),
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES))
    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()


def attest(lock_path: str, *, cold: bool = False, isolated: bool = True) -> dict[str, Any]:
    """Verify the environment of ``lock_path`` and put its site-packages on ``sys.path``.

    Args:
        lock_path: ``ENV/bordergate-runtime.json``.
        cold: ignore the hash cache.
        isolated: require the isolated start (False: only compare, for ``--check``).

    Returns:
        ``{"lock": path, "digest": the lock's identity digest, "seconds": time taken,
        "locked": the lock object verified}``: the release self-check derives the
        runtime slice from ``locked``, never from a second read of the lock file
        (which a custodian could put back once the boot has compared).

    Raises:
        RuntimeRefused: as described in the module docstring.
    """
    import time
    started = time.perf_counter()
    env = os.path.dirname(os.path.abspath(lock_path))
    if isolated:
        _check_isolated(env)
    lock = read_lock(lock_path)
    where = roots(env)
    if lock.get("python") != list(sys.version_info[:3]):
        raise RuntimeRefused(f"the lock is for Python {lock.get('python')}, this is "
                             f"{sys.version.split()[0]}", code="runtime_file_changed")
    observed = observe(env, cache_path=None if cold else os.path.join(env, CACHE_NAME))
    compare(lock["files"], observed)
    allowed = (where["stdlib"], where["site"])
    if isolated:
        _check_loaded(allowed)
        _verify_imports(where, lock["files"])
        for path in [where["site"], *_pth_paths(where["site"], observed["site"], allowed)]:
            if path not in sys.path:
                sys.path.append(path)
    return {"lock": os.path.abspath(lock_path), "digest": str(lock.get("digest")),
            "seconds": time.perf_counter() - started, "locked": lock}


def boot_command(env: str, args: tuple[str, ...] = ()) -> list[str]:
    """The isolated command line that starts ``bordergate ARGS`` from environment ``env``."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    script = os.path.join(env, "lib", version, "site-packages", "bordergate", "runtime_boot.py")
    return [os.path.join(env, "bin", "python"), "-I", "-S", "-B",
            "-X", f"pycache_prefix={os.path.join(env, NO_PYCACHE)}", script,
            os.path.join(env, LOCK_NAME), *args]


def main(argv: list[str]) -> int:
    """``runtime_boot.py LOCK [--cold] [--check] ARGS...``: attest, then run ``bordergate ARGS``.

    ``--check`` only compares (no isolation required) and prints the result as
    JSON; ``LOCK --observe`` prints what this interpreter would import (the
    lock builder's input).  Exit status 2 and ``error [code]: ...`` on stderr
    when refused.
    """
    args = argv[1:]
    if not args:
        print("usage: runtime_boot.py LOCK [--cold] [--check] ARGS...", file=sys.stderr)
        return 2
    lock_path, rest = args[0], args[1:]
    modes = {"--cold", "--check", "--observe"}
    cold, check = "--cold" in rest[:2], "--check" in rest[:2]
    if rest[:1] == ["--observe"]:  # for the lock builder: what this interpreter would import
        env = os.path.dirname(os.path.abspath(lock_path))
        print(json.dumps({"python": list(sys.version_info[:3]),
                          "implementation": sys.implementation.name,
                          "roots": roots(env), "files": observe(env, cache_path=None)}))
        return 0
    rest = [a for a in rest[:2] if a not in modes] + rest[2:]
    try:
        result = attest(lock_path, cold=cold, isolated=not check)
    except RuntimeRefused as e:
        print(f"error [{e.code}]: {e}", file=sys.stderr)
        return 2
    if check:
        result.pop("locked")
        print(json.dumps(result))
        return 0
    # the module as imported from the verified site-packages (this file ran as __main__)
    import bordergate.runtime_boot as recorded  # noqa: PLW0406
    recorded.ATTESTED = result
    # run the package's entry point as `python -m bordergate` would: the boot does not
    # depend on the CLI's modules (which depend on the releases room, which uses this)
    import runpy
    sys.argv = ["bordergate", *rest]
    runpy.run_module("bordergate", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
