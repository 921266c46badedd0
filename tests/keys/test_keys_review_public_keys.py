"""Keys review: ``gateway public-keys`` never prints a private key.

The promise (bordergate.public_keys: "This module must never print, return or
log private key material"; its output is what the custodian hands to witnesses,
auditors and clients): the command printed the content of the file the
deployment names as the log's verifier key or an issuer public key, whatever it
held, so a deployment naming the log signing key as ``vkey_file`` or the issuer's
private PEM among ``public_keys`` (one wrong file name) had the command print the
log operator's signing key or the token issuer's private key, for publication.
The command runs in its own process, as the custodian runs it.

TEST-ONLY keys: ``gateway init`` makes them in the test's temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest


def _bordergate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", *args], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))


@pytest.mark.parametrize(("named", "private"), [
    (('vkey_file = "data/us/log.vkey"', 'vkey_file = "data/us/log-operator/log.key"'),
     "data/us/log-operator/log.key"),
    (('public_keys = ["data/us/issuer.pub"]', 'public_keys = ["data/us/issuer.pem"]'),
     "data/us/issuer.pem"),
], ids=["log-key-as-vkey", "issuer-private-pem-as-public"])
@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_public_keys_never_prints_a_private_key_it_is_pointed_at(
        tmp_path: Path, named: tuple[str, str], private: str, json_output: bool) -> None:
    """Private key material never leaves ``gateway public-keys``: a deployment naming
    a private key file where a public key belongs is refused
    (``public_key_file_private``, exit 2) and no byte of the key is printed."""
    config = tmp_path / "bordergate.toml"
    text = resources.files("bordergate").joinpath("demo_config.toml").read_text("utf-8")
    config.write_text(text)
    assert _bordergate("gateway", "init", "--config", str(config), cwd=tmp_path).returncode == 0
    assert named[0] in text
    config.write_text(text.replace(named[0], named[1], 1))
    secret_lines = [line for line in (tmp_path / private).read_text().splitlines()
                    if line and "-----" not in line]
    done = _bordergate("gateway", "public-keys", "--config", str(config),
                       *(["--json"] if json_output else []), cwd=tmp_path)
    shown = done.stdout + done.stderr
    # a signed-note private key is PRIVATE+KEY+name+hash+base64, whose base64 may hold
    # '+' itself (and end with it): the key material is what follows the fourth '+'
    leaked = [line for line in secret_lines
              if line in shown or _material(line) in shown.replace("\\n", "\n")]
    assert not leaked, f"the private key was printed: {shown[:400]}"
    assert done.returncode == 2, shown
    assert "public_key_file_private" in shown


def _material(line: str) -> str:
    """The secret part of a key file's line: the base64 of a signed-note private key
    (after ``PRIVATE+KEY+name+hash+``), or the whole line (a PEM body line)."""
    parts = line.split("+", 4)
    return parts[4] if len(parts) == 5 and parts[:2] == ["PRIVATE", "KEY"] else line
