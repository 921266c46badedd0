"""Subject ids carry their home; parsing is strict and canonical."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.errors import InvalidInput, WrongJurisdiction
from bordergate.subjects import (
    SubjectId,
    parse_jurisdiction,
    parse_record_id,
    require_home,
)

JURISDICTIONS = st.from_regex(r"[a-z]{2,8}", fullmatch=True)


@given(JURISDICTIONS)
def test_minted_ids_round_trip_and_carry_their_home(code: str) -> None:
    """Promise 1: a minted id parses back to itself and names its home."""
    subject = SubjectId.mint(code)
    assert SubjectId.parse(str(subject)) == subject
    assert subject.home == code
    assert str(subject).startswith(code + "-")


def test_minted_ids_have_128_random_bits() -> None:
    """Promise 1: the random part is 26 base32 characters = 16 bytes, and ids differ."""
    ids = {str(SubjectId.mint("us")) for _ in range(1000)}
    assert len(ids) == 1000
    random = next(iter(ids)).split("-", 1)[1]
    assert len(base64.b32decode(random.upper() + "======")) == 16


VALID = str(SubjectId.mint("us"))
MALFORMED = {
    "empty": "",
    "no-dash": VALID.replace("-", ""),
    "upper-jurisdiction": "US" + VALID[2:],
    "one-letter-jurisdiction": "u" + VALID[2:],
    "long-jurisdiction": "abcdefghi" + VALID[2:],
    "digit-jurisdiction": "u5" + VALID[2:],
    "short-random": VALID[:-1],
    "long-random": VALID + "a",
    "upper-random": VALID[:3] + VALID[3:].upper(),
    "bad-alphabet": VALID[:-2] + "18",
    "non-canonical-padding-bits": VALID[:-1] + ("b" if VALID[-1] != "b" else "c"),
    "trailing-newline": VALID + "\n",
    "unicode": "üs" + VALID[2:],
    "huge": "us-" + "a" * 10_000,
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_subject_ids_are_refused_with_a_stable_code(text: str) -> None:
    """Behaviour: SubjectId.parse rejects malformed ids with malformed_subject_id."""
    with pytest.raises(InvalidInput) as info:
        SubjectId.parse(text)
    assert info.value.code == "malformed_subject_id"


def test_non_string_subject_id_is_refused() -> None:
    """Behaviour: a non-string (e.g. from JSON) is a malformed id, not a TypeError."""
    with pytest.raises(InvalidInput) as info:
        SubjectId.parse(123)  # type: ignore[arg-type]
    assert info.value.code == "malformed_subject_id"


@given(st.text(max_size=60))
def test_parse_never_leaks_other_exceptions(text: str) -> None:
    """Behaviour: any string either parses canonically or raises InvalidInput."""
    try:
        subject = SubjectId.parse(text)
    except InvalidInput as exc:
        assert exc.code == "malformed_subject_id"
    else:
        assert str(subject) == text


def test_require_home_refuses_foreign_subjects() -> None:
    """Promise 1: a subject homed in eu is refused by us, naming its home."""
    eu = SubjectId.mint("eu")
    assert require_home(eu, "eu") is eu
    with pytest.raises(WrongJurisdiction) as info:
        require_home(eu, "us")
    assert info.value.home == "eu"
    assert info.value.code == "wrong_jurisdiction"


@pytest.mark.parametrize("code", ["", "u", "USA", "u-s", "abcdefghi", "us "])
def test_malformed_jurisdictions(code: str) -> None:
    """Behaviour: jurisdiction codes are 2-8 lowercase letters."""
    with pytest.raises(InvalidInput) as info:
        parse_jurisdiction(code)
    assert info.value.code == "malformed_jurisdiction"
    with pytest.raises(InvalidInput):
        SubjectId.mint(code)


@pytest.mark.parametrize("record_id", ["", "a/b", "a b", "x" * 129, "é", "a.b"])
def test_malformed_record_ids(record_id: str) -> None:
    """Behaviour: record ids are 1-128 URL-safe characters."""
    with pytest.raises(InvalidInput) as info:
        parse_record_id(record_id)
    assert info.value.code == "malformed_record_id"

