"""``bordergate keys ...``: a custodian's key-custody commands (promises 1 and 8).

``init`` creates a jurisdiction's first KEK; ``rotate`` creates a new KEK
version, re-wraps every data key in the jurisdiction's store under it and,
with ``--destroy-old``, destroys the older versions; ``status`` shows the
versions and how many data keys each wraps.  Every key event is printed as
one JSON line (the gateway logs the same events as ``key-event`` entries).

Exit 0 on success, 1 when the key ring's state forbids the operation
(``Conflict``), 2 for configuration errors, 3 when the backend or store is
unavailable.  The PKCS#11 PIN is read from the environment variable named
by ``--pin-env``, never from the command line.  This module must never
print key bytes: it only calls :mod:`bordergate.keys`, handing it the
jurisdiction's record store (:mod:`bordergate.residency.stores`) for the
data keys.  It lives outside both rooms because it joins them: ``residency``
builds on ``keys``, so ``keys`` must never import ``residency``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from bordergate.errors import BordergateError, ConfigError, Conflict, Unavailable
from bordergate.keys.backend import KeyBackend, open_key_backend
from bordergate.keys.events import KeyEvent

__all__ = ["app"]

app = typer.Typer(help="Key custody: KEK init, rotation, status.", no_args_is_help=True)

Jurisdiction = Annotated[str, typer.Option("--jurisdiction", "-j", help="e.g. us, eu.")]
Backend = Annotated[str, typer.Option(help="file (default) or pkcs11.")]
KeyFile = Annotated[Path | None, typer.Option(help="KEK file (file backend).")]
Library = Annotated[str, typer.Option("--pkcs11-library", help="PKCS#11 module path.")]
Token = Annotated[str | None, typer.Option(help="PKCS#11 token label.")]
PinEnv = Annotated[str, typer.Option(help="Environment variable holding the token PIN.")]
StoreUrl = Annotated[str | None, typer.Option("--store",
                                              help="sqlite:PATH or postgresql://... URL.")]


@contextmanager
def _failures() -> Iterator[None]:
    try:
        yield
    except BordergateError as exc:
        typer.echo(f"error ({exc.code}): {exc}", err=True)
        status = 1 if isinstance(exc, Conflict) else 3 if isinstance(exc, Unavailable) else 2
        raise typer.Exit(status) from exc


def _backend(jurisdiction: str, backend: str, *, key_file: Path | None, library: str,
             token: str | None, pin_env: str, create: bool = False) -> KeyBackend:
    if backend == "file":
        path = key_file or Path(f"{jurisdiction}.kek")
        return open_key_backend({"backend": "file", "path": str(path)},
                                jurisdiction=jurisdiction, create=create)
    if token is None:
        raise ConfigError("--token is required with --backend pkcs11", code="key_backend_config")
    return open_key_backend({"backend": backend, "library": library, "token": token,
                             "pin_env": pin_env}, jurisdiction=jurisdiction)


def _print(event: KeyEvent) -> None:
    def no_subject(raw: str) -> str:  # KEK events carry no subject
        raise AssertionError("unexpected subject in a KEK event")

    typer.echo(json.dumps(event.to_entry(no_subject), sort_keys=True))


@app.command()
def init(
    *,
    jurisdiction: Jurisdiction,
    backend: Backend = "file",
    key_file: KeyFile = None,
    pkcs11_library: Library = "/usr/lib/softhsm/libsofthsm2.so",
    token: Token = None,
    pin_env: PinEnv = "BORDERGATE_PKCS11_PIN",
) -> None:
    """Create the jurisdiction's first key-encryption key (KEK version 1)."""
    from bordergate.keys.keyring import initialise

    with _failures():
        keys = _backend(jurisdiction, backend, key_file=key_file, library=pkcs11_library,
                        token=token, pin_env=pin_env, create=True)
        try:
            _print(initialise(keys))
        finally:
            keys.close()


@app.command()
def rotate(
    *,
    jurisdiction: Jurisdiction,
    store: StoreUrl = None,
    destroy_old: Annotated[bool, typer.Option(
        help="Destroy older KEK versions after re-wrapping.")] = False,
    backend: Backend = "file",
    key_file: KeyFile = None,
    pkcs11_library: Library = "/usr/lib/softhsm/libsofthsm2.so",
    token: Token = None,
    pin_env: PinEnv = "BORDERGATE_PKCS11_PIN",
) -> None:
    """Create a new KEK version and re-wrap every data key of the store under it."""
    from bordergate.keys.keyring import KeyRing
    from bordergate.residency.stores import open_record_store

    with _failures():
        if store is None:
            raise ConfigError("--store is required: rotation re-wraps the stored data keys",
                              code="store_url")
        keys = _backend(jurisdiction, backend, key_file=key_file, library=pkcs11_library,
                        token=token, pin_env=pin_env)
        records = open_record_store(store, jurisdiction=jurisdiction, pool_size=1)
        try:
            ring = KeyRing(keys, records)
            for event in ring.rotate():
                _print(event)
            if destroy_old:
                current = ring.current_version()
                for version in keys.versions():
                    if version != current:
                        _print(ring.destroy_version(version))
        finally:
            records.close()
            keys.close()


@app.command()
def status(
    *,
    jurisdiction: Jurisdiction,
    store: StoreUrl = None,
    backend: Backend = "file",
    key_file: KeyFile = None,
    pkcs11_library: Library = "/usr/lib/softhsm/libsofthsm2.so",
    token: Token = None,
    pin_env: PinEnv = "BORDERGATE_PKCS11_PIN",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show KEK versions (and, with --store, data keys per version); never key bytes."""
    from bordergate.residency.stores import open_record_store

    with _failures():
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
