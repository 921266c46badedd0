"""Small-order Ed25519 public keys are refused wherever a verifier key is read.

Found by a review: the identity point (and the other seven points of small order)
was accepted as a public key.  Under it the signature ``R = identity, S = 0``
verifies for every message, so a gateway registering it as its receipt key could
disown every receipt (anyone could have made them), and anyone could sign as a
log, witness, roster authority, reviewer or approver holding such a key.  Every
encoding of those points (the eight canonical ones and the non-canonical ``y = p``,
``y = p + 1`` and "negative zero" spellings) is now refused by the one loader
:func:`bordergate.tlog.note.load_ed25519_public_key`.  The set of encodings is
recomputed here from the curve (RFC 8032 section 5.1.3 decoding), not copied.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest

from bordergate.approval_statement import (
    ApprovalStatement,
    MappingApproverKeys,
    SignedStatement,
    request_digest,
    verify_statement,
)
from bordergate.audit.auditor_config import parse_auditor_config
from bordergate.errors import ConfigError, VerificationError
from bordergate.tlog.cosignature import CosignatureVerifier
from bordergate.tlog.note import Ed25519Verifier, key_id_for, load_ed25519_public_key
from tests.tlog.witnessed import log_signer, witness_signer

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
L = 2**252 + 27742317777372353535851937790883648493  # the prime order of the base point


def _x(y: int, sign: int) -> int | None:
    """RFC 8032 section 5.1.3: the x of ``y`` with this sign bit (None: no point)."""
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    if (x * x - x2) % P:
        return None
    return P - x if x & 1 != sign else x


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2
    return ((x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P,
            (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P)


def _times(k: int, point: tuple[int, int]) -> tuple[int, int]:
    out = (0, 1)
    while k:
        if k & 1:
            out = _add(out, point)
        point, k = _add(point, point), k >> 1
    return out


def small_order_encodings() -> list[bytes]:
    """Every 32-byte string that decodes (leniently: y may be >= p, x may be a
    "negative zero") to one of the eight points of small order."""
    torsion: set[tuple[int, int]] = set()
    rng = random.Random(8032)
    while len(torsion) < 8:  # [L]Q of random points Q spans the 8-torsion
        y, sign = rng.randrange(P), rng.randrange(2)
        x = _x(y, sign)
        if x is not None:
            torsion.add(_times(L, (x, y)))
    assert all(_times(8, t) == (0, 1) for t in torsion)
    out = set()
    for _x_of, y in torsion:
        for spelled in (y, y + P):
            if spelled < 2**255:
                for sign in (0, 1):
                    out.add((spelled | sign << 255).to_bytes(32, "little"))
    return sorted(out)


ENCODINGS = small_order_encodings()
IDENTITY = (1).to_bytes(32, "little")
UNIVERSAL = IDENTITY + bytes(32)  # R = identity, S = 0


def test_every_encoding_of_a_small_order_point_is_refused() -> None:
    """Promise 5 (and every signature bordergate checks): each encoding of the eight
    small-order points is refused as a public key, as log key, witness key and raw
    key alike; real keys still load."""
    # y = 0, 1, p - 1 and the two order-8 y, plus y = p and p + 1: 7 spellings x 2 signs
    # (the eight points and six other encodings, as C2SP/CCTV's ed25519 vectors count)
    assert len(ENCODINGS) == 14
    for raw in ENCODINGS:
        with pytest.raises(VerificationError) as err:
            load_ed25519_public_key(raw)
        assert err.value.code == "malformed_verifier_key"
        with pytest.raises(VerificationError):
            Ed25519Verifier("log.test/weak", raw)
        with pytest.raises(VerificationError):
            CosignatureVerifier("witness.test/weak", raw)
    load_ed25519_public_key(log_signer().public_key)
    load_ed25519_public_key(witness_signer(0).public_key)


def test_a_small_order_key_string_is_refused_before_any_signature_counts() -> None:
    """Promise 5 / receipts (threat-model G10): the review's key string
    ``us.gateway-receipts+...+AQEA...`` (type 0x01, the identity point) is refused
    with ``malformed_verifier_key``, so the universal signature never verifies
    under it (before: from_key_string accepted it and the signature verified)."""
    name = "us.gateway-receipts"
    vkey = (f"{name}+{key_id_for(name, 1, IDENTITY):08x}+"
            + base64.b64encode(b"\x01" + IDENTITY).decode())
    with pytest.raises(VerificationError) as err:
        Ed25519Verifier.from_key_string(vkey)
    assert err.value.code == "malformed_verifier_key"


def test_an_approver_small_order_key_never_grants(tmp_path: Path) -> None:
    """Promise 4 (approvals by two distinct approvers, threat-model A2): a statement
    under a small-order approver key, with the universal signature, does not verify
    (``approval_signature_invalid``) even if a roster lists the key; the auditor's
    file refuses such a key."""
    statement = ApprovalStatement(origin="log.test/audited", approval="apr-1",
                                  request=request_digest(b"request"), verdict="grant",
                                  approver="carol")
    signed = SignedStatement(request=statement.request, key=IDENTITY, signature=UNIVERSAL)
    with pytest.raises(VerificationError) as err:
        verify_statement(statement, signed, MappingApproverKeys({"carol": (IDENTITY,)}))
    assert err.value.code == "approval_signature_invalid"
    config = (f"[logs.us]\nlocation = 'x'\nvkey = '{log_signer().verifier().key_string}'\n"
              f"approver_keys = {{ carol = [\"{base64.b64encode(IDENTITY).decode()}\"] }}\n")
    with pytest.raises(ConfigError) as cerr:
        parse_auditor_config(config.encode(), base_dir=tmp_path)
    assert "approver_keys.carol[0]" in str(cerr.value)


@pytest.mark.parametrize("form", ["pem", "jwk"])
def test_a_small_order_token_issuer_key_is_refused(form: str) -> None:
    """Authentication (promise 2): an identity authority's token key of small order
    would verify a token signed ``R = identity, S = 0`` whatever its claims, so the
    gateway's issuer key reader refuses it, PEM or JWK (``issuer_key_invalid``)."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from bordergate.gateway.auth import parse_public_key
    if form == "pem":
        text = Ed25519PublicKey.from_public_bytes(IDENTITY).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    else:
        text = json.dumps({"kty": "OKP", "crv": "Ed25519",
                           "x": base64.urlsafe_b64encode(IDENTITY).decode().rstrip("=")})
    with pytest.raises(ConfigError) as err:
        parse_public_key(text)
    assert err.value.code == "issuer_key_invalid"
