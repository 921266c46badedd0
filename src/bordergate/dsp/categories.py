"""The DSP categories of sensitive personal data a schema field may carry.

28 CFR 202.249(a) names six categories: covered personal identifiers, precise
geolocation data, biometric identifiers, human 'omic data, personal health
data and personal financial data.  bordergate splits human 'omic data in two
(``human_genomic`` and ``human_omic``) because §202.205(a) sets a lower bulk
threshold for genomic data (more than 100 U.S. persons) than for the other
'omic data (more than 1,000).  A field may also be flagged as
government-related data (§202.222), for which no bulk threshold applies.

The thresholds below are the text's (§202.205(a)-(f)); what the gateway does
at one is product policy, configured elsewhere (docs/compliance.md).  The
threshold is crossed when the count is *more than* the number: §202.205 says
"more than 1,000 U.S. persons", so 1,000 is still below it.

Pure: values in, values out.
"""

from __future__ import annotations

import enum

__all__ = ["DspCategory", "parse_category"]


class DspCategory(enum.StrEnum):
    """A category of sensitive personal data (28 CFR 202.249(a))."""

    COVERED_PERSONAL_IDENTIFIERS = "covered_personal_identifiers"
    PRECISE_GEOLOCATION = "precise_geolocation"
    BIOMETRIC_IDENTIFIERS = "biometric_identifiers"
    HUMAN_GENOMIC = "human_genomic"
    HUMAN_OMIC = "human_omic"
    PERSONAL_HEALTH = "personal_health"
    PERSONAL_FINANCIAL = "personal_financial"

    @property
    def bulk_threshold(self) -> int:
        """The number §202.205 says bulk is *more than* (persons, or devices)."""
        return _THRESHOLDS[self]

    @property
    def counted_in_devices(self) -> bool:
        """Whether §202.205(c) counts this category in U.S. devices, not persons."""
        return self is DspCategory.PRECISE_GEOLOCATION

    @property
    def paragraph(self) -> str:
        """The paragraph of §202.205 that sets the threshold."""
        return _PARAGRAPHS[self]


_THRESHOLDS = {
    DspCategory.HUMAN_GENOMIC: 100,
    DspCategory.HUMAN_OMIC: 1_000,
    DspCategory.BIOMETRIC_IDENTIFIERS: 1_000,
    DspCategory.PRECISE_GEOLOCATION: 1_000,
    DspCategory.PERSONAL_HEALTH: 10_000,
    DspCategory.PERSONAL_FINANCIAL: 10_000,
    DspCategory.COVERED_PERSONAL_IDENTIFIERS: 100_000,
}
_PARAGRAPHS = {
    DspCategory.HUMAN_GENOMIC: "28 CFR 202.205(a)",
    DspCategory.HUMAN_OMIC: "28 CFR 202.205(a)",
    DspCategory.BIOMETRIC_IDENTIFIERS: "28 CFR 202.205(b)",
    DspCategory.PRECISE_GEOLOCATION: "28 CFR 202.205(c)",
    DspCategory.PERSONAL_HEALTH: "28 CFR 202.205(d)",
    DspCategory.PERSONAL_FINANCIAL: "28 CFR 202.205(e)",
    DspCategory.COVERED_PERSONAL_IDENTIFIERS: "28 CFR 202.205(f)",
}


def parse_category(value: object) -> DspCategory:
    """The category named ``value``.

    Raises:
        ValueError: ``value`` names no category (callers turn this into their
            own stable error code).
    """
    if not isinstance(value, str):
        raise ValueError(f"a DSP category is a name, not {type(value).__name__}")
    try:
        return DspCategory(value)
    except ValueError:
        known = ", ".join(c.value for c in DspCategory)
        raise ValueError(f"unknown DSP category {value[:64]!r} (known: {known})") from None
