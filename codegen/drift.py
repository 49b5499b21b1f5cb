"""`python -m codegen drift --openapi NEW.json`: what changed in a newer IBKR OpenAPI document, and what it touches.

Compares NEW with the pinned document (`spec/openapi/ibkr-web-api-2.29.0.openapi3.json`, or `--old`), operation by
operation (matched by HTTP method and path, placeholder names ignored):

- operations added and removed;
- path, query and JSON body parameters added, removed, renamed (one removed and one added of the same type in the
  same place), retyped, newly required or optional, and enums changed;
- 200 response schemas: fields removed or retyped and enums changed (what breaks a generated model), fields added;
- catalogue entries whose `openapi:` operationId the new document no longer has;
- `spec/openapi/fixes.yaml` patches that no longer apply to the new document.

Every change names the catalogue entries (and parameters) and the fixes it touches. A Swagger 2.0 document is
converted to OpenAPI 3 first (`swagger2_to_openapi3`). Output: a report that starts with the changes that need
action (they touch a catalogue entry, a model or a fix and can break them), then every change grouped by catalogue
area, with `number → integer` retypes summarised at the end; or `--json` (each change with `needs_action`).
Exit status: 0 nothing changed, 1 changes found, 2 bad input (`make drift` turns any failure into make's own 2).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .load import OFFICIAL_DOC, CatalogueError, load_catalogue
from .model import Catalogue, Endpoint
from .models import ModelsError, apply_fixes, load_fixes

METHODS = ("get", "post", "put", "delete", "patch")
NOT_IN_CATALOGUE = "(not in the catalogue)"
FIXES = "fixes.yaml"
MAX_DEPTH = 6  # response fields are compared down to this nesting depth


@dataclass
class Change:
    kind: str  # operation-added, parameter-removed, response-field-retyped, ... (see KINDS)
    route: str  # "GET /iserver/accounts" (the new document's path when the operation is new)
    subject: str  # what changed, e.g. "query parameter conids", "response field orders[].side"
    detail: str  # readable description of the change
    old: Any = None
    new: Any = None
    area: str = NOT_IN_CATALOGUE
    endpoints: list[str] = field(default_factory=list)  # catalogue entries touched
    params: list[str] = field(default_factory=list)  # catalogue parameters touched: "endpoint.param"
    fixes: list[str] = field(default_factory=list)  # fixes.yaml ids touched


KINDS = (
    "operation-added",
    "operation-removed",
    "operation-id-changed",
    "parameter-added",
    "parameter-removed",
    "parameter-renamed",
    "parameter-retyped",
    "parameter-required-changed",
    "enum-changed",
    "response-field-removed",
    "response-field-retyped",
    "response-enum-changed",
    "response-field-added",
    "fix-no-longer-applies",
)


class DriftError(Exception):
    """A document cannot be read or compared."""


# --- documents -------------------------------------------------------------------------------------------------------


def _rewrite_refs(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(old):
                out[key] = new + value[len(old) :]
            else:
                out[key] = _rewrite_refs(value, old, new)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, old, new) for v in node]
    return node


_SCHEMA_KEYS = ("type", "format", "items", "enum", "default", "minimum", "maximum", "pattern", "collectionFormat")


def swagger2_to_openapi3(doc: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 document as OpenAPI 3.0: enough for drift (paths, parameters, bodies, 200 responses, schemas)."""
    doc = _rewrite_refs(copy.deepcopy(doc), "#/definitions/", "#/components/schemas/")
    out: dict[str, Any] = {
        "openapi": "3.0.0",
        "info": doc.get("info", {}),
        "servers": [{"url": f"https://{doc.get('host', 'localhost')}{doc.get('basePath', '')}"}],
        "paths": {},
        "components": {"schemas": doc.get("definitions", {})},
    }
    for route, ops in doc.get("paths", {}).items():
        shared = ops.get("parameters", [])
        new_ops: dict[str, Any] = {}
        for method, op in ops.items():
            if method not in METHODS or not isinstance(op, dict):
                continue
            new_op = {k: v for k, v in op.items() if k not in ("parameters", "responses", "consumes", "produces")}
            params, form = [], {}
            for p in list(shared) + list(op.get("parameters", [])):
                where = p.get("in")
                if where == "body":
                    new_op["requestBody"] = {
                        "required": bool(p.get("required")),
                        "content": {"application/json": {"schema": p.get("schema", {})}},
                    }
                elif where == "formData":
                    form[p["name"]] = {k: p[k] for k in _SCHEMA_KEYS if k in p}
                else:
                    schema = {k: p[k] for k in _SCHEMA_KEYS if k in p and k != "collectionFormat"}
                    params.append(
                        {k: p[k] for k in ("name", "in", "required", "description") if k in p} | {"schema": schema}
                    )
            if form:
                new_op["requestBody"] = {
                    "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": form}}}
                }
            if params:
                new_op["parameters"] = params
            responses: dict[str, Any] = {}
            for code, resp in op.get("responses", {}).items():
                r = {"description": resp.get("description", "")}
                if "schema" in resp:
                    r["content"] = {"application/json": {"schema": resp["schema"]}}
                responses[str(code)] = r
            new_op["responses"] = responses
            new_ops[method] = new_op
        out["paths"][route] = new_ops
    return out


def read_document(path: Path) -> dict[str, Any]:
    """An OpenAPI 3 document from a JSON (or YAML) file; Swagger 2.0 is converted."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DriftError(f"{path}: cannot read: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DriftError(f"{path}: neither JSON nor YAML: {exc}") from exc
    if not isinstance(doc, dict) or "paths" not in doc:
        raise DriftError(f"{path}: not an OpenAPI document (no paths)")
    if str(doc.get("swagger", "")).startswith("2"):
        return swagger2_to_openapi3(doc)
    if not str(doc.get("openapi", "")).startswith("3"):
        raise DriftError(f"{path}: neither OpenAPI 3 nor Swagger 2.0")
    return doc


# --- operations ------------------------------------------------------------------------------------------------------


def normalize(path: str) -> str:
    """`/iserver/account/{accountId}/orders/` → `/iserver/account/{}/orders`: placeholder names do not matter."""
    path = re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])
    if path.startswith("/v1/api/"):
        path = path[len("/v1/api") :]
    return path.rstrip("/") or "/"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@dataclass
class Operation:
    method: str  # upper case
    path: str  # as the document writes it
    op: dict[str, Any]
    shared: list[Any]  # path-level parameters

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def pointer(self) -> str:
        return f"/paths/{_escape(self.path)}/{self.method.lower()}"


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], Operation]:
    out: dict[tuple[str, str], Operation] = {}
    for route, ops in doc.get("paths", {}).items():
        if not isinstance(ops, dict):
            continue
        for method, op in ops.items():
            if method in METHODS and isinstance(op, dict):
                out[(method.upper(), normalize(route))] = Operation(
                    method.upper(), route, op, ops.get("parameters", [])
                )
    return out


class Resolver:
    """Follows `$ref`s inside one document, noting the components passed through."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def lookup(self, ref: str) -> Any:
        node: Any = self.doc
        for token in ref.lstrip("#/").split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or token not in node:
                return {}
            node = node[token]
        return node

    def resolve(self, node: Any, seen: set[str] | None = None) -> tuple[Any, set[str]]:
        comps: set[str] = set()
        hops = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and hops < 20:
            ref = node["$ref"]
            comps.add(ref.lstrip("#"))
            node = self.lookup(ref)
            hops += 1
        return node, comps

    def merged(self, schema: Any) -> tuple[dict[str, Any], set[str]]:
        """The schema with `$ref`s followed and `allOf` members merged into one object schema."""
        schema, comps = self.resolve(schema)
        if not isinstance(schema, dict):
            return {}, comps
        if "allOf" not in schema:
            return schema, comps
        out: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        props: dict[str, Any] = dict(out.get("properties", {}))
        required = list(out.get("required", []))
        for member in schema["allOf"]:
            sub, sub_comps = self.merged(member)
            comps |= sub_comps
            props.update(sub.get("properties", {}))
            required += sub.get("required", [])
            for key in ("type", "items", "enum", "additionalProperties"):
                if key in sub and key not in out:
                    out[key] = sub[key]
        if props:
            out["properties"] = props
            out.setdefault("type", "object")
        if required:
            out["required"] = sorted(set(required))
        return out, comps


def type_of(res: Resolver, schema: Any, depth: int = 0) -> str:
    """A short type string: `string`, `integer`, `array<number>`, `object`, `string|integer` ..."""
    merged, _ = res.merged(schema)
    for key in ("oneOf", "anyOf"):
        if isinstance(merged.get(key), list) and depth < 4:
            return "|".join(sorted({type_of(res, m, depth + 1) for m in merged[key]}))
    kind = merged.get("type")
    if kind == "array":
        return f"array<{type_of(res, merged.get('items', {}), depth + 1) if depth < 4 else 'any'}>"
    if kind is None and ("properties" in merged or "additionalProperties" in merged):
        return "object"
    return str(kind) if kind else "any"


@dataclass(frozen=True)
class Slot:
    """One parameter or one response field: its type, whether it is required, its enum."""

    type: str
    required: bool
    enum: tuple[str, ...] | None
    comps: frozenset[str]  # component pointers its schema passes through
    pointer: str  # where it sits in its document


def _enum(schema: dict[str, Any]) -> tuple[str, ...] | None:
    values = schema.get("enum")
    if not isinstance(values, list):
        items = schema.get("items")
        values = items.get("enum") if isinstance(items, dict) else None
    return tuple(sorted(json.dumps(v) for v in values)) if isinstance(values, list) else None


def parameters(res: Resolver, op: Operation) -> dict[tuple[str, str], Slot]:
    """(location, name) → slot, for path, query and JSON body members of an operation."""
    out: dict[tuple[str, str], Slot] = {}
    for i, raw in enumerate(list(op.shared) + list(op.op.get("parameters", []))):
        p, comps = res.resolve(raw)
        if not isinstance(p, dict) or p.get("in") not in ("path", "query"):
            continue
        schema, more = res.merged(p.get("schema", {}))
        out[(p["in"], p["name"])] = Slot(
            type_of(res, schema),
            bool(p.get("required")) or p["in"] == "path",
            _enum(schema),
            frozenset(comps | more),
            f"{op.pointer}/parameters/{i}",
        )
    body, body_comps = res.resolve(op.op.get("requestBody"))
    if isinstance(body, dict):
        content = body.get("content", {})
        media: Any = content.get("application/json") or next(iter(content.values()), {})
        schema, comps = res.merged(media.get("schema", {}) if isinstance(media, dict) else {})
        comps |= body_comps
        pointer = f"{op.pointer}/requestBody"
        props = schema.get("properties")
        if isinstance(props, dict) and props:
            required = set(schema.get("required", []))
            for name, sub in props.items():
                merged, more = res.merged(sub)
                out[("body", name)] = Slot(
                    type_of(res, merged), name in required, _enum(merged), frozenset(comps | more), pointer
                )
        elif schema:
            out[("body", "*")] = Slot(
                type_of(res, schema), bool(body.get("required")), _enum(schema), frozenset(comps), pointer
            )
    return out


def response_fields(res: Resolver, op: Operation) -> dict[str, Slot]:
    """Field path (`orders[].side`, `.` for the whole answer) → slot, from the 200 JSON response."""
    responses = op.op.get("responses", {})
    resp, comps = res.resolve(responses.get("200") or responses.get("201") or {})
    content = resp.get("content", {}) if isinstance(resp, dict) else {}
    media = content.get("application/json") or content.get("*/*")
    if not isinstance(media, dict) or "schema" not in media:
        return {}
    out: dict[str, Slot] = {}
    root = f"{op.pointer}/responses/200/content/{_escape('application/json')}/schema"

    def walk(schema: Any, path: str, required: bool, ptr: str, depth: int, stack: frozenset[str]) -> None:
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ptr = schema["$ref"].lstrip("#")
            if ptr in stack:
                return  # a recursive schema: compared once
            stack = stack | {ptr}
            schema = res.lookup(schema["$ref"])
        merged, more = res.merged(schema)
        out[path or "."] = Slot(type_of(res, merged), required, _enum(merged), frozenset(more), ptr)
        if depth >= MAX_DEPTH:
            return
        members = merged.get("oneOf") or merged.get("anyOf")
        if isinstance(members, list) and len(members) == 1:
            walk(members[0], path, required, f"{ptr}/{'oneOf' if 'oneOf' in merged else 'anyOf'}/0", depth, stack)
            return
        if merged.get("type") == "array" or "items" in merged:
            walk(merged.get("items", {}), f"{path}[]", False, f"{ptr}/items", depth + 1, stack)
        required_names = set(merged.get("required", []))
        for name, sub in (merged.get("properties") or {}).items():
            child = f"{path}.{name}" if path else name
            walk(sub, child, name in required_names, f"{ptr}/properties/{_escape(name)}", depth + 1, stack)

    walk(media["schema"], "", True, root, 0, frozenset())
    return out


def _parent(path: str) -> str | None:
    """`a.b[]` → `a.b`, `a[].c` → `a[]`, `a` → None."""
    if path.endswith("[]"):
        return path[:-2] or None
    return path.rsplit(".", 1)[0] if "." in path else None


# --- comparison ------------------------------------------------------------------------------------------------------

_LOCATION = {"path": "path parameter", "query": "query parameter", "body": "body member"}


def _values(values: list[str], limit: int = 10) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _enum_delta(old: tuple[str, ...] | None, new: tuple[str, ...] | None) -> str:
    if old is None:
        return f"now an enum of {len(new or ())} values: {_values(list(new or ()))}"
    if new is None:
        return "no longer an enum"
    added = [v for v in new if v not in old]
    removed = [v for v in old if v not in new]
    bits = []
    if added:
        bits.append("added " + _values(added))
    if removed:
        bits.append("removed " + _values(removed))
    return "; ".join(bits)


def compare_parameters(old: dict[tuple[str, str], Slot], new: dict[tuple[str, str], Slot]) -> Iterator[dict[str, Any]]:
    removed = [k for k in old if k not in new]
    added = [k for k in new if k not in old]
    renamed: dict[tuple[str, str], tuple[str, str]] = {}
    for r in removed:
        candidates = [a for a in added if a[0] == r[0] and new[a].type == old[r].type and a not in renamed.values()]
        same_place = [a for a in added if a[0] == r[0]]
        removed_here = [x for x in removed if x[0] == r[0]]
        if len(candidates) == 1 and (len(same_place) == 1 or len(removed_here) == 1):
            renamed[r] = candidates[0]
    for r in removed:
        where = _LOCATION[r[0]]
        if r in renamed:
            a = renamed[r]
            yield {
                "kind": "parameter-renamed",
                "subject": f"{where} {r[1]}",
                "detail": f"{where} {r[1]} is now {a[1]} ({old[r].type})",
                "old": r[1],
                "new": a[1],
                "slot": old[r],
                "key": r,
            }
        else:
            yield {
                "kind": "parameter-removed",
                "subject": f"{where} {r[1]}",
                "detail": f"{where} {r[1]} ({old[r].type}) was removed",
                "old": r[1],
                "slot": old[r],
                "key": r,
            }
    for a in added:
        if a in renamed.values():
            continue
        where = _LOCATION[a[0]]
        need = "required" if new[a].required else "optional"
        yield {
            "kind": "parameter-added",
            "subject": f"{where} {a[1]}",
            "detail": f"new {need} {where} {a[1]} ({new[a].type})",
            "new": a[1],
            "slot": new[a],
            "key": a,
        }
    for k in old:
        if k not in new:
            continue
        o, n = old[k], new[k]
        where = f"{_LOCATION[k[0]]} {k[1]}"
        if o.type != n.type:
            yield {
                "kind": "parameter-retyped",
                "subject": where,
                "detail": f"{where}: type {o.type} → {n.type}",
                "old": o.type,
                "new": n.type,
                "slot": o,
                "key": k,
            }
        if o.required != n.required:
            yield {
                "kind": "parameter-required-changed",
                "subject": where,
                "detail": f"{where} is now {'required' if n.required else 'optional'}",
                "old": o.required,
                "new": n.required,
                "slot": o,
                "key": k,
            }
        if o.enum != n.enum:
            yield {
                "kind": "enum-changed",
                "subject": where,
                "detail": f"{where}: enum {_enum_delta(o.enum, n.enum)}",
                "old": list(o.enum or []),
                "new": list(n.enum or []),
                "slot": o,
                "key": k,
            }


def compare_responses(old: dict[str, Slot], new: dict[str, Slot]) -> Iterator[dict[str, Any]]:
    for path, o in old.items():
        parent = _parent(path)
        if path not in new:
            if parent is not None and parent not in new:
                continue  # reported at the parent
            yield {
                "kind": "response-field-removed",
                "subject": f"response field {path}",
                "detail": f"response field {path} ({o.type}) was removed",
                "old": o.type,
                "slot": o,
            }
            continue
        n = new[path]
        if o.type != n.type:
            yield {
                "kind": "response-field-retyped",
                "subject": f"response field {path}",
                "detail": f"response field {path}: type {o.type} → {n.type}",
                "old": o.type,
                "new": n.type,
                "slot": o,
            }
        elif o.enum != n.enum:
            yield {
                "kind": "response-enum-changed",
                "subject": f"response field {path}",
                "detail": f"response field {path}: enum {_enum_delta(o.enum, n.enum)}",
                "old": list(o.enum or []),
                "new": list(n.enum or []),
                "slot": o,
            }
    for path, n in new.items():
        parent = _parent(path)
        if path not in old and (parent is None or parent in old):
            yield {
                "kind": "response-field-added",
                "subject": f"response field {path}",
                "detail": f"new response field {path} ({n.type})",
                "new": n.type,
                "slot": n,
            }


# --- what a change touches -------------------------------------------------------------------------------------------


def _fix_pointers(fix: dict[str, Any]) -> list[str]:
    at = str(fix.get("at", ""))
    out = []
    for op in fix.get("patch", []) or []:
        if isinstance(op, dict):
            out += [at + op[k] for k in ("path", "from") if isinstance(op.get(k), str)]
    return out


def _under(pointer: str, prefix: str) -> bool:
    return pointer == prefix or pointer.startswith(prefix + "/")


class Touches:
    """Maps a change to the catalogue entries and fixes it concerns."""

    def __init__(self, cat: Catalogue, old_doc: dict[str, Any], fixes: list[dict[str, Any]]) -> None:
        self.by_route: dict[tuple[str, str], list[Endpoint]] = defaultdict(list)
        ids = {op.op["operationId"]: key for key, op in operations(old_doc).items() if op.op.get("operationId")}
        for e in cat.endpoints:
            keys = {(e.http, normalize(e.path))}
            if e.openapi in ids:
                keys.add(ids[e.openapi])
            for key in keys:
                self.by_route[key].append(e)
        self.fixes = [(str(f.get("id")), _fix_pointers(f)) for f in fixes if isinstance(f, dict)]

    def endpoints(self, key: tuple[str, str]) -> list[Endpoint]:
        return self.by_route.get(key, [])

    def fix_ids(self, pointers: list[str]) -> list[str]:
        return [fid for fid, fps in self.fixes if any(_under(fp, p) or _under(p, fp) for fp in fps for p in pointers)]


# --- drift -----------------------------------------------------------------------------------------------------------


@dataclass
class Drift:
    old: str
    new: str
    changes: list[Change]

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(c.kind for c in self.changes)
        return {k: counts[k] for k in KINDS if counts[k]}

    def to_json(self) -> dict[str, Any]:
        changes = [{**asdict(c), "needs_action": needs_action(c)} for c in self.changes]
        return {
            "old": self.old,
            "new": self.new,
            "summary": self.summary,
            "needs_action": sum(1 for c in changes if c["needs_action"]),
            "changes": changes,
        }


def _version(doc: dict[str, Any]) -> str:
    info = doc.get("info", {})
    return f"{info.get('title', '?')} {info.get('version', '?')}"


def _catalogue_params(endpoints: list[Endpoint], key: tuple[str, str] | None) -> list[str]:
    if key is None:
        return []
    where, wire = key
    return [f"{e.name}.{p.name}" for e in endpoints for p in e.params if p.location == where and (p.wire == wire)]


def drift(
    cat: Catalogue,
    old_doc: dict[str, Any],
    new_doc: dict[str, Any],
    fixes: list[dict[str, Any]],
    *,
    check_fixes: bool = True,
) -> Drift:
    touches = Touches(cat, old_doc, fixes)
    old_res, new_res = Resolver(old_doc), Resolver(new_doc)
    old_ops, new_ops = operations(old_doc), operations(new_doc)
    changes: list[Change] = []

    def add(key: tuple[str, str], route: str, found: dict[str, Any], pointers: list[str]) -> None:
        endpoints = touches.endpoints(key)
        slot: Slot | None = found.get("slot")
        if slot is not None:
            pointers = pointers + [slot.pointer]
            if found["kind"].startswith(("parameter", "enum")):
                pointers += sorted(slot.comps)
        changes.append(
            Change(
                kind=found["kind"],
                route=route,
                subject=found["subject"],
                detail=found["detail"],
                old=found.get("old"),
                new=found.get("new"),
                area=endpoints[0].area if endpoints else NOT_IN_CATALOGUE,
                endpoints=[f"{e.source_file}: {e.name}" for e in endpoints],
                params=_catalogue_params(endpoints, found.get("key")),
                fixes=touches.fix_ids(pointers),
            )
        )

    for key in sorted(set(old_ops) | set(new_ops)):
        o, n = old_ops.get(key), new_ops.get(key)
        if o is None and n is not None:
            add(key, n.route, _op_change("operation-added", n), [])
            continue
        if n is None and o is not None:
            add(key, o.route, _op_change("operation-removed", o), [o.pointer])
            continue
        assert o is not None and n is not None
        for found in compare_parameters(parameters(old_res, o), parameters(new_res, n)):
            add(key, o.route, found, [])
        for found in compare_responses(response_fields(old_res, o), response_fields(new_res, n)):
            add(key, o.route, found, [])

    new_ids = {op.op.get("operationId"): op for op in new_ops.values()}
    for e in cat.endpoints:
        if e.openapi is None or e.openapi in new_ids:
            continue
        now = new_ops.get((e.http, normalize(e.path)))
        detail = f"the catalogue's openapi: {e.openapi} is not in the new document"
        if now is not None:
            now_id = now.op.get("operationId")
            detail += (
                f"; {e.http} {e.path} is now operationId {now_id}"
                if now_id
                else f"; {e.http} {e.path} is still there, without an operationId"
            )
        changes.append(
            Change(
                "operation-id-changed",
                f"{e.http} {e.path}",
                f"operationId {e.openapi}",
                detail,
                old=e.openapi,
                new=now.op.get("operationId") if now is not None else None,
                area=e.area,
                endpoints=[f"{e.source_file}: {e.name}"],
            )
        )
    if check_fixes:
        changes += _broken_fixes(new_doc, fixes, touches)
    return Drift(_version(old_doc), _version(new_doc), changes)


def _op_change(kind: str, op: Operation) -> dict[str, Any]:
    verb = "new" if kind == "operation-added" else "removed"
    op_id = op.op.get("operationId")
    return {
        "kind": kind,
        "subject": "operation",
        "detail": f"{verb} operation {op.route}" + (f" ({op_id})" if op_id else ""),
        "old": op_id if kind == "operation-removed" else None,
        "new": op_id if kind == "operation-added" else None,
    }


def _broken_fixes(new_doc: dict[str, Any], fixes: list[dict[str, Any]], touches: Touches) -> list[Change]:
    """Apply the fixes one by one to the new document, as generation does; report each that fails."""
    out: list[Change] = []
    try:
        apply_fixes(new_doc, fixes)
        return out  # the usual case: all apply, checked in one pass
    except ModelsError:
        pass
    doc = new_doc
    for fix in fixes:
        try:
            doc = apply_fixes(doc, [fix])
        except ModelsError as exc:
            fid = str(fix.get("id"))
            out.append(
                Change(
                    "fix-no-longer-applies",
                    "-",
                    f"fix {fid}",
                    f"spec/openapi/{FIXES} fix {fid!r} no longer applies: {str(exc).split(': field ', 1)[-1]}",
                    fixes=[fid],
                )
            )
    return out


# --- report ----------------------------------------------------------------------------------------------------------

_NARROWED = ("number", "integer")
"""A number documented as an integer from now on: what IBKR sends still parses (a float model field takes an int),
so such retypes are summarised at the end instead of burying what needs action."""

_ACTION_ORDER = (
    "operation-removed",
    "operation-id-changed",
    "fix-no-longer-applies",
    "parameter-removed",
    "parameter-renamed",
    "parameter-retyped",
    "parameter-required-changed",
    "parameter-added",
    "enum-changed",
    "response-field-removed",
    "response-field-retyped",
    "response-enum-changed",
)


def narrowed(c: Change) -> bool:
    """A `number → integer` retype (see `_NARROWED`)."""
    return c.kind in ("parameter-retyped", "response-field-retyped") and (c.old, c.new) == _NARROWED


def needs_action(c: Change) -> bool:
    """A change the catalogue, its models or fixes must follow: it touches a catalogue entry (or a fix) and can
    break a call or a model. Added operations and fields, optional new parameters and number → integer retypes
    are for information."""
    if c.kind == "fix-no-longer-applies":
        return True
    if not c.endpoints or narrowed(c) or c.kind not in _ACTION_ORDER:
        return False
    if c.kind == "parameter-added":
        return "new required" in c.detail
    return True


def _triage(changes: list[Change]) -> list[str]:
    """The changes that need action, by kind (removed operations first), one line each."""
    removed = {e for c in changes if c.kind == "operation-removed" for e in c.endpoints}
    urgent = [
        c
        for c in changes
        # an operation that is gone has lost its operationId too: said once
        if needs_action(c) and not (c.kind == "operation-id-changed" and set(c.endpoints) <= removed)
    ]
    if not urgent:
        return ["", "== Needs action: nothing (no catalogue entry, model or fix is affected) =="]
    lines = ["", f"== Needs action ({len(urgent)}) =="]
    by_kind: dict[str, list[Change]] = defaultdict(list)
    for c in urgent:
        by_kind[c.kind].append(c)
    for kind in _ACTION_ORDER:
        items = sorted(by_kind.get(kind, []), key=lambda c: (c.area, c.route))
        if not items:
            continue
        lines.append(f"  {kind} ({len(items)}):")
        for c in items:
            names = ", ".join(e.split(": ", 1)[1] for e in c.endpoints)
            where = f"{c.route} [{names}]" if names else c.route
            if kind == "operation-removed":
                lines.append(f"    {where}" + (f" ({c.old})" if c.old else ""))
            elif c.route == "-":
                lines.append(f"    {c.detail}")
            else:
                lines.append(f"    {where}: {c.detail}")
    return lines


def _narrowed_summary(changes: list[Change]) -> list[str]:
    items = [c for c in changes if narrowed(c)]
    if not items:
        return []
    routes: dict[str, list[str]] = defaultdict(list)
    for c in items:
        routes[c.route].append(c.subject.replace("response field ", "").replace(" parameter ", " "))
    lines = [
        "",
        f"== number → integer ({len(items)} in {len(routes)} operations; existing models still parse these) ==",
    ]
    for route, subjects in sorted(routes.items()):
        lines.append(f"  {route}: {', '.join(subjects)}")
    return lines


def report(d: Drift) -> str:
    lines = [f"API drift: {d.old}  →  {d.new}"]
    if not d.changes:
        lines.append("No relevant change: the catalogue and its models stand as they are.")
        return "\n".join(lines) + "\n"
    lines.append(f"{len(d.changes)} changes: " + ", ".join(f"{n} {k}" for k, n in d.summary.items()))
    touched = sorted({e for c in d.changes for e in c.endpoints})
    lines.append(
        f"catalogue entries touched: {len(touched)}; fixes touched: {len({f for c in d.changes for f in c.fixes})}"
    )
    lines += _triage(d.changes)
    by_area: dict[str, list[Change]] = defaultdict(list)
    for c in d.changes:
        if narrowed(c):
            continue  # summarised at the end
        by_area["fixes.yaml" if c.kind == "fix-no-longer-applies" else c.area].append(c)
    order = sorted(a for a in by_area if a not in (NOT_IN_CATALOGUE, "fixes.yaml"))
    order += [a for a in (NOT_IN_CATALOGUE, "fixes.yaml") if a in by_area]
    for area in order:
        items = by_area[area]
        title = f"spec/{area}.yaml" if area not in (NOT_IN_CATALOGUE, "fixes.yaml") else area
        lines += ["", f"== {title} ({len(items)}) =="]
        routes: dict[str, list[Change]] = defaultdict(list)
        for c in items:
            routes[c.route].append(c)
        for route, group in routes.items():
            names = sorted({e.split(": ", 1)[1] for c in group for e in c.endpoints})
            if route != "-":
                lines.append(f"  {route}" + (f"  [{', '.join(names)}]" if names else ""))
            for c in group:
                extra = []
                if c.params:
                    extra.append("catalogue params " + ", ".join(c.params))
                if c.fixes:
                    extra.append("fixes " + ", ".join(c.fixes))
                lines.append(f"    - {c.detail}" + (f"  ({'; '.join(extra)})" if extra else ""))
    lines += _narrowed_summary(d.changes)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen drift", description=__doc__.split("\n\n")[0])
    parser.add_argument("--openapi", type=Path, required=True, help="the newer IBKR OpenAPI (or Swagger 2) document")
    parser.add_argument("--spec", type=Path, default=Path("spec"), help="the catalogue (default spec)")
    parser.add_argument(
        "--old", type=Path, default=None, help=f"compare against this document (default spec/{OFFICIAL_DOC})"
    )
    parser.add_argument("--json", action="store_true", help="print the changes as JSON")
    args = parser.parse_args(argv)
    try:
        cat = load_catalogue(args.spec)
        old_doc = read_document(args.old or args.spec / OFFICIAL_DOC)
        new_doc = read_document(args.openapi)
        fixes = load_fixes(args.spec)
    except (CatalogueError, DriftError, ModelsError) as exc:
        print(f"drift: {exc}", file=sys.stderr)
        return 2
    result = drift(cat, old_doc, new_doc, fixes)
    status = 1 if result.changes else 0
    try:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n" if args.json else report(result))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`--json | head`): the status still tells; nothing more is written, and the
        # interpreter's final flush must not fail either.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    return status
