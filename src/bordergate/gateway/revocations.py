"""Token revocation: ``token-revoke`` log entries, and the set every worker applies.

A bearer token is revoked by appending a ``token-revoke`` entry that names its
``jti`` to the jurisdiction's log, through the log's single writer.  The entry
is in the signed, witnessed log, so the revocation is public, ordered and
auditable; it is not a release.  No separate signature: the log's checkpoint
signature (and the witnesses' cosignatures) cover it.  Who may revoke:

* the custodian operator, with ``bordergate gateway revoke-token``
  (``bordergate.token_commands``, through ``custody_log``: the sequencer
  service, or the log storage when no gateway holds it); the entry says
  ``"by": "custodian"``;
* a custodian principal of the jurisdiction, through a running gateway
  (``POST /v1/tokens/revoke``, :func:`revocation_request`); the entry names
  the principal in ``by``, and that worker applies it before it answers.

Every gateway worker keeps a :class:`TokenRevocations`, the revoked ``jti``
values of its log with the index of their entry.  It is built by reading the
whole log at start-up, then kept up to date by the worker's
:class:`~bordergate.gateway.log_follower.LogFollower`, which polls the log's
checkpoint every ``POLL_INTERVAL`` seconds and hands it the entries it has not
seen.  A worker
therefore refuses a revoked token (``token_revoked``, 401) at most
``POLL_INTERVAL`` plus the sequencer's checkpoint interval (1 s) after the
revoke entry was sequenced: about 1.5 s, documented as "within 2 seconds"
in docs/design.md.

The one per-request check is :meth:`TokenRevocations.__contains__`, called by
``gateway.auth.VerifiedTokenCache`` for every request, cached token or not.
Revocations are ordered with decisions: ``TokenRevocations.version`` (the
index of the last ``token-revoke`` entry read, counted with
``entry_state.state_keys`` as the sequencer counts it) is read before the
token is checked, and every entry of the decision goes to the sequencer
guarded by it (``gateway.decided_state``): a decision made before a
revocation the sequencer has already sequenced is refused, and the gateway
catches up and decides again.  So no entry after a ``token-revoke`` entry
records a use of the revoked token.

This module must never hold a token: only ``jti`` values, random ids that
identify no person.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable

from bordergate.entries import encode_entry
from bordergate.entry_state import REVOCATIONS_KEY, state_keys
from bordergate.errors import InvalidInput, PolicyDenied
from bordergate.policy.entities import Principal

__all__ = [
    "TokenRevocations",
    "parse_jti",
    "revocation_request",
    "token_revoke_entry",
]

log = logging.getLogger(__name__)

_MARK = b'"type":"token-revoke"'
_JTI = re.compile(r"[A-Za-z0-9_-]{16,64}")
_MAX_REASON = 200


def parse_jti(text: str) -> str:
    """Check a token id as the verifier accepts it (16 to 64 URL-safe characters).

    Raises:
        InvalidInput: ``invalid_jti``.
    """
    if not isinstance(text, str) or _JTI.fullmatch(text) is None:
        raise InvalidInput("a token id (jti) is 16 to 64 URL-safe characters",
                           code="invalid_jti")
    return text


def token_revoke_entry(jti: str, now: float, *, by: object = "custodian",
                       reason: str = "") -> bytes:
    """The canonical ``token-revoke`` entry naming ``jti``.

    Raises:
        InvalidInput: ``invalid_jti``, or ``invalid_reason`` (over 200 characters).
    """
    if not isinstance(reason, str) or len(reason) > _MAX_REASON:
        raise InvalidInput(f"a reason is at most {_MAX_REASON} characters",
                           code="invalid_reason")
    return encode_entry("token-revoke", now, {"jti": parse_jti(jti), "by": by,
                                              "reason": reason})


def revocation_request(principal: Principal, jurisdiction: str, payload: object
                       ) -> tuple[str, str]:
    """The ``jti`` and ``reason`` of a ``POST /v1/tokens/revoke`` body, if the
    principal may revoke here: a custodian principal of this jurisdiction (the
    jurisdiction's issuer's side), never anyone else.

    Raises:
        PolicyDenied: ``token_revoke_forbidden``.
        InvalidInput: ``malformed_body``, ``invalid_jti``, ``invalid_reason``.
    """
    if principal.org_kind != "custodian" or principal.location != jurisdiction:
        raise PolicyDenied("only a custodian principal of this jurisdiction may revoke "
                           "tokens", code="token_revoke_forbidden")
    if not isinstance(payload, dict) or set(payload) - {"jti", "reason"}:
        raise InvalidInput("the body is {\"jti\": ..., \"reason\": ...}", code="malformed_body")
    reason = payload.get("reason", "")
    if not isinstance(reason, str) or len(reason) > _MAX_REASON:
        raise InvalidInput(f"a reason is a string of at most {_MAX_REASON} characters",
                           code="invalid_reason")
    return parse_jti(payload.get("jti")), reason  # type: ignore[arg-type]


class TokenRevocations:
    """The revoked token ids of one log, and how much of the log has been read.

    Attributes:
        next_index: the first log index not read yet.
        version: the index of the last ``token-revoke`` entry applied, or -1.
    """

    def __init__(self) -> None:
        self._revoked: dict[str, int] = {}
        self.next_index = 0
        self.version = -1

    def __contains__(self, jti: object) -> bool:
        """Whether the token ``jti`` is revoked: the check of every request."""
        return jti in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def revoked_at(self, jti: str) -> int | None:
        """The index of the entry that revoked ``jti``, or None."""
        return self._revoked.get(jti)

    def add(self, jti: str, index: int) -> None:
        """Apply a revocation this worker appended itself, at once (the follower
        still reads the log up to it: ``next_index`` does not move)."""
        if jti not in self._revoked:
            self._revoked[jti] = index
        self.version = max(self.version, index)

    def apply(self, first_index: int, entries: Iterable[bytes]) -> list[str]:
        """Apply the ``token-revoke`` entries among ``entries`` (the log's, from
        ``first_index`` on, contiguous); returns the ids newly revoked.

        Every entry the log's sequencer counts as a change of the revocations
        (``entry_state.state_keys``) moves :attr:`version`, so the gateway's
        version and the sequencer's agree on what the gateway has read.
        """
        added: list[str] = []
        index = first_index - 1
        for index, raw in enumerate(entries, first_index):
            if _MARK not in raw or REVOCATIONS_KEY not in state_keys(raw):
                continue
            # a JSON object of a known entry version (state_keys checked): its ``jti``
            # is revoked even if another member is malformed (never stuck on one)
            jti = json.loads(raw).get("jti")
            if isinstance(jti, str) and jti not in self._revoked:
                self._revoked[jti] = index
                added.append(jti)
            # after the id (a request that reads this version finds it revoked), and
            # for every entry the sequencer counts, a repeated revocation included
            self.version = max(self.version, index)
        self.next_index = max(self.next_index, index + 1)
        if added:  # the operator's record of when this worker started refusing them
            log.info("token revocations applied: %d (log entries up to %d read)",
                     len(added), index)
        return added
