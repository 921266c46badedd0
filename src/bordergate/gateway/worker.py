"""One gateway worker's own settings over the shared deployment file (docs/scale-out.md).

Several workers of one jurisdiction share its deployment file (store, log,
sequencer, policy) and differ only in where each listens and which append
credential it sends its entries with: ``gateway serve --listen HOST:PORT
[--admin-listen HOST:PORT] [--credential-file F]``.  Neither is part of the
deployment slice a release approves (``releases.deployment_slice``: listen
addresses and file paths change no decision), so every worker runs the same
approved release.

Pure: it returns a new ``Deployment`` and never reads or opens anything.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bordergate.config import Deployment, default_admin_listen, parse_listen
from bordergate.errors import ConfigError

__all__ = ["worker_deployment"]


def worker_deployment(deployment: Deployment, code: str, *, listen: str | None = None,
                      admin_listen: str | None = None,
                      credential_file: Path | None = None) -> Deployment:
    """``deployment`` with jurisdiction ``code`` listening and appending as this worker.

    Without ``admin_listen``, a worker given ``listen`` puts its admin listener
    where a deployment file without ``admin_listen`` would: loopback, its port
    + 1000 (so two workers never share one).

    Raises:
        ConfigError: ``usage`` for a malformed HOST:PORT, or a credential file
            for a jurisdiction whose log has no sequencer service.
    """
    j = deployment.jurisdiction(code)
    changes: dict[str, object] = {}
    if listen is not None:
        changes["listen_host"], changes["listen_port"] = _host_port("--listen", listen)
        if admin_listen is None:
            admin_listen = default_admin_listen(int(str(changes["listen_port"])))
    if admin_listen is not None:
        changes["admin_host"], changes["admin_port"] = _host_port("--admin-listen",
                                                                  admin_listen)
    if credential_file is not None:
        if j.log.sequencer is None:
            raise ConfigError(f"--credential-file: the log of {code} has no sequencer service "
                              "(log.sequencer) to append to", code="usage")
        changes["log"] = replace(j.log, sequencer=replace(j.log.sequencer,
                                                          credential_file=credential_file))
    if not changes:
        return deployment
    jurisdictions = {**deployment.jurisdictions, code: replace(j, **changes)}  # type: ignore[arg-type]
    return replace(deployment, jurisdictions=jurisdictions)


def _host_port(option: str, value: str) -> tuple[str, int]:
    parsed = parse_listen(value)
    if parsed is None:
        raise ConfigError(f"{option} must be HOST:PORT, e.g. 127.0.0.1:8401, not {value!r}",
                          code="usage")
    return parsed
