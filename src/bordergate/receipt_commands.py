"""``bordergate receipt verify``: hold a gateway's receipt against the published log.

``receipt verify RECEIPT --vkey LOG_VKEY --log URL|DIR [--gateway-key VKEY ...]
[--witness VKEY ...] [--quorum N]`` checks the receipt's signature (by one of
the ``--gateway-key`` registered keys when given, the deployment file's
``receipts.public_keys``), then fetches the log, verifies its checkpoint (log
key, witness cosignatures: ``--quorum`` defaults to every ``--witness``),
proves the receipt's entry included, checks that a ``gateway-start`` of the
gateway registered the key (a start appended with a gateway credential: by
``--appender ID=ROLE`` roles, else the credential of the receipt's entry), and
shows whether the entry allowed the fields the
receipt says were released (:mod:`bordergate.receipt_log`).  Without ``--log``
only the signature is checked: with ``--gateway-key`` that is a success (the
entry not checked); without it the receipt's key is only the one it names
itself, which anyone can make, so the result is ``key_unverified`` (exit 1).

Exit codes: 0 consistent (or, without ``--log``, signed by a ``--gateway-key``);
1 the receipt or the log fails verification, the entry does not allow what the
receipt says was released (a proof that the gateway lied, each discrepancy
printed), or nothing ties the key to the gateway (``key_unverified``: neither
``--log`` nor ``--gateway-key``); 2 usage (bad option, malformed key);
3 unavailable (the receipt file or the log cannot be read, or the log does not
cover the entry yet) (:mod:`bordergate.exit_codes`).

This module must never hold receipt or log logic: it parses options, calls
``bordergate.receipts`` and ``bordergate.receipt_log`` and prints.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bordergate.errors import (
    BordergateError,
    ConfigError,
    NotFound,
    Unavailable,
    VerificationError,
)
from bordergate.exit_codes import ExitCode, fail

if TYPE_CHECKING:
    from bordergate.receipt_log import ReceiptVerdict
    from bordergate.receipts import Receipt
    from bordergate.tlog.client import LogClient
    from bordergate.tlog.note import Ed25519Verifier

__all__ = ["app"]

app = typer.Typer(help="Receipts: what a gateway signed that it released.",
                  no_args_is_help=True)



def _log_client(log: str | None, vkey: str | None, witness: list[str] | None,
                quorum: int | None) -> LogClient | None:
    """The verifying reader of ``--log`` (None without it).

    Raises:
        typer.BadParameter: options that do not fit together.
        BordergateError: a malformed key or log location.
    """
    from bordergate.tlog.client import LogClient, open_source
    from bordergate.tlog.cosignature import CosignatureVerifier
    from bordergate.tlog.note import Ed25519Verifier

    if log is None:
        return None
    if vkey is None:
        raise typer.BadParameter("--log needs the log's --vkey")
    cosigners = [CosignatureVerifier.from_key_string(w) for w in witness or []]
    required = len(cosigners) if quorum is None else quorum
    if not 0 <= required <= len(cosigners):
        raise typer.BadParameter(f"--quorum {required} needs 0..{len(cosigners)} --witness")
    return LogClient(open_source(log), Ed25519Verifier.from_key_string(vkey),
                     cosigners=cosigners, quorum=required)


def _appender_roles(given: list[str]) -> dict[str, str]:
    """``--appender ID=ROLE`` options as a table (roles of the auditor's rule).

    Raises:
        ConfigError: not ``ID=ROLE``, or an unknown role.
    """
    from bordergate.audit.rules.appenders import ROLE_TYPES

    roles: dict[str, str] = {}
    for item in given:
        name, _, role = item.partition("=")
        if not name or role not in ROLE_TYPES:
            raise ConfigError(f"--appender {item[:80]!r}: expected ID=ROLE with ROLE one "
                              f"of {sorted(ROLE_TYPES)}", code="usage")
        roles[name] = role
    return roles


def _receipt_line(receipt: Receipt, signer: Ed25519Verifier) -> str:
    return (f"receipt: gateway {receipt.gateway} signed with {signer.name}+"
            f"{signer.key_id:08x}: {receipt.action} of {receipt.collection} "
            f"{list(receipt.fields)} under {receipt.origin} entry {receipt.index}"
            + (f" (token id {receipt.jti}, logged at {receipt.time})" if receipt.bound
               else f" ({receipt.format}: names no request)"))


def _signature_only(result: dict[str, object], *, key_trusted: bool,
                    json_output: bool) -> None:
    """Report a receipt checked without ``--log``: its signature verifies with a
    ``--gateway-key`` (exit 0), or only with the key it names itself, which anyone
    can make: nothing ties it to the gateway (``key_unverified``, exit 1)."""
    status = "signature_verified" if key_trusted else "key_unverified"
    if json_output:
        typer.echo(json.dumps({"ok": key_trusted, "status": status, **result,
                               "entry_checked": False}))
    elif key_trusted:
        typer.echo("signature verified with a --gateway-key; entry not checked (no --log)")
    else:
        typer.echo("key_unverified: the signature verifies with the key the receipt names, "
                   "which nothing ties to the gateway (give --gateway-key or --log); entry "
                   "not checked")
    if not key_trusted:
        raise typer.Exit(int(ExitCode.REFUSED))


def _show(verdict: ReceiptVerdict) -> None:
    receipt, signed = verdict.receipt, verdict.checkpoint
    root = base64.b64encode(signed.checkpoint.root).decode()
    typer.echo(f"log: checkpoint of size {signed.checkpoint.size}, root {root}, "
               f"{len(signed.cosignatures)} witness cosignature(s)"
               + "".join(f"\n  cosigned by {c.name} at {c.timestamp}"
                         for c in signed.cosignatures))
    typer.echo(f"entry {receipt.index}: included (inclusion proof verified)")
    if verdict.entry is not None:
        body = verdict.entry.body
        typer.echo(f"entry {receipt.index}: {verdict.entry.type}, outcome "
                   f"{body.get('outcome')!r}, released {body.get('released', '-')}"
                   + (f", groups {body.get('groups')}" if verdict.entry.type == "export"
                      else ""))
    if verdict.registered_at is not None:
        typer.echo(f"key: registered by the gateway-start entry {verdict.registered_at}"
                   + (f" (appended with credential {verdict.registered_by})"
                      if verdict.registered_by else ""))
    for note in verdict.notes:
        typer.echo(f"note: {note}")
    if not verdict.consistent:
        typer.echo(f"INCONSISTENT: gateway {receipt.gateway} signed a receipt that its log "
                   f"entry {receipt.index} contradicts:")
        for line in verdict.discrepancies:
            typer.echo(f"  - {line}")
        raise typer.Exit(int(ExitCode.REFUSED))
    typer.echo("CONSISTENT: the entry allows what the receipt says was released")


@app.command()
def verify(  # noqa: PLR0917 (typer maps each parameter to an option)
    receipt_file: Annotated[Path, typer.Argument(metavar="RECEIPT",
                                                 help="the receipt (JSON file)")],
    vkey: Annotated[str | None, typer.Option(help="the log's verifier key")] = None,
    log: Annotated[str | None, typer.Option(
        help="the published log: a directory or an http(s) base URL (e.g. "
        "https://gateway/v1/log)")] = None,
    gateway_key: Annotated[list[str] | None, typer.Option(
        "--gateway-key", help="a registered receipt key of the gateway (repeatable; "
        "default: the key the receipt names, checked against the log's gateway-start)")
    ] = None,
    witness: Annotated[list[str] | None, typer.Option(
        help="a trusted witness's verifier key NAME+ID+KEY (repeatable)")] = None,
    quorum: Annotated[int | None, typer.Option(
        help="witness cosignatures required (default: every --witness)")] = None,
    appender: Annotated[list[str] | None, typer.Option(
        "--appender", help="an append credential's role, ID=ROLE as in the auditor's "
        "appenders table (repeatable): a gateway-start registers a key only if appended "
        "with a gateway credential (default: the credential of the receipt's entry)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print a JSON result")] = False,
) -> None:
    """Check a receipt's signature and prove its entry against the (witnessed) log.

    Exit codes: 0 success (consistent; without --log, signed by a --gateway-key),
    1 verification failed or refused (a discrepancy, a bad signature, or
    key_unverified: neither --log nor --gateway-key ties the key to the gateway),
    2 usage, 3 unavailable (the file or log cannot be read, or the log does not
    cover the entry yet).
    """
    from bordergate.receipt_log import verify_in_log
    from bordergate.receipts import parse_receipt, verify_receipt_signature
    from bordergate.tlog.note import Ed25519Verifier

    try:
        data = receipt_file.read_bytes()
    except OSError as exc:
        raise fail(Unavailable(f"cannot read {receipt_file}: {exc.strerror}",
                               code="receipt_unreadable"), json_output=json_output) from None
    try:
        client = _log_client(log, vkey, witness, quorum)
        trusted = [Ed25519Verifier.from_key_string(k).key_string for k in gateway_key or []]
        roles = _appender_roles(appender or [])
    except BordergateError as exc:  # the keys are the command line's: usage
        raise fail(exc, exit_code=ExitCode.USAGE, json_output=json_output) from None
    try:
        receipt = parse_receipt(data)
        signer = verify_receipt_signature(receipt, trusted or None)
    except VerificationError as exc:
        raise fail(exc, json_output=json_output) from None
    result: dict[str, object] = {
        "receipt": {"gateway": receipt.gateway, "signer": f"{signer.name}+{signer.key_id:08x}",
                    "action": receipt.action, "collection": receipt.collection,
                    "fields": list(receipt.fields), "origin": receipt.origin,
                    "index": receipt.index, "format": receipt.format, "jti": receipt.jti,
                    "time": receipt.time}, "signature_verified": True}
    if client is None:
        _signature_only(result, key_trusted=bool(trusted), json_output=json_output)
        return
    if not json_output:
        typer.echo(_receipt_line(receipt, signer))
    try:
        verdict = verify_in_log(receipt, client, key_trusted=bool(trusted),
                                appenders=roles or None)
    except VerificationError as exc:
        raise fail(exc, json_output=json_output) from None
    except (Unavailable, NotFound) as exc:  # the log does not cover the entry yet
        raise fail(exc, exit_code=ExitCode.UNAVAILABLE, json_output=json_output,
                   hint="the log may not publish the entry yet: retry later") from None
    if json_output:
        typer.echo(json.dumps({"ok": verdict.consistent, **result, "entry_checked": True,
                               "checkpoint_size": verdict.checkpoint.checkpoint.size,
                               "entry_type": verdict.entry.type if verdict.entry else None,
                               "registered_at": verdict.registered_at,
                               "registered_by": verdict.registered_by,
                               "request_bound": receipt.bound,
                               "notes": verdict.notes,
                               "consistent": verdict.consistent,
                               "discrepancies": verdict.discrepancies}))
        raise typer.Exit(int(ExitCode.OK if verdict.consistent else ExitCode.REFUSED))
    _show(verdict)
