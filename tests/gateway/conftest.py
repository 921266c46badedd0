"""Fixtures of the gateway tests: a TEST-ONLY three-jurisdiction deployment served
by real ``bordergate gateway serve`` processes on loopback, and an in-process
gateway on in-memory log storage for fault injection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bordergate.config import Deployment, Jurisdiction, load_config
from tests.gateway.deployment import CODES, Tokens, write_deployment

BORDERGATE = str(Path(sys.executable).with_name("bordergate"))


@dataclass
class RunningDeployment:
    """A deployment whose gateways run as real processes."""

    path: Path
    deployment: Deployment
    urls: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]

    def log_dir(self, code: str) -> Path:
        return Path(self.deployment.jurisdiction(code).log.storage)


#: The seed of the suite's schemathesis runs unless ``BORDERGATE_FUZZ_SEED`` names
#: another (a number) or ``random`` (``make fuzz``): ``make test`` must give the
#: same verdict on the same code, and a failure it reports must replay.
FUZZ_SEED = 20261201


def fuzz_seed() -> int | None:
    """The schemathesis seed to run with; None for a fresh random one."""
    chosen = os.environ.get("BORDERGATE_FUZZ_SEED", str(FUZZ_SEED))
    return None if chosen == "random" else int(chosen)


def start_process(config: Path, code: str, *, env: dict[str, str] | None = None
                  ) -> subprocess.Popen[bytes]:
    """Start ``bordergate gateway serve`` for ``code`` (development: --unreviewed)."""
    return subprocess.Popen(
        [BORDERGATE, "gateway", "serve", "--config", str(config), "--jurisdiction", code,
         "--unreviewed"],
        env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"gateway at {url} exited: {err[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gateway at {url} did not become healthy")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stderr:
        process.stderr.close()


def start_sequencer_service(j: Jurisdiction, port: int) -> subprocess.Popen[bytes]:
    """`bordergate log sequencer` for jurisdiction ``j``'s log on ``port``
    (docs/scale-out.md), returned once it answers; the caller stops it."""
    assert j.sequencer is not None
    process = subprocess.Popen(
        [BORDERGATE, "log", "sequencer", j.log.storage, "--credentials",
         str(j.sequencer.credentials_file), "--key-file", str(j.sequencer.key_file),
         "--port", str(port), "--unwitnessed"], stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("sequencer exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/checkpoint", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError("sequencer did not start")


@pytest.fixture(scope="session")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    """us, eu and cn gateways as real processes on loopback (TEST-ONLY keys)."""
    root = tmp_path_factory.mktemp("deployment")
    path = write_deployment(root)
    deployment = load_config(path)
    processes = {code: start_process(path, code) for code in CODES}
    urls = {code: deployment.jurisdiction(code).public_url for code in CODES}
    try:
        for code in CODES:
            wait_healthy(urls[code], processes[code])
        yield RunningDeployment(path, deployment, urls, processes)
    finally:
        for process in processes.values():
            stop_process(process)


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    """Mints TEST-ONLY tokens."""
    return Tokens()
