"""``bordergate log sequencer``: the log operator's process (issue 12, item 2).

It runs a log's single writer, the one holder of the log key, as a service
for the log's appenders (gateway workers, the release tooling, the key
custodian), each authenticated by its own append credential, and requires
every entry to name the credential that sent it
(:func:`bordergate.tlog.credentials.require_appender`).  Two forms:

* ``--config F --jurisdiction X``: the deployment's
  ``[jurisdictions.X.sequencer]`` (listen address, log key, credential list)
  and the log's storage, witnesses and quorum;
* ``LOG --credentials LIST [--key-file K] [--port P]``: a stand-alone log
  (a directory, or a ``postgresql://`` URL with ``--key-file``)
  (``--any-entries`` drops the appender check, for logs of other entries).

It lives outside the ``tlog`` room because it reads deployment files
(``bordergate.cli`` wires it into ``bordergate log``).  This module must never
hold log logic: it starts the tlog sequencer and its service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bordergate.errors import BordergateError, ConfigError
from bordergate.exit_codes import fail
from bordergate.locations import parse_log_location
from bordergate.tlog.logdir import key_file_for, open_log_storage, read_signer
from bordergate.tlog.sequencer import Sequencer
from bordergate.tlog.storage import LogStorage
from bordergate.tlog.witnessing import WitnessQuorum, parse_witness_option

__all__ = ["sequencer"]

KeyFile = Annotated[Path | None, typer.Option("--key-file", help="signing key (default DIR.key)")]


def _fail(e: BordergateError) -> typer.Exit:
    return fail(e)


def _witnessing(witnesses: list[str], quorum: int | None) -> WitnessQuorum | None:
    if not witnesses and quorum is None:
        return None
    endpoints = [parse_witness_option(w) for w in witnesses]
    return WitnessQuorum(endpoints, len(endpoints) if quorum is None else quorum)


def sequencer(directory: Annotated[str | None, typer.Argument(
                  metavar="[LOG]", help="the log: a directory or a postgresql:// URL (or "
                  "use --config and --jurisdiction)")] = None, *,
              config: Annotated[Path | None, typer.Option(
                  help="a deployment file: run [jurisdictions.X.sequencer] of --jurisdiction")
              ] = None,
              jurisdiction: Annotated[str | None, typer.Option(
                  "--jurisdiction", "-j", help="the jurisdiction whose log (with --config)")
              ] = None,
              credentials: Annotated[Path | None, typer.Option(
                  help="the credential list: one 'ID sha256:HEX' line per appender")] = None,
              port: Annotated[int | None, typer.Option(help="TCP port")] = None,
              host: Annotated[str | None, typer.Option(help="address to bind")] = None,
              key_file: KeyFile = None,
              interval: Annotated[float, typer.Option(help="checkpoint interval, s")] = 1.0,
              witness: Annotated[list[str] | None, typer.Option(
                  help="a witness to cosign checkpoints, URL=VKEY (repeatable)")] = None,
              quorum: Annotated[int | None, typer.Option(
                  help="cosignatures required before publishing (default: every witness)")
              ] = None,
              any_entries: Annotated[bool, typer.Option(
                  help="stand-alone logs of other entries: do not require each entry to "
                  "name its appender (refused with --config)")] = False,
              unwitnessed: Annotated[bool, typer.Option(
                  "--unwitnessed", help="development only: publish checkpoints without a "
                  "witness quorum (every audit reports them)")] = False,
              ) -> None:
    """Run the log's single writer, the one holder of the log key, as a service
    for its appenders (gateway workers, release and key tooling), each with its
    own append credential; every entry must name the credential that sends it.

    It publishes a checkpoint only once ``--quorum`` of the ``--witness`` es (or
    the deployment's witnesses and quorum) cosigned it (promise 5); without a
    quorum it refuses to start (``witness_quorum_required``) unless
    ``--unwitnessed`` says that is intended.
    """
    from bordergate.appender import ROLE_TYPES, entry_check
    from bordergate.entry_state import state_keys
    from bordergate.serving import run_server
    from bordergate.tlog.credentials import read_credential_list
    from bordergate.tlog.sequencer import SequencerConfig
    from bordergate.tlog.sequencer_service import ServingSequencer, make_sequencer_app
    try:
        where = _sequencer_settings(directory, config, jurisdiction, credentials=credentials,
                                    key_file=key_file, witnesses=witness or [], quorum=quorum)
        if any_entries and config is not None:
            raise ConfigError("--any-entries is for stand-alone logs, not a deployment's",
                              code="usage")
        if where.witnessing is None or where.witnessing.quorum == 0:
            if not unwitnessed:
                raise ConfigError("the sequencer service publishes only witnessed checkpoints: "
                                  "give --witness URL=VKEY (and --quorum), name witnesses in the "
                                  "deployment's log table, or --unwitnessed for development",
                                  code="witness_quorum_required")
            typer.echo("warning: publishing checkpoints without a witness quorum "
                       "(--unwitnessed, development only): every audit reports them as "
                       "checkpoint_unwitnessed", err=True)
        allowed = read_credential_list(where.credentials)
        unknown = sorted({r for r in map(allowed.role, allowed.ids) if r is not None}
                         - set(ROLE_TYPES))
        if unknown:
            raise ConfigError(f"{where.credentials}: unknown appender role {unknown[0]!r} "
                              f"(roles: {', '.join(sorted(ROLE_TYPES))})",
                              code="malformed_credential_list")
        unroled = sorted(i for i in allowed.ids if allowed.role(i) is None)
        if unroled and not any_entries:
            typer.echo(f"warning: {len(unroled)} append credentials have no role in "
                       f"{where.credentials} ({', '.join(unroled[:4])}): the entry types "
                       "they append are not checked (bordergate log credential --role)",
                       err=True)
        signer = read_signer(where.key_file)
        seq = Sequencer(where.open_storage(), signer,
                        config=SequencerConfig(checkpoint_interval=interval),
                        witnessing=where.witnessing, state_keys=state_keys)
        seq.start()
    except OSError as e:
        raise fail(e) from None
    except BordergateError as e:
        raise _fail(e) from None
    bind_host, bind_port = host or where.host, port or where.port
    typer.echo(f"sequencer for {signer.name} at http://{bind_host}:{bind_port}/append "
               f"({len(allowed.ids)} append credentials)")
    serving = ServingSequencer(seq)  # recovered while serving after a storage failure
    try:
        # each entry names its credential; a credential listed with a role appends
        # only the entry types of that role (bordergate.appender.ROLE_TYPES)
        check = None if any_entries else entry_check(allowed)
        run_server(make_sequencer_app(serving, allowed, check_entry=check),
                   host=bind_host, port=bind_port, access_log=False)
    finally:
        serving.close()


class _SequencerPlace:
    """Where ``log sequencer`` finds its log, key, credential list and witnesses."""

    def __init__(self, storage: str | Path, key_file: Path, credentials: Path, *,
                 host: str, port: int, witnessing: WitnessQuorum | None) -> None:
        self.storage, self.key_file, self.credentials = storage, key_file, credentials
        self.host, self.port, self.witnessing = host, port, witnessing

    def open_storage(self) -> LogStorage:
        from bordergate.tlog.storage import open_storage
        if isinstance(self.storage, Path):
            return open_log_storage(self.storage)
        return open_storage(self.storage)


def _sequencer_settings(directory: str | None, config: Path | None,
                        jurisdiction: str | None, *, credentials: Path | None,
                        key_file: Path | None, witnesses: list[str],
                        quorum: int | None) -> _SequencerPlace:
    """The stand-alone form (DIR, --credentials, --key-file) or the deployment's
    ``[jurisdictions.X.sequencer]`` (its witnesses and quorum are the log's).

    Raises:
        ConfigError: ``usage`` when neither or both forms are given, or the
            jurisdiction names no ``sequencer`` table.
    """
    if config is None:
        if directory is None or credentials is None:
            raise ConfigError("give DIR and --credentials, or --config and --jurisdiction",
                              code="usage")
        where = parse_log_location(directory)  # never a directory named like a URL
        storage = where.target if where.kind == "postgresql" else Path(where.target)
        return _SequencerPlace(storage, key_file_for(directory, key_file), credentials,
                               host="127.0.0.1", port=8090,
                               witnessing=_witnessing(witnesses, quorum))
    if directory is not None or jurisdiction is None:
        raise ConfigError("with --config give --jurisdiction and no DIR", code="usage")
    from bordergate.config import load_config
    j = load_config(config).jurisdiction(jurisdiction)
    if j.sequencer is None:
        raise ConfigError(f"{config}: jurisdictions.{jurisdiction} has no [sequencer] table",
                          code="sequencer_not_configured")
    from bordergate.log_witnessing import log_witnessing
    quorum_set = log_witnessing(j.log)
    return _SequencerPlace(j.log.storage, key_file or j.sequencer.key_file,
                           credentials or j.sequencer.credentials_file,
                           host=j.sequencer.listen_host, port=j.sequencer.listen_port,
                           witnessing=quorum_set)
