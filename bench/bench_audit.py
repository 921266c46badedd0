"""Benchmark of `bordergate audit run` (issue 7): a fresh audit of a 1,000,000-entry log.

Builds a log of realistic ``access`` entries (a reviewed release and gateway start,
then reads by 24 principals at home and abroad, Zipf-weighted, four field sets,
four purposes, about 2,000 requests per second of log time, with and without a
valid approval) in a temporary directory with the real sequencer.  Decision lists
are made by the real engine and entry builder (``decision_records``,
``entries.encode_entry_with``): one entry per distinct request and second, whose
fixed-width subject, record and millisecond fields are then varied per entry
(checked byte for byte against ``encode_entry`` on a sample).

Then, in the same run:

* the log-level check alone (:func:`audit_log`: signature, full rebuild of every
  tile from the entries, root compared), fresh state;
* the whole audit, end to end (:func:`run_audit` + report): the same log check,
  then every entry parsed, every decision replayed with its bundle (batched
  cedarpy calls, one per distinct decision list), approvals, releases, data-flow
  rules, the personal-data scan, state and report written.

The log is what a deployment of issue 12 writes: its checkpoint is cosigned by a
witness the auditor trusts (quorum 1), the gateway-start registers a receipt key,
and every grant carries its approver's signed statement (bench-only keys, fixed
seeds), so the audit finds nothing.  Prints both rates in entries/s and their ratio
(target: >= 50,000 entries/s end to end).  With ``--roster`` (issue 12 item 3) the
log holds two signed roster versions of the identity authority (the second logged
half-way) and every entry that records a principal names the version in force, as
a gateway with a roster writes them: the roster member is one constant per version, so the audit's
caching by entry shape still holds.  Usage:
python bench/bench_audit.py [--entries N] [--roster]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bordergate.approval_statement import (
    ApprovalStatement,
    key_text,
    request_digest,
    sign_statement,
)
from bordergate.audit.auditor_config import parse_auditor_config
from bordergate.audit.logcheck import audit_log
from bordergate.audit.logstate import MemoryStateStore
from bordergate.audit.report import build_report, write_report
from bordergate.audit.run import run_audit
from bordergate.entries import canonical_json, encode_entry, encode_entry_with, format_time
from bordergate.gateway.decisions import access_outcome, decision_records
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH, default_bundle
from bordergate.policy.engine import PolicyEngine
from bordergate.policy.entities import Approval, DecisionInput, Field, Principal, RequestContext
from bordergate.releases.manifest import build_manifest
from bordergate.releases.review import review_body
from bordergate.tlog.checkpoint import Checkpoint
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.note import NoteSignature, Signer, add_signatures
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, create_log
from bordergate.tlog.storage.fs import FileStorage

CHUNK = 65_536
PER_SECOND = 2000
T0 = 1_800_000_000
CLASSES = {"handle": "public", "created_at": "public", "country": "public",
           "email": "protected", "phone": "protected", "birth_date": "protected",
           "government_id": "restricted"}
FIELD_SETS = [("handle", "created_at"), ("handle", "email", "country"), ("email", "phone"),
              tuple(CLASSES)]
SUBJECT = "subject:" + "0" * 64
RECORD = "record:" + "1" * 64
STAMP = format_time(T0)


def signer() -> Signer:
    return Signer.from_seed("bench.bordergate.example/us", bytes(32))  # bench-only key


def reviewer(name: str) -> Signer:
    return Signer.from_seed(name, name.encode().ljust(32, b"."))  # bench-only keys


def principals() -> list[tuple[Principal, str, bool]]:
    """(principal, purpose, with approval) by traffic weight."""
    out = []
    for i in range(16):
        out.append((Principal(f"svc-{i}", "ttus", "local", "us", frozenset({"service"})),
                    "operations", False))
    for i in range(4):
        out.append((Principal(f"eng-{i}", "bytedance", "parent", "cn",
                              frozenset({"engineer"})), "interoperability", False))
    for i in range(4):
        out.append((Principal(f"sup-{i}", "bytedance", "parent", "cn",
                              frozenset({"support"})), "customer_support", True))
    return out


class Traffic:
    """Entries as the gateway writes them, one template per distinct request and second."""

    def __init__(self, release: str, approvals: dict[str, str]) -> None:
        self.engine = PolicyEngine(default_bundle())
        self.roster: dict[str, str] = {}  # {"roster": digest} of the version in force
        self.release = release
        self.approvals = approvals
        self.who = principals()
        self.weights = [1 / (i + 1) for i in range(len(self.who))]
        self.rnd = random.Random(7)
        self._templates: dict[tuple[int, int, int], bytes] = {}
        self._parts: dict[bytes, tuple[bytes, bytes, bytes, bytes]] = {}

    def template(self, second: int, who: int, fields: int) -> bytes:
        key = (second, who, fields)
        found = self._templates.get(key)
        if found is None:
            self.make_templates([key])
            found = self._templates[key]
        return found

    def make_templates(self, keys: list[tuple[int, int, int]]) -> None:
        """The entries of these (second, principal, field set) requests, decided in one
        batch by the real engine (as decide_many decides each request alone)."""
        requests = []
        for second, who, fields in keys:
            principal, purpose, approved = self.who[who]
            names = {"interoperability": ("handle", "created_at"),
                     "customer_support": ("email", "phone")}.get(purpose, FIELD_SETS[fields])
            approval_id = self.approvals.get(principal.id) if approved else None
            view = Approval(approval_id, principal.id, purpose, frozenset({"users"}),
                            frozenset({"protected"}), True, T0 + 86400,
                            in_scope=True) if approval_id else None
            context = RequestContext(purpose, T0 + second, "us", 50, approval=view)
            inputs = [DecisionInput(principal, "read", Field("users", n, CLASSES[n], "us"),  # type: ignore[arg-type]
                                    context) for n in names]
            requests.append((second, who, fields, principal, purpose, names, approval_id,
                             inputs))
        decided = iter(self.engine.decide_many([i for r in requests for i in r[-1]]))
        for second, who, fields, principal, purpose, names, approval_id, inputs in requests:
            decisions = [next(decided) for _ in inputs]
            decisions_json = canonical_json(decision_records(inputs, decisions))
            body = {"principal": principal.to_json(), "collection": "users",
                    "subject": SUBJECT, "record": RECORD, "purpose": purpose,
                    "bundle": self.engine.digest, "approval": approval_id,
                    "outcome": access_outcome(decisions),
                    "released": sorted(n for n, d in zip(names, decisions, strict=True)
                                       if d.allowed),
                    "gateway": "us", "release": self.release, **self.roster}
            data = encode_entry_with("access", T0 + second, body, {"decisions": decisions_json})
            if second == 0 and who == 0 and fields == 1:  # the shortcut is byte-exact
                assert data == encode_entry("access", T0 + second, {
                    **body, "decisions": decision_records(inputs, decisions)})
                assert decisions == self.engine.decide_many(inputs)  # batching is exact
            self._templates[(second, who, fields)] = data

    def entries(self, first: int, count: int) -> list[bytes]:
        """``count`` entries from number ``first``: a template per request kind and second,
        with its fixed-width subject, record and millisecond fields varied."""
        kinds = self.rnd.choices(range(len(self.who)), self.weights, k=count)
        sets = [self.rnd.randrange(len(FIELD_SETS)) for _ in range(count)]
        if len(self._templates) > 8192:
            self._templates.clear()
        needed = {((first + i) // PER_SECOND, kinds[i], sets[i]) for i in range(count)}
        self.make_templates(sorted(needed - self._templates.keys()))
        out = []
        subject, record = SUBJECT.encode(), RECORD.encode()
        for i in range(count):
            n = first + i
            second, ms = divmod(n, PER_SECOND)
            data = self.template(second, kinds[i], sets[i])
            parts = self._parts.get(data)
            if parts is None:
                a = data.index(record) + 7
                b = data.index(subject) + 8
                c = data.index(b'"time":"') + 8 + 20
                parts = self._parts[data] = (data[:a], data[a + 64:b], data[b + 64:c],
                                             data[c + 3:])
            tag = b"%064x" % n
            out.append(b"".join((parts[0], tag[::-1], parts[1], tag, parts[2],
                                 b"%03d" % (ms * 1000 // PER_SECOND), parts[3])))
            if len(self._parts) > 8192:
                self._parts.clear()
        return out


def approver_key(name: str) -> Ed25519PrivateKey:
    """An approver's own signing key (bench-only, fixed seed)."""
    return Ed25519PrivateKey.from_private_bytes(name.encode().ljust(32, b"."))


def _public(name: str) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return approver_key(name).public_key().public_bytes(serialization.Encoding.Raw,
                                                        serialization.PublicFormat.Raw)


def witness() -> CosignatureSigner:
    """The witness the bench's auditor trusts (bench-only, fixed seed); it cosigns at
    the audit's ``now`` less a minute, so the checkpoint is fresh."""
    return CosignatureSigner("bench.witness/w0", b"witness".ljust(32, b"."),
                             lambda: T0 + 3600 - 60)


def receipt_key() -> str:
    """The gateway's receipt verifier key its gateway-start registers (bench-only)."""
    return Signer.from_seed("us.gateway-receipts", b"receipts".ljust(32, b".")
                            ).verifier().key_string


class _Witnessed:
    """Cosigns every checkpoint the bench's sequencer publishes with :func:`witness`."""

    def cosign(self, note: bytes, checkpoint: Checkpoint,
               prove: Callable[[int], list[bytes]]) -> bytes:
        w = witness()
        return add_signatures(note, [NoteSignature(w.name, w.key_id,
                                                   w.sign(checkpoint.to_text().encode()))])


def authority() -> Signer:
    return Signer.from_seed("us-identity-authority", b"roster".ljust(32, b"."))  # bench-only


def bench_rosters(storage: FileStorage) -> list[Callable[[float], bytes]]:
    """Two roster versions of every principal of the traffic, published beside the log;
    their ``roster`` entries at a given time."""
    from bordergate.roster import Roster, RosterPrincipal, sign_roster
    from bordergate.roster.publication import publish_roster, roster_entry
    from bordergate.roster.signing import RosterSignature
    people = [RosterPrincipal(p.id, p.org, p.org_kind, p.location, p.roles)
              for p, _, _ in principals()]
    people += [RosterPrincipal(c, "oracle", "custodian", "us", frozenset({"approver"}),
                               approver_keys=(_public(c),))
               for c in ("carol", "dave")]
    out = []

    def entry_of(signature: RosterSignature) -> Callable[[float], bytes]:
        return lambda t: roster_entry(signature, t)

    for serial in (1, 2):
        roster = Roster.build(jurisdiction="us", serial=serial, issued=format_time(T0 - 200),
                              principals=people)
        publish_roster(storage, roster)
        out.append(entry_of(sign_roster(roster, authority())))
    return out


def build(folder: Path, n: int, *, with_roster: bool = False) -> tuple[float, str]:
    storage = FileStorage(folder)
    create_log(storage, signer())
    rosters = bench_rosters(storage) if with_roster else []
    member = {"roster": json.loads(rosters[0](0))["roster"]} if rosters else {}
    manifest = build_manifest(DEFAULT_BUNDLE_PATH, now=T0 - 100, revision=None,
                              dependencies=())
    head = [encode_entry("release", T0 - 100, {"release": manifest.id,
                                               "manifest": manifest.to_json()})]
    for name in ("rev-a", "rev-b"):
        head.append(encode_entry("release-review", T0 - 90, review_body(
            reviewer(name), log=signer().name, release=manifest.id, verdict="approve",
            note="read it", now=T0 - 90)))
    head.append(encode_entry("gateway-start", T0 - 80, {
        "gateway": "us", "release": manifest.id, "reviewed": True, "unreviewed": False,
        "bundle": default_bundle().digest, "origin": signer().name,
        "receipt_key": receipt_key()}))
    head += [r(T0 - 75) for r in rosters[:1]]
    custodians = [Principal(c, "oracle", "custodian", "us", frozenset({"approver"}))
                  for c in ("carol", "dave")]
    approvals: dict[str, str] = {}
    for i, (principal, purpose, approved) in enumerate(principals()):
        if not approved:
            continue
        aid = "apr-" + format(i, "026d").translate(str.maketrans("0123456789", "abcdefghij"))
        approvals[principal.id] = aid
        request = encode_entry("approval-request", T0 - 70, {
            "approval": aid, "requester": principal.to_json(), "purpose": purpose,
            "reason": "ticket", "scope": {"collections": ["users"], "classes": ["protected"]},
            "requested_at": T0 - 70, "expires": T0 + 86400, "gateway": "us", "release": None,
            **member})
        head.append(request)
        for j, c in enumerate(custodians):  # each signed on the approver's side
            statement = ApprovalStatement(origin=signer().name, approval=aid,
                                          request=request_digest(request), verdict="grant",
                                          approver=c.id)
            head.append(encode_entry("approval-grant", T0 - 69 + j, {
                "approval": aid, "approver": c.to_json(), "approvals": j + 1,
                "state": "granted" if j else "pending", "gateway": "us", "release": None,
                "statement": sign_statement(statement, approver_key(c.id)).to_json(),
                **member}))
    traffic = Traffic(manifest.id, approvals)
    traffic.roster = member
    t = time.perf_counter()
    with Sequencer(storage, signer(), config=SequencerConfig(checkpoint_interval=5.0),
                   witnessing=_Witnessed()) as seq:
        seq.append_many(head)
        done = len(head)
        futures = []
        while done < n:
            if rosters[1:] and done >= n // 2:  # the authority's second version takes effect
                entry = rosters.pop()(T0 + done // PER_SECOND)
                seq.submit([entry]).result()
                traffic.roster = {"roster": json.loads(entry)["roster"]}
                traffic._templates.clear()
                done += 1
            batch = traffic.entries(done, min(n, done + CHUNK) - done)
            futures.append(seq.submit(batch))
            done += len(batch)
        for f in futures:
            f.result()
        seq.publish(timeout=300)
    storage.close()
    return time.perf_counter() - t, manifest.id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--roster", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        root = Path(tmp)
        log = root / "log"
        built, _ = build(log, args.entries, with_roster=args.roster)
        print(f"built a log of {args.entries:,} entries in {built:.1f} s")
        os.sync()  # the build's writeback must not land in either measurement

        t = time.perf_counter()
        check = audit_log(LogClient(DirectorySource(log), signer().verifier()),
                          MemoryStateStore())
        baseline = time.perf_counter() - t
        assert check.ok and check.size == args.entries, check

        keys = ", ".join(f'{c} = ["{key_text(_public(c))}"]' for c in ("carol", "dave"))
        config = parse_auditor_config(f"""
[auditor]
[logs.us]
location = "{log}"
vkey = "{signer().verifier().key_string}"
reviewers = [{{ name = "rev-a", public_key = "{reviewer('rev-a').verifier().key_string}" }},
             {{ name = "rev-b", public_key = "{reviewer('rev-b').verifier().key_string}" }}]
approvers = ["carol", "dave"]
approver_keys = {{ {keys} }}
roster_authority = ["{authority().verifier().key_string}"]
witnesses = ["{witness().verifier().key_string}"]
quorum = 1
""".encode(), base_dir=root)
        t = time.perf_counter()
        run = run_audit(config, root / "state", now=T0 + 3600)
        report = build_report(run)
        write_report(report, root / "report")
        full = time.perf_counter() - t
        s = report["summary"]
        assert s["entries"] == args.entries and s["logs_verified"] == 1, s
        assert s["findings"] == 0, s["by_kind"]
        print(f"log-level check alone: {args.entries / baseline:,.0f} entries/s "
              f"({baseline:.2f} s)")
        print(f"audit run end to end:  {args.entries / full:,.0f} entries/s ({full:.2f} s; "
              f"{s['decisions_replayed']:,} decisions replayed, 0 findings)")
        print(f"ratio end-to-end / log check alone: {baseline / full:.2f}"
              f"{' (2 roster versions, every entry naming one)' if args.roster else ''}")


if __name__ == "__main__":
    main()
