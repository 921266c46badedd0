"""The report page's own rules (issue 14, item 5): a few denials stay visible beside
many allowed decisions, the one inline script is the only one the page's CSP allows,
and untrusted strings cannot end the page's JSON block."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from pathlib import Path

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.charts import split_timeline_svg
from bordergate.audit.evidence_package import gather_evidence
from bordergate.audit.report import build_report, write_report
from bordergate.audit.run import run_audit
from tests.audit.scenario import LOCAL, EntryFactory, GatewayScenario


def bar_heights(svg: str, colour: str) -> list[float]:
    return [float(h) for h in re.findall(
        rf'<rect class="bar" [^>]*height="([0-9.]+)" fill="{colour}"', svg)]


def test_four_denials_show_next_to_ten_thousand_allowed() -> None:
    """Decisions over time in two panels on their own scales: 4 denials in one bucket
    beside 10,000 allowed decisions draw a bar as tall as the allowed peak's (on one
    shared scale they would be 0.04% of it, under a pixel)."""
    series = [{"start": f"t{i}", "allowed": 1000, "partial": 0, "denied": 4 if i == 3 else 0}
              for i in range(10)]
    svg = split_timeline_svg(series)
    allowed, denied = bar_heights(svg, "#2f855a"), bar_heights(svg, "#c53030")
    assert sum(int(s["allowed"]) for s in series) == 10_000
    assert len(allowed) == 10 and len(denied) == 1
    assert denied[0] >= 0.5 * max(allowed)


def test_only_the_report_script_runs_and_untrusted_text_stays_in_its_block(
        tmp_path: Path) -> None:
    """The CSP allows exactly the inline script by its SHA-256 (no other script, no
    remote load); a principal id holding '</script>' stays escaped inside the JSON block
    the filters read, so it cannot end it and run."""
    sc = GatewayScenario(tmp_path / "xss")
    evil = LOCAL.__class__("</script><script>alert(1)</script>", "ttus", "parent", "cn",
                           frozenset())
    sc.append([EntryFactory().access(evil, ["email"], t=time.time(),
                                     purpose="customer_support")])
    run = run_audit(load_auditor_config(sc.auditor_config(tmp_path / "a.toml")),
                    tmp_path / "state")
    doc = build_report(run)
    _, html_path = write_report(doc, tmp_path / "out", evidence=gather_evidence(run, doc))
    html = html_path.read_text()
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None
    assert f"script-src 'sha256-{digest}'" in csp.group(1)
    assert "default-src 'none'" in csp.group(1)
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                      html, re.S)
    assert block is not None and "<" not in block.group(1)
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)" in block.group(1)
    assert re.search(r"https?://", scripts[0]) is None
