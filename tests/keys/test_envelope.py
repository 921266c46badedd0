"""Envelope format: versioned sealed values; the AAD binds a value to one field of one record."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from bordergate.errors import VerificationError
from bordergate.keys.envelope import (
    FORMAT_V1,
    SEAL_OVERHEAD,
    data_key_aad,
    field_aad,
    field_aad_prefix,
    field_aad_suffix,
    open_sealed,
    seal,
)

AEAD = AESGCM(bytes(range(32)))  # test-only key
PLACE = ("us", "us-aaaa", "users", "r1", "email")


def test_seal_open_round_trip_and_format() -> None:
    """Promise 1: a sealed value is format v1, hides the plaintext and opens with its AAD."""
    aad = field_aad(*PLACE)
    sealed = seal(AEAD, b"alice@example.com", aad)
    assert sealed[0] == FORMAT_V1
    assert len(sealed) == len(b"alice@example.com") + SEAL_OVERHEAD
    assert b"alice" not in sealed
    assert open_sealed(AEAD, sealed, aad) == b"alice@example.com"
    assert field_aad_prefix(*PLACE[:4]) + field_aad_suffix(PLACE[4]) == aad


@pytest.mark.parametrize("index", range(5), ids=["jurisdiction", "subject", "collection",
                                                 "record", "field"])
def test_moving_a_ciphertext_anywhere_else_fails(index: int) -> None:
    """Promise 1: changing any bound component of the AAD makes the value unopenable."""
    sealed = seal(AEAD, b"secret", field_aad(*PLACE))
    moved = list(PLACE)
    moved[index] = moved[index] + "x"
    with pytest.raises(VerificationError) as info:
        open_sealed(AEAD, sealed, field_aad(*moved))
    assert info.value.code == "decryption_failed"


@pytest.mark.parametrize("sealed", [b"", b"\x01" * 5, b"\x02" + bytes(40)],
                         ids=["empty", "truncated", "unknown-version"])
def test_malformed_sealed_values(sealed: bytes) -> None:
    """Behaviour: malformed sealed bytes are a VerificationError (sealed_format)."""
    with pytest.raises(VerificationError) as info:
        open_sealed(AEAD, sealed, b"")
    assert info.value.code == "sealed_format"


parts = st.text(max_size=12)


@given(st.tuples(parts, parts, parts, parts, parts), st.tuples(parts, parts, parts, parts, parts))
def test_field_aad_is_injective(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    """Promise 1: distinct places never share an AAD (length-prefixed components)."""
    try:
        aad_a, aad_b = field_aad(*a), field_aad(*b)
    except UnicodeEncodeError:
        return
    assert (aad_a == aad_b) == (a == b)


def test_data_key_aad_binds_subject_and_version() -> None:
    """Promise 8: a wrapped key's AAD differs per subject and per KEK version."""
    assert data_key_aad("us", "s", 1) != data_key_aad("us", "s", 2)
    assert data_key_aad("us", "s", 1) != data_key_aad("us", "t", 1)
    assert data_key_aad("us", "s", 1) != field_aad("us", "s", "", "", "1")
