"""How a finding quotes what an entry says: never an untrusted string verbatim.

Findings are published in the report; an entry is untrusted input.  Every value
of an entry that goes into a finding's text or detail passes through one of
these functions, which keep plain printable ASCII and cut it short.

Pure: this module must never do I/O, and never return a control character or a
string longer than its cap.
"""

from __future__ import annotations

__all__ = ["clean", "code", "describe", "integer", "name", "short", "whole_seconds"]


def describe(exc: BaseException) -> str:
    """An exception's message, cleaned and cut to 160 characters."""
    return clean(str(exc))[:160]


def clean(text: str) -> str:
    """A message with anything that is not plain printable ASCII replaced."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:400]


def short(text: str) -> str:
    """An identifier (digest, release) cut to 24 characters."""
    return clean(text)[:24] + ("..." if len(text) > 24 else "")


def code(text: str) -> str:
    """A short alphanumeric code (a jurisdiction), or ``?``."""
    return text if text.isascii() and text.isalnum() and len(text) <= 16 else "?"


def name(text: str) -> str:
    """A field name, cleaned and cut to 64 characters."""
    return clean(text)[:64]


def integer(value: object) -> int | str:
    """An integer as is, anything else as ``?``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else "?"


def whole_seconds(value: object) -> int:
    """A whole, non-negative number of seconds below 2**63.

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError("not a whole number of seconds")
    return value
