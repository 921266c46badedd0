"""What the dashboard has read of its log, kept across restarts (a JSON state file).

The dashboard (:mod:`bordergate.gateway.dashboard`) reads the whole log, from
entry 0, a bounded number of entries per look; :class:`DashboardState` is what
that reading has built: entries read, entry types, releases, gateway starts,
bulk counters per counterparty and DSP category (recomputed from the ``access``
entries as the audit does, :mod:`bordergate.audit.rules.bulk`) and privacy
budgets spent per principal and collection (the latest ``budget`` each allowed
``export`` entry records).  It is saved to a state file (written whole, then
renamed over the old one) and read back at start, so a restart continues
where the last run stopped instead of reading the log again.

A state file is the dashboard host's own cache, not evidence: it names the
leaf hash of the last entry it counted, and :meth:`DashboardState.matches`
is checked against the log before it is used; a file that does not match (or
does not parse) is dropped and the log read again from entry 0, and the page
says so.  This module must never hold a subject id or a value (pseudonyms and
counts only) and does no I/O but :func:`load_state` and :func:`save_state`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bordergate.audit.rules.bulk import BulkCounterState

__all__ = ["STATE_VERSION", "DashboardState", "load_state", "save_state"]

STATE_VERSION = 1
_MAX_STATE = 512 << 20


@dataclass
class DashboardState:
    """The dashboard's reading of one log (see the module docstring).

    Attributes:
        origin: the log's origin (a file of another log is not used).
        seen: entries read (the next index to read).
        last_leaf: hex RFC 9162 leaf hash of entry ``seen - 1`` ("" when none).
        types: entries by type.
        releases: release id -> {index, id, time, version, approvals, rejections}.
        starts: the last ten ``gateway-start`` entries.
        bulk: counterparty + US + counter -> its subjects and peak.
        budgets: ``scope/name/period`` -> {scope, name, period, period_s,
            spent_micro, limit_micro, index}.
    """

    origin: str
    seen: int = 0
    last_leaf: str = ""
    types: Counter[str] = field(default_factory=Counter)
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    starts: list[dict[str, Any]] = field(default_factory=list)
    bulk: dict[str, BulkCounterState] = field(default_factory=dict)
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def matches(self, origin: str, size: int, leaf_at: Any) -> bool:
        """Whether this state is of the log ``origin`` of ``size`` entries, whose
        entry ``seen - 1`` has the recorded leaf hash (``leaf_at(index)`` gives it
        as hex, or None when it cannot be read)."""
        if self.origin != origin or self.seen > size:
            return False
        if self.seen == 0:
            return True
        found: str | None = leaf_at(self.seen - 1)
        return found is not None and found == self.last_leaf

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "origin": self.origin, "seen": self.seen,
                "last_leaf": self.last_leaf, "types": dict(self.types),
                "releases": self.releases, "starts": self.starts,
                "bulk": {k: v.to_json() for k, v in self.bulk.items()},
                "budgets": self.budgets}

    @classmethod
    def from_json(cls, data: Any) -> DashboardState:
        """Rebuild from :meth:`to_json`.

        Raises:
            ValueError: not a state of this version (KeyError, TypeError wrapped).
        """
        try:
            if data["version"] != STATE_VERSION:
                raise ValueError(f"state version {data['version']!r}")
            return cls(origin=str(data["origin"]), seen=int(data["seen"]),
                       last_leaf=str(data["last_leaf"]),
                       types=Counter({str(k): int(v) for k, v in data["types"].items()}),
                       releases={str(k): dict(v) for k, v in data["releases"].items()},
                       starts=[dict(s) for s in data["starts"]][-10:],
                       bulk={str(k): BulkCounterState.from_json(v)
                             for k, v in data["bulk"].items()},
                       budgets={str(k): dict(v) for k, v in data["budgets"].items()})
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed dashboard state: {type(exc).__name__}") from None


def load_state(path: Path) -> tuple[DashboardState | None, str | None]:
    """The state saved at ``path``, or None with why (None, None: no file yet)."""
    try:
        if path.stat().st_size > _MAX_STATE:
            return None, "the state file is too large"
        return DashboardState.from_json(json.loads(path.read_bytes())), None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"the state file could not be read ({type(exc).__name__})"


def save_state(path: Path, state: DashboardState) -> None:
    """Write ``state`` to ``path`` whole (a temporary file renamed over it).

    Raises:
        OSError: the directory is not writable (the caller keeps going in memory).
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state.to_json(), separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)
