"""Policy evaluation throughput: parsed handles + batching vs. naive cedarpy calls.

Workload: the default bundle; 64 principals (local, parent, custodian; at home
and abroad; some with approvals) each asking for one record of 5 fields in 3
classes, i.e. one batch of 5 decisions per HTTP request, as the gateway asks.

Measured in the same run (rates count field decisions; the engine evaluates
one Cedar request per (collection, class) because no default policy reads the
field name, so 5 fields in 3 classes cost 3 Cedar evaluations):
  engine      PolicyEngine.decide_many (PolicySet/Schema handles parsed once,
              one is_authorized_batch per request, parsed-entity LRU cache)
  engine-cold the same with the entity cache disabled (entities parsed per call)
  naive       cedarpy.is_authorized per decision with policy, schema and
              entity text (everything re-parsed every call)
  dict        a Python dict lookup of a precomputed answer (the floor)

Target (issue 5): engine >= 20,000 decisions/s per process.
Run: .venv/bin/python bench/bench_policy.py   (about 10 s)
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable

import cedarpy

from bordergate.policy import (
    Approval,
    DecisionInput,
    Field,
    PolicyEngine,
    Principal,
    RequestContext,
    default_bundle,
)

SECONDS = 2.0
NOW = 1_700_000_000
FIELDS = [
    Field("users", "handle", "public", "us"),
    Field("users", "bio", "public", "us"),
    Field("users", "email", "protected", "us"),
    Field("users", "phone", "protected", "us"),
    Field("users", "tax_id", "restricted", "us"),
]
PURPOSES = ["customer_support", "interoperability", "trust_and_safety", "operations"]


def workload() -> list[list[DecisionInput]]:
    batches = []
    kinds = itertools.cycle(["local", "parent", "custodian", "parent"])
    for n in range(64):
        kind = next(kinds)
        who = Principal(f"p{n}", kind, kind, "us" if n % 3 == 0 else "cn", frozenset({"engineer"}))
        purpose = PURPOSES[n % len(PURPOSES)]
        approval = None
        if n % 2:
            approval = Approval(
                f"a{n}",
                who.id,
                purpose,
                frozenset({"users"}),
                frozenset({"protected"}),
                True,
                NOW + 3600,
            )
        context = RequestContext(
            purpose=purpose, now=NOW, gateway="us", k_min=50, approval=approval
        )
        batches.append([DecisionInput(who, "read", f, context) for f in FIELDS])
    return batches


def measure(
    run_batch: Callable[[list[DecisionInput]], object], batches: list[list[DecisionInput]]
) -> tuple[float, float]:
    """(wall, CPU) decisions per second over about SECONDS (at most 400,000 batches).

    The CPU-time rate is this process's own capacity; the wall rate also
    counts time lost to other processes on the machine.
    """
    for batch in batches[:4]:
        run_batch(batch)
    done = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in itertools.islice(itertools.cycle(batches), 400_000):
        run_batch(batch)
        done += len(batch)
        if time.perf_counter() - wall >= SECONDS:
            break
    return done / (time.perf_counter() - wall), done / (time.process_time() - cpu)


def naive_runner() -> Callable[[list[DecisionInput]], list[bool]]:
    """Per decision: policies, schema and entities as text, all parsed every call."""
    bundle = default_bundle()
    policies, schema = bundle.policies_text, bundle.schema_text

    def run(batch: list[DecisionInput]) -> list[bool]:
        out = []
        for item in batch:
            data = item.to_json()
            resource = {k: v for k, v in data["resource"].items() if k != "type"}
            entities = [
                {
                    "uid": {"type": "Principal", "id": "p"},
                    "attrs": data["principal"],
                    "parents": [],
                },
                {"uid": {"type": "Field", "id": "f"}, "attrs": resource, "parents": []},
            ]
            context = data["context"]
            if "approval" in context:
                entities.append(
                    {
                        "uid": {"type": "Approval", "id": "a"},
                        "attrs": context["approval"],
                        "parents": [],
                    }
                )
                context["approval"] = {"__entity": {"type": "Approval", "id": "a"}}
            request = {
                "principal": 'Principal::"p"',
                "action": f'Action::"{item.action}"',
                "resource": 'Field::"f"',
                "context": context,
            }
            result = cedarpy.is_authorized(request, policies, json.dumps(entities), schema)
            out.append(result.allowed and not result.diagnostics.errors)
        return out

    return run


def main() -> None:
    bundle = default_bundle()
    batches = workload()
    engine = PolicyEngine(bundle)
    cold = PolicyEngine(bundle, entity_cache_size=0)
    naive = naive_runner()

    # The answers must agree before speeds mean anything.
    expected = {
        (b[0].principal, b[0].context, i): d.allowed
        for b in batches
        for i, d in enumerate(engine.decide_many(b))
    }
    for batch in batches:
        assert naive(batch) == [
            expected[(batch[0].principal, batch[0].context, i)] for i in range(5)
        ]
    table = {
        (item.principal, item.context, item.resource): expected[(b[0].principal, b[0].context, i)]
        for b in batches
        for i, item in enumerate(b)
    }

    def by_dict(batch: list[DecisionInput]) -> list[bool]:
        return [table[(item.principal, item.context, item.resource)] for item in batch]

    rates = {
        "engine": measure(engine.decide_many, batches),
        "engine-cold": measure(cold.decide_many, batches),
        "naive": measure(naive, batches),
        "dict": measure(by_dict, batches),
    }
    labels = {
        "engine": "engine (parsed handles, batched, entity cache)",
        "engine-cold": "engine-cold (parsed handles, batched, no cache)",
        "naive": "naive (is_authorized per decision, all text)",
        "dict": "dict lookup (precomputed answers)",
    }
    evaluations = 3 / 5  # Cedar evaluations per field decision in this workload
    print(f"policy bundle {bundle.digest}")
    print(
        f"{len(bundle.policy_ids)} policies; 1 request = 5 fields in 3 classes; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"  {'':<50} {'wall/s':>12} {'CPU/s':>12}")
    for key, (wall, cpu) in rates.items():
        print(f"  {labels[key]:<50} {wall:>12,.0f} {cpu:>12,.0f}")
    for key in ("engine", "engine-cold", "dict"):
        print(
            f"ratio {key} / naive: wall {rates[key][0] / rates['naive'][0]:8.1f}x"
            f"   CPU {rates[key][1] / rates['naive'][1]:8.1f}x"
        )
    wall, cpu = rates["engine"]
    print(
        f"engine Cedar evaluations: {wall * evaluations:,.0f}/s wall, "
        f"{cpu * evaluations:,.0f}/s CPU"
    )
    verdict = "PASS" if cpu >= 20_000 else "FAIL"
    print(
        f"target >= 20,000 decisions/s per process (CPU time): {verdict} "
        f"({cpu:,.0f}/s CPU, {wall:,.0f}/s wall)"
    )


if __name__ == "__main__":
    main()
