"""``bordergate log credential``: the log operator issues or revokes an appender's
append credential.

A new gateway worker (docs/scale-out.md), a second release host or a new key
service needs its own credential: an ``ID.SECRET`` file of mode 0600 for the
appender, and its ``ID sha256:HEX ROLE`` line in the sequencer's credential
list (``[jurisdictions.X.sequencer].credentials_file``, or ``--credentials
LIST``); the role (``--role``, a gateway worker's by default) says which entry
types the sequencer lets it append (``bordergate.appender.ROLE_TYPES``).
The log operator, who owns the list, runs this and hands the file over; the
sequencer reads the list when it starts, so a change takes effect at its next
start.  Revoking removes the line (entries already appended with it stay
attributed to it).

This module must never print or log a secret: it goes only into the 0600 file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bordergate.appender import ROLE_TYPES
from bordergate.durable import replace_file
from bordergate.errors import BordergateError, ConfigError, Conflict
from bordergate.exit_codes import fail
from bordergate.tlog.credentials import (
    AppendCredential,
    CredentialList,
    parse_credential_list,
)
from bordergate.tlog.logdir import make_dirs, write_key

__all__ = ["credential"]


def credential(
        credential_id: Annotated[str, typer.Argument(
            metavar="ID", help="the appender's id, e.g. us-gw-2 ([a-z0-9][a-z0-9_-]*)")],
        *,
        out: Annotated[Path | None, typer.Option(
            help="write the new credential to this file (mode 0600); required unless "
                 "--revoke")] = None,
        role: Annotated[str, typer.Option(
            help="the appender's role, which entry types it may append: gateway, release, "
                 "custodian or key-service")] = "gateway",
        revoke: Annotated[bool, typer.Option(
            help="remove ID from the list instead (its appends are refused from the "
                 "sequencer's next start)")] = False,
        config: Annotated[Path | None, typer.Option(
            help="a deployment file: the list of [jurisdictions.X.sequencer]")] = None,
        jurisdiction: Annotated[str | None, typer.Option(
            "--jurisdiction", "-j", help="the jurisdiction whose log (with --config)")] = None,
        credentials: Annotated[Path | None, typer.Option(
            help="the sequencer's credential list (instead of --config)")] = None,
        json_output: Annotated[bool, typer.Option(
            "--json", help="print the result as JSON")] = False) -> None:
    """Issue (or --revoke) an appender's credential in the log operator's list."""
    try:
        listed = _list_file(config, jurisdiction, credentials)
        if revoke:
            if out is not None:
                raise ConfigError("--revoke takes no --out", code="usage")
            revoke_credential(listed, credential_id)
            result = {"ok": True, "revoked": credential_id, "list": str(listed),
                      "takes_effect": "at the sequencer's next start"}
        else:
            if out is None:
                raise ConfigError("give --out FILE for the new credential", code="usage")
            issue_credential(listed, credential_id, out, role=role)
            result = {"ok": True, "issued": credential_id, "role": role, "file": str(out),
                      "list": str(listed), "takes_effect": "at the sequencer's next start"}
    except BordergateError as e:
        raise fail(e, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps(result, indent=2))
        return
    if revoke:
        typer.echo(f"revoked {credential_id} in {listed}; restart the sequencer")
    else:
        typer.echo(f"issued {credential_id} ({role}) into {out} (mode 0600) and listed it in "
                   f"{listed}; restart the sequencer, then hand the file to the appender")


def _list_file(config: Path | None, jurisdiction: str | None,
               credentials: Path | None) -> Path:
    if (config is None) == (credentials is None):
        raise ConfigError("give --config and --jurisdiction, or --credentials LIST",
                          code="usage")
    if credentials is not None:
        return credentials
    if jurisdiction is None:
        raise ConfigError("with --config give --jurisdiction", code="usage")
    from bordergate.config import load_config

    assert config is not None
    j = load_config(config).jurisdiction(jurisdiction)
    if j.sequencer is None:
        raise ConfigError(f"{config}: jurisdictions.{jurisdiction} has no [sequencer] table",
                          code="sequencer_not_configured")
    return j.sequencer.credentials_file


def _read_list(listed: Path) -> tuple[str, CredentialList]:
    try:
        text = listed.read_text() if listed.exists() else ""
    except OSError as e:
        raise ConfigError(f"cannot read credential list {listed}: {e.strerror}",
                          code="credential_list_unreadable") from None
    try:
        return text, parse_credential_list(text)
    except BordergateError as e:
        raise ConfigError(f"{listed}: {e}", code=e.code) from None


def _write_list(listed: Path, text: str) -> None:
    """Replace the list atomically (a crash leaves the old list or the new one) through
    a fresh temporary file, never a fixed name a link could be planted at (found by
    the keys review: a link at ``LIST.part`` had the list written over its target)."""
    make_dirs(listed.parent)
    try:
        replace_file(listed, text.encode("utf-8"), mode=0o600)
    except OSError as e:
        raise ConfigError(f"cannot write credential list {listed}: {e.strerror}",
                          code="credential_list_unwritable") from None


def issue_credential(listed: Path, credential_id: str, out: Path, *,
                     role: str = "gateway") -> AppendCredential:
    """A new credential for ``credential_id``: its token written to ``out`` (0600,
    never overwritten), then its line added to the list ``listed``.

    Raises:
        ConfigError: ``credential_name_invalid`` (an id that is not
            ``[a-z0-9][a-z0-9_-]*``), ``credential_role_unknown`` (``role`` is
            not one of ``ROLE_TYPES``), ``credential_file_exists`` (``out``
            exists), or the list is unreadable or malformed.
        Conflict: ``credential_id_taken`` (the id is listed already).
    """
    if role not in ROLE_TYPES:
        raise ConfigError(f"unknown role {role[:40]!r} (roles: {', '.join(sorted(ROLE_TYPES))})",
                          code="credential_role_unknown")
    try:
        issued = AppendCredential.issue(credential_id)
    except ValueError:
        raise ConfigError(f"{credential_id!r} is not a credential id ([a-z0-9][a-z0-9_-]*, "
                          "e.g. us-gw-2)", code="credential_name_invalid") from None
    text, known = _read_list(listed)
    if credential_id in known.ids:
        raise Conflict(f"{credential_id} is listed in {listed} already; revoke it first or "
                       "choose another id", code="credential_id_taken")
    try:
        make_dirs(out.parent)
        write_key(out, issued.token)  # 0600, never overwritten
    except ConfigError:
        raise ConfigError(f"{out} exists; a credential file is never overwritten",
                          code="credential_file_exists") from None
    except OSError as e:
        raise ConfigError(f"cannot write {out}: {e.strerror}",
                          code="credential_unwritable") from None
    if text and not text.endswith("\n"):
        text += "\n"
    _write_list(listed, text + issued.list_line_as(role) + "\n")
    return issued


def revoke_credential(listed: Path, credential_id: str) -> None:
    """Remove ``credential_id``'s line from the list ``listed``.

    Raises:
        Conflict: ``credential_not_listed`` (nothing to revoke).
        ConfigError: the list is unreadable or malformed.
    """
    text, known = _read_list(listed)
    if credential_id not in known.ids:
        raise Conflict(f"{credential_id} is not listed in {listed}",
                       code="credential_not_listed")
    kept = [line for line in text.splitlines(keepends=True)
            if line.split(maxsplit=1)[:1] != [credential_id]]
    _write_list(listed, "".join(kept))
