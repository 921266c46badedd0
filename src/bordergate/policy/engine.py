"""Evaluate decision inputs against a policy bundle with cedarpy, and replay them.

``PolicyEngine`` wraps a loaded ``PolicyBundle`` (whose policy set and schema
are parsed once, when it is loaded) and evaluates a batch of
``DecisionInput``s in one ``cedarpy.is_authorized_batch`` call: the gateway
asks one decision per field (or field class) of an HTTP request, in one batch.
Each ``Decision`` names the ``@id`` annotations of the policies that determined
it (the satisfied permits when allowed, the satisfied forbids when denied by a
forbid, none when nothing permitted).  ``replay`` re-evaluates a recorded
decision input, for the audit (DESIGN.md promise 4).

Cedar requests are built only from the decision input, so the input is the
whole truth of the decision.  A request Cedar cannot evaluate (it does not fit
the schema) is denied, never allowed: fail closed.

This module must never read files, clocks or keys; time is ``context.now``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy

from bordergate.errors import ConfigError, VerificationError
from bordergate.policy.bundle import PolicyBundle
from bordergate.policy.entities import (
    ApprovalRequest,
    DecisionInput,
    Field,
    Principal,
    RequestContext,
    Resource,
    Subject,
)

__all__ = ["Decision", "PolicyEngine", "replay"]

_ENTITY_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Decision:
    """The outcome of one decision.

    Attributes:
        allowed: True only if Cedar answered Allow.
        policy_ids: ``@id`` of the determining policies, sorted.
        errors: Cedar's evaluation or request errors, if any (a decision with
            errors is still a decision; a request that could not be built is a
            deny).
    """

    allowed: bool
    policy_ids: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form recorded next to the decision input."""
        return {
            "allowed": self.allowed,
            "policy_ids": list(self.policy_ids),
            "errors": list(self.errors),
        }


def _entity(uid: str, kind: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return {"uid": {"type": kind, "id": uid}, "attrs": attrs, "parents": []}


def _principal_entity(uid: str, principal: Principal) -> dict[str, Any]:
    return _entity(uid, "Principal", principal.to_json())


def _resource_entity(uid: str, resource: Resource) -> dict[str, Any]:
    return _entity(uid, resource.cedar_type, resource.attributes())


class PolicyEngine:
    """Decides batches of ``DecisionInput``s with one bundle's parsed handles."""

    def __init__(
        self, bundle: PolicyBundle, *, entity_cache_size: int = _ENTITY_CACHE_SIZE
    ) -> None:
        """Wrap ``bundle`` and check that its schema accepts bordergate's requests.

        Args:
            bundle: a loaded bundle.
            entity_cache_size: how many parsed entity sets to keep (an LRU keyed
                by the exact principal and resources, so reuse is exact).

        Raises:
            ConfigError: the bundle's schema cannot type one of bordergate's
                requests (code ``policy_schema_incompatible``).
        """
        self.bundle = bundle
        self._cache: OrderedDict[tuple[object, ...], cedarpy.Entities] = OrderedDict()
        self._cache_size = entity_cache_size
        self._lock = threading.Lock()
        self._self_check()

    @property
    def digest(self) -> str:
        """The bundle digest that every decision entry records."""
        return self.bundle.digest

    def _self_check(self) -> None:
        principal = Principal("self-check", "self-check", "local", "zz", frozenset({"r"}))
        context = RequestContext(purpose="self_check", now=0, gateway="zz", k_min=1, k=1)
        samples = [
            DecisionInput(principal, "read", Field("c", "f", "public", "zz"), context),
            DecisionInput(principal, "write", Field("c", "f", "protected", "zz"), context),
            DecisionInput(principal, "export", Field("c", "f", "restricted", "zz"), context),
            DecisionInput(principal, "erase", Subject("zz"), context),
            DecisionInput(
                principal,
                "approve",
                ApprovalRequest("x", "self_check", frozenset({"c"}), frozenset({"public"}), "zz"),
                context,
            ),
        ]
        for sample, decision in zip(samples, self._evaluate(samples), strict=True):
            if decision.errors:
                raise ConfigError(
                    f"{self.bundle.source}: schema rejects a {sample.action!r} request: "
                    + "; ".join(decision.errors),
                    code="policy_schema_incompatible",
                )

    def _entities(
        self, key: tuple[object, ...], entities: list[dict[str, Any]]
    ) -> cedarpy.Entities:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        handle = cedarpy.Entities.from_json_str(json.dumps(entities), self.bundle.schema)
        with self._lock:
            self._cache[key] = handle
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return handle

    def _evaluate(self, inputs: Sequence[DecisionInput]) -> list[Decision]:
        uids: dict[object, str] = {}
        entities: list[dict[str, Any]] = []
        contexts: dict[RequestContext, str] = {}
        requests: list[dict[str, Any]] = []
        for item in inputs:
            pkey = ("P", item.principal)
            if pkey not in uids:
                uids[pkey] = f"p{len(uids)}"
                entities.append(_principal_entity(uids[pkey], item.principal))
            rkey = ("R", item.resource)
            if rkey not in uids:
                uids[rkey] = f"r{len(uids)}"
                entities.append(_resource_entity(uids[rkey], item.resource))
            context = contexts.get(item.context)
            if context is None:
                context = contexts[item.context] = json.dumps(item.context.to_json())
            requests.append(
                {
                    "principal": {"type": "Principal", "id": uids[pkey]},
                    "action": {"type": "Action", "id": item.action},
                    "resource": {"type": item.resource.cedar_type, "id": uids[rkey]},
                    "context": context,
                }
            )
        try:
            handle = self._entities(tuple(uids), entities)
        except ValueError as exc:
            return [Decision(False, (), (f"entities rejected: {exc}",)) for _ in inputs]
        results = cedarpy.is_authorized_batch(
            requests, self.bundle.policy_set, handle, self.bundle.schema
        )
        return [self._decision(result) for result in results]

    def _decision(self, result: cedarpy.AuthzResult) -> Decision:
        diagnostics = result.diagnostics
        ids = tuple(sorted(self.bundle.annotations.get(r, r) for r in diagnostics.reasons))
        errors = tuple(
            e if isinstance(e, str) else json.dumps(e, sort_keys=True) for e in diagnostics.errors
        )
        return Decision(result.decision == cedarpy.Decision.Allow, ids, errors)

    def decide_many(self, inputs: Sequence[DecisionInput]) -> list[Decision]:
        """Decide a batch (e.g. every field of one HTTP request) in one Cedar call.

        Args:
            inputs: the decision inputs; purposes must be declared in the bundle.

        Returns:
            One ``Decision`` per input, in order.

        Raises:
            InvalidInput: an input names an undeclared purpose
                (code ``unknown_purpose``); nothing is decided.
        """
        for item in inputs:
            self.bundle.purpose(item.context.purpose)
        if not inputs:
            return []
        return self._evaluate(inputs)

    def decide(self, item: DecisionInput) -> Decision:
        """Decide one input (``decide_many`` with one element).

        Raises:
            InvalidInput: the purpose is not declared (code ``unknown_purpose``).
        """
        return self.decide_many([item])[0]


def replay(
    bundle: PolicyBundle,
    recorded: DecisionInput | Mapping[str, Any],
    *,
    recorded_digest: str | None = None,
) -> Decision:
    """Re-evaluate a recorded decision input with ``bundle``, as an auditor does.

    Args:
        bundle: the bundle the entry names (load it by its digest).
        recorded: the ``DecisionInput`` or its recorded JSON form.
        recorded_digest: the bundle digest in the entry; when given it must
            equal ``bundle.digest``.

    Returns:
        The decision the bundle gives for the recorded input.

    Raises:
        VerificationError: the recorded input is malformed
            (``decision_input_malformed``) or the digests differ
            (``bundle_digest_mismatch``).
        InvalidInput: the recorded purpose is not declared (``unknown_purpose``).
        ConfigError: the bundle's schema is incompatible.
    """
    if recorded_digest is not None and recorded_digest != bundle.digest:
        raise VerificationError(
            f"entry names bundle {recorded_digest}, replaying with {bundle.digest}",
            code="bundle_digest_mismatch",
        )
    item = recorded if isinstance(recorded, DecisionInput) else DecisionInput.from_json(recorded)
    return _engine_for(bundle).decide(item)


_ENGINES: dict[int, tuple[PolicyBundle, PolicyEngine]] = {}


def _engine_for(bundle: PolicyBundle) -> PolicyEngine:
    found = _ENGINES.get(id(bundle))
    if found is not None and found[0] is bundle:
        return found[1]
    engine = PolicyEngine(bundle, entity_cache_size=64)
    if len(_ENGINES) >= 16:
        _ENGINES.clear()
    _ENGINES[id(bundle)] = (bundle, engine)
    return engine
