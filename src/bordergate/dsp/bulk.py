"""Bulk thresholds (28 CFR 202.205): what is counted, against which number, and what happens.

§202.205 calls sensitive personal data *bulk* when a covered person (or a
country of concern) got data of more than N U.S. persons (devices, for precise
geolocation) of a category "at any point in the preceding 12 months, whether
through a single covered data transaction or aggregated across covered data
transactions".  bordergate counts, for every **counterparty** (a covered
person, ``principal:<id>``, and the organisation it belongs to, ``org:<name>``)
and every **counter** (below), the distinct subjects whose data of that counter
it was released over a rolling window (:data:`YEAR_S`, 365 days: an
interpretation of "12 months").  Subjects are counted by their keyed pseudonym
(``entries.Pseudonymizer``: HMAC of the jurisdiction's pseudonym secret and the
subject id), which is the same for every read of one subject, so a set of
pseudonyms counts distinct persons without any identity (docs/compliance.md).

The counters of one released set of fields (:meth:`FieldCategories.counters`):

* one per DSP category released (``human_genomic``, ``personal_health``, ...);
* ``government_related`` when a released field is flagged so (§202.222: any
  volume; its threshold is 0, so the first subject crosses it);
* ``combined:<a>+<b>`` when one access released more than one category
  (§202.205(g)): its threshold is the lowest of those categories'.

Precise geolocation is counted in devices (§202.205(c)): the schema has no
device key, so each subject counts as ``devices_per_subject`` devices (a
reviewed bound, default 1), and the number of persons allowed is
``threshold // devices_per_subject``.

What the gateway does when an access would cross a threshold is product
policy, not the rule's text (:class:`BulkAction`): ``deny`` (refused,
``bulk_threshold_reached``) or ``require_approval`` (refused with
``bulk_approval_required`` unless the read presents a valid approval).  Human
'omic data at bulk is a prohibited transaction (§202.303): its action can only
be ``deny``.  The thresholds and actions are reviewed settings (part of every
deployment slice, promise 6).

Pure: values in, values out.  Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bordergate.dsp.categories import DspCategory


class _SchemaField(Protocol):  # what a classified schema's field says (residency.schema)
    @property
    def name(self) -> str: ...
    @property
    def dsp_category(self) -> DspCategory | None: ...
    @property
    def government_related(self) -> bool: ...


class _SchemaCollection(Protocol):
    @property
    def fields(self) -> Mapping[str, _SchemaField]: ...


class _ClassifiedSchema(Protocol):
    """The part of :class:`bordergate.residency.schema.Schema` read here (a protocol:
    the schema names DSP categories, so this module must not import it back)."""

    @property
    def collections(self) -> Mapping[str, _SchemaCollection]: ...

__all__ = [
    "COMBINED_PREFIX",
    "DEFAULT_THRESHOLDS",
    "GOVERNMENT_RELATED",
    "PROHIBITED_AT_BULK",
    "YEAR_S",
    "BulkAction",
    "BulkSettings",
    "FieldCategories",
    "counterparties",
    "is_covered",
    "parse_bulk_settings",
]

YEAR_S = 365 * 86_400
"""The rolling window: 365 days (our reading of "the preceding 12 months")."""
GOVERNMENT_RELATED = "government_related"
COMBINED_PREFIX = "combined:"
#: §202.303: access to bulk human 'omic data is prohibited, never approvable.
PROHIBITED_AT_BULK = frozenset({DspCategory.HUMAN_GENOMIC.value, DspCategory.HUMAN_OMIC.value})
#: The text's numbers (§202.205(a)-(f)), and 0 for government-related data (§202.222).
DEFAULT_THRESHOLDS: Mapping[str, int] = {
    **{c.value: c.bulk_threshold for c in DspCategory}, GOVERNMENT_RELATED: 0}


class BulkAction(enum.StrEnum):
    """What the gateway does with an access that would cross a threshold (product policy)."""

    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"


@dataclass(frozen=True)
class BulkSettings:
    """The reviewed bulk settings of a deployment (``[dsp.bulk]``).

    Attributes:
        enabled: whether gateways count and act (the audit always recomputes).
        jurisdictions: jurisdictions whose subjects are U.S. persons (an
            interpretation: a subject homed in ``us``).
        thresholds: the number each counter must stay at or under, by category
            (and ``government_related``).
        actions: the action by category (``government_related`` included);
            categories not listed: ``default_action``.
        default_action: the action of the categories ``actions`` leaves out.
        devices_per_subject: the devices one subject counts for (precise geolocation).
        window_s: the rolling window.
        margin_s: how long a worker trusts its memory that a subject is counted
            (the shared table then counts over ``window_s + margin_s``: never less
            than the exact figure).
        near_miss_percent: the share of a threshold the audit reports as a near miss.
    """

    enabled: bool = True
    jurisdictions: tuple[str, ...] = ("us",)
    thresholds: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    actions: Mapping[str, BulkAction] = field(default_factory=dict)
    default_action: BulkAction = BulkAction.DENY
    devices_per_subject: int = 1
    window_s: int = YEAR_S
    margin_s: int = 86_400
    near_miss_percent: int = 80

    def action(self, counter: str) -> BulkAction:
        """The action at ``counter``'s threshold; a combined counter takes the
        strictest of its categories' (deny wins)."""
        if counter.startswith(COMBINED_PREFIX):
            parts = counter[len(COMBINED_PREFIX):].split("+")
            acts = {self.action(p) for p in parts}
            return BulkAction.DENY if BulkAction.DENY in acts else BulkAction.REQUIRE_APPROVAL
        return self.actions.get(counter, self.default_action)

    def threshold(self, counter: str) -> int:
        """The threshold of ``counter`` in its own unit (devices for geolocation)."""
        if counter.startswith(COMBINED_PREFIX):
            return min(self.threshold(p) for p in counter[len(COMBINED_PREFIX):].split("+"))
        return self.thresholds[counter]

    def subject_weight(self, counter: str) -> int:
        """How many units one subject counts for in ``counter``: devices for precise
        geolocation (alone: a combined counter counts persons, our reading)."""
        if counter == DspCategory.PRECISE_GEOLOCATION.value:
            return self.devices_per_subject
        return 1

    def subject_limit(self, counter: str) -> int:
        """The most distinct subjects ``counter`` may hold without crossing."""
        return self.threshold(counter) // self.subject_weight(counter)

    def to_json(self) -> dict[str, Any]:
        """The form in the deployment slice (reviewed, promise 6)."""
        return {"enabled": self.enabled, "jurisdictions": list(self.jurisdictions),
                "thresholds": dict(sorted(self.thresholds.items())),
                "actions": {c: self.action(c).value for c in sorted(self.thresholds)},
                "devices_per_subject": self.devices_per_subject,
                "window_s": self.window_s, "margin_s": self.margin_s,
                "near_miss_percent": self.near_miss_percent}


def _integer(doc: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{key} must be an integer from {low} to {high}")
    return value


def parse_bulk_settings(doc: Mapping[str, Any]) -> BulkSettings:
    """``[dsp.bulk]`` checked (absent keys: the text's defaults).

    Raises:
        ValueError: an unknown key, category or action, a threshold that is not a
            non-negative integer, or ``require_approval`` for a category the rule
            prohibits at bulk (§202.303).
    """
    known = {"enabled", "jurisdictions", "thresholds", "actions", "default_action",
             "devices_per_subject", "window_days", "margin_s", "near_miss_percent"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError("enabled must be true or false")
    jurisdictions = doc.get("jurisdictions", ["us"])
    if not isinstance(jurisdictions, list) or not all(isinstance(j, str) for j in jurisdictions):
        raise ValueError("jurisdictions must be a list of jurisdiction codes")
    thresholds = dict(DEFAULT_THRESHOLDS)
    for name, value in dict(doc.get("thresholds", {})).items():
        if name not in DEFAULT_THRESHOLDS:
            raise ValueError(f"thresholds: unknown category {name[:64]!r}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"thresholds.{name} must be a non-negative integer")
        thresholds[name] = value
    default_action = _action(doc.get("default_action", "deny"), "default_action")
    actions: dict[str, BulkAction] = {}
    for name, value in dict(doc.get("actions", {})).items():
        if name not in DEFAULT_THRESHOLDS:
            raise ValueError(f"actions: unknown category {name[:64]!r}")
        actions[name] = _action(value, f"actions.{name}")
    for name in PROHIBITED_AT_BULK:
        if actions.get(name, default_action) is not BulkAction.DENY:
            if name in actions:
                raise ValueError(f"actions.{name}: access to bulk human 'omic data is "
                                 "prohibited (28 CFR 202.303); only 'deny' is possible")
            actions[name] = BulkAction.DENY  # the default never reaches a prohibited one
    return BulkSettings(
        enabled=enabled, jurisdictions=tuple(sorted(set(jurisdictions))),
        thresholds=thresholds, actions=actions, default_action=default_action,
        devices_per_subject=_integer(doc, "devices_per_subject", 1, 1, 1_000),
        window_s=_integer(doc, "window_days", 365, 1, 3_660) * 86_400,
        margin_s=_integer(doc, "margin_s", 86_400, 0, 30 * 86_400),
        near_miss_percent=_integer(doc, "near_miss_percent", 80, 1, 100))


def _action(value: object, key: str) -> BulkAction:
    try:
        return BulkAction(str(value))
    except ValueError:
        raise ValueError(f"{key} must be 'deny' or 'require_approval'") from None


@dataclass(frozen=True)
class FieldCategories:
    """The DSP category and government flag of every schema field, by collection."""

    fields: Mapping[str, Mapping[str, tuple[str | None, bool]]]

    @classmethod
    def from_schema(cls, schema: _ClassifiedSchema) -> FieldCategories:
        return cls({name: {f.name: (f.dsp_category.value if f.dsp_category else None,
                                    f.government_related)
                           for f in coll.fields.values()}
                    for name, coll in schema.collections.items()})

    def counters(self, collection: str, names: Iterable[str]) -> tuple[str, ...]:
        """The counters an access releasing ``names`` of ``collection`` adds to (sorted)."""
        known = self.fields.get(collection, {})
        categories: set[str] = set()
        government = False
        for n in names:
            category, flagged = known.get(n, (None, False))
            if category is not None:
                categories.add(category)
            government = government or flagged
        out = sorted(categories)
        if len(categories) > 1:
            out.append(COMBINED_PREFIX + "+".join(sorted(categories)))
        if government:
            out.append(GOVERNMENT_RELATED)
        return tuple(out)


def is_covered(principal: Mapping[str, Any], roster_covered: bool | None,
               countries: Iterable[str]) -> bool:
    """Whether a principal is a counterparty whose bulk volumes count.

    Args:
        principal: the recorded principal (``location``: a jurisdiction code).
        roster_covered: the roster's ``covered_person`` for it (None: no roster).
        countries: the countries of concern.

    The identity authority's roster decides (§202.211, signed); without a
    roster, a principal located in a country of concern counts (its location
    code read as an ISO country code: an interpretation, conservative).
    """
    if roster_covered is not None:
        return roster_covered
    location = principal.get("location")
    return isinstance(location, str) and location.upper() in set(countries)


def counterparties(principal: Mapping[str, Any]) -> tuple[str, str]:
    """The counterparties of a covered principal: itself and its organisation."""
    return f"principal:{principal.get('id')}", f"org:{principal.get('org')}"
