"""``bordergate audit run`` over a log written by the real gateway (service layer, in
process): a clean run has zero findings, the demo's bad actor gives exactly its three
finding kinds, tampering is caught by the log check before any replay, runs are
incremental, and every finding carries an inclusion proof that verifies against the
audited checkpoint alone (docs/design.md, the auditor; promises 4, 5, 6, 7)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bordergate.audit.auditor_config import load_auditor_config, parse_auditor_config
from bordergate.audit.report import build_report, write_report
from bordergate.audit.run import run_audit
from bordergate.cli import app
from bordergate.errors import ConfigError
from bordergate.releases.publication import bundle_path
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import Checkpoint
from tests.approvers import public_key
from tests.audit.scenario import LOCAL, GatewayScenario


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayScenario]:
    """A us log written by the real gateway: a reviewed start and clean traffic."""
    sc = GatewayScenario(tmp_path_factory.mktemp("audit-run"))
    sc.start()
    asyncio.run(sc.clean_traffic())
    sc.stop()
    yield sc


def audit(sc: GatewayScenario, state: Path) -> dict[str, Any]:
    cfg = load_auditor_config(sc.auditor_config(sc.root / "auditor.toml"))
    return build_report(run_audit(cfg, state))


def test_clean_run_has_zero_findings(scenario: GatewayScenario, tmp_path: Path) -> None:
    """Audit: a clean run of the real gateway gives zero findings; every decision replayed."""
    report = audit(scenario, tmp_path / "state")
    s = report["summary"]
    assert s["findings"] == 0, report["findings"]
    assert s["logs_verified"] == 1 and s["replay_mismatches"] == 0
    assert s["decisions_replayed"] > 20 and s["decisions_not_replayed"] == 0
    assert report["approvals"][0]["approvers"] == ["carol", "dave"]
    assert report["approvals"][0]["uses"] == 1
    assert report["releases"][0]["approved"] and report["gateway_starts"][0]["reviewed"]
    statuses = {c["id"]: c["status"] for c in report["controls"]}
    # only the bulk row, whose counters are not built yet (issue 14 item 3), lacks evidence
    assert [k for k, v in statuses.items() if v == "not evidenced"] == ["dsp-bulk"]
    assert statuses["cisa-org-change"] == "partially evidenced"  # reviewer-signed, with gaps
    assert statuses["dsp-1002-method"] in {"evidenced", "partially evidenced"}


def test_bad_actor_gives_exactly_three_finding_kinds(tmp_path: Path) -> None:
    """The demo's bad actor: a covered person's denied reads, an approval granted by one
    approver, an unreviewed start; exactly one finding of each kind, nothing else, and
    the denied reads are reported as denials, not violations."""
    sc = GatewayScenario(tmp_path / "bad")
    sc.start()
    asyncio.run(sc.clean_traffic())
    denied = asyncio.run(sc.covered_person_attempt())
    approval = asyncio.run(sc.request_for_single_grant())
    sc.stop()
    forged = sc.forged_single_grant(approval)
    gw = sc.start(unreviewed=True)
    asyncio.run(gw.read(sc.auth(LOCAL), "users", "us-rec0", fields=None, purpose="operations"))
    sc.stop()
    report = audit(sc, tmp_path / "state")
    found = {(f["kind"], f["index"], f["category"]) for f in report["findings"]}
    unreviewed = next(s["index"] for s in report["gateway_starts"] if not s["reviewed"])
    assert found == {("covered_person_denied", denied, "denied_attempt"),
                     ("approval_single_approver", forged, "violation"),
                     ("unreviewed_start", unreviewed, "process")}


def test_every_finding_proof_verifies_against_the_checkpoint(tmp_path: Path) -> None:
    """Promise 5: a finding can be shown to anyone holding only the audited checkpoint."""
    sc = GatewayScenario(tmp_path / "proof")
    sc.start(unreviewed=True)
    sc.stop()
    report = audit(sc, tmp_path / "state")
    (finding,) = report["findings"]
    proof = finding["proof"]
    text = report["logs"][0]["checkpoint"]
    cp = Checkpoint.parse(text[: text.index("\n\n") + 1])
    entry = base64.b64decode(proof["entry"])
    leaf = merkle.leaf_hash(entry)
    assert base64.b64encode(leaf).decode() == proof["leaf_hash"]
    merkle.verify_inclusion(leaf, finding["index"], cp.size,
                            [base64.b64decode(h) for h in proof["hashes"]], cp.root)
    assert json.loads(entry)["type"] == "gateway-start"


def test_tampered_entry_is_caught_by_the_log_check_before_replay(tmp_path: Path) -> None:
    """Promise 5: one changed byte in an entry bundle fails the log check; what the check
    read is inspected only as an unverified log (every finding marked), and no state is
    saved."""
    sc = GatewayScenario(tmp_path / "tamper")
    sc.start()
    asyncio.run(sc.clean_traffic())
    sc.stop()
    bundles = [p for p in (sc.log_dir / "tile" / "entries").rglob("*") if p.is_file()]
    bundle = max(bundles, key=lambda p: p.stat().st_size)  # the one the checkpoint covers
    data = bytearray(bundle.read_bytes())
    at = data.index(b'"outcome":"deny"') if b'"outcome":"deny"' in data else \
        data.index(b'"purpose":"operations"')
    data[at + 12] ^= 0x01
    bundle.write_bytes(bytes(data))
    state = tmp_path / "state"
    cfg = load_auditor_config(sc.auditor_config(tmp_path / "auditor.toml"))
    run = run_audit(cfg, state)
    (log,) = run.logs
    assert log.check is not None and not log.check.ok
    assert log.unverified and not log.proofs
    first, *rest = run.findings
    assert first.kind == "log_verification_failed" and not first.unverified
    assert all(f.unverified for f in rest)
    assert not (state / "inspection").exists() or not any((state / "inspection").iterdir())
    assert not any((state / "logs").glob("*.json"))


def test_failed_log_check_still_reports_what_the_log_says(tmp_path: Path) -> None:
    """Issue 12 item 6: an entry rewritten in place (a read by local staff made to say the
    principal was in China) fails the log check, and the audit still reports the
    restricted data the rewritten log says went abroad, marked as from an unverified
    log, without a proof, in report.json and report.html; nothing is saved."""
    from bordergate.tlog.tiles import decode_bundle, join_bundle

    sc = GatewayScenario(tmp_path / "rewritten")
    sc.start()
    asyncio.run(sc.clean_traffic())
    sc.stop()
    for path in (p for p in (sc.log_dir / "tile" / "entries").rglob("*") if p.is_file()):
        width = int(path.name) if path.parent.name.endswith(".p") else 256
        entries = decode_bundle(path.read_bytes(), width)
        hit = [i for i, e in enumerate(entries) if b'"government_id"' in e and
               b'"type":"access"' in e and b'"released":[' in e]
        for i in hit:
            entries[i] = entries[i].replace(b'"location":"us"', b'"location":"cn"')
        if hit:
            path.write_bytes(join_bundle(entries))
    run = run_audit(load_auditor_config(sc.auditor_config(tmp_path / "a.toml")),
                    tmp_path / "state")
    report = build_report(run)
    abroad = [f for f in report["findings"] if f["kind"] == "restricted_released_abroad"]
    assert abroad and all(f["unverified"] and f["proof"] is None for f in abroad)
    assert report["summary"]["verdict"] == "log verification failed"
    assert report["logs"][0]["inspected_unverified"]
    _, html = write_report(report, tmp_path / "out")
    assert "UNVERIFIED log" in html.read_text()
    assert not any((tmp_path / "state" / "logs").glob("*.json"))


def test_runs_are_incremental(tmp_path: Path) -> None:
    """Audit: the state keeps the last verified checkpoint and inspection; the next run
    reads only new entries and keeps the earlier findings."""
    sc = GatewayScenario(tmp_path / "incr")
    sc.start()
    asyncio.run(sc.clean_traffic())
    sc.stop()
    state = tmp_path / "state"
    first = audit(sc, state)
    size = first["logs"][0]["size"]
    sc.start(unreviewed=True)
    sc.stop()
    second = audit(sc, state)
    log = second["logs"][0]
    assert log["previous_size"] == size and log["new_entries"] == log["size"] - size
    assert second["summary"]["entries"] == log["size"]
    assert [f["kind"] for f in second["findings"]] == ["unreviewed_start"]
    third = audit(sc, state)
    assert third["logs"][0]["new_entries"] == 0
    assert [f["kind"] for f in third["findings"]] == ["unreviewed_start"]
    assert third["findings"][0]["proof"] is not None


class DictSource:
    """In-memory bundle store (a LogSource twin)."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def fetch(self, path: str, limit: int) -> bytes | None:
        return self.objects.get(path)


def test_published_bundle_with_the_wrong_content_is_refused() -> None:
    """Promise 4: a bundle published under a digest it does not have is refused, never
    used; the genuine archive is accepted and cached per digest."""
    from bordergate.audit.bundlestore import BundleStore
    from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH, archive_files, default_bundle
    from bordergate.tree_digest import read_tree
    from tests.audit.scenario import permissive_bundle

    digest = default_bundle().digest
    other = dict(read_tree(DEFAULT_BUNDLE_PATH))
    other["policies.cedar"] = b'@id("x")\npermit (principal, action, resource);\n'
    forged = DictSource({bundle_path(digest): archive_files(other.items())})
    refused = BundleStore(forged, use_shipped=False).lookup(digest)
    assert refused.engine is None and refused.code == "bundle_digest_mismatch"
    junk = BundleStore(DictSource({bundle_path(digest): b"junk"}), use_shipped=False)
    assert junk.lookup(digest).code == "bundle_digest_mismatch"
    missing = BundleStore(DictSource({}), use_shipped=False).lookup(digest)
    assert missing.code == "bundle_unavailable"
    genuine = DictSource({bundle_path(digest): archive_files(read_tree(DEFAULT_BUNDLE_PATH))})
    store = BundleStore(genuine, use_shipped=False)
    found = store.lookup(digest)
    assert found.engine is not None and found.engine.digest == digest
    assert store.lookup(digest) is found
    assert permissive_bundle().digest != digest


def test_cli_run_writes_both_reports_and_exits_by_findings(scenario: GatewayScenario,
                                                          tmp_path: Path) -> None:
    """``bordergate audit run`` prints a summary, writes report.json/html, exits 0 when clean;
    the page runs no script but its own."""
    config = scenario.auditor_config(tmp_path / "auditor.toml")
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["audit", "run", "--config", str(config),
                                      "--state", str(tmp_path / "state"), "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert "0 finding(s)" in result.output and str(out / "report.html") in result.output
    doc = json.loads((out / "report.json").read_text())
    assert doc["format"] == "bordergate/audit-report/v1"
    html = (out / "report.html").read_text()
    # one script only (filters and CSV, issue 14), allowed by its hash (test_report_page)
    assert html.count("<script>") == 1 and "script-src 'sha256-" in html


def test_auditor_config_errors_name_the_key(tmp_path: Path) -> None:
    """Configuration: a wrong auditor file names the offending key."""
    cases = {
        b"[logs.us]\nlocation = 'x'\n": "logs.us.vkey",
        b"[logs.us]\nlocation = 'x'\nvkey = 'nope'\n": "logs.us.vkey",
        b"[logs.us]\nlocation = 'x'\nvkey = 'a+b+c'\ntypo = 1\n": "logs.us.typo",
        b"[auditor]\nk_min = 50\n[logs.us]\n": "auditor.k_min",  # the bundle's, not here
        b"": "logs",
    }
    for text, key in cases.items():
        with pytest.raises(ConfigError) as info:
            parse_auditor_config(text, base_dir=tmp_path)
        assert key in str(info.value)


def test_auditor_approver_keys_are_checked(tmp_path: Path,
                                            scenario: GatewayScenario) -> None:
    """Issue 12 item 4, configuration: ``approver_keys`` lists base64 raw Ed25519
    keys per approver; anything else names the key."""
    good = load_auditor_config(scenario.auditor_config(tmp_path / "auditor.toml"))
    assert dict(good.logs["us"].approver_keys)["carol"] == (public_key("carol"),)
    vkey = scenario.signer.verifier().key_string
    for bad in ("['AAAA']", "'AAAA'", "[1]"):
        text = f"[logs.us]\nlocation = 'x'\nvkey = '{vkey}'\napprover_keys = {{ carol = {bad} }}\n"
        with pytest.raises(ConfigError) as info:
            parse_auditor_config(text.encode(), base_dir=tmp_path)
        assert "logs.us.approver_keys.carol" in str(info.value)


def test_report_escapes_untrusted_strings(tmp_path: Path) -> None:
    """Entries are untrusted: a principal id with markup is escaped in report.html."""
    from tests.audit.scenario import EntryFactory

    sc = GatewayScenario(tmp_path / "xss")
    evil = LOCAL.__class__("<script>alert(1)</script>", "ttus", "parent", "cn", frozenset())
    sc.append([EntryFactory().approval_request("apr-" + "a" * 26, evil,
                                               t=__import__("time").time())])
    run = run_audit(load_auditor_config(sc.auditor_config(tmp_path / "a.toml")),
                    tmp_path / "state")
    _, html_path = write_report(build_report(run), tmp_path / "out")
    html = html_path.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def _report_bytes(report_dir: Path) -> bytes:
    """report.json with its generation time (the one wall-clock member) blanked."""
    text = (report_dir / "report.json").read_bytes()
    generated = json.dumps({"generated": json.loads(text)["generated"]})[1:-1].encode()
    assert text.count(generated) == 1
    return text.replace(generated, b'"generated": "-"')


def test_reference_and_default_paths_write_the_same_report(tmp_path: Path) -> None:
    """Issue 10 item 1: `audit run --reference` (the plain inspector) and the default
    (accelerated) path write byte-identical report.json, but for the generation time,
    on a demo-like log: clean traffic, repeated reads, a covered person denied, an
    approval granted by one approver, an unreviewed start."""
    sc = GatewayScenario(tmp_path / "demo-like")
    sc.demo_like_log(reads=300)
    sc.start(unreviewed=True)
    sc.stop()
    config = sc.auditor_config(sc.root / "auditor.toml")
    reports = []
    for name, flags in (("default", []), ("reference", ["--reference"])):
        out = tmp_path / name
        result = CliRunner().invoke(app, ["audit", "run", "--config", str(config), "--state",
                                          str(tmp_path / f"state-{name}"), "--report",
                                          str(out), "--exit-zero", *flags])
        assert result.exit_code == 0, result.output
        reports.append(_report_bytes(out))
    assert reports[0] == reports[1]
    kinds = {f["kind"] for f in json.loads(reports[0])["findings"]}
    assert kinds == {"covered_person_denied", "approval_single_approver", "unreviewed_start"}


def test_report_flows_run_from_the_data_home_to_the_principal(scenario: GatewayScenario,
                                                               tmp_path: Path) -> None:
    """Issue 12 item 6: report.json names a flow's source as the data's home (us) and its
    destination as where the principal is (the parent's engineer in cn), not the
    other way round; report.html labels its columns the same way."""
    report = audit(scenario, tmp_path / "state")
    abroad = [f for f in report["flows"] if f["source"] != f["destination"]]
    assert abroad and {(f["source"], f["destination"]) for f in abroad} == {("us", "cn")}
    _, html = write_report(report, tmp_path / "out")
    assert "data home (source)" in html.read_text()
