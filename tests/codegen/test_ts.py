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
