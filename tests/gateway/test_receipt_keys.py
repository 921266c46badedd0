"""The gateway's registered receipt key (issue 12, item 5): created by ``gateway init``,
named in the deployment file and in the ``gateway-start`` entry.  Keys are TEST-ONLY."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bordergate.config import load_config
from bordergate.errors import ConfigError
from bordergate.gateway.startup import provision, receipt_signer
from bordergate.tlog.note import Signer
from tests.gateway import deployment as fixed


def test_init_creates_a_development_only_key_and_says_how_to_register_it(
        tmp_path: Path) -> None:
    """Issue 12, item 5: ``gateway init`` creates a missing receipt key (0600), names it
    as a development key under the development profile, and prints the line that
    registers it in the deployment file."""
    config = fixed.write_deployment(tmp_path)
    key = tmp_path / "eu" / "receipt.key"
    key.unlink()
    done = provision(load_config(config))
    line = next(d for d in done if d.startswith("eu: receipt key"))
    signer = Signer.from_key_string(key.read_text().strip())
    assert signer.name == "eu.gateway-receipts-development-only"
    assert key.stat().st_mode & 0o777 == 0o600
    assert f'public_keys = ["{signer.verifier().key_string}"]' in line
    assert provision(load_config(config)) == []  # never overwritten


def test_a_gateway_whose_key_is_not_registered_refuses_to_start(tmp_path: Path) -> None:
    """Issue 12, item 5: a gateway configured with a receipt key that the deployment
    file does not register refuses to start (``receipt_key_unregistered``), so every
    receipt of a running gateway is signed by a registered key."""
    config = fixed.write_deployment(tmp_path)
    assert receipt_signer(load_config(config), "us").key == \
        fixed.receipt_signer("us").verifier().key_string
    other = fixed.receipt_signer("eu").verifier().key_string
    config.write_text(config.read_text().replace(
        json.dumps(fixed.receipt_signer("us").verifier().key_string), json.dumps(other)))
    with pytest.raises(ConfigError) as err:
        receipt_signer(load_config(config), "us")
    assert err.value.code == "receipt_key_unregistered"
