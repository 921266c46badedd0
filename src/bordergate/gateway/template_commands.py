"""``bordergate gateway template`` and ``gateway receipt-keygen``: start a production
deployment (issue 16, item 4).

``template --out DIR`` writes the packaged production template
(``production_template.toml``, profile ``production``, one jurisdiction) as
``DIR/bordergate.toml`` beside a copy of the packaged classified schema
(``schema.toml``) and policy bundle (``policy/``) to edit; it refuses a
non-empty ``DIR``.  ``receipt-keygen --key-file F -j us`` makes the gateway's
receipt signing key (mode 0600) and prints its public key last: the production
profile needs it registered in ``receipts.public_keys`` before ``gateway init``
can even read the file.  README.md, "Deploying for real", uses both.

This module must never hold gateway logic: it copies packaged files and writes
one key.
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from bordergate.errors import BordergateError
from bordergate.exit_codes import fail, usage_error

__all__ = ["receipt_keygen", "template"]


def template(out: Annotated[Path, typer.Option(
        "--out", help="the directory to create (must not exist or be empty)")],
             json_output: Annotated[bool, typer.Option(
                 "--json", help="Print the files written as JSON.")] = False) -> None:
    """Write a production deployment to start from.

    DIR/bordergate.toml (the production template), schema.toml (the packaged
    schema) and policy/ (the packaged bundle)."""
    from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
    from bordergate.residency.schema import demo_schema_path

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise usage_error(f"{out} exists and is not an empty directory",
                          code="template_target_not_empty",
                          hint="name a new or empty directory with --out",
                          json_output=json_output)
    from bordergate.tlog.logdir import make_dirs, write_public

    make_dirs(out)  # the deployment file: never writable by others, whatever the umask
    packaged = importlib.resources.files("bordergate") / "production_template.toml"
    write_public(out / "bordergate.toml", packaged.read_text(encoding="utf-8"))
    shutil.copyfile(demo_schema_path(), out / "schema.toml")
    shutil.copytree(DEFAULT_BUNDLE_PATH, out / "policy",
                    ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.pyc"))
    if json_output:
        typer.echo(json.dumps({"ok": True, "config": str(out / "bordergate.toml"),
                               "schema": str(out / "schema.toml"),
                               "policy": str(out / "policy")}))
        return
    typer.echo(f"wrote {out / 'bordergate.toml'} (profile production), "
               f"{out / 'schema.toml'} and {out / 'policy'}; fill in the UPPER_CASE keys")


def receipt_keygen(
    key_file: Annotated[Path, typer.Option("--key-file", help="where to write the key")],
    jurisdiction: Annotated[str, typer.Option("--jurisdiction", "-j",
                                              help="the gateway's jurisdiction")],
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the key file and public key as JSON.")] = False,
) -> None:
    """Make a gateway's receipt signing key and print its public key.

    The key file gets mode 0600; the public key (last line) goes into
    receipts.public_keys."""
    from bordergate.tlog.logdir import make_dirs, write_key
    from bordergate.tlog.note import Signer

    try:
        signer = Signer.generate(f"{jurisdiction}.gateway-receipts")
        make_dirs(key_file.parent)  # never writable by others, whatever the umask
        write_key(key_file, signer.key_string)
    except ValueError as exc:
        raise usage_error(str(exc), code="invalid_name", json_output=json_output) from None
    except (BordergateError, OSError) as exc:
        raise fail(exc, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({"ok": True, "key_file": str(key_file),
                               "public_key": signer.verifier().key_string}))
        return
    typer.echo(f"receipt key written to {key_file}; register it in the deployment file:")
    typer.echo(f'jurisdictions.{jurisdiction}.receipts.public_keys = '
               f'["{signer.verifier().key_string}"]')
    typer.echo(signer.verifier().key_string)
