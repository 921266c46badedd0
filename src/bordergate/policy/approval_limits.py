"""How far one access approval may reach: the ``[approvals]`` table of a bundle.

A bundle's ``approvals.toml`` holds::

    [approvals]
    max_duration_s = 28800   # the longest approval a requester may ask for
    max_subjects = 25        # distinct subjects readable under one approval

Both are part of the bundle (and so of its digest): the gateway enforces them
and the auditor checks every approval against the bundle its request entry
names.  A bundle without the file predates these limits (:data:`LEGACY_LIMITS`:
seven days, no cap on subjects).

Pure: bytes in, values out; this module must never read files or decide access.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from bordergate.errors import ConfigError

__all__ = ["APPROVALS_FILE", "LEGACY_LIMITS", "ApprovalLimits", "parse_approval_limits"]

APPROVALS_FILE = "approvals.toml"
_MAX_SECONDS = 30 * 24 * 3600
_MAX_SUBJECTS = 1_000_000


@dataclass(frozen=True)
class ApprovalLimits:
    """The reach of one approval.

    Attributes:
        max_duration_s: the longest approval (seconds from request to expiry).
        max_subjects: distinct subjects readable under one approval (None: no cap).
    """

    max_duration_s: int
    max_subjects: int | None


LEGACY_LIMITS = ApprovalLimits(max_duration_s=7 * 24 * 3600, max_subjects=None)


def _positive(where: str, table: dict[str, object], key: str, top: int) -> int:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= top:
        raise ConfigError(f"{where}: approvals.{key} must be an integer in 1..{top}",
                          code="approval_limits_invalid")
    return value


def parse_approval_limits(source: str, data: bytes) -> ApprovalLimits:
    """Parse ``approvals.toml``.

    Raises:
        ConfigError: ``approval_limits_invalid`` naming the file.
    """
    where = f"{source}/{APPROVALS_FILE}"
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"{where}: {exc}", code="approval_limits_invalid") from exc
    table = doc.get("approvals")
    if set(doc) != {"approvals"} or not isinstance(table, dict) or \
            set(table) != {"max_duration_s", "max_subjects"}:
        raise ConfigError(f"{where}: needs exactly [approvals] max_duration_s and "
                          "max_subjects", code="approval_limits_invalid")
    return ApprovalLimits(_positive(where, table, "max_duration_s", _MAX_SECONDS),
                          _positive(where, table, "max_subjects", _MAX_SUBJECTS))
