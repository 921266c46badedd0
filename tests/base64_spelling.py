"""Test helper: another spelling of the same bytes in standard base64.

A base64 text whose length is not a multiple of three bytes ends in a character
with unused low bits; a decoder that ignores them reads the same bytes from
another text.  Signed and compared texts must have one spelling only
(``tlog.note.decode_base64``); the tests of each use this to try the other.
"""

from __future__ import annotations

import base64

__all__ = ["respelled"]

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def respelled(text: str) -> str:
    """``text`` with the last character before its padding's lowest unused bit set
    the other way: the same bytes to a lenient decoder, another text."""
    if not text.endswith("="):
        raise ValueError("a text without padding has no unused bits")
    at = len(text.rstrip("=")) - 1
    other = text[:at] + _ALPHABET[_ALPHABET.index(text[at]) ^ 1] + text[at + 1:]
    assert base64.b64decode(other) == base64.b64decode(text) and other != text
    return other
