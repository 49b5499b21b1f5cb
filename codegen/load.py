"""Load, validate and lint the YAML catalogue into the typed model.

Errors name the file, the endpoint and the field, so a bad catalogue is fixed at the right line.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .model import ACCOUNT_MANAGEMENT_BASE, PLACEHOLDER, TRADING_BASE, Area, Bucket, Catalogue, Endpoint, Example, Param

NON_AREA_FILES = {"pacing.yaml", "exports.yaml", "streams.yaml"}
# The catalogue format is the project's own: every catalogue (the real one, test fixtures) is checked against it.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "spec" / "catalogue.schema.json"
OFFICIAL_DOC = "openapi/ibkr-web-api-2.29.0.openapi3.json"
LEGACY_DOC = "openapi/cpapi-v1-doc.swagger2.json"


class CatalogueError(Exception):
    """The catalogue is invalid; the message names file, endpoint and field."""


def _where(file: str, data: Any, path: list[str | int]) -> str:
    """Render a location such as `spec/x.yaml: endpoint 'foo': params[1].type`."""
    endpoint = None
    rest = list(path)
    if len(rest) >= 2 and rest[0] == "endpoints" and isinstance(rest[1], int):
        try:
            endpoint = data["endpoints"][rest[1]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            endpoint = None
        label = f"endpoint {endpoint!r}" if endpoint else f"endpoints[{rest[1]}]"
        rest = rest[2:]
    else:
        label = "top level"
    field = ""
    for part in rest:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return f"{file}: {label}" + (f": field {field}" if field else "")


def _load_yaml(path: Path, rel: str) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{rel}: not valid YAML: {exc}") from exc


def load_catalogue(spec_dir: Path) -> Catalogue:
    spec_dir = Path(spec_dir)
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    digest = hashlib.sha256()
    areas: list[Area] = []
    files = sorted(p for p in spec_dir.glob("*.yaml") if p.name not in NON_AREA_FILES)
    if not files:
        raise CatalogueError(f"{spec_dir}: no area files (*.yaml)")
    for path in files:
        rel = f"spec/{path.name}"
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        data = _load_yaml(path, rel)
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            raise CatalogueError(f"{_where(rel, data, list(first.absolute_path))}: {first.message}")
        if data["area"] != path.stem:
            raise CatalogueError(
                f"{rel}: top level: field area: {data['area']!r} must equal the file name {path.stem!r}"
            )
        areas.append(_area(data, rel))
    pacing_path = spec_dir / "pacing.yaml"
    digest.update(b"pacing.yaml\0" + pacing_path.read_bytes())
    pacing = _load_yaml(pacing_path, "spec/pacing.yaml")
    buckets = tuple(_bucket(k, v) for k, v in sorted(pacing["buckets"].items()))
    global_limits = tuple(_bucket(k, v) for k, v in sorted(pacing["global"].items()))
    cat = Catalogue(tuple(areas), buckets, global_limits, digest.hexdigest())
    _lint(cat, spec_dir)
    return cat


def _bucket(name: str, raw: dict[str, Any]) -> Bucket:
    return Bucket(
        name=name, doc=raw.get("doc", ""), rate=raw.get("rate"), per=raw.get("per"), concurrent=raw.get("concurrent")
    )


def _area(data: dict[str, Any], rel: str) -> Area:
    endpoints = []
    for raw in data["endpoints"]:
        params = tuple(
            Param(
                name=p["name"],
                wire=p["wire"],
                location=p["in"],
                type=p["type"],
                required=p["required"],
                doc=p["doc"],
                items=p.get("items"),
                default=p.get("default"),
                many=p.get("many"),
                enum=tuple(p["enum"]) if "enum" in p else None,
                pattern=p.get("pattern"),
                minimum=p.get("minimum"),
                maximum=p.get("maximum"),
                fill=p.get("fill"),
            )
            for p in raw["params"]
        )
        examples = tuple(
            Example(
                call=ex["call"],
                method=ex["expect"]["method"],
                path=ex["expect"]["path"],
                query=ex["expect"].get("query", {}),
                body=ex["expect"].get("body"),
            )
            for ex in raw["examples"]
        )
        fixed = raw.get("fixed", {})
        endpoints.append(
            Endpoint(
                area=data["area"],
                source_file=rel,
                name=raw["name"],
                http=raw["http"],
                path=raw["path"],
                summary=raw["summary"].strip(),
                doc=raw["doc"].strip(),
                params=params,
                retry=raw["retry"],
                origin=raw["origin"],
                examples=examples,
                fixed_query=fixed.get("query", {}),
                fixed_body=fixed.get("body"),
                pacing=raw.get("pacing"),
                preflight=tuple(raw.get("preflight", [])),
                openapi=raw.get("openapi"),
                legacy=raw.get("legacy"),
                overlay=raw.get("overlay", False),
                notes=tuple(raw.get("notes", [])),
                base=raw.get("base", TRADING_BASE),
                security=raw.get("security"),
                scopes=tuple(raw.get("scopes", [])),
            )
        )
    return Area(
        name=data["area"],
        title=data["title"],
        summary=" ".join(data["summary"].split()),
        source_file=rel,
        endpoints=tuple(endpoints),
    )


def _lint(cat: Catalogue, spec_dir: Path) -> None:
    """Cross-reference checks a JSON Schema cannot express."""
    by_name: dict[str, Endpoint] = {}
    routes: dict[tuple[str, str, str], str] = {}
    bucket_names = {b.name for b in cat.buckets}
    official_ids = _official_operation_ids(spec_dir)
    legacy_ops = _legacy_operations(spec_dir)

    for e in cat.endpoints:
        where = f"{e.source_file}: endpoint {e.name!r}"
        if e.name in by_name:
            raise CatalogueError(f"{where}: field name: duplicate of the endpoint in {by_name[e.name].source_file}")
        by_name[e.name] = e
        route = (e.http, e.base, e.path)
        if route in routes:
            raise CatalogueError(f"{where}: field path: {e.http} {e.full_path} is already endpoint {routes[route]!r}")
        routes[route] = e.name
        if e.base == ACCOUNT_MANAGEMENT_BASE and (e.security is None or not e.scopes):
            raise CatalogueError(f"{where}: field security: a {e.base} operation declares its security and scopes")
        if e.base != ACCOUNT_MANAGEMENT_BASE and (e.security is not None or e.scopes):
            raise CatalogueError(f"{where}: field security: only {ACCOUNT_MANAGEMENT_BASE} operations carry one")
        if e.signed_body and any(p.location == "body" and p.wire != "*" for p in e.params):
            raise CatalogueError(f"{where}: field params: a SIGNED_JWT body is one whole-body ('*') object parameter")
        names = [p.name for p in e.params]
        for i, p in enumerate(e.params):
            pw = f"{where}: field params[{i}]"
            if names.count(p.name) > 1:
                raise CatalogueError(f"{pw}.name: {p.name!r} appears twice")
            if p.required and "default" in _raw_keys(p):
                raise CatalogueError(f"{pw}.default: a required parameter has no default")
            if p.type == "array" and p.many:
                raise CatalogueError(f"{pw}.many: an array parameter cannot also be 'many'")
            if p.wire == "*" and p.location != "body":
                raise CatalogueError(f"{pw}.wire: '*' (whole body) is only for in: body")
            if (p.minimum is not None or p.maximum is not None) and p.type not in ("int", "str"):
                raise CatalogueError(f"{pw}.minimum: bounds apply to int (or whole-number str) parameters only")
            if p.pattern is not None:
                try:
                    re.compile(p.pattern)
                except re.error as exc:
                    raise CatalogueError(f"{pw}.pattern: not a regular expression: {exc}") from exc
        # Required parameters must come before optional ones (Python signatures).
        seen_optional = False
        for i, p in enumerate(e.params):
            if not p.required:
                seen_optional = True
            elif seen_optional:
                raise CatalogueError(
                    f"{where}: field params[{i}].required: a required parameter follows an optional one"
                )
        placeholders = set(PLACEHOLDER.findall(e.path))
        path_wires = {p.wire for p in e.params if p.location == "path"}
        if placeholders != path_wires:
            raise CatalogueError(
                f"{where}: field path: placeholders {sorted(placeholders)}"
                f" do not match path parameters {sorted(path_wires)}"
            )
        for p in e.params:
            if p.location == "path" and not p.required and p.fill is None and p.default is None:
                raise CatalogueError(
                    f"{where}: field params: path parameter {p.name!r} needs required, default or fill"
                )
        body_params = [p for p in e.params if p.location == "body"]
        if any(p.wire == "*" for p in body_params) and (len(body_params) > 1 or e.fixed_body):
            raise CatalogueError(f"{where}: field params: a whole-body parameter ('*') must be the only body content")
        if e.pacing is not None and e.pacing not in bucket_names:
            raise CatalogueError(f"{where}: field pacing: unknown bucket {e.pacing!r} (see spec/pacing.yaml)")
        if e.openapi is not None and official_ids is not None and e.openapi not in official_ids:
            raise CatalogueError(f"{where}: field openapi: no operationId {e.openapi!r} in spec/{OFFICIAL_DOC}")
        if e.openapi is not None and official_ids is not None:
            doc_route = official_ids[e.openapi]
            if doc_route[0] != e.http:
                raise CatalogueError(
                    f"{where}: field openapi: {e.openapi!r} is {doc_route[0]} {doc_route[1]}, not {e.http}"
                )
            if doc_route[1].startswith(ACCOUNT_MANAGEMENT_BASE + "/") != (e.base == ACCOUNT_MANAGEMENT_BASE):
                raise CatalogueError(f"{where}: field base: {e.openapi!r} is {doc_route[1]}, not below {e.base}")
        if e.legacy is not None and legacy_ops is not None and e.legacy not in legacy_ops:
            raise CatalogueError(f"{where}: field legacy: no operation {e.legacy!r} in spec/{LEGACY_DOC}")
        for i, ex in enumerate(e.examples):
            unknown = set(ex.call) - set(names)
            if unknown:
                raise CatalogueError(f"{where}: field examples[{i}].call: unknown parameters {sorted(unknown)}")
            if ex.method != e.http:
                raise CatalogueError(
                    f"{where}: field examples[{i}].expect.method: {ex.method} differs from http {e.http}"
                )
    for e in cat.endpoints:
        for pre in e.preflight:
            target = by_name.get(pre)
            if target is None:
                raise CatalogueError(f"{e.source_file}: endpoint {e.name!r}: field preflight: unknown endpoint {pre!r}")
            if any(p.required for p in target.params):
                raise CatalogueError(
                    f"{e.source_file}: endpoint {e.name!r}: field preflight: {pre!r} takes required parameters"
                )


def _raw_keys(p: Param) -> set[str]:
    # A required Param never gets a non-None default from YAML unless the key was present.
    return {"default"} if p.default is not None else set()


def _official_operation_ids(spec_dir: Path) -> dict[str, tuple[str, str]] | None:
    path = spec_dir / OFFICIAL_DOC
    if not path.exists():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, tuple[str, str]] = {}
    for route, ops in doc["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and "operationId" in op:
                out[op["operationId"]] = (method.upper(), route)
    return out


def _legacy_operations(spec_dir: Path) -> set[str] | None:
    path = spec_dir / LEGACY_DOC
    if not path.exists():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {
        f"{m.upper()} {route}"
        for route, ops in doc["paths"].items()
        for m in ops
        if m in ("get", "post", "put", "delete")
    }
