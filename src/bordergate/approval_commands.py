"""``bordergate approval``: an approver's own side of an approval (issue 12, item 4).

``keygen --key-file F`` makes an approver's Ed25519 key (PKCS#8 PEM, mode
0600, never overwriting) and prints its public key in base64: the identity
authority lists it for the approver in the roster.  ``grant``, ``deny`` and
``revoke ID --key F --gateway URL -j CODE --token-file T`` fetch the approval
from the gateway, check its request entry and digest, sign the statement
(:mod:`bordergate.approval_statement`) here with the approver's key, and send
the signature; the gateway verifies it before logging.  A requester
withdrawing their own request runs ``revoke`` without ``--key``.  Each prints
the approval after the change as JSON.

It lives outside the ``gateway`` room because it is the approver's tool, run
where the approver's key is, and talks to a gateway only as a client.  This
module must never print or send a private key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from bordergate.approval_statement import key_text, load_signing_key, write_signing_key
from bordergate.client import GatewayClient
from bordergate.errors import BordergateError
from bordergate.exit_codes import fail, usage_error

__all__ = ["app"]

app = typer.Typer(help="An approver's signed grant, denial or revocation of an approval.",
                  no_args_is_help=True)

_Key = Annotated[Path | None, typer.Option("--key", help="the approver's private key (PEM)")]
_Gateway = Annotated[str, typer.Option("--gateway", help="the approval's home gateway URL")]
_Jurisdiction = Annotated[str, typer.Option("--jurisdiction", "-j",
                                            help="that gateway's jurisdiction code")]
_TokenFile = Annotated[Path, typer.Option("--token-file",
                                          help="a file holding the approver's bearer token")]


@app.command()
def keygen(
    key_file: Annotated[Path, typer.Option(help="where to write the private key (0600)")],
) -> None:
    """Create an approver's Ed25519 key and print its public key (for the roster)."""
    try:
        public = write_signing_key(key_file)
    except BordergateError as exc:
        raise fail(exc) from None
    typer.echo(key_text(public))


def _change(verdict: str, approval: str, key: Path | None, *, gateway: str,
            jurisdiction: str, token_file: Path) -> None:
    try:
        signer = load_signing_key(key) if key is not None else None
        token = token_file.read_text().strip()
        with GatewayClient(gateway, token, gateways={jurisdiction: gateway}) as client:
            out: dict[str, Any]
            if verdict == "revoke":
                out = client.revoke(approval, signer)
            elif signer is None:
                raise usage_error(f"{verdict} needs --key",
                                  code="approval_signature_missing")
            elif verdict == "grant":
                out = client.grant(approval, signer)
            else:
                out = client.deny(approval, signer)
    except (BordergateError, OSError) as exc:
        raise fail(exc) from None
    typer.echo(json.dumps(out, sort_keys=True))


@app.command()
def grant(approval: Annotated[str, typer.Argument(help="the approval id (apr-...)")],
          gateway: _Gateway, jurisdiction: _Jurisdiction, token_file: _TokenFile,
          key: _Key = None) -> None:
    """Grant an approval, signed with the approver's own key."""
    _change("grant", approval, key, gateway=gateway, jurisdiction=jurisdiction,
            token_file=token_file)


@app.command()
def deny(approval: Annotated[str, typer.Argument(help="the approval id (apr-...)")],
         gateway: _Gateway, jurisdiction: _Jurisdiction, token_file: _TokenFile,
         key: _Key = None) -> None:
    """Deny a pending approval, signed with the approver's own key."""
    _change("deny", approval, key, gateway=gateway, jurisdiction=jurisdiction,
            token_file=token_file)


@app.command()
def revoke(approval: Annotated[str, typer.Argument(help="the approval id (apr-...)")],
           gateway: _Gateway, jurisdiction: _Jurisdiction, token_file: _TokenFile,
           key: _Key = None) -> None:
    """Revoke an approval: an approver signs with --key; the requester withdrawing
    their own request signs nothing."""
    _change("revoke", approval, key, gateway=gateway, jurisdiction=jurisdiction,
            token_file=token_file)
