"""Rules about differentially private exports: every budget recomputed from the log.

An allowed ``export`` entry records the export's noise (``dp``: mechanism,
``epsilon_micro``, ...) and the budgets it was charged to (``budget``: period,
the principal's and the collection's spent and limit, in millionths of
epsilon; docs/exports.md).  The auditor adds up ``epsilon_micro`` per
principal, per collection and per period, in log order, from the entries
alone, and reports:

* ``export_not_private``: an allowed export without a well-formed noise and
  budget record (its numbers may be exact), one whose recorded scale is not the
  one its epsilon gives or whose threshold is below its ``k``, one charged to a
  period that does not hold its time or does not start at a multiple of the
  period's length, and one whose privacy terms (epsilon, delta, period length,
  both limits) are not those its release was reviewed with (the deployment
  slice of the release the entry names) or, when that release states none,
  differ from the previous export's: a gateway that charged each export to a
  period of its own (another ``period_s``, a period starting at the export's
  time) or to a raised limit would otherwise never add up past a limit;
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
from bordergate.privacy.mechanism import MECHANISM, scale_micro

__all__ = ["BudgetClaim", "budget_claim", "budget_spent", "export_not_private",
           "privacy_budget_overspent"]

_MAX = 10**15
#: where the state keeps the privacy terms of the last export (beside the sums)
_TERMS = ("epsilon_micro", "delta_exponent", "period_s", "principal_budget_micro",
          "dataset_budget_micro")
_TERMS_KEY = "terms\x1f"


@dataclass(frozen=True)
class BudgetClaim:
    """What one allowed export says it spent, and where."""

    principal: str
    dataset: str
    epsilon_micro: int
    period: int
    period_s: int
    recorded: tuple[tuple[int, int], tuple[int, int]]  # (spent, limit): principal, dataset
    delta_exponent: int = 9
    release: str | None = None

    @property
    def terms(self) -> tuple[int, ...]:
        """Epsilon, delta exponent, period length and both limits (``_TERMS``'s order)."""
        return (self.epsilon_micro, self.delta_exponent, self.period_s,
                self.recorded[0][1], self.recorded[1][1])


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
    delta, threshold = _count(dp.get("delta_exponent")), _count(dp.get("threshold"))
    period, period_s = _count(budget.get("period")), _count(budget.get("period_s"))
    own, dataset = _pair(budget.get("principal")), _pair(budget.get("dataset"))
    who, collection = principal.get("id"), body.get("collection")
    k, release = _count(body.get("k")), body.get("release")
    if epsilon is None or epsilon == 0 or period is None or not period_s or own is None \
            or dataset is None or not isinstance(who, str) or not isinstance(collection, str):
        return None
    # the noise the entry describes must be the one its epsilon buys: the gateway's
    # only mechanism, the scale 3/epsilon, a threshold never below the entry's k
    if dp.get("mechanism") != MECHANISM or delta is None or threshold is None \
            or _count(dp.get("scale_micro")) != scale_micro(epsilon) \
            or k is None or threshold < k:
        return None
    return BudgetClaim(who, collection, epsilon, period, period_s, (own, dataset), delta,
                       release if isinstance(release, str) else None)


def export_not_private(checks_flags: list[tuple[str, str, dict[str, Any]]]) -> None:
    """An allowed export whose entry records no well-formed noise and budget."""
    checks_flags.append(("export_not_private",
                         f"export entry {_INDEX} was released without a record of its "
                         "differential-privacy noise and budget", {}))


def budget_spent(ctx: RuleContext, index: int, t: float, claim: BudgetClaim) -> None:
    """Add one export's epsilon to its budgets (log order) and check both limits."""
    if claim.period % claim.period_s or not claim.period <= t < claim.period + claim.period_s + 1:
        ctx.flag("export_not_private", index, t,
                 f"export entry {index} charges a budget period that does not hold its time "
                 "or does not start at a multiple of its length", {"period": claim.period})
        return
    spent = ctx.state.budgets
    _check_terms(ctx, index, t, claim)
    for scope, name, (recorded, limit) in (("principal", claim.principal, claim.recorded[0]),
                                           ("dataset", claim.dataset, claim.recorded[1])):
        key = f"{scope}\x1f{name}\x1f{claim.period}\x1f{claim.period_s}"
        total = spent.get(key, 0) + claim.epsilon_micro
        spent[key] = total
        if max(total, recorded) > limit:
            privacy_budget_overspent(ctx, index, t, scope, spent=(total, recorded),
                                     limit=limit)


def _reviewed_terms(ctx: RuleContext, release: str | None) -> tuple[int, ...] | None:
    """The privacy terms of the deployment slice ``release`` was reviewed with, if the
    log holds that release and its manifest records this jurisdiction's slice."""
    record = ctx.ledger.releases.get(release) if release is not None else None
    deployment = record.manifest.deployment if record is not None else None
    if deployment is None or deployment.jurisdiction != ctx.home:
        return None
    privacy = deployment.settings.get("privacy")
    if not isinstance(privacy, Mapping):
        return None
    terms = tuple(_count(privacy.get(name)) for name in _TERMS)
    return None if None in terms else terms  # type: ignore[return-value]


def _check_terms(ctx: RuleContext, index: int, t: float, claim: BudgetClaim) -> None:
    """An export's privacy terms are its reviewed release's, or (a release stating none)
    the previous export's: every export of one log is summed under the same terms."""
    budgets, terms = ctx.state.budgets, claim.terms
    previous = tuple(budgets.get(_TERMS_KEY + name) for name in _TERMS)
    reviewed = _reviewed_terms(ctx, claim.release)
    expected = reviewed if reviewed is not None else None if None in previous else previous
    for name, value in zip(_TERMS, terms, strict=True):
        budgets[_TERMS_KEY + name] = value
    if expected is None or expected == terms:
        return
    differ = [n for n, a, b in zip(_TERMS, terms, expected, strict=True) if a != b]
    whose = "its release's reviewed deployment settings" if reviewed is not None \
        else "the previous export's (its release states none)"
    ctx.flag("export_not_private", index, t,
             f"export entry {index} records privacy terms ({', '.join(differ)}) other than "
             f"{whose}: its budget cannot be added up with the others",
             {"terms": dict(zip(_TERMS, terms, strict=True)),
              "expected": dict(zip(_TERMS, expected, strict=True))})


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
