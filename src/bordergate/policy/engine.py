"""Evaluate decision inputs against a policy bundle with cedarpy, and replay them.

``PolicyEngine`` wraps a loaded ``PolicyBundle`` (whose policy set and schema
are parsed once, when it is loaded) and evaluates a batch of
``DecisionInput``s in one ``cedarpy.is_authorized_batch`` call: the gateway
asks one decision per field (or field class) of an HTTP request, in one batch.
Each ``Decision`` names the ``@id`` annotations of the policies that determined
it (the satisfied permits when allowed, the satisfied forbids when denied by a
forbid, none when nothing permitted).  ``replay`` re-evaluates a recorded
decision input, for the audit (docs/design.md, promise 4).

Cedar requests are built only from the decision input, so the input is the
whole truth of the decision.  Speed comes from parsing once: the policy set
and schema when the bundle loads, and the entity set (principal, resources,
approval; validated against the schema) once per distinct combination, kept in
an LRU; the small context is the only per-request parse.  Identical inputs in
one batch are evaluated once.  Fail closed: a request Cedar cannot evaluate,
or any policy evaluation error, is a deny, never an allow.

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
    Action,
    Approval,
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
        allowed: True only if Cedar answered Allow without any error.
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


class PolicyEngine:
    """Decides batches of ``DecisionInput``s with one bundle's parsed handles."""

    def __init__(
        self,
        bundle: PolicyBundle,
        *,
        entity_cache_size: int = _ENTITY_CACHE_SIZE,
        validate_requests: bool = False,
    ) -> None:
        """Wrap ``bundle`` and check that its schema accepts bordergate's requests.

        Args:
            bundle: a loaded bundle.
            entity_cache_size: how many parsed entity sets to keep (an LRU keyed
                by the exact principal, resources and approvals, so reuse is exact).
            validate_requests: also validate every request's context against
                the schema at evaluation (slower).  Off by default: entities are
                always validated against the schema when parsed, the context
                shape is fixed by ``RequestContext`` and checked against the
                schema once here, and any evaluation error denies.

        Raises:
            ConfigError: the bundle's schema cannot type one of bordergate's
                requests (code ``policy_schema_incompatible``).
        """
        self.bundle = bundle
        self._cache: OrderedDict[tuple[object, ...], cedarpy.Entities] = OrderedDict()
        self._cache_size = entity_cache_size
        self._lock = threading.Lock()
        self._validate_requests = validate_requests
        self._self_check()

    @property
    def digest(self) -> str:
        """The bundle digest that every decision entry records."""
        return self.bundle.digest

    def _self_check(self) -> None:
        principal = Principal("self-check", "self-check", "local", "zz", frozenset({"r"}))
        approval = Approval(
            "a", "self-check", "self_check", frozenset({"c"}), frozenset({"public"}), True, 1
        )
        bare = RequestContext(purpose="self_check", now=0, gateway="zz", k_min=1)
        full = RequestContext(
            purpose="self_check", now=0, gateway="zz", k_min=1, k=1, approval=approval
        )
        request = ApprovalRequest("x", "self_check", frozenset({"c"}), frozenset({"public"}), "zz")
        resources: list[tuple[Action, Resource]] = [
            ("read", Field("c", "f", "public", "zz")),
            ("write", Field("c", "f", "protected", "zz")),
            ("export", Field("c", "f", "restricted", "zz")),
            ("erase", Subject("zz")),
            ("approve", request),
        ]
        samples = [
            DecisionInput(principal, action, resource, context)
            for action, resource in resources
            for context in (bare, full)
        ]
        for sample, decision in zip(samples, self._evaluate(samples, validate=True), strict=True):
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

    def _evaluate(self, inputs: Sequence[DecisionInput], *, validate: bool) -> list[Decision]:
        uids: dict[object, str] = {}
        entities: list[dict[str, Any]] = []
        contexts: dict[RequestContext, str] = {}
        requests: list[dict[str, Any]] = []

        def uid(kind: str, value: Principal | Resource | Approval) -> str:
            key = (kind, value)
            found = uids.get(key)
            if found is None:
                found = uids[key] = f"e{len(uids)}"
                if isinstance(value, Principal):
                    entities.append(_entity(found, "Principal", value.to_json()))
                elif isinstance(value, Approval):
                    entities.append(_entity(found, "Approval", value.to_json()))
                else:
                    entities.append(_entity(found, value.cedar_type, value.attributes()))
            return found

        for item in inputs:
            principal = uid("Principal", item.principal)
            resource = uid(item.resource.cedar_type, item.resource)
            context = contexts.get(item.context)
            if context is None:
                cedar_context = item.context.to_json()
                if item.context.approval is not None:
                    ref = {"type": "Approval", "id": uid("Approval", item.context.approval)}
                    cedar_context["approval"] = {"__entity": ref}
                context = contexts[item.context] = json.dumps(cedar_context)
            requests.append(
                {
                    "principal": {"type": "Principal", "id": principal},
                    "action": {"type": "Action", "id": item.action},
                    "resource": {"type": item.resource.cedar_type, "id": resource},
                    "context": context,
                }
            )
        try:
            handle = self._entities(tuple(uids), entities)
        except ValueError as exc:
            return [Decision(False, (), (f"entities rejected: {exc}",)) for _ in inputs]
        schema = self.bundle.schema if validate or self._validate_requests else None
        results = cedarpy.is_authorized_batch(requests, self.bundle.policy_set, handle, schema)
        return [self._decision(result) for result in results]

    def _decision(self, result: cedarpy.AuthzResult) -> Decision:
        diagnostics = result.diagnostics
        ids = tuple(sorted(self.bundle.annotations.get(r, r) for r in diagnostics.reasons))
        errors = tuple(
            e if isinstance(e, str) else json.dumps(e, sort_keys=True) for e in diagnostics.errors
        )
        # Fail closed: a policy that errored is skipped by Cedar, which could let a
        # permit win over a forbid that failed to evaluate; any error denies.
        allowed = result.decision == cedarpy.Decision.Allow and not errors
        return Decision(allowed, ids, errors)

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
        keys = [self._evaluation_key(item) for item in inputs]
        unique = dict(zip(keys, inputs, strict=True))
        decided = dict(
            zip(unique, self._evaluate(list(unique.values()), validate=False), strict=True)
        )
        return [decided[key] for key in keys]

    def _evaluation_key(self, item: DecisionInput) -> object:
        """Inputs with equal keys provably get equal decisions, so evaluate one.

        Equal inputs are equal keys; and when no policy reads a field's name,
        fields differing only in name are too (the gateway's one evaluation per
        data class, docs/design.md "A read").
        """
        resource = item.resource
        if isinstance(resource, Field) and not self.bundle.reads_field_name:
            short = (resource.collection, resource.field_class, resource.home)
            return (item.principal, item.action, short, item.context)
        return item

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
