"""Rules about differentially private exports: every budget recomputed from the log.

An allowed ``export`` entry records the export's noise (``dp``: mechanism,
``epsilon_micro``, ...) and the budgets it was charged to (``budget``: period,
the principal's and the collection's spent and limit, in millionths of
epsilon; docs/exports.md).  The auditor adds up ``epsilon_micro`` per
principal, per collection and per period, in log order, from the entries
alone, and reports:

* ``export_not_private``: an allowed export without a well-formed noise and
  budget record (its numbers may be exact);
* ``privacy_budget_overspent``: the epsilon the log shows spent in a period
  exceeds the limit the entry records (or the entry's own recorded spent does).

This module must never read a log or a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bordergate.audit.quoting import integer
from bordergate.audit.rules.context import ENTRY_INDEX as _INDEX
from bordergate.audit.rules.context import RuleContext
from bordergate.entries import Entry

__all__ = ["BudgetClaim", "budget_claim", "budget_spent", "export_not_private",
           "privacy_budget_overspent"]

_MAX = 10**15


@dataclass(frozen=True)
class BudgetClaim:
    """What one allowed export says it spent, and where."""

    principal: str
    dataset: str
    epsilon_micro: int
    period: int
    period_s: int
    recorded: tuple[tuple[int, int], tuple[int, int]]  # (spent, limit): principal, dataset


def _count(value: object) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX
    return value if ok else None  # type: ignore[return-value]


def _pair(value: object) -> tuple[int, int] | None:
    if not isinstance(value, Mapping):
        return None
    spent, limit = _count(value.get("spent_micro")), _count(value.get("limit_micro"))
    return None if spent is None or limit is None else (spent, limit)


def budget_claim(entry: Entry, principal: Mapping[str, Any]) -> BudgetClaim | None:
    """The budget record of an allowed export entry, or None if it has none or a bad one."""
    body = entry.body
    dp, budget = body.get("dp"), body.get("budget")
    if not isinstance(dp, Mapping) or not isinstance(budget, Mapping):
        return None
    epsilon = _count(dp.get("epsilon_micro"))
    period, period_s = _count(budget.get("period")), _count(budget.get("period_s"))
    own, dataset = _pair(budget.get("principal")), _pair(budget.get("dataset"))
    who, collection = principal.get("id"), body.get("collection")
    if epsilon is None or epsilon == 0 or period is None or not period_s or own is None \
            or dataset is None or not isinstance(who, str) or not isinstance(collection, str):
        return None
    return BudgetClaim(who, collection, epsilon, period, period_s, (own, dataset))


def export_not_private(checks_flags: list[tuple[str, str, dict[str, Any]]]) -> None:
    """An allowed export whose entry records no well-formed noise and budget."""
    checks_flags.append(("export_not_private",
                         f"export entry {_INDEX} was released without a record of its "
                         "differential-privacy noise and budget", {}))


def budget_spent(ctx: RuleContext, index: int, t: float, claim: BudgetClaim) -> None:
    """Add one export's epsilon to its budgets (log order) and check both limits."""
    if not claim.period <= t < claim.period + claim.period_s + 1:
        ctx.flag("export_not_private", index, t,
                 f"export entry {index} charges a budget period that does not hold its time",
                 {"period": claim.period})
        return
    spent = ctx.state.budgets
    for scope, name, (recorded, limit) in (("principal", claim.principal, claim.recorded[0]),
                                           ("dataset", claim.dataset, claim.recorded[1])):
        key = f"{scope}\x1f{name}\x1f{claim.period}\x1f{claim.period_s}"
        total = spent.get(key, 0) + claim.epsilon_micro
        spent[key] = total
        if max(total, recorded) > limit:
            privacy_budget_overspent(ctx, index, t, scope, spent=(total, recorded),
                                     limit=limit)


def privacy_budget_overspent(ctx: RuleContext, index: int, t: float, scope: str, *,
                             spent: tuple[int, int], limit: int) -> None:
    """More epsilon spent in a period than the budget the entry records (``spent``: what
    the log shows, what the entry records)."""
    total, recorded = spent
    ctx.flag("privacy_budget_overspent", index, t,
             f"export entry {index}: the log shows {integer(total)} millionths of epsilon "
             f"spent on the {scope}'s budget of this period (the entry records "
             f"{integer(recorded)}), over its limit of {integer(limit)}",
             {"scope": scope, "spent_micro": total, "recorded_micro": recorded,
              "limit_micro": limit})
