"""Rules about releases (promise 6): reviewed releases, and the release each decision names.

``release``, ``release-review`` and ``gateway-start`` entries go through the
:class:`~bordergate.releases.ledger.ReleaseLedger`; its findings become the
audit's.  This module must never read a log or a clock.
"""

from __future__ import annotations

from bordergate.audit.findings import FINDING_KINDS
from bordergate.audit.quoting import clean, short
from bordergate.audit.rules.context import RuleContext
from bordergate.entries import RELEASE_ENTRY_TYPES, Entry
from bordergate.releases.ledger import APPROVED

__all__ = ["RELEASE_TYPES", "decision_release_mismatch", "decision_without_start",
           "release_entry", "release_is_approved"]

RELEASE_TYPES = RELEASE_ENTRY_TYPES


def release_entry(ctx: RuleContext, index: int, text: str, entry: Entry) -> None:
    """Add a release-related entry to the ledger (and the state); report its findings."""
    ctx.state.release_entries.append((index, text))
    ctx.ledger.add(index, entry)
    if entry.type == "gateway-start":
        start = ctx.ledger.starts[-1]
        ctx.started.add((start.gateway, start.release))
    new = ctx.ledger.findings[ctx.ledger_seen:]
    ctx.ledger_seen = len(ctx.ledger.findings)
    for f in new:
        kind = f.code if f.code in FINDING_KINDS else "review_invalid"
        ctx.flag(kind, f.index, entry.time, clean(f.message), {"code": f.code})


def release_is_approved(ctx: RuleContext, release: str, digest: str) -> bool:
    """Whether ``release`` is an approved release of bundle ``digest`` at this point."""
    record = ctx.ledger.releases.get(release)
    return record is not None and record.state == APPROVED and \
        record.manifest.policy_digest == digest


def decision_release_mismatch(ctx: RuleContext, index: int, t: float, entry: Entry) -> bool:
    """A decision entry naming a release that is not an approved release of its bundle.

    Reported once per (release, bundle).  Returns whether the release was approved
    (an entry naming no release passes: its gateway's unreviewed start is flagged).
    """
    release = entry.body.get("release")
    digest = str(entry.body.get("bundle"))
    if not isinstance(release, str):
        return True
    if release_is_approved(ctx, release, digest):
        return True
    key = f"release:{release}:{digest}"
    if not ctx.repeat(key):
        ctx.flag_once("decision_release_mismatch", key, index, t,
                      explanation=f"{entry.type} entry {index} names release "
                      f"{short(release)}, which is not an approved release of policy "
                      f"bundle {short(digest)} at that point of the log")
    return False


def decision_without_start(ctx: RuleContext, index: int, t: float, entry: Entry) -> None:
    """A decision entry with no earlier ``gateway-start`` of its gateway and release.

    Every gateway logs its start (the release it runs, or none when unreviewed)
    before it decides anything, so a decision naming a gateway and release that
    no earlier start names comes from a start that is missing from the log: taken
    out by whoever rebuilt it (hiding an unreviewed start, say), or a gateway that
    skipped its self-check.  Reported once per gateway and release, with a count.
    """
    body = entry.body
    gateway = str(body.get("gateway", ctx.home))[:80]
    release = body.get("release")
    release = release if isinstance(release, str) else None
    if (gateway, release) in ctx.started:
        return
    key = f"nostart:{gateway}:{release}"
    if not ctx.repeat(key):
        ctx.flag_once("decision_without_start", key, index, t,
                      explanation=f"{entry.type} entry {index} was decided by gateway "
                      f"{clean(gateway)} running "
                      f"{'release ' + short(release) if release else 'no reviewed release'}"
                      ", but no earlier gateway-start entry names that gateway and release",
                      detail={"gateway": clean(gateway)})


def start_receipt_key(ctx: RuleContext, index: int, t: float, entry: Entry) -> None:
    """A ``gateway-start`` of entry format 2 must register the Ed25519 verifier key
    the gateway signs its answers' receipts with (``receipt_key``): without it a
    monitor holding a receipt cannot tie it to this gateway's log."""
    from bordergate.tlog.note import Ed25519Verifier

    key = entry.body.get("receipt_key")
    problem = None
    if not isinstance(key, str):
        problem = "names no receipt_key"
    else:
        try:
            Ed25519Verifier.from_key_string(key)
        except Exception:  # VerificationError or ValueError: not a verifier key
            problem = "names a receipt_key that is not an Ed25519 verifier key"
    if problem is not None:
        gateway = clean(str(entry.body.get("gateway", ctx.home))[:80])
        ctx.flag("receipt_key_missing", index, t,
                 f"gateway-start entry {index} of gateway {gateway} {problem}")
