"""Subject and record identifiers that carry their home jurisdiction.

Promise 1 (residency) routes on the subject id alone: the home gateway mints
``<jurisdiction>-<random>`` ids, so any gateway can tell where a subject lives
without a global directory.  The random part is 128 bits from the OS CSPRNG,
written as 26 lowercase base32 characters without padding; parsing is strict
and canonical (one string per id), so ids can be compared as strings.

Record ids are opaque, URL-safe strings chosen by the operator;
a record belongs to exactly one subject, which the store keeps beside it.

This module is pure: no I/O, no clock.  It must never accept an id it cannot
print back byte for byte, and never let ``ValueError`` escape a parser.  It is
a leaf shared by ``keys`` (data keys are per subject) and ``residency``: it must
never import either.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass

from bordergate.errors import InvalidInput, WrongJurisdiction

__all__ = [
    "JURISDICTION_PATTERN",
    "RECORD_ID_PATTERN",
    "SubjectId",
    "parse_jurisdiction",
    "parse_record_id",
    "require_home",
]

#: A jurisdiction code: 2 to 8 lowercase ASCII letters (``us``, ``eu``, ``cn``).
JURISDICTION_PATTERN = re.compile(r"[a-z]{2,8}")
#: A record id: 1 to 128 URL-safe characters (RFC 4648 section 5 alphabet).
RECORD_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")

_RANDOM_BYTES = 16  # 128 bits
# 26 base32 characters carry 130 bits; the last character's two low bits are
# padding and must be zero (a, e, i, m, q, u, y, 4), so the pattern alone
# accepts exactly the canonical encodings of 16 bytes.
_SUBJECT_PATTERN = re.compile(r"([a-z]{2,8})-([a-z2-7]{25}[aeimquy4])")


def parse_jurisdiction(code: str) -> str:
    """Check a jurisdiction code and return it.

    Raises:
        InvalidInput: ``malformed_jurisdiction`` if it is not 2-8 lowercase letters.
    """
    if not isinstance(code, str) or JURISDICTION_PATTERN.fullmatch(code) is None:
        raise InvalidInput(
            f"jurisdiction code must be 2-8 lowercase letters, got {code!r}",
            code="malformed_jurisdiction",
        )
    return code


def parse_record_id(record_id: str) -> str:
    """Check a record id (1-128 URL-safe characters) and return it.

    Raises:
        InvalidInput: ``malformed_record_id`` otherwise.
    """
    if not isinstance(record_id, str) or RECORD_ID_PATTERN.fullmatch(record_id) is None:
        raise InvalidInput(
            "record id must be 1-128 characters of A-Z a-z 0-9 _ -",
            code="malformed_record_id",
        )
    return record_id


@dataclass(frozen=True, slots=True)
class SubjectId:
    """A data subject's id: home jurisdiction plus 128 random bits.

    ``str(subject)`` is the canonical wire form ``<jurisdiction>-<random>``.
    """

    jurisdiction: str
    random: str

    def __str__(self) -> str:
        return f"{self.jurisdiction}-{self.random}"

    @property
    def home(self) -> str:
        """The jurisdiction that holds this subject's data (promise 1)."""
        return self.jurisdiction

    @classmethod
    def mint(cls, jurisdiction: str) -> SubjectId:
        """Mint a new subject id homed in ``jurisdiction``.

        Raises:
            InvalidInput: ``malformed_jurisdiction`` if the code is not valid.
        """
        parse_jurisdiction(jurisdiction)
        raw = secrets.token_bytes(_RANDOM_BYTES)
        random = base64.b32encode(raw).rstrip(b"=").decode("ascii").lower()
        return cls(jurisdiction, random)

    @classmethod
    def parse(cls, text: str) -> SubjectId:
        """Parse the canonical form ``<jurisdiction>-<26 base32 chars>``.

        Raises:
            InvalidInput: ``malformed_subject_id`` for anything else, including
                non-canonical base32 (non-zero padding bits).
        """
        if not isinstance(text, str) or len(text) > 40:
            raise InvalidInput("malformed subject id", code="malformed_subject_id")
        match = _SUBJECT_PATTERN.fullmatch(text)
        if match is None:
            raise InvalidInput("malformed subject id", code="malformed_subject_id")
        jurisdiction, random = match.group(1), match.group(2)
        return cls(jurisdiction, random)


def require_home(subject: SubjectId, jurisdiction: str) -> SubjectId:
    """Return ``subject`` if it is homed in ``jurisdiction`` (promise 1).

    Raises:
        WrongJurisdiction: ``wrong_jurisdiction`` with ``home`` set to the
            subject's home, for any subject homed elsewhere.
    """
    if subject.jurisdiction != jurisdiction:
        raise WrongJurisdiction(
            f"subject is homed in {subject.jurisdiction!r}, not {jurisdiction!r}",
            home=subject.jurisdiction,
        )
    return subject
