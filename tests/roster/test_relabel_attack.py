"""Issue 12 item 3, acceptance: a relabelled principal is named by the roster check even
when the log itself verifies and is witnessed.

The attack, as a malicious log operator holding the log key would run it: take the
history in which the parent company's engineer abroad (``bob``, org kind ``parent``,
location ``cn``) was denied a protected field, rebuild it with bob relabelled as local
staff (``ttus``/``local``/``us``), the decision inputs, the decisions and the released
list made consistent (so every decision replays), re-sign the rebuilt log with the log
key and have it cosigned by a witness seeing it for the first time.  The log check
passes and replay finds nothing; only the identity authority's roster, whose version
every decision names, shows that bob is not what the entry says.
"""

from __future__ import annotations

import time
from pathlib import Path

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.report import build_report
from bordergate.audit.run import run_audit
from bordergate.entries import encode_entry
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.policy.entities import Principal
from bordergate.releases.publication import publish_bundle
from bordergate.roster import Roster, RosterPrincipal, sign_roster
from bordergate.roster.publication import publish_roster, roster_entry
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, create_log
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tree_digest import read_tree
from tests.audit.auditlogs import FixedCosigners, roster_auditor_config
from tests.audit.scenario import LOCAL, PARENT, EntryFactory
from tests.roster.test_document import authority_signer
from tests.tlog.witnessed import log_signer, witness_signer

VIOLATIONS = {"decision_mismatch", "decision_input_inconsistent", "released_without_permit",
              "protected_released_abroad_without_approval", "restricted_released_abroad",
              "restricted_released_to_parent"}


def us_roster(now: float) -> Roster:
    """The us identity authority's roster: alice local staff, bob the parent's engineer
    in China, a covered person (28 CFR 202.211(a)(4))."""
    from bordergate.entries import format_time
    return Roster.build(jurisdiction="us", serial=1, issued=format_time(now), principals=[
        RosterPrincipal(LOCAL.id, LOCAL.org, LOCAL.org_kind, LOCAL.location, LOCAL.roles),
        RosterPrincipal(PARENT.id, PARENT.org, PARENT.org_kind, PARENT.location, PARENT.roles,
                        covered_person=True,
                        covered_person_basis="202.211(a)(4): employee of an entity "
                                             "headquartered in a country of concern")])


def write_log(directory: Path, roster: Roster, reader: Principal, now: float) -> None:
    """A witnessed log, signed with the log key: the roster entry, alice's read, and a
    read of email and handle by ``reader`` whose decisions and released list follow
    from the recorded principal (consistent whatever the principal says)."""
    factory = EntryFactory()
    member = {"roster": roster.digest}
    entries = [roster_entry(sign_roster(roster, authority_signer()), now),
               factory.access(LOCAL, ["email", "handle"], t=now + 1, extra=member),
               factory.access(reader, ["email", "handle"], t=now + 2, extra=member)]
    storage = FileStorage(directory)
    create_log(storage, log_signer())
    try:
        publish_bundle(storage, read_tree(DEFAULT_BUNDLE_PATH))
        publish_roster(storage, roster)
        with Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=0.05),
                       witnessing=FixedCosigners([witness_signer(0)])) as seq:
            seq.append_many(entries)
            seq.publish(timeout=30)
    finally:
        storage.close()


def audit(tmp: Path, log_dir: Path) -> dict[str, object]:
    config = roster_auditor_config(tmp / "auditor.toml", log_dir,
                                   authority_signer().verifier().key_string)
    return build_report(run_audit(load_auditor_config(config), tmp / "state"))


def test_relabelled_principal_is_named_by_the_roster_check(tmp_path: Path) -> None:
    """Issue 12 item 3: the rebuilt, re-signed, witnessed log with the parent's engineer
    relabelled as local staff verifies and replays clean, and the roster check names
    the relabelled entry (roster_principal_mismatch at its index)."""
    now = time.time()
    roster = us_roster(now)
    honest, forged = tmp_path / "honest", tmp_path / "forged"
    write_log(honest, roster, PARENT, now)
    relabelled = Principal(PARENT.id, LOCAL.org, "local", "us", PARENT.roles)
    write_log(forged, roster, relabelled, now)

    report = audit(tmp_path / "a1", forged)
    kinds = [(f["kind"], f["index"]) for f in report["findings"]]  # type: ignore[index]
    assert report["summary"]["logs_verified"] == 1  # type: ignore[index]
    assert "log_verification_failed" not in {k for k, _ in kinds}
    assert not VIOLATIONS & {k for k, _ in kinds}, report["findings"]  # replay alone passes it
    assert ("roster_principal_mismatch", 2) in kinds, [f["explanation"] for f in report["findings"]]
    mismatch = next(f for f in report["findings"]  # type: ignore[attr-defined]
                    if f["kind"] == "roster_principal_mismatch")
    assert set(mismatch["detail"]["attributes"]) == {"org", "org_kind", "location"}

    honest_report = audit(tmp_path / "a2", honest)
    assert not any(f["kind"].startswith("roster_")  # type: ignore[attr-defined]
                   for f in honest_report["findings"])  # type: ignore[attr-defined]


def test_roster_signed_by_another_key_is_invalid(tmp_path: Path) -> None:
    """A roster version not signed by the authority the auditor trusts (a foreign
    authority vouching for its own staff) is roster_invalid, never used."""
    now = time.time()
    roster = us_roster(now)
    log_dir = tmp_path / "log"
    storage = FileStorage(log_dir)
    create_log(storage, log_signer())
    try:
        publish_roster(storage, roster)
        with Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=0.05),
                       witnessing=FixedCosigners([witness_signer(0)])) as seq:
            seq.append_many([encode_entry("roster", now, sign_roster(
                roster, authority_signer("cn-identity")).entry_body())])
            seq.publish(timeout=30)
    finally:
        storage.close()
    report = audit(tmp_path, log_dir)
    found = [f for f in report["findings"] if f["kind"] == "roster_invalid"]  # type: ignore[attr-defined]
    assert [f["detail"]["code"] for f in found] == ["roster_unknown_key"]


def test_published_roster_is_served_beside_the_bundles(tmp_path: Path) -> None:
    """The log server answers rosters/sha256-<hex>.json (immutable) and nothing else
    under rosters/, so auditors can fetch a version by URL."""
    import asyncio

    import httpx

    from bordergate.tlog.server import make_log_app

    storage = FileStorage(tmp_path / "log")
    create_log(storage, log_signer())
    roster = us_roster(time.time())
    path = publish_roster(storage, roster)

    async def fetch(*paths: str) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=make_log_app(storage))
        async with httpx.AsyncClient(transport=transport, base_url="http://log") as http:
            return [await http.get(p) for p in paths]

    try:
        found, missing, other = asyncio.run(fetch(
            "/" + path, "/rosters/sha256-" + "0" * 64 + ".json", "/rosters/key-path"))
    finally:
        storage.close()
    assert found.status_code == 200 and found.content == roster.document
    assert "immutable" in found.headers["cache-control"]
    assert missing.status_code == 404 and other.status_code == 404
