"""The Python client of bordergate gateways.

:class:`GatewayClient` talks to one jurisdiction's gateway with a bearer
token.  When a gateway answers 421 (the record or subject is homed elsewhere)
the client follows the ``gateway`` URL named in the problem body to the home
jurisdiction's gateway, openly (``ReadResult.gateway`` says who answered),
using the token given for that jurisdiction.  Problem responses become the
errors of :mod:`bordergate.errors` with the server's stable ``code``; the
whole problem body is kept as ``error.problem``.

This module must never retry a request that the gateway refused for policy,
and never send a token meant for one jurisdiction to another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bordergate.errors import (
    BordergateError,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    PushBack,
    Unauthenticated,
    Unavailable,
    VerificationError,
    WrongJurisdiction,
)

__all__ = ["GatewayClient", "ReadResult", "error_from_problem"]

_MAX_HOPS = 2


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
    """

    fields: dict[str, Any]
    withheld: list[dict[str, Any]]
    log_origin: str
    log_index: int
    gateway: str
    outcome: str


def error_from_problem(status: int, body: Mapping[str, Any]) -> BordergateError:
    """The error of the tree that an RFC 9457 problem body stands for."""
    code = str(body.get("code") or "error")
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    error: BordergateError
    if status == 421:
        error = WrongJurisdiction(detail, home=str(body.get("home", "")),
                                  location=body.get("gateway"))
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
    """A client of one gateway that follows 421s to the home gateway."""

    def __init__(self, base_url: str, token: str | Mapping[str, str], *,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None,
                 jurisdictions: Mapping[str, str] | None = None) -> None:
        """Bind a gateway and the token(s) to present.

        Args:
            base_url: the gateway asked first.
            token: one bearer token, or tokens by jurisdiction code (needed to
                follow a 421 to another jurisdiction's gateway).
            timeout: per-request timeout, seconds.
            transport: an httpx transport (tests).
            jurisdictions: gateway base URL -> jurisdiction code, to pick the
                token when ``token`` is a mapping (learnt from 421s otherwise).
        """
        self.base_url = base_url.rstrip("/")
        self._tokens = token
        self._homes = {k.rstrip("/"): v for k, v in (jurisdictions or {}).items()}
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close connections."""
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _token(self, base: str) -> str:
        if isinstance(self._tokens, str):
            return self._tokens
        home = self._homes.get(base)
        if home is None or home not in self._tokens:
            raise Unauthenticated(f"no token for the gateway at {base}", code="token_missing")
        return self._tokens[home]

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              json: object = None, headers: Mapping[str, str] | None = None
              ) -> tuple[str, httpx.Response]:
        base = self.base_url
        for _ in range(_MAX_HOPS + 1):
            sent = {"Authorization": f"Bearer {self._token(base)}", **(headers or {})}
            try:
                response = self._http.request(method, base + path, params=params, json=json,
                                              headers=sent)
            except httpx.HTTPError as exc:
                raise Unavailable(f"gateway {base} unreachable: {exc}",
                                  code="gateway_unreachable") from exc
            if response.status_code < 400:
                return base, response
            body = _problem(response)
            error = error_from_problem(response.status_code, body)
            if isinstance(error, WrongJurisdiction) and error.location:
                home_url = str(error.location).rstrip("/")
                self._homes.setdefault(home_url, error.home)
                base = home_url
                continue
            raise error
        raise WrongJurisdiction("too many 421 redirections", home="")

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
        base, r = self._call("GET", f"/v1/{collection}/{record_id}", params=params,
                             headers=headers)
        body = r.json()
        return ReadResult(fields=body["fields"], withheld=body["withheld"],
                          log_origin=r.headers["Bordergate-Log-Origin"],
                          log_index=int(r.headers["Bordergate-Log-Index"]), gateway=base,
                          outcome=body["outcome"])

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
        """A k-anonymous aggregate of this gateway's jurisdiction."""
        payload: dict[str, Any] = {"collection": collection, "group_by": group_by,
                                   "purpose": purpose}
        if min_subjects is not None:
            payload["min_subjects"] = min_subjects
        _, r = self._call("POST", "/v1/exports", json=payload)
        return dict(r.json())

    # -- approvals ---------------------------------------------------------------
    def request_approval(self, *, purpose: str, reason: str, collections: Sequence[str],
                         classes: Sequence[str], max_duration_s: int = 3600) -> dict[str, Any]:
        """Ask this gateway's custodian for an approval; returns it (pending)."""
        _, r = self._call("POST", "/v1/approvals", json={
            "purpose": purpose, "reason": reason, "collections": list(collections),
            "classes": list(classes), "max_duration_s": max_duration_s})
        return dict(r.json())

    def grant(self, approval_id: str) -> dict[str, Any]:
        """Grant an approval (custodian approvers)."""
        return self._change(approval_id, "grant")

    def deny(self, approval_id: str) -> dict[str, Any]:
        """Deny a pending approval (custodian approvers)."""
        return self._change(approval_id, "deny")

    def revoke(self, approval_id: str) -> dict[str, Any]:
        """Revoke an approval (its requester or an approver)."""
        return self._change(approval_id, "revoke")

    def _change(self, approval_id: str, verdict: str) -> dict[str, Any]:
        _, r = self._call("POST", f"/v1/approvals/{approval_id}/{verdict}")
        return dict(r.json())

    def approval(self, approval_id: str) -> dict[str, Any]:
        """One approval with its status now."""
        _, r = self._call("GET", f"/v1/approvals/{approval_id}")
        return dict(r.json())

    def approvals(self, state: str | None = None) -> list[dict[str, Any]]:
        """Approvals, newest first, optionally by status (``pending``, ...)."""
        _, r = self._call("GET", "/v1/approvals", params={"state": state} if state else None)
        return list(r.json()["approvals"])


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return {"code": "http_error", "detail": f"HTTP {response.status_code}"}
    return body
