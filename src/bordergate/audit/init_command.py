"""``bordergate audit init``: write an auditor configuration from a deployment's public keys.

``audit init --deployment F --out auditor.toml [-j CODE ...] [--log-location
public|storage]`` writes the file ``bordergate audit run --config`` reads
(:mod:`bordergate.audit.auditor_config`): one ``[logs.<code>]`` table per
jurisdiction with the log's location and verifier key, its witnesses and
quorum, the release reviewers and approvals required, the identity authority's
roster keys and the appenders' roles.  The log's location is its gateway's
public ``/v1/log`` (what an outside auditor reads), or with ``--log-location
storage`` the log's directory (an auditor on the custodian's host).

Only public information goes into the file: keys come from
:mod:`bordergate.public_keys` (public halves only), and appender roles from the
credential ids, which every entry names anyway (``appender``), never their
secrets.  Approver keys are each approver's own and not in the deployment: the
file says where to add them.  The written file is checked by the auditor's own
reader before it is kept.  This module must never write a private key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bordergate.errors import BordergateError, ConfigError
from bordergate.exit_codes import fail, usage_error

if TYPE_CHECKING:
    from bordergate.config import Jurisdiction

__all__ = ["auditor_toml", "init"]


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _appenders(j: Jurisdiction) -> dict[str, str]:
    """Credential id -> role, from the credential files the deployment names (ids only)."""
    from bordergate.tlog.credentials import read_credential

    files: list[tuple[Path | None, str]] = []
    client = j.log.sequencer
    if client is not None:
        files += [(client.credential_file, "gateway"),
                  (client.release_credential_file, "release"),
                  (client.custodian_credential_file, "custodian")]
    if j.key_service is not None:
        files.append((j.key_service.append_credential_file, "key-service"))
    return {read_credential(path).id: role for path, role in files
            if path is not None and path.exists()}


def auditor_toml(deployment_file: Path, codes: list[str] | None, *,
                 log_location: str) -> str:
    """The auditor configuration text for the deployment in ``deployment_file``.

    Raises:
        ConfigError: the deployment is wrong, a jurisdiction is unknown, a public
            key file is missing (``public_key_unreadable``: run ``gateway init``).
    """
    from bordergate.config import load_config
    from bordergate.locations import parse_log_location
    from bordergate.public_keys import log_vkey, roster_authority_keys

    deployment = load_config(deployment_file)
    lines = [f"# auditor configuration written by `bordergate audit init` from "
             f"{deployment_file.name}",
             "# every key below is public; add each approver's key (bordergate approval",
             "# keygen prints one) to approver_keys: with none listed no grant counts",
             "[auditor]", f"name = {json.dumps(deployment.name + ' auditor')}", ""]
    for code in codes or list(deployment.jurisdictions):
        j = deployment.jurisdiction(code)
        storage = parse_log_location(j.log.storage)
        if log_location == "storage" and storage.kind != "directory":
            raise ConfigError(f"jurisdictions.{code}.log: storage {storage.kind} is not a "
                              "directory; use --log-location public", code="log_location")
        location = storage.target if log_location == "storage" else f"{j.public_url}/v1/log"
        authority = roster_authority_keys(j)
        reviewers = ", ".join(f"{{ name = {json.dumps(r.name)}, public_key = "
                              f"{json.dumps(r.public_key)} }}" for r in j.reviewers)
        appenders = ", ".join(f"{json.dumps(i)} = {json.dumps(role)}"
                              for i, role in _appenders(j).items())
        lines += [f"[logs.{code}]", f"location = {json.dumps(location)}",
                  f"vkey = {json.dumps(log_vkey(j))}",
                  f"witnesses = {_toml_list([w.vkey for w in j.log.witnesses])}",
                  f"quorum = {j.log.quorum}", f"reviewers = [{reviewers}]"]
        if j.reviewers:
            lines.append(f"required_approvals = {min(j.required_approvals, len(j.reviewers))}")
        lines += [f"roster_authority = {_toml_list(authority)}",
                  f"appenders = {{ {appenders} }}" if appenders else "appenders = {}",
                  "approver_keys = {}", ""]
    return "\n".join(lines)


def init(
    *,
    deployment: Annotated[Path, typer.Option("--deployment", help="the deployment TOML file")],
    out: Annotated[Path, typer.Option("--out", help="where to write the auditor file")],
    jurisdiction: Annotated[list[str] | None, typer.Option(
        "--jurisdiction", "-j", help="only this jurisdiction's log (repeatable)")] = None,
    log_location: Annotated[str, typer.Option(
        "--log-location", help="public: the gateway's /v1/log (default); storage: the "
        "log's directory")] = "public",
    force: Annotated[bool, typer.Option("--force", help="overwrite --out")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Write an auditor configuration from a deployment's public keys (for audit run).

    The file lists each log's location, verifier key, witnesses, reviewers, roster
    authority and appenders; it holds no private key.
    """
    from bordergate.audit.auditor_config import parse_auditor_config

    if log_location not in ("public", "storage"):
        raise usage_error("--log-location is public or storage", json_output=json_output)
    if out.exists() and not force:
        raise usage_error(f"{out} exists", code="out_exists", hint="pass --force to "
                          "overwrite it, or choose another --out", json_output=json_output)
    try:
        text = auditor_toml(deployment, jurisdiction, log_location=log_location)
        parsed = parse_auditor_config(text.encode(), base_dir=out.resolve().parent,
                                      source=str(out))
        out.write_text(text)
    except (BordergateError, OSError) as exc:
        raise fail(exc, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({"written": str(out), "logs": sorted(parsed.logs)}))
        return
    typer.echo(f"wrote {out}: {len(parsed.logs)} log(s) ({', '.join(parsed.logs)}); "
               f"next: bordergate audit run --config {out} --state STATE --report DIR")
