"""`python -m codegen coverage`: the catalogue's operations counted against IBKR's pinned 2.29.0 document.

The document's operations fall into three parts by path: the trading API (`/v1/api`, listed without a prefix), the
Account Management API (`/gw/api/v1`) and the OAuth 2.0 token endpoint (`/oauth2/api/v1/token`, sent by the
client's OAuth 2.0 layer rather than a catalogue method). Catalogue endpoints without an operation in the document
are the peer library's (`origin: seed` / `peer`, e.g. from the legacy Swagger document). Exit status 1 when an
operation of the trading or Account Management part is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .load import OFFICIAL_DOC, CatalogueError, load_catalogue
from .model import Catalogue

PARTS = (
    ("trading", "trading API (/v1/api)"),
    ("account_management", "Account Management (/gw/api/v1)"),
    ("token", "OAuth 2.0 token (/oauth2/api/v1)"),
)


def part_of(path: str) -> str:
    if path.startswith("/gw/"):
        return "account_management"
    if path.startswith("/oauth2/"):
        return "token"
    return "trading"


@dataclass(frozen=True)
class Coverage:
    version: str
    document: dict[str, dict[str, str]]  # part -> operationId -> "METHOD /path"
    catalogued: dict[str, set[str]]  # part -> operationIds with a catalogue endpoint
    beyond: tuple[str, ...]  # catalogue endpoints without an operation in the document
    endpoints: int

    def missing(self, part: str) -> list[str]:
        return sorted(set(self.document[part]) - self.catalogued[part])

    @property
    def complete(self) -> bool:
        return not self.missing("trading") and not self.missing("account_management")


def coverage(cat: Catalogue, spec_dir: Path) -> Coverage:
    doc = json.loads((spec_dir / OFFICIAL_DOC).read_text(encoding="utf-8"))
    document: dict[str, dict[str, str]] = {name: {} for name, _ in PARTS}
    for route, ops in doc["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and "operationId" in op:
                document[part_of(route)][op["operationId"]] = f"{method.upper()} {route}"
    ours = {e.openapi for e in cat.endpoints if e.openapi}
    catalogued = {name: set(document[name]) & ours for name, _ in PARTS}
    beyond = tuple(sorted(e.name for e in cat.endpoints if not e.openapi))
    return Coverage(doc["info"]["version"], document, catalogued, beyond, len(cat.endpoints))


def report(cov: Coverage) -> str:
    total = sum(len(ops) for ops in cov.document.values())
    lines = [f"IBKR Web API {cov.version} (spec/{OFFICIAL_DOC}): {total} operations"]
    for name, label in PARTS:
        have, of = len(cov.catalogued[name]), len(cov.document[name])
        line = f"  {label + ':':<36} {have:>3} of {of:>3} catalogued"
        if name == "token":
            line += " (sent by the OAuth 2.0 layer, not a catalogue method)"
        lines.append(line)
        for op in cov.missing(name) if name != "token" else ():
            lines.append(f"    missing: {op} ({cov.document[name][op]})")
    in_doc = sum(len(c) for c in cov.catalogued.values())
    lines.append(
        f"catalogue: {cov.endpoints} endpoint methods = {in_doc} operations of the document"
        f" + {len(cov.beyond)} of the peer library beyond it"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen coverage", description=__doc__)
    parser.add_argument("--spec", type=Path, default=Path("spec"))
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    try:
        cov = coverage(load_catalogue(args.spec), args.spec)
    except CatalogueError as exc:
        print(f"invalid catalogue: {exc}", file=sys.stderr)
        return 1
    if args.json:
        counts = {
            name: {"catalogued": len(cov.catalogued[name]), "document": len(cov.document[name])} for name, _ in PARTS
        }
        print(json.dumps({"version": cov.version, "parts": counts, "beyond": list(cov.beyond)}, indent=2))
    else:
        print(report(cov))
    return 0 if cov.complete else 1
