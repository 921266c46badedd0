"""Benchmark of the bulk counters (issue 14 item 3, 28 CFR 202.205).

Two measurements, each against its baseline in the same run:

1. **Gateway reads, counters on vs off.**  One in-process gateway of a
   development deployment (SQLite store and bulk table, file keys, the real
   sequencer on a temporary directory) whose schema marks ``users.country`` as
   precise geolocation (bench-only).  A covered person (the parent organisation
   in cn) reads ``handle,country`` of 2,000 subjects, through ``Gateway.read``
   (no HTTP: the gateway's own cost).  Rounds alternate the gateway's counters
   on and off (``gateway.bulk``); two phases: the first pass over the subjects
   (every subject new to the counters: one shared-table transaction per read)
   and the steady state (subjects seen before: answered from the worker's
   memory).  Prints reads/s and on/off (target >= 0.9 in the steady state).
2. **The audit recomputing the counters.**  1,000,000 ``access`` entries as
   bench_audit.py makes them (24 principals, 8 of them covered persons in cn
   reading email and phone of a distinct subject each) fed, chunk by chunk, to
   two accelerated inspectors: with the auditor's bulk rules (the demo schema's
   categories) and without.  Prints entries/s of each and their ratio.

Usage: python bench/bench_bulk.py [--entries N] [--reads N] [--only gateway|audit]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_audit import T0, Traffic, principals, reviewer, signer
from bench_gateway import write_config
from bordergate.audit.inspection import open_inspector
from bordergate.audit.rules.bulk import BulkRules, bulk_counters
from bordergate.config import load_config
from bordergate.dsp.bulk import FieldCategories
from bordergate.entries import encode_entry
from bordergate.gateway.auth import TokenIssuer, load_private_key
from bordergate.gateway.startup import open_gateway, provision
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH, default_bundle
from bordergate.policy.entities import Principal
from bordergate.releases.manifest import build_manifest
from bordergate.releases.review import review_body, reviewers_from
from bordergate.residency.schema import demo_schema_path, load_schema

LOCAL = Principal("svc", "ttus", "local", "us", frozenset({"service"}))
PARENT = Principal("eng", "bytedance", "parent", "cn", frozenset({"engineer"}))
SUBJECTS = 2000
CHUNK = 50_000


def gateway_bench(root: Path, reads: int) -> None:
    config = write_config(root)
    schema = demo_schema_path().read_text(encoding="utf-8").replace(
        '[collections.users.fields.country]\nclass = "public"\n',
        '[collections.users.fields.country]\nclass = "public"\n'
        'dsp_category = "precise_geolocation"\n')
    (root / "schema.toml").write_text(schema, encoding="utf-8")
    config.write_text(config.read_text().replace(
        'profile = "development"\n', 'profile = "development"\nschema = "schema.toml"\n')
        + "[dsp.bulk]\nthresholds = { precise_geolocation = 1000000 }\n")
    deployment = load_config(config)
    provision(deployment)
    issuer = TokenIssuer(load_private_key((root / "us" / "issuer.pem").read_bytes()),
                         "https://issuer.bench")
    gateway = open_gateway(deployment, "us")
    counters = gateway.bulk
    assert counters is not None

    def auth(who: Principal) -> str:
        return "Bearer " + issuer.issue(who, audience="us", now=time.time(), ttl=3600)

    async def main() -> None:
        await gateway.announce_start(unreviewed=True, release=None)
        local, parent = auth(LOCAL), auth(PARENT)
        subjects = []
        for n in range(SUBJECTS):
            s = (await gateway.mint_subject(local)).body["subject"]
            await gateway.write(local, "users", s, {"subject": s, "values": {
                "handle": f"h{n}", "email": f"b{n}@example.test", "country": "US",
                "created_at": "2024-01-01T00:00:00Z"}}, purpose="operations")
            subjects.append(s)

        async def round_(ids: list[str], on: bool) -> float:
            gateway.bulk = counters if on else None
            t = time.perf_counter()
            for s in ids:
                await gateway.read(parent, "users", s, fields="handle,country",
                                   purpose="interoperability")
            return len(ids) / (time.perf_counter() - t)

        # first pass: every subject new to the counters (half on, half off, interleaved)
        half = SUBJECTS // 2
        first_on, first_off = [], []
        for i in range(0, half, 100):
            first_on.append(await round_(subjects[i:i + 100], True))
            first_off.append(await round_(subjects[half + i:half + i + 100], False))
        await round_(subjects[half:], True)  # now every subject is counted
        steady_on, steady_off = [], []
        per = max(200, reads // 10)
        for r in range(10):
            ids = [subjects[(r * per + i) % SUBJECTS] for i in range(per)]
            on_first = r % 2 == 0
            a = await round_(ids, on_first)
            b = await round_(ids, not on_first)
            (steady_on if on_first else steady_off).append(a)
            (steady_off if on_first else steady_on).append(b)
        gateway.bulk = counters
        on, off = sum(first_on) / len(first_on), sum(first_off) / len(first_off)
        print(f"gateway reads, first pass (every subject new: one shared-table claim each): "
              f"on {on:,.0f}/s, off {off:,.0f}/s, on/off {on / off:.2f}")
        on, off = sum(steady_on) / len(steady_on), sum(steady_off) / len(steady_off)
        print(f"gateway reads, steady state (subjects counted before: worker memory): "
              f"on {on:,.0f}/s, off {off:,.0f}/s, on/off {on / off:.2f} (target >= 0.9)")

    try:
        asyncio.run(main())
    finally:
        gateway.close()


def head() -> tuple[list[bytes], str, dict[str, str]]:
    """The log's first entries as bench_audit.py writes them: a reviewed release, the
    gateway's start, and the support engineers' granted approvals."""
    manifest = build_manifest(DEFAULT_BUNDLE_PATH, now=T0 - 100, revision=None,
                              dependencies=())
    out = [encode_entry("release", T0 - 100, {"release": manifest.id,
                                              "manifest": manifest.to_json()})]
    for name in ("rev-a", "rev-b"):
        out.append(encode_entry("release-review", T0 - 90, review_body(
            reviewer(name), log=signer().name, release=manifest.id, verdict="approve",
            note="read it", now=T0 - 90)))
    out.append(encode_entry("gateway-start", T0 - 80, {
        "gateway": "us", "release": manifest.id, "reviewed": True, "unreviewed": False,
        "bundle": default_bundle().digest, "origin": signer().name}))
    custodians = [Principal(c, "oracle", "custodian", "us", frozenset({"approver"}))
                  for c in ("carol", "dave")]
    approvals: dict[str, str] = {}
    for i, (principal, purpose, approved) in enumerate(principals()):
        if not approved:
            continue
        aid = "apr-" + format(i, "026d").translate(str.maketrans("0123456789", "abcdefghij"))
        approvals[principal.id] = aid
        out.append(encode_entry("approval-request", T0 - 70, {
            "approval": aid, "requester": principal.to_json(), "purpose": purpose,
            "reason": "ticket", "scope": {"collections": ["users"], "classes": ["protected"]},
            "requested_at": T0 - 70, "expires": T0 + 86400, "gateway": "us",
            "release": None}))
        for j, c in enumerate(custodians):
            out.append(encode_entry("approval-grant", T0 - 69 + j, {
                "approval": aid, "approver": c.to_json(), "approvals": j + 1,
                "state": "granted" if j else "pending", "gateway": "us", "release": None}))
    return out, manifest.id, approvals


def audit_bench(entries: int) -> None:
    first, release, approvals = head()
    traffic = Traffic(release, approvals)
    rules = BulkRules(FieldCategories.from_schema(load_schema(demo_schema_path())))
    settings = {"jurisdiction": "us", "origin": signer().name, "bundles": _bundles(traffic),
                "reviewers": reviewers_from((("rev-a", reviewer("rev-a").verifier().key_string),
                                             ("rev-b", reviewer("rev-b").verifier().key_string)),
                                            2),
                "approvers": ("carol", "dave")}
    with_bulk = open_inspector(**settings, bulk=rules)
    without = open_inspector(**settings)
    for inspector in (with_bulk, without):
        inspector.feed_all(0, first)
    spent = {"with": 0.0, "without": 0.0}
    done = len(first)
    entries += done
    while done < entries:
        chunk = traffic.entries(done, min(CHUNK, entries - done))
        for name, inspector in (("without", without), ("with", with_bulk)):
            t = time.perf_counter()
            inspector.feed_all(done, chunk)
            inspector.flush()  # type: ignore[attr-defined]
            spent[name] += time.perf_counter() - t
        done += len(chunk)
    entries -= len(first)
    with_rate, without_rate = entries / spent["with"], entries / spent["without"]
    counted = bulk_counters(with_bulk.finish())
    biggest = max(counted, key=lambda c: c.peak)
    print(f"audit over {entries:,} access entries: with bulk counters {with_rate:,.0f} "
          f"entries/s, without {without_rate:,.0f} entries/s, ratio "
          f"{with_rate / without_rate:.2f}; {len(counted)} counters, the largest "
          f"{biggest.counterparty} {biggest.counter} at {biggest.peak:,}")


def _bundles(traffic: Traffic) -> object:
    from bordergate.audit.bundlestore import BundleLookup

    engine = traffic.engine
    return lambda d: BundleLookup(d, engine if d == engine.digest else None,
                                  None if d == engine.digest else "bundle_unavailable", "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=4000)
    parser.add_argument("--only", choices=["gateway", "audit"], default=None)
    args = parser.parse_args()
    if args.only != "audit":
        with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
            gateway_bench(Path(tmp), args.reads)
    if args.only != "gateway":
        audit_bench(args.entries)


if __name__ == "__main__":
    main()
