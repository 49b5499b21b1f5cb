"""Typed response models: IBKR's OpenAPI document → `ibkr_sdk/models/<area>.py` via datamodel-code-generator.

For every catalogue endpoint whose `openapi:` operationId has a JSON schema for its 200 response, the schema is taken
from `spec/openapi/ibkr-web-api-2.29.0.openapi3.json` after applying the fixes recorded as data in
`spec/openapi/fixes.yaml` (each with the reason). The schemas of one area, with every component they reference, form
a small OpenAPI document that datamodel-code-generator turns into one self-contained module per area, so that a user
loads only the areas they touch. `ibkr_sdk/models/__init__.py` maps each endpoint to its model and loads area modules
on first use; it imports nothing heavy.

Naming: a response schema that is a plain `$ref` to a component gets that component's class (IBKR's name with the
first letter upper-cased: `accountSummaryResponse` → `AccountSummaryResponse`); an inline response schema gets
`<EndpointName>Response` (`currency_exchange_rate` → `CurrencyExchangeRateResponse`).

Output is deterministic: sorted inputs, `disable_timestamp`, formatted by the pinned ruff like the rest of the tree.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .model import Area, Catalogue, Endpoint

ROOT = Path(__file__).resolve().parent.parent

OFFICIAL_DOC = "openapi/ibkr-web-api-2.29.0.openapi3.json"
FIXES_FILE = "openapi/fixes.yaml"
PACKAGE = "ibkr_sdk"
MODELS_DIR = f"{PACKAGE}/models"
SCHEMA_REF = "#/components/schemas/"

# The datamodel-code-generator options, in one place (passed to its Python API, so no pyproject section is read).
DATAMODEL_OPTIONS: dict[str, Any] = {
    "output_model_type": "pydantic_v2.BaseModel",
    "target_python_version": "3.10",
    "target_pydantic_version": "2",
    "extra_fields": "allow",  # unknown response fields are kept, never rejected
    "disable_timestamp": True,
    "use_standard_collections": True,
    "use_union_operator": True,
    "use_annotated": True,
    "use_schema_description": True,
    "use_field_description": True,
    "use_double_quotes": True,
    "enum_field_as_literal": "all",  # plain values (`"BUY"`), the allowed ones visible in the annotation
    "naming_strategy": "primary-first",
    "formatters": ["builtin"],
    "strict_refs": True,
}


class ModelsError(Exception):
    """The OpenAPI document, a fix or the generated models are not what the generator expects."""


@dataclass(frozen=True)
class ResponseModel:
    """The model of one endpoint's 200 response."""

    endpoint: str
    area: str
    class_name: str
    operation_id: str

    @property
    def qualname(self) -> str:
        """`<area>.<Class>`, as written in docstrings: `models.<area>.<Class>`."""
        return f"{self.area}.{self.class_name}"


@dataclass(frozen=True)
class ModelPlan:
    """What to generate: one model per endpoint and one OpenAPI document per area."""

    models: tuple[ResponseModel, ...] = ()
    area_documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs_sha256: str = ""

    @property
    def areas(self) -> list[str]:
        return sorted(self.area_documents)


# --- fixes -----------------------------------------------------------------------------------------------------------
#
# A fix is `{id, why, patch}`: `patch` is a JSON Patch (RFC 6902: add, remove, replace, move, copy, test) applied to
# IBKR's document. `test` operations pin the value a fix expects, so a new version of the document that changes it
# makes generation fail instead of silently mis-applying the fix.

PATCH_OPS = ("add", "remove", "replace", "move", "copy", "test")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ModelsError(f"not a JSON pointer: {pointer!r}")
    return [_unescape(t) for t in pointer[1:].split("/")]


def _resolve(doc: Any, pointer: str) -> Any:
    node = doc
    for tok in _split_pointer(pointer):
        if isinstance(node, dict) and tok in node:
            node = node[tok]
        elif isinstance(node, list) and tok.isdigit() and int(tok) < len(node):
            node = node[int(tok)]
        else:
            raise ModelsError(f"{pointer}: no {tok!r} in the document")
    return node


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _split_pointer(pointer)
    if not tokens:
        raise ModelsError("the whole document cannot be patched")
    parent_pointer = "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1])
    return _resolve(doc, parent_pointer), tokens[-1]


def _remove(doc: Any, pointer: str) -> Any:
    parent, key = _parent(doc, pointer)
    if isinstance(parent, dict) and key in parent:
        return parent.pop(key)
    if isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        return parent.pop(int(key))
    raise ModelsError(f"{pointer}: nothing to remove")


def _add(doc: Any, pointer: str, value: Any) -> None:
    parent, key = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list) and (key == "-" or (key.isdigit() and int(key) <= len(parent))):
        parent.insert(len(parent) if key == "-" else int(key), value)
    else:
        raise ModelsError(f"{pointer}: cannot add here")


def apply_patch(doc: Any, patch: list[dict[str, Any]], at: str = "") -> None:
    """Apply one JSON Patch to `doc` in place; its `path` and `from` pointers are relative to the pointer `at`."""
    for i, op in enumerate(patch):
        try:
            if not isinstance(op, dict):
                raise ModelsError("an operation is an object {op, path, ...}")
            kind = op.get("op")
            if kind not in PATCH_OPS:
                raise ModelsError(f"op {kind!r} is not one of {', '.join(PATCH_OPS)}")
            path = op.get("path")
            if not isinstance(path, str) or not (path == "" or path.startswith("/")):
                raise ModelsError("a JSON pointer `path` is required")
            path = at + path
            if kind in ("add", "replace", "test") and "value" not in op:
                raise ModelsError(f"op {kind} needs a value")
            if kind == "test":
                current = _resolve(doc, path)
                if current != op["value"]:
                    shown = json.dumps(current, sort_keys=True)[:200]
                    raise ModelsError(f"test failed: {path} is {shown}; the document changed")
            elif kind == "remove":
                _remove(doc, path)
            elif kind == "add":
                _add(doc, path, copy.deepcopy(op["value"]))
            elif kind == "replace":
                _remove(doc, path)
                _add(doc, path, copy.deepcopy(op["value"]))
            else:  # move, copy
                source = op.get("from")
                if not isinstance(source, str) or not source.startswith("/"):
                    raise ModelsError(f"op {kind} needs a JSON pointer `from`")
                source = at + source
                value = _remove(doc, source) if kind == "move" else copy.deepcopy(_resolve(doc, source))
                _add(doc, path, value)
        except ModelsError as exc:
            raise ModelsError(f"patch[{i}]: {exc}") from None


def apply_fixes(doc: dict[str, Any], fixes: list[dict[str, Any]], source: str = FIXES_FILE) -> dict[str, Any]:
    """Apply `fixes` (see spec/openapi/fixes.yaml) to a deep copy of `doc`. Every fix must still apply."""
    doc = copy.deepcopy(doc)
    ids: set[str] = set()
    for i, fix in enumerate(fixes):
        fix_id = fix.get("id") if isinstance(fix, dict) else None
        if not isinstance(fix_id, str) or not fix_id:
            raise ModelsError(f"spec/{source}: fixes[{i}]: field id: missing")
        where = f"spec/{source}: fix {fix_id!r}"
        if fix_id in ids:
            raise ModelsError(f"{where}: field id: duplicate")
        ids.add(fix_id)
        if not str(fix.get("why", "")).strip():
            raise ModelsError(f"{where}: field why: every fix says why it is needed")
        patch = fix.get("patch")
        if not isinstance(patch, list) or not patch:
            raise ModelsError(f"{where}: field patch: a non-empty JSON Patch (list of operations) is required")
        at = fix.get("at", "")
        if not isinstance(at, str) or not (at == "" or at.startswith("/")):
            raise ModelsError(f"{where}: field at: a JSON pointer is required")
        try:
            _resolve(doc, at)
        except ModelsError as exc:
            raise ModelsError(f"{where}: field at: {exc}") from None
        try:
            apply_patch(doc, patch, at)
        except ModelsError as exc:
            raise ModelsError(f"{where}: field {exc}") from None
    return doc


def load_fixes(spec_dir: Path) -> list[dict[str, Any]]:
    path = Path(spec_dir) / FIXES_FILE
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    fixes = data.get("fixes", [])
    if not isinstance(fixes, list):
        raise ModelsError(f"spec/{FIXES_FILE}: field fixes: a list is required")
    return fixes


def load_document(spec_dir: Path, *, fixed: bool = True) -> dict[str, Any] | None:
    """IBKR's OpenAPI document, with the recorded fixes applied unless `fixed` is false; None when absent."""
    path = Path(spec_dir) / OFFICIAL_DOC
    if not path.exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return apply_fixes(doc, load_fixes(spec_dir)) if fixed else doc


# --- extraction -----------------------------------------------------------------------------------------------------


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId → (method, route, operation)."""
    out: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for route, ops in doc["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and "operationId" in op:
                out[op["operationId"]] = (method, route, op)
    return out


def response_schema(doc: dict[str, Any], operation_id: str) -> tuple[dict[str, Any], str] | None:
    """The JSON schema of the 200 response of `operation_id` and its JSON pointer, or None when it has none."""
    method, route, op = operations(doc)[operation_id]
    content = op.get("responses", {}).get("200", {}).get("content", {})
    media = content.get("application/json")
    if not isinstance(media, dict) or "schema" not in media:
        return None
    pointer = "/" + "/".join(
        _escape(t) for t in ("paths", route, method, "responses", "200", "content", "application/json", "schema")
    )
    return media["schema"], pointer


def response_examples(doc: dict[str, Any], operation_id: str) -> list[tuple[str, Any]]:
    """The official examples of the 200 response of `operation_id`: (label, value) pairs, in document order."""
    _, _, op = operations(doc)[operation_id]
    out: list[tuple[str, Any]] = []
    for media_type, media in op.get("responses", {}).get("200", {}).get("content", {}).items():
        if not isinstance(media, dict):
            continue
        if "example" in media:
            out.append((f"{media_type} example", media["example"]))
        for name, ex in media.get("examples", {}).items():
            if isinstance(ex, dict) and "$ref" in ex:
                ex = _resolve(doc, ex["$ref"][1:])
            if isinstance(ex, dict) and "value" in ex:
                out.append((f"{media_type} examples.{name}", ex["value"]))
    return out


def _class_name(component: str) -> str:
    return component[:1].upper() + component[1:]


def _single_member(schema: Any) -> Any:
    """A `oneOf`/`anyOf` of one schema is that schema (spares a root-model wrapper around one model)."""
    if isinstance(schema, dict) and len(schema) == 1:
        (key, members), *_ = schema.items()
        if key in ("oneOf", "anyOf") and isinstance(members, list) and len(members) == 1:
            return _single_member(members[0])
    return schema


def _endpoint_class(e: Endpoint) -> str:
    return "".join(part.capitalize() for part in e.name.split("_") if part) + "Response"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _rewrite_refs(node: Any, names: dict[str, str]) -> Any:
    """Copy of `node` with `#/components/schemas/<x>` refs pointing at the renamed components."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(SCHEMA_REF):
                out[key] = SCHEMA_REF + names[value[len(SCHEMA_REF) :]]
            else:
                out[key] = _rewrite_refs(value, names)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, names) for item in node]
    return node


def _closure(doc: dict[str, Any], roots: list[Any]) -> list[str]:
    """Names of every component schema reachable from `roots`, sorted."""
    schemas = doc.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    todo = [ref for root in roots for ref in _refs(root)]
    while todo:
        ref = todo.pop()
        if not ref.startswith(SCHEMA_REF):
            raise ModelsError(f"a response schema refers to {ref!r}; only {SCHEMA_REF}* is supported")
        name = ref[len(SCHEMA_REF) :]
        if name in seen:
            continue
        if name not in schemas:
            raise ModelsError(f"a response schema refers to the missing component {ref!r}")
        seen.add(name)
        todo.extend(_refs(schemas[name]))
    return sorted(seen)


_ENUM_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def open_schema(node: Any, names: bool = False) -> Any:
    """Copy of a response schema that refuses no answer merely for carrying something new.

    - An `enum` is the list of values IBKR documents, not a promise: `{type: string, enum: [A, B]}` becomes
      `anyOf: [{type: string, enum: [A, B]}, {type: string}]`, which the models write `Literal["A", "B"] | str` (the
      known values stay visible to type checkers and in the docs; a new value still parses). Evidence: the real
      gateway sends businessType "INDEPENDENT" and child_order_type "3" (realdata samples conduit-meta,
      ibind-order-status-1210386726), neither in IBKR's lists.
    - `oneOf` becomes `anyOf`: IBKR's alternatives overlap (every member's fields are optional), so an answer may match
      several, which `oneOf` forbids; the members that must be told apart carry `required` fields (fixes.yaml).

    `names` is true for the member map under `properties`, whose keys are field names, not keywords.
    """
    if isinstance(node, list):
        return [open_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: open_schema(value) for key, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("example", "examples", "enum", "const", "default", "required"):
            out[key] = value  # data, not schemas
        else:
            out["anyOf" if key == "oneOf" else key] = open_schema(value, names=key == "properties")
    enum = out.get("enum")
    if isinstance(enum, list) and enum:
        kinds = {_ENUM_TYPES.get(type(v)) for v in enum if v is not None}
        kind = out.get("type") if isinstance(out.get("type"), str) else (kinds.pop() if len(kinds) == 1 else None)
        if kind in ("string", "integer", "number", "boolean") and "anyOf" not in out:
            closed = {"type": kind, "enum": out.pop("enum")}
            out.pop("type", None)
            out["anyOf"] = [closed, {"type": kind}]
    return out


def inputs_digest(spec_dir: Path) -> str:
    digest = hashlib.sha256()
    for rel in (OFFICIAL_DOC, FIXES_FILE):
        path = Path(spec_dir) / rel
        if path.exists():
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def plan_models(cat: Catalogue, spec_dir: Path, *, fixed: bool = True) -> ModelPlan:
    """Decide the model of every endpoint that has a response schema, and build each area's OpenAPI document.

    `fixed=False` uses IBKR's document as published (to measure what the fixes change).
    """
    doc = load_document(spec_dir, fixed=fixed)
    if doc is None:
        return ModelPlan(inputs_sha256=inputs_digest(spec_dir))
    schemas = doc.get("components", {}).get("schemas", {})
    models: list[ResponseModel] = []
    area_docs: dict[str, dict[str, Any]] = {}
    for area in cat.areas:
        inline: dict[str, Any] = {}  # class name → inline response schema
        referenced: set[str] = set()  # component names used directly as response schemas
        area_models: list[ResponseModel] = []
        for e in area.endpoints:
            if e.openapi is None:
                continue
            found = response_schema(doc, e.openapi)
            if found is None:
                continue
            schema = _single_member(found[0])
            ref = schema.get("$ref") if isinstance(schema, dict) else None
            if isinstance(ref, str) and len(schema) == 1 and ref.startswith(SCHEMA_REF):
                component = ref[len(SCHEMA_REF) :]
                referenced.add(component)
                class_name = _class_name(component)
            else:
                class_name = _endpoint_class(e)
                if class_name in inline or any(_class_name(s) == class_name for s in schemas):
                    raise ModelsError(
                        f"{e.source_file}: endpoint {e.name!r}: the name {class_name} of its inline response schema"
                        " is already taken"
                    )
                inline[class_name] = schema
            area_models.append(ResponseModel(e.name, area.name, class_name, e.openapi))
        if not area_models:
            continue
        needed = _closure(doc, [{"$ref": SCHEMA_REF + c} for c in sorted(referenced)] + list(inline.values()))
        names = {n: _class_name(n) for n in needed}
        taken = list(names.values()) + list(inline)
        clash = sorted({v for v in taken if taken.count(v) > 1})
        if clash:
            raise ModelsError(f"area {area.name!r}: schema names collide once capitalised: {', '.join(clash)}")
        components = {names[n]: open_schema(_rewrite_refs(schemas[n], names)) for n in needed}
        components.update({c: open_schema(_rewrite_refs(s, names)) for c, s in inline.items()})
        area_docs[area.name] = {
            "openapi": doc.get("openapi", "3.0.0"),
            "info": {"title": f"responses of {area.name}", "version": str(doc.get("info", {}).get("version", ""))},
            "paths": {},
            "components": {"schemas": dict(sorted(components.items()))},
        }
        models.extend(area_models)
    return ModelPlan(tuple(models), area_docs, inputs_digest(spec_dir))


# --- generation -----------------------------------------------------------------------------------------------------

DESCRIPTION_WIDTH = 108  # docstring lines sit at 4 spaces of indentation; keep them under ruff's 120 columns
HEADER = (
    "# Generated by codegen/models.py with datamodel-code-generator {version}\n"
    "# from spec/{doc} and the fixes in spec/{fixes}.\n"
    "# Do not edit: change the fixes or the generator, then run `make generate`."
)


def _prepare(node: Any, names: bool = False) -> Any:
    """Copy of a schema ready for datamodel-code-generator.

    - `description` texts are wrapped, so the docstrings made of them stay under ruff's 120 columns;
    - `default` values are dropped: a default says what the server assumes when a request omits a value, and in a
      response model it would invent a value the answer did not carry (an absent field stays None).

    `names` is true for the member map under `properties`, whose keys are field names, not keywords.
    """
    if isinstance(node, list):
        return [_prepare(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: _prepare(value) for key, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "default":
            continue
        if key == "description" and isinstance(value, str):
            out[key] = _wrap_text(value)
        elif key in ("example", "examples", "enum", "const"):
            out[key] = value  # data, not schemas
        else:
            out[key] = _prepare(value, names=key == "properties")
    return out


def _wrap_text(text: str) -> str:
    lines: list[str] = []
    for line in text.strip().splitlines():
        line = " ".join(line.split())
        if not line:
            lines.append("")
            continue
        lines.extend(textwrap.wrap(line, DESCRIPTION_WIDTH, break_long_words=False, break_on_hyphens=False))
    return "\n".join(lines)


def _module_doc(area: Area, models: list[ResponseModel]) -> str:
    lines = [
        f'"""Response models of the {area.title} endpoints ({area.source_file}).',
        "",
        'One model per endpoint (`Result.parsed()` picks it); unknown fields are kept (`extra="allow"`).',
        "",
    ]
    width = max(len(m.endpoint) for m in models)
    lines += [f"    {m.endpoint.ljust(width)}  {m.class_name}" for m in models]
    lines.append('"""')
    return "\n".join(lines)


def datamodel_version() -> str:
    from datamodel_code_generator import get_version

    return str(get_version())


def _generate_area(document: dict[str, Any], header: str) -> str:
    import datamodel_code_generator

    schemas = document["components"]["schemas"]
    document = {**document, "components": {"schemas": {name: _prepare(s) for name, s in schemas.items()}}}
    code = datamodel_code_generator.generate(
        json.dumps(document),
        input_file_type="openapi",
        custom_file_header=header,
        settings_path=ROOT,  # its formatter reads this project's pyproject.toml, whatever the working directory
        **DATAMODEL_OPTIONS,
    )
    if not isinstance(code, str):
        raise ModelsError("datamodel-code-generator returned several modules for one area")
    return code


def _class_names(code: str, where: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ModelsError(f"{where}: datamodel-code-generator wrote invalid Python: {exc}") from exc
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef)]


def write_models(cat: Catalogue, plan: ModelPlan, dest: Path) -> list[str]:
    """Write `ibkr_sdk/models/<area>.py` for every area with response models; return the relative paths.

    `ibkr_sdk/models/__init__.py` is rendered from its template like every other module.
    """
    if not plan.models:
        return []
    header = HEADER.format(doc=OFFICIAL_DOC, fixes=FIXES_FILE, version=datamodel_version())
    areas = {a.name: a for a in cat.areas}
    written: list[str] = []
    for name in plan.areas:
        area = areas[name]
        models = [m for m in plan.models if m.area == name]
        rel = f"{MODELS_DIR}/{name}.py"
        code = _generate_area(plan.area_documents[name], header + "\n" + _module_doc(area, models))
        classes = _class_names(code, rel)
        missing = sorted({m.class_name for m in models} - set(classes))
        if missing:
            raise ModelsError(f"{rel}: datamodel-code-generator did not write the classes {', '.join(missing)}")
        code = code.rstrip("\n") + "\n\n__all__ = [\n" + "".join(f'    "{c}",\n' for c in sorted(classes)) + "]\n"
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8", newline="\n")
        written.append(rel)
    _lint(dest / MODELS_DIR)
    return written


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], capture_output=True, text=True, check=False)


def _lint(models_dir: Path) -> None:
    """Make the generated models pass the project's ruff rules.

    Safe autofixes (import order, `Dict` → `dict`) are applied; a field named by IBKR with a single ambiguous letter
    (`l`, `I`, `O`: bar lows and the like) keeps its wire name with a `noqa: E741`. Anything else is an error.
    """
    config = str(ROOT / "pyproject.toml")
    _ruff("check", "--config", config, "--quiet", "--fix", "--select", "I,UP,F401", str(models_dir))
    _ruff("check", "--config", config, "--quiet", "--add-noqa", "--select", "E741", str(models_dir))
    _ruff("format", "--config", config, "--quiet", str(models_dir))
    proc = _ruff("check", "--config", config, "--quiet", str(models_dir))
    if proc.returncode != 0:
        raise ModelsError(f"the generated models fail ruff:\n{proc.stdout}{proc.stderr}")
