"""The audit's two-CPU path gives exactly the findings and state of the one-CPU path.

`audit run` forks a helper that parses and replays the later part of a large
log (from PARALLEL_MIN new entries).  Here the threshold is lowered so a
log of a few thousand entries, with the demo's bad actor in its later part,
takes that path; the report must equal the sequential one (promises 4, 6, 7).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bordergate.audit import run as audit_run
from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.report import build_report
from tests.audit.scenario import GatewayScenario


def _report(sc: GatewayScenario, state: Path) -> dict[str, Any]:
    cfg = load_auditor_config(sc.auditor_config(sc.root / "auditor.toml"))
    return build_report(audit_run.run_audit(cfg, state))


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {"findings": [(f["kind"], f["index"], f["category"]) for f in report["findings"]],
            "summary": {k: v for k, v in report["summary"].items() if k != "generated"}}


@pytest.mark.slow
def test_forked_helper_finds_exactly_what_one_process_finds(tmp_path: Path) -> None:
    """Promise 4: replay split across two processes changes no finding, index or tally.

    Runs in a fresh interpreter: the audit forks only a single-threaded process,
    and threads other tests leave behind would make it (rightly) stay sequential.
    """
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from tests.audit.test_parallel_inspection "
         "import compare_paths; compare_paths(__import__('pathlib').Path(sys.argv[1]))",
         str(tmp_path)], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "same findings" in proc.stdout


def compare_paths(tmp_path: Path) -> None:
    """Audit one log sequentially and with the forked helper; assert equal reports."""
    monkeypatch = pytest.MonkeyPatch()
    sc = GatewayScenario(tmp_path / "log")
    sc.demo_like_log(reads=1200)

    monkeypatch.setattr(audit_run, "PARALLEL_MIN", 10**9)
    sequential = _report(sc, tmp_path / "state-one")

    started: list[int] = []
    real_start = audit_run._start_helper

    def recording_start(*args: Any) -> Any:
        started.append(args[2])
        return real_start(*args)
    monkeypatch.setattr(audit_run, "PARALLEL_MIN", 256)
    monkeypatch.setattr(audit_run, "_start_helper", recording_start)
    parallel = _report(sc, tmp_path / "state-two")

    assert started, "the two-process path did not run"
    assert sequential["summary"]["entries"] > 1000
    assert _comparable(parallel) == _comparable(sequential)
    kinds = {f["kind"] for f in parallel["findings"]}
    assert {"covered_person_denied", "approval_single_approver"} <= kinds
    monkeypatch.undo()
    print("same findings:", len(parallel["findings"]))
