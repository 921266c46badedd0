"""``bordergate release ...``: propose, review, list and compare releases (promise 6).

``propose`` appends a ``release`` entry (the manifest of the installed package
and the policy bundle) to a jurisdiction's log and publishes the bundle as
``bundles/sha256-<hex>.tar`` beside the tiles; ``review`` appends a signed
``release-review``; ``status`` shows each release's state, what does not count
and the review throughput; ``diff`` lists the files and dependencies reviewers
must read; ``keygen`` makes a reviewer key.  Exit codes: 0 done, 1 a release is
not in the state asked for (``status --require-approved``) or the log refused
(``log_writer_busy``), 2 usage or configuration errors, 3 I/O or an unavailable
log (:mod:`bordergate.exit_codes`).

When the deployment names the log's sequencer service (``log.sequencer``),
``propose`` and ``review`` append through it with the release tooling's own
credential (``log.sequencer.release_credential_file``, or
``--credential-file``), so gateways keep serving; each entry names that
credential.  Otherwise they write to the log directly (they become its single
writer for a moment, with the log key) and fail with ``log_writer_busy``
while a gateway holds the log.  This module must never hold release logic itself: it
calls ``releases.manifest``, ``review``, ``ledger``, ``index`` and ``publication``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from bordergate.errors import BordergateError, ConfigError, Conflict, VerificationError
from bordergate.exit_codes import fail, usage_error
from bordergate.tlog.note import Verifier
from bordergate.tlog.storage import LogStorage

__all__ = ["app"]

app = typer.Typer(help="Reviewed code and policy only: release manifests, reviews, status.",
                  no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", help="the deployment file (TOML)")]
JurisdictionOpt = Annotated[str | None, typer.Option(
    "--jurisdiction", "-j", help="which jurisdiction's log (default: the only one)")]
CredentialOpt = Annotated[Path | None, typer.Option(
    "--credential-file", help="append credential for the log's sequencer service "
    "(default: log.sequencer.release_credential_file)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON")]


def _fail(e: BordergateError, json_output: bool = False) -> typer.Exit:
    return fail(e, json_output=json_output)


def _print_json(result: dict[str, Any]) -> None:
    typer.echo(json.dumps({"ok": True, **result}, indent=2))


@dataclass
class _Log:
    code: str
    origin: str
    storage: LogStorage
    verifier: Verifier
    config_path: Path
    jurisdiction: Any
    deployment: Any


@contextmanager
def _open(config: Path, jurisdiction: str | None) -> Iterator[_Log]:
    from bordergate.config import load_config
    from bordergate.log_access import log_verifier
    from bordergate.tlog.storage import open_storage
    deployment = load_config(config)
    if jurisdiction is None:
        if len(deployment.jurisdictions) != 1:
            raise ConfigError(f"{config} has several jurisdictions "
                              f"({', '.join(sorted(deployment.jurisdictions))}): "
                              "pass --jurisdiction", code="jurisdiction_required")
        jurisdiction = next(iter(deployment.jurisdictions))
    j = deployment.jurisdiction(jurisdiction)
    verifier = log_verifier(j)
    storage = open_storage(j.log.storage)  # as the gateway opens it
    try:
        yield _Log(j.code, j.log.origin, storage, verifier, config, j, deployment)
    finally:
        storage.close()


def _ledger(log: _Log) -> Any:
    from bordergate.releases.index import ReleaseIndex
    from bordergate.releases.ledger import ReleaseLedger
    from bordergate.releases.selfcheck import review_policy
    from bordergate.tlog.client import LogClient, StorageSource
    index = ReleaseIndex(log.origin)
    index.update(LogClient(StorageSource(log.storage), log.verifier))
    ledger = ReleaseLedger(review_policy(log.jurisdiction), log=log.origin)
    ledger.add_all(index.parsed())
    return ledger


def _append(log: _Log, entry: bytes, credential_file: Path | None) -> int:
    """Append ``entry`` through the log's sequencer service with the release
    credential, or (no service named) as the log's writer for a moment."""
    sequencer = log.jurisdiction.log.sequencer
    if sequencer is not None:
        return _append_through_service(log, entry,
                                       credential_file or sequencer.release_credential_file)
    from bordergate.log_access import log_signer
    from bordergate.log_witnessing import log_witnessing, unwitnessed_notice
    from bordergate.tlog.sequencer import Sequencer
    notice = unwitnessed_notice(log.jurisdiction.log)
    if notice:
        typer.echo(f"warning: {notice}", err=True)
    witnessing = log_witnessing(log.jurisdiction.log)
    try:
        with Sequencer(log.storage, log_signer(log.jurisdiction), witnessing=witnessing) as seq:
            index = seq.append_many([entry])
            seq.publish()
    except Conflict as e:
        raise Conflict(f"the log of {log.code} is busy: a gateway or sequencer is its writer "
                       f"({e}); stop it, run the command, start it again",
                       code="log_writer_busy") from None
    finally:
        if witnessing is not None:
            witnessing.close()
    return index


def _confirm_logged(log: _Log, index: int, entry: bytes) -> None:
    """Check the log holds ``entry`` at ``index`` under a checkpoint signed by its key.

    The sequencer service is the log operator's process, another party: its
    answer (an index, a checkpoint long enough) is not proof that the entry was
    logged.  A review or proposal is reported as recorded only once read back.

    The checkpoint must carry the jurisdiction's witness quorum: the operator
    holds the log key, so a checkpoint it alone signed may show the entry in a
    history the witnesses (and the gateways, which start only from witnessed
    checkpoints) never see.

    Raises:
        VerificationError: ``release_entry_not_logged``: the log does not hold
            the entry there (another entry, none, a log that does not verify,
            or a checkpoint short of the witness quorum).
    """
    from bordergate.log_access import witness_cosigners
    from bordergate.tlog.client import LogClient, StorageSource
    settings = log.jurisdiction.log
    try:
        client = LogClient(StorageSource(log.storage), log.verifier,
                           cosigners=witness_cosigners(log.jurisdiction),
                           quorum=settings.quorum)
        found = client.prove_entry(index, client.checkpoint(covering=index + 1))
    except (BordergateError, ValueError) as e:
        code = e.code if isinstance(e, BordergateError) else "witness_key_invalid"
        raise VerificationError(f"the log operator answered index {index}, but the log "
                                f"{log.origin} does not show the entry there under a "
                                f"witnessed checkpoint: [{code}] {e}",
                                code="release_entry_not_logged") from None
    if found != entry:
        raise VerificationError(f"the log operator answered index {index}, but the log "
                                f"{log.origin} holds another entry there: this one was not "
                                "logged", code="release_entry_not_logged")


def _append_through_service(log: _Log, entry: bytes, credential_file: Path | None) -> int:
    import asyncio

    from bordergate.log_access import remote_appender
    if credential_file is None:
        raise ConfigError(f"jurisdictions.{log.code}.log.sequencer names no "
                          "release_credential_file (or pass --credential-file)",
                          code="release_credential_missing")

    async def send() -> tuple[int, bytes]:
        service = remote_appender(log.jurisdiction, credential_file)
        try:
            index = await service.append_many([entry])
            await service.publish(30.0)
            return index, service.logged(entry)  # the bytes stamped with its appender
        finally:
            await service.aclose()
    index, logged = asyncio.run(send())
    _confirm_logged(log, index, logged)
    return index


def _short(release_id: str) -> str:
    return release_id.removeprefix("sha256:")[:16]


@app.command()
def keygen(key_file: Annotated[Path, typer.Option("--key-file", help="where to write the key")],
           name: Annotated[str, typer.Option("--name", help="the reviewer's name")]) -> None:
    """Make a reviewer key (mode 0600) and print its public key for the deployment file."""
    from bordergate.tlog.logdir import write_key
    from bordergate.tlog.note import Signer
    try:
        signer = Signer.generate(name)
    except ValueError as e:
        raise usage_error(str(e), code="invalid_name") from None
    try:
        write_key(key_file, signer.key_string)
    except BordergateError as e:
        raise _fail(e) from None
    typer.echo(f"reviewer key written to {key_file}; add to the deployment file:")
    typer.echo(f'{{ name = "{name}", public_key = "{signer.verifier().key_string}" }}')
    typer.echo(signer.verifier().key_string)


@app.command()
def propose(config: ConfigOpt, jurisdiction: JurisdictionOpt = None, *,
            policy: Annotated[Path | None, typer.Option(
                "--policy", help="policy bundle directory (default: the deployment's)")] = None,
            package_dir: Annotated[Path | None, typer.Option(
                "--package-dir", hidden=True, help="digest another package directory")] = None,
            credential_file: CredentialOpt = None,
            runtime: Annotated[Path | None, typer.Option(
                "--runtime", help="a runtime built by build-runtime (its --out directory): "
                "record it and its package (default: the runtime this runs from, if any)")]
            = None,
            as_json: JsonOpt = False,
            ) -> None:
    """Append a release entry for the package, policy bundle, runtime and deployment settings."""
    from bordergate.entries import encode_entry
    from bordergate.errors import InvalidInput
    from bordergate.releases.manifest import build_manifest
    from bordergate.releases.publication import publish_bundle
    from bordergate.tree_digest import digest_files, read_tree
    try:
        with _open(config, jurisdiction) as log:
            policy_dir = policy or log.deployment.policy_bundle_path
            from bordergate.policy.bundle import PolicyBundle
            files = read_tree(policy_dir)
            PolicyBundle(files, source=str(policy_dir))  # never propose a broken bundle
            now = time.time()
            from bordergate.releases.deployment_slice import deployment_slice
            runtime_slice, runtime_pkg = _runtime_to_record(runtime)
            manifest = build_manifest(policy_dir, now=now,
                                      package_dir=package_dir or runtime_pkg,
                                      runtime=runtime_slice,
                                      deployment=deployment_slice(log.deployment, log.code,
                                                                  tuple(files)))
            if manifest.policy_digest != digest_files(files).digest:
                raise ConfigError(f"{policy_dir} changed while being proposed",
                                  code="policy_changed")
            body = {"release": manifest.id, "manifest": manifest.to_json()}
            try:
                entry = encode_entry("release", now, body)
            except ValueError as e:
                raise InvalidInput(f"release manifest too large for one log entry: {e}",
                                   code="release_manifest_too_large") from None
            published = publish_bundle(log.storage, files)  # type: ignore[arg-type]
            index = _append(log, entry, credential_file)
    except BordergateError as e:
        raise _fail(e, as_json) from None
    need = log.jurisdiction.required_approvals
    if as_json:
        _print_json({
            "release": manifest.id, "index": index, "log": log.origin,
            "jurisdiction": log.code, "package": manifest.package_digest,
            "package_files": len(manifest.package_files), "policy": manifest.policy_digest,
            "bundle": str(published), "version": manifest.version,
            "revision": manifest.revision,
            "runtime": None if manifest.runtime is None else {
                "digest": manifest.runtime.digest,
                "distributions": len(manifest.runtime.distributions)},
            "deployment": None if manifest.deployment is None else {
                "jurisdiction": manifest.deployment.jurisdiction,
                "digest": manifest.deployment.digest},
            "required_approvals": need})
        return
    typer.echo(f"release {manifest.id} proposed at entry {index} of {log.origin}")
    typer.echo(f"  package {manifest.package_digest} ({len(manifest.package_files)} files)")
    typer.echo(f"  policy  {manifest.policy_digest} published as {published}")
    typer.echo(f"  version {manifest.version}, revision {manifest.revision}")
    if manifest.runtime is not None:
        typer.echo(f"  runtime {manifest.runtime.digest} "
                   f"({len(manifest.runtime.distributions)} distributions)")
    else:
        typer.echo("  runtime: none recorded (not run from a built runtime; the production "
                   "profile refuses to start from this release)")
    if manifest.deployment is not None:
        typer.echo(f"  deployment settings of {manifest.deployment.jurisdiction} "
                   f"{manifest.deployment.digest}")
    typer.echo(f"needs {need} approval(s): bordergate release review {index} --config {config} "
               f"--jurisdiction {log.code} --key-file <reviewer key> --verdict approve "
               "--note '...'")


def _runtime_to_record(runtime: Path | None) -> tuple[Any, Path | None]:
    """The runtime slice ``propose`` records and the package directory inside it.

    ``--runtime DIR`` is verified with its own interpreter; without it, the
    runtime this process was attested against, or the built runtime it runs
    from; else none (development).
    """
    from bordergate import runtime_boot
    from bordergate.releases.launcher import runtime_env
    from bordergate.releases.runtime import check_runtime, current_runtime
    env: Path | None
    if runtime is not None:
        env = runtime / "env" if (runtime / "env" / runtime_boot.LOCK_NAME).is_file() \
            else runtime
    else:
        attested = current_runtime()
        if attested is not None:
            return attested, None
        env = runtime_env()
        if env is None:
            return None, None
    found = check_runtime(env)
    sites = sorted(env.glob("lib/python*/site-packages/bordergate"))
    return found, sites[0] if sites else None


@app.command()
def review(release: Annotated[str, typer.Argument(help="entry index or release id (prefix)")],
           *, config: ConfigOpt,
           key_file: Annotated[Path, typer.Option("--key-file", help="the reviewer's key")],
           verdict: Annotated[str, typer.Option("--verdict", help="approve or reject")],
           note: Annotated[str, typer.Option("--note", help="what was reviewed, why")],
           jurisdiction: JurisdictionOpt = None, credential_file: CredentialOpt = None,
           as_json: JsonOpt = False) -> None:
    """Append a release-review entry signed with the reviewer's key."""
    from bordergate.entries import encode_entry
    from bordergate.releases.review import MAX_NOTE, VERDICTS, review_body
    from bordergate.releases.selfcheck import review_policy
    from bordergate.tlog.logdir import read_signer
    if verdict not in VERDICTS or len(note) > MAX_NOTE:
        raise usage_error(f"--verdict is approve or reject; --note at most {MAX_NOTE} "
                          "characters", json_output=as_json)
    try:
        reviewer = read_signer(key_file)
        with _open(config, jurisdiction) as log:
            configured = review_policy(log.jurisdiction).by_key(reviewer.verifier().key_string)
            if configured is None or configured.name != reviewer.name:
                raise ConfigError(f"the key in {key_file} ({reviewer.name}) is not a reviewer "
                                  f"of {log.code} in {config}", code="reviewer_not_configured")
            record = _ledger(log).find(release)
            if record is None:
                raise ConfigError(f"no release {release!r} (or the prefix is ambiguous) in "
                                  f"{log.origin}", code="release_not_found")
            now = time.time()
            body = review_body(reviewer, log=log.origin, release=record.id, verdict=verdict,
                               note=note, now=now)
            index = _append(log, encode_entry("release-review", now, body), credential_file)
            after = _ledger(log).find(record.id) if as_json else None
    except BordergateError as e:
        raise _fail(e, as_json) from None
    if as_json:
        now_state = after if after is not None else record
        _print_json({"release": record.id, "index": index, "log": log.origin,
                     "jurisdiction": log.code, "reviewer": reviewer.name, "verdict": verdict,
                     "state": now_state.state, "approvals": sorted(now_state.approvals),
                     "rejections": sorted(now_state.rejections),
                     "required": now_state.required})
        return
    typer.echo(f"{verdict} of release {record.id} by {reviewer.name} recorded at entry {index}")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 86400:.1f} d" if seconds >= 86400 else f"{seconds / 3600:.1f} h"


@app.command()
def status(config: ConfigOpt, jurisdiction: JurisdictionOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
           period_days: Annotated[int, typer.Option(help="throughput period, days")] = 7,
           ) -> None:
    """List releases and their state, what did not count, and the review throughput."""
    try:
        with _open(config, jurisdiction) as log:
            ledger = _ledger(log)
    except BordergateError as e:
        raise _fail(e, as_json) from None
    from bordergate.entries import format_time
    through = ledger.throughput(time.time(), period=period_days * 86400)
    rows = [{"id": r.id, "index": r.index, "time": format_time(r.time), "state": r.state,
             "version": r.manifest.version, "revision": r.manifest.revision,
             "package": r.manifest.package_digest, "policy": r.manifest.policy_digest,
             "approvals": sorted(r.approvals), "rejections": sorted(r.rejections),
             "required": r.required} for r in ledger.releases.values()]
    findings = [{"index": f.index, "code": f.code, "message": f.message}
                for f in ledger.findings]
    if as_json:
        typer.echo(json.dumps({"log": log.origin, "releases": rows, "findings": findings,
                               "throughput": through.to_json()}, indent=2))
        return
    typer.echo(f"releases of {log.origin}:")
    for r in rows:
        typer.echo(f"  #{r['index']:<6} {_short(r['id'])}  {r['time']}  {r['state']:<8} "
                   f"{len(r['approvals'])}/{r['required']} approvals"
                   + (f", rejected by {', '.join(r['rejections'])}" if r["rejections"] else "")
                   + f"  v{r['version']} {r['revision'] or ''}")
    if not rows:
        typer.echo("  (none)")
    if findings:
        typer.echo("not counted / flagged:")
        for f in findings:
            typer.echo(f"  #{f['index']:<6} {f['code']}: {f['message']}")
    typer.echo(f"review throughput: {through.proposed} proposed, {through.decided} decided, "
               f"{through.pending} pending; oldest pending {_age(through.oldest_pending_age)}; "
               f"median review latency {_age(through.median_latency)}")
    for start, proposed, decided in through.periods:
        flag = "  <- changes outrun reviews" if proposed > decided else ""
        typer.echo(f"  period from {start[:10]}: proposed {proposed}, decided {decided}{flag}")


@app.command()
def diff(old: Annotated[str, typer.Argument(help="entry index or release id (prefix)")],
         new: Annotated[str, typer.Argument(help="entry index or release id (prefix)")],
         config: ConfigOpt, jurisdiction: JurisdictionOpt = None,
         as_json: JsonOpt = False) -> None:
    """Show which files and dependencies changed between two releases."""
    from bordergate.releases.manifest import diff_manifests
    try:
        with _open(config, jurisdiction) as log:
            ledger = _ledger(log)
        a, b = ledger.find(old), ledger.find(new)
        missing = [ref for ref, r in ((old, a), (new, b)) if r is None]
        if missing or a is None or b is None:
            raise ConfigError(f"no release {missing[0]!r} (or the prefix is ambiguous)",
                              code="release_not_found")
    except BordergateError as e:
        raise _fail(e, as_json) from None
    changes = diff_manifests(a.manifest, b.manifest)
    if as_json:
        _print_json({
            "log": log.origin,
            "old": {"release": a.id, "index": a.index},
            "new": {"release": b.id, "index": b.index},
            "files": [{"change": kind, "name": name} for kind, name in changes.files],
            "dependencies": [{"change": kind, "name": name}
                             for kind, name in changes.dependencies],
            "settings": list(changes.settings), "runtime": list(changes.runtime),
            "empty": changes.empty})
        return
    typer.echo(f"{_short(a.id)} (#{a.index}) -> {_short(b.id)} (#{b.index})")
    for kind, name in changes.files:
        typer.echo(f"  {kind:<8} {name}")
    for kind, name in changes.dependencies:
        typer.echo(f"  {kind:<8} dependency {name}")
    for line in changes.settings:
        typer.echo(f"  setting  {line}")
    for line in changes.runtime:
        typer.echo(f"  runtime  {line}")
    if changes.empty:
        typer.echo("  no file, dependency, setting or runtime changed")


@app.command("build-runtime")
def build_runtime_command(
        out: Annotated[Path, typer.Option("--out", help="directory for the wheelhouse, "
                                          "requirements.lock and env/")],
        source: Annotated[Path | None, typer.Option(
            "--source", help="the source tree (default: the one this package comes from)")]
        = None,
        as_json: JsonOpt = False) -> None:
    """Build the release's wheel and its hash-locked runtime environment (OUT/env)."""
    from bordergate.releases.runtime_build import build_runtime
    started = time.monotonic()
    try:
        built = build_runtime(out, source=source)
    except BordergateError as e:
        raise _fail(e, as_json) from None
    if as_json:
        _print_json({"runtime": built.lock["digest"], "out": str(built.out),
                     "env": str(built.env), "requirements": str(built.requirements),
                     "distributions": len(built.lock["distributions"]),
                     "seconds": round(time.monotonic() - started, 3)})
        return
    typer.echo(f"runtime {built.lock['digest']} built in {built.env} "
               f"({time.monotonic() - started:.0f} s): {len(built.lock['distributions'])} "
               f"distributions, locked by {built.requirements}")
    typer.echo(f"start a gateway from it: {built.env}/bin/bordergate gateway serve ...")
