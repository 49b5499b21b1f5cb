"""Render the API reference (`make docs` → docs/api-reference.md and docs/api/<area>.md) from the catalogue.

Every catalogue method gets its signature, parameters, the checks made before sending, endpoint, pacing limit, retry
safety, preflight, response model, one example request and its catalogue entry (file, line and the YAML itself). The
hand-written part of `IbkrClient` (the overlays that replace a generated method and the helpers that combine several
requests) is documented from the source of `handwritten/`, read with `ast` (nothing is imported): signatures and
Google-style docstrings. The names `import ibkr_sdk` exports come from `spec/exports.yaml`.

The templates live in `codegen/templates/docs/`, beside the package templates; output is deterministic (catalogue
order, sorted names, no timestamps). `docs/api/` belongs to the generator and is replaced on every run; the other
files of `docs/` are left alone.
"""

from __future__ import annotations

import ast
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .model import Bucket, Catalogue, Endpoint, Example, Param
from .models import plan_models
from .render import ROOT, _unwrap, environment, replace_tree
from .streams import load_streams_if_present

HANDWRITTEN = ROOT / "handwritten"
CLIENT_CLASS = "IbkrClient"
REFERENCE = "api-reference.md"
AREA_DIR = "api"
SIGNATURE_WIDTH = 100
SECTIONS = ("Args", "Returns", "Raises", "Attributes")


# --- the hand-written client, read from source -------------------------------------------------------------------


@dataclass(frozen=True)
class Docstring:
    """A Google-style docstring: prose, then `Args:` / `Returns:` / `Raises:` / `Attributes:` sections."""

    summary: str = ""
    body: str = ""
    args: tuple[tuple[str, str], ...] = ()
    returns: str = ""
    raises: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HandMethod:
    """A public method of `IbkrClient` written in `handwritten/`."""

    name: str
    owner: str  # the class that defines it
    module: str  # `ibkr_sdk.lib.<module>`
    params: tuple[str, ...]  # `name: annotation = default`, without self
    returns: str
    doc: Docstring
    calls: tuple[str, ...] = ()  # the client methods it calls, directly or through other hand-written methods

    @property
    def signature(self) -> str:
        return format_signature(self.name, self.params, self.returns)


@dataclass(frozen=True)
class Export:
    name: str
    module: str
    kind: str  # class | function | alias
    summary: str


@dataclass
class Handwritten:
    constructor: HandMethod | None = None
    methods: dict[str, HandMethod] = field(default_factory=dict)  # public name -> method, MRO order


def parse_docstring(text: str | None) -> Docstring:
    if not text:
        return Docstring()
    prose: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = line.strip().rstrip(":")
        if line.strip().endswith(":") and header in SECTIONS and not line.startswith(" "):
            current = sections.setdefault(header, [])
            continue
        if current is not None and (line.startswith(" ") or not line.strip()):
            current.append(line)
        else:
            current = None
            prose.append(line)
    paragraphs = [p.strip() for p in "\n".join(prose).strip().split("\n\n") if p.strip()]
    summary = " ".join(paragraphs[0].split()) if paragraphs else ""
    body = _unwrap("\n\n".join(paragraphs[1:]))
    return Docstring(
        summary=summary,
        body=body,
        args=_entries(sections.get("Args", [])),
        returns=" ".join(" ".join(sections.get("Returns", [])).split()),
        raises=_entries(sections.get("Raises", [])),
    )


def _entries(lines: list[str]) -> tuple[tuple[str, str], ...]:
    """`name: text` entries of a section, continuation lines (deeper indentation) joined to their entry."""
    entries: list[list[str]] = []
    base = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == base and ":" in line:
            name, _, text = line.strip().partition(":")
            entries.append([name.strip(), text.strip()])
        elif entries:
            entries[-1][1] += " " + line.strip()
    return tuple((name, text) for name, text in entries)


def _params(node: ast.FunctionDef) -> tuple[str, ...]:
    args = node.args
    out: list[str] = []

    def one(arg: ast.arg, default: ast.expr | None) -> str:
        text = arg.arg
        if arg.annotation is not None:
            text += f": {ast.unparse(arg.annotation)}"
            if default is not None:
                text += f" = {ast.unparse(default)}"
        elif default is not None:
            text += f"={ast.unparse(default)}"
        return text

    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        out.append(one(arg, default))
    if args.posonlyargs:
        out.insert(len(args.posonlyargs), "/")
    if args.vararg is not None:
        out.append("*" + one(args.vararg, None))
    elif args.kwonlyargs:
        out.append("*")
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out.append(one(arg, kw_default))
    if args.kwarg is not None:
        out.append("**" + one(args.kwarg, None))
    if out and out[0] in ("self", "cls"):
        out = out[1:]
    return tuple(out)


def _classes(source_dir: Path) -> dict[str, tuple[str, ast.ClassDef]]:
    """Class name -> (module name, definition) for every top-level class of the hand-written runtime."""
    found: dict[str, tuple[str, ast.ClassDef]] = {}
    for path in sorted(source_dir.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, (path.stem, node))
    return found


def _lineage(classes: dict[str, tuple[str, ast.ClassDef]], start: str) -> Iterator[tuple[str, ast.ClassDef]]:
    """`start` and its hand-written bases, depth first and left to right, each once (close to Python's MRO here)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop(0)
        if name in seen or name not in classes:
            continue
        seen.add(name)
        module, node = classes[name]
        yield module, node
        todo = [ast.unparse(b) for b in node.bases] + todo


def read_handwritten(source_dir: Path = HANDWRITTEN) -> Handwritten:
    out = Handwritten()
    classes = _classes(source_dir)
    functions = _functions(source_dir)
    for module, node in _lineage(classes, CLIENT_CLASS):
        for item in node.body:
            if not isinstance(item, ast.FunctionDef):
                continue
            if item.name == "__init__" and node.name == CLIENT_CLASS:
                out.constructor = HandMethod(
                    CLIENT_CLASS,
                    node.name,
                    f"ibkr_sdk.lib.{module}",
                    _params(item),
                    "",
                    parse_docstring(ast.get_docstring(node)),
                )
            if item.name.startswith("_") or item.name in out.methods:
                continue
            returns = ast.unparse(item.returns) if item.returns is not None else ""
            out.methods[item.name] = HandMethod(
                item.name,
                node.name,
                f"ibkr_sdk.lib.{module}",
                _params(item),
                returns,
                parse_docstring(ast.get_docstring(item)),
                _self_calls(item, functions),
            )
    for name, method in out.methods.items():  # through helpers: what each method ends up sending
        seen, todo = set(method.calls), list(method.calls)
        while todo:
            nested = out.methods.get(todo.pop())
            for callee in nested.calls if nested is not None else ():
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
        out.methods[name] = replace(method, calls=tuple(sorted(seen - {name})))
    return out


def _functions(source_dir: Path) -> dict[str, ast.FunctionDef]:
    """Every top-level function of the hand-written runtime by name: the flows the client methods run."""
    found: dict[str, ast.FunctionDef] = {}
    for path in sorted(source_dir.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                found.setdefault(node.name, node)
    return found


def _self_calls(
    node: ast.FunctionDef, functions: Mapping[str, ast.FunctionDef] | None = None, me: str = "self"
) -> tuple[str, ...]:
    """Names of the `self.<name>(...)` calls in a method, a leading underscore dropped (`_place_order` is the raw
    request of `place_order`), including those made by the flows it runs: a top-level function that receives
    `self` (e.g. `run(stock_conid_flow(self, ...))`) calls the client through its own parameter (`api.<name>`)."""
    functions = functions or {}
    names: set[str] = set()
    todo: list[tuple[ast.FunctionDef, str]] = [(node, me)]
    visited: set[tuple[str, str]] = set()
    while todo:
        current, alias = todo.pop()
        for call in ast.walk(current):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == alias:
                names.add(func.attr.lstrip("_"))
            elif isinstance(func, ast.Name) and func.id in functions:
                flow = functions[func.id]
                params = [a.arg for a in flow.args.posonlyargs + flow.args.args]
                for position, arg in enumerate(call.args[: len(params)]):
                    if isinstance(arg, ast.Name) and arg.id == alias and (flow.name, params[position]) not in visited:
                        visited.add((flow.name, params[position]))
                        todo.append((flow, params[position]))
    return tuple(sorted(names))


def read_exports(spec_dir: Path, source_dir: Path = HANDWRITTEN) -> list[Export]:
    """The names of spec/exports.yaml with what they are, from the hand-written source."""
    data = yaml.safe_load((Path(spec_dir) / "exports.yaml").read_text(encoding="utf-8"))
    exports: list[Export] = []
    sections = {**data["lib"], **(data.get("lazy") or {})}
    for module, names in sorted(sections.items()):
        path = source_dir / f"{module.replace('.', '/')}.py"
        if not path.exists():
            path = source_dir / module.replace(".", "/") / "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8")) if path.exists() else ast.Module(body=[], type_ignores=[])
        found: dict[str, tuple[str, str]] = {}
        body = tree.body
        for i, node in enumerate(body):
            if isinstance(node, ast.ClassDef):
                found[node.name] = ("class", parse_docstring(ast.get_docstring(node)).summary)
            elif isinstance(node, ast.FunctionDef):
                found[node.name] = ("function", parse_docstring(ast.get_docstring(node)).summary)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                following = body[i + 1] if i + 1 < len(body) else None
                if (
                    isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                ):
                    doc = parse_docstring(following.value.value).summary
                elif node.value is not None:
                    doc = f"`{ast.unparse(node.value)}`"
                else:
                    doc = ""
                for target in targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = ("alias", doc)
        for name in sorted(names):
            kind, summary = found.get(name, ("name", ""))
            exports.append(Export(name, f"ibkr_sdk.lib.{module}", kind, summary))
    return sorted(exports, key=lambda e: e.name.lower())


# --- text helpers for the templates ------------------------------------------------------------------------------


def format_signature(name: str, params: tuple[str, ...] | list[str], returns: str) -> str:
    tail = f" -> {returns}" if returns else ""
    one_line = f"{name}({', '.join(params)}){tail}"
    if len(one_line) <= SIGNATURE_WIDTH or not params:
        return one_line
    return f"{name}(\n" + "".join(f"    {p},\n" for p in params) + f"){tail}"


def _cell(text: Any) -> str:
    """Text made safe for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _per(seconds: float) -> str:
    if seconds == 1:
        return "second"
    if seconds == 60:
        return "minute"
    if seconds > 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def limit_text(bucket: Bucket) -> str:
    parts = []
    if bucket.rate is not None and bucket.per is not None:
        noun = "request" if bucket.rate == 1 else "requests"
        parts.append(f"{bucket.rate} {noun} per {_per(bucket.per)}")
    if bucket.concurrent is not None:
        parts.append(f"{bucket.concurrent} in flight")
    return ", ".join(parts) or "no limit"


def _type_text(p: Param) -> str:
    return p.annotation


def _default_text(p: Param) -> str:
    if p.required:
        return "required"
    if p.fill == "account_id":
        return "client's `account_id`"
    return f"`{p.default!r}`"


def _sent_as(p: Param) -> str:
    if p.wire == "*":
        return "the JSON body"
    return f"{p.location} `{p.wire}`"


def best_example(e: Endpoint) -> Example:
    """The example that shows the most parameters (the first of those)."""
    return max(e.examples, key=lambda ex: len(ex.call))


def example_call(e: Endpoint, ex: Example) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in ex.call.items())
    return f"client.{e.method_name}({args})"


def example_request(ex: Example) -> str:
    query = "&".join(f"{k}={v}" for k, v in ex.query.items())
    line = f"{ex.method} {ex.path}" + (f"?{query}" if query else "")
    if ex.body is not None:
        line += "\n" + json.dumps(ex.body, ensure_ascii=False)
    return line


def checks_text(e: Endpoint) -> str:
    """What the client checks before it sends a request of `e` (the reference's `checks` row)."""
    parts = ["each argument's type and meaning"]
    required = [p.name for p in e.params if p.required]
    if required:
        parts.append("required: " + ", ".join(f"`{n}`" for n in required))
    for p in e.params:
        if p.enum:
            parts.append(f"`{p.name}`: one of the listed values")
        if p.pattern:
            parts.append(f"`{p.name}`: its pattern")
        if p.minimum is not None and p.maximum is not None:
            parts.append(f"`{p.name}`: from {p.minimum} to {p.maximum}")
        elif p.minimum is not None:
            parts.append(f"`{p.name}`: at least {p.minimum}")
        elif p.maximum is not None:
            parts.append(f"`{p.name}`: at most {p.maximum}")
    if not e.params:
        return "no arguments to check"
    return "; ".join(parts) + ". A bad one raises `RequestValidationError` and nothing is sent"


@dataclass(frozen=True)
class SpecEntry:
    """Where an endpoint is declared: its catalogue file, the line of its `- name:` and its YAML text."""

    file: str
    line: int
    text: str


def spec_entries(cat: Catalogue, spec_dir: Path) -> dict[str, SpecEntry]:
    """Every endpoint entry of the catalogue's area files, by name, as written (comments and layout kept)."""
    out: dict[str, SpecEntry] = {}
    for path in sorted({Path(spec_dir) / Path(e.source_file).name for e in cat.endpoints}):
        lines = path.read_text(encoding="utf-8").splitlines()
        first = next(i for i, line in enumerate(lines) if line.lstrip().startswith("- name: "))
        indent = len(lines[first]) - len(lines[first].lstrip())  # the entries' own indentation in this file
        prefix = " " * indent + "- name: "
        starts = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else len(lines)
            body = lines[start:end]
            for k, line in enumerate(body[1:], 1):  # a top-level key after the last entry ends it
                shallow = len(line) - len(line.lstrip()) < indent + 2
                if line.strip() and shallow and not line.lstrip().startswith("#"):
                    body = body[:k]
                    break
            while body and not body[-1].strip():
                body.pop()
            name = lines[start].split(":", 1)[1].strip()
            text = "\n".join(line[indent:] if line.startswith(" " * indent) else line for line in body)
            out[name] = SpecEntry(f"spec/{path.name}", start + 1, text)
    return out


# --- rendering ---------------------------------------------------------------------------------------------------


def _context(cat: Catalogue, spec_dir: Path) -> dict[str, Any]:
    plan = plan_models(cat, spec_dir)
    hand = read_handwritten()
    endpoint_names = {e.name for e in cat.endpoints}
    overlays = [e for e in cat.endpoints if e.overlay]
    helpers = [m for name, m in sorted(hand.methods.items()) if name not in endpoint_names]
    buckets = {b.name: b for b in cat.buckets}
    users: dict[str, list[str]] = {}
    for e in cat.endpoints:
        if e.pacing:
            users.setdefault(e.pacing, []).append(e.name)
    return {
        "catalogue": cat,
        "response_models": {m.endpoint: m.qualname for m in plan.models},
        "hand": hand,
        "overlays": overlays,
        "helpers": helpers,
        "exports": read_exports(spec_dir),
        "buckets": buckets,
        "bucket_users": users,
        "area_dir": AREA_DIR,
        "endpoint_area": {e.name: e.area for e in cat.endpoints},
        "spec_entries": spec_entries(cat, spec_dir),
    }


def _environment() -> Any:
    env = environment()
    env.filters["cell"] = _cell
    env.filters["limit"] = limit_text
    env.filters["type_text"] = _type_text
    env.filters["default_text"] = _default_text
    env.filters["sent_as"] = _sent_as
    env.filters["unwrap"] = _unwrap
    env.globals["format_signature"] = format_signature
    env.globals["example_call"] = example_call
    env.globals["example_request"] = example_request
    env.globals["best_example"] = best_example
    env.globals["checks_text"] = checks_text
    return env


def render_docs_tree(cat: Catalogue, spec_dir: Path, dest: Path) -> list[str]:
    """Render `api-reference.md` and `api/<area>.md` into `dest`; return the relative paths written."""
    env = _environment()
    context = _context(cat, spec_dir)
    written = []
    text = env.get_template("docs/api-reference.md.j2").render(context)
    _write(dest / REFERENCE, text)
    written.append(REFERENCE)
    template = env.get_template("docs/api/%area.md.j2")
    for area in cat.areas:
        rel = f"{AREA_DIR}/{area.name}.md"
        _write(dest / rel, template.render(context, area=area))
        written.append(rel)
    streams = load_streams_if_present(spec_dir)
    if streams is not None:
        rel = f"{AREA_DIR}/streams.md"  # the WebSocket streams (spec/streams.yaml)
        _write(dest / rel, env.get_template("docs/api/streams.md.j2").render(streams=streams))
        written.append(rel)
    return written


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Markdown keeps no trailing spaces and ends with exactly one newline.
    lines = [line.rstrip() for line in text.splitlines()]
    cleaned = "\n".join(lines).strip("\n") + "\n"
    while "\n\n\n" in cleaned:
        cleaned = cleaned.replace("\n\n\n", "\n\n")
    path.write_text(cleaned, encoding="utf-8", newline="\n")


def render_docs(cat: Catalogue, out: Path, spec_dir: Path) -> list[str]:
    """Render into `out/` (docs/): replace `out/api/` and `out/api-reference.md`; leave other files alone."""
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ibkr-docs-") as tmp:
        written = render_docs_tree(cat, spec_dir, Path(tmp))
        out.mkdir(parents=True, exist_ok=True)
        replace_tree(Path(tmp) / AREA_DIR, out / AREA_DIR)
        shutil.copyfile(Path(tmp) / REFERENCE, out / REFERENCE)
    return written
