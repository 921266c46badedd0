"""The error tree: stable codes and HTTP statuses that clients depend on."""

from __future__ import annotations

import pytest

from bordergate import errors


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (errors.VerificationError, "verification_failed", 422),
        (errors.InvalidInput, "invalid_input", 400),
        (errors.NotFound, "not_found", 404),
        (errors.PolicyDenied, "policy_denied", 403),
        (errors.Unavailable, "unavailable", 503),
        (errors.Conflict, "conflict", 409),
        (errors.ConfigError, "config_invalid", 500),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_default_codes_are_stable(
    cls: type[errors.BordergateError], code: str, status: int
) -> None:
    """Behaviour: every error carries a stable machine code and HTTP status."""
    err = cls("something went wrong")
    assert err.code == code
    assert err.http_status == status
    assert str(err) == "something went wrong"


def test_push_back_is_unavailable_with_retry_after() -> None:
    """Promise 3 support: a full queue is a 503 with Retry-After, never a drop."""
    err = errors.PushBack("queue full", retry_after=2.5)
    assert isinstance(err, errors.Unavailable)
    assert err.retry_after == 2.5
    assert err.code == "push_back"


def test_wrong_jurisdiction_names_home() -> None:
    """Promise 2: a foreign subject is answered with 421 and its home."""
    err = errors.WrongJurisdiction("homed in eu", home="eu", location="http://127.0.0.1:8002")
    assert err.http_status == 421
    assert err.home == "eu"


def test_specific_code_overrides_default() -> None:
    """Behaviour: callers may give a more precise stable code."""
    assert errors.InvalidInput("bad id", code="malformed_subject_id").code == "malformed_subject_id"
