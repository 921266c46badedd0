"""The signed principal roster: who may read a jurisdiction's data, and as whom.

The identity authority of the jurisdiction whose data is read vouches, in a
signed **roster version**, for every principal who may read it: organisation,
org kind, location, roles, approver keys and covered-person status (28 CFR
202.211).  Gateways take a principal's attributes from the version in force,
never from token claims; the log holds each version's digest and signature (a
``roster`` entry) and every decision names the version it used; the document
is published content-addressed beside the policy bundles
(``rosters/sha256-<hex>.json``); the auditor checks every decision against it.

* :mod:`bordergate.roster.document`: the canonical document, digest, look-ups.
* :mod:`bordergate.roster.signing`: the authority's signature and its check.

This package must never trust a roster document whose digest and authority
signature it did not check.
"""

from __future__ import annotations

from bordergate.roster.document import (
    APPROVER_ROLE,
    MAX_ROSTER_BYTES,
    ROSTER_FORMAT,
    Roster,
    RosterPrincipal,
    parse_roster,
    roster_digest,
    roster_path,
)
from bordergate.roster.signing import (
    ROSTER_CONTEXT,
    RosterAuthority,
    RosterSignature,
    roster_statement,
    sign_roster,
)

__all__ = [
    "APPROVER_ROLE",
    "MAX_ROSTER_BYTES",
    "ROSTER_CONTEXT",
    "ROSTER_FORMAT",
    "Roster",
    "RosterAuthority",
    "RosterPrincipal",
    "RosterSignature",
    "parse_roster",
    "roster_digest",
    "roster_path",
    "roster_statement",
    "sign_roster",
]
