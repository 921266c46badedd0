"""``bordergate keys ...``: a custodian's key-custody commands (promises 1 and 8).

``init`` creates a jurisdiction's first KEK; ``rotate`` creates a new KEK
version, re-wraps every data key in the jurisdiction's store under it and,
with ``--destroy-old``, destroys the older versions; ``destroy --version N``
destroys one old version; ``status`` shows the versions and how many data
keys each wraps.  Every key event is printed as one JSON line.

Destroying a KEK version is what makes erasures final (every copy of a data
key wrapped under it, in backups too, stops opening), so it is refused while
the version still wraps a live data key, and it is only done with
``--config``: the deployment names the store, the key backend and the log,
and every KEK event of the command is appended to the jurisdiction's log
through its single writer (:mod:`bordergate.custody_log`), which is
reached before any key changes.  ``rotate`` logs its events too when given
``--config``.

Exit 0 on success, 1 when the key ring's state forbids the operation
(``Conflict``, including ``log_writer_busy``), 2 for configuration errors, 3
when the backend, store or log is unavailable (:mod:`bordergate.exit_codes`, the
same for every command, listed in each command's ``--help``).  The PKCS#11 PIN is read from
the environment variable named by ``--pin-env``, never from the command
line.  This module must never print key bytes: it only calls
:mod:`bordergate.keys`, handing it the jurisdiction's record store
(:mod:`bordergate.residency.stores`) for the data keys.  It lives outside both
rooms because it joins them: ``residency`` builds on ``keys``, so ``keys`` must
never import ``residency``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bordergate.errors import BordergateError, ConfigError, Unavailable
from bordergate.exit_codes import fail
from bordergate.keys.backend import (
    DEFAULT_PIN_ENV,
    KeyBackend,
    KeyFileSettings,
    Pkcs11Settings,
    open_key_backend,
)
from bordergate.keys.events import KeyEvent

if TYPE_CHECKING:
    from bordergate.custody_log import CustodyLog
    from bordergate.keys.keyring import KeyRing

__all__ = ["app"]

app = typer.Typer(help="Key custody: KEK init, rotation, destruction, status.",
                  no_args_is_help=True)

Jurisdiction = Annotated[str, typer.Option("--jurisdiction", "-j", help="e.g. us, eu.")]
Backend = Annotated[str, typer.Option(help="file (default) or pkcs11.")]
KeyFile = Annotated[Path | None, typer.Option(help="KEK file (file backend).")]
Library = Annotated[str, typer.Option("--pkcs11-library", help="PKCS#11 module path.")]
Token = Annotated[str | None, typer.Option(help="PKCS#11 token label.")]
PinEnv = Annotated[str, typer.Option(help="Environment variable holding the token PIN.")]
StoreUrl = Annotated[str | None, typer.Option("--store",
                                              help="sqlite:PATH or postgresql://... URL.")]
_CONFIG_HELP = "The deployment file: store, key backend and log (key events are logged)."
Config = Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)]


@contextmanager
def _failures() -> Iterator[None]:
    try:
        yield
    except BordergateError as exc:
        raise fail(exc) from exc


def _backend(jurisdiction: str, backend: str, *, key_file: Path | None, library: str,
             token: str | None, pin_env: str, create: bool = False) -> KeyBackend:
    if backend == "file":
        path = key_file or Path(f"{jurisdiction}.kek")
        return open_key_backend(KeyFileSettings(path), jurisdiction=jurisdiction,
                                create=create)
    if backend != "pkcs11":
        raise ConfigError(f"--backend {backend!r}: file or pkcs11", code="key_backend_config")
    if token is None:
        raise ConfigError("--token is required with --backend pkcs11", code="key_backend_config")
    return open_key_backend(Pkcs11Settings(library=library, token=token, pin_env=pin_env),
                            jurisdiction=jurisdiction)


def _print(event: KeyEvent, logged: dict[str, object] | None = None) -> None:
    def no_subject(raw: str) -> str:  # KEK events carry no subject
        raise AssertionError("unexpected subject in a KEK event")

    line = event.to_entry(no_subject)
    if logged is not None:
        line["log"] = logged
    typer.echo(json.dumps(line, sort_keys=True))


@contextmanager
def _custody(jurisdiction: str, config: Path | None, *, store: str | None = None,
             backend: str = "file", key_file: Path | None = None, library: str = "",
             token: str | None = None, pin_env: str = "",
             ) -> Iterator[tuple[KeyRing, CustodyLog | None]]:
    """The key ring over the store, and the custody log when the deployment is given.

    With ``config`` the store, key backend and log come from the deployment (the
    command-line ones must not be given too), and the log's writer is reached first.
    """
    from bordergate.keys.keyring import KeyRing
    from bordergate.residency.stores import open_record_store

    if config is None:
        if store is None:
            raise ConfigError("--store is required: rotation re-wraps the stored data keys",
                              code="store_url")
        keys = _backend(jurisdiction, backend, key_file=key_file, library=library,
                        token=token, pin_env=pin_env)
        log_cm: AbstractContextManager[CustodyLog | None] = nullcontext()
    else:
        if store is not None or key_file is not None or backend != "file":
            raise ConfigError("--config names the store and key backend: drop --store, "
                              "--key-file and --backend", code="keys_options_conflict")
        from bordergate.config import load_config
        from bordergate.custody_log import open_custody_log
        from bordergate.keys.backend import open_key_backend

        j = load_config(config).jurisdiction(jurisdiction)
        store = j.store
        log_cm = open_custody_log(j)
        keys = open_key_backend(j.keys, jurisdiction=jurisdiction)
    try:
        with log_cm as log:
            records = open_record_store(store, jurisdiction=jurisdiction, pool_size=1)
            try:
                yield KeyRing(keys, records), log
            finally:
                records.close()
    finally:
        keys.close()


def _emit(log: CustodyLog | None, events: list[KeyEvent]) -> None:
    """Log the events (when there is a log), then print them."""
    first = None if log is None else log.record(events)
    for offset, event in enumerate(events):
        _print(event, None if log is None or first is None else
               {"origin": log.origin, "index": first + offset})


def _destroy(ring: KeyRing, log: CustodyLog | None, version: int) -> None:
    """Destroy ``version`` (the key ring refuses one still in use), then log it."""
    assert log is not None  # destruction is only offered with --config
    event = ring.destroy_version(version)
    try:
        _emit(log, [event])
    except BordergateError as e:
        raise Unavailable(f"KEK version {version} of {ring.jurisdiction} was destroyed but "
                          f"its kek-destroyed entry could not be logged: {e}",
                          code="kek_destroyed_unlogged") from e


@app.command()
def init(
    *,
    jurisdiction: Jurisdiction,
    config: Config = None,
    backend: Backend = "file",
    key_file: KeyFile = None,
    pkcs11_library: Library = "/usr/lib/softhsm/libsofthsm2.so",
    token: Token = None,
    pin_env: PinEnv = DEFAULT_PIN_ENV,
) -> None:
    """Create the jurisdiction's first key-encryption key (KEK version 1); with
    --config the backend is the deployment's and the kek-created event is logged
    through the log's single writer (reached before the key is created)."""
    from bordergate.keys.keyring import initialise

    with _failures():
        if config is not None:
            _init_logged(jurisdiction, config)
            return
        keys = _backend(jurisdiction, backend, key_file=key_file, library=pkcs11_library,
                        token=token, pin_env=pin_env, create=True)
        try:
            _print(initialise(keys))
        finally:
            keys.close()


def _init_logged(jurisdiction: str, config: Path) -> None:
    """``keys init --config``: the custody log first, then KEK version 1, then its entry;
    refused (``kek_missing_for_stored_keys``) while the deployment's store holds data
    keys: their KEK is missing, and a new one would open none of them."""
    from bordergate.config import load_config
    from bordergate.custody_log import open_custody_log
    from bordergate.keys.backend import open_key_backend
    from bordergate.keys.keyring import initialise, refuse_new_kek
    from bordergate.residency.stores import open_record_store

    j = load_config(config).jurisdiction(jurisdiction)
    records = open_record_store(j.store, jurisdiction=jurisdiction, pool_size=1)
    try:  # a store whose data keys need a KEK the backend lacks gets no new KEK
        stored = records.data_key_counts()
    finally:
        records.close()
    if isinstance(j.keys, KeyFileSettings) and not j.keys.path.exists():
        refuse_new_kek(jurisdiction, stored)  # before an empty key file is made
    with open_custody_log(j) as log:
        keys = open_key_backend(j.keys, jurisdiction=jurisdiction, create=True)
        try:
            _emit(log, [initialise(keys, stored=stored)])
        finally:
            keys.close()


@app.command()
def rotate(
    *,
    jurisdiction: Jurisdiction,
    config: Config = None,
    store: StoreUrl = None,
    destroy_old: Annotated[bool, typer.Option(
        help="Destroy older KEK versions after re-wrapping (needs --config: logged).")] = False,
    backend: Backend = "file",
    key_file: KeyFile = None,
    pkcs11_library: Library = "/usr/lib/softhsm/libsofthsm2.so",
    token: Token = None,
    pin_env: PinEnv = DEFAULT_PIN_ENV,
) -> None:
    """Create a new KEK version and re-wrap every data key of the store under it."""
    with _failures():
        if destroy_old and config is None:
            raise ConfigError("--destroy-old needs --config: a KEK destruction is logged in "
                              "the jurisdiction's log", code="destroy_needs_log")
        with _custody(jurisdiction, config, store=store, backend=backend, key_file=key_file,
                      library=pkcs11_library, token=token, pin_env=pin_env) as (ring, log):
            _emit(log, ring.rotate())
            if destroy_old:
                current = ring.current_version()
                for version in ring.status().versions:
                    if version != current:
                        _destroy(ring, log, version)


@app.command()
def destroy(
    *,
    jurisdiction: Jurisdiction,
    config: Annotated[Path, typer.Option("--config", help=_CONFIG_HELP)],
    version: Annotated[int, typer.Option("--version", help="The KEK version to destroy.")],
) -> None:
    """Destroy one old KEK version, refused while it wraps a data key; logged."""
    with _failures(), _custody(jurisdiction, config) as (ring, log):
        _destroy(ring, log, version)


@app.command()
def status(
    *,
    jurisdiction: Jurisdiction,
    config: Annotated[Path | None, typer.Option(
        "--config", help="The deployment file: its store and key backend (read only; "
                         "nothing is logged).")] = None,
    store: StoreUrl = None,
    backend: Backend = "file",
    key_file: KeyFile = None,
    pkcs11_library: Library = "/usr/lib/softhsm/libsofthsm2.so",
    token: Token = None,
    pin_env: PinEnv = DEFAULT_PIN_ENV,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show KEK versions (and, with --store or --config, data keys per version); never
    key bytes."""
    from bordergate.residency.stores import open_record_store

    with _failures():
        if config is not None:
            if store is not None or key_file is not None or backend != "file":
                raise ConfigError("--config names the store and key backend: drop --store, "
                                  "--key-file and --backend", code="keys_options_conflict")
            from bordergate.config import load_config

            j = load_config(config).jurisdiction(jurisdiction)
            store = j.store
            keys = open_key_backend(j.keys, jurisdiction=jurisdiction)
        else:
            keys = _backend(jurisdiction, backend, key_file=key_file, library=pkcs11_library,
                            token=token, pin_env=pin_env)
        try:
            versions = keys.versions()
            counts: dict[int, int] | None = None
            if store is not None:
                records = open_record_store(store, jurisdiction=jurisdiction, pool_size=1)
                try:
                    counts = records.data_key_counts()
                finally:
                    records.close()
        finally:
            keys.close()
    doc = {"jurisdiction": jurisdiction, "backend": keys.kind, "versions": list(versions),
           "current": versions[-1] if versions else None,
           "data_keys": None if counts is None else {str(v): n for v, n in counts.items()}}
    if as_json:
        typer.echo(json.dumps(doc, sort_keys=True))
        return
    typer.echo(f"jurisdiction {jurisdiction} ({keys.kind} backend)")
    typer.echo(f"KEK versions: {', '.join(map(str, versions)) or 'none (run keys init)'}")
    typer.echo(f"current: {doc['current']}")
    if counts is not None:
        for version, n in sorted(counts.items()):
            typer.echo(f"data keys under v{version}: {n}")


@app.command()
def serve(
    *,
    jurisdiction: Jurisdiction,
    config: Annotated[Path, typer.Option("--config", help="The deployment file.")],
    host: Annotated[str | None, typer.Option(help="Override key_service.listen.")] = None,
    port: Annotated[int | None, typer.Option(help="Override key_service.listen.")] = None,
) -> None:
    """Run the jurisdiction's key service: hold its KEKs and release a data key only
    against a logged, allowed, fresh decision (issue 13; docs/design.md)."""
    from bordergate.key_service_process import serve_keys

    with _failures():
        serve_keys(config, jurisdiction, host=host, port=port)
