"""Append credentials (issue 12 item 2): the token and credential-list formats, and
authentication by id and secret (the sequencer attests which credential appended)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.errors import VerificationError
from bordergate.tlog.credentials import (
    AppendCredential,
    CredentialList,
    parse_credential,
    parse_credential_list,
)

ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,30}", fullmatch=True)


@given(st.lists(ids, min_size=1, max_size=5, unique=True))
def test_credentials_round_trip_and_authenticate(names: list[str]) -> None:
    """Each issued credential parses back from its token, its list line parses back,
    and the list authenticates each credential as its own id and nothing else."""
    creds = [AppendCredential.issue(n) for n in names]
    listed = parse_credential_list(CredentialList.of(creds).to_text())
    assert listed.ids == frozenset(names)
    for c in creds:
        assert parse_credential(c.token) == c
        assert listed.authenticate(f"Bearer {c.token}") == c.id
        forged = AppendCredential(c.id, AppendCredential.issue("x").secret)
        assert listed.authenticate(f"Bearer {forged.token}") is None


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer x", "Basic a." + "b" * 40,
                                    "Bearer unknown." + "b" * 43],
                         ids=["empty", "no-token", "no-secret", "not-bearer", "unknown-id"])
def test_bad_authorization_is_refused(header: str) -> None:
    """Bad input: a missing, malformed or unknown credential authenticates nobody."""
    listed = CredentialList.of([AppendCredential.issue("a")])
    assert listed.authenticate(header) is None


@pytest.mark.parametrize("text", ["a sha256:00", "A sha256:" + "0" * 64,
                                  "a sha256:" + "0" * 64 + "\na sha256:" + "1" * 64],
                         ids=["short-hash", "uppercase-id", "repeated-id"])
def test_malformed_credential_list_is_refused(text: str) -> None:
    """Bad input: a malformed or repeated line is ``malformed_credential_list``."""
    with pytest.raises(VerificationError) as e:
        parse_credential_list(text)
    assert e.value.code == "malformed_credential_list"


@given(st.text(max_size=80))
def test_parse_credential_never_leaks(text: str) -> None:
    """A parser of untrusted text raises VerificationError or returns a credential."""
    try:
        parse_credential(text)
    except VerificationError as e:
        assert e.code == "malformed_credential"
