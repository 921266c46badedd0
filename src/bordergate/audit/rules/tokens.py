"""Rules about bearer tokens: no read is decided for a token after its revocation.

A ``token-revoke`` entry names a token's ``jti``; from its index on, an
``access`` or ``export`` entry naming the same ``jti`` is a decision the gateway
should have refused (``token_revoked_use``, reported once per token with a repeat
count).  Entries without a ``jti`` (reads logged before issue 11, exports before
their receipts named the request) are not judged.
This module must never read a log or a clock.
"""

from __future__ import annotations

from bordergate.audit.rules.context import RuleContext
from bordergate.entries import Entry

__all__ = ["revoked_token_use", "token_revoke"]


def token_revoke(ctx: RuleContext, index: int, entry: Entry) -> None:
    """Remember the revocation of the token the entry names (the first one counts)."""
    jti = entry.body.get("jti")
    if isinstance(jti, str):
        ctx.state.revoked_tokens.setdefault(jti, index)


def revoked_token_use(ctx: RuleContext, index: int, t: float, entry: Entry) -> None:
    """Flag an ``access`` or ``export`` entry for a token revoked at a lower index."""
    if entry.type not in ("access", "export"):
        return
    jti = entry.body.get("jti")
    if not isinstance(jti, str):
        return
    revoked = ctx.state.revoked_tokens.get(jti)
    if revoked is None or revoked >= index:
        return
    key = f"token:{jti}"
    if not ctx.repeat(key):
        ctx.flag_once("token_revoked_use", key, index, t,
                      explanation=f"{entry.type} entry {index} was decided for a bearer token "
                      f"revoked by entry {revoked}",
                      detail={"revoked_at": revoked})
