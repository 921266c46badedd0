"""Is the audited checkpoint the log's current state, as witnesses the auditor trusts say?

A log's own signature shows only that the log key signed a tree.  Whoever holds
that key can rebuild the log from edited entries (truncated just before a
violation, or rewritten) and sign the result; an auditor with saved state
catches that against the history it saw, but a first audit has nothing to
compare with.  What rules it out is witnesses (promise 5): each cosigns a
checkpoint only if it extends the one it cosigned before, and stamps the time
it did so.  So :func:`check_witnesses` accepts a checkpoint as the log's
current state only if

1. at least the auditor's ``quorum`` of *distinct witnesses it trusts* (its own
   keys, never the log's word) validly cosigned it; otherwise the finding is
   ``checkpoint_unwitnessed``.  Witnesses are counted, not keys: two keys under
   one name (a rotation) are one witness, and so is one key under two names
   (cosignature/v1 does not sign the name, so one real cosignature could be
   copied under the other) (:func:`bordergate.tlog.cosignature.group_by_witness`,
   the rule :class:`bordergate.tlog.client.LogClient` counts by too).  An
   auditor whose quorum is 0 trusts no witness and always gets this finding:
   it can check the log against its own saved state only, never establish the
   log's only history on a first visit;
2. at least ``quorum`` of those cosignatures are *fresh*: timestamped within
   ``max_age`` seconds before the audit's reference time (and at most
   :data:`FUTURE_SKEW` after it); otherwise the finding is
   ``checkpoint_stale``: an old, honestly witnessed checkpoint taken before a
   violation cannot be passed off as the log's current state.  Logs keep their
   checkpoint fresh while idle by having it cosigned again
   (``SequencerConfig.refresh_interval``).

Both are high findings; neither is ever a warning.

What a met quorum rules out depends on its size (:func:`fork_colluders`).  An
honest witness refuses a second history only if it saw the first: a log
operator that shows one history to some witnesses and another to the others
(from the start, so no witness sees both) gets each cosigned.  Two quorums of
``q`` among ``n`` trusted witnesses share at least ``2q - n`` of them, so
another party trusting the same witnesses can be shown a different history
meeting the same quorum by the log operator with ``max(0, 2q - n)`` of them
colluding: with ``q <= n/2`` by the log operator alone, with ``q < n`` by
fewer witnesses than the quorum.  A met quorum below ``n`` says so in its
explanation (``fork_needs_colluding_witnesses`` in the report); it is not a
finding (the auditor chose the quorum).  Pure: the checkpoint's
cosignatures were verified by :func:`bordergate.tlog.checkpoint.open_checkpoint`
against the auditor's witness keys; time is a parameter.  This module must
never do I/O or read the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bordergate.entries import format_time
from bordergate.tlog.checkpoint import SignedCheckpoint
from bordergate.tlog.cosignature import CosignatureVerifier, count_witnesses, group_by_witness

__all__ = ["DEFAULT_MAX_AGE", "FUTURE_SKEW", "SeenCosignature", "WitnessCheck",
           "check_witnesses", "fork_caveat", "fork_colluders", "witness_summary"]

DEFAULT_MAX_AGE = 3600
"""Seconds a first audit accepts a cosignature as fresh (``max_checkpoint_age_s``)."""

FUTURE_SKEW = 300
"""Seconds a cosignature timestamp may lie ahead of the audit's clock and still count."""

_LAST_RFC3339 = 253_402_300_799  # 9999-12-31T23:59:59Z
UNWITNESSED = "checkpoint_unwitnessed"
STALE = "checkpoint_stale"


@dataclass(frozen=True)
class SeenCosignature:
    """One valid cosignature by a trusted witness: who, with which key, when."""

    witness: str
    key_id: int
    timestamp: int
    fresh: bool

    def to_json(self) -> dict[str, Any]:
        return {"witness": self.witness, "key_id": f"{self.key_id:08x}",
                "timestamp": self.timestamp, "time": _when(self.timestamp),
                "fresh": self.fresh}


@dataclass(frozen=True)
class WitnessCheck:
    """What was checked about one checkpoint's witnesses, and the finding if any.

    Attributes:
        required: the auditor's quorum (distinct trusted witnesses).
        max_age: the freshness window, seconds.
        trusted: ``(name, key id)`` of every witness the auditor trusts.
        cosigned: the valid cosignatures by trusted witnesses (one per witness).
        finding: ``checkpoint_unwitnessed``, ``checkpoint_stale`` or None.
        explanation: for people; says what was and was not there.
        colluders: how many of the trusted witnesses, colluding with the log
            operator, let it show another party with the same trust a different
            history meeting this quorum (:func:`fork_colluders`).
    """

    required: int
    max_age: int
    trusted: tuple[tuple[str, int], ...]
    cosigned: tuple[SeenCosignature, ...]
    finding: str | None
    explanation: str
    colluders: int = 0

    @property
    def status(self) -> str:
        """``witnessed``, ``unwitnessed`` or ``stale``."""
        return {None: "witnessed", UNWITNESSED: "unwitnessed", STALE: "stale"}[self.finding]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "required": self.required,
                "max_checkpoint_age_s": self.max_age,
                "trusted": [{"witness": n, "key_id": f"{k:08x}"} for n, k in self.trusted],
                "cosigned_by": [c.to_json() for c in self.cosigned],
                "fork_needs_colluding_witnesses": self.colluders,
                "explanation": self.explanation}


def check_witnesses(signed: SignedCheckpoint, *, trusted: Sequence[CosignatureVerifier],
                    quorum: int, now: float, max_age: int = DEFAULT_MAX_AGE) -> WitnessCheck:
    """Judge the checkpoint's cosignatures (see the module docstring).

    Args:
        signed: the checkpoint, opened with ``trusted`` as its cosigners.
        trusted: the witness keys of the auditor's own configuration.
        quorum: distinct trusted witnesses required (0: none trusted; always a finding).
        now: the audit's reference time (POSIX seconds).
        max_age: the freshness window in seconds.
    """
    keys = tuple((v.name, v.key_id) for v in trusted)
    seen: dict[tuple[str, int], SeenCosignature] = {}
    for c in signed.cosignatures:
        if (c.name, c.key_id) not in keys:
            continue
        fresh = now - max_age <= c.timestamp <= now + FUTURE_SKEW
        candidate = SeenCosignature(c.name, c.key_id, c.timestamp, fresh)
        old = seen.get((c.name, c.key_id))
        seen[(c.name, c.key_id)] = candidate if old is None else max(old, candidate, key=_rank)
    # one per witness, not per key: two keys of one witness, or one key under two
    # names, are one cosigner (tlog.cosignature.group_by_witness, shared with LogClient)
    cosigned = tuple(sorted((max((seen[k] for k in group), key=_rank)
                             for group in group_by_witness(seen, trusted)),
                            key=lambda s: (s.witness, s.key_id)))
    fresh_count = sum(1 for s in cosigned if s.fresh)
    size = signed.checkpoint.size
    names = ", ".join(f"{s.witness} at {_when(s.timestamp)}" for s in cosigned) or "none"
    if quorum == 0:
        finding: str | None = UNWITNESSED
        why = (f"this auditor trusts no witness (quorum 0): nothing shows that the checkpoint "
               f"of size {size} is the log's only history; a log rebuilt and re-signed with "
               "the log key would pass a first audit")
    elif len(cosigned) < quorum:
        finding = UNWITNESSED
        why = (f"the checkpoint of size {size} is cosigned by {len(cosigned)} of the "
               f"{quorum} trusted witnesses required (cosigned by: {names}); it may be a "
               "truncated or rewritten history signed with the log key")
    elif fresh_count < quorum:
        finding = STALE
        why = (f"the checkpoint of size {size} was cosigned by {names}, but only "
               f"{fresh_count} of the {quorum} required cosignatures are from the last "
               f"{max_age} s: an old checkpoint cannot show the log's current state")
    else:
        finding = None
        why = (f"the checkpoint of size {size} is cosigned by {len(cosigned)} trusted "
               f"witness(es), {quorum} required within {max_age} s: {names}")
        caveat = fork_caveat(quorum, count_witnesses(keys, trusted))
        if caveat:
            why += f"; but {caveat}"
    return WitnessCheck(quorum, max_age, keys, cosigned, finding, why,
                        fork_colluders(quorum, count_witnesses(keys, trusted)))


def fork_colluders(quorum: int, witnesses: int) -> int:
    """How many of ``witnesses`` trusted witnesses must collude with the log operator
    for it to show two parties that both require ``quorum`` of them two different
    histories, each meeting the quorum: two quorums share at least ``2 * quorum -
    witnesses`` witnesses, and an honest witness cosigns one history only (0 with
    quorum 0: nothing is ruled out)."""
    return max(0, 2 * quorum - witnesses) if quorum > 0 else 0


def fork_caveat(quorum: int, witnesses: int) -> str | None:
    """For people: what a met quorum of ``quorum`` of ``witnesses`` does not rule out
    (None when only all the witnesses of a quorum colluding could fork the log)."""
    if quorum <= 0 or quorum >= witnesses:
        return None
    colluders = fork_colluders(quorum, witnesses)
    who = "the log operator alone" if colluders == 0 else \
        f"the log operator with {colluders} of these witnesses colluding"
    return (f"a quorum of {quorum} of {witnesses} witnesses does not show that this is the "
            f"log's only history: {who} can show another party trusting the same witnesses "
            f"a different history meeting the same quorum (cosigned by witnesses that never "
            f"saw this one); quorum {witnesses} of {witnesses} needs every witness of a "
            "quorum to collude")


def _rank(seen: SeenCosignature) -> tuple[bool, int]:
    """Which of a witness's cosignatures speaks for it: a fresh one, then the latest."""
    return seen.fresh, seen.timestamp


def witness_summary(log: Mapping[str, Any]) -> str:
    """One line for people from a report's log section: exactly which witnesses cosigned
    (name, key id, time) and whether that met the quorum; never "cosigned" when none did."""
    w = log.get("witnesses") or {}
    status = w.get("status", "not checked")
    if status == "not checked":
        return "not checked (the log did not verify)"
    by = w.get("cosigned_by") or []
    who = "; ".join(f"{c['witness']} (key {c['key_id']}) at {c['time']}"
                    + ("" if c["fresh"] else " (stale)") for c in by)
    cosigned = f"cosigned by {len(by)}: {who}" if by else "no trusted witness cosigned it"
    need = (f"{w['required']} fresh cosignature(s) within {w['max_checkpoint_age_s']} s "
            "required" if w.get("required") else "this auditor requires none (quorum 0)")
    verdict = {"witnessed": "quorum met", "unwitnessed": "QUORUM NOT MET",
               "stale": "STALE"}.get(status, status)
    colluders = w.get("fork_needs_colluding_witnesses")
    caveat = ""
    if status == "witnessed" and isinstance(colluders, int) and \
            colluders < int(w.get("required") or 0):
        caveat = ("; a different history meeting this quorum needs "
                  + ("no colluding witness" if colluders == 0 else
                     f"only {colluders} colluding witness(es)"))
    return f"{verdict}: {cosigned}; {need}{caveat}"


def _when(timestamp: int) -> str:
    """RFC 3339 time of a cosignature timestamp (the number itself beyond year 9999)."""
    return format_time(timestamp) if timestamp <= _LAST_RFC3339 else str(timestamp)
