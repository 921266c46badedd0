"""The one exception tree of bordergate, split by who is at fault.

Every error carries a stable, machine-readable ``code`` (snake case) that the
HTTP API puts into its ``application/problem+json`` bodies and the CLI prints;
codes never change once published.  The message is for people and may change.

    BordergateError                 base; never raised itself
    +-- VerificationError           untrusted input (a note, checkpoint, proof, tile,
    |   |                           token, log entry) is malformed or does not verify
    |   +-- UntrustedRedirect       a gateway sent the client to an address its own map
    |                               does not list for that jurisdiction; nothing sent
    +-- InvalidInput                a caller's request is malformed (maps to 4xx)
    |   +-- Unauthenticated         no, or a bad, bearer token (401)
    |   +-- NotFound                the thing asked for does not exist (404)
    |   +-- WrongJurisdiction       the subject is homed elsewhere (421)
    +-- PolicyDenied                policy said no (403)
    +-- Unavailable                 infrastructure cannot serve now (503): log, store,
    |   |                           key backend; the caller may retry later
    |   +-- PushBack                a queue is full; retry after ``retry_after`` seconds
    +-- Conflict                    the state forbids it (a second log writer, an
    |   |                           inconsistent checkpoint, a stale size) (409)
    |   +-- StaleState              a guarded log submission expected a state version
    |                               that has changed since; decide again and resubmit
    +-- ConfigError                 the deployment, schema or policy files are wrong

Plain ``ValueError``/``TypeError`` are reserved for programmer misuse (calling a
pure function with arguments its contract excludes); a parser of untrusted bytes
must never let them escape.  This module must never import anything else of
bordergate.
"""

from __future__ import annotations

__all__ = [
    "BordergateError",
    "ConfigError",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "PolicyDenied",
    "PushBack",
    "StaleState",
    "Unauthenticated",
    "Unavailable",
    "UntrustedRedirect",
    "VerificationError",
    "WrongJurisdiction",
]


class BordergateError(Exception):
    """Base of every bordergate error; ``code`` is stable, ``str()`` is for people."""

    default_code = "error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return self.message


class VerificationError(BordergateError):
    """Untrusted input was malformed or failed a cryptographic or structural check."""

    default_code = "verification_failed"
    http_status = 422


class UntrustedRedirect(VerificationError):
    """A gateway named, in a 421 or an HTTP redirect, an address that the client's own
    gateway map does not list for the jurisdiction named; nothing was sent there.

    ``home`` is the jurisdiction the answer named and ``location`` the address.
    """

    default_code = "untrusted_redirect"

    def __init__(self, message: str, *, home: str, location: str | None) -> None:
        super().__init__(message)
        self.home = home
        self.location = location


class InvalidInput(BordergateError):
    """The caller's request was malformed; nothing was done."""

    default_code = "invalid_input"
    http_status = 400


class Unauthenticated(InvalidInput):
    """The bearer token is missing, malformed, expired or not from a trusted issuer."""

    default_code = "unauthenticated"
    http_status = 401


class NotFound(InvalidInput):
    """The record, subject, index or object asked for does not exist."""

    default_code = "not_found"
    http_status = 404


class WrongJurisdiction(InvalidInput):
    """The subject is homed in another jurisdiction; ``home`` names it."""

    default_code = "wrong_jurisdiction"
    http_status = 421

    def __init__(self, message: str, *, home: str, location: str | None = None) -> None:
        super().__init__(message)
        self.home = home
        self.location = location


class PolicyDenied(BordergateError):
    """Policy denied the request."""

    default_code = "policy_denied"
    http_status = 403


class Unavailable(BordergateError):
    """Infrastructure (log, store, key backend) cannot serve now: fail closed."""

    default_code = "unavailable"
    http_status = 503


class PushBack(Unavailable):
    """A bounded queue is full; nothing was accepted. Retry after ``retry_after`` s."""

    default_code = "push_back"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(BordergateError):
    """The current state forbids the operation (e.g. a second writer of one log)."""

    default_code = "conflict"
    http_status = 409


class StaleState(Conflict):
    """A guarded log submission expected state versions that are no longer current.

    ``current`` maps each stale state key to its current version (the index of
    the last entry that changed it, -1 if none did).  Nothing was sequenced; the
    caller decides again under the current state and resubmits.
    """

    default_code = "stale_state"

    def __init__(self, message: str, *, current: dict[str, int]) -> None:
        super().__init__(message)
        self.current = dict(current)


class ConfigError(BordergateError):
    """A deployment, schema or policy file is wrong; the message names where."""

    default_code = "config_invalid"
