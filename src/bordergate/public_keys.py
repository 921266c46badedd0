"""Every public key of a deployment that a witness, an auditor or a client needs.

``bordergate gateway public-keys --config F [-j CODE] [--json]`` lists, per
jurisdiction: the log's verifier key (witnesses cosign with it, auditors and
clients check checkpoints with it), its witnesses' keys, the gateways' receipt
keys (clients check receipts), the identity authority's roster keys, the
release reviewers' keys and the token issuer's public key files.  Approver keys
are each approver's own (``bordergate approval keygen``) and the key service
has no public identity of its own: neither is in the deployment file, so
neither is listed.

A key is read from the public file the deployment names when there is one
(``log.vkey_file``, ``receipts.public_keys``, ``roster.authority_keys``); only
where the deployment names nothing but the private key file (development and
demo: the log key of an in-process sequencer, a receipt or roster authority key
``gateway init`` made) is that file read, and only its public half leaves this
module.  This module must never print, return or log private key material.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from bordergate.config import Deployment, Jurisdiction, load_config
from bordergate.errors import BordergateError, ConfigError
from bordergate.exit_codes import fail
from bordergate.tlog.logdir import read_signer

__all__ = ["PublicKey", "deployment_public_keys", "log_vkey", "public_keys",
           "roster_authority_keys"]


@dataclass(frozen=True)
class PublicKey:
    """One public key: whose it is, what it is for, and the key.

    Attributes:
        jurisdiction: the jurisdiction code.
        role: ``log``, ``witness``, ``receipt``, ``roster_authority``, ``reviewer``
            or ``issuer``.
        name: whose key (the log origin, a witness URL, a reviewer's name, a file).
        key: the key: a signed-note verifier key, or (``issuer``) the PEM or JWK text.
        needed_by: who needs it.
    """

    jurisdiction: str
    role: str
    name: str
    key: str
    needed_by: str


def _public_half(path: Path) -> str:
    """The verifier key of the signing key in ``path`` (only the public half leaves)."""
    return read_signer(path).verifier().key_string


def _read_public(path: Path, what: str) -> str:
    """The text of a public key file the deployment names, refused if it holds private
    key material (found by the keys review: a deployment naming the log key as
    ``vkey_file``, or the issuer's private PEM among ``public_keys``, had this
    command print the private key for publication).

    Raises:
        ConfigError: ``public_key_unreadable`` or ``public_key_file_private``.
    """
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read {what} {path}: {why} (run bordergate "
                          "gateway init first?)", code="public_key_unreadable") from None
    if _holds_private_key(text):
        raise ConfigError(f"{path}, named as the {what}, holds a private key: name the "
                          "public key file instead (nothing of it is printed)",
                          code="public_key_file_private")
    return text


def _holds_private_key(text: str) -> bool:
    """Whether ``text`` holds private key material: a signer key string
    (``PRIVATE+KEY+...``), a PEM private key of any kind, or a JWK (or JWK set) with
    a private member (``d``, or RSA's ``p``, ``q``, ``dp``, ``dq``, ``qi``)."""
    if "PRIVATE+KEY+" in text or "PRIVATE KEY-----" in text:
        return True
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    keys = doc.get("keys") if isinstance(doc, dict) and "keys" in doc else [doc]
    private = {"d", "p", "q", "dp", "dq", "qi"}
    return isinstance(keys, list) and any(
        isinstance(k, dict) and bool(private & set(k)) for k in keys)


def log_vkey(j: Jurisdiction) -> str:
    """The jurisdiction's log verifier key: its ``vkey_file``, else the public half of
    the log key (the sequencer's, or the in-process one's).

    Raises:
        ConfigError: ``public_key_unreadable`` (no file yet),
            ``public_key_file_private``, or as :func:`bordergate.tlog.logdir.read_signer`.
    """
    if j.log.vkey_file is not None and j.log.vkey_file.exists():
        return _read_public(j.log.vkey_file, "log verifier key")
    key_file = j.sequencer.key_file if j.sequencer is not None else j.log.key_file
    if key_file is None or not key_file.exists():
        raise ConfigError(f"jurisdictions.{j.code}.log: no verifier key file yet (run "
                          "bordergate gateway init first?)", code="public_key_unreadable")
    return _public_half(key_file)


def roster_authority_keys(j: Jurisdiction) -> list[str]:
    """The identity authority's verifier keys: those listed, and (development and demo)
    the public half of the authority key ``gateway init`` made."""
    if j.roster is None:
        return []
    keys = list(j.roster.authority_keys)
    made = j.roster.authority_key_file
    if made is not None and made.exists():
        derived = _public_half(made)
        keys += [] if derived in keys else [derived]
    return keys


def _jurisdiction_keys(j: Jurisdiction) -> list[PublicKey]:
    code = j.code
    keys = [PublicKey(code, "log", j.log.origin, log_vkey(j),
                      "witnesses, auditors, clients (checkpoints)")]
    keys += [PublicKey(code, "witness", w.url, w.vkey, "auditors, clients (cosignatures)")
             for w in j.log.witnesses]
    receipts = list(j.receipts.public_keys) if j.receipts is not None else []
    if not receipts and j.receipt_key_file().exists():
        receipts = [_public_half(j.receipt_key_file())]
    keys += [PublicKey(code, "receipt", f"{code} gateway", k, "clients (receipts)")
             for k in receipts]
    keys += [PublicKey(code, "roster_authority", f"{code} identity authority", k,
                       "auditors (roster versions)") for k in roster_authority_keys(j)]
    keys += [PublicKey(code, "reviewer", r.name, r.public_key, "auditors (release reviews)")
             for r in j.reviewers]
    keys += [PublicKey(code, "issuer", str(path), _read_public(path, "issuer public key"),
                       "gateways (bearer tokens)") for path in j.issuer.public_key_files]
    return keys


def deployment_public_keys(deployment: Deployment, codes: list[str] | None = None
                           ) -> list[PublicKey]:
    """Every public key of the jurisdictions ``codes`` (default: all), in file order.

    Raises:
        ConfigError: ``unknown_jurisdiction``, ``public_key_unreadable``,
            ``public_key_file_private``, or a key file that is not a key.
    """
    chosen = codes or list(deployment.jurisdictions)
    return [k for code in chosen for k in _jurisdiction_keys(deployment.jurisdiction(code))]


def public_keys(
    config: Annotated[Path, typer.Option("--config", help="the deployment TOML file")],
    jurisdiction: Annotated[list[str] | None, typer.Option(
        "--jurisdiction", "-j", help="only this jurisdiction (repeatable)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List every public key a witness, auditor or client needs, per jurisdiction.

    Log verifier keys, witness keys, receipt keys, roster authority keys,
    release reviewer keys and the token issuer's public keys; never a private key.
    """
    try:
        keys = deployment_public_keys(load_config(config), jurisdiction)
    except BordergateError as exc:
        raise fail(exc, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({"keys": [asdict(k) for k in keys]}, indent=2))
        return
    for k in keys:
        shown = k.key if k.role != "issuer" else f"(file {k.name})"
        name = k.name if k.role != "issuer" else "token issuer"
        typer.echo(f"{k.jurisdiction}  {k.role:<16} {name}\n    {shown}")
