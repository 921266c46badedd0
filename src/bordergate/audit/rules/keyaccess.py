"""Every data key the key service released, matched to the decision that justified it.

The key service (:mod:`bordergate.keys.service`) logs one ``key-access`` entry per
released key: the index of the justifying entry (``justified``), the leaf hash
the log operator promised for it (``leaf``), the subject's pseudonym and the
operation (``read``, ``write``, ``create``).  The key service released the key on
the strength of the promise, before any checkpoint covered the entry; so the
auditor checks, for every ``key-access`` entry, that

* the log holds, at ``justified``, exactly the entry promised: its leaf hash is
  ``leaf`` (else ``key_promise_broken``, critical: the log operator broke its
  word, or a key was released on a forged promise);
* that entry is an allowed decision of the operation's type about the same
  subject (``access`` for a read, ``write`` for a write or a create; outcome
  ``allow``, or ``partial`` for a read) (else ``key_access_unjustified``);
* the entry names an earlier index and a 32-byte leaf hash (else
  ``key_access_malformed``);
* for an ``export`` (a bulk release, :mod:`bordergate.keys.bulk`) the entry at
  ``justified`` is an allowed ``export-intent``, and the distinct pseudonyms of
  all ``key-access`` entries naming it are exactly the intent's subjects: as
  many as its ``subjects`` count, with its Merkle ``root`` (else
  ``key_access_unjustified``: a key released for a subject the intent did not
  commit to, or for more subjects than it counted);
* for a ``migrate`` (a migration batch's new data keys) the entry at
  ``justified`` is an allowed ``migration`` entry, and the distinct pseudonyms
  of the ``key-access`` entries naming it are at most its ``subjects``
  (else ``key_access_unjustified``).

:func:`key_access` records each claim as its entry is inspected (both inspectors
call it); :func:`settle_key_claims` judges them once the run has read the log,
given a function that returns the verified entry at an index.  Each
``key-access`` entry is counted in the tally's key events as ``key-access:OP``.
This module must never read a log or a clock.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from bordergate.audit.quoting import integer
from bordergate.audit.rules.context import RuleContext
from bordergate.entries import Entry, parse_entry
from bordergate.errors import VerificationError
from bordergate.keys.bulk import subjects_root
from bordergate.tlog import merkle

__all__ = ["export_intent", "key_access", "settle_key_claims"]

_JUSTIFYING = {"read": ("access", frozenset({"allow", "partial"})),
               "write": ("write", frozenset({"allow"})),
               "create": ("write", frozenset({"allow"})),
               "export": ("export-intent", frozenset({"allow"})),
               "migrate": ("migration", frozenset({"allow"}))}
#: Operations justified by one entry for many subjects (no ``subject`` member to match).
_BULK = frozenset({"export", "migrate"})


def key_access(ctx: RuleContext, index: int, entry: Entry) -> None:
    """Count a ``key-access`` entry and keep its claim for :func:`settle_key_claims`."""
    body = entry.body
    operation = str(body.get("operation"))[:16]
    ctx.state.tally.key_events[f"key-access:{operation}"] += 1
    justified, leaf = body.get("justified"), body.get("leaf")
    try:
        leaf_ok = isinstance(leaf, str) and len(base64.b64decode(leaf, validate=True)) == 32
    except (binascii.Error, ValueError):
        leaf_ok = False
    if type(justified) is not int or not 0 <= justified < index or not leaf_ok \
            or operation not in _JUSTIFYING:
        ctx.flag("key_access_malformed", index, entry.time,
                 f"key-access entry {index} does not name an earlier justifying index, a "
                 "leaf hash and a known operation", {})
        return
    ctx.state.key_claims.append([index, justified, leaf, operation, body.get("subject")])


def export_intent(ctx: RuleContext, index: int, entry: Entry) -> None:
    """Keep the claim of an ``export`` entry that names its ``export-intent``."""
    body = entry.body
    principal = body.get("principal")
    ctx.state.intent_claims.append([
        index, body.get("intent"),
        principal.get("id") if isinstance(principal, dict) else None,
        body.get("collection"), body.get("group_by")])


def settle_key_claims(ctx: RuleContext, entry_at: Callable[[int], bytes]) -> None:
    """Judge every claim recorded so far against the entry the log holds at its index.

    Args:
        entry_at: the verified entry at an index (below the audited size).
    """
    exported: dict[int, tuple[int, Entry | None, set[str]]] = {}  # bulk: by justifying index
    for index, justified, leaf, operation, subject in ctx.state.key_claims:
        data = entry_at(justified)
        if base64.b64encode(merkle.leaf_hash(data)).decode() != leaf:
            ctx.flag("key_promise_broken", index, None,
                     f"key-access entry {index} released a key on a promise that entry "
                     f"{justified} has another leaf hash than the log's",
                     {"justified": justified})
            continue
        kind, outcomes = _JUSTIFYING[operation]
        try:
            justifying = parse_entry(data)
        except VerificationError:
            justifying = None
        if operation in _BULK and justifying is not None:
            _, _, named = exported.setdefault(justified, (index, justifying, set()))
            named.add(str(subject))
        if justifying is None or justifying.type != kind or \
                (operation not in _BULK and justifying.body.get("subject") != subject) or \
                justifying.body.get("outcome") not in outcomes:
            ctx.flag("key_access_unjustified", index, None,
                     f"key-access entry {index} ({operation}) is not justified by entry "
                     f"{justified}", {"justified": justified, "operation": operation})
    for justified, (index, intent, named) in sorted(exported.items()):
        counted = intent.body.get("subjects") if intent is not None else None
        if intent is not None and intent.type == "migration" and \
                (type(counted) is not int or len(named) > counted):
            ctx.flag("key_access_unjustified", index, None,
                     f"keys of {len(named)} subjects were created for migration entry "
                     f"{justified}, which counts {integer(counted)}",
                     {"justified": justified, "operation": "migrate"})
        if intent is not None and intent.type == "export-intent" and \
                (len(named) != counted or
                 subjects_root(sorted(named)) != intent.body.get("root")):
            ctx.flag("key_access_unjustified", index, None,
                     f"keys of {len(named)} subjects were released for export intent "
                     f"{justified}, not its {integer(intent.body.get('subjects'))} subjects",
                     {"justified": justified, "operation": "export"})
    ctx.state.key_claims.clear()
    _settle_intent_claims(ctx, entry_at)


def _settle_intent_claims(ctx: RuleContext, entry_at: Callable[[int], bytes]) -> None:
    """Each export naming an intent: an earlier allowed ``export-intent`` of the same
    principal, collection and grouping field, named by no other export."""
    named: set[int] = set()
    for index, intent, principal, collection, group_by in ctx.state.intent_claims:
        found = None
        if type(intent) is int and 0 <= intent < index and intent not in named:
            try:
                found = parse_entry(entry_at(intent))
            except VerificationError:
                found = None
        body = found.body if found is not None else {}
        own = body.get("principal")
        if found is None or found.type != "export-intent" or body.get("outcome") != "allow" \
                or (own.get("id") if isinstance(own, dict) else None) != principal \
                or body.get("collection") != collection or body.get("group_by") != group_by:
            ctx.flag("export_intent_mismatch", index, None,
                     f"export entry {index} names {integer(intent)}, not an earlier allowed "
                     "export-intent of its own principal, collection and field that no "
                     "other export named", {"intent": integer(intent)})
        if type(intent) is int:
            named.add(intent)
    ctx.state.intent_claims.clear()
