"""TEST-ONLY audit scenarios: hand-built decision entries, and real gateway logs.

:class:`EntryFactory` builds entries exactly as the gateway does (real
``DecisionInput``s, decisions from a real engine, ``decision_records`` and
``encode_entry``), with knobs to forge what a compromised gateway would write.
:class:`GatewayScenario` runs the real gateway's service layer in process on a
file-system log (TEST-ONLY keys of tests/gateway/deployment.py and
tests/releases/keys.py) and writes the auditor's configuration for it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bordergate.approval_statement import ApprovalStatement, request_digest, sign_statement
from bordergate.audit.bundlestore import BundleLookup
from bordergate.config import Deployment, load_config
from bordergate.entries import encode_entry
from bordergate.gateway.decisions import access_outcome, decision_records
from bordergate.gateway.service import DeniedAfterLogging, Gateway
from bordergate.gateway.startup import open_gateway
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH, PolicyBundle, default_bundle
from bordergate.policy.engine import Decision, PolicyEngine
from bordergate.policy.entities import (
    Approval,
    DecisionInput,
    Field,
    Principal,
    RequestContext,
    Subject,
)
from bordergate.privacy.budget import BudgetState, period_start
from bordergate.privacy.mechanism import MECHANISM
from bordergate.releases.manifest import build_manifest
from bordergate.releases.publication import publish_bundle
from bordergate.releases.review import review_body
from bordergate.tlog.logdir import read_signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tree_digest import read_tree
from tests.approvers import approver_key, keys_for, public_text, signed_body
from tests.audit.auditlogs import (
    FixedCosigners,
    auditor_witness_lines,
    scenario_witnesses,
    witness_current,
)
from tests.gateway.deployment import Tokens, write_deployment
from tests.releases.keys import reviewer_signer

T = TypeVar("T")

LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
PARENT = Principal("bob", "bytedance", "parent", "cn", frozenset({"engineer"}))
APPROVER1 = Principal("carol", "oracle", "custodian", "us", frozenset({"approver"}))
APPROVER2 = Principal("dave", "oracle", "custodian", "us", frozenset({"approver"}))
APPROVER_IDS = ("carol", "dave")
T0 = 1_800_000_000.0
PSEUDONYM = "subject:" + "ab" * 32
RECORD = "record:" + "cd" * 32
REVIEWERS = ("alice-reviewer", "bob-reviewer")

USERS = {"handle": "public", "email": "protected", "created_at": "public",
         "government_id": "restricted", "phone": "protected", "country": "public"}


def permissive_bundle() -> PolicyBundle:
    """A bundle that permits everything (a bad policy, to test the auditor's own rules)."""
    files = dict(read_tree(DEFAULT_BUNDLE_PATH))
    files["policies.cedar"] = b'@id("allow-everything")\npermit (principal, action, resource);\n'
    # No purpose bindings either: they would add generated forbids (purpose_binding).
    files["purposes.toml"] = re.sub(rb"(?m)^(actions|roles) = .*\n", b"", files["purposes.toml"])
    return PolicyBundle(files.items(), source="<permissive>")


@dataclass
class EntryFactory:
    """Builds decision and approval entries as the gateway writes them (TEST-ONLY)."""

    bundle: PolicyBundle = field(default_factory=default_bundle)
    home: str = "us"
    k_min: int = 25  # the recorded context.k_min: the default bundle's exports.toml
    origin: str = "us.test/log"  # the log approvers' statements name
    # the request digest of each approval requested through this factory
    requests: dict[str, str] = field(default_factory=dict)
    requesters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.engine = PolicyEngine(self.bundle)

    def lookup(self, digest: str) -> BundleLookup:
        """A bundle lookup knowing this factory's bundle and the default one."""
        for b in (self.bundle, default_bundle()):
            if b.digest == digest:
                return BundleLookup(digest, PolicyEngine(b), source="test")
        return BundleLookup(digest, None, "bundle_unavailable", "not in the test store")

    def _decide(self, inputs: list[DecisionInput], forged: Sequence[bool] | None
                ) -> list[Decision]:
        decisions = self.engine.decide_many(inputs)
        if forged is not None:
            decisions = [Decision(a, d.policy_ids if a == d.allowed else ())
                         for a, d in zip(forged, decisions, strict=True)]
        return decisions

    def access(self, principal: Principal, fields: Sequence[str], *, t: float = T0,
               purpose: str = "operations", approval: Approval | None = None,
               forged: Sequence[bool] | None = None, released: Sequence[str] | None = None,
               release: str | None = None, bundle: str | None = None,
               now: int | None = None, extra: dict[str, Any] | None = None) -> bytes:
        context = RequestContext(purpose, int(t) if now is None else now, self.home,
                                 self.k_min, approval=approval)
        inputs = [DecisionInput(principal, "read", Field("users", f, USERS[f], self.home),  # type: ignore[arg-type]
                                context) for f in fields]
        decisions = self._decide(inputs, forged)
        allowed = [f for f, d in zip(fields, decisions, strict=True) if d.allowed]
        body: dict[str, Any] = {
            "principal": principal.to_json(), "collection": "users", "subject": PSEUDONYM,
            "record": RECORD, "purpose": purpose,
            "bundle": bundle or self.bundle.digest,
            "approval": approval.id if approval else None,
            "outcome": access_outcome(decisions),
            "decisions": decision_records(inputs, decisions),
            "released": sorted(allowed if released is None else released),
            "gateway": self.home, "release": release, **(extra or {})}
        return encode_entry("access", t, body)

    def export(self, principal: Principal, group_by: str, k: int, *, t: float = T0,
               forged: Sequence[bool] | None = None, k_min: int | None = None,
               epsilon: int = 1_000_000, spent: tuple[int, int] | None = None,
               limits: tuple[int, int] = (10_000_000, 50_000_000), private: bool = True,
               period: int | None = None) -> bytes:
        """An export entry; an allowed one records its noise and budget (``private``),
        ``spent`` defaulting to ``epsilon`` on both budgets (the period's first export)."""
        context = RequestContext("analytics_aggregate", int(t), self.home,
                                 self.k_min if k_min is None else k_min, k=k)
        inputs = [DecisionInput(principal, "export",
                                Field("users", group_by, USERS[group_by], self.home),  # type: ignore[arg-type]
                                context)]
        decisions = self._decide(inputs, forged)
        body: dict[str, Any] = {
            "principal": principal.to_json(), "collection": "users", "group_by": group_by,
            "purpose": "analytics_aggregate", "bundle": self.bundle.digest, "k": k,
            "outcome": "allow" if decisions[0].allowed else "deny",
            "decisions": decision_records(inputs, decisions), "groups": 2, "suppressed": 0,
            "gateway": self.home, "release": None}
        if private and decisions[0].allowed:
            own, dataset = spent or (epsilon, epsilon)
            body["dp"] = {"mechanism": MECHANISM, "epsilon_micro": epsilon,
                          "delta_exponent": 9, "threshold": max(k, 61),
                          "scale_micro": 3_000_000}
            body["budget"] = BudgetState(
                period_start(t, 86_400) if period is None else period, 86_400, own, limits[0],
                dataset, limits[1]).to_json()
        return encode_entry("export", t, body)

    def erase(self, principal: Principal, *, t: float = T0, purpose: str = "erasure",
              forged: Sequence[bool] | None = None) -> bytes:
        item = DecisionInput(principal, "erase", Subject(self.home),
                             RequestContext(purpose, int(t), self.home, self.k_min))
        decisions = self._decide([item], forged)
        return encode_entry("erase", t, {
            "principal": principal.to_json(), "subject": PSEUDONYM, "purpose": purpose,
            "bundle": self.bundle.digest, "outcome": "allow" if decisions[0].allowed else "deny",
            "decisions": decision_records([item], decisions), "records": 1,
            "gateway": self.home, "release": None})

    def approval_request(self, approval_id: str, requester: Principal, *, t: float = T0,
                         expires: float | None = None, classes: Sequence[str] = ("protected",),
                         purpose: str = "customer_support") -> bytes:
        return self.requested(encode_entry("approval-request", t, {
            "approval": approval_id, "requester": requester.to_json(), "purpose": purpose,
            "reason": "ticket", "scope": {"collections": ["users"], "classes": list(classes)},
            "requested_at": int(t), "expires": int(expires if expires else t + 3600),
            "gateway": self.home, "release": None}))

    def requested(self, entry: bytes) -> bytes:
        """Remember an ``approval-request`` entry's digest (for the statements of its
        changes) and return it."""
        body = json.loads(entry)
        self.requests[body["approval"]] = request_digest(entry)
        self.requesters[body["approval"]] = body["requester"]["id"]
        return entry

    def approval_change(self, kind: str, approval_id: str, who: Principal, *, t: float = T0,
                        state: str = "pending", sign: str | None = "own") -> bytes:
        """A grant, deny or revoke by ``who``, with the statement ``sign`` made: the
        actor's own TEST-ONLY key (``own``), another principal's key (a name), or
        none (None; a revoke by the requester never carries one, as at the gateway)."""
        key = "by" if kind == "approval-revoke" else "approver"
        body: dict[str, Any] = {"approval": approval_id, "state": state, key: who.to_json(),
                                "bundle": self.bundle.digest, "gateway": self.home,
                                "release": None}
        if kind == "approval-grant":
            body["approvals"] = 1
        digest = self.requests.get(approval_id, "sha256:" + "e" * 64)
        requester = kind == "approval-revoke" and self.requesters.get(approval_id) == who.id
        if sign is not None and not requester:
            statement = ApprovalStatement(
                origin=self.origin, approval=approval_id, request=digest,
                verdict=kind.removeprefix("approval-"), approver=who.id)
            signer = approver_key(who.id if sign == "own" else sign)
            body["statement"] = sign_statement(statement, signer).to_json()
        return encode_entry(kind, t, body)


def approval_view(approval_id: str, requester: Principal, *, valid: bool = True,
                  expires: float = T0 + 3600, classes: Sequence[str] = ("protected",),
                  purpose: str = "customer_support", in_scope: bool = True) -> Approval:
    """What the gateway shows the policy for a presented approval (``in_scope``: the
    access stays inside its subjects, records and cap of subjects)."""
    return Approval(approval_id, requester.id, purpose, frozenset({"users"}),
                    frozenset(classes), valid, int(expires), in_scope)


def apr(n: int) -> str:
    """A well-formed approval id (TEST-ONLY, deterministic)."""
    return "apr-" + format(n, "026d").translate(str.maketrans("0123456789", "abcdefghij"))


class GatewayScenario:
    """The real gateway (service layer, in process) writing a file-system log (TEST-ONLY)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.deployment: Deployment = load_config(write_deployment(root))
        self.j = self.deployment.jurisdiction("us")
        self.log_dir = root / "audited-us-log"
        self.signer = read_signer(self.j.log.key_file)
        self.tokens = Tokens()
        storage = FileStorage(self.log_dir)
        create_log(storage, self.signer)
        publish_bundle(storage, read_tree(DEFAULT_BUNDLE_PATH))
        storage.close()
        manifest = build_manifest(DEFAULT_BUNDLE_PATH, now=time.time(), revision=None,
                                  dependencies=())
        self.release = manifest.id
        now = time.time()
        reviews = [encode_entry("release-review", now, review_body(
            reviewer_signer(name), log=self.signer.name, release=manifest.id,
            verdict="approve", note="read every changed file", now=now)) for name in REVIEWERS]
        self.append([encode_entry("release", now, {"release": manifest.id,
                                                   "manifest": manifest.to_json()}), *reviews])
        self.gateway: Gateway | None = None
        self.requested: dict[str, dict[str, Any]] = {}  # approvals asked, as answered

    def append(self, entries: list[bytes]) -> int:
        """Append entries directly (the gateway must be closed)."""
        storage = FileStorage(self.log_dir)
        try:
            with Sequencer(storage, self.signer,
                           witnessing=FixedCosigners(scenario_witnesses())) as seq:
                first = seq.append_many(entries)
                seq.publish(timeout=30)
                return first
        finally:
            storage.close()

    def start(self, *, unreviewed: bool = False) -> Gateway:
        self.gateway = open_gateway(self.deployment, "us", log_storage=FileStorage(self.log_dir))
        self.gateway.approver_keys = keys_for(APPROVER_IDS)  # the roster's (TEST-ONLY)
        self.run(self.gateway.announce_start(
            unreviewed=unreviewed, release=None if unreviewed else self.release))
        return self.gateway

    @staticmethod
    def run(coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine to completion in a fresh event loop on its own thread
        (works even where a loop is running, e.g. beside Playwright's sync API)."""
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    def stop(self) -> None:
        if self.gateway is not None:
            gw = self.gateway
            self.run(gw.log.publish(30))
            gw.close()
            self.gateway = None
            witness_current(self.log_dir)  # the auditor's witnesses saw it grow

    def auth(self, who: Principal) -> str:
        return "Bearer " + self.tokens.token(who, "us")

    def auditor_config(self, path: Path, *, approvers: Sequence[str] = ()) -> Path:
        reviewers = ", ".join(
            f'{{ name = "{n}", public_key = "{reviewer_signer(n).verifier().key_string}" }}'
            for n in REVIEWERS)
        keys = ", ".join(f'{n} = ["{public_text(n)}"]' for n in APPROVER_IDS)
        path.write_text(f"""[auditor]
name = "TEST auditor"
time_tolerance_s = 5

[logs.us]
location = "{self.log_dir}"
vkey = "{self.signer.verifier().key_string}"
reviewers = [{reviewers}]
required_approvals = 2
approvers = {list(approvers)!r}
approver_keys = {{ {keys} }}
{auditor_witness_lines()}""".replace("'", '"'))
        return path

    # -- traffic ------------------------------------------------------------------
    async def clean_traffic(self) -> dict[str, Any]:
        """Ordinary, rule-abiding use: writes, reads at home, public reads from abroad,
        an approved protected read from abroad, an export over k, an erasure."""
        gw = self.gateway
        assert gw is not None
        subjects = []
        for i in range(4):
            s = (await gw.mint_subject(self.auth(LOCAL))).body["subject"]
            await gw.write(self.auth(LOCAL), "users", f"us-rec{i}", purpose="operations",
                           payload={"subject": s, "values": {
                               "handle": f"user{i}", "email": f"user{i}@example.test",
                               "created_at": "2024-01-01T00:00:00Z", "country": "US",
                               "government_id": f"GOV-{i:04d}"}})
            subjects.append(s)
        await gw.read(self.auth(LOCAL), "users", "us-rec0", fields=None, purpose="operations")
        await gw.read(self.auth(PARENT), "users", "us-rec1", fields="handle,created_at",
                      purpose="interoperability")
        req = await gw.request_approval(self.auth(PARENT), {
            "purpose": "customer_support", "reason": "ticket", "collections": ["users"],
            "classes": ["protected"], "max_duration_s": 3600})
        approval = req.body["id"]
        for approver in (APPROVER1, APPROVER2):
            await gw.decide_approval(self.auth(approver), approval, "grant",
                                     signed_body(req.body, "grant", approver.id, gw.origin))
        await gw.read(self.auth(PARENT), "users", "us-rec1", fields="email",
                      purpose="customer_support", approval=approval)
        await gw.export(self.auth(PARENT), {"collection": "users", "group_by": "country",
                                            "purpose": "analytics_aggregate"})
        await gw.erase(self.auth(LOCAL), subjects[3], purpose="erasure")
        return {"approval": approval, "subjects": subjects}

    async def covered_person_attempt(self) -> int:
        """The bad actor: a parent-company principal abroad reads protected and restricted
        fields without an approval (denied; logged)."""
        gw = self.gateway
        assert gw is not None
        try:
            await gw.read(self.auth(PARENT), "users", "us-rec0", fields="email,government_id",
                          purpose="customer_support")
        except DeniedAfterLogging as exc:
            return exc.log_index
        raise AssertionError("the gateway released data to a covered person")

    async def request_for_single_grant(self) -> str:
        gw = self.gateway
        assert gw is not None
        req = await gw.request_approval(self.auth(PARENT), {
            "purpose": "customer_support", "reason": "ticket", "collections": ["users"],
            "classes": ["protected"], "max_duration_s": 3600})
        self.requested[str(req.body["id"])] = dict(req.body)
        return str(req.body["id"])

    def forged_single_grant(self, approval_id: str) -> int:
        """An approval-grant entry declaring the approval granted after ONE approver
        (what a buggy or compromised gateway would write), carrying that approver's
        real signed statement (the one grant they did make)."""
        body = {"approval": approval_id, "state": "granted", "approver": APPROVER1.to_json(),
                "approvals": 1, "bundle": default_bundle().digest, "gateway": "us",
                "release": self.release,
                **signed_body(self.requested[approval_id], "grant", APPROVER1.id,
                              self.signer.name)}
        return self.append([encode_entry("approval-grant", time.time(), body)])

    def demo_like_log(self, *, reads: int) -> None:
        """The demo's story on this scenario's log: clean traffic, ``reads`` repeated
        reads by local staff, a covered person denied, an approval forged as granted
        by one approver (a stopped gateway, then the forged entry)."""
        gw = self.start()

        async def traffic() -> None:
            await self.clean_traffic()
            for _ in range(reads):
                await gw.read(self.auth(LOCAL), "users", "us-rec0", fields=None,
                              purpose="operations")
        asyncio.run(traffic())
        asyncio.run(self.covered_person_attempt())
        approval = asyncio.run(self.request_for_single_grant())
        self.stop()
        self.forged_single_grant(approval)
