"""The gateway's OpenAPI 3.1 document, written by hand to match ``gateway.app``.

Every operation lists every status it can answer (problem responses included),
so that schemathesis can check status codes, content types and body shapes
against it.  Keep it in step with ``gateway.app``; tests/gateway run
schemathesis against a real gateway to catch drift.

This module is pure data: it must never import the app or touch I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_JSON = "application/json"
_PROBLEM = "application/problem+json"
_STATUS_TEXT = {
    400: "Malformed request (stable `code`: unknown_collection, unknown_field, "
         "malformed_record_id, malformed_subject_id, unknown_purpose, malformed_json, ...)",
    401: "Missing, malformed, expired or untrusted bearer token",
    403: "Policy denied; the denial is logged (log index in the body and headers)",
    404: "No such record, subject, approval or log index",
    405: "Method not allowed",
    409: "The state forbids it (approval not pending, record owned by another subject)",
    413: "The request body exceeds the configured limit",
    422: "The approver's signed statement is missing or does not verify (stable `code`: "
         "approval_signature_missing, approval_signature_invalid, approver_key_unknown, "
         "approval_request_mismatch, malformed_approval_signature); the refusal is logged",
    421: "Homed in another jurisdiction: ask the gateway named in `gateway`",
    500: "Internal error (never a stack trace; nothing released)",
    503: "Log, store or key backend unavailable: nothing released (Retry-After)",
}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": _STATUS_TEXT[s],
                     "content": {_PROBLEM: {"schema": _PROBLEM_REF}}}
            for s in statuses}


def _ok(status: int, schema: str, description: str, *, logged: bool = False
        ) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    out: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": ref}}}
    if logged:
        out["headers"] = {
            "Bordergate-Log-Origin": {"schema": {"type": "string"},
                                      "description": "origin of the log holding the entry"},
            "Bordergate-Log-Index": {"schema": {"type": "string", "pattern": "^[0-9]+$"},
                                     "description": "index of the entry recording it"},
        }
    return {str(status): out}


def _param(name: str, where: str, schema: dict[str, Any], description: str,
           *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"}
_RECORD = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}
_SUBJECT = {"type": "string", "pattern": "^[a-z]{2,8}-[a-z2-7]{25}[aeimquy4]$"}
_APPROVAL = {"type": "string", "pattern": "^apr-[a-z2-7]{26}$"}
_COMMON = (400, 401, 503)


def _schemas() -> dict[str, Any]:
    str_list = {"type": "array", "items": {"type": "string"}}
    log_ref = {"$ref": "#/components/schemas/LogRef"}
    return {
        "Problem": {
            "type": "object", "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"},
                "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                "home": {"type": "string"}, "gateway": {"type": ["string", "null"]},
                "retry_after": {"type": "number"},
            },
        },
        "Receipt": {
            "type": "object", "description": "the gateway's signed statement of what it "
            "released under the entry (bordergate-receipt/v1, docs/gateway.md 'Receipts')",
            "required": ["format", "key", "gateway", "origin", "index", "leaf_hash", "action",
                         "collection", "fields", "groups", "suppressed", "digest", "signature"],
            "properties": {
                "format": {"const": "bordergate-receipt/v1"}, "key": {"type": "string"},
                "gateway": {"type": "string"}, "origin": {"type": "string"},
                "index": {"type": "integer", "minimum": 0}, "leaf_hash": {"type": "string"},
                "action": {"enum": ["read", "export"]}, "collection": {"type": "string"},
                "fields": str_list, "groups": {"type": ["integer", "null"]},
                "suppressed": {"type": ["integer", "null"]}, "digest": {"type": "string"},
                "signature": {"type": "string"},
            },
        },
        "LogRef": {"type": "object", "required": ["origin", "index"],
                   "properties": {"origin": {"type": "string"},
                                  "index": {"type": "integer", "minimum": 0}}},
        "Subject": {"type": "object", "required": ["subject", "home"],
                    "properties": {"subject": {"type": "string"}, "home": {"type": "string"}}},
        "Withheld": {
            "type": "object", "required": ["field", "class", "reason", "policy_ids"],
            "properties": {
                "field": {"type": "string"},
                "class": {"enum": ["public", "protected", "restricted"]},
                "reason": {"enum": ["policy_denied", "no_approval", "approval_not_valid",
                                    "not_permitted", "policy_error"]},
                "policy_ids": str_list,
            },
        },
        "ReadResult": {
            "type": "object",
            "required": ["collection", "record", "purpose", "fields", "withheld", "outcome",
                         "log"],
            "properties": {
                "collection": {"type": "string"}, "record": {"type": "string"},
                "purpose": {"type": "string"},
                "fields": {"type": "object", "description": "released values by field"},
                "withheld": {"type": "array",
                             "items": {"$ref": "#/components/schemas/Withheld"}},
                "outcome": {"enum": ["allow", "partial", "deny"]}, "log": log_ref,
                "receipt": {"$ref": "#/components/schemas/Receipt"},
                "receipt_salt": {"type": "string", "description": "32 random bytes (base64) "
                                 "of the receipt's digest, for the requester only"},
            },
        },
        "WriteRequest": {
            "type": "object", "required": ["subject", "values"],
            "properties": {"subject": _SUBJECT,
                           "values": {"type": "object", "minProperties": 1}},
        },
        "WriteResult": {
            "type": "object", "required": ["collection", "record", "written", "log"],
            "properties": {"collection": {"type": "string"}, "record": {"type": "string"},
                           "written": str_list, "log": log_ref},
        },
        "ErasureResult": {
            "type": "object",
            "required": ["subject", "records", "data_key_destroyed", "residue",
                         "residue_kek_version", "log"],
            "properties": {"subject": {"type": "string"}, "records": {"type": "integer"},
                           "data_key_destroyed": {"type": "boolean"},
                           "residue": {"enum": ["none", "until_kek_destroyed"],
                                       "description": "until_kek_destroyed: copies of the "
                                       "store taken before the erasure stay readable until "
                                       "residue_kek_version (and every older version) is "
                                       "destroyed"},
                           "residue_kek_version": {"type": ["integer", "null"]},
                           "log": log_ref},
        },
        "ExportRequest": {
            "type": "object", "required": ["collection", "group_by", "purpose"],
            "properties": {"collection": _NAME, "group_by": _NAME,
                           "purpose": {"type": "string"},
                           "min_subjects": {"type": "integer", "minimum": 1}},
        },
        "ExportResult": {
            "type": "object",
            "required": ["collection", "group_by", "k", "groups", "suppressed", "noise", "log"],
            "properties": {
                "collection": {"type": "string"}, "group_by": {"type": "string"},
                "k": {"type": "integer"}, "suppressed": {"type": "integer"},
                "truncated": {"type": "boolean"}, "log": log_ref,
                "receipt": {"$ref": "#/components/schemas/Receipt"},
                "receipt_salt": {"type": "string", "description": "32 random bytes (base64) "
                                 "of the receipt's digest, for the requester only"},
                "noise": {"type": "object", "description": "the OpenDP mechanism, epsilon "
                          "(millionths), delta exponent, threshold, scale and the budget "
                          "state after this export (docs/exports.md)"},
                "groups": {"type": "array", "items": {
                    "type": "object", "required": ["value", "records", "subjects"],
                    "properties": {"value": {}, "records": {"type": "integer"},
                                   "subjects": {"type": "integer"}}}},
            },
        },
        "ApprovalRequest": {
            "type": "object", "required": ["purpose", "reason", "collections", "classes"],
            "properties": {
                "purpose": {"type": "string"}, "reason": {"type": "string"},
                "collections": {"type": "array", "items": _NAME, "minItems": 1},
                "classes": {"type": "array", "minItems": 1,
                            "items": {"enum": ["public", "protected", "restricted"]}},
                "max_duration_s": {"type": "integer", "minimum": 1,
                                   "description": "at most the bundle's approvals.max_duration_s"},
                "subjects": {"type": "array", "items": {"type": "string"}, "maxItems": 100,
                             "description": "subject ids (homed here) it is narrowed to"},
                "records": {"type": "array", "items": {"type": "string"}, "maxItems": 100,
                            "description": "<collection>/<record id> it is narrowed to"},
                "ticket": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}$"},
            },
        },
        "Approval": {
            "type": "object",
            "required": ["id", "requester", "purpose", "reason", "collections", "classes",
                         "expires", "state", "approvers"],
            "properties": {
                "id": {"type": "string"}, "requester": {"type": "string"},
                "requester_org": {"type": "string"},
                "requester_location": {"type": "string"},
                "purpose": {"type": "string"}, "reason": {"type": "string"},
                "collections": str_list, "classes": str_list, "home": {"type": "string"},
                "requested_at": {"type": "integer"}, "expires": {"type": "integer"},
                "state": {"enum": ["pending", "granted", "denied", "revoked"]},
                "status": {"enum": ["pending", "granted", "denied", "revoked", "expired"]},
                "valid": {"type": "boolean"}, "approvers": str_list,
                "closed_by": {"type": ["string", "null"]}, "version": {"type": "integer"},
                "changed_at": {"type": ["integer", "null"],
                               "description": "log index of its last change entry"},
                "subjects": str_list, "records": str_list,
                "ticket": {"type": ["string", "null"]},
                "max_subjects": {"type": ["integer", "null"]},
                "request_entry": {"type": ["string", "null"],
                                  "description": "its approval-request entry (canonical)"},
                "request_digest": {"type": ["string", "null"],
                                   "description": "sha256: leaf hash an approver signs"},
                "log_origin": {"type": "string",
                               "description": "the log an approver's statement names"},
                "log": log_ref,
            },
        },
        "ApprovalChange": {
            "type": "object", "required": ["statement"],
            "description": "the approver's Ed25519 signature of the change (absent only "
                           "when a requester withdraws their own request)",
            "properties": {"statement": {
                "type": "object", "required": ["request", "key", "signature"],
                "properties": {"request": {"type": "string"}, "key": {"type": "string"},
                               "signature": {"type": "string"}}}}},
        "ApprovalList": {"type": "object", "required": ["approvals"],
                         "properties": {"approvals": {
                             "type": "array", "items": {"$ref": "#/components/schemas/Approval"}}}},
        "InclusionProof": {
            "type": "object",
            "required": ["origin", "index", "size", "root", "leaf_hash", "proof", "checkpoint"],
            "properties": {"origin": {"type": "string"}, "index": {"type": "integer"},
                           "size": {"type": "integer"}, "root": {"type": "string"},
                           "leaf_hash": {"type": "string"}, "proof": str_list,
                           "checkpoint": {"type": "string"}},
        },
        "TokenRevocation": {"type": "object", "required": ["revoked", "log"],
                            "properties": {"revoked": {"type": "string"}, "log": log_ref}},
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"type": "string"},
                                  "jurisdiction": {"type": "string"},
                                  "origin": {"type": "string"}, "bundle": {"type": "string"}}},
    }


def _body(schema: str) -> dict[str, Any]:
    return {"required": True,
            "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _paths(purposes: list[str] | None, collections: list[str] | None) -> dict[str, Any]:
    purpose_schema: dict[str, Any] = ({"enum": purposes} if purposes
                                      else {"type": "string", "minLength": 1})
    _PURPOSE_Q = _param("purpose", "query", purpose_schema,  # noqa: N806
                        "declared purpose of the access (one of the policy bundle's)",
                        required=True)
    collection = _param("collection", "path", {"enum": collections} if collections else _NAME,
                        "collection name (from the schema)")
    record = _param("record_id", "path", _RECORD, "record id")
    approval_id = _param("approval_id", "path", _APPROVAL, "approval id")
    change = {
        "security": [{"bearer": []}],
        "parameters": [approval_id],
        "requestBody": {"required": False, "content": {_JSON: {"schema": {
            "$ref": "#/components/schemas/ApprovalChange"}}}},
        "responses": {**_ok(200, "Approval", "the approval after the change", logged=True),
                      **_problems(*_COMMON, 403, 404, 409, 413, 422)},
    }
    text = {"text/plain": {"schema": {"type": "string"}}}
    binary = {"application/octet-stream": {"schema": {"type": "string",
                                                      "format": "binary"}}}
    return {
        "/v1/subjects": {"post": {
            "summary": "Mint a subject id homed in this jurisdiction",
            "operationId": "mintSubject", "security": [{"bearer": []}],
            "responses": {**_ok(201, "Subject", "the new subject id"),
                          **_problems(*_COMMON, 413)}}},
        "/v1/subjects/{subject_id}": {"delete": {
            "summary": "Erase a subject (crypto-shredding); logged before it is done",
            "operationId": "eraseSubject", "security": [{"bearer": []}],
            "parameters": [_param("subject_id", "path", _SUBJECT, "subject id"), _PURPOSE_Q],
            "responses": {**_ok(200, "ErasureResult", "what was erased", logged=True),
                          **_problems(*_COMMON, 403, 404, 421)}}},
        "/v1/{collection}/{record_id}": {
            "get": {
                "summary": "Read the fields policy allows; logged before release",
                "operationId": "readRecord", "security": [{"bearer": []}],
                "parameters": [
                    collection, record, _PURPOSE_Q,
                    _param("fields", "query", {"type": "string"},
                           "comma-separated field names (default: all)"),
                    _param("approval", "query", _APPROVAL,
                           "an approval id (or the Bordergate-Approval header)"),
                    _param("subject", "query", _SUBJECT,
                           "the owning subject, when known (routes before any lookup)"),
                ],
                "responses": {**_ok(200, "ReadResult", "released and withheld fields",
                                    logged=True),
                              **_problems(*_COMMON, 403, 404, 421)}},
            "put": {
                "summary": "Create or replace a record; logged before it is written",
                "operationId": "writeRecord", "security": [{"bearer": []}],
                "parameters": [collection, record, _PURPOSE_Q],
                "requestBody": _body("WriteRequest"),
                "responses": {**_ok(200, "WriteResult", "written", logged=True),
                              **_problems(*_COMMON, 403, 404, 409, 413, 421)}},
        },
        "/v1/exports": {"post": {
            "summary": "A k-anonymous aggregate of one collection grouped by one field",
            "operationId": "export", "security": [{"bearer": []}],
            "requestBody": _body("ExportRequest"),
            "responses": {**_ok(200, "ExportResult", "the groups", logged=True),
                          **_problems(*_COMMON, 403, 413)}}},
        "/v1/approvals": {
            "post": {
                "summary": "Request an approval (Lockbox style)",
                "operationId": "requestApproval", "security": [{"bearer": []}],
                "requestBody": _body("ApprovalRequest"),
                "responses": {**_ok(201, "Approval", "the pending approval", logged=True),
                              **_problems(*_COMMON, 413)}},
            "get": {
                "summary": "List approvals by status",
                "operationId": "listApprovals", "security": [{"bearer": []}],
                "parameters": [_param("state", "query", {"enum": [
                    "pending", "granted", "denied", "revoked", "expired"]}, "status filter")],
                "responses": {**_ok(200, "ApprovalList", "approvals, newest first"),
                              **_problems(*_COMMON)}},
        },
        "/v1/approvals/{approval_id}": {"get": {
            "summary": "One approval and its status",
            "operationId": "getApproval", "security": [{"bearer": []}],
            "parameters": [approval_id],
            "responses": {**_ok(200, "Approval", "the approval"),
                          **_problems(*_COMMON, 404)}}},
        "/v1/approvals/{approval_id}/grant": {"post": {
            **change, "summary": "Grant (one of two custodian approvers)",
            "operationId": "grantApproval"}},
        "/v1/approvals/{approval_id}/deny": {"post": {
            **change, "summary": "Deny a pending approval", "operationId": "denyApproval"}},
        "/v1/approvals/{approval_id}/revoke": {"post": {
            **change, "summary": "Revoke an approval", "operationId": "revokeApproval"}},
        "/v1/tokens/revoke": {"post": {
            "summary": "Revoke a bearer token (custodian principals of this jurisdiction)",
            "operationId": "revokeToken", "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {_JSON: {"schema": {
                "type": "object", "required": ["jti"], "additionalProperties": False,
                "properties": {"jti": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
                               "reason": {"type": "string", "maxLength": 200}}}}}},
            "responses": {**_ok(200, "TokenRevocation", "the revocation's log entry",
                                logged=True),
                          **_problems(*_COMMON, 403, 413)}}},
        "/v1/log/checkpoint": {"get": {
            "summary": "The log's current signed checkpoint (C2SP tlog-checkpoint)",
            "operationId": "logCheckpoint",
            "responses": {"200": {"description": "signed note", "content": text},
                          "404": {"description": "no checkpoint", "content": text}}}},
        "/v1/log/tile/{path}": {"get": {
            "summary": "A C2SP tlog-tiles tile or entry bundle",
            "operationId": "logTile",
            "parameters": [_param("path", "path", {"type": "string"}, "tile path")],
            "responses": {"200": {"description": "tile bytes", "content": binary},
                          # a path the tile route cannot even match (a newline in it)
                          # falls through to the app's problem+json 404
                          "404": {"description": "no such tile", "content": {
                              **text, _PROBLEM: {"schema": _PROBLEM_REF}}}}}},
        "/v1/log/proof/{index}": {"get": {
            "summary": "Inclusion proof of an entry against the current checkpoint",
            "operationId": "logProof",
            "parameters": [_param("index", "path", {"type": "integer", "minimum": 0},
                                  "entry index")],
            "responses": {**_ok(200, "InclusionProof", "the proof"),
                          **_problems(400, 404, 503)}}},
        "/healthz": {"get": {
            "summary": "Liveness", "operationId": "health",
            "responses": {**_ok(200, "Health", "serving"), **_problems(503)}}},
        "/readyz": {"get": {
            "summary": "Readiness: log, sequencer, store and keys (docs/gateway.md)",
            "operationId": "ready",
            "responses": {"200": {"description": "ready or degraded",
                                  "content": {"application/json": {
                                      "schema": {"type": "object"}}}},
                          **_problems(503)}}},
    }


def openapi_document(jurisdiction: str | None = None, *,
                     purposes: list[str] | None = None,
                     collections: list[str] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a gateway (of ``jurisdiction`` if given).

    With ``purposes`` and ``collections`` (the bundle's and the schema's) the
    document lists them as enums, so generated requests reach policy decisions.
    """
    title = "bordergate gateway" + (f" ({jurisdiction})" if jurisdiction else "")
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1",
                 "description": "Field-level, policy-governed, logged-before-release access "
                                "to the subject data of one jurisdiction."},
        "paths": _paths(purposes, collections),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
    }
