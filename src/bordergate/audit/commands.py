"""``bordergate audit ...``: the auditor's commands.

Each command re-checks published material offline or from a log and exits
0 when it verified, 1 when verification failed (with the reason), 2 for a
usage or I/O error.  This module must never hold verification logic itself:
it calls the checking functions of the rooms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bordergate.errors import VerificationError

__all__ = ["app"]

app = typer.Typer(help="Verify logs and evidence as an outside auditor.", no_args_is_help=True)


@app.command()
def evidence(
    file: Annotated[Path, typer.Argument(help="A split-view evidence file (JSON).")],
) -> None:
    """Check a split-view evidence file offline: two signed, inconsistent checkpoints.

    Exit 0 if the file proves that the log signed two checkpoints that cannot
    both be true (promise 5), 1 if it does not, 2 if it cannot be read.
    """
    from bordergate.tlog.evidence import verify_evidence

    try:
        data = file.read_bytes()
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        view = verify_evidence(data)
    except VerificationError as exc:
        typer.echo(f"NOT EVIDENCE ({exc.code}): {exc}")
        raise typer.Exit(1) from exc
    typer.echo(f"SPLIT VIEW PROVEN: {view.describe()}")
