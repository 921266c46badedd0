"""The verified-token cache and the gateway's bounded FIFO cache.

``VerifiedTokenCache`` (``gateway.auth``) skips the signature check of a token
seen before, never the clock: promise 2 (every access is authenticated) needs
a cached token to be refused exactly when a fresh verification would refuse it.
Keys here are TEST-ONLY, derived from fixed seeds; never use them anywhere else.
"""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.errors import Unauthenticated
from bordergate.gateway.auth import (
    Principal,
    TokenIssuer,
    TokenVerifier,
    VerifiedTokenCache,
    key_id,
)
from bordergate.gateway.fifo_cache import BoundedFifoCache

NOW = 1_700_000_000
ISSUER = "https://issuer.us.example"
KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # TEST-ONLY seed
ALICE = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
VERIFIER = TokenVerifier.for_keys(issuer=ISSUER, audience="us", keys=[KEY.public_key()],
                                  leeway=30.0)


def _header(*, iat: int, exp: int, nbf: int | None = None) -> str:
    claims: dict[str, object] = {
        "iss": ISSUER, "aud": "us", "sub": ALICE.id, "org": ALICE.org,
        "org_kind": ALICE.org_kind, "loc": ALICE.location, "roles": sorted(ALICE.roles),
        "iat": iat, "exp": exp, "jti": f"cache-test-{iat}-{exp}-{nbf}"}
    if nbf is not None:
        claims["nbf"] = nbf
    token = jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": key_id(KEY.public_key())})
    return f"Bearer {token}"


def _outcome(call: object) -> str:
    try:
        assert callable(call)
        principal = call()
    except Unauthenticated as exc:
        return exc.code
    assert principal == ALICE
    return "ok"


def test_cached_token_is_refused_from_its_expiry() -> None:
    """Promise 2: a token cached while valid is refused (token_expired) from
    exp + leeway on, and stays refused (it is dropped from the cache)."""
    header = TokenIssuer(KEY, ISSUER).issue(ALICE, audience="us", now=NOW, ttl=600)
    cache = VerifiedTokenCache(VERIFIER)
    assert cache.authenticate(f"Bearer {header}", NOW) == ALICE
    assert len(cache) == 1
    assert cache.authenticate(f"Bearer {header}", NOW + 600 + 29.999) == ALICE
    for later in (NOW + 630, NOW + 631, NOW + 10**6):
        with pytest.raises(Unauthenticated) as info:
            cache.authenticate(f"Bearer {header}", later)
        assert info.value.code == "token_expired"
    assert len(cache) == 0


def test_cached_token_is_refused_before_it_is_valid() -> None:
    """Promise 2: a token cached at a time when it is valid is still refused
    (token_not_yet_valid) when presented at a time before its nbf/iat."""
    header = _header(iat=NOW, nbf=NOW + 100, exp=NOW + 600)
    cache = VerifiedTokenCache(VERIFIER)
    assert cache.authenticate(header, NOW + 200) == ALICE
    with pytest.raises(Unauthenticated) as info:
        cache.authenticate(header, NOW + 69)  # nbf - leeway - 1
    assert info.value.code == "token_not_yet_valid"
    assert cache.authenticate(header, NOW + 70) == ALICE


def test_valid_from_is_the_later_of_iat_and_nbf() -> None:
    """Promise 2: a cached token whose nbf is before its iat is not accepted before
    iat (the rule the verifier applies), although its nbf has passed."""
    header = _header(iat=NOW + 100, nbf=NOW - 1000, exp=NOW + 600)
    cache = VerifiedTokenCache(VERIFIER)
    assert cache.authenticate(header, NOW + 100) == ALICE
    with pytest.raises(Unauthenticated) as info:
        cache.authenticate(header, NOW)
    assert info.value.code == "token_not_yet_valid"


def test_only_verified_tokens_are_cached() -> None:
    """Promise 2: a token that fails verification (signature, expiry) is not cached,
    so each presentation is verified again and refused again."""
    good = _header(iat=NOW, exp=NOW + 600)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    cache = VerifiedTokenCache(VERIFIER)
    for _ in range(2):
        with pytest.raises(Unauthenticated) as info:
            cache.authenticate(forged, NOW)
        assert info.value.code == "token_signature_invalid"
        with pytest.raises(Unauthenticated) as info:
            cache.authenticate(good, NOW + 10_000)
        assert info.value.code == "token_expired"
        with pytest.raises(Unauthenticated) as info:
            cache.authenticate(None, NOW)
        assert info.value.code == "token_missing"
    assert len(cache) == 0


@settings(max_examples=150, deadline=None)
@given(iat=st.integers(-100, 100), nbf=st.one_of(st.none(), st.integers(-200, 200)),
       ttl=st.integers(1, 300), first=st.integers(-400, 600),
       later=st.lists(st.integers(-400, 600), min_size=1, max_size=6))
def test_cache_answers_as_the_verifier_at_every_time(iat: int, nbf: int | None, ttl: int,
                                                     first: int, later: list[int]) -> None:
    """Promise 2: at any sequence of presentation times, the cache accepts or refuses a
    token (with the same code) exactly as a fresh verification at that time would."""
    header = _header(iat=NOW + iat, nbf=None if nbf is None else NOW + nbf,
                     exp=NOW + iat + ttl)
    cache = VerifiedTokenCache(VERIFIER)
    for at in [first, *later]:
        expected = _outcome(lambda at=at: VERIFIER.authenticate(header, now=NOW + at))
        assert _outcome(lambda at=at: cache.authenticate(header, NOW + at)) == expected


def test_token_cache_is_bounded() -> None:
    """The token cache holds at most its bound (the oldest verified token goes first)."""
    cache = VerifiedTokenCache(VERIFIER, max_entries=2)
    headers = [_header(iat=NOW + i, exp=NOW + 600) for i in range(3)]
    for header in headers:
        cache.authenticate(header, NOW + 10)
    assert len(cache) == 2


def test_fifo_cache_evicts_the_first_inserted_and_hits_do_not_reorder() -> None:
    """The gateway's bounded cache is FIFO, as its name says: past its bound it drops
    the oldest insertion even if that one was just read; replacing keeps the place."""
    cache: BoundedFifoCache[str, int] = BoundedFifoCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a hit: no reordering (an LRU would now keep "a")
    cache.put("a", 10)  # a replacement: "a" stays the oldest
    cache.put("c", 3)
    assert ("a" in cache, cache.get("b"), cache.get("c"), len(cache)) == (False, 2, 3, 2)
    cache.discard("b")
    cache.discard("missing")
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0 and cache.get("c") is None


def test_fifo_cache_refuses_a_bound_below_one() -> None:
    """A bounded cache that could hold nothing is a programmer error (ValueError)."""
    with pytest.raises(ValueError, match="at least one"):
        BoundedFifoCache(0)
