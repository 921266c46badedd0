"""A review counts as recorded only under a checkpoint the witnesses cosigned (promise 6, 5).

``release review`` reads its entry back from the log before it reports it
recorded (tests/releases/test_release_review_censored.py).  It read it under
any checkpoint the log key signed, and the log operator holds that key: a
lying operator logged a reviewer's *rejection* under a checkpoint it signed
alone (the witnesses never saw it), let the reviewer read it back, then rolled
the log back to before it and went on honestly with the witnesses.  The
reviewer was told its rejection was recorded; the witnessed log, the one
gateways start from, never held it, and the other reviewers' approvals
approved the release.  Now the command needs the jurisdiction's witness
quorum on the checkpoint it reads its entry under.

The operator is a real process speaking the sequencer service's protocol,
holding the log key and asking a real witness process for cosignatures on
every checkpoint but the one that holds the rejection.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bordergate.config import load_config
from tests.releases.reviewed_deployment import (
    cli,
    ledger,
    lying_operator,
    propose_args,
    review,
    reviewed_deployment,
    sequencer_port,
    us_witness,
)
from tests.tlog.witnessed import WitnessServer

# the log operator: honest (witnessed) for every entry but a rejection, which it logs
# under a checkpoint of its own, and rolls back at the next request (run after
# OPERATOR_BASE, which imports json and sys and defines OperatorHandler)
_OPERATOR = textwrap.dedent("""
    import shutil
    from http.server import HTTPServer
    from pathlib import Path
    from bordergate.tlog.logdir import read_signer
    from bordergate.tlog.sequencer import Sequencer
    from bordergate.tlog.sequencer_service import decode_entries
    from bordergate.tlog.storage import CHECKPOINT_PATH
    from bordergate.tlog.storage.fs import FileStorage
    from bordergate.tlog.witnessing import WitnessQuorum, witness_endpoint

    port, root, key_file, url, vkey = sys.argv[1:6]
    root = Path(root)
    snapshot = root.with_name(root.name + ".before-rejection")
    signer = read_signer(Path(key_file))

    def witnessing():
        return WitnessQuorum([witness_endpoint(url, vkey)], 1)

    class Handler(OperatorHandler):
        def do_POST(self):
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path.startswith("/append"):
                entries = decode_entries(data)
                if snapshot.exists():  # roll the unwitnessed rejection back
                    shutil.rmtree(root)
                    shutil.copytree(snapshot, root)
                    shutil.rmtree(snapshot)
                storage = FileStorage(root)
                if any(b'"verdict":"reject"' in e for e in entries):
                    shutil.copytree(root, snapshot)
                    with Sequencer(storage, signer) as seq:  # no witness asked
                        first = seq.append_many(entries)
                        seq.publish()
                else:
                    w = witnessing()
                    try:
                        with Sequencer(storage, signer, witnessing=w) as seq:
                            first = seq.append_many(entries)
                            seq.publish()
                    finally:
                        w.close()
                storage.close()
                self.answer(json.dumps({"first": first}).encode())
            elif self.path.startswith("/publish"):
                self.answer(FileStorage(root).read(CHECKPOINT_PATH), "text/plain")
            else:
                self.send_response(404)
                self.end_headers()

    HTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
""")


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Path, int, WitnessServer]]:
    """A TEST-ONLY deployment whose us log is appended through a sequencer service
    and cosigned by one witness process (quorum 1); 3 reviewers, 2 required."""
    path = reviewed_deployment(tmp_path)
    with us_witness(path) as witness:
        yield path, sequencer_port(path), witness


def test_a_rejection_shown_only_under_the_operators_own_checkpoint_is_not_recorded(
        deployment: tuple[Path, int, WitnessServer]) -> None:
    """Promise 6 ("a rejection is final") against a lying log operator: the
    reviewer's command fails instead of reporting a rejection recorded that the
    witnessed log never holds."""
    config, port, witness = deployment
    j = load_config(config).jurisdiction("us")
    with lying_operator(_OPERATOR, port, str(j.log.storage),
                        str(config.parent / "us" / "log.key"), witness.url,
                        witness.verifier.key_string):
        code, out = cli(*propose_args(config))
        assert code == 0, out
        index = out.split("proposed at entry ")[1].split()[0]
        code, out = review(config, index, "alice", "reject")
        assert code != 0 and "release_entry_not_logged" in out, out
        for name in ("bob", "carol"):
            code, out = review(config, index, name, "approve")
            assert code == 0, out
    # the witnessed log: no rejection (the operator rolled it back), as the reviewer now knows
    record = ledger(load_config(config)).find(index)
    assert record is not None and not record.rejections and record.state == "approved"
