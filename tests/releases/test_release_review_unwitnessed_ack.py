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

import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
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
from bordergate.tlog.logdir import read_signer
from bordergate.tlog.storage import open_storage
from tests.gateway.deployment import free_port, use_sequencer_service, write_deployment
from tests.releases.keys import reviewer_signer
from tests.tlog.witnessed import WitnessServer

REVIEWERS = ("alice", "bob", "carol")
SECRET_LINE = 'pseudonym_secret_file = "us/pseudonym.secret"\n'

# the log operator: honest (witnessed) for every entry but a rejection, which it logs
# under a checkpoint of its own, and rolls back at the next request
_OPERATOR = textwrap.dedent("""
    import json, shutil, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
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
    path = write_deployment(tmp_path)
    shutil.copytree(DEFAULT_BUNDLE_PATH, tmp_path / "policy")
    signer = read_signer(tmp_path / "us" / "log.key")
    witness = WitnessServer(tmp_path, 0, [signer]).start()
    listed = ", ".join(f'{{ name = "{n}", public_key = '
                       f'"{reviewer_signer(n).verifier().key_string}" }}' for n in REVIEWERS)
    text = path.read_text().replace("[deployment]\n", '[deployment]\npolicy_bundle = "policy"\n')
    text = text.replace("[jurisdictions.us]\n", f"[jurisdictions.us]\nreviewers = [{listed}]\n"
                        "required_approvals = 2\n")
    text = text.replace(SECRET_LINE, f'{SECRET_LINE}witnesses = [{{ url = "{witness.url}", '
                        f'vkey = "{witness.verifier.key_string}" }}]\nquorum = 1\n', 1)
    path.write_text(text)
    port = free_port()
    use_sequencer_service(path, port)
    for n in REVIEWERS:
        (tmp_path / f"{n}.key").write_text(reviewer_signer(n).key_string + "\n")
    try:
        yield path, port, witness
    finally:
        witness.stop()


def _cli(*args: str) -> tuple[int, str]:
    out = CliRunner().invoke(app, list(args))
    return out.exit_code, out.output


def _review(config: Path, index: str, name: str, verdict: str) -> tuple[int, str]:
    return _cli("release", "review", index, "--config", str(config), "--jurisdiction", "us",
                "--key-file", str(config.parent / f"{name}.key"), "--verdict", verdict,
                "--note", "read it")


def test_a_rejection_shown_only_under_the_operators_own_checkpoint_is_not_recorded(
        deployment: tuple[Path, int, WitnessServer]) -> None:
    """Promise 6 ("a rejection is final") against a lying log operator: the
    reviewer's command fails instead of reporting a rejection recorded that the
    witnessed log never holds."""
    config, port, witness = deployment
    j = load_config(config).jurisdiction("us")
    operator = subprocess.Popen([sys.executable, "-c", _OPERATOR, str(port), str(j.log.storage),
                                 str(config.parent / "us" / "log.key"), witness.url,
                                 witness.verifier.key_string])
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
    finally:
        operator.kill()
        operator.wait()
    # the witnessed log: no rejection (the operator rolled it back), as the reviewer now knows
    storage = open_storage(j.log.storage)
    try:
        release_index = ReleaseIndex(j.log.origin)
        release_index.update(LogClient(StorageSource(storage), log_verifier(j)))
    finally:
        storage.close()
    ledger = ReleaseLedger(review_policy(j), log=j.log.origin)
    ledger.add_all(release_index.parsed())
    record = ledger.find(index)
    assert record is not None and not record.rejections and record.state == "approved"
