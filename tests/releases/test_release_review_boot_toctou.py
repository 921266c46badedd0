"""A module imported after the boot's check is the module the check hashed (promise 6).

``runtime_boot`` hashes the whole runtime, then imports from it: the
gateway's modules, its dependencies and the standard library modules it needs
are read from disk *after* the comparison (most of them during the start, many
lazily while serving).  A custodian with write access to the runtime changed a
file once the boot had hashed it (inotify tells when), or created the absent
byte-code prefix the boot had checked for, and the process ran code nobody
reviewed under the attested runtime's digest.  Now every Python source the
attested process imports from the runtime is hashed as it is read and
compared with the lock (``runtime_file_changed``), and no byte-code cache is
ever read.

The process here is a real boot (``python -I -S -B -X pycache_prefix=...
runtime_boot.py LOCK``) of a small runtime whose ``bordergate`` entry point
waits for a signal, then imports a module: the test changes that module in
between, as the custodian would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bordergate import runtime_boot

SITE = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"

_MAIN = '''
import pathlib, sys, time
here = pathlib.Path(sys.argv[1])
(here / "ready").write_text("booted")
while not (here / "go").exists():
    time.sleep(0.05)
try:
    import tinydist
    (here / "result").write_text(f"VALUE={tinydist.VALUE}")
except ImportError as e:
    (here / "result").write_text(f"refused {e}")
'''


def _runtime(tmp_path: Path) -> Path:
    """A runtime: the real runtime_boot, a bordergate whose entry point imports
    ``tinydist`` on a signal, and tinydist; with its lock."""
    env = tmp_path / "env"
    site = env / SITE
    (site / "bordergate").mkdir(parents=True)
    (site / "bordergate" / "__init__.py").write_text("")
    shutil.copy(runtime_boot.__file__, site / "bordergate" / "runtime_boot.py")
    (site / "bordergate" / "__main__.py").write_text(_MAIN)
    (site / "tinydist").mkdir()
    (site / "tinydist" / "__init__.py").write_text("VALUE = 1\n")
    (env / "bin").mkdir()
    lock = {"format": runtime_boot.LOCK_FORMAT, "python": list(sys.version_info[:3]),
            "implementation": sys.implementation.name, "distributions": {},
            "files": runtime_boot.observe(str(env), cache_path=None), "digest": "sha256:x"}
    (env / runtime_boot.LOCK_NAME).write_text(json.dumps(lock))
    return env


def _boot(env: Path, work: Path) -> subprocess.Popen[bytes]:
    command = runtime_boot.boot_command(str(env), (str(work),))
    command[0] = sys.executable  # the same interpreter the lock hashed
    with (work / "stderr").open("wb") as err:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err,
                                env={"PATH": "/usr/bin:/bin"})


def _wait(path: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        if process.poll() is not None and not path.exists():
            err = (path.parent / "stderr").read_text()
            raise AssertionError(f"the boot exited: {err[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_a_module_changed_after_the_boot_hashed_it_never_runs(tmp_path: Path) -> None:
    """Promise 6 ("every line of code that runs there was reviewed"): a runtime
    file changed between the boot's comparison and its import is refused at import."""
    env = _runtime(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    process = _boot(env, work)
    try:
        assert _wait(work / "ready", process) == "booted"  # the check passed
        module = env / SITE / "tinydist" / "__init__.py"
        module.write_text("VALUE = 2  # unreviewed\n")  # the custodian's change
        (work / "go").write_text("")
        result = _wait(work / "result", process)
    finally:
        process.kill()
        process.wait()
    assert result != "VALUE=2", "code changed after the check ran"
    assert "runtime_file_changed" in result, result


def test_a_byte_code_cache_planted_after_the_boot_is_never_read(tmp_path: Path) -> None:
    """Promise 6: the private byte-code prefix the boot found absent, created
    afterwards with a cache compiled from other source, is never read."""
    env = _runtime(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    process = _boot(env, work)
    try:
        assert _wait(work / "ready", process) == "booted"
        module = env / SITE / "tinydist" / "__init__.py"
        # a cache of other source, valid for the reviewed file's mtime and size
        evil = tmp_path / "evil" / "tinydist" / "__init__.py"
        evil.parent.mkdir(parents=True)
        evil.write_text("VALUE = 3  #  evil\n"[:len(module.read_text())])
        assert evil.stat().st_size == module.stat().st_size
        st = module.stat()
        os.utime(evil, ns=(st.st_atime_ns, st.st_mtime_ns))
        prefix = env / runtime_boot.NO_PYCACHE
        target = Path(importlib.util.cache_from_source(str(module)))
        # where Python looks under pycache_prefix: PREFIX + the source's directory
        target = prefix / str(module.parent).lstrip("/") / target.name
        target.parent.mkdir(parents=True)
        py_compile.compile(str(evil), cfile=str(target), doraise=True)
        (work / "go").write_text("")
        result = _wait(work / "result", process)
    finally:
        process.kill()
        process.wait()
    assert result == "VALUE=1", result  # the verified source, compiled afresh
