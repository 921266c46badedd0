"""``bordergate audit ...``: the auditor's commands.

Each command re-checks published material offline or from a log and exits
0 when it verified, 1 when verification failed (with the reason), 2 for a
usage error (a malformed key included), 3 when a file or the log cannot be
read (:mod:`bordergate.exit_codes`).  This module must never hold verification logic itself:
it calls the checking functions of the rooms.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bordergate.errors import BordergateError, Unavailable, VerificationError
from bordergate.exit_codes import ExitCode, fail

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

    from bordergate.audit.logcheck import AuditResult
    from bordergate.audit.logstate import AuditStateStore
    from bordergate.tlog.client import LogClient, LogSource

__all__ = ["app"]

app = typer.Typer(help="Verify logs and evidence as an outside auditor.", no_args_is_help=True)


@app.command()
def evidence(
    file: Annotated[Path, typer.Argument(help="A split-view evidence file (JSON).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON result.")] = False,
) -> None:
    """Check a split-view evidence file offline: two signed, inconsistent checkpoints.

    Exit 0 if the file proves that the log signed two checkpoints that cannot
    both be true (promise 5), 1 if it does not, 3 if it cannot be read.
    """
    from bordergate.tlog.evidence import verify_evidence

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise fail(exc, json_output=json_output) from exc
    try:
        view = verify_evidence(data)
    except VerificationError as exc:
        if json_output:
            typer.echo(json.dumps({"proven": False, "error": exc.code, "reason": str(exc)}))
        else:
            typer.echo(f"NOT EVIDENCE ({exc.code}): {exc}")
        raise typer.Exit(1) from exc
    if json_output:
        typer.echo(json.dumps({"proven": True, "split_view": view.describe()}))
        return
    typer.echo(f"SPLIT VIEW PROVEN: {view.describe()}")


@app.command("log")
def log_(
    location: Annotated[str, typer.Argument(help="The log: a directory or an http(s) URL.")],
    *,
    vkey: Annotated[str, typer.Option("--vkey", help="The log's verifier key.")],
    state: Annotated[Path, typer.Option("--state", help="The auditor's state directory.")],
    witness: Annotated[
        list[str] | None, typer.Option("--witness", help="A trusted witness key (repeatable).")
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option("--quorum", help="Distinct witnesses required (default: all --witness; "
                     "keys under one name are one witness)."),
    ] = None,
    max_age: Annotated[
        int | None,
        typer.Option("--max-age", min=10, max=31 * 86400,
                     help="First run: the quorum's cosignatures must be this fresh, in "
                          "seconds (default: audit run's max_checkpoint_age_s, 3600)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON result.")] = False,
    progress: Annotated[
        bool, typer.Option("--progress", help="Show a progress bar even without a terminal.")
    ] = False,
) -> None:
    """Verify a log against the last verified state and save the new state (promise 5).

    On a first run (no state saved for the log) the checkpoint becomes the
    baseline later runs compare against, so, as in ``audit run``, the --quorum
    witnesses must have cosigned it within --max-age seconds; an older one is
    ``checkpoint_stale`` and nothing is saved.  With --quorum 0 a first run
    saves an unwitnessed baseline, with a warning (development setting).

    Exit 0 if the log verified (the state now holds its checkpoint), 1 if it
    failed verification (reason, index and tile path printed; split-view
    evidence written into --state), 2 for a usage error (a malformed key
    included), 3 when the log or the state cannot be read.
    """
    from bordergate.audit.logcheck import audit_log
    from bordergate.audit.logstate_dir import DirectoryStateStore
    from bordergate.audit.witness_check import DEFAULT_MAX_AGE
    from bordergate.tlog.client import LogClient, open_source
    from bordergate.tlog.cosignature import CosignatureVerifier, count_witnesses
    from bordergate.tlog.note import Ed25519Verifier

    try:
        verifier = Ed25519Verifier.from_key_string(vkey)
        cosigners = [CosignatureVerifier.from_key_string(w) for w in witness or []]
        # a quorum counts witnesses, not keys: keys under one name are one witness
        witnesses = count_witnesses(((c.name, c.key_id) for c in cosigners), cosigners)
        required = witnesses if quorum is None else quorum
        if not 0 <= required <= witnesses:
            raise typer.BadParameter(f"--quorum {required} needs 0..{witnesses} distinct "
                                     "--witness")
        client = LogClient(open_source(location), verifier, cosigners=cosigners,
                           quorum=required)
        store = DirectoryStateStore(state)
    except BordergateError as exc:  # the keys and locations are the command line's
        raise fail(exc, json_output=json_output,
                   exit_code=None if isinstance(exc, Unavailable) else ExitCode.USAGE) from exc
    bar = _progress_bar(progress or sys.stderr.isatty())
    try:
        client, stale = _first_run_baseline(client, store, max_age or DEFAULT_MAX_AGE)
        if stale is not None:
            _print_result(stale, json_output)
            raise typer.Exit(1)
        if bar is None:
            result = audit_log(client, store)
        else:
            with bar:
                task = bar.add_task("verifying entries", total=None)
                result = audit_log(client, store, progress=lambda done, total: bar.update(
                    task, completed=done, total=total))
    except (BordergateError, OSError) as exc:
        raise fail(exc, json_output=json_output) from exc
    _print_result(result, json_output)
    if not result.ok:
        raise typer.Exit(1)


class _PinnedCheckpoint:
    """A log source answering one given checkpoint: the one judged fresh is the one
    verified and saved (a log cannot show a fresh one, then a stale one)."""

    def __init__(self, source: LogSource, checkpoint: bytes) -> None:
        self._source, self._checkpoint = source, checkpoint

    def fetch(self, path: str, limit: int) -> bytes | None:
        from bordergate.tlog.storage import CHECKPOINT_PATH

        return self._checkpoint if path == CHECKPOINT_PATH else self._source.fetch(path, limit)


def _first_run_baseline(client: LogClient, store: AuditStateStore, max_age: int
                        ) -> tuple[LogClient, AuditResult | None]:
    """On a first run with a quorum: the client pinned to the checkpoint fetched now,
    and a failed result if its quorum did not cosign it within ``max_age`` seconds
    (the freshness rule of ``audit run``, :mod:`bordergate.audit.witness_check`).

    Later runs compare against the saved state and need no window; a checkpoint that
    does not verify, or lacks the quorum altogether, is left to ``audit_log`` to report.

    Raises:
        Unavailable: the log or the state cannot be read.
    """
    from bordergate.audit.logcheck import AuditResult
    from bordergate.audit.witness_check import STALE, check_witnesses
    from bordergate.tlog.checkpoint import open_checkpoint
    from bordergate.tlog.client import LogClient
    from bordergate.tlog.storage import CHECKPOINT_PATH

    if client.quorum == 0 or store.read(client.verifier.name) is not None:
        return client, None
    data = client.source.fetch(CHECKPOINT_PATH, client.limits.checkpoint)
    if data is None:
        return client, None
    pinned = LogClient(_PinnedCheckpoint(client.source, data), client.verifier,
                       cosigners=client.cosigners, quorum=client.quorum, limits=client.limits)
    try:
        signed = open_checkpoint(data, client.verifier, cosigners=client.cosigners,
                                 max_size=client.limits.checkpoint)
    except VerificationError:
        return pinned, None
    check = check_witnesses(signed, trusted=client.cosigners, quorum=client.quorum,
                            now=time.time(), max_age=max_age)
    if check.finding != STALE:
        return pinned, None
    cp = signed.checkpoint
    return pinned, AuditResult(
        False, client.verifier.name, None, cp.size, cp.root,
        tuple(sorted({c.name for c in signed.cosignatures})), STALE,
        f"first run, nothing saved: {check.explanation} (--max-age {max_age})", note=data)


def _progress_bar(wanted: bool) -> RichProgress | None:
    if not wanted:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True)


def _print_result(result: AuditResult, json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    if result.ok:
        since = "" if result.old_size is None else f" (consistent with size {result.old_size})"
        root = result.root.hex() if result.root is not None else "?"
        typer.echo(f"VERIFIED: {result.origin} size {result.size}{since}, root {root}, "
                   f"{len(result.cosignatures)} witness cosignature(s)")
        for warning in result.warnings:
            typer.echo(f"warning: {warning}")
        return
    where = ", ".join(part for part in (
        f"index {result.index}" if result.index is not None else "",
        f"path {result.path}" if result.path else "") if part)
    typer.echo(f"FAILED [{result.code}]: {result.reason}" + (f" ({where})" if where else ""))
    if result.evidence_file:
        typer.echo(f"evidence written: {result.evidence_file}")
