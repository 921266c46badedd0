"""The gateway's OpenAPI 3.1 document, generated from what the gateway enforces.

The document is built from an :class:`ApiModel`: the deployment's classified
schema (one read and one write operation per collection, its field names as an
enum, every value typed and bounded as the store checks it), the policy
bundle (purposes and their reason codes as enums) and the limits (fields per
read, the longest approval).  What the document admits, the gateway accepts
unless a documented refusal applies; what it forbids, the gateway refuses with
400 and a stable ``code`` (issue 16, item 8: ``make test`` runs schemathesis
with every check against a real gateway to hold both to that).

Every expected refusal is a documented response with the common problem body
(RFC 9457, ``Problem``): policy denials, budgets, export thresholds and
roster refusals (403), approvals not pending (409), approver statements that
do not verify and scopes that name another collection (422), a subject homed
elsewhere (421), an oversize body (413) and the log, store, roster or key
service being unavailable (503, nothing released).  Responses link the
operations that create something (a subject, a record, an approval) to those
that use it, so that a stateful client reaches real records.

This module is pure data: it must never import the app or touch I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bordergate.residency.schema import MAX_VALUE_BYTES, TIMESTAMP_REGEX

if TYPE_CHECKING:
    from bordergate.config import Limits
    from bordergate.policy.bundle import PolicyBundle
    from bordergate.residency.schema import Schema

__all__ = ["INDEX_MAX", "ApiField", "ApiModel", "api_model", "openapi_document"]

#: The largest log index a request may name (a signed 64-bit integer); larger is a 400.
INDEX_MAX = (1 << 63) - 1
_INT64 = {"minimum": -(1 << 63), "maximum": (1 << 63) - 1}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_JSON = "application/json"
_PROBLEM = "application/problem+json"
_CLASSES = ["public", "protected", "restricted"]
_STATES = ["pending", "granted", "denied", "revoked", "expired"]
_RECORD_ID = "[A-Za-z0-9_-]{1,128}"
_MAX_SCOPE_ITEMS = 100
_K_MAX = 2**31 - 1
_STATUS_TEXT = {
    400: "Malformed request (stable `code`: unknown_collection, unknown_field, wrong_type, "
         "missing_field, value_too_large, malformed_record_id, malformed_subject_id, "
         "unknown_purpose, malformed_json, malformed_body, malformed_index, ...)",
    401: "Missing, malformed, expired, revoked or untrusted bearer token",
    403: "Refused by policy and logged (`policy_denied` and the deciding policy's code, "
         "an export below the bundle's k_min, an approval that does not reach the record), "
         "a privacy budget spent (`privacy_budget_exhausted`), a principal the roster does "
         "not list (`principal_not_in_roster`) or not allowed to revoke tokens",
    404: "No such record, subject, approval or log index",
    409: "The state forbids it (approval not pending or expired, record owned by another "
         "subject, an approval changed meanwhile, `subject_erased`: a write logged before "
         "the subject's erasure, `record_changed`: the record gained a field the write did "
         "not decide)",
    413: "The request body exceeds the configured limit",
    421: "Homed in another jurisdiction: ask the gateway named in `gateway`",
    422: "Well-formed but not acceptable: the approver's signed statement is missing or "
         "does not verify (approval_signature_missing, approval_signature_invalid, "
         "approver_key_unknown, approval_request_mismatch, malformed_approval_signature; "
         "the refusal is logged), or an approval scope names a record of a collection the "
         "approval does not (invalid_scope)",
    503: "Log, sequencer, store, roster or key service unavailable: nothing released "
         "(Retry-After)",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"},
                                "description": "seconds to wait before retrying"}}


@dataclass(frozen=True)
class ApiField:
    """One field of a collection as the API sees it.

    Attributes:
        name: the field name.
        type: ``string``, ``integer``, ``boolean`` or ``timestamp``.
        required: a write must give it (not null).
        max_length: strings only, in characters.
    """

    name: str
    type: str
    required: bool = False
    max_length: int = 4096


@dataclass(frozen=True)
class ApiModel:
    """What the document describes: collections, purposes and limits.

    Attributes:
        jurisdiction: the gateway's jurisdiction (subject ids are homed there), or
            None for a document of any gateway.
        collections: collection name -> its fields.
        purposes: purpose name -> its reason codes.
        max_fields: most field names one read may ask for.
        max_approval_seconds: the longest approval a request may ask for.
    """

    jurisdiction: str | None
    collections: Mapping[str, tuple[ApiField, ...]]
    purposes: Mapping[str, tuple[str, ...]]
    max_fields: int = 64
    max_approval_seconds: int = 8 * 3600


def api_model(schema: Schema, bundle: PolicyBundle, *, jurisdiction: str | None,
              limits: Limits | None = None) -> ApiModel:
    """The model of a gateway serving ``schema`` under ``bundle`` with ``limits``."""
    collections = {
        name: tuple(ApiField(spec.name, spec.type.value, spec.required, spec.max_length)
                    for spec in coll.fields.values())
        for name, coll in sorted(schema.collections.items())}
    purposes = {name: tuple(sorted(p.reason_codes)) for name, p in sorted(bundle.purposes.items())}
    longest = bundle.approval_limits.max_duration_s
    if limits is not None:
        longest = min(longest, limits.max_approval_seconds)
    return ApiModel(jurisdiction, collections, purposes,
                    max_fields=limits.max_fields if limits is not None else 64,
                    max_approval_seconds=longest)


def _problems(*statuses: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in statuses:
        response: dict[str, Any] = {"description": _STATUS_TEXT[s],
                                    "content": {_PROBLEM: {"schema": _PROBLEM_REF}}}
        if s == 503:
            response["headers"] = _RETRY_AFTER
        out[str(s)] = response
    return out


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema}"}


def _ok(status: int, schema: str | dict[str, Any], description: str, *, logged: bool = False,
        links: dict[str, Any] | None = None) -> dict[str, Any]:
    body = _ref(schema) if isinstance(schema, str) else schema
    out: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": body}}}
    if logged:
        out["headers"] = {
            "Bordergate-Log-Origin": {"schema": {"type": "string"}, "required": True,
                                      "description": "origin of the log holding the entry"},
            "Bordergate-Log-Index": {"schema": {"type": "string", "pattern": "^[0-9]+$"},
                                     "required": True,
                                     "description": "index of the entry recording it"},
        }
    if links:
        out["links"] = links
    return {str(status): out}


def _param(name: str, where: str, schema: dict[str, Any], description: str,
           *, required: bool = False, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description, **extra}


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _value_schema(f: ApiField) -> dict[str, Any]:
    """A field's value as the store accepts it (``FieldSpec.normalize``)."""
    schema: dict[str, Any]
    if f.type == "integer":
        schema = {"type": "integer", **_INT64}
    elif f.type == "boolean":
        schema = {"type": "boolean"}
    elif f.type == "timestamp":
        schema = {"type": "string", "pattern": TIMESTAMP_REGEX,
                  "description": "RFC 3339 date-time with a UTC offset (years 0001-9999 in UTC, "
                                 "0002-9998 with another offset); "
                                 "answered normalised to UTC (`Z`)"}
    else:
        schema = {"type": "string", "maxLength": min(f.max_length, MAX_VALUE_BYTES // 4)}
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


class _Document:
    """Builds the paths and schemas of one model."""

    def __init__(self, model: ApiModel) -> None:
        self.model = model
        home = model.jurisdiction
        prefix = home if home else "[a-z]{2,8}"
        self.subject = {"type": "string", "pattern": f"^{prefix}-[a-z2-7]{{25}}[aeimquy4]$"}
        self.purpose = {"type": "string", "enum": sorted(model.purposes)}
        self.record = {"type": "string", "pattern": f"^{_RECORD_ID}$"}
        self.approval = {"type": "string", "pattern": "^apr-[a-z2-7]{26}$"}
        self.schemas: dict[str, Any] = _common_schemas()

    def purpose_query(self) -> dict[str, Any]:
        return _param("purpose", "query", self.purpose,
                      "declared purpose of the access (one of the policy bundle's)",
                      required=True)

    def paths(self) -> dict[str, Any]:
        paths: dict[str, Any] = {
            "/v1/subjects": {"post": self.mint()},
            "/v1/subjects/{subject_id}": {"delete": self.erase()},
        }
        for name, fields in self.model.collections.items():
            paths[f"/v1/{name}/{{record_id}}"] = self.collection(name, fields)
        paths.update({
            "/v1/exports": {"post": self.export()},
            "/v1/approvals": {"post": self.request_approval(), "get": self.list_approvals()},
            "/v1/approvals/{approval_id}": {"get": self.get_approval()},
            **{f"/v1/approvals/{{approval_id}}/{verdict}": {"post": self.change(verdict)}
               for verdict in ("grant", "deny", "revoke")},
            "/v1/tokens/revoke": {"post": self.revoke_token()},
            **_log_paths(),
        })
        return paths

    def mint(self) -> dict[str, Any]:
        links = {f"write{_camel(c)}": {
            "operationId": f"write{_camel(c)}",
            "requestBody": {"subject": "$response.body#/subject"},
            "description": "write a record of the new subject"}
            for c in self.model.collections}
        links["eraseSubject"] = {"operationId": "eraseSubject",
                                 "parameters": {"path.subject_id": "$response.body#/subject"}}
        return {"summary": "Mint a subject id homed in this jurisdiction",
                "operationId": "mintSubject", "security": [{"bearer": []}],
                "responses": {**_ok(201, "Subject", "the new subject id", links=links),
                              **_problems(400, 401, 413, 503)}}

    def erase(self) -> dict[str, Any]:
        return {
            "summary": "Erase a subject (crypto-shredding); logged before it is done",
            "operationId": "eraseSubject", "security": [{"bearer": []}],
            "parameters": [_param("subject_id", "path", self.subject, "subject id"),
                           self.purpose_query()],
            "responses": {**_ok(200, "ErasureResult", "what was erased", logged=True),
                          **_problems(400, 401, 403, 404, 421, 503)}}

    def collection(self, name: str, fields: tuple[ApiField, ...]) -> dict[str, Any]:
        camel = _camel(name)
        names = [f.name for f in fields]
        values: dict[str, Any] = {
            "type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {f.name: _value_schema(f) if f.required else
                           _nullable(_value_schema(f)) for f in fields}}
        required = [f.name for f in fields if f.required]
        if required:
            values["required"] = required
        self.schemas[f"Write{camel}"] = {
            "type": "object", "required": ["subject", "values"], "additionalProperties": False,
            "properties": {"subject": self.subject, "values": values}}
        self.schemas[f"Read{camel}"] = {
            "allOf": [_ref("ReadResult"), {"type": "object", "properties": {
                "collection": {"const": name},
                "fields": {"type": "object", "additionalProperties": False,
                           "properties": {f.name: _nullable(_value_schema(f))
                                          for f in fields}}}}]}
        record = _param("record_id", "path", self.record, "record id")
        read_link = {"operationId": f"read{camel}",
                     "parameters": {"path.record_id": "$response.body#/record",
                                    "query.subject": "$request.body#/subject"}}
        return {
            "get": {
                "summary": f"Read the fields of a {name} record that policy allows; logged "
                           "before release",
                "operationId": f"read{camel}", "security": [{"bearer": []}],
                "parameters": [
                    record, self.purpose_query(),
                    _param("fields", "query",
                           {"type": "array", "minItems": 1,
                            "maxItems": self.model.max_fields,
                            "items": {"type": "string", "enum": names}},
                           "comma-separated field names (absent: all; at least one and at "
                           f"most {self.model.max_fields} names)", style="form",
                           explode=False),
                    _param("approval", "query", self.approval,
                           "an approval id (or the Bordergate-Approval header)"),
                    _param("subject", "query", self.subject,
                           "the owning subject, when known (routes before any lookup)"),
                ],
                "responses": {**_ok(200, f"Read{camel}", "released and withheld fields",
                                    logged=True),
                              **_problems(400, 401, 403, 404, 421, 503)}},
            "put": {
                "summary": f"Create or replace a {name} record; logged before it is written",
                "operationId": f"write{camel}", "security": [{"bearer": []}],
                "parameters": [record, self.purpose_query()],
                "requestBody": {"required": True,
                                "content": {_JSON: {"schema": _ref(f"Write{camel}")}}},
                "responses": {**_ok(200, "WriteResult", "written", logged=True,
                                    links={f"read{camel}": read_link}),
                              **_problems(400, 401, 403, 404, 409, 413, 421, 503)}},
        }

    def export(self) -> dict[str, Any]:
        variants = [{
            "type": "object", "required": ["collection", "group_by", "purpose"],
            "additionalProperties": False,
            "properties": {"collection": {"const": name},
                           "group_by": {"type": "string", "enum": [f.name for f in fields]},
                           "purpose": self.purpose,
                           "min_subjects": {"type": "integer", "minimum": 1,
                                            "maximum": _K_MAX}}}
            for name, fields in self.model.collections.items()]
        self.schemas["ExportRequest"] = {"oneOf": variants}
        return {"summary": "A differentially private aggregate of one collection grouped by "
                           "one field, over at least k subjects (docs/exports.md)",
                "operationId": "export", "security": [{"bearer": []}],
                "requestBody": {"required": True,
                                "content": {_JSON: {"schema": _ref("ExportRequest")}}},
                "responses": {**_ok(200, "ExportResult", "the groups", logged=True),
                              **_problems(400, 401, 403, 413, 503)}}

    def request_approval(self) -> dict[str, Any]:
        collections = sorted(self.model.collections)
        records = {"type": "string",
                   "pattern": f"^(?:{'|'.join(collections)})/{_RECORD_ID}$"}
        common = {
            "collections": {"type": "array", "minItems": 1,
                            "items": {"type": "string", "enum": collections}},
            "classes": {"type": "array", "minItems": 1,
                        "items": {"type": "string", "enum": _CLASSES}},
            "max_duration_s": {"type": "integer", "minimum": 1,
                               "maximum": self.model.max_approval_seconds},
            "subjects": {"type": "array", "items": self.subject,
                         "maxItems": _MAX_SCOPE_ITEMS,
                         "description": "subject ids (homed here) it is narrowed to"},
            "records": {"type": "array", "items": records, "maxItems": _MAX_SCOPE_ITEMS,
                        "description": "<collection>/<record id> it is narrowed to, of "
                                       "the approval's collections (else 422)"},
            "ticket": _nullable({"type": "string",
                                 "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}$"}),
        }
        self.schemas["ApprovalRequest"] = {"oneOf": [{
            "type": "object", "additionalProperties": False,
            "required": ["purpose", "reason", "collections", "classes"],
            "properties": {"purpose": {"const": purpose},
                           "reason": {"type": "string", "enum": list(reasons)}, **common}}
            for purpose, reasons in self.model.purposes.items() if reasons]}
        by_id = {"path.approval_id": "$response.body#/id"}
        links = {op: {"operationId": op, "parameters": by_id}
                 for op in ("getApproval", "grantApproval", "denyApproval", "revokeApproval")}
        return {"summary": "Request an approval (Lockbox style)",
                "operationId": "requestApproval", "security": [{"bearer": []}],
                "requestBody": {"required": True,
                                "content": {_JSON: {"schema": _ref("ApprovalRequest")}}},
                "responses": {**_ok(201, "Approval", "the pending approval", logged=True,
                                    links=links),
                              **_problems(400, 401, 403, 413, 422, 503)}}

    def list_approvals(self) -> dict[str, Any]:
        return {"summary": "List approvals by status",
                "operationId": "listApprovals", "security": [{"bearer": []}],
                "parameters": [_param("state", "query", {"type": "string", "enum": _STATES},
                                      "status filter")],
                "responses": {**_ok(200, "ApprovalList", "approvals, newest first"),
                              **_problems(400, 401, 403, 503)}}

    def get_approval(self) -> dict[str, Any]:
        return {"summary": "One approval and its status",
                "operationId": "getApproval", "security": [{"bearer": []}],
                "parameters": [_param("approval_id", "path", self.approval, "approval id")],
                "responses": {**_ok(200, "Approval", "the approval"),
                              **_problems(400, 401, 403, 404, 503)}}

    def change(self, verdict: str) -> dict[str, Any]:
        summary = {"grant": "Grant (one of two custodian approvers, signed)",
                   "deny": "Deny a pending approval (signed)",
                   "revoke": "Revoke an approval (signed; its requester may withdraw "
                             "it unsigned)"}[verdict]
        return {
            "summary": summary, "operationId": f"{verdict}Approval",
            "security": [{"bearer": []}],
            "parameters": [_param("approval_id", "path", self.approval, "approval id")],
            "requestBody": {"required": False,
                            "content": {_JSON: {"schema": _ref("ApprovalChange")}}},
            "responses": {**_ok(200, "Approval", "the approval after the change", logged=True),
                          **_problems(400, 401, 403, 404, 409, 413, 422, 503)}}

    def revoke_token(self) -> dict[str, Any]:
        body = {"type": "object", "required": ["jti"], "additionalProperties": False,
                "properties": {"jti": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
                               "reason": {"type": "string", "maxLength": 200}}}
        return {"summary": "Revoke a bearer token (custodian principals of this jurisdiction)",
                "operationId": "revokeToken", "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {_JSON: {"schema": body}}},
                "responses": {**_ok(200, "TokenRevocation", "the revocation's log entry",
                                    logged=True),
                              **_problems(400, 401, 403, 413, 503)}}


def _log_paths() -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    binary = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    return {
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
            "parameters": [_param("index", "path",
                                  {"type": "integer", "minimum": 0, "maximum": INDEX_MAX},
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
                                  "content": {_JSON: {"schema": {"type": "object"}}}},
                          **_problems(503)}}},
    }


def _common_schemas() -> dict[str, Any]:
    str_list = {"type": "array", "items": {"type": "string"}}
    log_ref = _ref("LogRef")
    salt = {"type": "string", "description": "32 random bytes (base64) of the receipt's "
            "digest, for the requester only"}
    return {
        "Problem": {
            "type": "object", "required": ["type", "title", "status", "detail", "code"],
            "description": "RFC 9457 problem details with bordergate's stable `code`; "
                           "refusals after a logged decision add its `log` and members",
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"},
                "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                "home": {"type": "string"}, "gateway": {"type": ["string", "null"]},
                "retry_after": {"type": "number"}, "log": log_ref,
            },
        },
        "Receipt": {
            "type": "object", "description": "the gateway's signed statement of what it "
            "released under the entry (bordergate-receipt/v2, docs/gateway.md 'Receipts'): "
            "jti and time are the entry's own, naming the request it answers",
            "required": ["format", "key", "gateway", "origin", "index", "leaf_hash", "action",
                         "collection", "fields", "groups", "suppressed", "digest", "jti",
                         "time", "signature"],
            "properties": {
                "format": {"const": "bordergate-receipt/v2"}, "key": {"type": "string"},
                "jti": {"type": ["string", "null"]}, "time": {"type": "string"},
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
                "class": {"enum": _CLASSES},
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
                "withheld": {"type": "array", "items": _ref("Withheld")},
                "outcome": {"enum": ["allow", "partial", "deny"]}, "log": log_ref,
                "receipt": _ref("Receipt"), "receipt_salt": salt,
            },
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
        "ExportResult": {
            "type": "object",
            "required": ["collection", "group_by", "k", "groups", "suppressed", "noise", "log"],
            "properties": {
                "collection": {"type": "string"}, "group_by": {"type": "string"},
                "k": {"type": "integer"}, "suppressed": {"type": "integer"},
                "truncated": {"type": "boolean"}, "log": log_ref,
                "receipt": _ref("Receipt"), "receipt_salt": salt,
                "noise": {"type": "object", "description": "the OpenDP mechanism, epsilon "
                          "(millionths), delta exponent, threshold, scale and the budget "
                          "state after this export (docs/exports.md)"},
                "groups": {"type": "array", "items": {
                    "type": "object", "required": ["value", "records", "subjects"],
                    "properties": {"value": {}, "records": {"type": "integer"},
                                   "subjects": {"type": "integer"}}}},
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
                "status": {"enum": _STATES},
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
            "type": "object", "additionalProperties": False,
            "description": "the approver's Ed25519 signature of the change (absent, or an "
                           "empty body, only when a requester withdraws their own request)",
            "properties": {"statement": {
                "type": "object", "required": ["request", "key", "signature"],
                "additionalProperties": False,
                "properties": {
                    "request": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$",
                                "description": "the request entry's leaf hash"},
                    "key": {"type": "string", "pattern": "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$",
                            "description": "the approver's Ed25519 public key (base64)"},
                    "signature": {"type": "string", "pattern": "^[A-Za-z0-9+/]{85}[AQgw]==$",
                                  "description": "Ed25519 signature (base64)"}}}}},
        "ApprovalList": {"type": "object", "required": ["approvals"],
                         "properties": {"approvals": {
                             "type": "array", "items": _ref("Approval")}}},
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


def openapi_document(model: ApiModel) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a gateway described by ``model``."""
    document = _Document(model)
    paths = document.paths()
    title = "bordergate gateway" + (f" ({model.jurisdiction})" if model.jurisdiction else "")
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1",
                 "description": "Field-level, policy-governed, logged-before-release access "
                                "to the subject data of one jurisdiction. Generated from the "
                                "deployment's classified schema and policy bundle."},
        "paths": paths,
        "components": {
            "schemas": document.schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
    }
