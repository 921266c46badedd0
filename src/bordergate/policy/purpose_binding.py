"""Purposes bound to actions and roles, turned into two Cedar forbids.

A purpose in ``purposes.toml`` may declare::

    actions = ["read", "write"]      # data actions the purpose permits
    roles = ["engineer", "support"]  # roles that may invoke the purpose

A request under a purpose that does not permit its action, or from a principal
holding none of the purpose's roles, is forbidden.  The rule is enforced in
Cedar, not beside it: ``binding_policies`` renders the declarations as two
``forbid`` policies (``@id("purpose-permits-action")`` and
``@id("purpose-permits-role")``) that join the bundle's policy set.  They are
derived from the bundle's own bytes, so the bundle digest names them, a
decision entry's recorded input replays to the same decision in the audit, and
a denial names the forbid that decided it.  ``analytics_aggregate`` permits only
``export``, so it never returns a record's values (issue 11, item 7).

Only the data actions (read, write, export, erase) are bound; ``approve`` is
decided on the approval request's purpose, not the approver's, and stays
governed by the hand-written policies.

Backward compatibility: a bundle in which no purpose declares ``actions`` or
``roles`` (every bundle published before the binding) loads unchanged, with no
binding policies, so its recorded decisions replay as they were made.  A bundle
in which some purposes declare them must declare both in every purpose.

Pure: values in, text out; this module must never read files or evaluate
requests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

__all__ = [
    "BOUND_ACTIONS",
    "PURPOSE_ACTION_POLICY",
    "PURPOSE_NOT_ALLOWED",
    "PURPOSE_POLICIES",
    "PURPOSE_ROLE_POLICY",
    "PurposeBinding",
    "binding_policies",
    "denial_code",
    "parse_binding",
]

BOUND_ACTIONS: tuple[str, ...] = ("read", "write", "export", "erase")
PURPOSE_ACTION_POLICY = "purpose-permits-action"
PURPOSE_ROLE_POLICY = "purpose-permits-role"
PURPOSE_POLICIES = frozenset({PURPOSE_ACTION_POLICY, PURPOSE_ROLE_POLICY})
PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
# Role names are rendered into Cedar string literals: no quotes, no escapes.
_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")


@dataclass(frozen=True)
class PurposeBinding:
    """What one purpose permits and who may invoke it.

    Attributes:
        actions: the data actions the purpose permits, a subset of ``BOUND_ACTIONS``.
        roles: role names; a principal needs at least one of them.
    """

    actions: frozenset[str]
    roles: frozenset[str]


def parse_binding(entry: Mapping[str, object]) -> PurposeBinding | None:
    """Read the ``actions`` and ``roles`` of one purpose table.

    Args:
        entry: the purpose's TOML table.

    Returns:
        The binding, or None when the table declares neither key.

    Raises:
        ValueError: only one key is declared, or a value is not a non-empty
            list of known actions / well-formed role names (the bundle loader
            turns this into a ``ConfigError`` naming the file).
    """
    if "actions" not in entry and "roles" not in entry:
        return None
    actions, roles = entry.get("actions"), entry.get("roles")
    if not _names(actions, lambda a: a in BOUND_ACTIONS):
        raise ValueError(f"actions must be a non-empty list drawn from {list(BOUND_ACTIONS)}")
    if not _names(roles, lambda r: _ROLE.fullmatch(r) is not None):
        raise ValueError("roles must be a non-empty list of role names")
    return PurposeBinding(frozenset(cast(list[str], actions)), frozenset(cast(list[str], roles)))


def _names(value: object, ok: Callable[[str], bool]) -> bool:
    """A non-empty list of distinct strings, each accepted by ``ok``."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, str) and ok(v) for v in value)
        and len(set(value)) == len(value)
    )


def _strings(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in sorted(values)) + "]"


def _actions(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'Action::"{a}"' for a in sorted(values)) + "]"


def binding_policies(bindings: Mapping[str, PurposeBinding]) -> str:
    """Render the bindings as the two Cedar forbids (deterministic text).

    Args:
        bindings: purpose name -> binding, for every declared purpose.

    Returns:
        Cedar policy text; empty when ``bindings`` is empty.
    """
    if not bindings:
        return ""
    scope = f"forbid (principal, action in {_actions(BOUND_ACTIONS)}, resource)"
    ordered = sorted(bindings.items())
    by_action = " ||\n  ".join(
        f'(context.purpose == "{name}" && action in {_actions(b.actions)})' for name, b in ordered
    )
    by_role = " ||\n  ".join(
        f'(context.purpose == "{name}" && principal.roles.containsAny({_strings(b.roles)}))'
        for name, b in ordered
    )
    return (
        "// Generated from purposes.toml (bordergate.policy.purpose_binding):\n"
        "// a purpose permits only its declared actions, invoked by its declared roles.\n\n"
        f'@id("{PURPOSE_ACTION_POLICY}")\n{scope}\nunless {{\n  {by_action}\n}};\n\n'
        f'@id("{PURPOSE_ROLE_POLICY}")\n{scope}\nunless {{\n  {by_role}\n}};\n'
    )


def denial_code(denials: Iterable[Sequence[str]]) -> str:
    """The stable error code of a request whose every decision was denied.

    Args:
        denials: the determining ``@id``s of each denied decision.

    Returns:
        ``purpose_not_allowed`` when each denial names a purpose-binding forbid
        (the purpose does not permit the action, or the principal's roles may
        not invoke it), else ``policy_denied``.
    """
    listed = [set(ids) for ids in denials]
    if listed and all(PURPOSE_POLICIES & ids for ids in listed):
        return PURPOSE_NOT_ALLOWED
    return "policy_denied"
