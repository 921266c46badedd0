"""The Python client of bordergate gateways.

:class:`GatewayClient` talks to one jurisdiction's gateway with a bearer
token.  Which gateways serve which jurisdiction is the client's own
configuration, a :class:`GatewayMap` (jurisdiction code -> one or more gateway
URLs, several workers each), never something a server tells it.  When a
gateway answers 421 (the record or subject is homed elsewhere) the client
follows it openly (``ReadResult.gateway`` says who answered) only if the URL
the 421 names is a configured gateway of the jurisdiction it names, and only
with the token held for that jurisdiction; any other 421 is
``untrusted_redirect`` and nothing is sent.  A client given one token never
leaves that token's jurisdiction.  Problem responses become the errors of
:mod:`bordergate.errors` with the server's stable ``code``; the whole problem
body is kept as ``error.problem``.

Approval grants, denials and revocations are signed here, on the approver's
side (issue 12, item 4): :meth:`GatewayClient.statement_for` fetches the
approval, checks its request entry against the digest the gateway names, and
builds the statement that :meth:`GatewayClient.grant` signs with the approver's
own key; only the signature is sent.

Every answer that releases data (a read, an export) must carry the gateway's
signed receipt (:mod:`bordergate.receipts`): the client checks its signature
(against the jurisdiction's registered receipt keys when it is given them),
that it is a receipt of what was asked (action, collection), that it names the
answer's log entry and the request made (the client's own token id, and an
entry time within the request, give or take ``clock_tolerance``), and that its
salted digest is that of exactly the values received; an answer that fails is refused
(``receipt_*`` codes) and nothing of it is returned.  Checked receipts are
kept in :attr:`GatewayClient.receipts` (and written to ``receipt_dir`` when
given), for ``bordergate receipt verify`` to hold against the log.

This module must never send a private key, never retry a request that the
gateway refused for policy, never follow an HTTP redirect, never learn a
gateway's jurisdiction from an answer, and never send a token meant for one
jurisdiction to another.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519

from bordergate.approval_statement import ApprovalStatement, request_digest, sign_statement
from bordergate.entries import parse_entry
from bordergate.errors import (
    BordergateError,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    PushBack,
    Unauthenticated,
    Unavailable,
    UntrustedRedirect,
    VerificationError,
    WrongJurisdiction,
)
from bordergate.receipts import (
    SALT_BYTES,
    Receipt,
    check_answer,
    check_binding,
    parse_receipt,
    verify_receipt_signature,
)

__all__ = ["GatewayClient", "GatewayMap", "KeptReceipt", "ReadResult", "error_from_problem"]

_MAX_HOPS = 2
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also takes '²'
#: Seconds of clock skew allowed between client and gateway on a receipt's time
#: (the gateway's default token leeway, gateway.auth.DEFAULT_LEEWAY).
CLOCK_TOLERANCE = 30.0
_DEFAULT_PORTS = {"http": 80, "https": 443}

# scheme, host, port, path: what two spellings of one gateway URL share
_Address = tuple[str, str, int, str]


def _address(url: str) -> _Address:
    """The comparable address of a gateway base URL.

    Raises:
        VerificationError: not an absolute http(s) URL, or one with credentials,
            a query or a fragment (none of which a gateway base URL has).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise VerificationError(f"not a gateway URL: {url!r}") from exc
    if (parsed.scheme not in _DEFAULT_PORTS or not parsed.host or parsed.userinfo
            or parsed.query or parsed.fragment):
        raise VerificationError(f"not a gateway URL: {url!r}")
    port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    return parsed.scheme, parsed.host, port, parsed.path.rstrip("/")


class GatewayMap:
    """The gateways of each jurisdiction, as the client's deployment configures them.

    This is the only source of where a jurisdiction's token may go.  URLs are
    compared by scheme, host, port and path (case of scheme and host, a
    default port and a trailing slash do not matter).
    """

    def __init__(self, gateways: Mapping[str, str | Sequence[str]]) -> None:
        """Index ``gateways``: jurisdiction code -> one gateway URL or several.

        Raises:
            ConfigError: a jurisdiction without a URL, a malformed URL, or one URL
                configured for two jurisdictions.
        """
        self._by_address: dict[_Address, tuple[str, str]] = {}
        for code, urls in gateways.items():
            listed = [urls] if isinstance(urls, str) else list(urls)
            if not listed:
                raise ConfigError(f"gateway map: jurisdiction {code!r} has no gateway URL")
            for url in listed:
                self._add(code, url)

    def _add(self, code: str, url: str) -> None:
        try:
            address = _address(url)
        except VerificationError as exc:
            raise ConfigError(f"gateway map: {exc}") from exc
        known = self._by_address.get(address)
        if known is not None and known[0] != code:
            raise ConfigError(f"gateway map: {url} is configured for both {known[0]!r} "
                              f"and {code!r}")
        self._by_address.setdefault(address, (code, url.rstrip("/")))

    def jurisdiction_of(self, url: str) -> str | None:
        """The jurisdiction whose configured gateway ``url`` is, or None."""
        try:
            known = self._by_address.get(_address(url))
        except VerificationError:
            return None
        return known[0] if known else None

    def gateway(self, home: str, url: object) -> str:
        """The configured base URL that ``url`` (named by an answer) spells, if it is
        a configured gateway of ``home``.

        Raises:
            UntrustedRedirect: ``url`` is not a configured gateway of ``home``.
        """
        location = url if isinstance(url, str) else None
        try:
            known = self._by_address.get(_address(url)) if isinstance(url, str) else None
        except VerificationError:
            known = None
        if known is None or known[0] != home:
            raise UntrustedRedirect(
                f"a gateway redirected to {location!r} for jurisdiction {home!r}, which "
                "is not a gateway of that jurisdiction in this client's map; nothing sent",
                home=home, location=location)
        return known[1]


@dataclass(frozen=True)
class ReadResult:
    """What a read released.

    Attributes:
        fields: released values by field name.
        withheld: one ``{field, class, reason, policy_ids}`` per withheld field.
        log_origin: origin of the log holding the access entry.
        log_index: index of that entry.
        gateway: base URL of the gateway that answered (the home one).
        outcome: ``allow`` or ``partial``.
        receipt: the gateway's checked receipt of this answer.
    """

    fields: dict[str, Any]
    withheld: list[dict[str, Any]]
    log_origin: str
    log_index: int
    gateway: str
    outcome: str
    receipt: Receipt | None = None


@dataclass(frozen=True)
class KeptReceipt:
    """A checked receipt and its salt (the requester's; never hand the salt to
    someone who should not learn the values), with the gateway that answered."""

    receipt: Receipt
    salt: bytes
    gateway: str


def error_from_problem(status: int, body: Mapping[str, Any]) -> BordergateError:
    """The error of the tree that an RFC 9457 problem body stands for."""
    code = str(body.get("code") or "error")
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    error: BordergateError
    if status == 421:
        location = body.get("gateway")
        error = WrongJurisdiction(detail, home=str(body.get("home", "")),
                                  location=location if isinstance(location, str) else None)
    elif status == 401:
        error = Unauthenticated(detail, code=code)
    elif status == 404:
        error = NotFound(detail, code=code)
    elif status == 403:
        error = PolicyDenied(detail, code=code)
    elif status == 409:
        error = Conflict(detail, code=code)
    elif status == 503 and code == "push_back":
        error = PushBack(detail, retry_after=float(body.get("retry_after", 1.0)))
    elif status >= 500:
        error = Unavailable(detail, code=code)
    elif status == 422:
        error = VerificationError(detail, code=code)
    else:
        error = InvalidInput(detail, code=code)
    setattr(error, "problem", dict(body))  # noqa: B010 (an extra attribute on any error)
    return error


class GatewayClient:
    """A client of one gateway that follows 421s to configured home gateways only."""

    def __init__(self, base_url: str, token: str | Mapping[str, str], *,
                 gateways: GatewayMap | Mapping[str, str | Sequence[str]],
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None,
                 receipt_keys: Mapping[str, str | Sequence[str]] | None = None,
                 receipt_dir: Path | None = None, clock: Callable[[], float] = time.time,
                 clock_tolerance: float = CLOCK_TOLERANCE) -> None:
        """Bind a gateway, the gateways of every jurisdiction and the token(s) to present.

        Args:
            base_url: the gateway asked first; one of ``gateways``.
            token: one bearer token (for ``base_url``'s jurisdiction only: such a
                client never follows a 421 to another jurisdiction), or tokens by
                jurisdiction code.
            gateways: jurisdiction code -> its gateway URL(s), from the client's own
                configuration; a 421 is followed only to a URL listed here for the
                jurisdiction it names.
            timeout: per-request timeout, seconds.
            transport: an httpx transport (tests).
            receipt_keys: jurisdiction code -> its gateways' registered receipt
                verifier keys (the deployment file's ``receipts.public_keys``); a
                receipt from a jurisdiction listed here must be signed by one of
                them.  Unlisted jurisdictions: the receipt's own key is checked
                and ``bordergate receipt verify`` checks its registration in the log.
            receipt_dir: where to write each checked receipt
                (``ORIGIN-INDEX.receipt.json``, shareable) and its salt
                (``ORIGIN-INDEX.salt``, the requester's own).
            clock: the client's clock (epoch seconds), read around each request
                whose receipt is checked.
            clock_tolerance: seconds a receipt's entry time may lie outside the
                request (the two clocks' skew).

        Raises:
            ConfigError: ``gateways`` is malformed or does not list ``base_url``.
        """
        self.gateways = gateways if isinstance(gateways, GatewayMap) else GatewayMap(gateways)
        jurisdiction = self.gateways.jurisdiction_of(base_url)
        if jurisdiction is None:
            raise ConfigError(f"{base_url} is not a gateway in the client's gateway map")
        self.jurisdiction = jurisdiction
        self.base_url = self.gateways.gateway(jurisdiction, base_url)
        self._tokens = {jurisdiction: token} if isinstance(token, str) else dict(token)
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        self._receipt_keys = {code: [keys] if isinstance(keys, str) else list(keys)
                              for code, keys in (receipt_keys or {}).items()}
        self.receipt_dir = receipt_dir
        self.receipts: list[KeptReceipt] = []
        self._clock = clock
        self._clock_tolerance = clock_tolerance

    def close(self) -> None:
        """Close connections."""
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _token(self, jurisdiction: str) -> str:
        token = self._tokens.get(jurisdiction)
        if token is None:
            raise Unauthenticated(f"no token for jurisdiction {jurisdiction}",
                                  code="token_missing")
        return token

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              json: object = None, headers: Mapping[str, str] | None = None
              ) -> tuple[str, httpx.Response]:
        base, jurisdiction = self.base_url, self.jurisdiction
        for _ in range(_MAX_HOPS + 1):
            sent = {"Authorization": f"Bearer {self._token(jurisdiction)}", **(headers or {})}
            try:
                response = self._http.request(method, base + path, params=params, json=json,
                                              headers=sent)
            except httpx.HTTPError as exc:
                raise Unavailable(f"gateway {base} unreachable: {exc}",
                                  code="gateway_unreachable") from exc
            if 300 <= response.status_code < 400:
                raise UntrustedRedirect(
                    f"gateway {base} answered {response.status_code}; gateways do not "
                    "redirect, so it is not followed", home=jurisdiction,
                    location=response.headers.get("Location"))
            if response.status_code < 400:
                return base, response
            error = error_from_problem(response.status_code, _problem(response))
            if not isinstance(error, WrongJurisdiction) or not error.location:
                raise error
            try:  # checked against the client's own map before anything is sent there
                base = self.gateways.gateway(error.home, error.location)
            except UntrustedRedirect as untrusted:
                setattr(untrusted, "problem", getattr(error, "problem", {}))  # noqa: B010
                raise
            if error.home not in self._tokens:
                raise error  # a one-token client never leaves its jurisdiction
            jurisdiction = error.home
        raise WrongJurisdiction("too many 421 redirections", home="")

    # -- receipts ----------------------------------------------------------------
    def _check_receipt(self, base: str, body: Mapping[str, Any], response: httpx.Response,
                       *, action: str, collection: str, started: float,
                       group_by: str | None = None) -> Receipt:
        """Check and keep the receipt of an answer that released data: a receipt of
        ``action`` (what was asked: ``read`` or ``export``) about ``collection``
        (an export's grouped by ``group_by``), of an entry that records this
        client's token and a time from ``started`` (the request's start) to now.

        Raises:
            VerificationError: ``receipt_missing``, ``receipt_malformed``,
                ``receipt_key_untrusted``, ``receipt_signature_invalid``,
                ``receipt_mismatch``, ``receipt_digest_mismatch``.
        """
        raw, salt_text = body.get("receipt"), body.get("receipt_salt")
        if raw is None or salt_text is None:
            raise VerificationError(f"gateway {base} released data without a receipt",
                                    code="receipt_missing")
        receipt = parse_receipt(raw)
        try:
            salt = base64.b64decode(str(salt_text), validate=True)
        except (binascii.Error, ValueError):
            salt = b""
        if len(salt) != SALT_BYTES:
            raise VerificationError("the receipt's salt is not 32 bytes of base64",
                                    code="receipt_malformed")
        jurisdiction = self.gateways.jurisdiction_of(base)
        verify_receipt_signature(receipt, self._receipt_keys.get(jurisdiction or ""))
        if receipt.gateway != jurisdiction:
            raise VerificationError(f"a receipt of gateway {receipt.gateway!r} from the "
                                    f"gateway of {jurisdiction!r}", code="receipt_mismatch")
        origin = response.headers.get("Bordergate-Log-Origin")
        index = response.headers.get("Bordergate-Log-Index", "")
        if origin is None or _DIGITS.fullmatch(index) is None:
            raise VerificationError("the answer does not name its log entry (Bordergate-Log-"
                                    "Origin and -Index headers)", code="receipt_mismatch")
        check_answer(receipt, salt, body, origin=origin, index=int(index), action=action,
                     collection=collection)
        if group_by is not None and list(receipt.fields) != [group_by]:
            raise VerificationError(f"the export answered groups by {list(receipt.fields)}, "
                                    f"not by {group_by!r} as asked", code="receipt_mismatch")
        check_binding(receipt, jti=_token_claim(self._token(jurisdiction or ""), "jti"),
                      start=started, end=self._clock(), tolerance=self._clock_tolerance)
        self.receipts.append(KeptReceipt(receipt, salt, base))
        if self.receipt_dir is not None:
            self._store(receipt, salt)
        return receipt

    def _store(self, receipt: Receipt, salt: bytes) -> None:
        assert self.receipt_dir is not None
        self.receipt_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{re.sub(r'[^A-Za-z0-9._-]', '_', receipt.origin)}-{receipt.index}"
        (self.receipt_dir / f"{stem}.receipt.json").write_bytes(receipt.to_bytes() + b"\n")
        (self.receipt_dir / f"{stem}.salt").write_text(base64.b64encode(salt).decode() + "\n")

    # -- data ------------------------------------------------------------------
    def mint_subject(self) -> str:
        """A new subject id homed at this gateway."""
        _, r = self._call("POST", "/v1/subjects")
        return str(r.json()["subject"])

    def read(self, collection: str, record_id: str, *, purpose: str,
             fields: Sequence[str] | None = None, approval: str | None = None,
             subject: str | None = None) -> ReadResult:
        """Read a record as policy allows (following a 421 to its home).

        Raises:
            PolicyDenied: every field denied (``error.problem`` lists them and the
                log index).
            BordergateError: other problems, by status and code.
        """
        params = {"purpose": purpose}
        if fields:
            params["fields"] = ",".join(fields)
        if subject:
            params["subject"] = subject
        headers = {"Bordergate-Approval": approval} if approval else None
        started = self._clock()
        base, r = self._call("GET", f"/v1/{collection}/{record_id}", params=params,
                             headers=headers)
        body = r.json()
        receipt = self._check_receipt(base, body, r, action="read", collection=collection,
                                      started=started)
        withheld, outcome = body.get("withheld"), body.get("outcome")
        if not isinstance(withheld, list) or outcome not in ("allow", "partial"):
            raise VerificationError("the answer lacks its withheld list or outcome",
                                    code="receipt_mismatch")
        # the log entry is the receipt's, checked equal to the answer's headers
        return ReadResult(fields=body["fields"], withheld=withheld,
                          log_origin=receipt.origin, log_index=receipt.index, gateway=base,
                          outcome=outcome, receipt=receipt)

    def write(self, collection: str, record_id: str, subject: str,
              values: Mapping[str, object], *, purpose: str) -> dict[str, Any]:
        """Create or replace a record at the subject's home gateway."""
        _, r = self._call("PUT", f"/v1/{collection}/{record_id}", params={"purpose": purpose},
                          json={"subject": subject, "values": dict(values)})
        return dict(r.json())

    def erase(self, subject: str, *, purpose: str = "erasure") -> dict[str, Any]:
        """Erase a subject (crypto-shredding) at its home gateway."""
        _, r = self._call("DELETE", f"/v1/subjects/{subject}", params={"purpose": purpose})
        return dict(r.json())

    def export(self, collection: str, group_by: str, *, purpose: str = "analytics_aggregate",
               min_subjects: int | None = None) -> dict[str, Any]:
        """A differentially private aggregate of this gateway's jurisdiction (docs/exports.md):
        noisy counts, groups kept by a noisy threshold of at least k subjects."""
        payload: dict[str, Any] = {"collection": collection, "group_by": group_by,
                                   "purpose": purpose}
        if min_subjects is not None:
            payload["min_subjects"] = min_subjects
        started = self._clock()
        base, r = self._call("POST", "/v1/exports", json=payload)
        body = dict(r.json())
        self._check_receipt(base, body, r, action="export", collection=collection,
                            started=started, group_by=group_by)
        return body

    # -- approvals ---------------------------------------------------------------
    def request_approval(self, *, purpose: str, reason: str, collections: Sequence[str],
                         classes: Sequence[str], max_duration_s: int = 3600,
                         subjects: Sequence[str] = (), records: Sequence[str] = (),
                         ticket: str | None = None) -> dict[str, Any]:
        """Ask this gateway's custodian for an approval; returns it (pending).

        ``subjects`` (subject ids) and ``records`` (``<collection>/<record id>``)
        narrow it; ``ticket`` names the case it serves (docs/gateway.md).
        """
        body: dict[str, Any] = {
            "purpose": purpose, "reason": reason, "collections": list(collections),
            "classes": list(classes), "max_duration_s": max_duration_s}
        if subjects:
            body["subjects"] = list(subjects)
        if records:
            body["records"] = list(records)
        if ticket is not None:
            body["ticket"] = ticket
        _, r = self._call("POST", "/v1/approvals", json=body)
        return dict(r.json())

    def grant(self, approval_id: str, key: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
        """Grant an approval (custodian approvers), signed here with the approver's
        own ``key`` (:meth:`statement_for`)."""
        return self._change(approval_id, "grant", key)

    def deny(self, approval_id: str, key: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
        """Deny a pending approval (custodian approvers), signed with ``key``."""
        return self._change(approval_id, "deny", key)

    def revoke(self, approval_id: str, key: ed25519.Ed25519PrivateKey | None = None
               ) -> dict[str, Any]:
        """Revoke an approval: an approver signs with ``key``; its requester
        withdrawing their own request signs nothing (``key`` None)."""
        return self._change(approval_id, "revoke", key)

    def statement_for(self, approval_id: str, verdict: str) -> ApprovalStatement:
        """What an approver signs to ``verdict`` an approval, built from what this
        client checks itself: the approval's request entry as the gateway serves it
        (its digest recomputed here, its approval id checked), the log origin the
        gateway names, and the approver id of this client's own token.

        Raises:
            VerificationError: ``approval_request_mismatch`` (the entry served is
                not this approval's request, or its served digest differs) or
                ``malformed_entry``.
            BordergateError: as the GET of the approval.
        """
        base, r = self._call("GET", f"/v1/approvals/{approval_id}")
        body = r.json()
        text = body.get("request_entry")
        if not isinstance(text, str):
            raise VerificationError("the gateway serves no request entry for this approval",
                                    code="approval_request_mismatch")
        entry = parse_entry(text.encode("utf-8"))
        digest = request_digest(text.encode("utf-8"))
        if entry.type != "approval-request" or entry.body.get("approval") != approval_id or \
                body.get("request_digest") != digest:
            raise VerificationError("the request entry served is not this approval's",
                                    code="approval_request_mismatch")
        home = self.gateways.jurisdiction_of(base) or self.jurisdiction
        return ApprovalStatement(origin=str(body.get("log_origin")), approval=approval_id,
                                 request=digest, verdict=verdict,
                                 approver=_token_subject(self._token(home)))

    def _change(self, approval_id: str, verdict: str,
                key: ed25519.Ed25519PrivateKey | None) -> dict[str, Any]:
        payload = None
        if key is not None:
            signed = sign_statement(self.statement_for(approval_id, verdict), key)
            payload = {"statement": signed.to_json()}
        _, r = self._call("POST", f"/v1/approvals/{approval_id}/{verdict}", json=payload)
        return dict(r.json())

    def approval(self, approval_id: str) -> dict[str, Any]:
        """One approval with its status now."""
        _, r = self._call("GET", f"/v1/approvals/{approval_id}")
        return dict(r.json())

    def approvals(self, state: str | None = None) -> list[dict[str, Any]]:
        """Approvals, newest first, optionally by status (``pending``, ...)."""
        _, r = self._call("GET", "/v1/approvals", params={"state": state} if state else None)
        return list(r.json()["approvals"])


def _token_claim(token: str, name: str) -> str | None:
    """A string claim of this client's own bearer token (read, not verified: the
    client states who it is; the gateway verifies the token), or None."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        value = claims[name]
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        value = None
    return value if isinstance(value, str) and value else None


def _token_subject(token: str) -> str:
    """The ``sub`` claim of this client's own bearer token.

    Raises:
        VerificationError: ``malformed_token`` (not a JWT with a string ``sub``).
    """
    subject = _token_claim(token, "sub")
    if subject is None:
        raise VerificationError("the client's token has no subject", code="malformed_token")
    return subject


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return {"code": "http_error", "detail": f"HTTP {response.status_code}"}
    return body
