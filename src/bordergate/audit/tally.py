"""What an audit counts across runs: flows, decisions over time, denials, approvals.

A :class:`Tally` accumulates the statistics of the report for one log, entry
by entry, and is saved in the auditor's state so that an incremental run adds
only the new entries.  :class:`ApprovalTrack` is the auditor's own view of one
approval, rebuilt from the ``approval-*`` entries (who asked, who granted and
when, whether it was ever valid, how often it was used).

Plain values with JSON forms; this module must never do I/O or decide anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApprovalTrack", "Tally"]


@dataclass
class ApprovalTrack:
    """One approval as the log tells it.

    Attributes:
        id: the approval id.
        index: the index of its ``approval-request`` entry.
        requester: the requesting principal's JSON (id, org, org_kind, location, roles).
        purpose, reason: what it is for.
        collections, classes: its scope.
        home: the jurisdiction holding it.
        requested_at, expires: Unix seconds.
        grants: ``[approver id, index, time, valid, key]`` per grant entry (``key``:
            the base64 key its verified statement was signed with, or None; states
            saved before it was recorded hold four members).
        state: ``pending``, ``granted`` (two valid distinct approvers), ``denied``, ``revoked``.
        granted: ``[index, time]`` of the grant that made it valid.
        closed: ``[index, time, by]`` of the denial or revocation.
        uses: access entries that presented it.
        released: protected fields released under it.
        flagged: the finding kind of its first invalid grant, if any.
        changed_at: the index of the last entry that changed it (its request, a
            grant, its denial or revocation): the version of its state an access
            entry must record (``approval_version``).
        subjects, records: the subject and record pseudonyms it is narrowed to
            (empty: any).
        ticket: the ticket it serves, if named.
        max_subjects: the cap of distinct subjects its request declared.
        bundle: the digest of the bundle its request entry names.
        read_subjects: distinct subject pseudonyms it released protected fields of.
        refused: refused grant/deny/revoke attempts on it.
        request: the digest of its request entry that approvers sign
            (``approval_statement.request_digest``).
    """

    id: str
    index: int
    requester: dict[str, Any]
    purpose: str
    reason: str
    collections: list[str]
    classes: list[str]
    home: str
    requested_at: int
    expires: int
    grants: list[list[Any]] = field(default_factory=list)
    state: str = "pending"
    granted: list[Any] | None = None
    closed: list[Any] | None = None
    uses: int = 0
    released: int = 0
    flagged: str | None = None
    changed_at: int | None = None
    subjects: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    ticket: str | None = None
    max_subjects: int | None = None
    bundle: str | None = None
    read_subjects: list[str] = field(default_factory=list)
    refused: int = 0
    request: str | None = None

    def valid_approvers(self) -> set[str]:
        """Distinct approvers whose grant counted, by id and by signing key: a grant
        signed with the key of an earlier counted grant adds nobody (one key-holder is
        one approver, whatever ids it signs as)."""
        ids: set[str] = set()
        keys: set[str] = set()
        for g in self.grants:
            key = g[4] if len(g) > 4 else None
            if not g[3] or (key is not None and key in keys):
                continue
            ids.add(str(g[0]))
            if key is not None:
                keys.add(key)
        return ids

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovalTrack:
        return cls(**dict(data))


def _counter(data: object) -> Counter[str]:
    return Counter({str(k): int(v) for k, v in dict(data or {}).items()})  # type: ignore[call-overload]


@dataclass
class Tally:
    """Counts of one log (see the module docstring).

    Attributes:
        entries: entries inspected, by type.
        outcomes: decision entries by ``type/outcome``.
        flows: released fields by ``location>home>class>purpose`` (the principal's
            location, the data's home, field class, purpose; the report names the
            home the source and the location the destination).
        withheld: denied field decisions by ``location>home>class>purpose``.
        minutes: per minute (epoch // 60): ``[allowed, partial, denied]`` entries.
        denials: denied field decisions by reason (a forbid's ``@id`` or
            ``no_approval``, ``approval_not_valid``, ``not_permitted``, ``policy_error``).
        principals: decision entries by ``org_kind/location``.
        key_events: key-event entries by kind.
        exports: ``allowed``, ``denied``, ``min_k`` (smallest k released).
        replay: ``decisions`` replayed, ``mismatches``, ``unreplayed``, ``groups``.
        bundles: decisions by policy bundle digest.
        refused: refused approval actions (``approval-refused`` entries) by
            ``action/code`` (e.g. ``grant/policy_denied``, ``revoke/approval_not_pending``).
        versions: entries by format version (``"1"``, ``"2"``).
        unchecked: entries that could not get a versioned check, by
            ``version>check`` (:mod:`bordergate.audit.rules.versions`).
        pii_hits: entries the personal-data scan flagged.
        first_time, last_time: the time span of the entries.
    """

    entries: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    flows: Counter[str] = field(default_factory=Counter)
    withheld: Counter[str] = field(default_factory=Counter)
    minutes: dict[str, list[int]] = field(default_factory=dict)
    denials: Counter[str] = field(default_factory=Counter)
    principals: Counter[str] = field(default_factory=Counter)
    key_events: Counter[str] = field(default_factory=Counter)
    exports: Counter[str] = field(default_factory=Counter)
    replay: Counter[str] = field(default_factory=Counter)
    bundles: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    unchecked: Counter[str] = field(default_factory=Counter)
    pii_hits: int = 0
    first_time: float | None = None
    last_time: float | None = None
    min_export_k: int | None = None

    def minute(self, time: float, slot: int) -> None:
        """Count one decision entry in its minute: slot 0 allowed, 1 partial, 2 denied."""
        key = str(int(time // 60))
        row = self.minutes.get(key)
        if row is None:
            row = self.minutes[key] = [0, 0, 0]
        row[slot] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "entries": dict(self.entries), "outcomes": dict(self.outcomes),
            "flows": dict(self.flows), "withheld": dict(self.withheld),
            "minutes": self.minutes, "denials": dict(self.denials),
            "principals": dict(self.principals), "key_events": dict(self.key_events),
            "exports": dict(self.exports), "replay": dict(self.replay),
            "bundles": dict(self.bundles), "refused": dict(self.refused),
            "versions": dict(self.versions), "unchecked": dict(self.unchecked),
            "pii_hits": self.pii_hits,
            "first_time": self.first_time, "last_time": self.last_time,
            "min_export_k": self.min_export_k,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        """Rebuild from :meth:`to_json` (the auditor's own state).

        Raises:
            KeyError, TypeError, ValueError: the state is damaged (the caller wraps it).
        """
        return cls(
            entries=_counter(data["entries"]), outcomes=_counter(data["outcomes"]),
            flows=_counter(data["flows"]), withheld=_counter(data["withheld"]),
            minutes={str(k): [int(x) for x in v] for k, v in dict(data["minutes"]).items()},
            denials=_counter(data["denials"]), principals=_counter(data["principals"]),
            key_events=_counter(data["key_events"]), exports=_counter(data["exports"]),
            replay=_counter(data["replay"]), bundles=_counter(data["bundles"]),
            refused=_counter(data.get("refused")),
            versions=_counter(data.get("versions")), unchecked=_counter(data.get("unchecked")),
            pii_hits=int(data["pii_hits"]),
            first_time=None if data["first_time"] is None else float(data["first_time"]),
            last_time=None if data["last_time"] is None else float(data["last_time"]),
            min_export_k=None if data["min_export_k"] is None else int(data["min_export_k"]))
