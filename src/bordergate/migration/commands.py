"""``bordergate migrate ...``: generate a legacy dataset, plan, run and verify a migration.

Exit codes (:mod:`bordergate.exit_codes`): 0 done (``verify``: everything
matched), 1 refused or a check failed (the message has a stable code), 2 a
usage or configuration error, 3 a file or service could not be reached.
``--json`` prints the result as one JSON document on standard output (errors
too); ``plan --out F`` and ``verify --out F`` also write it to a file.  This
module holds no migration logic: it parses options, opens what the deployment
names, and prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bordergate.errors import BordergateError
from bordergate.exit_codes import fail

if TYPE_CHECKING:
    from bordergate.config import Deployment
    from bordergate.migration.mapping import MigrationMapping
    from bordergate.residency.schema import Schema

__all__ = ["app"]

app = typer.Typer(help="Move a legacy global database into its home jurisdictions.",
                  no_args_is_help=True)

SourceOpt = Annotated[str, typer.Option("--source", help="sqlite:PATH or postgresql://…")]
MappingOpt = Annotated[Path | None, typer.Option(
    "--mapping", help="mapping TOML (default: the packaged demo mapping)")]
ConfigOpt = Annotated[Path, typer.Option("--config", help="the deployment file")]


JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON")]
OutOpt = Annotated[Path | None, typer.Option(
    "--out", help="also write the result as JSON to this file")]


@contextmanager
def _errors(json_output: bool = False) -> Iterator[None]:
    try:
        yield
    except (BordergateError, OSError) as exc:
        raise fail(exc, json_output=json_output) from None


def _write(out: Path | None, document: dict[str, object]) -> None:
    if out is not None:
        out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def _load(config: Path, mapping: Path | None
          ) -> tuple[Deployment, Schema, MigrationMapping]:
    from bordergate.config import load_config
    from bordergate.migration.mapping import demo_mapping_path, load_mapping
    from bordergate.residency.schema import load_schema

    deployment = load_config(config)
    schema = load_schema(deployment.schema_path)
    return deployment, schema, load_mapping(mapping or demo_mapping_path(), schema)


@app.command()
def generate(source: SourceOpt,
             users: Annotated[int, typer.Option(help="clean users (10 records each)")] = 1000,
             seed: Annotated[int, typer.Option(help="Faker and random seed")] = 15,
             json_output: Annotated[bool, typer.Option(
                 "--json", help="print the counts as JSON")] = False) -> None:
    """Create a legacy "global platform" database (test and demo data)."""
    from bordergate.migration.legacy import generate_legacy
    from bordergate.migration.source import open_source

    with _errors(json_output):
        src = open_source(source)
        try:
            made = generate_legacy(src, users=users, seed=seed)
        finally:
            src.close()
    if json_output:
        typer.echo(json.dumps({"records": made.total, "users": made.users,
                               "dirty_accounts": len(made.dirty_accounts),
                               "ownerless_rows": made.ownerless_rows}))
        return
    typer.echo(f"{made.total} records ({made.users} clean users, "
               f"{len(made.dirty_accounts)} dirty accounts, {made.ownerless_rows} ownerless rows)")


@app.command()
def plan(source: SourceOpt, config: ConfigOpt, *, mapping: MappingOpt = None,
         out: OutOpt = None, json_output: JsonOpt = False,
         home: Annotated[str | None, typer.Option(
             "--home", "-j", "--jurisdiction", help="print only this home's part")] = None,
         batch_subjects: Annotated[int, typer.Option(help="subjects per batch")] = 500) -> None:
    """Classify every source column and row, and count what each home receives."""
    from bordergate.migration.plan import make_plan, plan_text
    from bordergate.migration.source import open_source

    with _errors(json_output):
        _, schema, parsed = _load(config, mapping)
        src = open_source(source, base_dir=config.parent)
        try:
            made = make_plan(src, parsed, schema, batch_subjects=batch_subjects)
        finally:
            src.close()
    with _errors(json_output):
        _write(out, made.to_json())
    if home is not None:
        typer.echo(json.dumps(made.for_home(home), indent=2, sort_keys=True))
    elif json_output:
        typer.echo(json.dumps(made.to_json(), indent=2, sort_keys=True))
    else:
        for line in plan_text(made):
            typer.echo(line)
    if made.unmapped:
        raise typer.Exit(1)


@app.command()
def run(source: SourceOpt, config: ConfigOpt, *, mapping: MappingOpt = None,
        batch_subjects: Annotated[int, typer.Option(help="subjects per batch (first run)")]
        = 500,
        progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
        home: Annotated[str | None, typer.Option(
            "--home", "-j", "--jurisdiction",
            help="run only this home's part (its custodian's run: only its files are "
                 "opened)")] = None,
        parallel: Annotated[bool, typer.Option(
            help="worker processes per home, each with only its home's files; several "
                 "for a home whose log is its log operator's service (Linux; without "
                 "--home)")] = True,
        json_output: JsonOpt = False) -> None:
    """Migrate in resumable batches; safe to interrupt and run again."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from bordergate.migration.homes import open_home
    from bordergate.migration.parallel import parallel_available, run_parallel
    from bordergate.migration.plan import make_plan
    from bordergate.migration.run import homes_needed, run_migration
    from bordergate.migration.source import open_source

    with _errors(json_output):
        deployment, schema, parsed = _load(config, mapping)
        src = open_source(source, base_dir=config.parent)
        homes = {}
        try:
            made = make_plan(src, parsed, schema, batch_subjects=batch_subjects)
            made.require_runnable()
            needed = sorted(homes_needed(src, made, home))
            workers = parallel and home is None and len(needed) > 1 and parallel_available()
            for code in [] if workers else needed:
                homes[code] = open_home(deployment, code)
            bar = Progress(TextColumn("migrating"), BarColumn(), MofNCompleteColumn(),
                           TaskProgressColumn(), TextColumn("{task.fields[rate]} records/s"),
                           TimeRemainingColumn(), disable=not progress or json_output)
            with bar:
                total = made.homes[home].records if home in made.homes else made.records
                task = bar.add_task("records", total=total if home else made.records,
                                    rate="-")

                def advance(records: int, batch: int) -> None:
                    speed = bar.tasks[0].speed
                    bar.update(task, completed=records,
                               rate=f"{speed:,.0f}" if speed else "-")

                if workers:
                    report = run_parallel(source, deployment, parsed, made, schema=schema,
                                          base_dir=config.parent, progress=advance)
                else:
                    report = run_migration(src, parsed, made, homes, schema=schema,
                                           only=home, progress=advance)
        finally:
            for h in homes.values():
                h.close()
            src.close()
    rate = report.records / report.seconds if report.seconds else 0.0
    if json_output:
        typer.echo(json.dumps({
            "ok": True, "records": report.records, "batches": report.batches,
            "batches_done_before": report.batches_done_before, "retried": report.retried,
            "seconds": round(report.seconds, 3), "records_per_second": round(rate, 1),
            "home": home, "workers": report.workers}, indent=2))
        return
    processes = ", ".join(f"{code} {n}" for code, n in sorted(report.workers.items()))
    typer.echo(f"migrated {report.records} records in {report.batches} batch parts "
               f"({report.batches_done_before} done before, {report.retried} retried) "
               f"in {report.seconds:.1f} s ({rate:,.0f} records/s; "
               f"{'workers per home: ' + processes if processes else 'one process'}); "
               "source compacted")


@app.command()
def verify(source: SourceOpt, config: ConfigOpt, *, mapping: MappingOpt = None,
           out: OutOpt = None, json_output: JsonOpt = False) -> None:
    """Recount the source and recompute every home's evidence; exit 0 only if all match."""
    from bordergate.migration.homes import open_home
    from bordergate.migration.source import open_source
    from bordergate.migration.verify import verify_migration

    with _errors(json_output):
        deployment, _, parsed = _load(config, mapping)
        src = open_source(source, base_dir=config.parent)
        homes = {}
        try:
            codes = sorted(deployment.jurisdictions)
            for code in codes:
                homes[code] = open_home(deployment, code, write=False)
            result = verify_migration(src, parsed, deployment, homes)
        finally:
            for h in homes.values():
                h.close()
            src.close()
    with _errors(json_output):
        _write(out, result.to_json())
    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        if not result.ok:
            raise typer.Exit(1)
        return
    for failure in result.failures:
        typer.echo(f"FAIL {failure}")
    for what in result.unverifiable:
        typer.echo(f"not verifiable here: {what}")
    dirty = result.dirty_in_source
    typer.echo(f"dirty rows left in the source: {dirty.get('rows_left_in_place', 0)}")
    if not result.ok:
        typer.echo("migration verify: FAILED")
        raise typer.Exit(1)
    typer.echo("migration verify: OK")
