"""A review the log operator did not log is never reported as recorded (promise 6; no
single party).

With a sequencer service (docs/scale-out.md) ``release propose`` and
``release review`` append through the log operator's process.  Before the fix
they believed its answer: the operator's ``{"first": N}`` and a checkpoint at
least ``N + 1`` long.  A log operator colluding with the custodian answered a
reviewer's *rejection* with the index of an entry already in the log and
logged nothing: the reviewer was told "reject ... recorded at entry N", the
other reviewers approved, and the release was approved with no trace of the
rejection.  Now the command reads its entry back from the log at the index it
was given, under a checkpoint signed by the log key, and fails
(``release_entry_not_logged``) unless it holds exactly the bytes it sent.

The lying operator here is a real process: an HTTP server speaking the
sequencer service's protocol, holding the log key, honest for every entry but
a rejection.
"""

from __future__ import annotations

import textwrap
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
)

# the log operator's process: logs every entry honestly, except that it answers a
# rejection with the index of the last entry already logged and logs nothing (run after
# OPERATOR_BASE, which imports json and sys and defines OperatorHandler)
_OPERATOR = textwrap.dedent("""
    from http.server import ThreadingHTTPServer
    from bordergate.tlog.logdir import read_signer
    from bordergate.tlog.sequencer import Sequencer
    from bordergate.tlog.sequencer_service import decode_entries
    from bordergate.tlog.storage import CHECKPOINT_PATH, open_storage

    port, storage_dir, key_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    signer = read_signer(__import__("pathlib").Path(key_file))
    storage = open_storage(storage_dir)

    class Handler(OperatorHandler):
        def do_POST(self):
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path.startswith("/append"):
                entries = decode_entries(data)
                if any(b'"verdict":"reject"' in e for e in entries):
                    with Sequencer(storage, signer) as seq:
                        size = seq.size
                    first = size - 1          # someone else's entry: nothing logged
                else:
                    with Sequencer(storage, signer) as seq:
                        first = seq.append_many(entries)
                        seq.publish()
                self.answer(json.dumps({"first": first}).encode())
            elif self.path.startswith("/publish"):
                self.answer(storage.read(CHECKPOINT_PATH), "text/plain")
            else:
                self.send_response(404)
                self.end_headers()

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
""")


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[Path, int]:
    """A TEST-ONLY deployment whose us log is appended through a sequencer service;
    3 reviewers, 2 required."""
    path = reviewed_deployment(tmp_path)
    return path, sequencer_port(path)


def test_a_rejection_the_log_operator_drops_is_not_reported_as_recorded(
        deployment: tuple[Path, int]) -> None:
    """Promise 6 ("a rejection is final") against a lying log operator: the
    reviewer's command fails (``release_entry_not_logged``) instead of saying its
    rejection was recorded at an index that holds another entry."""
    config, port = deployment
    j = load_config(config).jurisdiction("us")
    with lying_operator(_OPERATOR, port, str(j.log.storage),
                        str(config.parent / "us" / "log.key")):
        code, out = cli(*propose_args(config))
        assert code == 0, out
        index = out.split("proposed at entry ")[1].split()[0]
        code, out = review(config, index, "alice", "reject")
        assert code != 0 and "release_entry_not_logged" in out, out
        for name in ("bob", "carol"):
            code, out = review(config, index, name, "approve")
            assert code == 0, out
        # what the log shows: the rejection is not there (the operator dropped it),
        # which the reviewer now knows
        record = ledger(load_config(config)).find(index)
        assert record is not None and not record.rejections
