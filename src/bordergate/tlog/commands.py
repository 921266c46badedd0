"""``bordergate log ...``: create, append to, inspect, prove, verify and serve a log.

This is a stable public contract that other tools drive: the verifier key is
the last line of ``log init``; ``log append`` reads one entry per line of
standard input (the newline is not part of the entry) and prints the new size;
``log prove`` prints JSON with base64 hashes; ``log vkey`` prints the verifier
key of a log's signing key (what witnesses and auditors are given); ``log
verify`` exits 0 only if everything verified, 1 if something did not, 2 for a
usage error (a malformed key included), 3 when the log cannot be read
(:mod:`bordergate.exit_codes`).  Heavy modules are imported inside the
commands that need them, so ``log checkpoint`` starts fast.
``log sequencer`` (the log operator's service) lives in
:mod:`bordergate.log_operator`, which reads deployment files (wired in by
``bordergate.cli``).
This module must never hold log logic itself: it calls the tlog API.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bordergate.errors import BordergateError, ConfigError, NotFound, VerificationError
from bordergate.exit_codes import fail, usage_error
from bordergate.tlog.logdir import default_key_file, key_file_for, open_log, read_signer
from bordergate.tlog.storage import CHECKPOINT_PATH

if TYPE_CHECKING:
    from bordergate.tlog.checkpoint import Checkpoint
    from bordergate.tlog.client import LogSource
    from bordergate.tlog.witnessing import WitnessQuorum

__all__ = ["app"]

app = typer.Typer(help="The verifiable log: RFC 9162 trees as C2SP tlog-tiles.",
                  no_args_is_help=True)

KeyFile = Annotated[Path | None, typer.Option("--key-file", help="signing key (default DIR.key)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print the result as JSON")]
LogArg = Annotated[str, typer.Argument(
    metavar="LOG", help="the log: a directory or a postgresql:// URL")]


def _fail(e: BordergateError) -> typer.Exit:
    return fail(e)


@app.command()
def init(location: LogArg, origin: Annotated[str, typer.Option(help="the log's origin line")],
         key_file: KeyFile = None,
         postgres: Annotated[str | None, typer.Option(
             help="keep the log of directory LOG in this PostgreSQL database")] = None,
         json_output: JsonOption = False,
         ) -> None:
    """Create a log and print its verifier key (last line)."""
    from bordergate.locations import is_postgres_url, parse_log_location
    from bordergate.tlog.logdir import make_dirs, record_key_file, record_postgres, write_key
    from bordergate.tlog.note import Signer
    from bordergate.tlog.sequencer import create_log

    try:
        signer = Signer.generate(origin)
    except ValueError as e:
        raise usage_error(str(e), code="invalid_origin", json_output=json_output) from None
    try:
        where = parse_log_location(location)
        key_path = key_file_for(location, key_file)
        if postgres and (where.kind != "directory" or not is_postgres_url(postgres)):
            raise ConfigError(f"--postgres {postgres!r}: a postgresql:// URL, for a log "
                              "named by a directory", code="log_location")
        if where.kind == "directory":
            directory = Path(where.target)
            make_dirs(directory)  # never writable by others, whatever the umask
            if postgres:
                record_postgres(directory, postgres)
        storage = open_log(location)
        if storage.read(CHECKPOINT_PATH) is not None:
            storage.close()
            raise usage_error(f"a log already exists in {location}", code="log_exists",
                              hint="choose another location, or use the log that is there",
                              json_output=json_output)
        make_dirs(key_path.parent)
        write_key(key_path, signer.key_string)
        if key_file is not None and where.kind == "directory":
            record_key_file(Path(where.target), key_file)
        create_log(storage, signer)
        storage.close()
    except BordergateError as e:
        raise fail(e, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({"log": location, "key_file": str(key_path),
                               "origin": origin, "vkey": signer.verifier().key_string}))
        return
    typer.echo(f"log created: {location} (signing key: {key_path})")
    typer.echo(signer.verifier().key_string)


@app.command()
def append(location: LogArg, key_file: KeyFile = None,
           witness: Annotated[list[str] | None, typer.Option(
               help="a witness to cosign checkpoints, URL=VKEY (repeatable)")] = None,
           quorum: Annotated[int | None, typer.Option(
               help="cosignatures required before publishing (default: every witness)")] = None,
           publish_timeout: Annotated[float, typer.Option(
               help="seconds to wait for the checkpoint")] = 30.0,
           ) -> None:
    """Append stdin lines as entries (one per line), publish, print the new size.

    Pipelined (stdin read in large blocks, chunks submitted ahead of durability, one
    wait at the end); exits non-zero if any entry was refused, after publishing what
    was durable.

    The quick start: without --witness the checkpoint is published uncosigned, with a
    warning (audits report it as checkpoint_unwitnessed).
    """
    from bordergate.exit_codes import exit_code_for, report
    from bordergate.tlog.line_feed import feed_lines
    from bordergate.tlog.sequencer import Sequencer

    witnessing = None
    try:
        signer = read_signer(key_file_for(location, key_file))
        witnessing = _witnessing(witness or [], quorum)
        if witnessing is None:
            typer.echo("warning: no --witness: the checkpoint is published without witness "
                       "cosignatures (audits report it as checkpoint_unwitnessed)", err=True)
        storage = open_log(location)
        with Sequencer(storage, signer, witnessing=witnessing) as seq:
            fed = feed_lines(seq, sys.stdin.buffer)  # pipelined: one wait, at the end
            size = seq.publish(publish_timeout).checkpoint.size
        if fed.error is not None:  # what was durable is published; the rest is not there
            report(fed.error.code, f"{fed.error} ({fed.appended} entries appended, "
                   f"{fed.failed} refused, the rest of stdin not read); log size {size}",
                   "fix the refused entry and append the rest again")
            raise typer.Exit(int(exit_code_for(fed.error)))
    except BordergateError as e:
        raise _fail(e) from None
    finally:
        if witnessing is not None:
            witnessing.close()
    typer.echo(size)


def _witnessing(witnesses: list[str], quorum: int | None) -> WitnessQuorum | None:
    """The witness quorum asked for on the command line (None: no witnessing)."""
    from bordergate.tlog.witnessing import WitnessQuorum, parse_witness_option

    if not witnesses and quorum is None:
        return None
    endpoints = [parse_witness_option(w) for w in witnesses]
    return WitnessQuorum(endpoints, len(endpoints) if quorum is None else quorum)


@app.command()
def checkpoint(location: LogArg, json_output: JsonOption = False) -> None:
    """Print the current signed checkpoint (with --json: its size, root and origin too)."""
    try:
        data = open_log(location).read(CHECKPOINT_PATH)
    except BordergateError as e:
        raise fail(e, json_output=json_output) from None
    if data is None:
        raise fail(NotFound(f"no log in {location}", code="checkpoint_missing"),
                   hint="name a log directory (bordergate log init creates one)",
                   json_output=json_output)
    text = data.decode("utf-8", "replace")
    if not json_output:
        sys.stdout.write(text)
        return
    from bordergate.tlog.checkpoint import Checkpoint

    try:
        body = Checkpoint.parse(text[: text.find("\n\n") + 1])
    except BordergateError as e:
        raise fail(e, json_output=True) from None
    typer.echo(json.dumps({"origin": body.origin, "size": body.size,
                           "root": _b64(body.root), "signed_note": text}, indent=2))


@app.command()
def vkey(directory: Annotated[Path | None, typer.Argument(
            help="the log directory (its signing key: where log init recorded it, "
            "else DIR.key)")] = None,
         key_file: Annotated[Path | None, typer.Option(
             "--key-file", help="the log's signing key file")] = None,
         json_output: JsonOption = False) -> None:
    """Print a log's verifier key: what its witnesses, auditors and clients are given.

    Name the log (DIR) or its signing key (--key-file); the key file is read, and
    only its public half is printed.
    """
    if (directory is None) == (key_file is None):
        raise usage_error("give exactly one of DIR or --key-file", json_output=json_output)
    path = key_file if key_file is not None else default_key_file(directory)  # type: ignore[arg-type]
    try:
        verifier = read_signer(path).verifier()
    except BordergateError as e:
        raise fail(e, json_output=json_output, hint=None if key_file else (
            "name the signing key with --key-file; a deployment's log key is its "
            "sequencer's key_file, and `bordergate gateway public-keys --config F` lists "
            "its verifier key")) from None
    if json_output:
        typer.echo(json.dumps({"origin": verifier.name, "vkey": verifier.key_string}))
    else:
        typer.echo(verifier.key_string)


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def _published(source: LogSource) -> Checkpoint:
    """The checkpoint body, unverified: the prover is not the verifier."""
    from bordergate.tlog.checkpoint import Checkpoint

    data = source.fetch(CHECKPOINT_PATH, 1 << 20)
    if data is None:
        raise NotFound("the log has no checkpoint", code="checkpoint_missing")
    text = data.decode("utf-8", "replace")
    return Checkpoint.parse(text[: text.find("\n\n") + 1])


@app.command()
def prove(location: LogArg,
          index: Annotated[int | None, typer.Option(help="prove inclusion of this index")] = None,
          old: Annotated[int | None, typer.Option(help="prove consistency from this size")] = None,
          size: Annotated[int | None, typer.Option(help="tree size (default: current)")] = None,
          ) -> None:
    """Print an inclusion (--index) or consistency (--old) proof as JSON."""
    from bordergate.tlog import merkle
    from bordergate.tlog.client import LogClient, StorageSource
    from bordergate.tlog.note import Signer

    if (index is None) == (old is None):
        raise usage_error("give exactly one of --index or --old")
    try:
        source = StorageSource(open_log(location))
        cp = _published(source)
        n = cp.size if size is None else size
        if n > cp.size:
            raise usage_error(f"size {n} > published {cp.size}", code="index_out_of_range")
        # serving proofs checks no signature: a throwaway key (never a small-order one,
        # which note.load_ed25519_public_key refuses: anything would verify under it)
        client = LogClient(source, Signer.generate(cp.origin).verifier())
        root = client.root(n, cp.size)
        if index is not None:
            proof = client.inclusion_proof(index, n, cp.size)
            leaf = merkle.leaf_hash(client.entry(index, cp.size))
            out = {"index": index, "size": n, "root": _b64(root), "leaf_hash": _b64(leaf),
                   "proof": [_b64(p) for p in proof]}
        else:
            assert old is not None
            if old > n:
                raise usage_error(f"--old {old} > size {n}", code="index_out_of_range")
            proof = client.consistency_proof(old, n, cp.size) if old else []
            out = {"old_size": old, "size": n, "old_root": _b64(client.root(old, cp.size)),
                   "root": _b64(root), "proof": [_b64(p) for p in proof]}
    except BordergateError as e:
        raise _fail(e) from None
    typer.echo(json.dumps(out, indent=2))


@app.command()
def verify(location: Annotated[str, typer.Argument(
               metavar="LOG", help="the log: a directory, a postgresql:// URL or an "
               "http(s):// base URL")], *,
           vkey: Annotated[str, typer.Option(help="the log's verifier key")],
           old: Annotated[Path | None, typer.Option(help="an older signed checkpoint")] = None,
           witness: Annotated[list[str] | None, typer.Option(help="witness verifier key")] = None,
           quorum: Annotated[int, typer.Option(help="witness cosignatures required")] = 0,
           json_output: JsonOption = False,
           ) -> None:
    """Verify signature, tiles and bundles against the root, and consistency with --old."""
    from bordergate.tlog import merkle
    from bordergate.tlog.client import LogClient, open_source
    from bordergate.tlog.cosignature import CosignatureVerifier
    from bordergate.tlog.note import Ed25519Verifier

    try:  # the keys are the command line's: a malformed one is a usage error
        verifier = Ed25519Verifier.from_key_string(vkey)
        cosigners = [CosignatureVerifier.from_key_string(w) for w in witness or []]
    except VerificationError as e:
        raise usage_error(f"--vkey/--witness: {e}", code=e.code,
                          json_output=json_output) from None
    try:
        source = open_source(location)
        client = LogClient(source, verifier, cosigners=cosigners, quorum=quorum)
        signed = client.checkpoint()
        old_cp = client.open(old.read_bytes()).checkpoint if old else None
        if old_cp is not None and old_cp.size > signed.checkpoint.size:
            raise VerificationError(f"older checkpoint has size {old_cp.size} > current "
                                    f"{signed.checkpoint.size}", code="log_shrank")
        result = client.rebuild(signed)
        if old_cp is not None and old_cp.size:
            proof = client.consistency_proof(old_cp.size, signed.checkpoint.size)
            merkle.verify_consistency(old_cp.size, signed.checkpoint.size, old_cp.root,
                                      result.root, proof)
    except (BordergateError, OSError) as e:
        raise fail(e, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({
            "ok": True, "origin": signed.checkpoint.origin, "size": signed.checkpoint.size,
            "root": _b64(result.root),
            "consistent_with": old_cp.size if old_cp is not None else None,
            "cosignatures": len(signed.cosignatures)}, indent=2))
        return
    typer.echo(f"verified: {signed.checkpoint.origin} size {signed.checkpoint.size} "
               f"root {_b64(result.root)}"
               + (f", consistent with size {old_cp.size}" if old_cp is not None else "")
               + (f", {len(signed.cosignatures)} witness cosignatures" if cosigners else ""))


@app.command()
def serve(location: LogArg, port: Annotated[int, typer.Option(help="TCP port")] = 8080,
          host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1") -> None:
    """Serve the log read-only over HTTP (checkpoint, tiles and bundles only)."""
    from bordergate.serving import run_server
    from bordergate.tlog.server import make_log_app
    try:
        storage = open_log(location)
    except BordergateError as e:
        raise fail(e) from None
    typer.echo(f"serving {location} at http://{host}:{port}/checkpoint")
    run_server(make_log_app(storage), host=host, port=port)
