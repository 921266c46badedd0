"""The ``bordergate`` command: one Typer app, one sub-command group per room.

Each room keeps its commands in its own module (``<room>/commands.py``) and
this file only wires them together, so the command tree reads in one place.
Groups are deferred (:mod:`bordergate.command_tree`): a group's module is
imported only when one of its commands runs, so a command starts by importing
only what it needs.  Errors and exit codes follow :mod:`bordergate.exit_codes`.
This module must never hold domain logic: commands call the rooms' APIs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bordergate import __version__
from bordergate.command_tree import BordergateRoot, DeferredCommand
from bordergate.exit_codes import EXIT_CODES_HELP, ExitCode, fail, report

__all__ = ["app", "main"]


def _deferred(name: str, target: str, short_help: str,
              *extras: tuple[str, str, str]) -> DeferredCommand:
    return DeferredCommand(name, target, short_help,
                           tuple(DeferredCommand(*extra) for extra in extras))


# name, "module:Typer app or command function", short help (shown by `bordergate
# --help` without importing the module; tests/test_cli_conventions.py checks it
# matches), then commands of the group that live in other modules
_GROUPS = (
    _deferred("log", "bordergate.tlog.commands:app",
              "The verifiable log: RFC 9162 trees as C2SP tlog-tiles.",
              ("sequencer", "bordergate.log_operator:sequencer",
               "Run the log's single writer, the one holder of the log key, as a service."),
              ("credential", "bordergate.log_credentials:credential",
               "Issue (or --revoke) an appender's credential in the log operator's list.")),
    _deferred("witness", "bordergate.tlog.witness_commands:app",
              "Run a C2SP tlog-witness that cosigns consistent checkpoints."),
    _deferred("audit", "bordergate.audit.commands:app",
              "Verify logs and evidence as an outside auditor.",
              ("run", "bordergate.audit.run_command:run",
               "Verify each log, replay and check every new entry, write the report."),
              ("init", "bordergate.audit.init_command:init",
               "Write an auditor configuration from a deployment's public keys."),
              ("keygen", "bordergate.audit.report_commands:keygen",
               "Make the auditor's signing key (mode 0600) and print its verifier key."),
              ("verify-report", "bordergate.audit.report_commands:verify_report_command",
               "Verify a signed audit report and its evidence package, offline.")),
    _deferred("principal", "bordergate.gateway.principal_commands:app",
              "Issuer keys and principal tokens for development and the demo."),
    _deferred("gateway", "bordergate.gateway.commands:app",
              "Provision a deployment and serve a jurisdiction's gateway.",
              ("revoke-token", "bordergate.token_commands:revoke_token",
               "Revoke a bearer token: a token-revoke entry in the log, applied by every worker."),
              ("public-keys", "bordergate.public_keys:public_keys",
               "List every public key a witness, auditor or client needs."),
              ("template", "bordergate.gateway.template_commands:template",
               "Write a production deployment to start from."),
              ("receipt-keygen", "bordergate.gateway.template_commands:receipt_keygen",
               "Make a gateway's receipt signing key and print its public key.")),
    _deferred("keys", "bordergate.custody_commands:app",
              "Key custody: KEK init, rotation, destruction, status."),
    _deferred("schema", "bordergate.residency.commands:app",
              "Check classified schema files."),
    _deferred("release", "bordergate.releases.commands:app",
              "Reviewed code and policy only: release manifests, reviews, status."),
    _deferred("approval", "bordergate.approval_commands:app",
              "An approver's signed grant, denial or revocation of an approval."),
    _deferred("roster", "bordergate.roster_commands:app",
              "The identity authority's signed roster of principals."),
    _deferred("receipt", "bordergate.receipt_commands:app",
              "Receipts: what a gateway signed that it released."),
    _deferred("migrate", "bordergate.migration.commands:app",
              "Move a legacy global database into its home jurisdictions."),
)

class _Root(BordergateRoot):
    groups = _GROUPS


app = typer.Typer(
    name="bordergate",
    help="Jurisdiction-bound personal data behind a logged policy gate.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=_Root,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"bordergate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the installed version and exit.")] = False,
) -> None:
    """Jurisdiction-bound personal data behind a logged policy gate."""


@app.command()
def version(json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
            ) -> None:
    """Print the installed bordergate version."""
    typer.echo(json.dumps({"version": __version__}) if json_output else __version__)


@app.command()
def demo(
    data: Annotated[Path, typer.Option(help="demo directory (wiped and rebuilt)")] = Path(
        "demo-data"),
    subjects: Annotated[int, typer.Option(help="subjects to seed, across the 3 homes")] = 3000,
    serve: Annotated[bool, typer.Option(help="keep the gateways running until Ctrl-C")] = True,
    base_port: Annotated[int, typer.Option(
        envvar="BORDERGATE_DEMO_BASE_PORT",
        help="N: the demo listens on N..N+2, N+10..N+12, N+20..N+21, N+30..N+32 and "
             "N+1000..N+1002 (loopback)")] = 8401,
) -> None:
    """Run the trusted-partner demo (us, eu, cn) on embedded defaults.

    Exit codes: 0 done, 3 a port is taken (nothing started) or the demo failed,
    128+N stopped by signal N (SIGINT, SIGTERM, SIGHUP), every process it started stopped.
    """
    from bordergate.demo import run_demo
    from bordergate.errors import Unavailable
    try:
        run_demo(data, subjects=subjects, serve=serve, base_port=base_port)
    except Unavailable as e:
        raise fail(e, hint="pass --base-port N (or set BORDERGATE_DEMO_BASE_PORT) to move "
                   "every port the demo uses") from None
    except (RuntimeError, OSError) as e:
        report("demo_failed", str(e), "read the message above; with a port taken, pass "
               "--base-port to pick others")
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None


def main() -> None:
    """Console-script entry point."""
    app()
