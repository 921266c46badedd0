"""TEST-ONLY approver keys (fixed seeds) and signed approval-change bodies.

Reproducible crypto fixtures: each approver's Ed25519 key is derived from its
name, so tests, the log generator and expected findings agree run after run.
Never use these keys outside tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bordergate.approval_statement import (
    ApprovalStatement,
    MappingApproverKeys,
    key_text,
    sign_statement,
)


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
