"""Who appended each entry: the credential the log operator accepted it from.

Entries written through a log's sequencer service carry ``"appender": ID``,
the append credential the sequencer authenticated (it refuses any other, see
:mod:`bordergate.appender`).  The auditor states which credentials it expects
and what each may write (``appenders = { "us-gw-1" = "gateway", ... }`` in its
configuration); then an entry

* naming no appender is ``appender_missing`` (written around the sequencer,
  or by a sequencer that did not check);
* naming a credential the auditor does not know is ``appender_unknown``;
* of a type its credential's role may not write (a gateway writing a
  ``release-review``, the release tool a decision) is ``appender_not_allowed``.

Each cause is reported once, with a repeat count.  With no ``appenders``
configured the rule judges nothing (logs written before issue 12, or in
development with an in-process sequencer).  This module must never read a
log or a clock.
"""

from __future__ import annotations

import hashlib

from bordergate.appender import ROLE_TYPES
from bordergate.audit.rules.context import RuleContext
from bordergate.entries import Entry

__all__ = ["ROLE_TYPES", "appender_attribution"]


def appender_attribution(ctx: RuleContext, index: int, t: float, entry: Entry) -> None:
    """Flag an entry whose appender is missing, unknown or not allowed its type."""
    expected = ctx.appenders
    if not expected:
        return
    appender = entry.body.get("appender")
    if not isinstance(appender, str):
        _once(ctx, "appender_missing", "appender:missing", index, t,
              text=f"entry {index} ({entry.type}) names no append credential", detail={})
        return
    role = expected.get(appender)
    if role is None:
        # an unknown id is the entry's own text: named by its digest only
        digest = hashlib.sha256(appender.encode()).hexdigest()[:16]
        _once(ctx, "appender_unknown", f"appender:unknown:{digest}", index, t,
              text=f"entry {index} ({entry.type}) was appended with a credential the "
              "auditor does not know", detail={"appender_sha256": digest})
    elif entry.type not in ROLE_TYPES.get(role, frozenset()):
        _once(ctx, "appender_not_allowed", f"appender:{appender}:{entry.type}", index, t,
              text=f"entry {index} is a {entry.type} entry appended with a {role} "
              "credential", detail={"appender": appender, "role": role})


def _once(ctx: RuleContext, kind: str, key: str, index: int, t: float, *, text: str,
          detail: dict[str, str]) -> None:
    if not ctx.repeat(key):
        ctx.flag_once(kind, key, index, t, explanation=text, detail=detail)
