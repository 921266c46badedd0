"""``bordergate roster ...``: the identity authority signs, the custodian publishes.

* ``keygen --key-file F -j us``: an identity authority key (0600) and its
  verifier key for the deployment's ``[jurisdictions.us.roster] authority_keys``
  and the auditor's ``roster_authority``;
* ``init -j us --out roster.toml``: a starting roster file (``roster.source``);
* ``sign roster.toml --key F --out roster.json``: the authority's side: the
  canonical version (``roster.json``) and its signature (``roster.json.sig``,
  the ``roster`` entry's members as JSON);
* ``publish roster.json --config D -j us``: the custodian's side: checks the
  signature against the authority key the deployment names, writes the
  document to ``rosters/sha256-<hex>.json`` beside the log, then appends the
  ``roster`` entry through the log's single writer (``custody_log``: the
  sequencer service, or the storage when no gateway holds it).  Every gateway
  worker then decides under it (``gateway.roster_in_force``).

Exit codes (:mod:`bordergate.exit_codes`): 0 done, 1 a signature that does not
verify (``publish``), 2 usage, configuration or a malformed roster file, 3 I/O.
It lives outside the ``roster`` room because it joins it with the custodian's
log writer, which builds on the gateway's entry encoders.  This module must
never publish a version whose signature does not verify.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from bordergate.entries import format_time
from bordergate.errors import BordergateError, ConfigError, VerificationError
from bordergate.exit_codes import ExitCode, fail

__all__ = ["app", "publish_signed_roster"]

app = typer.Typer(help="The identity authority's signed roster of principals.",
                  no_args_is_help=True)


def _fail(e: BordergateError) -> typer.Exit:
    return fail(e)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}",
                          code="roster_file_unreadable") from None


@app.command()
def keygen(key_file: Annotated[Path, typer.Option("--key-file", help="where to write the key")],
           jurisdiction: Annotated[str, typer.Option("--jurisdiction", "-j")]) -> None:
    """Make an identity authority key (mode 0600) and print its verifier key."""
    from bordergate.roster.publication import create_development_authority_key
    try:
        signer = create_development_authority_key(key_file, jurisdiction)
    except (BordergateError, ValueError) as e:
        raise _fail(e if isinstance(e, BordergateError) else
                    ConfigError(str(e), code="invalid_name")) from None
    typer.echo(f"authority key written to {key_file}; name its verifier key in the "
               "deployment's [jurisdictions.<code>.roster] authority_keys:")
    typer.echo(signer.verifier().key_string)


@app.command()
def init(jurisdiction: Annotated[str, typer.Option("--jurisdiction", "-j")],
         out: Annotated[Path, typer.Option("--out", help="the roster file to create")],
         json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
         ) -> None:
    """Write a starting roster file (TOML) to edit."""
    from bordergate.roster.source import source_template
    if out.exists():
        raise fail(ConfigError(f"{out} exists; refusing to overwrite it",
                               code="roster_file_exists"), json_output=json_output)
    out.write_text(source_template(jurisdiction))
    typer.echo(json.dumps({"written": str(out), "jurisdiction": jurisdiction}) if json_output
               else f"roster file written to {out}")


def _source(path: Path) -> dict[str, Any]:
    data = _read(path, "roster file")
    try:
        text = data.decode("utf-8")
        loaded = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise VerificationError(f"{path}: {e}", code="roster_malformed") from None
    if not isinstance(loaded, dict):
        raise VerificationError(f"{path}: not a table", code="roster_malformed")
    return loaded


@app.command()
def sign(source: Annotated[Path, typer.Argument(help="the roster file (TOML or JSON)")],
         key: Annotated[Path, typer.Option("--key", help="the authority's key file")],
         out: Annotated[Path, typer.Option("--out", help="the signed version (.json)")]) -> None:
    """Sign a roster file as the identity authority: OUT and OUT.sig."""
    from bordergate.roster import sign_roster
    from bordergate.roster.source import roster_from_source
    from bordergate.tlog.logdir import read_signer
    try:
        roster = roster_from_source(_source(source), issued=format_time(time.time()))
        signature = sign_roster(roster, read_signer(key))
    except BordergateError as e:  # the authority's own roster file: a usage error
        raise fail(e, exit_code=ExitCode.USAGE) from None
    out.write_bytes(roster.document)
    Path(f"{out}.sig").write_text(json.dumps(signature.entry_body()) + "\n")
    typer.echo(json.dumps({"roster": roster.digest, "serial": roster.serial,
                           "principals": len(roster.principals), "document": str(out),
                           "signature": f"{out}.sig"}))


def publish_signed_roster(jurisdiction: Any, document: bytes,
                          signature_body: dict[str, Any]) -> dict[str, Any]:
    """Check a signed version against the deployment's authority, publish the
    document beside the log, append its ``roster`` entry; what was done.

    Raises:
        ConfigError: the jurisdiction names no roster authority (``roster_not_configured``).
        VerificationError: the version does not verify (``bordergate.roster`` codes).
        Conflict, Unavailable: as ``custody_log.open_custody_log``.
    """
    from bordergate.custody_log import open_custody_log
    from bordergate.roster import RosterSignature
    from bordergate.roster.publication import authority_for, publish_roster, roster_entry
    from bordergate.tlog.storage import open_storage

    authority = authority_for(jurisdiction)
    if authority is None:
        raise ConfigError(f"{jurisdiction.code} names no roster authority "
                          f"([jurisdictions.{jurisdiction.code}.roster])",
                          code="roster_not_configured")
    signature = RosterSignature.from_entry_body(signature_body)
    roster = authority.verify(document, signature)
    storage = open_storage(jurisdiction.log.storage)
    try:
        path = publish_roster(storage, roster)  # type: ignore[arg-type]
    finally:
        storage.close()
    with open_custody_log(jurisdiction) as custody:
        index = custody.append([roster_entry(signature, time.time())])
    return {"roster": roster.digest, "serial": roster.serial, "published": path,
            "log": {"origin": jurisdiction.log.origin, "index": index}}


@app.command()
def publish(document: Annotated[Path, typer.Argument(help="the signed version (.json)")],
            config: Annotated[Path, typer.Option("--config", help="the deployment file")],
            jurisdiction: Annotated[str, typer.Option("--jurisdiction", "-j")],
            signature: Annotated[Path | None, typer.Option(
                "--signature", help="the signature file (default DOCUMENT.sig)")] = None,
            ) -> None:
    """Publish a signed version beside the log and append its roster entry."""
    from bordergate.config import load_config
    try:
        j = load_config(config).jurisdiction(jurisdiction)
        sig_path = signature or Path(f"{document}.sig")
        try:
            body = json.loads(_read(sig_path, "signature file"))
        except ValueError:
            raise VerificationError(f"{sig_path} is not JSON",
                                    code="roster_signature_malformed") from None
        if not isinstance(body, dict):
            raise VerificationError(f"{sig_path} is not a JSON object",
                                    code="roster_signature_malformed")
        done = publish_signed_roster(j, _read(document, "roster document"), body)
    except BordergateError as e:
        raise _fail(e) from None
    typer.echo(json.dumps(done))
