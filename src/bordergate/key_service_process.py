"""``bordergate keys serve --config F -j X``: run a jurisdiction's key service process.

The process opens the jurisdiction's KEK backend (file or PKCS#11, from its
``keys`` table: the only process of a deployment with a key service that does),
the log's pseudonym secret (to recompute a subject's pseudonym) and verifier key
(to check the log operator's promises), the log's witnesses and quorum (whose
cosigned checkpoints it accepts inclusion proofs in), and its own append credential to the
log's sequencer service (``key_service.append_credential_file``, for its
``key-access`` entries), then serves :mod:`bordergate.keys.service` on
``key_service.listen`` to the gateways whose credentials are listed in
``key_service.credentials_file``.  It joins the ``keys`` room and the log's
access (:mod:`bordergate.log_access`), so it lives outside both; it must never
print key material.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bordergate.config import Jurisdiction, KeyServiceSettings, load_config
from bordergate.durable import replace_file
from bordergate.entries import Pseudonymizer
from bordergate.errors import ConfigError
from bordergate.keys.backend import open_key_backend
from bordergate.keys.justification import TrustedCheckpoints
from bordergate.keys.service import KeyService, make_key_service_app
from bordergate.log_access import log_verifier, read_pseudonym_secret, remote_appender
from bordergate.residency.schema import load_schema
from bordergate.tlog.credentials import (
    AppendCredential,
    parse_credential_list,
    read_credential,
    read_credential_list,
)
from bordergate.tlog.logdir import make_dirs, write_key
from bordergate.tlog.witnessing import witness_endpoint

__all__ = ["provision_key_service", "serve_keys"]


def _key_service(j: Jurisdiction) -> KeyServiceSettings:
    if j.key_service is None:
        raise ConfigError(f"jurisdictions.{j.code}.key_service is not set",
                          code="key_service_not_configured")
    if j.log.sequencer is None:
        raise ConfigError(f"jurisdictions.{j.code}.log.sequencer: the key service logs its "
                          "key-access entries through the log's sequencer service",
                          code="sequencer_required")
    return j.key_service


def serve_keys(config: Path, jurisdiction: str, *, host: str | None = None,
               port: int | None = None) -> None:
    """Open everything and serve until interrupted.

    Raises:
        ConfigError: no key service or sequencer service configured, or a key,
            secret or credential file is missing or malformed.
        Unavailable: the key backend cannot be opened.
    """
    from bordergate.serving import run_server

    deployment = load_config(config)
    j = deployment.jurisdiction(jurisdiction)
    ks = _key_service(j)
    schema = load_schema(deployment.schema_path)
    sealed = {name: frozenset(f for f, spec in coll.fields.items()
                              if spec.field_class.encrypted)
              for name, coll in schema.collections.items()}
    credentials = read_credential_list(ks.credentials_file)
    pseudonyms = Pseudonymizer(read_pseudonym_secret(j.log.pseudonym_secret_file))
    verifier = log_verifier(j)
    appender = remote_appender(j, ks.append_credential_file)
    trusted = None if j.log.quorum < 1 else TrustedCheckpoints(
        tuple(witness_endpoint(w.url, w.vkey).verifier for w in j.log.witnesses),
        j.log.quorum)
    backend = open_key_backend(j.keys, jurisdiction=jurisdiction)
    try:
        service = KeyService(jurisdiction=jurisdiction, backend=backend, pseudonyms=pseudonyms,
                             log_verifier=verifier, record=appender.append_many,
                             window=float(ks.window_seconds),
                             cache_seconds=float(ks.cache_seconds), sealed=sealed,
                             trusted=trusted)
        print(f"key service of {jurisdiction} ({backend.kind} backend) at "
              f"http://{host or ks.listen_host}:{port or ks.listen_port}/v1/data-key "
              f"({len(credentials.ids)} gateway credentials)", flush=True)
        run_server(make_key_service_app(service, credentials),
                   host=host or ks.listen_host, port=port or ks.listen_port)
    finally:
        backend.close()
        asyncio.run(appender.aclose())


def provision_key_service(j: Jurisdiction) -> list[str]:
    """Create the gateway's credential to the key service and the key service's
    credential list (``gateway init``; idempotent); one line per action.  The key
    service's append credential is provisioned with the sequencer's
    (:func:`bordergate.log_access.provision_sequencer`).

    Raises:
        ConfigError: a credential file name is not a valid id, or the list is malformed.
    """
    ks = j.key_service
    if ks is None:
        return []
    done: list[str] = []
    path = ks.credential_file
    if path.exists():
        credential = read_credential(path)
    else:
        try:
            credential = AppendCredential.issue(path.stem)
        except ValueError:
            raise ConfigError(f"{path}: a credential file is named after its id "
                              "(e.g. us-gw-1-keys.cred)", code="credential_name_invalid") from None
        make_dirs(path.parent)
        write_key(path, credential.token)
        done.append(f"{j.code}: key service credential {credential.id} ({path})")
    listed = ks.credentials_file
    text = listed.read_text() if listed.exists() else ""
    if credential.id not in parse_credential_list(text).ids:
        make_dirs(listed.parent)
        replace_file(listed, (text + credential.list_line + "\n").encode("utf-8"), mode=0o600)
        done.append(f"{j.code}: key service credential list {listed}")
    return done
