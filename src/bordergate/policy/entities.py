"""What a policy decision sees: principal, action, resource and context values.

A ``DecisionInput`` is the complete input of one Cedar decision.  Every
attribute the policy can read is a field here and nothing else is, so the
JSON form (``to_json``) stored in the access entry lets an auditor rebuild the
exact request and replay it (docs/design.md, promise 4).  ``from_json`` parses such a
recorded form back; it treats the bytes as untrusted.

Values here are plain data: this module must never read files, clocks or
keys, and never evaluate a policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, cast

from bordergate.errors import VerificationError

__all__ = [
    "ACTIONS",
    "FIELD_CLASSES",
    "Action",
    "Approval",
    "ApprovalRequest",
    "DecisionInput",
    "Field",
    "FieldClass",
    "Principal",
    "RequestContext",
    "Resource",
    "Subject",
]

Action = Literal["read", "write", "export", "erase", "approve"]
ACTIONS: tuple[Action, ...] = ("read", "write", "export", "erase", "approve")
FieldClass = Literal["public", "protected", "restricted"]
FIELD_CLASSES: tuple[FieldClass, ...] = ("public", "protected", "restricted")

_MAX_LONG = 2**63 - 1
_MAX_TEXT = 256
_CODE = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise ValueError(f"{name} must be a non-empty string of at most {_MAX_TEXT} characters")
    return value


def _code(name: str, value: object) -> str:
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise ValueError(f"{name} must be a lowercase code like 'us' or 'local' (got {value!r})")
    return value


def _long(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_LONG:
        raise ValueError(f"{name} must be an integer between 0 and 2**63-1")
    return value


def _texts(name: str, value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a collection of strings")
    return frozenset(_text(name, item) for item in value)


def _hash_once(self: Any) -> int:
    """Hash a frozen value once: the engine keys its caches by these values."""
    cached: int | None = self.__dict__.get("_hash")
    if cached is None:
        cached = hash(tuple(getattr(self, f.name) for f in fields(self)))
        object.__setattr__(self, "_hash", cached)
    return cached


def _state_without_hash(self: Any) -> dict[str, Any]:
    """Pickle without the cached hash: string hashes differ between processes."""
    return {k: v for k, v in self.__dict__.items() if k != "_hash"}


@dataclass(frozen=True)
class Principal:
    """An authenticated principal, as the issuer of the gateway's jurisdiction vouches.

    Attributes:
        id: the principal's stable id (an employee or service, never a subject).
        org: the organisation's name, e.g. ``ttus``.
        org_kind: ``local`` (the jurisdiction's local entity), ``parent`` or
            ``custodian``; other kinds are allowed and get no permit by default.
        location: jurisdiction code where the principal physically works.
        roles: role names, e.g. ``{"approver"}``.
    """

    id: str
    org: str
    org_kind: str
    location: str
    roles: frozenset[str] = frozenset()

    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self) -> None:
        _text("principal id", self.id)
        _text("org", self.org)
        _code("org_kind", self.org_kind)
        _code("location", self.location)
        object.__setattr__(self, "roles", _texts("roles", self.roles))

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form (roles sorted)."""
        return {
            "id": self.id,
            "org": self.org,
            "org_kind": self.org_kind,
            "location": self.location,
            "roles": sorted(self.roles),
        }


@dataclass(frozen=True)
class Field:
    """One field of a collection: the resource of ``read``, ``write`` and ``export``."""

    collection: str
    name: str
    field_class: FieldClass
    home: str

    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self) -> None:
        _text("collection", self.collection)
        _text("field name", self.name)
        if self.field_class not in FIELD_CLASSES:
            raise ValueError(f"field class must be one of {FIELD_CLASSES}")
        _code("home", self.home)

    @property
    def cedar_type(self) -> str:
        """The Cedar entity type."""
        return "Field"

    def attributes(self) -> dict[str, Any]:
        """Return the Cedar attributes."""
        return {
            "collection": self.collection,
            "name": self.name,
            "class": self.field_class,
            "home": self.home,
        }


@dataclass(frozen=True)
class Subject:
    """A data subject (by home only): the resource of ``erase``."""

    home: str

    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self) -> None:
        _code("home", self.home)

    @property
    def cedar_type(self) -> str:
        """The Cedar entity type."""
        return "Subject"

    def attributes(self) -> dict[str, Any]:
        """Return the Cedar attributes."""
        return {"home": self.home}


@dataclass(frozen=True)
class ApprovalRequest:
    """A pending access approval: the resource of ``approve``."""

    requester: str
    purpose: str
    collections: frozenset[str]
    classes: frozenset[str]
    home: str

    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self) -> None:
        _text("requester", self.requester)
        _text("purpose", self.purpose)
        object.__setattr__(self, "collections", _texts("collections", self.collections))
        object.__setattr__(self, "classes", _texts("classes", self.classes))
        _code("home", self.home)

    @property
    def cedar_type(self) -> str:
        """The Cedar entity type."""
        return "ApprovalRequest"

    def attributes(self) -> dict[str, Any]:
        """Return the Cedar attributes (sets sorted)."""
        return {
            "requester": self.requester,
            "purpose": self.purpose,
            "collections": sorted(self.collections),
            "classes": sorted(self.classes),
            "home": self.home,
        }


Resource = Field | Subject | ApprovalRequest
_RESOURCE_TYPES: dict[str, type[Field] | type[Subject] | type[ApprovalRequest]] = {
    "Field": Field,
    "Subject": Subject,
    "ApprovalRequest": ApprovalRequest,
}
_ACTION_RESOURCE: dict[str, type[Field] | type[Subject] | type[ApprovalRequest]] = {
    "read": Field,
    "write": Field,
    "export": Field,
    "erase": Subject,
    "approve": ApprovalRequest,
}


@dataclass(frozen=True)
class Approval:
    """An approval presented with a request, as the approvals store states it now.

    Attributes:
        id: the approval's id.
        requester: the principal id it was granted to.
        purpose: the one purpose it covers.
        collections: collections it covers.
        classes: field classes it covers.
        valid: granted by two distinct custodian approvers and not revoked.
        expires: Unix seconds; the policy compares it with ``context.now``.
        in_scope: the access falls inside the approval's subject and record scope
            and under its cap of distinct subjects, as the gateway counted it
            (None in decision inputs recorded before scopes existed).
    """

    id: str
    requester: str
    purpose: str
    collections: frozenset[str]
    classes: frozenset[str]
    valid: bool
    expires: int
    in_scope: bool | None = None

    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self) -> None:
        _text("approval id", self.id)
        _text("requester", self.requester)
        _text("purpose", self.purpose)
        object.__setattr__(self, "collections", _texts("collections", self.collections))
        object.__setattr__(self, "classes", _texts("classes", self.classes))
        if not isinstance(self.valid, bool):
            raise ValueError("valid must be a boolean")
        if self.in_scope is not None and not isinstance(self.in_scope, bool):
            raise ValueError("in_scope must be a boolean")
        _long("expires", self.expires)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON (and Cedar record) form, sets sorted."""
        out: dict[str, Any] = {
            "id": self.id,
            "requester": self.requester,
            "purpose": self.purpose,
            "collections": sorted(self.collections),
            "classes": sorted(self.classes),
            "valid": self.valid,
            "expires": self.expires,
        }
        if self.in_scope is not None:
            out["in_scope"] = self.in_scope
        return out


@dataclass(frozen=True)
class RequestContext:
    """The Cedar context of a request.

    Attributes:
        purpose: the declared purpose (one of the bundle's purposes).
        now: decision time, Unix seconds (approval expiry is checked against it).
        gateway: the deciding gateway's jurisdiction code.
        k_min: the configured minimum number of subjects of an export.
        k: the number of subjects an export aggregates over (exports only).
        approval: the approval presented, if any.
    """

    purpose: str
    now: int
    gateway: str
    k_min: int
    k: int | None = None
    approval: Approval | None = None

    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self) -> None:
        _text("purpose", self.purpose)
        _long("now", self.now)
        _code("gateway", self.gateway)
        _long("k_min", self.k_min)
        if self.k is not None:
            _long("k", self.k)
        if self.approval is not None and not isinstance(self.approval, Approval):
            raise ValueError("approval must be an Approval")

    def to_json(self) -> dict[str, Any]:
        """Return the JSON (and Cedar context) form; absent optionals are omitted."""
        out: dict[str, Any] = {
            "purpose": self.purpose,
            "now": self.now,
            "gateway": self.gateway,
            "k_min": self.k_min,
        }
        if self.k is not None:
            out["k"] = self.k
        if self.approval is not None:
            out["approval"] = self.approval.to_json()
        return out


@dataclass(frozen=True)
class DecisionInput:
    """Everything one policy decision sees; its JSON form is what the log records."""

    principal: Principal
    action: Action
    resource: Resource
    context: RequestContext

    __hash__ = _hash_once
    __getstate__ = _state_without_hash

    def __post_init__(self) -> None:
        expected = _ACTION_RESOURCE.get(self.action)
        if expected is None:
            raise ValueError(f"action must be one of {ACTIONS}")
        if not isinstance(self.resource, expected):
            raise ValueError(f"{self.action} applies to {expected.__name__} resources")

    def to_json(self) -> dict[str, Any]:
        """Return the JSON-able form (every set sorted) recorded in access entries."""
        resource = {"type": self.resource.cedar_type, **self.resource.attributes()}
        return {
            "principal": self.principal.to_json(),
            "action": self.action,
            "resource": resource,
            "context": self.context.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> DecisionInput:
        """Parse a recorded decision input (untrusted, e.g. from a log entry).

        Args:
            data: the value ``to_json`` produced, after a JSON round trip.

        Returns:
            The equal ``DecisionInput``.

        Raises:
            VerificationError: the value is not a well-formed decision input
                (code ``decision_input_malformed``).
        """
        try:
            return _parse(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise VerificationError(
                f"recorded decision input is malformed: {exc}", code="decision_input_malformed"
            ) from exc


def _record(
    data: object, keys: set[str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError("expected a JSON object")
    have = set(data)
    if not keys <= have or not have <= keys | optional:
        raise ValueError(
            f"expected keys {sorted(keys)} (optional {sorted(optional)}), got {sorted(have)}"
        )
    return dict(data)


def _strings(value: object) -> frozenset[str]:
    if not isinstance(value, list):
        raise ValueError("expected a JSON array of strings")
    return _texts("set", value)


def _parse(data: object) -> DecisionInput:
    top = _record(data, {"principal", "action", "resource", "context"})
    p = _record(top["principal"], {"id", "org", "org_kind", "location", "roles"})
    principal = Principal(p["id"], p["org"], p["org_kind"], p["location"], _strings(p["roles"]))
    r = top["resource"]
    if not isinstance(r, Mapping) or r.get("type") not in _RESOURCE_TYPES:
        raise ValueError(f"resource type must be one of {sorted(_RESOURCE_TYPES)}")
    resource: Resource
    if r["type"] == "Field":
        f = _record(r, {"type", "collection", "name", "class", "home"})
        if f["class"] not in FIELD_CLASSES:
            raise ValueError("unknown field class")
        resource = Field(f["collection"], f["name"], cast(FieldClass, f["class"]), f["home"])
    elif r["type"] == "Subject":
        resource = Subject(_record(r, {"type", "home"})["home"])
    else:
        a = _record(r, {"type", "requester", "purpose", "collections", "classes", "home"})
        resource = ApprovalRequest(
            a["requester"],
            a["purpose"],
            _strings(a["collections"]),
            _strings(a["classes"]),
            a["home"],
        )
    c = _record(
        top["context"], {"purpose", "now", "gateway", "k_min"}, frozenset({"k", "approval"})
    )
    approval = None
    if "approval" in c:
        a = _record(
            c["approval"],
            {"id", "requester", "purpose", "collections", "classes", "valid", "expires"},
            frozenset({"in_scope"}),
        )
        approval = Approval(
            a["id"],
            a["requester"],
            a["purpose"],
            _strings(a["collections"]),
            _strings(a["classes"]),
            a["valid"],
            a["expires"],
            a.get("in_scope"),
        )
    context = RequestContext(
        c["purpose"], c["now"], c["gateway"], c["k_min"], c.get("k"), approval
    )
    action = top["action"]
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}")
    return DecisionInput(principal, cast(Action, action), resource, context)
