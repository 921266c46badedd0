"""TEST-ONLY approver keys (fixed seeds) and signed approval-change bodies.

Reproducible crypto fixtures: each approver's Ed25519 key is derived from its
name, so tests, the log generator and expected findings agree run after run.
Never use these keys outside tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bordergate.approval_statement import (
    ApprovalStatement,
    MappingApproverKeys,
    key_text,
    sign_statement,
)
from bordergate.config import load_config
from bordergate.policy.entities import Principal
from bordergate.roster import Roster, RosterPrincipal, sign_roster
from bordergate.roster_commands import publish_signed_roster
from bordergate.tlog.note import Signer


def approver_key(name: str) -> ed25519.Ed25519PrivateKey:
    """The TEST-ONLY private key of approver ``name``."""
    seed = hashlib.sha256(b"bordergate TEST-ONLY approver key\x00" + name.encode()).digest()
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def public_key(name: str) -> bytes:
    """The raw public key of :func:`approver_key`."""
    return approver_key(name).public_key().public_bytes(serialization.Encoding.Raw,
                                                        serialization.PublicFormat.Raw)


def public_text(name: str) -> str:
    """:func:`public_key` in base64 (as rosters and auditor configs list it)."""
    return key_text(public_key(name))


def keys_for(names: Iterable[str]) -> MappingApproverKeys:
    """Each named approver's one test key."""
    return MappingApproverKeys({n: (public_key(n),) for n in names})


def signed_body(approval: Mapping[str, Any], verdict: str, approver: str, log_origin: str, /, *,
                key: ed25519.Ed25519PrivateKey | None = None, **changes: str
                ) -> dict[str, Any]:
    """The body of a grant/deny/revoke of ``approval`` (the API's approval JSON,
    holding ``request_digest``) signed by ``approver`` (with ``key``, default its
    own); ``changes`` alter the statement's members (forgeries)."""
    statement = ApprovalStatement(
        origin=changes.get("origin", log_origin), approval=changes.get("approval", approval["id"]),
        request=changes.get("request", approval["request_digest"]),
        verdict=changes.get("verdict", verdict), approver=changes.get("approver", approver))
    signed = sign_statement(statement, key or approver_key(approver))
    return {"statement": signed.to_json()}


#: TEST-ONLY identity authority of every test jurisdiction (fixed seed).
AUTHORITY = Signer.from_seed("test-identity-authority",
                             hashlib.sha256(b"bordergate TEST-ONLY roster authority").digest())
ISSUED = "2026-11-29T00:00:00.000Z"


def roster_of(code: str, principals: Iterable[Principal], serial: int = 1) -> Roster:
    """A roster version of ``code`` listing ``principals`` as they are; approvers
    with their one TEST-ONLY key (:func:`public_key`)."""
    return Roster.build(jurisdiction=code, serial=serial, issued=ISSUED, principals=[
        RosterPrincipal(p.id, p.org, p.org_kind, p.location, frozenset(p.roles),
                        approver_keys=(public_key(p.id),) if "approver" in p.roles else ())
        for p in principals])


def with_roster(configs: Sequence[Path], code: str, principals: Iterable[Principal]) -> None:
    """Name the TEST-ONLY authority in ``code``'s roster table of each deployment
    file in ``configs`` (workers of one jurisdiction), then sign a version listing
    ``principals`` and publish it beside the log with its ``roster`` entry (the
    gateways must not be running yet)."""
    for config in configs:
        with config.open("a") as out:
            out.write(f'\n[jurisdictions.{code}.roster]\n'
                      f'authority_keys = ["{AUTHORITY.verifier().key_string}"]\n')
    roster = roster_of(code, principals)
    publish_signed_roster(load_config(configs[0]).jurisdiction(code), roster.document,
                          sign_roster(roster, AUTHORITY).entry_body())
