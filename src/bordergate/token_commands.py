"""``bordergate gateway revoke-token``: the custodian revokes a bearer token.

``revoke-token --config F -j us --jti ID [--reason R]`` appends a
``token-revoke`` entry naming the token's ``jti`` to the jurisdiction's log
through its single writer (:mod:`bordergate.custody_log`: the sequencer
service, or the log storage when no gateway holds it, else
``log_writer_busy``); every gateway worker then refuses the token
(:mod:`bordergate.gateway.revocations`).  It prints the entry's index as JSON.

It lives outside the ``gateway`` room because it joins it with the custodian's
log writer, which builds on the gateway's entry encoders (``bordergate.cli``
wires it into ``bordergate gateway``).  This module must never hold a token,
only its id.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from bordergate.config import load_config
from bordergate.custody_log import open_custody_log
from bordergate.errors import BordergateError
from bordergate.exit_codes import fail
from bordergate.gateway.revocations import token_revoke_entry

__all__ = ["revoke_token"]


def revoke_token(
    config: Annotated[Path, typer.Option("--config", help="the deployment TOML file")],
    jurisdiction: Annotated[str, typer.Option("--jurisdiction", "-j",
                                              help="the jurisdiction whose issuer issued it")],
    jti: Annotated[str, typer.Option(help="the token's id (its jti claim)")],
    reason: Annotated[str, typer.Option(help="why (no personal data; 200 characters)")] = "",
) -> None:
    """Revoke a bearer token: a token-revoke entry in the log, applied by every worker."""
    try:
        j = load_config(config).jurisdiction(jurisdiction)
        entry = token_revoke_entry(jti, time.time(), reason=reason)
        with open_custody_log(j) as custody:
            index = custody.append([entry])
    except BordergateError as exc:
        raise fail(exc) from None
    typer.echo(json.dumps({"revoked": jti, "log": {"origin": j.log.origin, "index": index}}))
