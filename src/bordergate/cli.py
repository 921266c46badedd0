"""The ``bordergate`` command: one Typer app, one sub-command group per room.

Each room keeps its commands in its own module (``<room>/commands.py``) and
this file only wires them together, so the command tree reads in one place.
This module must never hold domain logic: commands call the rooms' APIs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bordergate import (
    __version__,
    approval_commands,
    log_operator,
    receipt_commands,
    roster_commands,
    token_commands,
)
from bordergate import custody_commands as keys_commands
from bordergate.audit import commands as audit_commands
from bordergate.audit import run_command as audit_run_command
from bordergate.gateway import commands as gateway_commands
from bordergate.gateway import principal_commands
from bordergate.migration import commands as migrate_commands
from bordergate.releases import commands as release_commands
from bordergate.residency import commands as schema_commands
from bordergate.tlog import commands as log_commands
from bordergate.tlog import witness_commands

__all__ = ["app", "main"]

app = typer.Typer(
    name="bordergate",
    help="Jurisdiction-bound personal data behind a logged policy gate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


app.add_typer(log_commands.app, name="log")
log_commands.app.command("sequencer")(log_operator.sequencer)
app.add_typer(witness_commands.app, name="witness")
app.add_typer(audit_commands.app, name="audit")
audit_commands.app.command("run")(audit_run_command.run)
app.add_typer(principal_commands.app, name="principal")
app.add_typer(gateway_commands.app, name="gateway")
gateway_commands.app.command("revoke-token")(token_commands.revoke_token)
app.add_typer(keys_commands.app, name="keys")
app.add_typer(schema_commands.app, name="schema")
app.add_typer(release_commands.app, name="release")
app.add_typer(approval_commands.app, name="approval")
app.add_typer(roster_commands.app, name="roster")
app.add_typer(receipt_commands.app, name="receipt")
app.add_typer(migrate_commands.app, name="migrate")


@app.callback()
def _root() -> None:
    """Jurisdiction-bound personal data behind a logged policy gate."""


@app.command()
def version() -> None:
    """Print the installed bordergate version."""
    typer.echo(__version__)


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

    Exit codes: 0 done, 1 the demo failed, 3 a port is taken (nothing started),
    128+N stopped by signal N (SIGINT, SIGTERM, SIGHUP), every process it started stopped.
    """
    from bordergate.demo import run_demo
    from bordergate.errors import Unavailable
    try:
        run_demo(data, subjects=subjects, serve=serve, base_port=base_port)
    except Unavailable as e:
        typer.echo(f"error [{e.code}]: {e}", err=True)
        raise typer.Exit(3) from None
    except (RuntimeError, OSError) as e:
        typer.echo(f"error [demo_failed]: {e}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    """Console-script entry point."""
    app()
