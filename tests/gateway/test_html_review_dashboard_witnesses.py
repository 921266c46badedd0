"""Which signature lines of a checkpoint the dashboard shows as witness cosignatures
(HTML review; the browser side is tests/gateway/test_html_review_dashboard.py).

Given the log's witness keys, the dashboard counts a line only if it is a valid
cosignature by one of them: a line under a witness's name with another key, or
signed by nobody, is listed as not verified and gives no time; a verified
cosignature stamped in the future gives no time either, so the checkpoint's age is
never taken from a clock other than a verified witness's, up to now.  Keys TEST-ONLY.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bordergate.config import load_config
from bordergate.gateway.dashboard import DashboardFeed, _cosignatures
from bordergate.gateway.startup import open_gateway
from bordergate.tlog.checkpoint import Checkpoint, sign_checkpoint
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.note import NoteSignature, Signer, add_signatures
from bordergate.tlog.storage.memory import MemoryStorage
from tests.gateway.deployment import write_deployment

ORIGIN = "log.test/witnessed"
NOW = 1_900_000_000


def _witness(label: str) -> CosignatureSigner:
    return CosignatureSigner("witness.test/w1", hashlib.sha256(label.encode()).digest(),
                             lambda: NOW)


def test_only_cosignatures_by_the_configured_witness_keys_count() -> None:
    """A real cosignature of the configured witness counts (its time shown); the same
    name under another key, and the configured witness's own line stamped an hour
    ahead, do not give a time, and only the first counts as a witness."""
    log = Signer.from_seed(ORIGIN, hashlib.sha256(b"TEST-ONLY log").digest())
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, hashlib.sha256(b"x").digest()), log)
    text = note.split(b"\n\n", 1)[0] + b"\n"
    real, impostor = _witness("TEST-ONLY real"), _witness("TEST-ONLY impostor")
    good = NoteSignature(real.name, real.key_id, real.sign_at(text, NOW - 5))
    fake = NoteSignature(impostor.name, impostor.key_id, impostor.sign_at(text, NOW))
    shown, witnessed = _cosignatures(add_signatures(note, [good, fake]), ORIGIN,
                                     [real.verifier()], NOW)
    assert witnessed == 1
    assert [(c["verified"], c["time"]) for c in shown] == [(True, NOW - 5), (False, None)]
    assert shown[1]["note"].startswith("not verified")

    ahead = NoteSignature(real.name, real.key_id, real.sign_at(text, NOW + 3600))
    shown, witnessed = _cosignatures(add_signatures(note, [ahead]), ORIGIN,
                                     [real.verifier()], NOW)
    assert witnessed == 1 and shown[0]["time"] is None
    assert shown[0]["note"] == "cosigned at a time in the future"

    shown, witnessed = _cosignatures(add_signatures(note, [good]), ORIGIN, [], NOW)
    assert witnessed == 0 and shown[0]["verified"] is False and shown[0]["time"] is None


def test_a_started_gateway_gives_its_dashboard_the_logs_witness_keys(tmp_path: Path) -> None:
    """The dashboard checks lines against the keys of the witnesses the deployment
    file names for the log (``open_gateway`` sets them); with none set, every real
    cosignature on a deployed gateway would read "not verified"."""
    config = write_deployment(tmp_path)
    witness = _witness("TEST-ONLY deployed")
    vkey = witness.verifier().key_string
    text = config.read_text().replace(
        'pseudonym_secret_file = "us/pseudonym.secret"\n',
        'pseudonym_secret_file = "us/pseudonym.secret"\n'
        f'witnesses = [{{ url = "http://127.0.0.1:9/w", vkey = "{vkey}" }}]\nquorum = 0\n', 1)
    config.write_text(text)
    gateway = open_gateway(load_config(config), "us", log_storage=MemoryStorage())
    try:
        assert [v.key_string for v in gateway.witness_cosigners] == [vkey]
        assert DashboardFeed(gateway).cosigners == gateway.witness_cosigners
    finally:
        gateway.close()
