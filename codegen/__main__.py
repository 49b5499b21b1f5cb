"""`python -m codegen --spec spec --out generated` (or `--check-spec` to validate only).

`--docs DIR` also writes the API reference (DIR/api-reference.md, DIR/api/<area>.md, DIR/api/streams.md) and
`--openapi FILE` the OpenAPI 3.1 export, with the AsyncAPI export of spec/streams.yaml beside it (asyncapi.json).
The package is rendered when `--out` is given or when neither `--docs` nor `--openapi` is, so
`python -m codegen --spec spec --docs docs` writes the reference alone. `python -m codegen drift ...` compares a newer
IBKR document; `python -m codegen coverage` counts the catalogue against the pinned one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .load import CatalogueError, load_catalogue
from .streams import load_streams_if_present

ASYNCAPI_FILE = "asyncapi.json"  # written beside the OpenAPI export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codegen", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", type=Path, default=Path("spec"))
    parser.add_argument("--out", type=Path, default=None, help="where ibkr_sdk/ is rendered (default generated)")
    parser.add_argument("--docs", type=Path, default=None, help="also render the API reference into this directory")
    parser.add_argument("--openapi", type=Path, default=None, help="also write the OpenAPI 3.1 export to this file")
    parser.add_argument("--ts", type=Path, default=None, help="also render the TypeScript client into this directory")
    parser.add_argument("--check-spec", action="store_true", help="validate the catalogue and stop")
    if (sys.argv[1:] if argv is None else argv)[:1] == ["drift"]:
        from .drift import main as drift_main

        return drift_main((sys.argv[1:] if argv is None else argv)[1:])
    if (sys.argv[1:] if argv is None else argv)[:1] == ["coverage"]:
        from .coverage import main as coverage_main

        return coverage_main((sys.argv[1:] if argv is None else argv)[1:])
    args = parser.parse_args(argv)
    try:
        cat = load_catalogue(args.spec)
        streams = load_streams_if_present(args.spec)
    except CatalogueError as exc:
        print(f"invalid catalogue: {exc}", file=sys.stderr)
        return 1
    if args.check_spec:
        count = len(streams.streams) if streams is not None else 0
        print(f"catalogue ok: {len(cat.areas)} areas, {len(cat.endpoints)} endpoints, {count} streams")
        return 0
    out = args.out
    if out is None and args.docs is None and args.openapi is None and args.ts is None:
        out = Path("generated")
    if out is not None:
        from .render import render

        written = render(cat, out, args.spec)
        print(f"generated {len(written)} files from {len(cat.endpoints)} endpoints into {out}")
    if args.docs is not None:
        from .docs import render_docs

        pages = render_docs(cat, args.docs, args.spec)
        print(f"rendered the API reference ({len(pages)} pages) into {args.docs}")
    if args.openapi is not None:
        from .openapi_export import write

        write(cat, args.spec, args.openapi)
        print(f"wrote the OpenAPI 3.1 export of {len(cat.endpoints)} operations to {args.openapi}")
        from .asyncapi_export import write as write_asyncapi

        if streams is not None:
            target = write_asyncapi(streams, args.openapi.parent / ASYNCAPI_FILE)
            print(f"wrote the AsyncAPI export of {len(streams.streams)} streams to {target}")
    if args.ts is not None:
        from .ts import render_ts

        files = render_ts(cat, args.ts, args.spec)
        print(f"generated the TypeScript client ({len(files)} files) into {args.ts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
