"""``bordergate principal``: make issuer keys and mint principal tokens (dev and demo).

``keygen`` writes a new issuer private key (PKCS#8 PEM, mode 0600, never
overwriting) and prints its public JWK; ``issue`` signs a token for a principal.
Production issuers are the custodian's identity provider; this module must
never be needed to run a gateway and never print a private key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bordergate.errors import ConfigError, Unavailable
from bordergate.exit_codes import fail, usage_error
from bordergate.gateway.auth import (
    IssuerPrivateKey,
    Principal,
    TokenIssuer,
    load_private_key,
    public_jwk,
)
from bordergate.tlog.logdir import write_key

__all__ = ["app"]

app = typer.Typer(help="Issuer keys and principal tokens for development and the demo.")


@app.command()
def keygen(
    key_file: Annotated[Path, typer.Option(help="Where to write the private key (0600).")],
    algorithm: Annotated[str, typer.Option(help="ed25519 (EdDSA) or p256 (ES256).")] = "ed25519",
    pem: Annotated[bool, typer.Option(help="Print the public key as PEM, not JWK.")] = False,
) -> None:
    """Create an issuer private key and print its public key."""
    key: IssuerPrivateKey
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "p256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise typer.BadParameter("algorithm must be ed25519 or p256")
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:  # whole or not at all, never overwriting (tlog.logdir.write_key)
        write_key(key_file, data.decode("ascii").strip())
    except ConfigError:
        raise usage_error(f"{key_file} exists; not overwriting", code="key_file_exists",
                          hint="choose another --key-file") from None
    except OSError as exc:
        raise fail(Unavailable(f"cannot write {key_file}: {exc.strerror}",
                               code="key_file_unwritable")) from None
    if pem:
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        typer.echo(public.decode("ascii"), nl=False)
    else:
        typer.echo(json.dumps(public_jwk(key.public_key()), sort_keys=True))


@app.command()
def issue(
    *,
    key_file: Annotated[Path, typer.Option(help="The issuer private key (PEM).")],
    issuer: Annotated[str, typer.Option(help="The iss claim.")],
    audience: Annotated[str, typer.Option(help="The aud claim: the gateway/jurisdiction.")],
    principal_id: Annotated[str, typer.Option("--id", help="The principal id (sub).")],
    org: Annotated[str, typer.Option(help="The organisation name.")],
    org_kind: Annotated[str, typer.Option(help="local, parent or custodian.")],
    location: Annotated[str, typer.Option(help="Jurisdiction where the principal works.")],
    role: Annotated[list[str] | None, typer.Option(help="A role; repeat for more.")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds (short by default).")] = 900,
) -> None:
    """Print a signed bearer token for a principal."""
    try:
        key = load_private_key(key_file.read_bytes())
    except OSError as exc:
        raise fail(exc) from None
    except ConfigError as exc:
        raise fail(ConfigError(f"{key_file}: {exc}", code=exc.code)) from None
    if ttl <= 0:
        raise typer.BadParameter("ttl must be positive")
    try:
        principal = Principal(principal_id, org, org_kind, location, frozenset(role or ()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    token = TokenIssuer(key, issuer).issue(principal, audience=audience, now=time.time(), ttl=ttl)
    typer.echo(token)
