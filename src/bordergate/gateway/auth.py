"""Bearer-token authentication: JWTs from the jurisdiction's issuer -> ``Principal``.

A principal presents ``Authorization: Bearer <JWT>``, signed by the issuer key of
the gateway's jurisdiction (EdDSA with Ed25519, or ES256 with P-256).  The token
carries the claims::

    iss       the issuer (the jurisdiction's custodian)     must equal the verifier's
    aud       the gateway / jurisdiction                     must equal (or list) it
    sub       principal id            org       organisation name
    org_kind  local | parent | custodian | ...   loc       jurisdiction where they work
    roles     list of role names      iat, exp  (nbf)       Unix seconds
    jti       the token's id (random, 16 to 64 URL-safe characters): what a
              ``token-revoke`` log entry names (``gateway.revocations``)

and the header ``kid`` names a trusted issuer key (its RFC 7638 JWK thumbprint).
``TokenVerifier.verify`` checks, in order, and fails with an ``Unauthenticated``
error (HTTP 401) whose stable ``code`` says what was wrong:

    token_missing             no bearer token at all
    token_oversize            more than ``max_token_bytes`` (8 KiB), refused unparsed
    token_malformed           not a compact JWS with JSON header and claims
    token_duplicate_claim     the header or the claims name a member twice
                              (JSON parsers disagree on which one wins: refused,
                              never last-wins)
    token_algorithm_rejected  ``alg`` is not EdDSA/ES256 (``none``, HS*, RS*...) or
                              does not fit the key
    token_unknown_key         no ``kid``, or not a trusted issuer key
    token_signature_invalid   the signature does not verify
    token_claims_invalid      a claim is missing or of the wrong type or shape,
                              or the lifetime exceeds ``max_lifetime``
    token_issuer_invalid      ``iss`` is not this jurisdiction's issuer
    token_audience_invalid    ``aud`` does not name this gateway
    token_expired             ``exp`` passed (beyond the leeway)
    token_not_yet_valid       ``nbf`` or ``iat`` in the future (beyond the leeway)
    token_revoked             (``VerifiedTokenCache`` only) a ``token-revoke``
                              log entry names the token's ``jti``

Verification is pure: keys, issuer, audience and the time ``now`` are
parameters.  This module must never read the wall clock, files or the network,
and never accept a token whose signature it did not check.  ``TokenIssuer``
signs tokens for development and the demo.

``VerifiedTokenCache`` keeps verified tokens by their header text so the
gateway checks a signature once per token; it re-applies the verifier's own
lifetime rule (``TokenVerifier.check_lifetime``) on every use, and refuses
(and drops) a token whose ``jti`` is in its ``revoked`` set, the gateway's
``gateway.revocations.TokenRevocations``, on every use too.

Lifetimes are short: ``TokenIssuer`` issues for :data:`DEFAULT_TTL` (15 minutes)
unless told otherwise, and the verifier refuses any token whose ``exp - iat``
exceeds ``max_lifetime`` (:data:`DEFAULT_MAX_LIFETIME`, 1 hour, set by
``limits.max_token_lifetime``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bordergate.errors import ConfigError, Unauthenticated, VerificationError
from bordergate.gateway.fifo_cache import BoundedFifoCache
from bordergate.policy.entities import Principal
from bordergate.tlog.note import load_ed25519_public_key

__all__ = [
    "ALGORITHMS",
    "DEFAULT_LEEWAY",
    "DEFAULT_MAX_LIFETIME",
    "DEFAULT_TTL",
    "MAX_TOKEN_BYTES",
    "IssuerPrivateKey",
    "IssuerPublicKey",
    "Principal",
    "TokenIssuer",
    "TokenVerifier",
    "VerifiedToken",
    "VerifiedTokenCache",
    "key_id",
    "load_private_key",
    "parse_public_key",
    "public_jwk",
]

IssuerPublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
IssuerPrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
ALGORITHMS = ("EdDSA", "ES256")
MAX_TOKEN_BYTES = 8192
DEFAULT_LEEWAY = 30.0
#: Longest ``exp - iat`` a verifier accepts unless configured (seconds).
DEFAULT_MAX_LIFETIME = 3600.0
#: Lifetime of an issued token unless told otherwise (seconds).
DEFAULT_TTL = 900.0
_MAX_ROLES = 32
_BEARER = re.compile(r"Bearer +([A-Za-z0-9_.=-]+) *", re.IGNORECASE)
_REQUIRED = ("iss", "aud", "sub", "org", "org_kind", "loc", "roles", "iat", "exp", "jti")
_JTI = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _algorithm(key: IssuerPublicKey | IssuerPrivateKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ConfigError(f"unsupported issuer key curve {key.curve.name}", code="issuer_key_invalid")


def public_jwk(public_key: IssuerPublicKey) -> dict[str, str]:
    """Return the public key as a JWK with ``kid``, ``alg`` and ``use``.

    Raises:
        ConfigError: the key is not Ed25519 or P-256 (``issuer_key_invalid``).
    """
    alg = _algorithm(public_key)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    else:
        numbers = public_key.public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
    thumbprint = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return {**members, "kid": _b64(hashlib.sha256(thumbprint).digest()), "alg": alg, "use": "sig"}


def key_id(public_key: IssuerPublicKey) -> str:
    """Return the key's RFC 7638 JWK thumbprint (SHA-256, base64url), used as ``kid``.

    Raises:
        ConfigError: the key is not Ed25519 or P-256 (``issuer_key_invalid``).
    """
    return public_jwk(public_key)["kid"]


def parse_public_key(text: str) -> IssuerPublicKey:
    """Parse an issuer public key given as PEM or as a JWK (JSON).

    Args:
        text: a PEM ``PUBLIC KEY`` block or a JWK object.

    Returns:
        The Ed25519 or P-256 public key.

    Raises:
        ConfigError: the text is neither, or another key type
            (``issuer_key_invalid``).
    """
    try:
        if text.lstrip().startswith("{"):
            key: object = jwt.PyJWK.from_json(text).key
        else:
            key = serialization.load_pem_public_key(text.encode("utf-8"))
    except (ValueError, TypeError, UnicodeError, jwt.PyJWTError) as exc:
        raise ConfigError(f"not an issuer public key: {exc}", code="issuer_key_invalid") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError("issuer keys must be Ed25519 or P-256", code="issuer_key_invalid")
    if isinstance(key, ed25519.Ed25519PublicKey):
        # the one Ed25519 loader's checks (a small-order key verifies every token)
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        try:
            load_ed25519_public_key(raw)
        except VerificationError as exc:
            raise ConfigError(f"not an issuer public key: {exc}",
                              code="issuer_key_invalid") from None
    _algorithm(key)
    return key


def load_private_key(pem: bytes) -> IssuerPrivateKey:
    """Parse an unencrypted PKCS#8 PEM issuer private key.

    Raises:
        ConfigError: not an Ed25519 or P-256 private key (``issuer_key_invalid``).
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not an issuer private key: {exc}", code="issuer_key_invalid") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError("issuer keys must be Ed25519 or P-256", code="issuer_key_invalid")
    _algorithm(key)
    return key


def _fail(code: str, message: str) -> Unauthenticated:
    return Unauthenticated(message, code=code)


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**53:
        raise _fail("token_claims_invalid", f"claim {name!r} must be a number of seconds")
    return float(value)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature and claims verified: who it speaks for and when.

    Attributes:
        principal: the principal of its claims.
        valid_from: ``max(iat, nbf)``, Unix seconds.
        expires: ``exp``, Unix seconds.
        jti: the token's id (what a revocation names).
    """

    principal: Principal
    valid_from: float
    expires: float
    jti: str


@dataclass(frozen=True)
class TokenVerifier:
    """Verifies bearer tokens of one jurisdiction's issuer (pure).

    Attributes:
        issuer: the expected ``iss``.
        audience: the expected ``aud`` (this gateway / jurisdiction).
        keys: trusted issuer public keys by ``kid``.
        leeway: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        max_token_bytes: tokens longer than this are refused unparsed.
        max_lifetime: longest ``exp - iat`` accepted.
    """

    issuer: str
    audience: str
    keys: Mapping[str, IssuerPublicKey]
    leeway: float = DEFAULT_LEEWAY
    max_token_bytes: int = MAX_TOKEN_BYTES
    max_lifetime: float = DEFAULT_MAX_LIFETIME

    @classmethod
    def for_keys(
        cls, *, issuer: str, audience: str, keys: Iterable[IssuerPublicKey], **options: Any
    ) -> TokenVerifier:
        """Build a verifier trusting ``keys``, each under its thumbprint ``kid``.

        Raises:
            ConfigError: a key is not Ed25519 or P-256 (``issuer_key_invalid``).
        """
        return cls(issuer=issuer, audience=audience, keys={key_id(k): k for k in keys}, **options)

    def authenticate(self, authorization: str | None, *, now: float) -> Principal:
        """Verify an ``Authorization`` header value and return its principal.

        Args:
            authorization: the header value, ``Bearer <token>``, or None.
            now: the current time, Unix seconds.

        Returns:
            The authenticated principal.

        Raises:
            Unauthenticated: see the module docstring for the codes.
        """
        return self.authenticate_header(authorization, now=now).principal

    def authenticate_header(self, authorization: str | None, *, now: float) -> VerifiedToken:
        """As :meth:`authenticate`, returning the token's principal and lifetime.

        Raises:
            Unauthenticated: see the module docstring for the codes.
        """
        if authorization is None or not authorization.strip():
            raise _fail("token_missing", "a bearer token is required")
        if len(authorization) > self.max_token_bytes + 32:
            raise _fail("token_oversize", "the token is too large")
        match = _BEARER.fullmatch(authorization)
        if match is None:
            raise _fail("token_missing", "the Authorization header must be 'Bearer <token>'")
        return self.verify_token(match.group(1), now=now)

    def verify(self, token: str | bytes, *, now: float) -> Principal:
        """Verify a compact JWS token and return its principal.

        Args:
            token: the token.
            now: the current time, Unix seconds.

        Returns:
            The authenticated principal.

        Raises:
            Unauthenticated: see the module docstring for the codes.
        """
        return self.verify_token(token, now=now).principal

    def verify_token(self, token: str | bytes, *, now: float) -> VerifiedToken:
        """As :meth:`verify`, returning the token's principal and lifetime.

        Raises:
            Unauthenticated: see the module docstring for the codes.
        """
        if not token:
            raise _fail("token_missing", "a bearer token is required")
        if len(token) > self.max_token_bytes:
            raise _fail("token_oversize", f"the token exceeds {self.max_token_bytes} bytes")
        try:
            raw = token if isinstance(token, bytes) else token.encode("ascii")
        except UnicodeEncodeError as exc:
            raise _fail("token_malformed", "the token is not ASCII") from exc
        key, algorithm = self._key_for(raw)
        _refuse_duplicate_claims(raw)
        try:
            claims = jwt.decode(
                raw,
                key=key,
                algorithms=[algorithm],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                    "require": [],
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise _fail("token_signature_invalid", "the token signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise _fail("token_malformed", f"the token is malformed: {exc}") from exc
        return self._verified(claims, now)

    def _key_for(self, raw: bytes) -> tuple[IssuerPublicKey, str]:
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError as exc:
            raise _fail("token_malformed", f"the token is malformed: {exc}") from exc
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise _fail("token_algorithm_rejected", f"algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _fail("token_unknown_key", "the token's key id is not a trusted issuer key")
        if _algorithm(key) != algorithm:
            raise _fail("token_algorithm_rejected", "the algorithm does not fit the issuer key")
        return key, algorithm

    def check_lifetime(self, token: VerifiedToken, now: float) -> None:
        """Whether ``now`` lies in the token's lifetime, with the leeway: the one
        definition of the time rules, for fresh tokens and cached ones alike.

        Raises:
            Unauthenticated: ``token_expired`` or ``token_not_yet_valid``.
        """
        self._check_window(token.valid_from, token.expires, now)

    def _check_window(self, valid_from: float, expires: float, now: float) -> None:
        if now >= expires + self.leeway:
            raise _fail("token_expired", "the token has expired")
        if now + self.leeway < valid_from:
            raise _fail("token_not_yet_valid", "the token is not valid yet")

    def _verified(self, claims: Mapping[str, Any], now: float) -> VerifiedToken:
        missing = [name for name in _REQUIRED if name not in claims]
        if missing:
            raise _fail("token_claims_invalid", f"missing claims: {', '.join(missing)}")
        if claims["iss"] != self.issuer:
            raise _fail("token_issuer_invalid", "the token is not from this jurisdiction's issuer")
        audience = claims["aud"]
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise _fail("token_audience_invalid", "the token is not meant for this gateway")
        issued, expires = _number(claims, "iat"), _number(claims, "exp")
        not_before = _number(claims, "nbf") if "nbf" in claims else issued
        if expires - issued > self.max_lifetime or expires <= issued:
            raise _fail("token_claims_invalid", "the token lifetime is not acceptable")
        valid_from = max(issued, not_before)
        self._check_window(valid_from, expires, now)
        jti = claims["jti"]
        if not isinstance(jti, str) or _JTI.fullmatch(jti) is None:
            raise _fail("token_claims_invalid", "claim 'jti' must be 16 to 64 URL-safe characters")
        return VerifiedToken(_principal(claims), valid_from, expires, jti)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise _fail("token_duplicate_claim", f"the token names {name[:40]!r} twice")
        seen[name] = value
    return seen


def _refuse_duplicate_claims(raw: bytes) -> None:
    """Refuse a header or claims object that names a member twice, at any depth.

    PyJWT's JSON parsing keeps the last of two equal names, and another
    verifier could keep the first: a token must mean one thing to everyone.

    Raises:
        Unauthenticated: ``token_duplicate_claim``, or ``token_malformed`` when
            a part is not base64url JSON.
    """
    parts = raw.split(b".")
    if len(parts) != 3:
        raise _fail("token_malformed", "the token is not a compact JWS")
    for part in parts[:2]:
        try:
            text = base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)).decode("utf-8")
            json.loads(text, object_pairs_hook=_unique_members)
        except Unauthenticated:
            raise
        except (ValueError, RecursionError) as exc:
            raise _fail("token_malformed", "a token part is not base64url JSON") from exc


def _principal(claims: Mapping[str, Any]) -> Principal:
    roles = claims["roles"]
    if not isinstance(roles, list) or len(roles) > _MAX_ROLES:
        raise _fail("token_claims_invalid", "claim 'roles' must be a list of names")
    try:
        return Principal(
            id=claims["sub"],
            org=claims["org"],
            org_kind=claims["org_kind"],
            location=claims["loc"],
            roles=frozenset(roles),
        )
    except (ValueError, TypeError) as exc:
        raise _fail("token_claims_invalid", f"bad principal claims: {exc}") from exc


class VerifiedTokenCache:
    """Verified tokens by their exact ``Authorization`` header text (bounded FIFO).

    A header is verified once (signature, issuer, audience, claims); a later
    use of the same text skips the signature check but not the clock: the
    cached lifetime goes through :meth:`TokenVerifier.check_lifetime`, the
    same rule a fresh verification applies, so a cached token is never
    accepted past its expiry or before its ``nbf``/``iat``; nor after its
    ``jti`` entered ``revoked`` (``token_revoked``).  Only tokens that
    verified are cached; an expired one is dropped when it is next presented.
    Pure like the verifier: ``now`` is a parameter.
    """

    def __init__(self, verifier: TokenVerifier, max_entries: int = 10_000,
                 revoked: Container[str] = frozenset()) -> None:
        self.verifier = verifier
        self.revoked = revoked
        self._tokens: BoundedFifoCache[str, VerifiedToken] = BoundedFifoCache(max_entries)

    def __len__(self) -> int:
        return len(self._tokens)

    def authenticate(self, authorization: str | None, now: float) -> Principal:
        """The principal the header's token speaks for, at ``now``.

        Raises:
            Unauthenticated: as :meth:`TokenVerifier.authenticate`.
        """
        return self.authenticate_token(authorization, now).principal

    def authenticate_token(self, authorization: str | None, now: float) -> VerifiedToken:
        """As :meth:`authenticate`, returning the verified token (its ``jti`` too).

        Raises:
            Unauthenticated: as :meth:`TokenVerifier.authenticate`.
        """
        if authorization is not None:
            cached = self._tokens.get(authorization)
            if cached is not None:
                try:
                    self.verifier.check_lifetime(cached, now)
                    self._check_revoked(cached)
                except Unauthenticated as exc:
                    if exc.code in ("token_expired", "token_revoked"):  # never valid again
                        self._tokens.discard(authorization)
                    raise
                return cached
        token = self.verifier.authenticate_header(authorization, now=now)
        self._check_revoked(token)
        assert authorization is not None  # a missing header does not verify
        self._tokens.put(authorization, token)
        return token

    def _check_revoked(self, token: VerifiedToken) -> None:
        if token.jti in self.revoked:
            raise _fail("token_revoked", "the token has been revoked")


@dataclass(frozen=True)
class TokenIssuer:
    """Signs principal tokens with an issuer key (development and the demo).

    Attributes:
        private_key: Ed25519 (EdDSA) or P-256 (ES256) private key.
        issuer: the ``iss`` to put in tokens.
    """

    private_key: IssuerPrivateKey
    issuer: str

    @property
    def public_key(self) -> IssuerPublicKey:
        """The public half, to give to ``TokenVerifier``."""
        return self.private_key.public_key()

    def issue(
        self, principal: Principal, *, audience: str, now: float, ttl: float = DEFAULT_TTL,
        jti: str | None = None,
    ) -> str:
        """Sign a token for ``principal``, valid from ``now`` for ``ttl`` seconds.

        Args:
            principal: who the token speaks for.
            audience: the gateway / jurisdiction it is for.
            now: issue time, Unix seconds.
            ttl: lifetime in seconds (positive; 15 minutes unless told).
            jti: the token's id; a fresh random one when None.

        Returns:
            The compact JWS token.

        Raises:
            ValueError: ``ttl`` is not positive.
            ConfigError: the key is not Ed25519 or P-256.
        """
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        issued = int(now)
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": principal.id,
            "org": principal.org,
            "org_kind": principal.org_kind,
            "loc": principal.location,
            "roles": sorted(principal.roles),
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(ttl),
            "jti": jti if jti is not None else secrets.token_urlsafe(16),
        }
        algorithm = _algorithm(self.private_key)
        headers = {"kid": key_id(self.public_key)}
        return jwt.encode(claims, self.private_key, algorithm=algorithm, headers=headers)
