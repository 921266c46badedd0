"""One error format and one set of exit codes for every ``bordergate`` command.

Every command exits with one of four codes, listed in each command's ``--help``:

    0  success
    1  verification failed, or refused (policy, state, credentials)
    2  usage error: bad options or arguments, a wrong configuration file
    3  unavailable or I/O: a service, store, log or file could not be reached or read

and reports an error on standard error in one shape, whatever the command::

    error [CODE]: MESSAGE
      what to do: HINT

``CODE`` is the stable code of :mod:`bordergate.errors` (or ``usage``,
``missing_parameter``, ``unknown_option``, ``bad_parameter`` for command-line
mistakes, ``io_error`` for an operating-system error).  With ``--json`` a command
also prints ``{"ok": false, "error": CODE, "message": ..., "hint": ...}`` on
standard output, so a script reading JSON never has to parse standard error.

A command either lets a :class:`~bordergate.errors.BordergateError` (or an
``OSError``) escape, and the root command (:mod:`bordergate.command_tree`)
reports it, or reports it itself with ``raise fail(exc) from None`` when it must
clean up or print JSON first.  This module must never import domain modules:
every command imports it, so it stays cheap.
"""

from __future__ import annotations

import json
import sys
from enum import IntEnum

from typer import Exit

from bordergate.errors import (
    BordergateError,
    ConfigError,
    InvalidInput,
    NotFound,
    PushBack,
    Unauthenticated,
    Unavailable,
    WrongJurisdiction,
)

__all__ = [
    "EXIT_CODES_HELP",
    "ExitCode",
    "error_text",
    "exit_code_for",
    "fail",
    "hint_for",
    "report",
    "usage_error",
]


class ExitCode(IntEnum):
    """The exit status of every ``bordergate`` command."""

    OK = 0
    REFUSED = 1  # verification failed, or the request was refused
    USAGE = 2  # bad command line or configuration file
    UNAVAILABLE = 3  # a service, store, log or file is unreachable or unreadable


# "\b" keeps click from re-wrapping the lines of this paragraph
EXIT_CODES_HELP = ("\b\nExit codes: 0 success; 1 verification failed or refused; "
                   "2 usage error;\n3 unavailable or I/O error (retry later).")

_HINTS = {
    ExitCode.REFUSED: "the input did not verify or the request was refused: the message "
                      "names the check; do not retry unchanged",
    ExitCode.USAGE: "correct the command line or the file it names (see --help)",
    ExitCode.UNAVAILABLE: "check that the service, store, log or file exists and is "
                          "reachable and readable, then retry",
}


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code an error means, by who is at fault (see the module docstring)."""
    if isinstance(exc, (Unavailable, NotFound, OSError)):  # a missing log, file or record
        return ExitCode.UNAVAILABLE
    if isinstance(exc, ConfigError):
        return ExitCode.USAGE
    if isinstance(exc, InvalidInput) and not isinstance(exc, (Unauthenticated, WrongJurisdiction)):
        return ExitCode.USAGE
    return ExitCode.REFUSED


def hint_for(exc: BaseException) -> str:
    """What the person at the terminal can do about ``exc``."""
    if isinstance(exc, PushBack):
        return f"the service is busy: retry after {exc.retry_after:g} s"
    return _HINTS[exit_code_for(exc)]


def error_text(code: str, message: str, hint: str) -> str:
    """The common error format (two lines, no trailing newline)."""
    return f"error [{code}]: {message}\n  what to do: {hint}"


def _code_of(exc: BaseException) -> str:
    return exc.code if isinstance(exc, BordergateError) else "io_error"


def report(code: str, message: str, hint: str, *, json_output: bool = False) -> None:
    """Print an error in the common format on stderr (and as JSON on stdout if asked)."""
    print(error_text(code, message, hint), file=sys.stderr, flush=True)
    if json_output:
        print(json.dumps({"ok": False, "error": code, "message": message, "hint": hint}),
              flush=True)


def fail(exc: BordergateError | OSError, *, hint: str | None = None,
         json_output: bool = False, exit_code: ExitCode | None = None) -> Exit:
    """Report ``exc`` in the common format and return the ``Exit`` to raise.

    Use as ``raise fail(exc) from None``; the exit code follows
    :func:`exit_code_for` unless ``exit_code`` overrides it.
    """
    report(_code_of(exc), str(exc), hint or hint_for(exc), json_output=json_output)
    return Exit(int(exit_code if exit_code is not None else exit_code_for(exc)))


def usage_error(message: str, *, code: str = "usage", hint: str | None = None,
                json_output: bool = False) -> Exit:
    """Report a command-line mistake found after parsing; returns ``Exit(2)`` to raise."""
    report(code, message, hint or _HINTS[ExitCode.USAGE], json_output=json_output)
    return Exit(int(ExitCode.USAGE))
