"""``bordergate schema ...``: check a classified schema file before deploying it.

Exit 0 when the schema is valid, 1 when it is not (the message names file,
collection and field, with a stable code), 2 when it cannot be read.  This
module must never hold validation logic: it calls :mod:`bordergate.residency.schema`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from bordergate.errors import ConfigError
from bordergate.exit_codes import ExitCode, fail

__all__ = ["app"]

app = typer.Typer(help="Check classified schema files.", no_args_is_help=True)


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="A schema TOML file.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Validate a schema file: every field classified, typed and well-formed (promise 1),
    DSP categories and government-related flags known (docs/compliance.md)."""
    from bordergate.residency.schema import load_schema

    try:
        schema = load_schema(file)
    except ConfigError as exc:
        unreadable = exc.code == "schema_unreadable"
        raise fail(exc, exit_code=ExitCode.UNAVAILABLE if unreadable else ExitCode.REFUSED,
                   hint=None if unreadable else "correct the schema file",
                   json_output=json_output) from exc
    if json_output:
        typer.echo(json.dumps({"ok": True, "collections": {
            name: {"fields": len(coll.fields), "classes": dict(Counter(
                spec.field_class.value for spec in coll.fields.values()))}
            for name, coll in schema.collections.items()}}, sort_keys=True))
        return
    for name, coll in schema.collections.items():
        classes = Counter(spec.field_class.value for spec in coll.fields.values())
        summary = ", ".join(f"{n} {c}" for c, n in sorted(classes.items()))
        typer.echo(f"{name}: {len(coll.fields)} fields ({summary})")
    categories = Counter(spec.dsp_category.value for coll in schema.collections.values()
                         for spec in coll.fields.values() if spec.dsp_category is not None)
    government = sum(spec.government_related for coll in schema.collections.values()
                     for spec in coll.fields.values())
    cats = ", ".join(f"{n} {c}" for c, n in sorted(categories.items())) or "none"
    typer.echo(f"DSP categories (28 CFR 202.249): {cats}; government-related fields: "
               f"{government}")
    typer.echo(f"OK: {file} declares {len(schema.collections)} collections, every field "
               "classified")


@app.command("demo-path")
def demo_path() -> None:
    """Print where the shipped demo schema (a short-video platform) lives."""
    from bordergate.residency.schema import demo_schema_path

    typer.echo(str(demo_schema_path()))
