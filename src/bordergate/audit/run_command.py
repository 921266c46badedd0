"""``bordergate audit run``: audit every log of an auditor configuration, write the report.

Exit 0 when every log verified and nothing was found, 1 when a log failed
verification, its checkpoint lacks a fresh witness quorum, or there are findings
(``--exit-zero`` keeps 0 for other findings, for scripts that only want the
report), 2 for a usage or configuration error, 3 for an I/O error
(:mod:`bordergate.exit_codes`).  A report that cannot be built from what the logs
say is exit 1 (``report_not_built``), never an I/O error: retrying cannot help.
This module must never hold checking logic: it calls :mod:`bordergate.audit.run`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bordergate.audit.witness_check import witness_summary
from bordergate.errors import BordergateError, VerificationError
from bordergate.exit_codes import fail

if TYPE_CHECKING:
    from bordergate.audit.run import AuditRun
    from bordergate.tlog.note import NoteSigner

__all__ = ["run"]


def run(
    *,
    config: Annotated[Path, typer.Option("--config", help="The auditor's TOML file.")],
    state: Annotated[Path, typer.Option("--state", help="The auditor's state directory.")],
    report: Annotated[Path, typer.Option("--report", help="Where report.json and report.html go.")],
    exit_zero: Annotated[bool, typer.Option(
        "--exit-zero", help="Exit 0 when logs verified and freshly witnessed, even with "
        "other findings.")] = False,
    progress: Annotated[bool, typer.Option(
        "--progress", help="Show a progress bar even without a terminal.")] = False,
    reference: Annotated[bool, typer.Option(
        "--reference", help="Inspect entries with the plain reference inspector (slower, "
        "one process, no caches); the findings are the same.")] = False,
    sign_key: Annotated[Path | None, typer.Option(
        "--sign-key", help="The auditor's key (`audit keygen`): sign the report "
        "(report.sig), checkable with `audit verify-report`.")] = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the summary and each log's state as JSON.")] = False,
) -> None:
    """Verify each log, replay and check every new entry, write the report.

    For each logs.<jurisdiction> table of --config: the log-level check first (signature,
    witness quorum, consistency with the saved state, every tile rebuilt), then every
    new entry: decisions replayed with their policy bundles, approvals, releases,
    data-flow rules, entry hygiene.  Writes report.json, report.html and the evidence
    package (evidence/) into --report, and with --sign-key the signature report.sig.
    By default entries are inspected by the accelerated inspector; --reference selects
    the plain one (docs/audit.md), which must find exactly the same.
    """
    from bordergate.audit.auditor_config import load_auditor_config
    from bordergate.audit.run import run_audit
    from bordergate.tlog.logdir import read_signer

    try:
        cfg = load_auditor_config(config)
        signer = read_signer(sign_key) if sign_key is not None else None
        bar = None
        if progress or sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress

            # no refresh thread: the audit forks a helper only when single-threaded
            bar = Progress("[progress.description]{task.description}", BarColumn(),
                           MofNCompleteColumn(), console=Console(stderr=True), transient=True,
                           auto_refresh=False)
        if bar is None:
            result = run_audit(cfg, state, reference=reference)
        else:
            tasks: dict[str, object] = {}
            shown = [0.0]
            with bar:
                def show(code: str, done: int, total: int) -> None:
                    if code not in tasks:
                        tasks[code] = bar.add_task(f"verifying {code}", total=total)
                    now = time.monotonic()
                    refresh = done >= total or now - shown[0] >= 0.1
                    if refresh:
                        shown[0] = now
                    bar.update(tasks[code], completed=done, total=total,  # type: ignore[arg-type]
                               refresh=refresh)
                result = run_audit(cfg, state, progress=show, reference=reference)
    except (BordergateError, OSError) as exc:
        raise fail(exc, json_output=json_output) from exc
    doc = _built(result, json_output=json_output)
    json_path, html_path = _written(result, doc, report, signer, json_output=json_output)
    s = doc["summary"]
    failed = bool(s["logs_failed"] or s["logs_unwitnessed"] or (s["findings"] and not exit_zero))
    if json_output:
        typer.echo(json.dumps({"ok": not failed, "summary": s, "logs": doc["logs"],
                               "report": {"json": str(json_path), "html": str(html_path)}},
                              indent=2, default=str))
        raise typer.Exit(1 if failed else 0)
    for log in doc["logs"]:
        state_text = "verified" if log["verified"] else \
            f"FAILED [{log['code'] or 'unreachable'}] {log['reason'] or log['error']}"
        typer.echo(f"{log['jurisdiction']}: {state_text}; size {log['size']}, "
                   f"{log['new_entries']} new entries; witnesses: {witness_summary(log)}")
    typer.echo(f"{s['entries']} entries audited, {s['decisions_replayed']} decisions replayed, "
               f"{s['findings']} finding(s): {s['verdict']}")
    for kind, count in s["by_kind"].items():
        typer.echo(f"  {kind}: {count}")
    typer.echo(f"report: {html_path}")
    typer.echo(f"report: {json_path}")
    if signer is not None:
        typer.echo(f"signed: {json_path.parent / 'report.sig'} (check with `bordergate audit "
                   f"verify-report {json_path.parent} --auditor-key "
                   f"{signer.verifier().key_string}`)")
    # a checkpoint without a fresh witness quorum is not a verified current state
    if failed:
        raise typer.Exit(1)


def _built(result: AuditRun, *, json_output: bool) -> dict[str, Any]:
    """The report document of ``result``.  Whatever goes wrong building it from what
    the logs say (an ``OSError`` of ``time.gmtime`` included) is ``report_not_built``
    (exit 1), never an I/O error: retrying the same logs would fail the same way."""
    from bordergate.audit.report import build_report

    try:
        return build_report(result)
    except Exception as exc:
        raise fail(VerificationError(
            f"the report could not be built from what the logs say ({type(exc).__name__}); "
            "the auditor's state is saved: report this as an auditor bug",
            code="report_not_built"), json_output=json_output) from exc


def _written(result: AuditRun, doc: dict[str, Any], out: Path, signer: NoteSigner | None, *,
             json_output: bool) -> tuple[Path, Path]:
    """Gather the evidence package and write the report (an I/O error is exit 3)."""
    from bordergate.audit.evidence_package import gather_evidence
    from bordergate.audit.report import write_report

    try:
        package = gather_evidence(result, doc)
        return write_report(doc, out, evidence=package, signer=signer)
    except (BordergateError, OSError) as exc:
        raise fail(exc, json_output=json_output) from exc
