"""Issue 11 item 10, in process: duplicate claims refused, jti required, short
lifetimes, and the revocation set that the token cache checks on every use.

Keys here are TEST-ONLY, derived from fixed seeds; never use them anywhere else.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from bordergate.entries import encode_entry, parse_entry
from bordergate.errors import InvalidInput, Unauthenticated
from bordergate.gateway.auth import (
    DEFAULT_MAX_LIFETIME,
    DEFAULT_TTL,
    Principal,
    TokenIssuer,
    TokenVerifier,
    VerifiedTokenCache,
    key_id,
)
from bordergate.gateway.revocations import TokenRevocations, token_revoke_entry
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.memory import MemoryStorage

NOW = 1_700_000_000.0
ISSUER = "https://issuer.us.example"
KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # TEST-ONLY seed
ALICE = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
VERIFIER = TokenVerifier.for_keys(issuer=ISSUER, audience="us", keys=[KEY.public_key()])


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _signed(header: str, payload: str) -> str:
    """A compact EdDSA JWS over exactly these header and payload texts."""
    signing_input = _b64(header.encode()) + b"." + _b64(payload.encode())
    return (signing_input + b"." + _b64(KEY.sign(signing_input))).decode()


def _payload(extra: str = "", **changes: object) -> str:
    claims: dict[str, object] = {
        "iss": ISSUER, "aud": "us", "sub": "alice", "org": "ttus", "org_kind": "local",
        "loc": "us", "roles": ["engineer"], "iat": int(NOW), "exp": int(NOW) + 600,
        "jti": "duplicate-test-0001", **changes}
    text = json.dumps(claims)
    return text[:-1] + extra + "}"


def _header(extra: str = "") -> str:
    return '{"alg":"EdDSA","kid":"' + key_id(KEY.public_key()) + '"' + extra + "}"


def _code(token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        VERIFIER.verify(token, now=NOW)
    return info.value.code


def test_the_crafted_token_verifies_without_duplicates() -> None:
    """The helper signs a token the verifier accepts, so the refusals below are
    about the duplicates alone."""
    assert VERIFIER.verify(_signed(_header(), _payload()), now=NOW) == ALICE


@pytest.mark.parametrize("extra", [
    ', "sub": "root@custodian"',
    ', "roles": ["approver"]',
    ', "org_kind": "custodian"',
    ', "exp": 4000000000',
], ids=["sub", "roles", "org_kind", "exp"])
def test_duplicate_claim_is_refused_not_last_wins(extra: str) -> None:
    """Issue 11 item 10: a claims object naming a claim twice is refused with
    token_duplicate_claim; PyJWT alone would take the last one (a second `roles`
    would make an engineer an approver)."""
    assert _code(_signed(_header(), _payload(extra))) == "token_duplicate_claim"


def test_duplicate_header_member_is_refused() -> None:
    """Issue 11 item 10: the header, too, must name each member once (`alg` twice)."""
    assert _code(_signed(_header(', "alg": "EdDSA"'), _payload())) == "token_duplicate_claim"


def test_nested_duplicate_is_refused() -> None:
    """A duplicate inside a nested object is a duplicate too."""
    payload = _payload(', "ext": {"a": 1, "a": 2}')
    assert _code(_signed(_header(), payload)) == "token_duplicate_claim"


@pytest.mark.parametrize("jti", [None, "short", "has spaces in it!!", 12345678901234567890])
def test_jti_is_required_and_well_formed(jti: object) -> None:
    """A token without a usable jti cannot be revoked, so it is refused."""
    claims = json.loads(_payload())
    if jti is None:
        del claims["jti"]
    else:
        claims["jti"] = jti
    assert _code(_signed(_header(), json.dumps(claims))) == "token_claims_invalid"


def test_default_lifetimes_are_short() -> None:
    """Issue 11 item 10: issued tokens live 15 minutes unless told; a verifier
    refuses a lifetime over an hour unless configured."""
    token = TokenIssuer(KEY, ISSUER).issue(ALICE, audience="us", now=NOW)
    verified = VERIFIER.verify_token(token, now=NOW)
    assert verified.expires - verified.valid_from == DEFAULT_TTL == 900
    assert DEFAULT_MAX_LIFETIME == 3600
    day = TokenIssuer(KEY, ISSUER).issue(ALICE, audience="us", now=NOW, ttl=24 * 3600)
    assert _code(day) == "token_claims_invalid"


def test_issued_tokens_have_distinct_jtis() -> None:
    """Each issued token has its own id, so revoking one leaves the others valid."""
    issuer = TokenIssuer(KEY, ISSUER)
    ids = {VERIFIER.verify_token(issuer.issue(ALICE, audience="us", now=NOW), now=NOW).jti
           for _ in range(20)}
    assert len(ids) == 20


def test_cache_refuses_a_revoked_token_at_once() -> None:
    """A cached token whose jti enters the revocation set is refused on its very
    next use (token_revoked) and dropped from the cache; other tokens still pass."""
    revocations = TokenRevocations()
    cache = VerifiedTokenCache(VERIFIER, revoked=revocations)
    issuer = TokenIssuer(KEY, ISSUER)
    revoked = issuer.issue(ALICE, audience="us", now=NOW, jti="revoke-me-0000001")
    kept = issuer.issue(ALICE, audience="us", now=NOW, jti="keep-me-000000001")
    assert cache.authenticate(f"Bearer {revoked}", NOW) == ALICE
    assert cache.authenticate(f"Bearer {kept}", NOW) == ALICE
    revocations.apply(7, [token_revoke_entry("revoke-me-0000001", NOW)])
    with pytest.raises(Unauthenticated) as info:
        cache.authenticate(f"Bearer {revoked}", NOW)
    assert info.value.code == "token_revoked" and len(cache) == 1
    with pytest.raises(Unauthenticated):
        cache.authenticate(f"Bearer {revoked}", NOW)  # not cached, still refused
    assert cache.authenticate(f"Bearer {kept}", NOW) == ALICE
    assert revocations.revoked_at("revoke-me-0000001") == 7 and revocations.version == 7


def test_revocations_follow_the_log() -> None:
    """Workers learn revocations from the log: the log follower reads the entries they
    have not seen (across bundles) and applies token-revoke entries with their index."""
    from bordergate.gateway.log_follower import follow

    def follow_log(revocations: TokenRevocations, client: LogClient) -> list[str]:
        before = {j for j in ("abcdefghijklmnop",) if j in revocations}
        follow([revocations], client)
        return [j for j in ("abcdefghijklmnop",) if j in revocations and j not in before]

    storage = MemoryStorage()
    signer = Signer.from_seed("test.example/log", bytes(32))  # TEST-ONLY seed
    create_log(storage, signer)
    revocations = TokenRevocations()
    client = LogClient(StorageSource(storage), signer.verifier())
    filler = encode_entry("migration", NOW, {"batch": 1})
    with Sequencer(storage, signer) as sequencer:
        sequencer.append_many([filler] * 300)
        sequencer.publish()
        assert follow_log(revocations, client) == [] and revocations.next_index == 300
        first = sequencer.append_many([token_revoke_entry("abcdefghijklmnop", NOW, reason="x"),
                                       filler])
        sequencer.publish()
    assert follow_log(revocations, client) == ["abcdefghijklmnop"]
    assert "abcdefghijklmnop" in revocations and revocations.revoked_at("abcdefghijklmnop") == first
    assert revocations.next_index == 302 and follow_log(revocations, client) == []


def test_token_revoke_entry_shape() -> None:
    """The entry names the jti and who revoked, and refuses a malformed jti."""
    entry = parse_entry(token_revoke_entry("abcdefghijklmnop", NOW, reason="lost laptop"))
    assert entry.type == "token-revoke" and entry["jti"] == "abcdefghijklmnop"
    assert entry["by"] == "custodian"
    with pytest.raises(InvalidInput) as info:
        token_revoke_entry("bad id", NOW)
    assert info.value.code == "invalid_jti"
