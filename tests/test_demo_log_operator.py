"""The demo's layout of the log operator (issue 12 item 2): its gateways hold no log
key, only append credentials; one sequencer per log holds the key."""

from __future__ import annotations

from pathlib import Path

from bordergate.config import parse_config
from bordergate.demo import CODES, WITNESSES, Demo
from bordergate.tlog.note import Signer


def test_demo_gateways_name_no_log_key(tmp_path: Path) -> None:
    """Issue 12.2: in the demo's deployment file no jurisdiction's log table names a
    log key; each names its sequencer and credentials, and the sequencer table
    holds the key (read only by `bordergate log sequencer`)."""
    demo = Demo(tmp_path / "demo")
    reviewers = {c: [(f"{c}-{n}.key", Signer.generate(f"{c}-{n}").verifier().key_string)
                     for n in ("alice", "bob")] for c in CODES}
    demo.witness_vkeys = {w: f"{w}+00000000+TEST-ONLY" for w in WITNESSES}
    text = demo._deployment(reviewers)
    deployment = parse_config(text, base_dir=tmp_path)
    for code in CODES:
        j = deployment.jurisdiction(code)
        assert j.log.key_file is None and j.log.vkey_file is not None
        assert j.log.sequencer is not None and j.sequencer is not None
        assert j.sequencer.key_file.name == "log.key"
        assert j.log.quorum == len(j.log.witnesses) == len(WITNESSES)  # issue 12.1
        assert "log.key" not in str(j.log.sequencer.credential_files())
