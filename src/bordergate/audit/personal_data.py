"""A heuristic scan of log entries for field values and raw ids (promise 7).

Entries must carry field names, classes and keyed pseudonyms, never values or
raw subject ids.  An auditor cannot prove absence, but it can look for what
values look like: e-mail addresses, phone numbers, long digit runs (card,
account or government numbers), IPv4 addresses, and anything shaped like a
raw subject id (``<jurisdiction>-<26 base32>``).

The scan has two stages: one compiled regular expression over the raw entry
bytes (fast; almost every clean entry stops here), then, on a hit, a walk over
the parsed entry's string values that skips what is known to be safe there
(pseudonyms, digests, approval ids, times, signatures and keys of reviews) and
names the JSON path of each suspicious value.  It reports *kinds and paths*,
never the values themselves.

Pure: this module must never do I/O, and never return a matched value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["scan_entry"]

_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_PHONE = (r"(?:\+[0-9]{1,3}[ .-]?)(?:\(?[0-9]{1,4}\)?[ .-]?){2,5}[0-9]{2,4}"
          r"|\(?[0-9]{3}\)?[ .-][0-9]{3}-[0-9]{4}")
_DIGITS = r"(?<![0-9A-Za-z:])[0-9]{9,}(?![0-9A-Za-z])"
_IPV4 = r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9.])"
_SUBJECT = r"(?<![A-Za-z0-9])[a-z]{2,8}-[a-z2-7]{25}[aeimquy4](?![A-Za-z0-9])"

_PATTERNS = {
    "email address": re.compile(_EMAIL),
    "phone number": re.compile(_PHONE),
    "long digit run": re.compile(_DIGITS),
    "IPv4 address": re.compile(_IPV4),
    "raw subject id": re.compile(_SUBJECT),
}
# Stage one, over raw bytes: anchored on rare characters so that it runs in linear
# time (no leading unbounded class); a JSON integer (a time, a k) follows ':', ',' or
# '['; an approval id ('apr-' and 26 base32) is skipped here and re-checked in stage two.
_RAW = re.compile(
    rb"@[A-Za-z0-9-]+\.[A-Za-z]"
    rb"|(?<![0-9A-Za-z:,\[])[0-9]{9,}(?![0-9A-Za-z])"
    rb"|(?<![0-9.])[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9.])"
    rb"|\+[0-9]{1,3}[ .(-]?[0-9]"
    rb"|[0-9]{3}\)?[ .-][0-9]{3}-[0-9]{4}"
    rb"|(?<!apr)-[a-z2-7]{25}[aeimquy4](?![A-Za-z0-9])")

_SAFE = re.compile(
    r"(?:subject|record|[a-z]+):[0-9a-f]{64}"          # keyed pseudonyms
    r"|sha256:[0-9a-f]{64}"                            # digests
    r"|apr-[a-z2-7]{26}"                               # approval ids
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z"           # entry times
    # 32 bytes in base64 (a key-access entry's leaf hash): random, so now and then
    # it holds '+' and digits that read as a phone number
    r"|[A-Za-z0-9+/]{43}="
)
# Keys whose values are cryptographic material or digest maps (release manifests);
# ``receipt_key``: the gateway's receipt verifier key in ``gateway-start`` (issue 12).
_SKIP_KEYS = frozenset({"signature", "key", "manifest", "receipt_key"})


def scan_entry(data: bytes, body: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
               ) -> list[tuple[str, str]]:
    """Suspicious values of one entry as ``(kind, JSON path)``; empty when clean.

    Args:
        data: the entry's raw bytes (stage one).
        body: the parsed entry, or a function returning it (called only when
            stage one found something).
    """
    if _RAW.search(data) is None:
        return []
    parsed = body() if callable(body) else body
    out: list[tuple[str, str]] = []
    for path, value in _strings(parsed, "$"):
        if _SAFE.fullmatch(value):
            continue
        for kind, pattern in _PATTERNS.items():
            if pattern.search(value):
                out.append((kind, path))
                break
    return out


def _strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key in _SKIP_KEYS:
                continue
            yield path + "." + _safe_key(str(key)), key
            yield from _strings(item, path + "." + _safe_key(str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def _safe_key(key: str) -> str:
    """A key fit to print: keys are untrusted too, so odd ones are not echoed."""
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,40}", key) else "<key>"
