"""Render the catalogue through the Jinja2 templates into `<out>/ibkr_sdk/`.

The template tree mirrors the output tree: `templates/ibkr_sdk/_endpoints/%area.py.j2` becomes one module per
area. Output is deterministic (sorted inputs, no timestamps) and formatted by the pinned ruff. Files the generator
no longer produces are removed, because it rewrites the whole `ibkr_sdk/` tree.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import jinja2
import yaml

from .model import Catalogue, Param
from .models import datamodel_version, plan_models, write_models
from .streams import load_streams_if_present

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
PACKAGE = "ibkr_sdk"
STREAMS_TEMPLATE = "_streams.py.j2"


def _pyrepr(value: Any) -> str:
    if isinstance(value, list):
        value = tuple(value)
    return repr(value)


def _docstring(text: str) -> str:
    """Make text safe inside a triple-quoted docstring."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _wrap(text: str, width: int) -> str:
    paragraphs = [p for p in text.split("\n\n")]
    out = []
    for para in paragraphs:
        lines = para.splitlines()
        # Keep bullet lists and code as written; re-flow plain prose.
        if any(line.lstrip().startswith(("- ", "* ", "```", "|")) for line in lines):
            out.append("\n".join(line.rstrip() for line in lines))
        else:
            out.append(
                textwrap.fill(" ".join(para.split()), width=width, break_long_words=False, break_on_hyphens=False)
            )
    return "\n\n".join(out)


STRING_CHUNK = 88  # characters of text per string literal, so that no generated line exceeds ruff's 120 columns


def _unwrap(text: str) -> str:
    """Join the lines of each prose paragraph (a reader re-wraps them); lists, code and tables keep their lines."""
    out = []
    for para in str(text).strip().split("\n\n"):
        lines = para.splitlines()
        if any(line.lstrip().startswith(("- ", "* ", "```", "|")) for line in lines):
            out.append("\n".join(line.rstrip() for line in lines))
        else:
            out.append(" ".join(para.split()))
    return "\n\n".join(out)


def _pystr(text: str, room: int = STRING_CHUNK) -> str:
    """A Python expression for `text` that fits in `room` columns: one literal, or literals joined implicitly.

    Parts end after a newline or, within a long line, after a space; ruff then lays them out (and joins the parts
    again where the whole fits).
    """
    text = str(text)
    if len(repr(text)) <= room:
        return repr(text)
    size = STRING_CHUNK if len(text) > STRING_CHUNK else len(text) // 2 + 1
    parts: list[str] = []
    for line in text.splitlines(keepends=True):
        while len(line) > size:
            cut = line.rfind(" ", 0, size)
            if cut <= 0:
                cut = line.find(" ", size)
            if cut <= 0:
                break
            parts.append(line[: cut + 1])
            line = line[cut + 1 :]
        parts.append(line)
    if len(parts) == 1:
        return repr(parts[0])
    return "(" + " ".join(repr(part) for part in parts) + ")"


def _arg_doc(p: Param, width: int = 120 - 12) -> str:
    """`name: text` for an Args section, wrapped to fit at 12 spaces of indentation, continuation indented."""
    text = _docstring(p.doc_line)
    return textwrap.fill(
        f"{p.name}: {' '.join(text.split())}",
        width=width,
        subsequent_indent="    ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["pyrepr"] = _pyrepr
    env.filters["pyjson"] = repr  # a JSON-like dict as a Python literal
    env.filters["docstring"] = _docstring
    env.filters["wrap"] = _wrap
    env.filters["arg_doc"] = _arg_doc
    env.filters["pystr"] = _pystr
    env.filters["unwrap"] = _unwrap
    return env


def _project_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("pyproject.toml has no project version")
    return match.group(1)


def _exports(spec_dir: Path, section: str = "lib") -> list[tuple[str, list[str]]]:
    data = yaml.safe_load((spec_dir / "exports.yaml").read_text(encoding="utf-8"))
    return [(module, sorted(names)) for module, names in sorted((data.get(section) or {}).items())]


def _submodules(spec_dir: Path) -> list[tuple[str, str]]:
    """`modules:` of exports.yaml: package submodules (`ibkr_sdk.events`) that re-export a hand-written module."""
    data = yaml.safe_load((spec_dir / "exports.yaml").read_text(encoding="utf-8"))
    return sorted((data.get("modules") or {}).items())


def _peer_modules(spec_dir: Path) -> list[tuple[str, list[str] | dict[str, Any]]]:
    """`peer_modules:` of exports.yaml: the peer's dotted module names, each with the top-level names it re-exports
    or `{module: <the hand-written module it is>, types: [<what type checkers see in it>]}`."""
    data = yaml.safe_load((spec_dir / "exports.yaml").read_text(encoding="utf-8"))
    return sorted((data.get("peer_modules") or {}).items())


def render_tree(cat: Catalogue, spec_dir: Path, dest: Path) -> list[str]:
    """Render every template into `dest` (a directory that will hold `ibkr_sdk/`); return relative paths."""
    env = environment()
    exports = _exports(spec_dir)
    lazy_exports = _exports(spec_dir, "lazy")
    submodules = _submodules(spec_dir)
    models = plan_models(cat, spec_dir)
    context: dict[str, Any] = {
        "catalogue": cat,
        "exports": exports,
        "lazy_exports": lazy_exports,
        "submodules": submodules,
        "all_names": sorted(n for _, names in exports + lazy_exports for n in names),
        "version": _project_version(),
        "models": models,
        "response_models": {m.endpoint: m.qualname for m in models.models},
        "streams": load_streams_if_present(spec_dir),
    }
    written: list[str] = []
    for template_path in sorted(TEMPLATES.rglob("*.j2")):
        rel = template_path.relative_to(TEMPLATES)
        if rel.parts[0] != PACKAGE:
            continue  # macro files are imported by templates; docs/ is rendered by codegen/docs.py
        if rel.name == STREAMS_TEMPLATE and context["streams"] is None:
            continue  # a catalogue without spec/streams.yaml has no stream table
        template = env.get_template(rel.as_posix())
        target_rel = rel.as_posix()[: -len(".j2")]
        if "%area" in target_rel:
            for area in cat.areas:
                out_rel = target_rel.replace("%area", area.name)
                _write(dest / out_rel, template.render(context, area=area))
                written.append(out_rel)
        else:
            _write(dest / target_rel, template.render(context))
            written.append(target_rel)
    shim = env.get_template("_shims/submodule.py.j2")
    for name, target in submodules:
        _write(dest / PACKAGE / f"{name}.py", shim.render(context, name=name, target=target))
        written.append(f"{PACKAGE}/{name}.py")
    peer_packages: set[str] = set()
    for name, what in _peer_modules(spec_dir):
        package, _, module = name.rpartition(".")
        peer_packages.add(package)
        template = env.get_template("_shims/peer_alias.py.j2" if isinstance(what, dict) else "_shims/peer_names.py.j2")
        out_rel = f"{PACKAGE}/{package.replace('.', '/')}/{module}.py"
        types = what.get("types", []) if isinstance(what, dict) else []
        type_modules = [t for t in types if "." not in t]  # e.g. `requests`: `import requests as requests`
        type_names = [tuple(t.rsplit(".", 1)) for t in types if "." in t]  # `from a.b import C as C`
        page = template.render(context, name=name, what=what, type_modules=type_modules, type_names=type_names)
        _write(dest / out_rel, page)
        written.append(out_rel)
    package_init = env.get_template("_shims/peer_package.py.j2")
    for package in sorted(peer_packages):
        out_rel = f"{PACKAGE}/{package.replace('.', '/')}/__init__.py"
        _write(dest / out_rel, package_init.render(context, package=package))
        written.append(out_rel)
    _write(dest / PACKAGE / "py.typed", "")
    written.append(f"{PACKAGE}/py.typed")
    written += write_models(cat, models, dest)  # ibkr_sdk/models/<area>.py, by datamodel-code-generator
    _format(dest)
    stats = {
        "areas": len(cat.areas),
        "endpoints": len(cat.endpoints),
        "spec_sha256": cat.spec_sha256,
        "generator": "codegen (this repository)",
        "jinja2": jinja2.__version__,
        "ruff": _ruff_version(),
        "datamodel-code-generator": datamodel_version(),
        "response_models": len(models.models),
        "models_input_sha256": models.inputs_sha256,
    }
    _write(dest / PACKAGE / "_codegen_stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    written.append(f"{PACKAGE}/_codegen_stats.json")
    manifest_rel = f"{PACKAGE}/_manifest.txt"
    written.append(manifest_rel)
    written.sort()
    _write(
        dest / manifest_rel,
        "# Files written by codegen (`make generate`); anything else under generated/ is removed.\n"
        + "\n".join(written)
        + "\n",
    )
    return written


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], capture_output=True, text=True, check=False)


def _ruff_version() -> str:
    proc = _ruff("--version")
    return proc.stdout.strip() or "unknown"


def _format(dest: Path) -> None:
    config = str(ROOT / "pyproject.toml")
    proc = _ruff("format", "--config", config, "--quiet", str(dest))
    if proc.returncode != 0:
        raise RuntimeError(f"ruff format failed on generated code:\n{proc.stdout}{proc.stderr}")


def replace_tree(source: Path, target: Path) -> None:
    """Make `target` an exact copy of the directory `source` (files the generator no longer writes disappear)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def render(cat: Catalogue, out: Path, spec_dir: Path) -> list[str]:
    """Render into `out/ibkr_sdk/`, replacing what is there."""
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ibkr-codegen-") as tmp:
        written = render_tree(cat, spec_dir, Path(tmp))
        replace_tree(Path(tmp) / PACKAGE, out / PACKAGE)
    return written
