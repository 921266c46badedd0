"""Rules about the entries themselves: well-formed, in time order, free of personal data.

This module must never read a log or a clock, and never put an entry's string
values into a finding (promise 7: kinds and JSON paths only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bordergate.audit.quoting import describe
from bordergate.audit.rules.context import RuleContext
from bordergate.entries import Entry
from bordergate.errors import VerificationError

__all__ = ["decision_list_of", "entry_malformed", "entry_not_checkable",
           "entry_time_regression", "personal_data_in_entry"]


def entry_malformed(ctx: RuleContext, index: int, exc: VerificationError) -> None:
    """An entry that the entry parser (or :func:`decision_list_of`) refused."""
    ctx.state.tally.entries["malformed"] += 1
    ctx.flag("entry_malformed", index, None,
             f"entry {index} is not a well-formed log entry ({exc.code}): {describe(exc)}",
             {"code": exc.code})


def entry_not_checkable(ctx: RuleContext, index: int, t: float, kind: str,
                        exc: Exception) -> None:
    """An entry the parser took but a rule failed on (a member of a shape no rule
    foresaw): malformed, named by the exception's type only (its message may quote
    the entry)."""
    ctx.flag("entry_malformed", index, t,
             f"{kind} entry {index} could not be checked: a rule failed on it "
             f"({type(exc).__name__}); it is treated as malformed",
             {"code": "entry_not_checkable"})


def decision_list_of(entry: Entry) -> list[Any]:
    """The ``decisions`` member of a decision entry.

    Raises:
        VerificationError: code ``malformed_entry`` when it is not a list.
    """
    value = entry.body.get("decisions")
    if not isinstance(value, list):
        raise VerificationError("decisions is not a list", code="malformed_entry")
    return value


def entry_time_regression(ctx: RuleContext, index: int, t: float, latest: float) -> None:
    """An entry more than the tolerance older than the latest entry before it."""
    ctx.flag("entry_time_regression", index, t,
             f"entry {index} is {latest - t:.3f} s older than an earlier entry "
             f"(tolerance {ctx.tolerance:g} s)", {"behind_s": round(latest - t, 3)})


def personal_data_in_entry(ctx: RuleContext, index: int, t: float,
                           hits: Sequence[tuple[str, str]]) -> None:
    """An entry whose text looks like personal data (``hits``: its scan, not empty)."""
    ctx.state.tally.pii_hits += 1
    kinds = sorted({k for k, _ in hits})
    ctx.flag("personal_data_in_entry", index, t,
             f"entry {index} holds what looks like {', '.join(kinds)} at "
             f"{', '.join(p for _, p in hits[:5])}",
             {"kinds": kinds, "paths": [p for _, p in hits[:20]]})
