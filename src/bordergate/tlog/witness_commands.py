"""``bordergate witness ...``: create a witness key and run a C2SP tlog-witness server.

``witness init`` writes the witness's private key (mode 0600) and prints its
cosignature/v1 verifier key as the last line; ``witness serve`` runs the
add-checkpoint endpoint for the configured logs on loopback by default, with
its state in SQLite (promise 5: witnessed).  This module only wires options to
:mod:`bordergate.tlog.witness`; it must never hold protocol logic.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from bordergate.errors import BordergateError, ConfigError
from bordergate.exit_codes import fail
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.logdir import write_key
from bordergate.tlog.note import Ed25519Verifier, Verifier

__all__ = ["app", "load_witness_key", "parse_log_option"]

app = typer.Typer(
    help="Run a C2SP tlog-witness that cosigns consistent checkpoints.",
    no_args_is_help=True,
)


def _clock() -> int:
    return int(time.time())


def load_witness_key(path: Path) -> CosignatureSigner:
    """Read a witness key file (``PRIVATE+KEY+...`` of type 0x04).

    Raises:
        ConfigError: the file is missing or not a witness key.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
        return CosignatureSigner.from_key_string(text, _clock)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read witness key {path}: {exc}") from exc
    except BordergateError as exc:
        raise ConfigError(f"{path} is not a witness key: {exc}") from exc


def parse_log_option(value: str) -> tuple[str, Verifier]:
    """Parse ``ORIGIN=VKEY``; the key must be an Ed25519 key named like the origin.

    Raises:
        ConfigError: a malformed option or key, or a key name that is not the origin.
    """
    origin, sep, vkey = value.partition("=")
    if not sep or not origin:
        raise ConfigError(f"--log must be ORIGIN=VKEY, got {value!r}")
    try:
        verifier = Ed25519Verifier.from_key_string(vkey)
    except BordergateError as exc:
        raise ConfigError(f"--log {origin}: {exc}") from exc
    if verifier.name != origin:
        raise ConfigError(f"--log {origin}: the key is named {verifier.name!r}, not the origin")
    return origin, verifier


def _fail(exc: BordergateError) -> typer.Exit:
    return fail(exc)


@app.command()
def init(
    key_file: Annotated[Path, typer.Option("--key-file", help="Where to write the private key.")],
    name: Annotated[str, typer.Option("--name", help="The witness name, e.g. witness.example/w1.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a witness key (file mode 0600); print its verifier key as the last line."""
    try:
        signer = CosignatureSigner.generate(name, _clock)
    except ValueError as exc:
        raise _fail(ConfigError(f"invalid witness name {name!r}")) from exc
    try:  # whole or not at all, never overwriting (tlog.logdir.write_key)
        write_key(key_file, signer.key_string)
    except ConfigError as exc:
        raise _fail(ConfigError(f"{key_file} already exists; not overwriting a key")) from exc
    except OSError as exc:
        raise _fail(ConfigError(f"cannot create {key_file}: {exc}")) from exc
    if json_output:
        typer.echo(json.dumps({"key_file": str(key_file), "name": name,
                               "vkey": signer.verifier().key_string}))
        return
    typer.echo(f"witness key written to {key_file}")
    typer.echo(signer.verifier().key_string)


@app.command()
def serve(
    *,
    key_file: Annotated[Path, typer.Option("--key-file", help="The witness private key file.")],
    state: Annotated[Path, typer.Option("--state", help="SQLite file of the witness state.")],
    log: Annotated[
        list[str], typer.Option("--log", help="A trusted log, ORIGIN=VKEY (repeatable).")
    ],
    port: Annotated[int, typer.Option("--port", help="TCP port.")],
    host: Annotated[str, typer.Option("--host", help="Listen address.")] = "127.0.0.1",
    evidence_dir: Annotated[
        Path | None,
        typer.Option(
            "--evidence-dir", help="Where split-view evidence goes (default STATE.evidence)."
        ),
    ] = None,
) -> None:
    """Serve POST /add-checkpoint for the given logs until interrupted."""
    from bordergate.serving import run_server
    from bordergate.tlog.witness import Witness
    from bordergate.tlog.witness_server import EvidenceDirectory, create_app
    from bordergate.tlog.witness_sqlite import SqliteWitnessState

    try:
        signer = load_witness_key(key_file)
        logs: dict[str, list[Verifier]] = {}
        for value in log:
            origin, verifier = parse_log_option(value)
            logs.setdefault(origin, []).append(verifier)
        store = SqliteWitnessState(state)
    except BordergateError as exc:
        raise _fail(exc) from exc
    evidence = EvidenceDirectory(evidence_dir or state.with_name(state.name + ".evidence"))
    witness = Witness(signer, logs, store, on_evidence=evidence)
    typer.echo(f"witness {signer.name} serving {len(logs)} log(s) on http://{host}:{port}")
    typer.echo(signer.verifier().key_string)
    run_server(create_app(witness), host=host, port=port, access_log=False)
