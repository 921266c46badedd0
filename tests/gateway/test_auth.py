"""Bearer-token authentication: every bad token is a 401 with a stable code.

Keys here are TEST-ONLY, derived from fixed seeds; never use them anywhere else.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.errors import ConfigError, InvalidInput, Unauthenticated
from bordergate.gateway.auth import (
    Principal,
    TokenIssuer,
    TokenVerifier,
    key_id,
    load_private_key,
    parse_public_key,
    public_jwk,
)

NOW = 1_700_000_000.0
ISSUER = "https://issuer.us.example"
AUDIENCE = "us"


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    """TEST-ONLY Ed25519 issuer key from a fixed seed."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture(scope="module")
def es_key() -> ec.EllipticCurvePrivateKey:
    """TEST-ONLY P-256 issuer key from a fixed scalar."""
    return ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())


@pytest.fixture(scope="module")
def other_key() -> ed25519.Ed25519PrivateKey:
    """TEST-ONLY untrusted Ed25519 key from another fixed seed."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


@pytest.fixture(scope="module")
def verifier(
    ed_key: ed25519.Ed25519PrivateKey, es_key: ec.EllipticCurvePrivateKey
) -> TokenVerifier:
    return TokenVerifier.for_keys(
        issuer=ISSUER, audience=AUDIENCE, keys=[ed_key.public_key(), es_key.public_key()]
    )


ALICE = Principal("alice", "bytedance", "parent", "cn", frozenset({"engineer", "oncall"}))


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "org": "bytedance",
        "org_kind": "parent",
        "loc": "cn",
        "roles": ["engineer"],
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + 600,
        "jti": "test-token-id-0001",
    }
    for name, value in changes.items():
        if value is ...:
            base.pop(name)
        else:
            base[name] = value
    return base


def sign(key: ed25519.Ed25519PrivateKey, body: dict[str, Any], **headers: Any) -> str:
    headers.setdefault("kid", key_id(key.public_key()))
    return jwt.encode(body, key, algorithm="EdDSA", headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def code_of(verifier: TokenVerifier, token: str | bytes, now: float = NOW) -> str:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(token, now=now)
    assert info.value.http_status == 401
    assert isinstance(info.value, InvalidInput)
    return info.value.code


@pytest.mark.parametrize("alg", ["ed", "es"])
def test_issued_token_verifies_to_the_principal(
    verifier: TokenVerifier,
    ed_key: ed25519.Ed25519PrivateKey,
    es_key: ec.EllipticCurvePrivateKey,
    alg: str,
) -> None:
    """Promise 2: a token from the jurisdiction's issuer yields the principal it names."""
    key = ed_key if alg == "ed" else es_key
    token = TokenIssuer(key, ISSUER).issue(ALICE, audience=AUDIENCE, now=NOW, ttl=600)
    assert verifier.verify(token, now=NOW + 10) == ALICE
    assert verifier.authenticate(f"Bearer {token}", now=NOW) == ALICE
    assert verifier.authenticate(f"bearer  {token}", now=NOW) == ALICE


@pytest.mark.parametrize(
    "header", [None, "", "   ", "Basic dXNlcjpwdw==", "Bearer", "Bearer ", "Token abc"]
)
def test_missing_bearer_token(verifier: TokenVerifier, header: str | None) -> None:
    """Issue 5 acceptance: no bearer token is a 401 token_missing."""
    with pytest.raises(Unauthenticated) as info:
        verifier.authenticate(header, now=NOW)
    assert info.value.code == "token_missing"


def test_oversize_token_is_refused_unparsed(verifier: TokenVerifier) -> None:
    """Size limits before parsing: tokens over 8 KiB are refused."""
    huge = "a" * 9000
    assert code_of(verifier, huge) == "token_oversize"
    with pytest.raises(Unauthenticated) as info:
        verifier.authenticate("Bearer " + huge, now=NOW)
    assert info.value.code == "token_oversize"
    with pytest.raises(Unauthenticated) as info:
        verifier.authenticate("Bearer " + "x" * 100_000, now=NOW)
    assert info.value.code == "token_oversize"


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b.c",
        "a.b",
        "....",
        "\u00e9.\u00e9.\u00e9",
        b64(b"[1]") + "." + b64(b"{}") + ".",
        b64(b"not json") + "." + b64(b"{}") + ".",
        b64(b'{"alg":"EdDSA"') + "." + b64(b"{}") + ".sig",
    ],
    ids=[
        "one-part",
        "junk-parts",
        "two-parts",
        "empty-parts",
        "non-ascii",
        "header-list",
        "header-not-json",
        "header-truncated",
    ],
)
def test_malformed_tokens(verifier: TokenVerifier, token: str) -> None:
    """Parsers of untrusted bytes: malformed tokens are 401 token_malformed, never a crash."""
    assert code_of(verifier, token) == "token_malformed"


def test_payload_not_json_is_malformed(
    verifier: TokenVerifier, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    """Parsers of untrusted bytes: a signed non-JSON payload is token_malformed."""
    header = b64(json.dumps({"alg": "EdDSA", "kid": key_id(ed_key.public_key())}).encode())
    payload = b64(b"not json")
    signature = b64(ed_key.sign(f"{header}.{payload}".encode()))
    assert code_of(verifier, f"{header}.{payload}.{signature}") == "token_malformed"


def test_alg_none_is_rejected(verifier: TokenVerifier, ed_key: ed25519.Ed25519PrivateKey) -> None:
    """Promise 2: an unsigned token (alg none) never authenticates."""
    header = {"alg": "none", "kid": key_id(ed_key.public_key())}
    token = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims()).encode()) + "."
    assert code_of(verifier, token) == "token_algorithm_rejected"


def test_hmac_with_public_key_is_rejected(
    verifier: TokenVerifier, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    """Promise 2: the HS256 key-confusion attack (public key as HMAC secret) fails."""
    public = ed_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": key_id(ed_key.public_key()), "typ": "JWT"}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims()).encode())
    import hashlib
    import hmac

    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    assert code_of(verifier, signing_input + "." + b64(mac)) == "token_algorithm_rejected"


def test_algorithm_must_fit_key(
    verifier: TokenVerifier, ed_key: ed25519.Ed25519PrivateKey, es_key: ec.EllipticCurvePrivateKey
) -> None:
    """Promise 2: an ES256 token naming the Ed25519 key is refused before verifying."""
    token = jwt.encode(
        claims(), es_key, algorithm="ES256", headers={"kid": key_id(ed_key.public_key())}
    )
    assert code_of(verifier, token) == "token_algorithm_rejected"


def test_unknown_or_missing_kid(
    verifier: TokenVerifier, other_key: ed25519.Ed25519PrivateKey
) -> None:
    """Promise 2: tokens from keys other than the jurisdiction's issuer are refused."""
    assert code_of(verifier, sign(other_key, claims())) == "token_unknown_key"
    no_kid = jwt.encode(claims(), other_key, algorithm="EdDSA")
    assert code_of(verifier, no_kid) == "token_unknown_key"
    header = b64(json.dumps({"alg": "EdDSA", "kid": 7}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = b64(other_key.sign(f"{header}.{payload}".encode()))
    assert code_of(verifier, f"{header}.{payload}.{signature}") == "token_malformed"


def test_forged_signature(
    verifier: TokenVerifier,
    ed_key: ed25519.Ed25519PrivateKey,
    other_key: ed25519.Ed25519PrivateKey,
) -> None:
    """Promise 2: a token signed by another key under the trusted kid, or altered, fails."""
    forged = sign(other_key, claims(), kid=key_id(ed_key.public_key()))
    assert code_of(verifier, forged) == "token_signature_invalid"
    header, _, signature = sign(ed_key, claims()).split(".")
    altered = b64(json.dumps(claims(org_kind="local", loc="us")).encode())
    assert code_of(verifier, f"{header}.{altered}.{signature}") == "token_signature_invalid"


def test_issuer_and_audience(verifier: TokenVerifier, ed_key: ed25519.Ed25519PrivateKey) -> None:
    """Promise 2: a token for another jurisdiction's gateway or issuer is refused here."""
    assert code_of(verifier, sign(ed_key, claims(iss="https://eu"))) == "token_issuer_invalid"
    assert code_of(verifier, sign(ed_key, claims(aud="eu"))) == "token_audience_invalid"
    assert code_of(verifier, sign(ed_key, claims(aud=["eu", "cn"]))) == "token_audience_invalid"
    assert verifier.verify(sign(ed_key, claims(aud=["eu", "us"])), now=NOW).id == "alice"


def test_expiry_with_leeway(verifier: TokenVerifier, ed_key: ed25519.Ed25519PrivateKey) -> None:
    """Issue 5: expiry is enforced with a small (30 s) leeway."""
    token = sign(ed_key, claims())
    exp = NOW + 600
    assert verifier.verify(token, now=exp + 29).id == "alice"
    assert code_of(verifier, token, now=exp + 30) == "token_expired"
    assert code_of(verifier, token, now=exp + 86_400) == "token_expired"


def test_not_yet_valid_with_leeway(
    verifier: TokenVerifier, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    """Issue 5: tokens from the future (nbf or iat) are refused beyond the leeway."""
    later = claims(nbf=int(NOW) + 100)
    assert code_of(verifier, sign(ed_key, later)) == "token_not_yet_valid"
    assert verifier.verify(sign(ed_key, later), now=NOW + 71).id == "alice"
    future_iat = claims(iat=int(NOW) + 100, nbf=..., exp=int(NOW) + 700)
    assert code_of(verifier, sign(ed_key, future_iat)) == "token_not_yet_valid"


@pytest.mark.parametrize(
    "name", ["iss", "aud", "sub", "org", "org_kind", "loc", "roles", "iat", "exp"]
)
def test_missing_claim(
    verifier: TokenVerifier, ed_key: ed25519.Ed25519PrivateKey, name: str
) -> None:
    """Issue 5: every required claim must be present."""
    assert code_of(verifier, sign(ed_key, claims(**{name: ...}))) == "token_claims_invalid"


@pytest.mark.parametrize(
    "changes",
    [
        {"roles": "admin"},
        {"roles": [1]},
        {"roles": [""]},
        {"roles": [f"r{i}" for i in range(40)]},
        {"loc": "U S"},
        {"loc": 5},
        {"org_kind": ""},
        {"sub": ""},
        {"sub": 12},
        {"org": None},
        {"exp": "soon"},
        {"exp": True},
        {"iat": -5},
        {"exp": int(NOW) + 3 * 86_400},
        {"exp": int(NOW)},
        {"nbf": [1]},
    ],
    ids=lambda c: "-".join(f"{k}={str(v)[:12]}" for k, v in c.items()),
)
def test_bad_claims(
    verifier: TokenVerifier, ed_key: ed25519.Ed25519PrivateKey, changes: dict[str, Any]
) -> None:
    """Parsers of untrusted bytes: wrong-typed claims are token_claims_invalid."""
    assert code_of(verifier, sign(ed_key, claims(**changes))) == "token_claims_invalid"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_property_garbage_only_raises_unauthenticated(token: str | bytes) -> None:
    """Parsers of untrusted bytes: any input is accepted or a 401, nothing else escapes."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # TEST-ONLY
    verifier = TokenVerifier.for_keys(issuer=ISSUER, audience=AUDIENCE, keys=[key.public_key()])
    with pytest.raises(Unauthenticated):
        verifier.verify(token, now=NOW)
    if isinstance(token, str):
        with pytest.raises(Unauthenticated):
            verifier.authenticate(token, now=NOW)


def test_public_keys_parse_from_pem_and_jwk(
    ed_key: ed25519.Ed25519PrivateKey, es_key: ec.EllipticCurvePrivateKey
) -> None:
    """Behaviour: configured issuer keys may be PEM or JWK; both name the same kid."""
    for key in (ed_key, es_key):
        public = key.public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        assert key_id(parse_public_key(pem)) == key_id(public)
        jwk = public_jwk(public)
        assert key_id(parse_public_key(json.dumps(jwk))) == jwk["kid"]


def test_rfc7638_thumbprint_vector() -> None:
    """Behaviour: kid is the RFC 7638 thumbprint (RFC 8037 appendix A.3 example key)."""
    x = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    public = ed25519.Ed25519PublicKey.from_public_bytes(x)
    assert key_id(public) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize(
    "text", ["", "garbage", "{}", '{"kty": "OKP"}', "-----BEGIN PUBLIC KEY-----"]
)
def test_bad_public_keys(text: str) -> None:
    """Behaviour: a bad configured issuer key is a ConfigError."""
    with pytest.raises(ConfigError) as info:
        parse_public_key(text)
    assert info.value.code == "issuer_key_invalid"


def test_rsa_and_other_curves_are_not_issuer_keys() -> None:
    """Behaviour: only Ed25519 and P-256 issuer keys are accepted."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p384 = ec.derive_private_key(7, ec.SECP384R1())
    for key in (rsa_key, p384):
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(ConfigError):
            parse_public_key(pem.decode())
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with pytest.raises(ConfigError):
            load_private_key(private)
    with pytest.raises(ConfigError):
        load_private_key(b"not a key")


def test_cli_keygen_and_issue(tmp_path: Path) -> None:
    """Issue 5 item 2: `bordergate principal keygen/issue` mint tokens the gateway accepts."""
    runner = CliRunner()
    key_file = tmp_path / "issuer.pem"
    made = runner.invoke(app, ["principal", "keygen", "--key-file", str(key_file)])
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    public = parse_public_key(made.stdout)
    again = runner.invoke(app, ["principal", "keygen", "--key-file", str(key_file)])
    assert again.exit_code == 2 and "key_file_exists" in again.output
    issued = runner.invoke(
        app,
        [
            "principal",
            "issue",
            "--key-file",
            str(key_file),
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
            "--id",
            "bob",
            "--org",
            "ttus",
            "--org-kind",
            "local",
            "--location",
            "us",
            "--role",
            "engineer",
            "--role",
            "approver",
            "--ttl",
            "120",
        ],
    )
    assert issued.exit_code == 0, issued.output
    verifier = TokenVerifier.for_keys(issuer=ISSUER, audience=AUDIENCE, keys=[public])
    import time

    got = verifier.verify(issued.stdout.strip(), now=time.time())
    assert got == Principal("bob", "ttus", "local", "us", frozenset({"engineer", "approver"}))


def test_cli_keygen_p256_pem(tmp_path: Path) -> None:
    """Issue 5 item 2: ES256 issuer keys, public key printed as PEM."""
    runner = CliRunner()
    made = runner.invoke(
        app,
        [
            "principal",
            "keygen",
            "--key-file",
            str(tmp_path / "k.pem"),
            "--algorithm",
            "p256",
            "--pem",
        ],
    )
    assert made.exit_code == 0, made.output
    assert isinstance(parse_public_key(made.stdout), ec.EllipticCurvePublicKey)


def test_cli_issue_with_bad_key_file(tmp_path: Path) -> None:
    """Behaviour: a missing key file exits 3 (I/O), a wrong one 2 (usage), each with its
    code in the common error format (bordergate.exit_codes)."""
    runner = CliRunner()
    (tmp_path / "bad.pem").write_text("nope")
    for path in (tmp_path / "missing.pem", tmp_path / "bad.pem"):
        result = runner.invoke(
            app,
            [
                "principal",
                "issue",
                "--key-file",
                str(path),
                "--issuer",
                ISSUER,
                "--audience",
                AUDIENCE,
                "--id",
                "bob",
                "--org",
                "ttus",
                "--org-kind",
                "local",
                "--location",
                "us",
            ],
        )
        missing = path.name == "missing.pem"
        assert result.exit_code == (3 if missing else 2), result.output
        assert "error [" in result.output and "what to do:" in result.output


def test_unauthenticated_is_a_401_invalid_input() -> None:
    """Behaviour: the error tree has a stable 401 for authentication failures."""
    err = Unauthenticated("no token")
    assert (err.code, err.http_status, isinstance(err, InvalidInput)) == (
        "unauthenticated",
        401,
        True,
    )
