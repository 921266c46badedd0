"""TEST-ONLY seeded generator of audit logs for the differential test (issue 10, item 1).

:class:`LogGenerator` makes, from an integer seed, the entries of one log: honest
traffic and every way the auditor's rules can be broken, mixed at random.  It
covers every finding kind the inspection reports (every kind of
:data:`~bordergate.audit.findings.FINDING_KINDS` but ``log_verification_failed``,
which the log-level check reports), every entry type of
:data:`~bordergate.entries.ENTRY_TYPES`, malformed entries, and bursts of
decision entries that differ only in their pseudonyms and time (and decision
time), which are the accelerated inspector's hot shapes, and both entry
versions: logs written by an earlier release (v1) then upgraded, and v1 entries
amid v2 ones (a downgrade).

Each later issue that adds a rule (or an entry type) extends this generator with a
move that breaks the rule, and tests/audit/test_differential.py checks that the
new kind is produced and that both inspectors agree on it.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Any

from bordergate.appender import stamp
from bordergate.audit.bundlestore import BundleLookup
from bordergate.audit.rosterstore import RosterLookup, RosterStore
from bordergate.audit.rules.bulk import BulkRules
from bordergate.dsp.bulk import FieldCategories, parse_bulk_settings
from bordergate.entries import ENTRY_VERSION, canonical_json, encode_entry, format_time
from bordergate.gateway.decisions import access_outcome, decision_records
from bordergate.keys.bulk import subjects_root
from bordergate.policy.bundle import (
    DEFAULT_BUNDLE_PATH,
    EXPORTS_FILE,
    PolicyBundle,
    default_bundle,
)
from bordergate.policy.engine import PolicyEngine
from bordergate.policy.entities import (
    ApprovalRequest,
    DecisionInput,
    Field,
    Principal,
    RequestContext,
)
from bordergate.releases.manifest import build_manifest
from bordergate.releases.review import review_body
from bordergate.roster import (
    Roster,
    RosterAuthority,
    RosterPrincipal,
    RosterSignature,
    roster_path,
    sign_roster,
)
from bordergate.tlog import merkle
from bordergate.tlog.note import Signer
from bordergate.tree_digest import read_tree
from tests.audit.scenario import (
    APPROVER1,
    APPROVER2,
    LOCAL,
    PARENT,
    RECORD,
    T0,
    USERS,
    EntryFactory,
    approval_view,
    apr,
    permissive_bundle,
)
from tests.releases.keys import reviewer_signer

ORIGIN = "us.test/log"
REVIEWERS = ("alice", "bob")
ABROAD = Principal("erin", "ttus", "local", "de", frozenset({"engineer"}))
PARENT_HOME = Principal("pat", "bytedance", "parent", "us", frozenset({"engineer"}))
OUTSIDER = Principal("mallory", "acme", "vendor", "us", frozenset({"approver"}))
UNKNOWN_BUNDLE = "sha256:" + "0" * 64
# approval_version placeholders of generated access entries, set by LogGenerator.versions
CURRENT_VERSION, STALE_VERSION = -1000, -1001
# a key-access entry's "justified" placeholder: the entry just before it (set by versions()),
# with its true leaf hash or (BROKEN_PROMISE) another one
JUSTIFY_PREVIOUS, BROKEN_PROMISE = -2000, -2001
# a bulk (export) key-access entry's "justified" placeholder: the last export-intent before it
JUSTIFY_INTENT = -2002
TAMPERED_BUNDLE = "sha256:" + "d" * 64
FIELDS = tuple(USERS)
PURPOSES = ("operations", "customer_support", "interoperability", "analytics_aggregate")
Move = Callable[[random.Random], list[bytes]]
#: The append credentials the differential test's auditor expects (issue 12 item 2).
APPENDERS = {"us-gw-1": "gateway", "us-release": "release", "us-custodian": "custodian"}
#: the auditor's bulk rules for generated logs: small thresholds, a one-day window, two
#: devices per subject, a government-related field (issue 14 item 3)
BULK = BulkRules(
    FieldCategories({"users": {
        "email": ("covered_personal_identifiers", False),
        "phone": ("covered_personal_identifiers", False),
        "government_id": ("covered_personal_identifiers", True),
        "country": ("precise_geolocation", False)}}),
    parse_bulk_settings({"thresholds": {"covered_personal_identifiers": 5,
                                        "precise_geolocation": 6},
                         "devices_per_subject": 2, "window_days": 1}))


class LogGenerator:
    """Makes generated logs; holds the factories and the bundle lookup they share."""

    def __init__(self) -> None:
        self.strict = EntryFactory()
        self.permissive = EntryFactory(permissive_bundle())
        # the shipped bundle as released before exports.toml (issue 11): v1 rules only
        legacy = PolicyBundle([(p, b) for p, b in read_tree(DEFAULT_BUNDLE_PATH)
                               if p != EXPORTS_FILE], legacy_k_min=50)
        self.legacy = EntryFactory(legacy)
        self.engines = {default_bundle().digest: PolicyEngine(default_bundle()),
                        self.permissive.bundle.digest: self.permissive.engine,
                        legacy.digest: self.legacy.engine}
        self.manifest = build_manifest(DEFAULT_BUNDLE_PATH, now=T0 - 100, revision=None,
                                       dependencies=())
        self.t = T0
        self.approvals = 0
        self.moves: list[Move] = [
            self.honest_access, self.burst, self.burst, self.write, self.export, self.erase,
            self.forged, self.released_extra, self.permissive_access, self.permissive_export,
            self.low_k_export, self.budget_run, self.unprivate_export, self.covered_person,
            self.unknown_bundle,
            self.tampered_bundle, self.unknown_purpose, self.inconsistent_input,
            self.not_one_request, self.decided_elsewhen, self.personal_data,
            self.approval_story, self.approval_story, self.release_story, self.unreviewed,
            self.key_event, self.migration, self.malformed, self.approval_change_forged,
            self.approval_reach_story, self.approval_refused, self.approval_signature_story,
            self.token_story, self.roster_story, self.appender_story, self.downgraded,
            self.pre_exports_bundle, self.key_access_story, self.key_access_story,
            self.bulk_story, self.bulk_story, self.export_key_story]
        # the identity authority of "us" (TEST-ONLY key) and its published versions
        self.authority_signer = Signer.from_seed("us-identity", b"\x07" * 32)
        self.rosters: list[tuple[Roster, RosterSignature]] = []
        self.published: dict[str, bytes] = {}
        for serial in (1, 2, 3):
            roster = _roster(serial)
            self.rosters.append((roster, sign_roster(roster, self.authority_signer)))
            if serial != 3:  # version 3 is signed but never published
                self.published[roster_path(roster.digest)] = roster.document
        self.roster_store = RosterStore(self, RosterAuthority.from_key_strings(
            "us", [self.authority_signer.verifier().key_string]))

    def fetch(self, path: str, limit: int) -> bytes | None:
        """The bundle store's published roster documents (a ``LogSource``)."""
        return self.published.get(path)

    def roster_lookup(self, signature: RosterSignature) -> RosterLookup:
        """The roster store of generated logs: versions 1 and 2 published."""
        return self.roster_store.lookup(signature)

    def lookup(self, digest: str) -> BundleLookup:
        """The bundle store of generated logs: two bundles, one tampered, one missing."""
        engine = self.engines.get(digest)
        if engine is not None:
            return BundleLookup(digest, engine, source="test",
                                legacy=not engine.bundle.k_min_declared)
        if digest == TAMPERED_BUNDLE:
            return BundleLookup(digest, None, "bundle_digest_mismatch",
                                "the stored bundle does not hash to its digest")
        return BundleLookup(digest, None, "bundle_unavailable", "not in the test store")

    def log(self, seed: int) -> list[bytes]:
        """The entries of generated log number ``seed`` (the same for the same seed)."""
        rng = random.Random(seed)
        self.t = T0 + rng.randrange(0, 10**6)
        entries: list[bytes] = []
        for _ in range(rng.randint(2, 9)):
            entries.extend(rng.choice(self.moves)(rng))
        if rng.random() < 0.15 and len(entries) > 2:  # clock disorder
            i = rng.randrange(1, len(entries))
            entries.insert(i, self.at(entries.pop(i), self.t - rng.choice([3, 30, 3000])))
        if rng.random() < 0.3:  # written by an earlier release (v1), then upgraded (v2)
            cut = rng.randrange(len(entries) + 1)
            entries[:cut] = [self.older(e) for e in entries[:cut]]
        return self.versions(entries)

    @staticmethod
    def older(entry: bytes) -> bytes:
        """The entry as an earlier release wrote it: entry version 1 (issue 12 item 7); a
        malformed entry stays as it is."""
        try:
            body = json.loads(entry)
            if not isinstance(body, dict) or body.get("v") != ENTRY_VERSION:
                return entry
            again = canonical_json({**body, "v": 1})
        except (ValueError, RecursionError):
            return entry
        return again if canonical_json(body) == entry else entry

    def pre_exports_bundle(self, rng: random.Random) -> list[bytes]:
        """Reads and exports under a bundle released before exports.toml: v1 entries
        (replayed with k_min 50, the deployment's then) and v2 ones (which a v2 gateway
        could not have written)."""
        f = self.legacy
        out = [f.export(LOCAL, "country", rng.choice([30, 60]), t=self.tick(rng)),
               f.access(rng.choice([LOCAL, PARENT]), ["handle", "email"], t=self.tick(rng))]
        return [self.older(e) if rng.random() < 0.7 else e for e in out]

    def downgraded(self, rng: random.Random) -> list[bytes]:
        """Entries of version 1 amid version 2 ones (``entry_version_downgrade`` when a
        v2 entry came before), some in bursts of one shape."""
        return [self.older(e) for e in rng.choice([self.honest_access, self.burst,
                                                   self.unreviewed])(rng)]

    @staticmethod
    def versions(entries: list[bytes]) -> list[bytes]:
        """Set the ``approval_version`` placeholders of access entries, now that every
        entry has its index: the index of the approval's last change before the entry
        (what the sequencer lets through), or one before that (a stale one)."""
        changes: dict[str, list[int]] = {}
        out = []
        last_intent: int | None = None
        for index, entry in enumerate(entries):
            try:
                body = json.loads(entry)
            except ValueError:
                body = None
            if isinstance(body, dict) and body.get("type") == "export-intent":
                last_intent = index
            if isinstance(body, dict) and body.get("type") == "export" and \
                    body.get("intent") == JUSTIFY_INTENT and last_intent is not None:
                body["intent"] = last_intent
                out.append(canonical_json(body))
                continue
            if isinstance(body, dict) and body.get("type") == "key-access" and \
                    body.get("justified") == JUSTIFY_INTENT and last_intent is not None:
                body["justified"] = last_intent
                body["leaf"] = base64.b64encode(merkle.leaf_hash(out[last_intent])).decode()
                out.append(canonical_json(body))
                continue
            if isinstance(body, dict) and body.get("type") == "key-access" and \
                    body.get("justified") in (JUSTIFY_PREVIOUS, BROKEN_PROMISE) and out:
                broken = body["justified"] == BROKEN_PROMISE
                body["justified"] = index - 1
                body["leaf"] = base64.b64encode(
                    b"\x00" * 32 if broken else merkle.leaf_hash(out[-1])).decode()
                out.append(canonical_json(body))
                continue
            if not isinstance(body, dict) or not isinstance(body.get("approval"), str):
                out.append(entry)
                continue
            if str(body.get("type")).startswith("approval-"):
                changes.setdefault(body["approval"], []).append(index)
            marker = body.get("approval_version")
            if body.get("type") == "access" and marker in (CURRENT_VERSION, STALE_VERSION):
                seen = changes.get(body["approval"], [])
                last = seen[-1] if seen else 0
                body["approval_version"] = last if marker == CURRENT_VERSION else \
                    (seen[-2] if len(seen) > 1 else last + 1)
                out.append(canonical_json(body))
                continue
            out.append(entry)
        return out

    # -- time -----------------------------------------------------------------------------
    def tick(self, rng: random.Random) -> float:
        self.t += rng.choice([0.001, 0.013, 0.5, 1.0, 2.0, 59.0])
        return round(self.t, 3)

    @staticmethod
    def at(entry: bytes, t: float) -> bytes:
        """The entry with its time (only) moved to ``t``."""
        try:
            body = json.loads(entry)
        except ValueError:
            return entry  # a malformed entry stays as it is
        if not isinstance(body, dict) or not isinstance(body.get("time"), str):
            return entry
        old = json.dumps(body["time"]).encode()
        return entry.replace(b'"time":' + old, b'"time":"' + format_time(t).encode() + b'"')

    # -- decision entries ---------------------------------------------------------------
    def honest_access(self, rng: random.Random) -> list[bytes]:
        who = rng.choice([LOCAL, PARENT, ABROAD])
        fields = rng.sample(FIELDS, rng.randint(1, 4))
        return [self.strict.access(who, fields, t=self.tick(rng),
                                   purpose=rng.choice(PURPOSES[:3]))]

    def burst(self, rng: random.Random) -> list[bytes]:
        """Entries alike but for pseudonyms and time (some also for decision time)."""
        factory = rng.choice([self.strict, self.permissive])
        who = rng.choice([LOCAL, PARENT, ABROAD])
        fields = rng.sample(FIELDS, rng.randint(1, 3))
        out = []
        for _ in range(rng.randint(2, 12)):
            t = self.tick(rng)
            entry = factory.access(who, fields, t=t, purpose="operations")
            out.append(self.pseudonyms(rng, entry))
        return out

    @staticmethod
    def pseudonyms(rng: random.Random, entry: bytes) -> bytes:
        hex_subject = b"%064x" % rng.getrandbits(256)
        hex_record = b"%064x" % rng.getrandbits(256)
        return entry.replace(b"ab" * 32, hex_subject).replace(RECORD[7:].encode(), hex_record)

    def write(self, rng: random.Random) -> list[bytes]:
        factory = rng.choice([self.strict, self.permissive])
        who = rng.choice([LOCAL, PARENT])
        fields = rng.sample(FIELDS, rng.randint(1, 3))
        t = self.tick(rng)
        context = RequestContext("operations", int(t), "us", factory.k_min)
        inputs = [DecisionInput(who, "write", Field("users", f, USERS[f], "us"),  # type: ignore[arg-type]
                                context) for f in fields]
        decisions = factory.engine.decide_many(inputs)
        outcome = access_outcome(decisions)
        if rng.random() < 0.2:
            outcome = "allow"  # released_without_permit when something was denied
        return [self.pseudonyms(rng, encode_entry("write", t, {
            "principal": who.to_json(), "collection": "users", "subject": "subject:" + "ab" * 32,
            "record": RECORD, "purpose": "operations", "bundle": factory.bundle.digest,
            "outcome": outcome, "fields": sorted(fields),
            "decisions": decision_records(inputs, decisions), "gateway": "us",
            "release": None}))]

    def export(self, rng: random.Random) -> list[bytes]:
        return [self.strict.export(rng.choice([LOCAL, PARENT]), rng.choice(["country", "handle"]),
                                   rng.choice([3, 60]), t=self.tick(rng))]

    def erase(self, rng: random.Random) -> list[bytes]:
        return [self.strict.erase(LOCAL, t=self.tick(rng),
                                  forged=[rng.random() < 0.5] if rng.random() < 0.3 else None)]

    def forged(self, rng: random.Random) -> list[bytes]:
        fields = rng.sample(FIELDS, 2)
        return [self.strict.access(PARENT, fields, t=self.tick(rng), purpose="interoperability",
                                   forged=[True, True])]

    def released_extra(self, rng: random.Random) -> list[bytes]:
        return [self.strict.access(LOCAL, ["handle", "email"], t=self.tick(rng),
                                   released=rng.choice([["handle", "email", "phone"],
                                                        ["government_id"]]))]

    def permissive_access(self, rng: random.Random) -> list[bytes]:
        who = rng.choice([PARENT, ABROAD, LOCAL, PARENT_HOME])
        fields = rng.sample(FIELDS, rng.randint(1, 4))
        return [self.permissive.access(who, fields, t=self.tick(rng), purpose="operations")]

    def permissive_export(self, rng: random.Random) -> list[bytes]:
        return [self.permissive.export(LOCAL, rng.choice(["government_id", "email"]),
                                       rng.choice([1, 3, 80]), t=self.tick(rng))]

    def low_k_export(self, rng: random.Random) -> list[bytes]:
        return [self.strict.export(LOCAL, "country", 2, t=self.tick(rng), k_min=1)]

    def budget_run(self, rng: random.Random) -> list[bytes]:
        """Exports of one principal charged to small budgets: some overspend (the log's
        sum passes the recorded limit, or the recorded spent does), some charge a period
        that does not hold their time."""
        who = rng.choice([LOCAL, PARENT])
        epsilon = rng.choice([500_000, 1_000_000])
        limits = (rng.choice([1_000_000, 2_000_000, 3_000_000]), rng.choice([2_000_000, 4_000_000]))
        out = []
        for i in range(rng.randint(1, 4)):
            recorded = (epsilon * (i + 1), epsilon * (i + 1) + rng.choice([0, 0, 1_000_000]))
            out.append(self.strict.export(
                who, rng.choice(["country", "handle"]), 30, t=self.tick(rng), epsilon=epsilon,
                spent=recorded, limits=limits,
                period=0 if rng.random() < 0.1 else None))
        return out

    def unprivate_export(self, rng: random.Random) -> list[bytes]:
        """An allowed export with no noise record, or with a damaged one."""
        entry = self.strict.export(LOCAL, "country", 40, t=self.tick(rng),
                                   private=rng.random() < 0.5)
        if b'"dp":' not in entry:
            return [entry]
        body = json.loads(entry)
        body["dp"]["epsilon_micro"] = rng.choice([0, -1, "1", None])
        return [canonical_json(body)]

    def covered_person(self, rng: random.Random) -> list[bytes]:
        return [self.strict.access(PARENT, ["email", "government_id", "handle"],
                                   t=self.tick(rng), purpose="customer_support")]

    def unknown_bundle(self, rng: random.Random) -> list[bytes]:
        return [self.strict.access(LOCAL, ["handle"], t=self.tick(rng), bundle=UNKNOWN_BUNDLE)
                for _ in range(rng.randint(1, 3))]

    def tampered_bundle(self, rng: random.Random) -> list[bytes]:
        return [self.strict.access(LOCAL, ["email"], t=self.tick(rng), bundle=TAMPERED_BUNDLE)]

    def unknown_purpose(self, rng: random.Random) -> list[bytes]:
        good = json.loads(self.permissive.access(LOCAL, ["handle"], t=self.tick(rng)))
        good["purpose"] = "gossip"
        good["decisions"][0]["input"]["context"]["purpose"] = "gossip"
        return [self.rebuilt(good)]

    def inconsistent_input(self, rng: random.Random) -> list[bytes]:
        """The recorded input describes another request than the entry."""
        body = json.loads(self.strict.access(LOCAL, ["handle"], t=self.tick(rng)))
        change = rng.choice(["purpose", "collection", "gateway", "principal", "approval",
                             "action"])
        if change == "principal":
            body["principal"] = PARENT.to_json()
        elif change == "approval":
            body["decisions"][0]["input"]["context"]["approval"] = \
                approval_view(apr(99), LOCAL).to_json()
        elif change == "action":
            body["decisions"][0]["input"]["action"] = "export"
        else:
            body[change] = {"purpose": "analytics_aggregate", "collection": "orders",
                            "gateway": "de"}[change]
        return [self.rebuilt(body)]

    def not_one_request(self, rng: random.Random) -> list[bytes]:
        """A decision list that does not describe one request (or no decision at all)."""
        body = json.loads(self.strict.access(LOCAL, ["handle", "email"], t=self.tick(rng)))
        how = rng.choice(["empty", "mixed", "junk", "field"])
        if how == "empty":
            body["decisions"] = []
        elif how == "mixed":
            body["decisions"][1]["input"]["context"]["purpose"] = "customer_support"
        elif how == "junk":
            body["decisions"][0] = {"allowed": "yes"}
        else:
            body["decisions"][0]["field"] = "email"
        return [self.rebuilt(body)]

    def decided_elsewhen(self, rng: random.Random) -> list[bytes]:
        t = self.tick(rng)
        return [self.strict.access(LOCAL, ["handle"], t=t, now=int(t) - 600)]

    def personal_data(self, rng: random.Random) -> list[bytes]:
        body = json.loads(self.strict.access(LOCAL, ["handle"], t=self.tick(rng)))
        where = rng.choice(["note", "decision", "both"])
        if where in ("note", "both"):
            body["note"] = rng.choice(["mail alice@example.com", "call +1 415 555 0100"])
        if where in ("decision", "both"):
            body["decisions"][0]["comment"] = "bob@example.org"
        return [self.rebuilt(body)]

    # -- approvals ------------------------------------------------------------------------
    def approval_story(self, rng: random.Random) -> list[bytes]:
        """An approval's life: requested, granted (well or badly), used, closed."""
        self.approvals += 1
        a = apr(self.approvals + rng.randrange(10**6) * 1000)
        f = self.strict
        t0 = self.tick(rng)
        expires = t0 + rng.choice([5, 3600])
        out = [f.approval_request(a, PARENT, t=t0, expires=expires,
                                  classes=rng.choice([("protected",)] * 4 + [("public",)]))]
        if rng.random() < 0.1:
            out.append(out[0])  # the same id again
        grantors = rng.choice([[APPROVER1, APPROVER2], [APPROVER1], [PARENT], [OUTSIDER],
                               [APPROVER1, APPROVER1], [APPROVER1, APPROVER2, APPROVER2], [],
                               []])
        for i, g in enumerate(grantors):
            out.append(f.approval_change("approval-grant", a, g, t=self.tick(rng),
                                         state="granted" if i == len(grantors) - 1 else
                                         "pending"))
        if rng.random() < 0.3:
            out.append(f.approval_change(rng.choice(["approval-revoke", "approval-deny"]), a,
                                         APPROVER1, t=self.tick(rng)))
        if rng.random() < 0.15:
            out.append(f.approval_change("approval-grant", a, APPROVER2, t=self.tick(rng)))
        if rng.random() < 0.2:
            self.t = max(self.t, expires + 1)
        valid = rng.random() < 0.8
        t = self.tick(rng)
        who, purpose = rng.choice([(PARENT, "customer_support")] * 3 +
                                  [(LOCAL, "customer_support"), (PARENT, "interoperability")])
        # the gateway's view of the approval may disagree with the log (a lying gateway)
        shown = expires if rng.random() < 0.5 else t + 3600
        fields = rng.choice([["email"], ["email", "phone"], ["handle"]])
        view = approval_view(a, who, valid=valid, expires=shown, purpose=purpose)
        # decided under the approval's current state (or not recorded: an older gateway),
        # or under a stale one (a gateway that bypassed the sequencer's check)
        version = rng.choice([{}, {"approval_version": CURRENT_VERSION}] * 3 +
                             [{"approval_version": STALE_VERSION},
                              {"approval_version": "junk"}])
        for i in range(rng.choice([1, 1, 3])):  # uses alike but for pseudonyms and time
            out.append(self.pseudonyms(rng, f.access(who, fields, t=t + i * 0.001, now=int(t),
                                                     purpose=purpose, approval=view,
                                                     extra=dict(version))))
        if rng.random() < 0.2:  # a change of an approval never requested
            out.append(f.approval_change("approval-revoke", apr(7), APPROVER1, t=self.tick(rng)))
        if rng.random() < 0.2:  # a use of an approval never requested
            out.append(f.access(PARENT, ["email"], t=self.tick(rng), purpose="customer_support",
                                approval=approval_view(apr(8), PARENT)))
        return out

    def approval_change_forged(self, rng: random.Random) -> list[bytes]:
        """Approval changes carrying a recorded ``approve`` decision, some forged."""
        self.approvals += 1
        a = apr(500_000 + self.approvals)
        f = rng.choice([self.strict, self.permissive])
        t0 = self.tick(rng)
        out = [f.approval_request(a, PARENT, t=t0)]
        for g in (APPROVER1, APPROVER2):
            body = json.loads(f.approval_change("approval-grant", a, g, t=self.tick(rng)))
            item = DecisionInput(g, "approve", ApprovalRequest(
                PARENT.id, "customer_support", frozenset({"users"}), frozenset({"protected"}),
                "us"), RequestContext("customer_support", int(t0), "us", 3))
            decision = f.engine.decide_many([item])[0]
            record = decision_records([item], [decision])[0]
            how = rng.choice(["honest", "forged", "junk", "bundle"])
            if how == "forged":
                record["allowed"] = not record["allowed"]
            elif how == "junk":
                record = {"input": "nothing"}
            elif how == "bundle":
                body["bundle"] = rng.choice([UNKNOWN_BUNDLE, TAMPERED_BUNDLE])
            body["decision"] = record
            out.append(self.rebuilt(body))
        return out

    def approval_reach_story(self, rng: random.Random) -> list[bytes]:
        """An approval narrowed to subjects or records and capped in subjects (issue 11
        item 4), requested within or beyond its bundle's limits, then used on subjects
        inside and outside its scope, past its cap, and on one subject twice."""
        self.approvals += 1
        a = apr(700_000 + self.approvals)
        f = self.strict
        t0 = self.tick(rng)
        subjects = [f"subject:{rng.getrandbits(256):064x}" for _ in range(3)]
        narrowed = rng.choice(["subjects", "records", "none"])
        body = json.loads(f.approval_request(a, PARENT, t=t0))
        body["scope"].update(subjects=subjects[:2] if narrowed == "subjects" else [],
                             records=[RECORD] if narrowed == "records" else [],
                             ticket=rng.choice([None, "T-1234"]))
        body["bundle"] = rng.choice([f.bundle.digest] * 4 + [None, UNKNOWN_BUNDLE])
        body["max_subjects"] = rng.choice([2, 2, 2, None, 1000])
        if rng.random() < 0.3:  # longer than the bundle allows
            body["expires"] = int(t0) + 30 * 3600
        out = [f.requested(self.rebuilt(body))]
        for g in (APPROVER1, APPROVER2):
            out.append(f.approval_change("approval-grant", a, g, t=self.tick(rng),
                                         state="granted" if g is APPROVER2 else "pending"))
        view = approval_view(a, PARENT, expires=t0 + 3600)
        for subject in (subjects[0], subjects[0], subjects[1], subjects[2]):
            t = self.tick(rng)
            use = f.access(PARENT, ["email"], t=t, now=int(t), purpose="customer_support",
                           approval=view)
            out.append(use.replace(b"ab" * 32, subject[8:].encode()))
        return out

    def approval_signature_story(self, rng: random.Random) -> list[bytes]:
        """Approval changes whose approver statement (issue 12 item 4) is missing,
        made with another approver's or an unlisted key, signed for another log or
        request, or malformed; then a read under the approval."""
        self.approvals += 1
        a = apr(800_000 + self.approvals)
        f = self.strict
        t0 = self.tick(rng)
        out = [f.approval_request(a, PARENT, t=t0)]
        for g in (APPROVER1, APPROVER2):
            how = rng.choice(["own", "own", None, "dave", "mallory", "origin", "request",
                              "junk"])
            sign = g.id if how in ("origin", "request", "junk") else how
            body = json.loads(f.approval_change("approval-grant", a, g, t=self.tick(rng),
                                                sign=sign, state="granted"))
            if how == "origin":
                body["statement"] = json.loads(EntryFactory(origin="eu.test/log", requests={
                    a: f.requests[a]}).approval_change("approval-grant", a, g))["statement"]
            elif how == "request":
                body["statement"] = json.loads(f.approval_change(
                    "approval-grant", apr(1), g))["statement"]
                body["statement"]["request"] = "sha256:" + "f" * 64
            elif how == "junk":
                body["statement"] = rng.choice([{"key": 1}, "signed", None])
            out.append(self.rebuilt(body))
        if rng.random() < 0.3:
            out.append(f.approval_change(rng.choice(["approval-revoke", "approval-deny"]), a,
                                         APPROVER1, t=self.tick(rng),
                                         sign=rng.choice(["own", None, "mallory"])))
        t = self.tick(rng)
        out.append(f.access(PARENT, ["email"], t=t, now=int(t), purpose="customer_support",
                            approval=approval_view(a, PARENT, expires=t0 + 3600)))
        return out

    def approval_refused(self, rng: random.Random) -> list[bytes]:
        """Refused approval actions (issue 11 item 5), some malformed."""
        f = self.strict
        a = apr(rng.choice([1, 7, 700_001]))
        body = {"approval": a, "actor": rng.choice([PARENT, OUTSIDER, APPROVER1]).to_json(),
                "action": rng.choice(["grant", "deny", "revoke"]),
                "code": rng.choice(["policy_denied", "approval_not_pending",
                                    "already_granted_by_you"]),
                "requester": rng.random() < 0.5, "bundle": f.bundle.digest,
                "gateway": f.home, "release": None}
        if rng.random() < 0.2:
            body[rng.choice(["action", "code", "actor"])] = rng.choice(["", 3, "steal"])
        return [encode_entry("approval-refused", self.tick(rng), body)]

    # -- releases -------------------------------------------------------------------------
    def release_story(self, rng: random.Random) -> list[bytes]:
        """A release, its reviews (some bad), a gateway start, decisions naming it."""
        m = self.manifest
        t = self.tick(rng)
        rid = m.id if rng.random() < 0.85 else "sha256:" + "9" * 64
        out = [encode_entry("release", t, {"release": rid, "manifest": m.to_json()})]
        if rng.random() < 0.1:
            out.append(out[0])  # proposed again
        if rng.random() < 0.1:
            out.append(encode_entry("release", t, {"release": rid, "manifest": {"x": 1}}))
        reviewers = rng.choice([REVIEWERS, REVIEWERS[:1], (), ("alice", "alice", "bob")])
        for name in reviewers:
            rt = self.tick(rng)
            body = review_body(reviewer_signer(name), log=ORIGIN, release=m.id,
                               verdict="approve", note="read it", now=rt)
            if rng.random() < 0.1:
                body["note"] = "changed after signing"
            out.append(encode_entry("release-review", rt, body))
        if rng.random() < 0.1:
            rt = self.tick(rng)
            out.append(encode_entry("release-review", rt, review_body(
                reviewer_signer("alice"), log=ORIGIN, release="sha256:" + "8" * 64,
                verdict="approve", note="which one", now=rt)))
        start = {"gateway": "us", "release": m.id, "reviewed": True, "unreviewed": False,
                 "bundle": rng.choice([default_bundle().digest] * 3 + [UNKNOWN_BUNDLE]),
                 "origin": ORIGIN}
        if rng.random() < 0.5:  # the gateway's registered receipt key (issue 12, item 5)
            # a key id of digits reads like a phone number: the scan must skip keys
            start["receipt_key"] = ("us.gateway-receipts-TEST-ONLY+12345678+"
                                    "AWhk0nOb2XV5K3vk0tHLOKMCkOJRL0pXtiMhvlEjlbYx")
        out.append(encode_entry("gateway-start", self.tick(rng), start))
        for _ in range(rng.randint(1, 3)):
            out.append(self.pseudonyms(rng, self.strict.access(
                LOCAL, ["handle"], t=self.tick(rng),
                release=rng.choice([m.id, m.id, "sha256:" + "1" * 64]),
                bundle=rng.choice([None, None, self.permissive.bundle.digest]))))
        return out

    def unreviewed(self, rng: random.Random) -> list[bytes]:
        return [encode_entry("gateway-start", self.tick(rng), {
            "gateway": "us", "release": None, "reviewed": False, "unreviewed": True})]

    # -- other entries --------------------------------------------------------------------
    def token_story(self, rng: random.Random) -> list[bytes]:
        """Reads with bearer tokens (``jti``), a ``token-revoke`` of one of them, and
        (sometimes) reads with it after the revocation: ``token_revoked_use``, in
        bursts so the accelerated inspector's hot shapes carry a ``jti`` too."""
        revoked, kept = (f"tok-{rng.getrandbits(64):016x}" for _ in range(2))
        who = rng.choice([LOCAL, ABROAD])
        factory = rng.choice([self.strict, self.permissive])

        def reads(jti: str, n: int) -> list[bytes]:
            return [self.pseudonyms(rng, factory.access(
                who, ["email"], t=self.tick(rng), extra={"jti": jti})) for _ in range(n)]

        out = reads(revoked, rng.randint(1, 4)) + reads(kept, rng.randint(0, 2))
        out.append(encode_entry("token-revoke", self.tick(rng), {
            "jti": revoked, "by": "custodian", "reason": rng.choice(["", "lost"])}))
        if rng.random() < 0.7:
            out += reads(revoked, rng.randint(1, 5))
        return out + reads(kept, rng.randint(0, 3))

    def roster_story(self, rng: random.Random) -> list[bytes]:
        """A ``roster`` entry (sometimes badly signed, unpublished, or a serial that goes
        back), then reads naming it, in bursts: honest ones, a parent-company principal
        abroad relabelled as local staff (decisions made consistent), a principal the
        roster does not list, a read naming an unlogged version, one naming none, and
        reads under the version a later roster entry superseded."""
        roster, signature = rng.choice(self.rosters)
        how = rng.choice(["good", "good", "good", "bad-signature", "malformed"])
        body = signature.entry_body()
        if how == "bad-signature":
            other = sign_roster(self.rosters[0][0], self.authority_signer)
            body["signature"] = other.entry_body()["signature"]
        elif how == "malformed":
            body["serial"] = "one"
        out = [encode_entry("roster", self.tick(rng), body)]
        member = {"roster": roster.digest}
        factory = rng.choice([self.strict, self.permissive])

        def reads(who: Principal, n: int, extra: dict[str, Any]) -> list[bytes]:
            return [self.pseudonyms(rng, factory.access(
                who, ["email"], t=self.tick(rng), extra=extra)) for _ in range(n)]

        out += reads(rng.choice([LOCAL, PARENT, ABROAD]), rng.randint(1, 4), member)
        relabelled = Principal(PARENT.id, "ttus", "local", "us", PARENT.roles)
        choice = rng.choice(["relabel", "unlisted", "unknown", "none", "superseded", "none2"])
        if choice == "relabel":
            out += reads(relabelled, rng.randint(1, 3), member)
        elif choice == "unlisted":
            out += reads(OUTSIDER, 1, member)
        elif choice == "unknown":
            out += reads(LOCAL, rng.randint(1, 2), {"roster": "sha256:" + "9" * 64})
        elif choice == "none":
            out += reads(LOCAL, rng.randint(1, 2), {})
        elif choice == "superseded":
            _, newer = self.rosters[1 if roster.serial == 1 else 0]
            out.append(encode_entry("roster", self.tick(rng), newer.entry_body()))
            out += reads(LOCAL, rng.randint(1, 3), member)
        return out

    def appender_story(self, rng: random.Random) -> list[bytes]:
        """Entries naming their append credential (issue 12 item 2, with
        :data:`APPENDERS` expected): a burst through the gateway's (hot shapes), a
        key event through the custodian's, and at random a credential the auditor
        does not know or one whose role may not write the entry's type."""
        out = [stamp(e, "us-gw-1") for e in self.burst(rng)]
        out += [stamp(e, "us-custodian") for e in self.key_event(rng)]
        how = rng.choice(["unknown", "not_allowed", "honest"])
        if how == "unknown":
            out += [stamp(e, "intruder") for e in self.honest_access(rng)]
        elif how == "not_allowed":
            out += [stamp(e, "us-release") for e in self.honest_access(rng)]
        return out

    def key_access_story(self, rng: random.Random) -> list[bytes]:
        """A data key released by the key service (issue 13): a read decision, then the
        key service's ``key-access`` entry naming it; at random honest, a broken
        promise (``key_promise_broken``), a release for another subject, operation or
        a denied read (``key_access_unjustified``), or a malformed claim."""
        who = rng.choice([LOCAL, PARENT, ABROAD])
        decision = self.strict.access(who, rng.sample(FIELDS, rng.randint(1, 3)),
                                      t=self.tick(rng))
        how = rng.choice(["honest", "honest", "broken", "other_subject", "write",
                          "malformed"])
        subject = "subject:" + ("cd" * 32 if how == "other_subject" else "ab" * 32)
        justified: object = {"broken": BROKEN_PROMISE, "malformed": "x"}.get(
            how, JUSTIFY_PREVIOUS)
        access = encode_entry("key-access", self.tick(rng), {
            "jurisdiction": "us", "operation": "write" if how == "write" else "read",
            "subject": subject, "justified": justified, "leaf": "", "by": "key-service"})
        return [decision, access]

    def bulk_story(self, rng: random.Random) -> list[bytes]:
        """A covered person (the parent organisation in cn) reading categorised fields of
        many subjects, some again, some after the one-day window (issue 14 item 3); and
        the gateway's own ``bulk-threshold`` entry, which the audit does not rely on."""
        fields = rng.sample(["email", "phone", "country", "government_id", "handle"],
                            rng.randint(1, 3))
        factory = rng.choice([self.permissive, self.permissive, self.strict])
        subjects = [b"%064x" % rng.getrandbits(256) for _ in range(rng.randint(2, 9))]
        out = []
        for _ in range(rng.randint(3, 14)):
            if rng.random() < 0.1:
                self.t += 2 * 86_400  # past the window: earlier subjects drop out
            entry = factory.access(PARENT, fields, t=self.tick(rng), purpose="operations")
            out.append(entry.replace(b"ab" * 32, rng.choice(subjects)))
        if rng.random() < 0.3:
            out.append(encode_entry("bulk-threshold", self.tick(rng), {
                "principal": PARENT.to_json(), "collection": "users",
                "purpose": "operations", "subject": "subject:" + "ef" * 32,
                "counters": [{"counterparty": "org:bytedance", "counter": "precise_geolocation",
                              "subjects": 4, "count": 8, "threshold": 6, "action": "deny"}],
                "outcome": "refused", "approval": None, "gateway": "us", "release": None}))
        return out

    def export_key_story(self, rng: random.Random) -> list[bytes]:
        """An export's keys released in bulk by the key service (issue 13): an
        ``export-intent`` over 1-4 subjects, then one ``key-access`` entry (operation
        ``export``) per subject naming it; at random honest, one subject outside the
        intent, one subject fewer than it counts, or a denied intent
        (``key_access_unjustified``)."""
        subjects = ["subject:" + f"{n:02x}" * 32 for n in rng.sample(range(1, 200),
                                                                     rng.randint(1, 4))]
        how = rng.choice(["honest", "honest", "outside", "fewer", "denied"])
        intent = encode_entry("export-intent", self.tick(rng), {
            "principal": LOCAL.to_json(), "collection": "users", "group_by": "email",
            "purpose": "analytics_aggregate", "outcome": "deny" if how == "denied" else "allow",
            "subjects": len(subjects), "root": subjects_root(subjects), "gateway": "us"})
        released = subjects[1:] if how == "fewer" else \
            [*subjects, "subject:" + "ff" * 32] if how == "outside" else subjects
        out = [intent, *(encode_entry("key-access", self.tick(rng), {
            "jurisdiction": "us", "operation": "export", "subject": s,
            "justified": JUSTIFY_INTENT, "leaf": "", "by": "key-service"})
            for s in released)]
        # the export naming it (its index set by versions()): at random for another
        # principal (export_intent_mismatch), or twice (the second one too)
        named = rng.choice(["same", "same", "other", "twice", "none"])
        if named != "none":
            who = PARENT_HOME if named == "other" else LOCAL
            export = json.loads(self.strict.export(who, "email", 50, t=self.tick(rng)))
            export["intent"] = JUSTIFY_INTENT
            out += [canonical_json(export)] * (2 if named == "twice" else 1)
        return out

    def key_event(self, rng: random.Random) -> list[bytes]:
        return [encode_entry("key-event", self.tick(rng), {
            "kind": rng.choice(["data_key_destroyed", "kek_rotated"]), "kek_version": 1,
            "subject": "subject:" + "ef" * 32})]

    def migration(self, rng: random.Random) -> list[bytes]:
        """A migration batch (issue 15): its ``migration`` entries, then (usually) its
        ``legacy-deletion``; sometimes inconsistent (``migration_inconsistent``) or a
        deletion no migration accounts for (``legacy_deletion_unmatched``); sometimes
        the older ``batch``-only shape."""
        batch = rng.randrange(100)
        if rng.random() < 0.2:
            return [encode_entry("migration", self.tick(rng), {"batch": batch})]
        out: list[bytes] = []
        tables: dict[str, dict[str, Any]] = {}
        attempt = rng.choice([1, 1, 2])
        for table in rng.sample(["accounts", "profiles", "payments"], rng.randint(1, 2)):
            collection, t = "users", self.tick(rng)
            records = rng.randint(1, 50)
            fields = sorted(rng.sample(FIELDS, 2))
            context = RequestContext("operations", int(t), "us", self.strict.k_min)
            inputs = [DecisionInput(LOCAL, "write", Field(collection, f, USERS[f], "us"),  # type: ignore[arg-type]
                                    context) for f in fields]
            forged = [rng.random() < 0.9 for _ in fields] if rng.random() < 0.1 else None
            decisions = self.strict._decide(inputs, forged)
            body: dict[str, object] = {
                "batch": batch, "attempt": attempt, "retry": attempt > 1, "table": table,
                "collection": collection, "source": "sqlite", "gateway": "us",
                "legacy_keys": "sha256:" + f"{rng.getrandbits(256):064x}",
                "records": records, "subjects": rng.randint(0, records),
                "new_subjects": 0, "counts": {collection: records},
                "records_root": f"{rng.getrandbits(256):064x}", "fields": fields,
                "dropped": {}, "principal": LOCAL.to_json(), "purpose": "operations",
                "reason": "migration", "bundle": self.strict.bundle.digest,
                "outcome": access_outcome(decisions),
                "decisions": decision_records(inputs, decisions)}
            flaw = rng.random()
            if flaw < 0.1:
                body["retry"] = not body["retry"]
            elif flaw < 0.2:
                body["counts"] = {collection: records + 1}
            elif flaw < 0.25:
                body["outcome"] = "deny"
            out.append(encode_entry("migration", t, body))
            tables[table] = {"rows": records, "legacy_keys": body["legacy_keys"]}
        if rng.random() < 0.8:
            if rng.random() < 0.2:
                name = rng.choice(sorted(tables))
                tables[name] = {**tables[name], "rows": int(tables[name]["rows"]) + 1}
            out.append(encode_entry("legacy-deletion", self.tick(rng), {
                "batch": batch if rng.random() < 0.9 else batch + 1000, "attempt": attempt,
                "retry": attempt > 1, "gateway": "us", "source": "sqlite",
                "rows": sum(int(t["rows"]) for t in tables.values()),
                "tables": tables, "secure_delete": True, "residue": ["backups"]}))
        return out

    def malformed(self, rng: random.Random) -> list[bytes]:
        """An entry the entry parser refuses (or whose decisions are not a list)."""
        entry = bytearray(self.strict.access(LOCAL, ["handle"], t=self.tick(rng)))
        how = rng.choice(["byte", "cut", "space", "decisions", "time", "type"])
        if how == "byte":
            entry[rng.randrange(len(entry))] = rng.randrange(256)
        elif how == "cut":
            del entry[rng.randrange(1, len(entry)):]
        elif how == "space":
            entry = bytearray(entry.replace(b",", b", ", 1))
        elif how == "decisions":
            body = json.loads(entry)
            body["decisions"] = "none"
            return [self.rebuilt(body)]
        elif how == "time":  # a one-digit month, four decimals: not the canonical form
            text = json.loads(entry)["time"]
            entry = bytearray(bytes(entry).replace(text.encode(),
                                                   (text[:5] + text[6:-1] + "0Z").encode()))
        else:
            entry = bytearray(bytes(entry).replace(b'"type":"access"', b'"type":"peek"'))
        return [bytes(entry)]

    @staticmethod
    def rebuilt(body: dict[str, Any]) -> bytes:
        """An entry from a decoded one (keeps its type and time, canonical encoding)."""
        return canonical_json(body)


def _roster(serial: int) -> Roster:
    """TEST-ONLY roster version ``serial`` of "us": the scenario's principals as they
    are (the parent's engineer abroad a covered person), approvers with test keys."""
    listed = [RosterPrincipal(p.id, p.org, p.org_kind, p.location, p.roles)
              for p in (LOCAL, ABROAD, PARENT_HOME)]
    listed.append(RosterPrincipal(PARENT.id, PARENT.org, PARENT.org_kind, PARENT.location,
                                  PARENT.roles, covered_person=True,
                                  covered_person_basis="202.211(a)(4): test"))
    listed += [RosterPrincipal(p.id, p.org, p.org_kind, p.location, p.roles,
                               approver_keys=(bytes([i]) * 32,))
               for i, p in enumerate((APPROVER1, APPROVER2), 1)]
    return Roster.build(jurisdiction="us", serial=serial,
                        issued=format_time(T0 - 1000 + serial), principals=listed)
