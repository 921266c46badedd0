"""The identity authority's editable roster file, turned into a roster version.

The authority keeps its list in a TOML (or JSON) file that people edit::

    jurisdiction = "us"
    serial = 2

    [principals.alice]
    org = "ttus"
    org_kind = "local"
    location = "us"
    roles = ["analyst"]

    [principals.wei]
    org = "bytedance"
    org_kind = "parent"
    location = "cn"
    roles = ["engineer"]
    covered_person = true
    covered_person_basis = "202.211(a)(4): employee of an entity of a country of concern"

    [principals.carol]
    org = "usds"
    org_kind = "custodian"
    location = "us"
    roles = ["approver"]
    approver_keys = ["<base64 raw Ed25519 public key>"]

``roles``, ``approver_keys``, ``covered_person`` (false) and
``covered_person_basis`` (null) may be left out; nothing else may be added.
:func:`roster_from_source` makes the canonical version (``issued`` given by the
caller) that ``bordergate roster sign`` signs.  Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bordergate.entries import canonical_json
from bordergate.errors import VerificationError
from bordergate.roster.document import ROSTER_FORMAT, Roster, parse_roster

__all__ = ["roster_from_source", "source_template"]

_DEFAULTS: Mapping[str, Any] = {"roles": [], "approver_keys": [], "covered_person": False,
                                "covered_person_basis": None}


def roster_from_source(source: Mapping[str, Any], *, issued: str) -> Roster:
    """The roster version of an authority's file (see the module docstring).

    Raises:
        VerificationError: ``roster_malformed`` (members, types, the rules of
            :mod:`bordergate.roster.document`).
    """
    if not isinstance(source, Mapping) or set(source) != {"jurisdiction", "serial",
                                                           "principals"}:
        raise VerificationError("a roster file has exactly jurisdiction, serial and "
                                "[principals.<id>] tables", code="roster_malformed")
    principals = source["principals"]
    if not isinstance(principals, Mapping) or \
            not all(isinstance(p, Mapping) for p in principals.values()):
        raise VerificationError("principals must be tables by principal id",
                                code="roster_malformed")
    listed = {pid: {**_DEFAULTS, **body} for pid, body in principals.items()}
    for body in listed.values():
        if isinstance(body["roles"], list) and all(isinstance(r, str) for r in body["roles"]):
            body["roles"] = sorted(set(body["roles"]))
    try:
        document = canonical_json({"format": ROSTER_FORMAT,
                                   "jurisdiction": source["jurisdiction"],
                                   "serial": source["serial"], "issued": issued,
                                   "principals": listed})
    except ValueError as exc:
        raise VerificationError(f"roster file: {exc}", code="roster_malformed") from None
    return parse_roster(document)


def source_template(jurisdiction: str) -> str:
    """A starting roster file for ``jurisdiction`` (TOML)."""
    return (f'# The roster of everyone who may read {jurisdiction} data, as its identity\n'
            '# authority vouches (bordergate roster sign/publish).\n'
            f'jurisdiction = "{jurisdiction}"\nserial = 1\n\n'
            '[principals.example]\norg = "example-org"\norg_kind = "local"\n'
            f'location = "{jurisdiction}"\nroles = ["analyst"]\n'
            'covered_person = false\n')
