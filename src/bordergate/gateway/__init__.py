"""The gateway: the only path to subject data of its jurisdiction.

For every request it authenticates the principal (``auth``), resolves the
subject's home (421 if elsewhere), asks the policy for one decision per field,
fetches and decrypts only the allowed fields, logs the decision and waits until
it is durably sequenced, and only then responds (docs/design.md, promises 2 and 3).
It must never release a byte of subject data whose decision is not in the log.
"""

from __future__ import annotations

__all__: list[str] = []
