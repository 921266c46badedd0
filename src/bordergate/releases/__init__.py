"""Code and policy transparency: manifests, reviews and the start-up self-check.

A gateway serves only code and policy whose digests appear in an approved
``release`` entry of its log (docs/design.md, promise 6).  This package records and
checks releases; the digests themselves are :mod:`bordergate.tree_digest`'s,
shared with the policy bundle.  It must never serve or decide anything itself.
"""

from __future__ import annotations

__all__: list[str] = []
