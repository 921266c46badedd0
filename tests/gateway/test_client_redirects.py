"""The client's promise "never send a token meant for one jurisdiction to another"
(issue 11, item 1), tried as an attacker would: a hostile gateway on a real socket
answers 421 (or an HTTP redirect) naming an attacker's listener, which records every
Authorization header it receives.  The client follows a 421 only to a URL its own
gateway map lists for the jurisdiction the 421 names, with that jurisdiction's
token; a client holding one token never leaves its jurisdiction.  The honest path
is shown against the real gateway processes of the shared test deployment.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bordergate.client import GatewayClient, GatewayMap
from bordergate.entries import encode_entry
from bordergate.errors import ConfigError, UntrustedRedirect, WrongJurisdiction
from bordergate.policy.entities import Principal
from bordergate.receipts import ReceiptSigner
from tests.approvers import approver_key
from tests.gateway.conftest import RunningDeployment
from tests.gateway.deployment import Tokens, receipt_signer

LOCAL_EU = Principal("local-eu-client", "tteu", "local", "eu", frozenset({"engineer"}))
# the eu token (JWT-shaped, unsigned: only its jti is read, by the receipt check)
_EU_JTI = "eu-token-id-for-redirect-tests"
_EU_TOKEN = "e30." + base64.urlsafe_b64encode(json.dumps(
    {"sub": "local-eu-client", "jti": _EU_JTI}).encode()).decode().rstrip("=") + ".sig"


def read_ok() -> dict[str, Any]:
    """A read answer of the eu gateway now, with its receipt (TEST-ONLY key; the client
    checks it: of an entry recording the eu token's jti, logged now)."""
    entry = encode_entry("access", time.time(), {
        "principal": {}, "collection": "users", "subject": "subject:00",
        "record": "record:00", "purpose": "operations", "bundle": "sha256:00",
        "decisions": [], "jti": _EU_JTI})
    receipt, salt = ReceiptSigner(receipt_signer("eu"), "eu").issue(
        origin="eu.bordergate.test/log", index=7, entry=entry, action="read",
        collection="users", fields=["handle"], values={"fields": {"handle": "h"}})
    return {"collection": "users", "fields": {"handle": "h"}, "withheld": [],
            "outcome": "allow", "receipt": receipt,
            "receipt_salt": base64.b64encode(salt).decode()}


READ_HEADERS = {"Bordergate-Log-Origin": "eu.bordergate.test/log", "Bordergate-Log-Index": "7"}


class Listener:
    """A real HTTP server on 127.0.0.1 (its own thread) that records the
    Authorization header of every request and answers with one fixed response."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        self.answer: tuple[int, dict[str, Any], dict[str, str]] = (404, {"code": "x"}, {})
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                listener.seen.append(self.headers.get("Authorization"))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, body, headers = listener.answer
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/problem+json"
                                 if status >= 400 else "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815 (http.server names)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer_421(self, home: str, gateway: str) -> None:
        """Answer every request as a gateway would for a subject homed at ``home``."""
        self.answer = (421, {"type": "about:blank", "title": "Misdirected Request",
                             "status": 421, "code": "wrong_jurisdiction",
                             "detail": f"homed in {home}", "home": home, "gateway": gateway},
                       {"Location": gateway})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def listeners() -> Iterator[dict[str, Listener]]:
    """A hostile gateway (configured as us's), stand-ins for the eu and cn gateways,
    and an attacker's listener that no configuration names."""
    opened = {name: Listener() for name in ("hostile", "eu", "cn", "attacker")}
    try:
        yield opened
    finally:
        for listener in opened.values():
            listener.close()


def gateway_map(listeners: dict[str, Listener]) -> dict[str, str]:
    return {"us": listeners["hostile"].url, "eu": listeners["eu"].url,
            "cn": listeners["cn"].url}


TOKENS = {"us": "token-for-us", "eu": _EU_TOKEN, "cn": "token-for-cn"}

OPERATIONS: dict[str, Callable[[GatewayClient], object]] = {
    "read": lambda c: c.read("users", "eu-record", purpose="operations"),
    "write": lambda c: c.write("users", "eu-1", "eu-1", {"handle": "h"}, purpose="operations"),
    "erase": lambda c: c.erase("eu-1"),
    "export": lambda c: c.export("users", "handle"),
    "mint_subject": lambda c: c.mint_subject(),
    "request_approval": lambda c: c.request_approval(
        purpose="customer_support", reason="r", collections=["users"], classes=["protected"]),
    "grant": lambda c: c.grant("a-1", approver_key("carol")),  # fetches what it signs
    "approvals": lambda c: c.approvals(),
}

REDIRECTS = {
    "configured jurisdiction, attacker url": ("eu", lambda ls: ls["attacker"].url),
    "unconfigured jurisdiction": ("xx", lambda ls: ls["attacker"].url),
    "another jurisdiction's gateway": ("eu", lambda ls: ls["cn"].url),
    "the hostile gateway itself as eu's": ("eu", lambda ls: ls["hostile"].url),
    "eu url as userinfo before the attacker's host": (
        "eu", lambda ls: ls["eu"].url + "@" + ls["attacker"].url.removeprefix("http://")),
    "eu host with another path": ("eu", lambda ls: ls["eu"].url + "/attacker"),
    "not a url": ("eu", lambda ls: "http://[::1"),
}


@pytest.mark.parametrize("case", list(REDIRECTS), ids=list(REDIRECTS))
def test_421_to_a_url_not_configured_for_its_jurisdiction_sends_nothing(
        listeners: dict[str, Listener], case: str) -> None:
    """Issue 11 item 1: a hostile gateway's 421 naming a URL that is not a configured
    gateway of the jurisdiction it names raises untrusted_redirect for every client
    operation; the named listener, and every other, receives no token; the hostile
    gateway only ever sees the token of its own jurisdiction."""
    home, location = REDIRECTS[case]
    target = location(listeners)
    listeners["hostile"].answer_421(home, target)
    with GatewayClient(listeners["hostile"].url, TOKENS,
                       gateways=gateway_map(listeners)) as client:
        for name, operation in OPERATIONS.items():
            with pytest.raises(UntrustedRedirect) as raised:
                operation(client)
            assert raised.value.code == "untrusted_redirect", name
            assert raised.value.home == home
            assert raised.value.problem["gateway"] == target  # type: ignore[attr-defined]
    assert listeners["attacker"].seen == []
    assert listeners["eu"].seen == [] and listeners["cn"].seen == []
    assert listeners["hostile"].seen == ["Bearer token-for-us"] * len(OPERATIONS)


def test_http_redirect_is_never_followed(listeners: dict[str, Listener]) -> None:
    """Issue 11 item 1: gateways never redirect; a 307 to the attacker is
    untrusted_redirect and the attacker receives nothing."""
    listeners["hostile"].answer = (307, {}, {"Location": listeners["attacker"].url + "/x"})
    with (GatewayClient(listeners["hostile"].url, TOKENS,
                        gateways=gateway_map(listeners)) as client,
          pytest.raises(UntrustedRedirect) as raised):
        client.read("users", "r", purpose="operations")
    assert raised.value.location == listeners["attacker"].url + "/x"
    assert listeners["attacker"].seen == []


@pytest.mark.parametrize("token", ["token-for-us", {"us": "token-for-us"}],
                         ids=["one token", "token map without eu"])
def test_one_token_client_never_follows_a_421_to_another_jurisdiction(
        listeners: dict[str, Listener], token: str | dict[str, str]) -> None:
    """Issue 11 item 1: even a 421 naming eu's configured gateway is not followed by a
    client without an eu token: it raises wrong_jurisdiction (naming the home) and
    its one token goes nowhere but its own jurisdiction's gateway."""
    listeners["hostile"].answer_421("eu", listeners["eu"].url)
    with (GatewayClient(listeners["hostile"].url, token,
                        gateways=gateway_map(listeners)) as client,
          pytest.raises(WrongJurisdiction) as raised):
        client.read("users", "eu-record", purpose="operations")
    assert raised.value.code == "wrong_jurisdiction" and raised.value.home == "eu"
    assert listeners["eu"].seen == [] and listeners["attacker"].seen == []
    assert listeners["hostile"].seen == ["Bearer token-for-us"]


def test_421_to_a_configured_gateway_of_its_jurisdiction_is_followed_with_its_token(
        listeners: dict[str, Listener]) -> None:
    """Issue 11 item 1: a 421 naming a configured gateway of the jurisdiction it names
    (in another spelling: scheme case, trailing slash) is followed to the configured
    URL with that jurisdiction's token, and only that one."""
    eu = listeners["eu"]
    listeners["hostile"].answer_421("eu", eu.url.replace("http://", "HTTP://") + "/")
    eu.answer = (200, read_ok(), READ_HEADERS)
    with GatewayClient(listeners["hostile"].url, TOKENS,
                       gateways=gateway_map(listeners)) as client:
        result = client.read("users", "eu-record", purpose="operations")
    assert result.gateway == eu.url and result.fields == {"handle": "h"}
    assert eu.seen == [f"Bearer {_EU_TOKEN}"]
    assert listeners["hostile"].seen == ["Bearer token-for-us"]
    assert listeners["attacker"].seen == [] and listeners["cn"].seen == []


@pytest.mark.parametrize(
    ("gateways", "base_url"),
    [({"us": "http://127.0.0.1:1", "eu": "http://127.0.0.1:1/"}, "http://127.0.0.1:1"),
     ({"us": [], "eu": "http://127.0.0.1:2"}, "http://127.0.0.1:2"),
     ({"us": "ftp://127.0.0.1:1"}, "ftp://127.0.0.1:1"),
     ({"us": "http://user@127.0.0.1:1"}, "http://user@127.0.0.1:1"),
     ({"us": "http://127.0.0.1:1"}, "http://127.0.0.1:9")],
    ids=["one url for two jurisdictions", "jurisdiction without url", "not http",
         "credentials in url", "first gateway not in the map"])
def test_a_malformed_gateway_map_is_a_config_error(
        gateways: dict[str, Any], base_url: str) -> None:
    """Issue 11 item 1: the map is the only source of where tokens go, so an ambiguous
    or malformed one, or a first gateway it does not list, is refused at construction."""
    with pytest.raises(ConfigError):
        GatewayClient(base_url, "token", gateways=gateways)


def test_gateway_map_compares_spellings_not_strings() -> None:
    """Issue 11 item 1: scheme and host case, a default port and a trailing slash do
    not change a gateway; another host, port, path or userinfo does."""
    gateways = GatewayMap({"us": ["http://Gateway.US.test", "http://10.0.0.1:8001"],
                           "eu": "https://eu.test/api/"})
    assert gateways.gateway("us", "HTTP://gateway.us.test:80/") == "http://Gateway.US.test"
    assert gateways.gateway("eu", "https://EU.test:443/api") == "https://eu.test/api"
    assert gateways.jurisdiction_of("http://10.0.0.1:8001/") == "us"
    for home, url in [("us", "http://10.0.0.1:8002"), ("us", "https://gateway.us.test"),
                      ("eu", "https://eu.test/"), ("eu", "https://eu.test@evil.test/api"),
                      ("us", "https://eu.test/api"), ("us", None)]:
        with pytest.raises(UntrustedRedirect):
            gateways.gateway(home, url)


def test_honest_421_is_followed_between_real_gateways_with_several_urls(
        running: RunningDeployment, tokens: Tokens) -> None:
    """Issue 11 items 1 and 9: against the real us, eu and cn gateway processes, with
    two URLs configured per jurisdiction (two addresses of one process standing for
    two workers), a read of an eu record through a us URL follows the real 421 to eu's
    configured gateway and gets the values; a one-token client stops at the 421."""
    def both(url: str) -> list[str]:
        return [url.replace("127.0.0.1", "localhost"), url]

    gateways = {code: both(url) for code, url in running.urls.items()}
    by_home = {code: tokens.token(LOCAL_EU, code) for code in running.urls}
    values = {"handle": "client-map", "email": "client-map@example.test",
              "created_at": "2024-05-01T12:00:00Z", "government_id": "GOV-CLIENT-MAP",
              "phone": "+15550001111"}
    with GatewayClient(gateways["eu"][0], by_home, gateways=gateways) as at_eu:
        subject = at_eu.mint_subject()
        at_eu.write("users", subject, subject, values, purpose="operations")
    with GatewayClient(gateways["us"][0], by_home, gateways=gateways) as at_us:
        result = at_us.read("users", subject, purpose="operations")
    assert result.gateway == running.urls["eu"]
    assert result.fields["email"] == values["email"]
    assert result.log_origin == "eu.bordergate.test/log"
    with (GatewayClient(running.urls["us"], by_home["us"], gateways=gateways) as one_token,
          pytest.raises(WrongJurisdiction) as raised):
        one_token.read("users", subject, purpose="operations")
    assert raised.value.home == "eu" and raised.value.location == running.urls["eu"]
