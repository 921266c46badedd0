"""The countries of concern: a reviewed deployment setting.

28 CFR 202.601 lists the countries of concern; the Attorney General may change
that list.  bordergate does not hard-code it in decisions: the deployment file
names it (``[dsp] countries_of_concern``, ISO 3166-1 alpha-2 codes), it is part
of every jurisdiction's deployment slice (a changed list is a changed release,
reviewed like any other, promise 6), and :data:`DEFAULT_COUNTRIES_OF_CONCERN`
is only the starting value.  China is listed with Hong Kong and Macau, which
§202.208 includes in "China" (docs/compliance.md, interpretations).

The roster, not this list, says who is a covered person (with the basis in
§202.211, signed by the identity authority); :func:`unflagged_principals` is the
cross-check an auditor runs between the two.

Pure: values in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["DEFAULT_COUNTRIES_OF_CONCERN", "parse_countries", "unflagged_principals"]

#: China (with Hong Kong and Macau), Cuba, Iran, North Korea, Russia, Venezuela.
DEFAULT_COUNTRIES_OF_CONCERN: tuple[str, ...] = ("CN", "CU", "HK", "IR", "KP", "MO", "RU",
                                                 "VE")
_CODE = re.compile(r"[A-Z]{2}")


def parse_countries(value: object) -> tuple[str, ...]:
    """A checked, sorted, duplicate-free tuple of country codes.

    Raises:
        ValueError: not a list of ISO 3166-1 alpha-2 codes (upper case).
    """
    if not isinstance(value, list | tuple):
        raise ValueError("countries_of_concern must be a list of ISO 3166-1 alpha-2 codes")
    codes = set()
    for item in value:
        if not isinstance(item, str) or _CODE.fullmatch(item) is None:
            raise ValueError(f"{str(item)[:16]!r} is not an upper-case two-letter country code")
        codes.add(item)
    return tuple(sorted(codes))


def unflagged_principals(principals: Mapping[str, Mapping[str, object]],
                         location_countries: Mapping[str, str],
                         countries: Iterable[str]) -> list[str]:
    """Principals located in a country of concern whom the roster does not mark covered.

    Being primarily resident in a country of concern makes a foreign individual
    a covered person (§202.211(a)(4)); a roster listing such a principal as not
    covered is either wrong or relies on another fact (e.g. U.S. citizenship,
    §202.211(b) example 2) that the auditor must see documented.

    Args:
        principals: roster principals by id (``location``, ``covered_person``).
        location_countries: country code of each location code (e.g. ``cn`` -> ``CN``).
        countries: the countries of concern.
    """
    concern = set(countries)
    return sorted(pid for pid, p in principals.items()
                  if location_countries.get(str(p.get("location")), "") in concern
                  and p.get("covered_person") is not True)
