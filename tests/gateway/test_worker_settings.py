"""A worker's own settings over the shared deployment file (issue 16 item 3).

``gateway serve --listen/--admin-listen/--credential-file`` change only where a
worker listens and which append credential it sends entries with; nothing of
the deployment slice a release approves; malformed values are ``usage`` errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.config import load_config
from bordergate.errors import ConfigError
from bordergate.gateway.worker import worker_deployment
from bordergate.releases.deployment_slice import deployment_slice
from tests.gateway.deployment import free_port, use_sequencer_service, write_deployment


def test_a_worker_listens_and_appends_as_itself_under_the_same_release(tmp_path: Path) -> None:
    """--listen moves the public listener and, by default, the admin one to loopback at
    port + 1000; --credential-file replaces only the worker's append credential; the
    deployment slice (what a release approves) is unchanged."""
    config = write_deployment(tmp_path)
    use_sequencer_service(config, free_port())
    deployment = load_config(config)
    worker = worker_deployment(deployment, "us", listen="0.0.0.0:8501",
                               credential_file=tmp_path / "us-gw-2.cred")
    us = worker.jurisdiction("us")
    assert (us.listen_host, us.listen_port) == ("0.0.0.0", 8501)
    assert (us.admin_host, us.admin_port) == ("127.0.0.1", 9501)
    assert us.log.sequencer is not None
    assert us.log.sequencer.credential_file == tmp_path / "us-gw-2.cred"
    original = deployment.jurisdiction("us").log.sequencer
    assert original is not None and us.log.sequencer.url == original.url
    assert worker.jurisdiction("eu") == deployment.jurisdiction("eu")
    assert deployment_slice(worker, "us") == deployment_slice(deployment, "us")
    admin = worker_deployment(deployment, "us", listen="127.0.0.1:8501",
                              admin_listen="127.0.0.1:7001").jurisdiction("us")
    assert (admin.admin_host, admin.admin_port) == ("127.0.0.1", 7001)


@pytest.mark.parametrize(("option", "value"), [("listen", "8501"), ("listen", "host:"),
                                                ("admin_listen", "h:70000")])
def test_a_malformed_address_is_a_usage_error(tmp_path: Path, option: str,
                                              value: str) -> None:
    """A HOST:PORT that does not parse is refused with ``usage``."""
    deployment = load_config(write_deployment(tmp_path))
    with pytest.raises(ConfigError) as caught:
        worker_deployment(deployment, "us", **{option: value})  # type: ignore[arg-type]
    assert caught.value.code == "usage"


def test_a_credential_without_a_sequencer_service_is_refused(tmp_path: Path) -> None:
    """--credential-file for a log written in process (no log.sequencer) is ``usage``."""
    deployment = load_config(write_deployment(tmp_path))
    with pytest.raises(ConfigError) as caught:
        worker_deployment(deployment, "us", credential_file=tmp_path / "x.cred")
    assert caught.value.code == "usage"
