"""The gateway runs the settings files it checked, not a second read of them (promise 6).

The deployment slice holds the sha256 of the schema file and of each issuer
key file; the self-check compares it with the approved release.  Before the
fix the gateway then opened both files *again* to load them, so a custodian
who controls the host served the reviewed bytes to the check and other bytes
to the load (here a named pipe fed by an attacker process: first open the
reviewed schema, every later open one that makes a restricted field public;
a regular file swapped between the two reads, e.g. on inotify's close event,
does the same).  The gateway started, logged a reviewed release, and decided
with an unreviewed schema or trusted an unreviewed token issuer key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bordergate.config import load_config
from bordergate.errors import Unauthenticated
from bordergate.gateway.auth import TokenIssuer
from bordergate.policy.entities import Principal
from bordergate.residency.schema import demo_schema_path, parse_schema
from tests.gateway.deployment import Tokens, issuer_name
from tests.releases.reviewed_deployment import approve, reviewed_deployment, started

REVIEWERS = ("alice", "bob")

# an attacker process: the first open of the pipe gets FIRST, every later one SECOND
_FEEDER = textwrap.dedent("""
    import sys, time
    path, first, second = sys.argv[1], open(sys.argv[2], "rb").read(), \\
        open(sys.argv[3], "rb").read()
    n = 0
    while True:
        with open(path, "wb") as pipe:
            pipe.write(first if n == 0 else second)
        n += 1
        time.sleep(0.3)  # let the reader reach end of file before the next open
""")


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """A TEST-ONLY deployment; us has 2 reviewers, 2 required, its own schema file."""
    shutil.copy(demo_schema_path(), tmp_path / "schema.toml")
    return reviewed_deployment(tmp_path, reviewers=REVIEWERS,
                               settings='schema = "schema.toml"\n')


def _fed_pipe(path: Path, first: bytes, second: bytes) -> subprocess.Popen[bytes]:
    """Replace ``path`` by a named pipe an attacker process feeds."""
    (path.parent / "first.bin").write_bytes(first)
    (path.parent / "second.bin").write_bytes(second)
    path.unlink()
    os.mkfifo(path)
    return subprocess.Popen([sys.executable, "-c", _FEEDER, str(path),
                             str(path.parent / "first.bin"), str(path.parent / "second.bin")])


def test_the_schema_loaded_is_the_schema_checked(deployment: Path) -> None:
    """Promise 6 ("every line ... that runs there was reviewed"; the schema is in the
    slice): a schema file that gives the check the reviewed bytes and the load
    others never becomes the gateway's schema."""
    approve(deployment, REVIEWERS)
    schema = deployment.parent / "schema.toml"
    reviewed = schema.read_bytes()
    marker = b'dsp_category = "covered_personal_identifiers"\nclass = "restricted"'
    assert marker in reviewed
    opened = reviewed.replace(marker, marker.replace(b"restricted", b"public"), 1)
    config = load_config(deployment)  # the deployment file itself is read before the swap
    attacker = _fed_pipe(schema, reviewed, opened)
    try:
        gateway = started(config)  # the reviewed bytes were checked: it serves
        loaded = gateway.schema
        field = loaded.collection("users").field("government_id")
        assert field.field_class.value == "restricted", field
        assert loaded.collections == parse_schema(reviewed).collections
    finally:
        attacker.kill()
        attacker.wait()


def test_the_issuer_key_trusted_is_the_issuer_key_checked(deployment: Path) -> None:
    """Promise 6 (issuer keys are in the slice): an issuer key file that gives the
    check the reviewed key and the load the custodian's own key never makes the
    gateway accept a token the custodian signed with its own key."""
    approve(deployment, REVIEWERS)
    config = load_config(deployment)
    key_file = config.jurisdiction("us").issuer.public_key_files[0]
    reviewed = key_file.read_bytes()
    rogue = ed25519.Ed25519PrivateKey.generate()
    rogue_pem = rogue.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    attacker = _fed_pipe(key_file, reviewed, rogue_pem)
    try:
        gateway = started(config)
        verifier = gateway.principals.verifier
        now = time.time()
        custodian = Principal("custodian-ops", "ttus", "local", "us", frozenset({"approver"}))
        forged = TokenIssuer(rogue, issuer_name("us")).issue(custodian, audience="us", now=now)
        with pytest.raises(Unauthenticated):
            verifier.authenticate(f"Bearer {forged}", now=now)
        honest = Tokens().token(custodian, "us", now=now)
        assert verifier.authenticate(f"Bearer {honest}", now=now).id == "custodian-ops"
    finally:
        attacker.kill()
        attacker.wait()
