"""The TypeScript generator: schema → type rendering, names, and what generated/ts/ holds."""

from __future__ import annotations

from pathlib import Path

from codegen.load import load_catalogue
from codegen.ts import declaration, schema_to_ts, ts_name

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "generated" / "ts"


def test_names_are_camel_case() -> None:
    assert ts_name("live_marketdata_snapshot") == "liveMarketdataSnapshot"
    assert ts_name("account_id") == "accountId"
    assert ts_name("conid") == "conid"


def test_schema_shapes() -> None:
    assert schema_to_ts({"type": "string", "enum": ["BUY", "SELL"]}) == '"BUY" | "SELL"'
    assert schema_to_ts({"type": "integer", "nullable": True}) == "number | null"
    assert schema_to_ts({"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "number"}]}}) == (
        "(string | number)[]"
    )
    assert schema_to_ts({"$ref": "#/components/schemas/Order"}) == "Order"
    assert schema_to_ts({"type": "object", "additionalProperties": {"type": "number"}}) == "Record<string, number>"
    assert schema_to_ts({"allOf": [{"$ref": "#/components/schemas/A"}, {"$ref": "#/components/schemas/B"}]}) == (
        "A & B"
    )
    assert schema_to_ts({}) == "unknown"


def test_object_declarations_keep_required_and_quote_odd_keys() -> None:
    schema = {
        "type": "object",
        "description": "An order.",
        "required": ["conid"],
        "properties": {"conid": {"type": "integer"}, "order-type": {"type": "string", "description": "Kind."}},
    }
    assert declaration("Order", schema) == (
        '/** An order. */\nexport interface Order {\n  conid: number;\n  /** Kind. */\n  "order-type"?: string;\n}\n'
    )
    assert declaration("Ids", {"type": "array", "items": {"type": "string"}}) == "export type Ids = string[];\n"


def test_every_endpoint_has_a_typed_method_and_every_file_its_header() -> None:
    cat = load_catalogue(ROOT / "spec")
    for area in cat.areas:
        text = (TS / "src" / f"{area.name}.ts").read_text(encoding="utf-8")
        for e in area.endpoints:
            assert f"\n  {ts_name(e.name)}(" in text, e.name
            assert f'name: "{e.name}",' in text
    for path in (TS / "src").rglob("*.ts"):
        head = path.read_text(encoding="utf-8").splitlines()[1]
        assert "Do not edit" in head, path


def test_no_generated_line_is_longer_than_120_columns() -> None:
    files = [p for p in TS.rglob("*") if p.is_file() and "node_modules" not in p.parts and "dist" not in p.parts]
    files += list((ROOT / "handwritten" / "ts").glob("*.ts"))
    long = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > 120
    ]
    assert long == []


def test_long_types_and_literals_are_laid_out_to_fit() -> None:
    from codegen.ts import fit_literal, fit_type

    members = " | ".join(f'"value_{i}"' for i in range(20))
    laid = fit_type(f"OneOrMany<{members}> | null", "  ", 12)
    assert all(len(line) <= 120 for line in laid.splitlines()) and laid.count("| ") == 22
    assert fit_type("string | number", "  ", 12) == "string | number"
    pattern = "a" * 200
    literal = fit_literal(pattern, "        ", 20)
    assert eval(literal.replace("\n", "").replace(" +", " + ")) == pattern  # noqa: S307 - JSON strings joined
    first, *rest = literal.splitlines()
    assert len(first) + 20 <= 120 and all(len(line) <= 120 for line in rest)


def test_npm_build_outputs_are_ignored_and_survive_generation() -> None:
    import json

    ignored = (TS / ".gitignore").read_text(encoding="utf-8").split()
    assert {"node_modules/", "dist/", "package-lock.json"} <= set(ignored)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "diff -r -x node_modules -x dist -x package-lock.json .gen-check/ts generated/ts" in makefile
    scripts = json.loads((TS / "package.json").read_text(encoding="utf-8"))["scripts"]
    assert scripts["prepack"] == "npm run build"


def test_generation_keeps_the_build_outputs(tmp_path: Path) -> None:
    from codegen.ts import replace_keeping_build_outputs

    out, fresh = tmp_path / "ts", tmp_path / "fresh"
    (out / "node_modules" / "typescript").mkdir(parents=True)
    (out / "dist").mkdir()
    (out / "dist" / "index.js").write_text("built", encoding="utf-8")
    (out / "stale.ts").write_text("gone", encoding="utf-8")
    (fresh / "src").mkdir(parents=True)
    (fresh / "src" / "index.ts").write_text("new", encoding="utf-8")
    replace_keeping_build_outputs(fresh, out)
    assert (out / "dist" / "index.js").read_text(encoding="utf-8") == "built"
    assert (out / "node_modules" / "typescript").is_dir()
    assert not (out / "stale.ts").exists() and (out / "src" / "index.ts").read_text(encoding="utf-8") == "new"
