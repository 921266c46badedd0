"""TEST-ONLY deployments whose ``us`` gateway starts only on a reviewed release, and the
``bordergate release`` steps the release-review tests take on them.

:func:`reviewed_deployment` writes a deployment (tests/gateway/deployment.py) with the
policy bundle in a temporary copy, a list of reviewers and ``required_approvals`` in
``us``, and each reviewer's key file beside the config (``NAME.key``).  Every key here
is a fixed-seed test key (tests/releases/keys.py): never use one outside the test
suite.  :func:`us_witness` adds a witness process to the us log, :func:`sequencer_port`
moves its appends to a sequencer service, and :func:`lying_operator` runs a log
operator of the test's own making on that port.  The CLI helpers run the real
commands in process; :func:`start` (:func:`started`) starts and stops the gateway as
``gateway serve`` does.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.config import Deployment, Jurisdiction, load_config
from bordergate.gateway.service import Gateway
from bordergate.gateway.startup import start_gateway
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


def reviewed_deployment(root: Path, *, reviewers: Sequence[str] = REVIEWERS,
                        required: int = 2, extra_keys: Iterable[str] = (),
                        settings: str = "") -> Path:
    """Write and provision a TEST-ONLY deployment under ``root``; its config path.

    ``us`` lists ``reviewers`` (test keys) and needs ``required`` approvals; the policy
    bundle is a copy in ``root/policy``; ``settings`` are more lines of the
    ``[deployment]`` table.  Key files ``root/NAME.key`` are written for every
    reviewer and for each of ``extra_keys`` (keys no reviewer list names).
    """
    path = write_deployment(root)
    shutil.copytree(DEFAULT_BUNDLE_PATH, root / "policy")
    keys = {n: reviewer_signer(n).verifier().key_string for n in reviewers}
    listed = ", ".join(f'{{ name = "{n}", public_key = "{k}" }}' for n, k in keys.items())
    text = path.read_text().replace(
        "[deployment]\n", f'[deployment]\npolicy_bundle = "policy"\n{settings}')
    text = text.replace("[jurisdictions.us]\n", f"[jurisdictions.us]\nreviewers = [{listed}]\n"
                        f"required_approvals = {required}\n")
    path.write_text(text)
    for n in (*reviewers, *extra_keys):
        (root / f"{n}.key").write_text(reviewer_signer(n).key_string + "\n")
    return path


@contextmanager
def us_witness(config: Path) -> Iterator[WitnessServer]:
    """A witness process trusting the us log of ``config`` (its log key in
    ``us/log.key``), named in ``config`` as the log's one witness (quorum 1), while
    the block runs."""
    signer = read_signer(config.parent / "us" / "log.key")
    witness = WitnessServer(config.parent, 0, [signer]).start()
    try:
        text = config.read_text()
        assert SECRET_LINE in text
        config.write_text(text.replace(
            SECRET_LINE, f'{SECRET_LINE}witnesses = [{{ url = "{witness.url}", '
            f'vkey = "{witness.verifier.key_string}" }}]\nquorum = 1\n', 1))
        yield witness
    finally:
        witness.stop()


def sequencer_port(config: Path) -> int:
    """Make the us log of ``config`` append through a sequencer service; its port."""
    port = free_port()
    use_sequencer_service(config, port)
    return port


OPERATOR_BASE = '''
import json, sys
from http.server import BaseHTTPRequestHandler


class OperatorHandler(BaseHTTPRequestHandler):
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
'''
"""What every lying operator script runs first: it imports ``json`` and ``sys`` and
defines ``OperatorHandler``, a request handler that logs nothing, answers a GET with
``{}`` and gives its subclasses ``answer(body, kind)``."""


@contextmanager
def lying_operator(script: str, port: int, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``script`` (after :data:`OPERATOR_BASE`) as a log operator's process with
    ``port`` and ``args`` as its arguments, once it answers on ``port``; killed after
    the block."""
    operator = subprocess.Popen([sys.executable, "-c", OPERATOR_BASE + script, str(port),
                                 *args])
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield operator
    finally:
        operator.kill()
        operator.wait()


def cli(*args: str | Path) -> tuple[int, str]:
    """``bordergate ARGS`` in process: its exit code and output."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def propose_args(config: Path) -> list[str]:
    """The arguments of ``release propose`` in us."""
    return ["release", "propose", "--config", str(config), "--jurisdiction", "us"]


def review_args(config: Path, release: str, name: str, verdict: str) -> list[str]:
    """The arguments of ``release review`` of ``release`` in us by reviewer ``name``
    (its key file beside ``config``)."""
    return ["release", "review", release, "--config", str(config), "--jurisdiction", "us",
            "--key-file", str(config.parent / f"{name}.key"), "--verdict", verdict,
            "--note", "read it"]


def review(config: Path, release: str, name: str, verdict: str) -> tuple[int, str]:
    """Reviewer ``name``'s ``release review``: its exit code and output."""
    return cli(*review_args(config, release, name, verdict))


def approve(config: Path, reviewers: Sequence[str]) -> None:
    """``release propose`` in us, then each of ``reviewers`` approves that release."""
    code, out = cli(*propose_args(config))
    assert code == 0, out
    index = out.split("proposed at entry ")[1].split()[0]
    for n in reviewers:
        code, out = review(config, index, n, "approve")
        assert code == 0, out


def started(dep: Deployment, *, unreviewed: bool = False) -> Gateway:
    """Start and stop the us gateway of the loaded ``dep`` exactly as ``gateway serve``
    does; the gateway (closed)."""
    async def run() -> Gateway:
        gateway = await start_gateway(dep, "us", unreviewed=unreviewed)
        gateway.close()
        return gateway
    return asyncio.run(run())


def start(config: Path, *, unreviewed: bool = False) -> str | None:
    """Start and stop the us gateway exactly as ``gateway serve`` does; its release id."""
    return started(load_config(config), unreviewed=unreviewed).release


def log_entries(j: Jurisdiction) -> list[bytes]:
    """Every entry of ``j``'s log, as its current checkpoint holds them."""
    storage = open_storage(j.log.storage)
    try:
        client = LogClient(StorageSource(storage), log_verifier(j))
        size = client.checkpoint().checkpoint.size
        return [client.entry(i, size) for i in range(size)]
    finally:
        storage.close()


def ledger(dep: Deployment) -> ReleaseLedger:
    """The release ledger of the us log of ``dep`` (its release and review entries)."""
    j = dep.jurisdiction("us")
    storage = open_storage(j.log.storage)
    try:
        index = ReleaseIndex(j.log.origin)
        index.update(LogClient(StorageSource(storage), log_verifier(j)))
    finally:
        storage.close()
    out = ReleaseLedger(review_policy(j), log=j.log.origin)
    out.add_all(index.parsed())
    return out
