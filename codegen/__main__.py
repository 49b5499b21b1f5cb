"""`python -m codegen --spec spec --out generated` (or `--check-spec` to validate only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .load import CatalogueError, load_catalogue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    parser.add_argument("--spec", type=Path, default=Path("spec"))
    parser.add_argument("--out", type=Path, default=Path("generated"))
    parser.add_argument("--check-spec", action="store_true", help="validate the catalogue and stop")
    args = parser.parse_args(argv)
    try:
        cat = load_catalogue(args.spec)
    except CatalogueError as exc:
        print(f"invalid catalogue: {exc}", file=sys.stderr)
        return 1
    if args.check_spec:
        print(f"catalogue ok: {len(cat.areas)} areas, {len(cat.endpoints)} endpoints")
        return 0
    from .render import render

    written = render(cat, args.out, args.spec)
    print(f"generated {len(written)} files from {len(cat.endpoints)} endpoints into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
