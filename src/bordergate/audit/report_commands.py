"""``bordergate audit keygen`` and ``bordergate audit verify-report``: the signed report.

* ``keygen --key-file F --name N``: the auditor's Ed25519 signed-note key (mode
  0600, never overwritten); prints its verifier key, which readers of the report
  pass to ``verify-report --auditor-key``.  ``audit run --sign-key F`` signs.
* ``verify-report DIR --auditor-key K [--log-key L] [--witness-key W]``: checks a
  report directory offline (:func:`bordergate.audit.signed_report.verify_report`),
  with the log and witness keys pinned when given: the signature, every
  evidence file, the checkpoints, and every finding's proof.  It reads only the
  files under DIR: no network, no gateway, no log.

Exit codes of ``verify-report``: 0 verified, 1 verification failed (each problem
printed with the file it concerns; a symbolic link or special file under DIR is
``report_file_not_regular``: the package is read as it is, never through links;
files larger than the caps are ``report_too_large``, refused before reading),
2 usage (a malformed key), 3 unavailable (DIR cannot be read).  This module must
never hold checking logic, nor read a file outside DIR.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Annotated

import typer

from bordergate.errors import BordergateError, VerificationError
from bordergate.exit_codes import fail, usage_error

__all__ = ["MAX_REPORT_DIR_BYTES", "MAX_REPORT_FILE_BYTES", "keygen", "read_report_dir",
           "verify_report_command"]

MAX_REPORT_FILE_BYTES = 256 * 1024 * 1024
"""The largest file of a report directory read (a report.json of very many findings)."""

MAX_REPORT_DIR_BYTES = 4 * 1024 * 1024 * 1024
"""The most bytes a report directory's files may hold together, checked (from their
sizes) before any is read: a package of sparse files costs no disk but would cost
memory."""


def keygen(key_file: Annotated[Path, typer.Option("--key-file", help="where to write the key")],
           name: Annotated[str, typer.Option("--name", help="the auditor's key name")],
           json_output: Annotated[bool, typer.Option(
               "--json", help="Print the key file and verifier key as JSON.")] = False,
           ) -> None:
    """Make the auditor's signing key (mode 0600) and print its verifier key."""
    from bordergate.tlog.logdir import write_key
    from bordergate.tlog.note import Signer
    try:
        signer = Signer.generate(name)
    except ValueError as e:
        raise usage_error(str(e), code="invalid_name", json_output=json_output) from None
    try:
        write_key(key_file, signer.key_string)
    except (BordergateError, OSError) as e:
        raise fail(e, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({"ok": True, "key_file": str(key_file),
                               "verifier_key": signer.verifier().key_string}))
        return
    typer.echo(f"auditor key written to {key_file}; sign reports with `bordergate audit run "
               "--sign-key` and give readers this verifier key for `audit verify-report "
               "--auditor-key`:")
    typer.echo(signer.verifier().key_string)


def read_report_dir(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` by its ``/``-separated relative path.

    Only what the directory itself holds is read: a symbolic link (to a file or a
    directory) or a special file anywhere under it is refused, never followed or
    opened -- a package from someone else could otherwise have the reader hash its
    own files, or block for ever on one that never ends (``/proc/kmsg``).

    Raises:
        VerificationError: ``report_file_not_regular`` (a symbolic link or special
            file), ``report_too_large`` (a file larger than
            :data:`MAX_REPORT_FILE_BYTES`, or all of them together larger than
            :data:`MAX_REPORT_DIR_BYTES`, judged from their sizes before reading).
        OSError: the directory or a file cannot be read.
    """
    if directory.is_symlink() or not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    sizes: dict[str, int] = {}
    _list_tree(directory, "", sizes)
    if sum(sizes.values()) > MAX_REPORT_DIR_BYTES:
        raise _too_large(f"the files of {directory} hold more than {MAX_REPORT_DIR_BYTES} bytes")
    files: dict[str, bytes] = {}
    for rel in sorted(sizes):
        files[rel] = _read_regular(directory / rel)
    if sum(len(d) for d in files.values()) > MAX_REPORT_DIR_BYTES:  # grown meanwhile
        raise _too_large(f"the files of {directory} hold more than {MAX_REPORT_DIR_BYTES} bytes")
    return files


def _list_tree(root: Path, relative: str, sizes: dict[str, int]) -> None:
    """The regular files under ``root`` and their sizes (by ``lstat``: no link followed)."""
    with os.scandir(root / relative if relative else root) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        rel = f"{relative}/{entry.name}" if relative else entry.name
        info = entry.stat(follow_symlinks=False)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            _list_tree(root, rel, sizes)
        elif stat.S_ISREG(mode):
            if info.st_size > MAX_REPORT_FILE_BYTES:
                raise _too_large(f"{root / rel} is larger than {MAX_REPORT_FILE_BYTES} bytes")
            sizes[rel] = info.st_size
        else:
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise VerificationError(f"{root / rel} is {kind}: a report directory is read "
                                    "as it is, never through links",
                                    code="report_file_not_regular")


def _read_regular(path: Path) -> bytes:
    """A regular file's bytes, opened without following a link swapped in meanwhile."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise VerificationError(f"{path} is not a regular file",
                                    code="report_file_not_regular")
        if info.st_size > MAX_REPORT_FILE_BYTES:
            raise _too_large(f"{path} is larger than {MAX_REPORT_FILE_BYTES} bytes")
        data = handle.read(MAX_REPORT_FILE_BYTES + 1)
    if len(data) > MAX_REPORT_FILE_BYTES:
        raise _too_large(f"{path} is larger than {MAX_REPORT_FILE_BYTES} bytes")
    return data


def _too_large(message: str) -> VerificationError:
    return VerificationError(f"{message}: not a report directory this verifier reads",
                             code="report_too_large")


def verify_report_command(
    directory: Annotated[Path, typer.Argument(help="The report directory.")],
    *,
    auditor_key: Annotated[list[str], typer.Option(
        "--auditor-key", help="A verifier key of the auditor (repeatable).")],
    log_key: Annotated[list[str] | None, typer.Option(
        "--log-key", help="Pin a log's verifier key (repeatable; default: the keys the "
        "signed report states).")] = None,
    witness_key: Annotated[list[str] | None, typer.Option(
        "--witness-key", help="Pin a witness's cosignature key (repeatable; default: the "
        "keys the signed report states, which then show only what its author claims).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON result.")] = False,
) -> None:
    """Verify a signed audit report and its evidence package, offline.

    Exit 0 if the signature, every evidence file and every finding's proof verify, 1 if
    anything fails (each problem names its file), 2 for a malformed key, 3 if DIR cannot
    be read.
    """
    from bordergate.audit.signed_report import verify_report
    from bordergate.tlog.cosignature import CosignatureVerifier
    from bordergate.tlog.note import Ed25519Verifier

    try:
        verifiers = [Ed25519Verifier.from_key_string(k) for k in auditor_key]
        for k in log_key or []:
            Ed25519Verifier.from_key_string(k)
        for k in witness_key or []:
            CosignatureVerifier.from_key_string(k)
    except VerificationError as e:
        raise usage_error(str(e), code=e.code, json_output=json_output) from None
    try:
        files = read_report_dir(directory)
    except (OSError, VerificationError) as e:
        raise fail(e, json_output=json_output) from None
    result = verify_report(files, verifiers, log_keys=log_key or [],
                           witness_keys=witness_key or [])
    if json_output:
        typer.echo(json.dumps({"ok": result.ok, "signed_by": result.signed_by,
                               "checked": result.checked, "notes": result.notes,
                               "problems": [{"file": p.file, "code": p.code,
                                             "reason": p.reason} for p in result.problems]},
                              indent=2))
    elif result.ok:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(result.checked.items()))
        typer.echo(f"VERIFIED: signed by {', '.join(result.signed_by)}; {counts}")
        for note in result.notes:
            typer.echo(f"note: {note}")
    else:
        typer.echo(f"FAILED: {len(result.problems)} problem(s)")
        for problem in result.problems:
            typer.echo(f"  {problem}")
    if not result.ok:
        raise typer.Exit(1)
