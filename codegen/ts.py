"""The TypeScript client: the catalogue → `generated/ts/` (an npm package of ES modules), through the templates in
`codegen/templates/ts/` over the same typed model as the Python client.

- `src/<area>.ts`: one module per area, a class of typed methods and the endpoint table its wire code reads;
- `src/models/<area>.ts`: response types, rendered here from the same OpenAPI schemas (fixes applied) that the
  Python models come from (`codegen/models.py` plans them; `schema_to_ts` renders them);
- `src/_wire.ts`, `src/index.ts`, package files: from their templates;
- `src/lib/*.ts`: copied from `handwritten/ts/` (transport, OAuth 2.0), the hand-written files (the spec cannot
  speak about base URLs, timeouts, retries, certificates or tokens).

Names follow TypeScript habits: methods and parameters in camelCase (`live_marketdata_snapshot(conids=...)` is
`client.marketdata.liveMarketdataSnapshot({conids: ...})`). Output is deterministic: no timestamps, sorted inputs.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import jinja2

from .model import Area, Catalogue, Endpoint, Param
from .models import plan_models
from .render import _project_version, _wrap, replace_tree

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
TS_TEMPLATES = "ts"
HANDWRITTEN = ROOT / "handwritten" / "ts"
IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def ts_name(name: str) -> str:
    """`live_marketdata_snapshot` → `liveMarketdataSnapshot` (a leading underscore is kept)."""
    lead = "_" if name.startswith("_") else ""
    first, *rest = name.lstrip("_").split("_")
    return lead + first + "".join(part[:1].upper() + part[1:] for part in rest if part)


def ts_class(area: Area) -> str:
    return "".join(part.capitalize() for part in area.name.split("_")) + "Endpoints"


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


MAX_COLUMNS = 120
"""No generated line is longer (as the Python side's ruff limit); tests/codegen/test_ts.py checks it."""


def _comment(text: str, indent: str = "") -> str:
    """A JSDoc block for `text`, wrapped to fit in 118 columns (empty string when there is none)."""
    lines = doc_lines(text, max(60, 114 - len(indent)))
    if not lines:
        return ""
    if len(lines) == 1 and len(indent) + len(lines[0]) <= 112:
        return f"{indent}/** {lines[0]} */\n"
    body = "".join(f"{indent} *{' ' + line if line.strip() else ''}\n" for line in lines)
    return f"{indent}/**\n{body}{indent} */\n"


def doc_lines(text: str, width: int = 110) -> list[str]:
    """Prose re-flowed to `width` (list items re-flowed with a hanging indent, code kept as written), as lines for
    a JSDoc block.

    Python's `None` reads `null` here: the TypeScript client takes null (or an absent member) for "not sent".
    """
    text = re.sub(r"\bNone\b", "null", str(text).strip().replace("*/", "*\\/"))
    if not text:
        return []
    lines: list[str] = []
    for line in _wrap(text, width).splitlines():
        if len(line) <= width or line.lstrip().startswith("```"):
            lines.append(line)
            continue
        # A long list item of a description, or a word longer than the line (a pattern in backticks): wrapped
        # under its own text, long words broken.
        bullet = re.match(r"^(\s*(?:[-*]\s+|\d+\.\s+|\|\s*)?)", line)
        lead = bullet.group(1) if bullet else ""
        lines += textwrap.wrap(
            line[len(lead) :],
            width,
            initial_indent=lead,
            subsequent_indent=" " * len(lead),
            break_on_hyphens=False,
        ) or [line]
    return lines


def method_head(e: Endpoint, returns: str) -> str:
    """`name(args: XArgs = {}): Promise<T> {`, its parameter on a line of its own when the whole is too long."""
    param = ""
    if e.params:
        param = f"args: {args_interface(e)}" + ("" if args_required(e) else " = {}")
    name = ts_name(e.name)
    head = f"  {name}({param}): Promise<{returns}> {{"
    if len(head) <= MAX_COLUMNS or not param:
        return head
    return f"  {name}(\n    {param},\n  ): Promise<{returns}> {{"


def _split_top(ts: str, sep: str) -> list[str]:
    """`ts` split at `sep` outside brackets and string literals, parts stripped."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(ts):
        if quote:
            if ch == quote and ts[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "({[<":
            depth += 1
        elif ch in ")}]>":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(ts[start:i].strip())
            start = i + 1
    parts.append(ts[start:].strip())
    return parts


def _fits(text: str, used: int) -> bool:
    lines = text.split("\n")
    return used + len(lines[0]) <= MAX_COLUMNS and all(len(line) <= MAX_COLUMNS for line in lines[1:])


def fit_type(ts: str, indent: str, used: int) -> str:
    """A type laid out to fit in MAX_COLUMNS when `used` columns precede it: long unions one member a line
    (`| "a"`), a long parenthesised union broken inside its parentheses."""
    if _fits(ts, used):
        return ts
    inner = indent + "  "
    members = _split_top(ts, "|")
    if len(members) > 1:
        return "".join(f"\n{inner}| {fit_type(m, inner, len(inner) + 2)}" for m in members)
    for pattern, opening, closing in ((r"\((.*)\)((?:\[\])*)", "(", ")"), (r"([A-Za-z_]\w*)<(.*)>", "<", ">")):
        match = re.fullmatch(pattern, ts, re.S)
        if match is None:
            continue
        if opening == "(":
            before, body, after = "", match.group(1), match.group(2)
        else:
            before, body, after = match.group(1), match.group(2), ""
        if len(_split_top(body, "|")) > 1:
            laid = fit_type(body, inner, MAX_COLUMNS)  # forced onto its own lines
            return f"{before}{opening}{laid}\n{indent}{closing}{after}"
    return ts


def fit_literal(value: Any, indent: str, used: int) -> str:
    """A JSON literal laid out to fit: a long array packed over lines, a long string split into joined parts."""
    text = _literal(value)
    if used + len(text) <= MAX_COLUMNS:
        return text
    inner = indent + "  "
    if isinstance(value, list):
        rows: list[str] = []
        for item in (_literal(v) for v in value):
            if rows and len(rows[-1]) + len(item) + 2 <= MAX_COLUMNS:
                rows[-1] += " " + item + ","
            else:
                rows.append(f"{inner}{item},")
        return "[\n" + "\n".join(rows) + f"\n{indent}]"
    if isinstance(value, str):
        size = max(20, MAX_COLUMNS - max(used, len(inner)) - 6)
        pieces = [value[i : i + size] for i in range(0, len(value), size)]
        return f" +\n{inner}".join(_literal(p) for p in pieces)
    return text


# --- parameters ------------------------------------------------------------------------------------------------------

_SCALARS = {
    "str": "string | number",  # str parameters also take integers (conids), as in Python
    "int": "number",
    "float": "number",
    "bool": "boolean",
    "datetime": "Date | string",
    "object": "Record<string, unknown>",
    "any": "unknown",
}


def param_type(p: Param) -> str:
    if p.enum is not None:
        base = " | ".join(_literal(v) for v in p.enum)
    elif p.type == "array":
        item = _SCALARS[p.items or "any"]
        base = f"readonly ({item})[]" if "|" in item else f"readonly {item}[]"
    else:
        base = _SCALARS[p.type]
    if p.many:
        base = f"OneOrMany<{base}>"
    return base


def param_field(p: Param) -> str:
    """The member of the arguments interface: `name?: type | null` with its JSDoc."""
    optional = not p.required
    doc = p.doc_line
    if p.default is not None:
        doc = doc.rstrip(".") + f". Default: {_literal(p.default)}."
    kind = param_type(p) + (" | null" if optional else "")
    head = f"  {ts_name(p.name)}{'?' if optional else ''}:"
    return _comment(doc, "  ") + f"{head} {fit_type(kind, '  ', len(head) + 2)};".replace(": \n", ":\n")


def param_spec(p: Param) -> str:
    """The wire description of one parameter, as a TypeScript object literal."""
    spec: dict[str, Any] = {"name": ts_name(p.name), "wire": p.wire, "in": p.location, "type": p.type}
    if p.items:
        spec["items"] = p.items
    spec["required"] = p.required
    if p.default is not None:
        spec["default"] = p.default
    if p.many:
        spec["many"] = p.many
    if p.enum is not None:
        spec["enum"] = list(p.enum)
    if p.pattern is not None:
        spec["pattern"] = p.pattern
    if p.form is not None:
        spec["form"] = p.form
    if p.opaque:
        spec["opaque"] = True
    if p.fill:
        spec["fill"] = p.fill
    one_line = "{ " + ", ".join(f"{k}: {_literal(v)}" for k, v in spec.items()) + " }"
    if len(one_line) <= 104:
        return one_line
    indent = " " * 8
    members = "".join(f"{indent}{k}: {fit_literal(v, indent, len(indent) + len(k) + 3)},\n" for k, v in spec.items())
    return "{\n" + members + "      }"


def args_required(e: Endpoint) -> bool:
    return any(p.required for p in e.params)


def args_interface(e: Endpoint) -> str:
    return ts_name(e.name)[:1].upper() + ts_name(e.name)[1:] + "Args"


# --- response schemas → TypeScript -----------------------------------------------------------------------------------

SCHEMA_REF = "#/components/schemas/"


def _key(name: str) -> str:
    return name if IDENT.match(name) else _literal(name)


def _group(ts: str) -> str:
    """Parenthesise a union or intersection before `[]` or `&`."""
    depth = 0
    for ch in ts:
        if ch in "({[<":
            depth += 1
        elif ch in ")}]>":
            depth -= 1
        elif depth == 0 and ch in "|&":
            return f"({ts})"
    return ts


def schema_to_ts(schema: Any, indent: str = "") -> str:
    """The TypeScript type of one OpenAPI 3.0 schema (the subset IBKR's document uses)."""
    if not isinstance(schema, dict):
        return "unknown"
    ts = _schema_core(schema, indent)
    if schema.get("nullable") and ts != "unknown":
        ts = f"{ts} | null"
    return ts


def _schema_core(schema: dict[str, Any], indent: str) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref[len(SCHEMA_REF) :] if ref.startswith(SCHEMA_REF) else "unknown"
    if "enum" in schema:
        values = [v for v in schema["enum"] if v is not None]
        return " | ".join(_literal(v) for v in values) or "never"
    for key, sep in (("oneOf", " | "), ("anyOf", " | ")):
        if isinstance(schema.get(key), list):
            members = _unique(_group(schema_to_ts(m, indent)) for m in schema[key])
            return sep.join(members) or "unknown"
    parts: list[str] = []
    if isinstance(schema.get("allOf"), list):
        parts += [_group(schema_to_ts(m, indent)) for m in schema["allOf"]]
    kind = schema.get("type")
    if kind == "array":
        parts.append(_group(schema_to_ts(schema.get("items", {}), indent)) + "[]")
    elif kind == "object" or "properties" in schema or "additionalProperties" in schema:
        obj = _object(schema, indent)
        if obj != "Record<string, unknown>" or not parts:
            parts.append(obj)
    elif kind in ("integer", "number"):
        parts.append("number")
    elif kind == "string":
        parts.append("string")
    elif kind == "boolean":
        parts.append("boolean")
    parts = _unique(parts)
    if not parts:
        return "unknown"
    return " & ".join(parts)


def _unique(items: Any) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _object(schema: dict[str, Any], indent: str) -> str:
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if not props:
        if isinstance(extra, dict) and extra:
            return f"Record<string, {schema_to_ts(extra, indent)}>"
        return "Record<string, unknown>"
    required = set(schema.get("required") or [])
    inner = indent + "  "
    lines = ["{"]
    for name, sub in props.items():
        doc = sub.get("description", "") if isinstance(sub, dict) else ""
        if doc:
            lines.append(_comment(doc, inner).rstrip("\n"))
        optional = "" if name in required else "?"
        head = f"{inner}{_key(name)}{optional}:"
        member = f"{head} {fit_type(schema_to_ts(sub, inner), inner, len(head) + 2)};"
        lines.append(member.replace(": \n", ":\n"))
    if isinstance(extra, dict) and extra:
        lines.append(f"{inner}[key: string]: unknown;")
    lines.append(indent + "}")
    return "\n".join(lines)


def declaration(name: str, schema: dict[str, Any]) -> str:
    """`export interface Name {...}` for a plain object schema, `export type Name = ...;` otherwise."""
    doc = _comment(schema.get("description", "")) if isinstance(schema, dict) else ""
    ts = schema_to_ts(schema)
    plain = (
        isinstance(schema, dict)
        and bool(schema.get("properties"))
        and schema.get("type", "object") == "object"
        and not schema.get("nullable")
        and not any(k in schema for k in ("allOf", "oneOf", "anyOf", "$ref", "enum"))
    )
    if plain:
        return f"{doc}export interface {name} {ts}\n"
    head = f"export type {name} ="
    return f"{doc}{head} {fit_type(ts, '', len(head) + 2)};\n".replace("= \n", "=\n")


def uses_many(area: Area) -> bool:
    return any(p.many for e in area.endpoints for p in e.params)


# --- rendering -------------------------------------------------------------------------------------------------------


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["ts_name"] = ts_name
    env.filters["ts_class"] = ts_class
    env.filters["literal"] = _literal
    env.filters["comment"] = _comment
    env.filters["param_field"] = param_field
    env.filters["param_spec"] = param_spec
    env.filters["args_interface"] = args_interface
    env.filters["args_required"] = args_required
    env.filters["doc_lines"] = doc_lines
    env.filters["uses_many"] = uses_many
    env.filters["format_code"] = lambda text: f"`{text}`"
    env.filters["method_head"] = method_head
    return env


def render_ts_tree(cat: Catalogue, spec_dir: Path, dest: Path) -> list[str]:
    """Render the package into `dest` (the future `generated/ts/`); return the relative paths written."""
    env = environment()
    plan = plan_models(cat, spec_dir)
    response_types = {m.endpoint: m.class_name for m in plan.models}
    model_areas = {
        area: [declaration(name, schema) for name, schema in doc["components"]["schemas"].items()]
        for area, doc in plan.area_documents.items()
    }
    context: dict[str, Any] = {
        "catalogue": cat,
        "version": _project_version(),
        "response_types": response_types,
        "model_areas": model_areas,
    }
    written: list[str] = []
    root = TEMPLATES / TS_TEMPLATES
    for template_path in sorted(root.rglob("*.j2")):
        rel = template_path.relative_to(root).as_posix()[: -len(".j2")]
        if rel == "gitignore":
            rel = ".gitignore"  # kept visible in the template tree
        template = env.get_template(template_path.relative_to(TEMPLATES).as_posix())
        if "%area" in rel:
            for area in cat.areas:
                if rel.startswith("src/models/") and area.name not in model_areas:
                    continue
                out_rel = rel.replace("%area", area.name)
                _write(dest / out_rel, template.render(context, area=area))
                written.append(out_rel)
        else:
            _write(dest / rel, template.render(context))
            written.append(rel)
    for source in sorted(HANDWRITTEN.glob("*.ts")):
        out_rel = f"src/lib/{source.name}"
        header = (
            f"// Copied by codegen from handwritten/ts/{source.name}, the hand-written part of this package.\n"
            "// Do not edit here: edit handwritten/ts/, then run `make generate`.\n"
        )
        _write(dest / out_rel, header + source.read_text(encoding="utf-8"))
        written.append(out_rel)
    return sorted(written)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8", newline="\n")


BUILD_OUTPUTS = ("node_modules", "dist", "package-lock.json")
"""What `npm install` / `npm run build` leave in the package: kept by `make generate`, ignored by git (the
generated `.gitignore`) and by `make check-generated`."""


def replace_keeping_build_outputs(source: Path, out: Path) -> None:
    """Make `out` a copy of `source`, except that the build outputs already in `out` stay."""
    with tempfile.TemporaryDirectory(
        prefix="ibkr-codegen-kept-", dir=out.parent if out.parent.exists() else None
    ) as kept:
        outputs = [name for name in BUILD_OUTPUTS if (out / name).exists()]
        for name in outputs:
            shutil.move(str(out / name), str(Path(kept) / name))
        replace_tree(source, out)
        for name in outputs:
            shutil.move(str(Path(kept) / name), str(out / name))


def render_ts(cat: Catalogue, out: Path, spec_dir: Path) -> list[str]:
    """Render into `out` (e.g. `generated/ts`), replacing what is there except the build outputs."""
    with tempfile.TemporaryDirectory(prefix="ibkr-codegen-ts-") as tmp:
        written = render_ts_tree(cat, spec_dir, Path(tmp) / "ts")
        replace_keeping_build_outputs(Path(tmp) / "ts", Path(out))
    return written
