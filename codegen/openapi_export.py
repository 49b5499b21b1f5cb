"""Export the catalogue as an OpenAPI 3.1 document (`make openapi` → docs/openapi.json).

One operation per catalogue endpoint: `operationId` is the Python method name, `tags` its area, the parameters and
the JSON request body come from the catalogue's `params` and `fixed` values, and the 200 response refers to the
schema of the endpoint's response model — the schemas `codegen/models.py` plans from IBKR's document
(`spec/openapi/ibkr-web-api-2.29.0.openapi3.json`) after the fixes in `spec/openapi/fixes.yaml`, under the class
names of `ibkr_sdk.models` so that clients generated in other languages use the same type names. Endpoints without a
model answer "any JSON".

IBKR's schemas are OpenAPI 3.0; they are converted to 3.1 (JSON Schema 2020-12): `nullable: true` becomes a `"null"`
member of `type`, `example` becomes `examples`. Their `default` values are dropped, as in the Python models: a
response default would invent values the server did not send.

What the SDK adds on top of the wire is kept as `x-ibkr-sdk` extensions: retry safety, pacing bucket, preflight,
overlay, the catalogue file, and each parameter's Python name and account fill.

Output is deterministic: paths sorted, schemas sorted by name, no timestamps.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from .model import Bucket, Catalogue, Endpoint, Param
from .models import ResponseModel, load_document, operations as ibkr_operations, plan_models
from .render import _project_version, _unwrap

OPENAPI_VERSION = "3.1.0"
SCHEMA_REF = "#/components/schemas/"
SERVERS = [
    {"url": "https://localhost:5000/v1/api", "description": "Client Portal Gateway (the default of IbkrClient)"},
    {"url": "https://api.ibkr.com/v1/api", "description": "IBKR's hosted API (OAuth 1.0a)"},
]
HTTP_ORDER = {"get": 0, "post": 1, "put": 2, "patch": 3, "delete": 4}
GW_SERVERS = [
    {"url": "https://api.ibkr.com/gw/api/v1", "description": "IBKR's Account Management API (OAuth 2.0 only)"},
]
TOKEN_URL = "https://api.ibkr.com/oauth2/api/v1/token"
DATETIME_PATTERN = r"^\d{8}-\d{2}:\d{2}:\d{2}$"
_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


# --- IBKR's 3.0 schemas → 3.1 ----------------------------------------------------------------------------------------


def schema_31(node: Any, names: bool = False) -> Any:
    """Copy of an OpenAPI 3.0 schema as OpenAPI 3.1 (JSON Schema 2020-12); `names`: `node` maps property names."""
    if isinstance(node, list):
        return [schema_31(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: schema_31(value) for key, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("default", "nullable"):
            continue
        if key == "example":
            out["examples"] = [copy.deepcopy(value)]
        elif key in ("enum", "const", "examples"):
            out[key] = copy.deepcopy(value)
        else:
            out[key] = schema_31(value, names=key == "properties")
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list):
            out["type"] = kind if "null" in kind else [*kind, "null"]
        elif out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def optional_nullable(node: Any, names: bool = False) -> Any:
    """Copy of a 3.1 schema whose optional properties also accept null, as the Python models do (`X | None`).

    The gateway writes null for a value it does not have (`"account": null` in a cancel answer, recorded sample
    conduit-cancel-order), and so does the simulator (ContractInfo.expiry_full of a stock, the currency of a
    PortfolioSummaryValue without one, an alert's request_id): an absent value and null mean the same here.
    """
    if isinstance(node, list):
        return [optional_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: optional_nullable(value) for key, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("enum", "const", "examples", "required"):
            out[key] = value
        else:
            out[key] = optional_nullable(value, names=key == "properties")
    required = set(out.get("required") or ())
    for name, prop in (out.get("properties") or {}).items():
        if name not in required:
            out["properties"][name] = _or_null(prop)
    return out


def _or_null(schema: Any) -> Any:
    if not isinstance(schema, dict) or not schema:
        return schema  # true / {}: anything, null included
    out = dict(schema)
    kind = out.get("type")
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif isinstance(kind, list):
        out["type"] = kind if "null" in kind else [*kind, "null"]
    elif "anyOf" in out and "$ref" not in out:
        if {"type": "null"} not in out["anyOf"]:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    else:
        return {"anyOf": [out, {"type": "null"}]}
    return out


# --- parameters and bodies -------------------------------------------------------------------------------------------


def _value_schema(p: Param, kind: str) -> dict[str, Any]:
    """Schema of one value of type `kind` of parameter `p` (an element, for one-or-many parameters)."""
    schema: dict[str, Any]
    if kind in _SCALARS:
        schema = {"type": _SCALARS[kind]}
    elif kind == "datetime":
        schema = {"type": "string", "pattern": DATETIME_PATTERN, "description": "YYYYMMDD-HH:MM:SS"}
    elif kind == "object":
        schema = {"type": "object"}
    elif kind == "array":
        schema = {"type": "array", "items": _value_schema(p, p.items) if p.items else {}}
    else:  # any
        schema = {}
    if p.enum is not None:
        schema["enum"] = list(p.enum)
    if p.pattern is not None and kind == "str":
        schema["pattern"] = f"^(?:{p.pattern})$"  # the catalogue's patterns match the whole value
    elif kind == "str" and p.required and p.enum is None:
        schema["minLength"] = 1  # the gateway takes an empty value of a required parameter for a missing one
    if kind == "int":
        if p.minimum is not None:
            schema["minimum"] = p.minimum
        if p.maximum is not None:
            schema["maximum"] = p.maximum
    return schema


def param_schema(p: Param) -> dict[str, Any]:
    """The schema of the value the parameter puts on the wire."""
    if p.many in ("comma", "semicolon") and p.location != "query":
        raise ValueError(f"{p.name}: joined lists are only supported in the query")
    if p.many == "comma":
        schema: dict[str, Any] = {"type": "array", "items": _value_schema(p, p.type), "minItems": 1}
    elif p.many == "semicolon":
        # OpenAPI has no semicolon-joined style: the joined text is one string.
        schema = {"type": "string", "description": "values joined with semicolons"}
        if p.pattern is not None:
            schema["pattern"] = f"^(?:{p.pattern})$"
    elif p.many == "array":
        schema = {"type": "array", "items": _value_schema(p, p.type), "minItems": 1}
    else:
        schema = _value_schema(p, p.type)
    if p.default is not None:
        schema["default"] = p.default
    return schema


def _extension(p: Param) -> dict[str, Any]:
    ext: dict[str, Any] = {"name": p.name}
    if p.fill:
        ext["fill"] = p.fill
    if p.many:
        ext["many"] = p.many
    return ext


def parameter(p: Param) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": p.wire,
        "in": p.location,
        "description": p.doc_line,
        "required": p.required or p.location == "path",
        "schema": param_schema(p),
    }
    if p.many == "comma":
        out["style"] = "form"
        out["explode"] = False
    out["x-ibkr-sdk"] = _extension(p)
    return out


def _fixed_query(name: str, value: Any) -> dict[str, Any]:
    literal = "true" if value is True else "false" if value is False else value
    return {
        "name": name,
        "in": "query",
        "description": "Always sent with this value (the SDK adds it; it is not a method parameter).",
        "required": True,
        "schema": {"const": literal, "default": literal},
        "x-ibkr-sdk": {"fixed": True},
    }


def request_body(e: Endpoint) -> dict[str, Any] | None:
    body = [p for p in e.params if p.location == "body"]
    if not body and e.fixed_body is None:
        return None
    whole = next((p for p in body if p.wire == "*"), None)
    if whole is not None:
        schema = param_schema(whole)
        schema["description"] = whole.doc_line
        schema["x-ibkr-sdk"] = _extension(whole)
        required = whole.required
    else:
        properties: dict[str, Any] = {}
        needed: list[str] = []
        for name, value in (e.fixed_body or {}).items():
            properties[name] = {"const": value, "description": "Always sent with this value (added by the SDK)."}
            needed.append(name)
        for p in body:
            prop = param_schema(p)
            prop["description"] = p.doc_line
            prop["x-ibkr-sdk"] = _extension(p)
            properties[p.wire] = prop
            if p.required:
                needed.append(p.wire)
        schema = {"type": "object", "properties": properties}
        if needed:
            schema["required"] = needed
        required = bool(needed)
    return {"required": required, "content": {"application/json": {"schema": schema}}}


# --- operations ------------------------------------------------------------------------------------------------------


def _bucket(bucket: Bucket) -> dict[str, Any]:
    out: dict[str, Any] = {"bucket": bucket.name}
    if bucket.rate is not None:
        out["rate"] = bucket.rate
    if bucket.per is not None:
        out["per_seconds"] = bucket.per
    if bucket.concurrent is not None:
        out["concurrent"] = bucket.concurrent
    return out


def _op_description(e: Endpoint) -> str:
    parts = [_unwrap(e.doc)] if e.doc else []
    if e.notes:
        parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in e.notes))
    return "\n\n".join(parts)


def operation(
    e: Endpoint, buckets: dict[str, Bucket], model: ResponseModel | None, empty: bool = False
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": e.name,
        "tags": [e.area],
        "summary": e.summary,
    }
    description = _op_description(e)
    if description:
        op["description"] = description
    params = [parameter(p) for p in e.params if p.location in ("path", "query")]
    params += [_fixed_query(k, v) for k, v in sorted(e.fixed_query.items())]
    if params:
        op["parameters"] = params
    body = request_body(e)
    if body is not None:
        op["requestBody"] = body
    answer: dict[str, Any] = {"$ref": SCHEMA_REF + model.class_name} if model else {}
    ok: dict[str, Any] = {
        "description": f"The answer (model ibkr_sdk.models.{model.qualname})" if model else "The answer (any JSON)",
        "content": {"application/json": {"schema": answer}},
    }
    if empty and model is None:
        ok = {"description": "An empty answer (no body)"}
    op["responses"] = {
        "200": ok,
        "default": {"description": "An error: the gateway's or IBKR's status code and message."},
    }
    ext: dict[str, Any] = {
        "method": e.name,
        "area": e.area,
        "retry": e.retry,
        "spec": e.source_file,
        "origin": e.origin,
    }
    if e.pacing:
        ext["pacing"] = _bucket(buckets[e.pacing])
    if e.preflight:
        ext["preflight"] = list(e.preflight)
    if e.overlay:
        ext["overlay"] = True
    if e.openapi:
        ext["ibkr_operation"] = e.openapi
    if e.legacy:
        ext["legacy_operation"] = e.legacy
    if e.security:
        # The SDK sends SIGNED_JWT bodies as `application/jwt`: the JSON object above, signed into a JWT's claims.
        ext["base"] = e.base
        ext["security_policy"] = e.security
        op["security"] = [{"oauth2": list(e.scopes)}]
    op["x-ibkr-sdk"] = ext
    return op


def build(cat: Catalogue, spec_dir: Path) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the catalogue."""
    plan = plan_models(cat, spec_dir)
    models = {m.endpoint: m for m in plan.models}
    schemas: dict[str, Any] = {}
    for area in plan.areas:
        for name, schema in plan.area_documents[area]["components"]["schemas"].items():
            converted = optional_nullable(schema_31(schema))
            if schemas.setdefault(name, converted) != converted:
                raise ValueError(f"response schema {name} differs between areas")
    buckets = {b.name: b for b in cat.buckets}
    # Endpoints whose 200 IBKR documents without a body ("an empty string with a 200 OK").
    doc = load_document(spec_dir)
    ibkr_ops = ibkr_operations(doc) if doc is not None else {}
    empty = {
        e.name
        for e in cat.endpoints
        if e.openapi in ibkr_ops
        and "content" not in ibkr_ops[e.openapi][2].get("responses", {}).get("200", {"content": 0})
    }
    paths: dict[str, dict[str, Any]] = {}
    bases: dict[str, str] = {}
    for e in sorted(cat.endpoints, key=lambda e: (e.path, HTTP_ORDER[e.http.lower()])):
        if bases.setdefault(e.path, e.base) != e.base:
            raise ValueError(f"{e.path} is a path below two bases; the export keys paths below their base")
        item = paths.setdefault(e.path, {})
        if e.security and "servers" not in item:
            item["servers"] = copy.deepcopy(GW_SERVERS)  # /gw/api/v1 beside /v1/api on the same host
        item[e.http.lower()] = operation(e, buckets, models.get(e.name), e.name in empty)
    scopes = sorted({s for e in cat.endpoints for s in e.scopes})
    global_limits = {b.name: _bucket(b) for b in cat.global_limits}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "IBKR Client Portal Web API (ibkr_sdk catalogue)",
            "version": _project_version(),
            "summary": "The endpoints of the ibkr_sdk catalogue (spec/), exported for other languages.",
            "description": (
                "Generated by `make openapi` from the ibkr_sdk endpoint catalogue: one operation per SDK method "
                "(operationId = method name). Response schemas are IBKR's (document 2.29.0, with the corrections "
                "recorded in spec/openapi/fixes.yaml), named like the classes of ibkr_sdk.models. Requests through "
                "the gateway need its authenticated browser session; the hosted API needs OAuth 1.0a signatures. "
                "`x-ibkr-sdk` extensions carry what the SDK adds: retry safety, pacing, preflight."
            ),
        },
        "servers": copy.deepcopy(SERVERS),
        "tags": [{"name": a.name, "description": f"{a.title}: {a.summary}"} for a in cat.areas],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "description": (
                        "OAuth 2.0 with private_key_jwt client authentication: the access token is the bearer on "
                        "/gw/api/v1; the SSO session token from POST /gw/api/v1/sso-sessions is the bearer on /v1/api."
                    ),
                    "flows": {"clientCredentials": {"tokenUrl": TOKEN_URL, "scopes": {s: s for s in scopes}}},
                }
            },
        },
        "x-ibkr-sdk": {"global_limits": global_limits},
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write(cat: Catalogue, spec_dir: Path, target: Path) -> Path:
    """Write the document to `target` (a file path); return it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(build(cat, spec_dir)), encoding="utf-8", newline="\n")
    return target


def operations(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """operationId → (HTTP method, path) of an exported document (used by the tests)."""
    out: dict[str, tuple[str, str]] = {}
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if method in HTTP_ORDER and isinstance(op, dict):
                out[op["operationId"]] = (method.upper(), path)
    return out
