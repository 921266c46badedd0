"""``bordergate gateway``: provision a deployment and serve one jurisdiction's gateway.

``init --config F`` creates the keys, logs, stores and (development) issuer
keys every jurisdiction of the deployment names and lacks; ``serve --config F
--jurisdiction us`` runs that jurisdiction's gateway on its configured
addresses (the public listener, and the admin listener of the dashboard and
``/metrics``, loopback by default, ``--admin-listen HOST:PORT``); ``openapi``
prints the API document (``revoke-token`` is wired in by ``bordergate.cli``
from ``bordergate.token_commands``, which joins this room and the custodian's
log writer).  This module must never hold gateway logic: it parses options and
calls ``gateway.startup``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from bordergate.config import load_config, parse_listen
from bordergate.errors import BordergateError
from bordergate.exit_codes import fail

__all__ = ["app"]

app = typer.Typer(help="Provision a deployment and serve a jurisdiction's gateway.",
                  no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", help="the deployment TOML file")]


def _fail(exc: BordergateError) -> typer.Exit:
    return fail(exc)


@app.command()
def init(config: ConfigOption, json_output: Annotated[bool, typer.Option(
        "--json", help="print JSON: the items created")] = False) -> None:
    """Create the keys, logs and stores of every jurisdiction (idempotent)."""
    from bordergate.gateway.startup import provision

    try:
        done = provision(load_config(config))
    except BordergateError as exc:
        raise fail(exc, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({"created": done}))
        return
    for line in done:
        typer.echo(line)
    typer.echo(f"ready: {len(done)} item(s) created")


@app.command()
def serve(  # noqa: PLR0917 (typer maps each parameter to an option)
    config: ConfigOption,
    jurisdiction: Annotated[str, typer.Option("--jurisdiction", "-j",
                                              help="the jurisdiction code to serve")],
    unreviewed: Annotated[bool, typer.Option(
        "--unreviewed", help="serve without an approved release (demo and development "
        "profiles only; logged)")] = False,
    http: Annotated[str, typer.Option(help="uvicorn HTTP implementation")] = "auto",
    loop: Annotated[str, typer.Option(
        help="event loop: auto (uvloop when installed), asyncio or uvloop")] = "auto",
    admin_listen: Annotated[str | None, typer.Option(
        "--admin-listen", help="HOST:PORT of the admin listener (dashboard, /metrics); "
        "default: the deployment's admin_listen, else 127.0.0.1 and the port + 1000")] = None,
    listen: Annotated[str | None, typer.Option(
        "--listen", help="HOST:PORT this worker listens on (default: the deployment's "
        "listen); with it the admin listener defaults to 127.0.0.1 and its port + 1000")
    ] = None,
    credential_file: Annotated[Path | None, typer.Option(
        "--credential-file", help="this worker's append credential (ID.SECRET) for the "
        "log's sequencer (default: the deployment's log.sequencer.credential_file)")
    ] = None,
) -> None:
    """Serve one jurisdiction's gateway until interrupted.

    Several workers of one jurisdiction share the deployment file and differ by
    --listen and --credential-file (docs/scale-out.md).
    """
    from bordergate.gateway.startup import serve_gateway
    from bordergate.profile import refuse_unreviewed
    from bordergate.releases.launcher import reexec_isolated

    reexec_isolated(sys.argv[1:])  # from a built runtime: verify it first (promise 6)

    from bordergate.gateway.worker import worker_deployment
    for option, value in (("--listen", listen), ("--admin-listen", admin_listen)):
        if value is not None and parse_listen(value) is None:
            raise typer.BadParameter(f"{option} must be HOST:PORT, e.g. 127.0.0.1:9401")
    try:
        deployment = worker_deployment(
            load_config(config), jurisdiction, listen=listen, admin_listen=admin_listen,
            credential_file=credential_file.resolve() if credential_file else None)
        if unreviewed:
            refuse_unreviewed(deployment.profile)
    except BordergateError as exc:
        raise _fail(exc) from None
    if loop not in ("auto", "asyncio", "uvloop"):
        raise typer.BadParameter("--loop must be auto, asyncio or uvloop")
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        runner.run(serve_gateway(deployment, jurisdiction, unreviewed=unreviewed, http=http))


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when chosen (or ``auto`` and installed), as uvicorn does."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise typer.BadParameter("uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


@app.command()
def openapi(
    config: Annotated[Path | None, typer.Option(
        "--config", help="the deployment TOML file (default: the demo schema and the "
                         "packaged policy bundle)")] = None,
    jurisdiction: Annotated[str | None, typer.Option(
        "--jurisdiction", "-j", help="the jurisdiction whose gateway it describes")] = None,
) -> None:
    """Print the gateway's OpenAPI 3.1 document (generated from the schema and bundle)."""
    from bordergate.gateway.openapi import api_model, openapi_document
    from bordergate.policy.bundle import PolicyBundle, default_bundle
    from bordergate.residency.schema import demo_schema_path, load_schema

    try:
        if config is None:
            model = api_model(load_schema(demo_schema_path()), default_bundle(),
                              jurisdiction=jurisdiction)
        else:
            deployment = load_config(config)
            if jurisdiction is not None:
                deployment.jurisdiction(jurisdiction)
            model = api_model(load_schema(deployment.schema_path),
                              PolicyBundle.load(deployment.policy_bundle_path),
                              jurisdiction=jurisdiction, limits=deployment.limits)
    except BordergateError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(openapi_document(model), indent=2, sort_keys=True))
