"""Start the gateway isolated from its own runtime environment (promise 6).

``bordergate gateway serve`` run from an environment built by ``bordergate
release build-runtime`` (one that holds ``bordergate-runtime.json`` in its
prefix) replaces itself, before loading anything of the deployment, with the
isolated start of ``bordergate.runtime_boot`` (``-I -S -B`` and an absent
``pycache_prefix``), which verifies the whole environment first.  The console
script itself ran unverified code until then (the interpreter's ``site``
step, ``.pth`` files, the CLI): a service manager should run the command
:func:`isolated_command` prints instead (docs/runtime-attestation.md).

This module must never verify anything itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bordergate import runtime_boot

__all__ = ["isolated_command", "reexec_isolated", "runtime_env"]


def runtime_env() -> Path | None:
    """This interpreter's environment when it is a built runtime, else None."""
    prefix = Path(sys.prefix)
    return prefix if (prefix / runtime_boot.LOCK_NAME).is_file() else None


def isolated_command(env: Path, args: list[str]) -> list[str]:
    """The isolated command line that runs ``bordergate ARGS`` from ``env``."""
    return runtime_boot.boot_command(str(env), tuple(args))


def reexec_isolated(args: list[str]) -> None:
    """Replace this process with the isolated start when it runs from a built runtime.

    Returns only when there is nothing to do: the process was already started
    through ``runtime_boot``, or it does not run from a built runtime
    (development: the self-check then records no runtime, and the production
    profile refuses the start).
    """
    env = runtime_env()
    if runtime_boot.ATTESTED is not None or env is None:
        return
    command = isolated_command(env, args)
    os.execv(command[0], command)  # noqa: S606 (the command is ours, no shell)
