"""Record the public surface of an installed ibind (names, signatures, defaults, OrderRequest fields, QuestionType
members, snapshot field names) as JSON, for tests/test_ibind_compat.py.

Run once, in a throwaway virtual environment outside the repository where the peer is installed:

    python -m venv /tmp/peer && /tmp/peer/bin/pip install ibind==0.2.2
    /tmp/peer/bin/python tests/tools/extract_peer_surface.py > tests/data/ibind_0_2_2_surface.json

Only names, parameter lists, default expressions (as source text) and enum/table values are recorded: facts about
the interface, not its implementation.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import json
import sys
import textwrap
from typing import Any


def _defaults_as_text(func: Any) -> dict[str, str]:
    """Default expressions as written (e.g. `var.IBIND_ACCOUNT_ID`), which the evaluated values would hide."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return {}
    node = tree.body[0]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return {}
    args = node.args
    out: dict[str, str] = {}
    positional = args.posonlyargs + args.args
    for arg, default in zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True):
        out[arg.arg] = ast.unparse(default)
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if default is not None:
            out[arg.arg] = ast.unparse(default)
    return out


def signature(func: Any) -> list[dict[str, str]]:
    texts = _defaults_as_text(func)
    params = []
    for p in inspect.signature(func).parameters.values():
        if p.name == "self":
            continue
        entry = {"name": p.name, "kind": p.kind.name}
        if p.default is not inspect.Parameter.empty:
            entry["default"] = texts.get(p.name, repr(p.default))
        params.append(entry)
    return params


def main() -> None:
    import ibind
    from ibind.client import ibkr_definitions

    out: dict[str, Any] = {
        "_about": "Public surface of ibind " + getattr(ibind, "__version__", "0.2.2") + ", recorded by "
        "tests/tools/extract_peer_surface.py from the installed distribution. Names and signatures only.",
        "top_level": {},
        "client_methods": {},
        "order_request_fields": [],
        "question_types": {},
        "question_type_message_ids": {},
        "snapshot_fields": {},
        "errors": {},
    }
    for name in ibind.__all__:
        obj = getattr(ibind, name)
        if inspect.ismodule(obj):
            kind = "module"
        elif inspect.isclass(obj):
            kind = "class"
        elif callable(obj) and inspect.isfunction(obj):
            kind = "function"
        else:
            kind = "alias"
        entry: dict[str, Any] = {"kind": kind}
        if kind == "function":
            entry["params"] = signature(obj)
        out["top_level"][name] = entry

    client = ibind.IbkrClient
    for name, member in inspect.getmembers(client):
        if name.startswith("_") and name != "__init__":
            continue
        if inspect.isfunction(member):
            out["client_methods"][name] = signature(member)

    for f in dataclasses.fields(ibind.OrderRequest):
        entry = {"name": f.name}
        if f.default is not dataclasses.MISSING:
            entry["default"] = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            entry["default_factory"] = repr(f.default_factory)
        out["order_request_fields"].append(entry)

    qt = ibind.QuestionType
    out["question_types"] = {m.name: m.value for m in qt}
    out["question_type_is_str"] = issubclass(qt, str) and issubclass(qt, enum.Enum)
    for m in qt:
        try:
            out["question_type_message_ids"][m.name] = ibind.question_type_to_message_id(m)
        except ValueError:
            out["question_type_message_ids"][m.name] = None

    out["snapshot_fields"] = dict(ibkr_definitions.snapshot_by_key)

    err = ibind.ExternalBrokerError
    out["errors"]["ExternalBrokerError"] = {
        "bases": [b.__name__ for b in err.__mro__[1:]],
        "init": signature(err.__init__),
    }
    out["result_fields"] = [f.name for f in dataclasses.fields(ibind.Result)]
    out["stock_query_fields"] = [
        {"name": f.name, **({"default": repr(f.default)} if f.default is not dataclasses.MISSING else {})}
        for f in dataclasses.fields(ibind.StockQuery)
    ]
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
