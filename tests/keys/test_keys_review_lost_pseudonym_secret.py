"""Keys review: a missing pseudonym secret is never replaced while the log holds entries.

The promise (docs/design.md, promise 7; docs/config.md: ``gateway init`` "never
overwrites"): every subject and record in the log is named by a keyed pseudonym
under the log's secret, which is how the custodian proves an erasure, the key
service recomputes a subject's pseudonym and the auditor matches key releases to
decisions.  ``gateway init`` created a new secret whenever the file was missing,
even for a log already holding entries keyed by the old one: from then on every
subject had another pseudonym, cut off from its past entries, and nothing said
so.  The command runs in its own process, as the custodian would run it.

TEST-ONLY keys: everything is created in the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from bordergate.gateway.revocations import token_revoke_entry
from bordergate.tlog.logdir import read_signer
from bordergate.tlog.sequencer import Sequencer
from bordergate.tlog.storage.fs import FileStorage


def _gateway_init(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", "gateway", "init", "--config",
                           str(config)], cwd=config.parent, check=False, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))


def test_init_refuses_a_new_pseudonym_secret_for_a_log_with_entries(tmp_path: Path) -> None:
    """Promise 7: with the log holding entries and its pseudonym secret gone,
    ``gateway init`` refuses (``pseudonym_secret_missing``, exit 2) and makes no new
    secret; put back, the old secret is used as before."""
    config = tmp_path / "bordergate.toml"
    config.write_text(resources.files("bordergate").joinpath("demo_config.toml")
                      .read_text(encoding="utf-8"))
    first = _gateway_init(config)
    assert first.returncode == 0, first.stderr
    us = tmp_path / "data" / "us"
    with Sequencer(FileStorage(us / "log"), read_signer(us / "log-operator" / "log.key")) as seq:
        seq.append_many([token_revoke_entry("some-token-id-0123456789", 1.0, reason="test")])
        seq.publish()

    secret = us / "pseudonym.secret"
    kept = secret.read_bytes()
    shutil.move(secret, tmp_path / "pseudonym.secret.away")  # lost with its volume
    again = _gateway_init(config)
    assert not secret.exists(), f"gateway init made a new pseudonym secret: {again.stdout}"
    assert again.returncode == 2, again.stdout + again.stderr
    assert "pseudonym_secret_missing" in again.stdout + again.stderr

    shutil.move(tmp_path / "pseudonym.secret.away", secret)
    back = _gateway_init(config)
    assert back.returncode == 0, back.stdout + back.stderr
    assert secret.read_bytes() == kept
