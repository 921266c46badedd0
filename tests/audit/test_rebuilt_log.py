"""Logs rebuilt from edited entries and re-signed with the log key, as a malicious log
operator would, against a first audit (no saved state): what the auditor still finds
(issue 12, acceptance: "decisions without a start are found"; promise 6)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.report import build_report
from bordergate.audit.run import run_audit
from bordergate.entries import canonical_json, encode_entry
from bordergate.tlog import merkle
from bordergate.tlog.tiles import TILE_WIDTH, decode_bundle, join_bundle
from tests.audit.auditlogs import witness_current
from tests.audit.rebuilt_log import read_entries, rebuild_log
from tests.audit.scenario import LOCAL, GatewayScenario


def _type(entry: bytes) -> str:
    return str(json.loads(entry)["type"])


def test_decisions_without_a_start_are_found_on_a_first_audit(tmp_path: Path) -> None:
    """Promise 6 (issue 12 item 6): an operator removes an unreviewed gateway's
    ``gateway-start`` from the log (to hide the unreviewed start) and re-signs the
    rebuilt log with the log key; the log verifies on a first audit, but the reads that
    gateway logged name a gateway and release no earlier start names:
    ``decision_without_start`` at the first of them, the rest counted."""
    sc = GatewayScenario(tmp_path / "nostart")
    sc.start()
    asyncio.run(sc.clean_traffic())
    sc.stop()
    gw = sc.start(unreviewed=True)
    for _ in range(3):
        sc.run(gw.read(sc.auth(LOCAL), "users", "us-rec0", fields="handle",
                       purpose="operations"))
    sc.stop()

    def drop_unreviewed_start(entries: list[bytes]) -> list[bytes]:
        return [e for e in entries if not (_type(e) == "gateway-start" and
                                           json.loads(e)["reviewed"] is False)]

    entries = rebuild_log(sc.log_dir, sc.signer, drop_unreviewed_start)
    config = load_auditor_config(sc.auditor_config(tmp_path / "auditor.toml"))
    report = build_report(run_audit(config, tmp_path / "state"))
    assert report["summary"]["logs_verified"] == 1
    found = [f for f in report["findings"] if f["kind"] == "decision_without_start"]
    first_unstarted = next(i for i, e in enumerate(entries) if _type(e) == "access" and
                           json.loads(e)["release"] is None)
    assert [(f["index"], f["repeats"]) for f in found] == [(first_unstarted, 2)]
    assert found[0]["proof"] is not None
    assert "unreviewed_start" not in report["summary"]["by_kind"]


def test_decisions_after_their_start_are_not_flagged(tmp_path: Path) -> None:
    """Promise 6: the same log, not edited (its starts in place), gives no
    ``decision_without_start``: a reviewed and an unreviewed start each cover the
    decisions naming their release."""
    sc = GatewayScenario(tmp_path / "started")
    sc.start()
    asyncio.run(sc.clean_traffic())
    sc.stop()
    gw = sc.start(unreviewed=True)
    sc.run(gw.read(sc.auth(LOCAL), "users", "us-rec0", fields="handle", purpose="operations"))
    sc.stop()
    rebuild_log(sc.log_dir, sc.signer, lambda entries: entries)
    config = load_auditor_config(sc.auditor_config(tmp_path / "auditor.toml"))
    report = build_report(run_audit(config, tmp_path / "state"))
    # re-signed without its witnesses: issue 12.1 reports that, and nothing else is found
    assert set(report["summary"]["by_kind"]) == {"unreviewed_start", "checkpoint_unwitnessed"}


def test_a_log_server_that_changes_a_bundle_after_the_check_hides_no_broken_promise(
        tmp_path: Path) -> None:
    """Promise 3 (found by a review): the log operator promised the key service another
    entry than the one it logged (``key_promise_broken``, critical), and serves the log
    over HTTP from its own process: the honest bundle while the auditor checks the
    log, and one with the promised entry in its place from the second request on.  The
    auditor judges key claims on the bytes it verified (or proves them again), so the
    finding stands; it read the bundle again unproven before, and reported "clean"."""
    sc = GatewayScenario(tmp_path / "two-faced")
    sc.start()
    asyncio.run(sc.clean_traffic())
    sc.stop()
    entries = read_entries(sc.log_dir, sc.signer)
    justified = next(i for i, e in enumerate(entries) if _type(e) == "access" and
                     json.loads(e)["outcome"] == "allow")
    logged = json.loads(entries[justified])
    promised = canonical_json({**logged, "record": "record:" + "ee" * 32})
    sc.append([encode_entry("key-access", time.time(), {
        "jurisdiction": "us", "operation": "read", "subject": logged["subject"],
        "justified": justified, "by": "key-service",
        "leaf": base64.b64encode(merkle.leaf_hash(promised)).decode()})])
    witness_current(sc.log_dir)
    size = len(entries) + 1
    bundle = justified // TILE_WIDTH
    width = min(TILE_WIDTH, size - bundle * TILE_WIDTH)
    path = f"tile/entries/{bundle:03d}" + (f".p/{width}" if width < TILE_WIDTH else "")
    doctored = decode_bundle((sc.log_dir / path).read_bytes(), width)
    doctored[justified % TILE_WIDTH] = promised
    (tmp_path / "doctored").write_bytes(join_bundle(doctored))
    with subprocess.Popen(
            [sys.executable, "-m", "tests.audit.two_faced_log", str(sc.log_dir), path,
             str(tmp_path / "doctored")], stdout=subprocess.PIPE,
            cwd=Path(__file__).parents[2]) as server:
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{int(server.stdout.readline())}"
            config = sc.auditor_config(tmp_path / "auditor.toml")
            config.write_text(config.read_text().replace(f'"{sc.log_dir}"', f'"{url}"'))
            report = build_report(run_audit(load_auditor_config(config), tmp_path / "state"))
        finally:
            server.terminate()
    assert report["summary"]["logs_verified"] == 1
    assert report["summary"]["by_kind"] == {"key_promise_broken": 1}
    assert [f["index"] for f in report["findings"]] == [size - 1]
