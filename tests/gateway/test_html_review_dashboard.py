"""The gateway dashboard, in real headless Chromium against real gateway processes,
when parties other than the custodian write what it shows (HTML review).

The dashboard (``gateway/dashboard.py``, ``web/static/dashboard.js``) is the
custodian's and monitors' live view of the log: how fresh the checkpoint is, which
witnesses cosigned it, which gateways started unreviewed, what approvals wait.  Other
parties write what it reads: witnesses (their cosignature lines and timestamps), the
log operator (the checkpoint note and the entries), the gateway workers sharing the
log (decision entries) and the auditor (``report.json``).  None of them may make the
page claim a witness cosignature that no witness made, nor blank or stop the page for
everyone else's figures.

Each test runs ``bordergate gateway serve`` (and, where the log operator is a
separate party, ``bordergate log sequencer``) as real processes, signs in at
``/login`` with a custodian's token in Chromium (Playwright, /usr/bin/chromium) and
reads the page as a person would.  Keys are TEST-ONLY (tests/gateway/deployment.py).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.config import Jurisdiction, load_config
from bordergate.entries import encode_entry
from bordergate.gateway.dashboard import REPORT_ENV
from bordergate.policy.entities import Principal
from bordergate.tlog.logdir import read_signer
from bordergate.tlog.note import NoteSignature, add_signatures
from bordergate.tlog.sequencer import Sequencer
from bordergate.tlog.storage.fs import FileStorage
from tests.gateway.conftest import (
    start_process,
    start_sequencer_service,
    stop_process,
    wait_healthy,
)
from tests.gateway.deployment import Tokens, free_port, use_sequencer_service, write_deployment

pytestmark = pytest.mark.browser

CUSTODIAN = Principal("carol-ops", "oracle", "custodian", "us", frozenset({"approver"}))


def admin_url(j: Jurisdiction) -> str:
    return f"http://{j.admin_host}:{j.admin_port}"


def sign_in(browser: Any, admin: str) -> tuple[Any, list[str]]:
    """A Chromium page signed in at the admin listener with the custodian's token, on
    the dashboard, and the page's script errors (a list that fills as they happen)."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(5000)
    page.goto(admin + "/login")
    page.fill("#token", Tokens().token(CUSTODIAN, "us"))
    page.click("button[type=submit]")
    page.wait_for_url(admin + "/dashboard/")
    page.wait_for_load_state("load")
    page.wait_for_timeout(2500)  # one poll of data.json (not a timing assertion)
    return page, errors


def wait_for_data(j: Jurisdiction, ready: Any, what: str) -> None:
    """Wait (the bound only stops a hung test) until the dashboard's data satisfies
    ``ready`` (read with the custodian's token)."""
    headers = {"Authorization": "Bearer " + Tokens().token(CUSTODIAN, "us")}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = httpx.get(admin_url(j) + "/dashboard/data.json", headers=headers, timeout=30)
        if r.status_code == 200 and ready(r.json()):
            return
        time.sleep(0.3)
    raise AssertionError(f"gave up waiting: {what}")


def card(page: Any, label: str) -> str:
    """The value of the dashboard card labelled ``label``."""
    for c in page.locator("#cards .card").all():
        if c.locator(".k").inner_text() == label:
            return str(c.locator(".v").inner_text())
    raise AssertionError(f"no card {label!r}")


@dataclass
class Operated:
    config: Path
    j: Jurisdiction
    report: Path
    sequencer: Any

    def go_rogue(self, entries: list[bytes], forged: list[NoteSignature]) -> None:
        """The log operator stops its sequencer service, appends ``entries`` with its
        own log key and publishes, then adds ``forged`` signature lines to the
        published checkpoint (no key needed: the log's signature covers the text)."""
        stop_process(self.sequencer)
        assert self.j.sequencer is not None
        storage = FileStorage(Path(self.j.log.storage))
        try:
            with Sequencer(storage, read_signer(self.j.sequencer.key_file)) as seq:
                seq.append_many(entries)
                seq.publish(timeout=30)
        finally:
            storage.close()
        path = Path(self.j.log.storage) / "checkpoint"
        path.write_bytes(add_signatures(path.read_bytes(), forged))


@pytest.fixture
def operated(tmp_path: Path) -> Iterator[Operated]:
    """The us gateway (a real process) appending through the log operator's sequencer
    service (another real process, the only holder of the log key), with the last
    audit's report read from ``report.json`` (BORDERGATE_AUDIT_REPORT)."""
    config = write_deployment(tmp_path / "deployment")
    port = free_port()
    use_sequencer_service(config, port)
    j = load_config(config).jurisdiction("us")
    report = tmp_path / "report.json"
    sequencer = start_sequencer_service(j, port)
    process = None
    try:
        process = start_process(config, "us", env={REPORT_ENV: str(report)})
        wait_healthy(j.public_url, process)
        yield Operated(config, j, report, sequencer)
    finally:
        if process is not None:
            stop_process(process)
        stop_process(sequencer)


def forged_cosignature(name: str, at: int) -> NoteSignature:
    """A cosignature/v1-shaped line naming witness ``name`` at time ``at``, signed by
    nobody (random key id and signature bytes)."""
    return NoteSignature(name, 0x5EED5EED, struct.pack(">Q", at) + bytes(range(64)))


def release_entry(now: float) -> bytes:
    return encode_entry("release", now, {"release": "rel-operator-test", "manifest": {}})


def test_signature_lines_added_by_the_log_operator_are_not_shown_as_cosignatures(
        browser: Any, operated: Operated) -> None:
    """Witnesses exist because the log operator is not trusted: a checkpoint the
    operator publishes unwitnessed, with signature lines of its own naming the
    auditor's witness at a fresh time, must not read on the dashboard as cosigned by
    that witness.  The cosignature count stays 0 and the line is marked not verified,
    with no cosignature time taken from it."""
    now = int(time.time())
    operated.go_rogue([release_entry(now)],
                      [forged_cosignature("witness.auditor.test/w1", now)])
    wait_for_data(operated.j, lambda d: d["log"]["size"] >= 2, "the operator's checkpoint")
    page, errors = sign_in(browser, admin_url(operated.j))
    try:
        assert card(page, "cosignatures") == "0"
        row = page.locator("#witnesses tr", has_text="witness.auditor.test/w1")
        assert row.count() == 1
        text = row.inner_text()
        assert "not verified" in text
        assert time.strftime("%Y-%m-%d", time.gmtime(now)) not in text
        assert errors == []
    finally:
        page.close()


def test_one_malformed_decision_entry_does_not_take_the_dashboard_down(
        browser: Any, operated: Operated) -> None:
    """An ``access`` entry whose ``decisions`` is not a list (a party that can append
    decision entries: the log operator here, another gateway worker's credential in
    a scale-out) must not turn every load of the dashboard into a 500: the page is
    drawn, counts the entry as malformed, and still shows the later release."""
    now = time.time()
    bad = encode_entry("access", now, {
        "principal": {"id": "mallory", "org": "x", "org_kind": "local", "location": "us",
                      "roles": []},
        "collection": "users", "subject": "subject:" + "0" * 64, "record": "record:" + "0" * 64,
        "purpose": "operations", "bundle": "sha256:" + "0" * 64, "decisions": 5})
    operated.go_rogue([bad, release_entry(now)], [])
    page, errors = sign_in(browser, admin_url(operated.j))
    try:
        assert "malformed" in page.locator("#types").inner_text()
        assert "rel-operator-test" in page.locator("#releases").inner_text()
        assert errors == []
    finally:
        page.close()


def test_an_auditor_report_of_another_shape_does_not_take_the_dashboard_down(
        browser: Any, operated: Operated) -> None:
    """The auditor is a separate party and its ``report.json`` is read as it is: one
    whose findings are not objects, or whose summary is not an object, must not turn
    the dashboard into a 500; the page says the report cannot be read and draws the
    rest."""
    for hostile in ({"summary": {"findings": 1}, "findings": ["not an object"]},
                    {"summary": ["not an object"], "findings": []}):
        operated.report.write_text(json.dumps(hostile))
        page, errors = sign_in(browser, admin_url(operated.j))
        try:
            assert "cannot read the last audit report" in page.locator("#audit").inner_text()
            assert page.locator("#starts tr").count() >= 2
            assert errors == []
        finally:
            page.close()



def test_a_time_out_of_range_in_an_entry_leaves_the_dashboard_whole(
        browser: Any, operated: Operated) -> None:
    """A value the page cannot show must cost that cell, not the page: an allowed
    ``export`` entry (by a party that can append decision entries: the log operator
    here, another gateway worker's credential in a scale-out) whose budget period is
    beyond the range of a date must not stop the script, which would leave every
    section after it empty and the page never polled again (the gateway start and
    the release after the entry hidden from the custodian)."""
    now = time.time()
    export = encode_entry("export", now, {
        "principal": {"id": "mallory", "org": "x", "org_kind": "local", "location": "us",
                      "roles": []},
        "collection": "users", "purpose": "analytics_aggregate",
        "bundle": "sha256:" + "0" * 64, "decisions": [], "k": 25,
        "budget": {"period": 10**16, "period_s": 86400,
                   "principal": {"spent_micro": 1, "limit_micro": 2}}})
    operated.go_rogue([export, release_entry(now)], [])
    page, errors = sign_in(browser, admin_url(operated.j))
    try:
        assert "(not a time)" in page.locator("#budgets").inner_text()
        assert "rel-operator-test" in page.locator("#releases").inner_text()
        assert page.locator("#starts tr").count() >= 2
        assert errors == []
    finally:
        page.close()
