"""Issue 11 item 3: exports no longer leak an individual by differencing.

The attack: export ``profiles`` by ``gender``, write one profile, export again,
and read the written value off the difference of exact counts (31 -> 32).  Now
every released number is an OpenDP draw, groups are kept by a noisy threshold,
and each export spends epsilon from the principal's and the collection's
budgets, shared and debited atomically by every worker of the jurisdiction.

Real processes: a sequencer service and two ``gateway serve`` workers of ``us``
sharing its SQLite store (hence the privacy budget table) and its log.

Probabilities, stated once: with epsilon 1 per export the scale is 3 (a third of
the epsilon per measurement), so a count is released unchanged with probability
(1 - e^(-1/3)) / (1 + e^(-1/3)) < 0.17 and two independent draws of one count
coincide with probability < 0.085.  Two groups of 90 subjects stand 50 above the
threshold of 40, so either is suppressed with probability < e^(-50/3) < 1e-7 per
export.  The assertions that rest on draws fail with probability below 1e-6.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bordergate.config import load_config
from bordergate.entries import parse_entry
from bordergate.log_access import log_verifier
from bordergate.policy.entities import Principal
from bordergate.tlog.client import DirectorySource, LogClient
from tests.gateway.conftest import (
    start_process,
    start_sequencer_service,
    stop_process,
    wait_healthy,
)
from tests.gateway.deployment import (
    Tokens,
    free_port,
    second_worker,
    use_sequencer_service,
    write_deployment,
)

HOME = "us"
STAFF = Principal("dp-staff", "ttus", "local", HOME, frozenset({"engineer"}))
ANALYST = Principal("dp-analyst", "ttus", "local", HOME, frozenset({"analyst"}))
RACER = Principal("dp-racer", "ttus", "local", HOME, frozenset({"analyst"}))
EPSILON = 1_000_000  # per export, in millionths
EXPORTS_PER_PERIOD = 4
PRIVACY = (f"epsilon_per_export = 1.0\ndelta_exponent = 6\nperiod_s = 31536000\n"
           f"principal_budget = {EXPORTS_PER_PERIOD}.0\ndataset_budget = 1000.0\n")
PER_GENDER = 90
BODY = {"collection": "profiles", "group_by": "gender", "purpose": "analytics_aggregate",
        "min_subjects": 3}


@dataclass
class Workers:
    """Two workers of us sharing one store and one log (through a sequencer service)."""

    urls: tuple[str, str]
    config: Path


def _start_sequencer(config: Path, port: int) -> subprocess.Popen[bytes]:
    use_sequencer_service(config, port)
    return start_sequencer_service(load_config(config).jurisdiction(HOME), port)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    root = tmp_path_factory.mktemp("dp")
    config = write_deployment(root, k_min=3, privacy=PRIVACY)
    sequencer = _start_sequencer(config, free_port())
    second = second_worker(config, HOME, name="worker-b.toml")
    processes = [start_process(config, HOME), start_process(second, HOME)]
    urls = (load_config(config).jurisdiction(HOME).public_url,
            load_config(second).jurisdiction(HOME).public_url)
    try:
        for url, process in zip(urls, processes, strict=True):
            wait_healthy(url, process)
        yield Workers(urls, config)
    finally:
        for process in processes:
            stop_process(process)
        stop_process(sequencer)


def _write_profile(http: httpx.Client, url: str, tokens: Tokens, gender: str) -> None:
    headers = tokens.header(STAFF, HOME)
    subject = http.post(f"{url}/v1/subjects", headers=headers).json()["subject"]
    r = http.put(f"{url}/v1/profiles/{subject}", params={"purpose": "operations"},
                 headers=headers, json={"subject": subject, "values": {
                     "display_name": "someone", "private_account": False, "gender": gender}})
    assert r.status_code == 200, r.text


def _export(http: httpx.Client, url: str, tokens: Tokens, who: Principal) -> httpx.Response:
    return http.post(f"{url}/v1/exports", headers=tokens.header(who, HOME), json=BODY)


def _numbers(body: dict[str, object]) -> list[tuple[object, int, int]]:
    groups = body["groups"]
    assert isinstance(groups, list)
    return sorted((g["value"], g["records"], g["subjects"]) for g in groups)


def _logged(config: Path, indices: list[int]) -> dict[int, bytes]:
    j = load_config(config).jurisdiction(HOME)
    client = LogClient(DirectorySource(Path(j.log.storage)), log_verifier(j))
    found: dict[int, bytes] = {}

    def collect(first: int, batch: list[bytes]) -> None:
        found.update({first + n: e for n, e in enumerate(batch) if first + n in indices})

    client.rebuild(client.checkpoint(), on_entries=collect)
    return found


def test_differencing_attack_across_two_workers(workers: Workers, tokens: Tokens) -> None:
    """Issue 11 item 3 (the attack): export profiles by gender, write one profile, export
    again.  Every answer is a noised release that says so (OpenDP, epsilon 1, scale 3,
    a threshold of at least k); the exports after the write, over the same data, differ
    from one another, so no fixed rule reads the write off a difference; the budget runs
    out after exactly four exports although they alternate between two workers, the fifth
    is refused with privacy_budget_exhausted and releases nothing; and each export's log
    entry records its epsilon and the budget state, spent 1, 2, 3, 4 in order."""
    a, b = workers.urls
    with httpx.Client(timeout=60.0) as http:
        for gender in ("f", "m"):
            for _ in range(PER_GENDER):
                _write_profile(http, a, tokens, gender)
        before = _export(http, a, tokens, ANALYST)
        _write_profile(http, b, tokens, "f")  # the write the attacker wants to learn
        after = [_export(http, url, tokens, ANALYST) for url in (b, a, b)]
        refused = _export(http, a, tokens, ANALYST)
        last = max(r.json()["log"]["index"] for r in (before, *after))
        assert http.get(f"{a}/v1/log/proof/{last}").status_code == 200  # in a checkpoint
    answers = [before, *after]
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    bodies = [r.json() for r in answers]
    for n, body in enumerate(bodies, start=1):
        noise = body["noise"]
        assert noise["mechanism"].startswith("opendp:") and noise["epsilon_micro"] == EPSILON
        assert noise["scale_micro"] == 3_000_000 and noise["threshold"] >= BODY["min_subjects"]
        assert noise["budget"]["principal"] == {"spent_micro": n * EPSILON,
                                                "limit_micro": EXPORTS_PER_PERIOD * EPSILON}
        assert {g[0] for g in _numbers(body)} == {"f", "m"}
    releases = [_numbers(body) for body in bodies[1:]]
    assert not releases[0] == releases[1] == releases[2]  # same data, fresh draws
    assert refused.status_code == 403 and refused.json()["code"] == "privacy_budget_exhausted"
    assert "groups" not in refused.json()
    entries = _logged(workers.config, [body["log"]["index"] for body in bodies])
    for n, body in enumerate(bodies, start=1):
        entry = parse_entry(entries[body["log"]["index"]])
        assert entry.type == "export" and entry.body["dp"] == {
            k: v for k, v in body["noise"].items() if k != "budget"}
        assert entry.body["budget"]["principal"]["spent_micro"] == n * EPSILON
        assert entry.body["suppressed"] == body["suppressed"]


def test_budget_is_spent_atomically_by_racing_workers(workers: Workers,
                                                      tokens: Tokens) -> None:
    """Issue 11 item 3: twelve exports fired at once at both workers by one principal
    whose budget holds four: exactly four are released, each having spent a distinct
    share (1..4 times epsilon), and eight are refused with privacy_budget_exhausted."""
    a, b = workers.urls

    def one(url: str) -> httpx.Response:
        with httpx.Client(timeout=60.0) as http:
            return _export(http, url, tokens, RACER)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, [a, b] * 6))
    released = [r.json() for r in answers if r.status_code == 200]
    refused = [r.json() for r in answers if r.status_code != 200]
    assert len(released) == EXPORTS_PER_PERIOD, [r.text for r in answers]
    assert sorted(r["noise"]["budget"]["principal"]["spent_micro"] for r in released) == [
        n * EPSILON for n in range(1, EXPORTS_PER_PERIOD + 1)]
    assert {r["code"] for r in refused} == {"privacy_budget_exhausted"}
    assert json.dumps(refused).count('"groups"') == 0
