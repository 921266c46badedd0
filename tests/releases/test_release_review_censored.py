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

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.config import load_config
from bordergate.log_access import log_verifier
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.releases.index import ReleaseIndex
from bordergate.releases.ledger import ReleaseLedger
from bordergate.releases.selfcheck import review_policy
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.storage import open_storage
from tests.gateway.deployment import free_port, use_sequencer_service, write_deployment
from tests.releases.keys import reviewer_signer

REVIEWERS = ("alice", "bob", "carol")

# the log operator's process: logs every entry honestly, except that it answers a
# rejection with the index of the last entry already logged and logs nothing
_OPERATOR = textwrap.dedent("""
    import json, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from bordergate.tlog.logdir import read_signer
    from bordergate.tlog.sequencer import Sequencer
    from bordergate.tlog.sequencer_service import decode_entries
    from bordergate.tlog.storage import CHECKPOINT_PATH, open_storage

    port, storage_dir, key_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    signer = read_signer(__import__("pathlib").Path(key_file))
    storage = open_storage(storage_dir)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, body, kind="application/json"):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.answer(b"{}")

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
    path = write_deployment(tmp_path)
    shutil.copytree(DEFAULT_BUNDLE_PATH, tmp_path / "policy")
    keys = {n: reviewer_signer(n).verifier().key_string for n in REVIEWERS}
    listed = ", ".join(f'{{ name = "{n}", public_key = "{k}" }}' for n, k in keys.items())
    text = path.read_text().replace("[deployment]\n", '[deployment]\npolicy_bundle = "policy"\n')
    text = text.replace("[jurisdictions.us]\n", f"[jurisdictions.us]\nreviewers = [{listed}]\n"
                        "required_approvals = 2\n")
    path.write_text(text)
    port = free_port()
    use_sequencer_service(path, port)
    for n in REVIEWERS:
        (tmp_path / f"{n}.key").write_text(reviewer_signer(n).key_string + "\n")
    return path, port


def _cli(*args: str) -> tuple[int, str]:
    out = CliRunner().invoke(app, list(args))
    return out.exit_code, out.output


def _review(config: Path, index: str, name: str, verdict: str) -> tuple[int, str]:
    return _cli("release", "review", index, "--config", str(config), "--jurisdiction", "us",
                "--key-file", str(config.parent / f"{name}.key"), "--verdict", verdict,
                "--note", "read it")


def _ledger(config: Path) -> ReleaseLedger:
    j = load_config(config).jurisdiction("us")
    storage = open_storage(j.log.storage)
    try:
        index = ReleaseIndex(j.log.origin)
        index.update(LogClient(StorageSource(storage), log_verifier(j)))
    finally:
        storage.close()
    ledger = ReleaseLedger(review_policy(j), log=j.log.origin)
    ledger.add_all(index.parsed())
    return ledger


def test_a_rejection_the_log_operator_drops_is_not_reported_as_recorded(
        deployment: tuple[Path, int]) -> None:
    """Promise 6 ("a rejection is final") against a lying log operator: the
    reviewer's command fails (``release_entry_not_logged``) instead of saying its
    rejection was recorded at an index that holds another entry."""
    config, port = deployment
    j = load_config(config).jurisdiction("us")
    operator = subprocess.Popen([sys.executable, "-c", _OPERATOR, str(port),
                                 str(j.log.storage), str(config.parent / "us" / "log.key")])
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        code, out = _cli("release", "propose", "--config", str(config), "--jurisdiction", "us")
        assert code == 0, out
        index = out.split("proposed at entry ")[1].split()[0]
        code, out = _review(config, index, "alice", "reject")
        assert code != 0 and "release_entry_not_logged" in out, out
        for name in ("bob", "carol"):
            code, out = _review(config, index, name, "approve")
            assert code == 0, out
        # what the log shows: the rejection is not there (the operator dropped it),
        # which the reviewer now knows
        record = _ledger(config).find(index)
        assert record is not None and not record.rejections
    finally:
        operator.kill()
        operator.wait()
