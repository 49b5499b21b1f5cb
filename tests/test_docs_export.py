"""The generated API reference (docs/) and the OpenAPI 3.1 export (docs/openapi.json)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from codegen import openapi_export
from codegen.docs import render_docs
from ibkr_sdk.models import RESPONSE_MODELS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OPENAPI = DOCS / "openapi.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return data


def _files(root: Path) -> dict[str, bytes]:
    names = ["api-reference.md", "openapi.json"] + [f"api/{p.name}" for p in sorted((root / "api").glob("*"))]
    return {name: (root / name).read_bytes() for name in names}


# --- the OpenAPI export -------------------------------------------------------------------------------------------


def test_export_is_a_valid_openapi_31_document(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # openapi-spec-validator picks the 3.1 validator from the version field


def test_operations_match_the_catalogue_one_to_one(document: dict[str, Any], catalogue: Any) -> None:
    exported = openapi_export.operations(document)
    assert len(exported) == len(catalogue.endpoints)
    assert exported == {e.name: (e.http, e.path) for e in catalogue.endpoints}
    assert sorted(t["name"] for t in document["tags"]) == sorted(a.name for a in catalogue.areas)


def test_parameters_and_bodies_follow_the_catalogue(document: dict[str, Any], catalogue: Any) -> None:
    for e in catalogue.endpoints:
        op = document["paths"][e.path][e.http.lower()]
        sent = {(p["in"], p["name"]) for p in op.get("parameters", []) if not p["x-ibkr-sdk"].get("fixed")}
        assert sent == {(p.location, p.wire) for p in e.params if p.location in ("path", "query")}, e.name
        fixed = {p["name"] for p in op.get("parameters", []) if p["x-ibkr-sdk"].get("fixed")}
        assert fixed == set(e.fixed_query), e.name
        for p in op.get("parameters", []):
            if p["in"] == "path":
                assert p["required"] is True
            elif not p["x-ibkr-sdk"].get("fixed"):
                param = next(q for q in e.params if q.wire == p["name"] and q.location == p["in"])
                assert p["required"] is param.required and p["x-ibkr-sdk"]["name"] == param.name
        body = [p for p in e.params if p.location == "body"]
        assert ("requestBody" in op) == bool(body or e.fixed_body is not None), e.name
        if body and all(p.wire != "*" for p in body):
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert set(schema["properties"]) == {p.wire for p in body} | set(e.fixed_body or {})
            assert set(schema.get("required", [])) >= {p.wire for p in body if p.required}
        ext = op["x-ibkr-sdk"]
        assert (ext["method"], ext["retry"], ext.get("pacing", {}).get("bucket")) == (e.name, e.retry, e.pacing)


def test_response_schemas_are_the_models_of_the_sdk(document: dict[str, Any], catalogue: Any) -> None:
    schemas = document["components"]["schemas"]
    for e in catalogue.endpoints:
        ok = document["paths"][e.path][e.http.lower()]["responses"]["200"]
        if e.name == "delete_fyi_device":  # IBKR documents "an empty string with a 200 OK": no body
            assert "content" not in ok
            continue
        schema = ok["content"]["application/json"]["schema"]
        if e.name in RESPONSE_MODELS:
            _, class_name = RESPONSE_MODELS[e.name]
            assert schema == {"$ref": f"#/components/schemas/{class_name}"}, e.name
        else:
            assert schema == {}, e.name
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs <= set(schemas), f"dangling references: {sorted(refs - set(schemas))}"
    assert set(schemas) <= refs | {c for _, c in RESPONSE_MODELS.values()}, "every schema is used"
    assert "nullable" not in json.dumps(schemas), "OpenAPI 3.0's nullable is converted to 3.1"


def test_schema_conversion_to_31() -> None:
    convert = openapi_export.schema_31
    assert convert({"type": "string", "nullable": True, "example": "x", "default": "y"}) == {
        "type": ["string", "null"],
        "examples": ["x"],
    }
    assert convert({"allOf": [{"$ref": "#/a"}], "nullable": True}) == {
        "anyOf": [{"allOf": [{"$ref": "#/a"}]}, {"type": "null"}]
    }
    # Property names are names, not keywords.
    assert convert({"properties": {"default": {"type": "integer"}, "nullable": {"type": "boolean"}}}) == {
        "properties": {"default": {"type": "integer"}, "nullable": {"type": "boolean"}}
    }


# --- the API reference --------------------------------------------------------------------------------------------


def test_every_method_is_documented_with_its_facts(catalogue: Any) -> None:
    index = (DOCS / "api-reference.md").read_text(encoding="utf-8")
    for area in catalogue.areas:
        page = (DOCS / "api" / f"{area.name}.md").read_text(encoding="utf-8")
        assert f"](api/{area.name}.md)" in index
        for e in area.endpoints:
            assert f"[`{e.name}`](api/{area.name}.md#{e.name})" in index, e.name
            section = page.split(f"\n## `{e.name}`\n", 1)[1].split("\n## `", 1)[0]
            assert f"| endpoint | `{e.http} {e.full_path if e.security else e.path}` |" in section
            if e.security:
                assert f"| OAuth 2.0 | security policy `{e.security}`" in section
            assert ("| retry | safe:" if e.retry == "safe" else "| retry | unsafe:") in section
            if e.pacing:
                assert f"| pacing | `{e.pacing}` bucket:" in section
            if e.name in RESPONSE_MODELS:
                area_name, class_name = RESPONSE_MODELS[e.name]
                assert f"`ibkr_sdk.models.{area_name}.{class_name}`" in section
            else:
                assert "| response model | none" in section
            for p in e.params:
                assert f"| `{p.name}` |" in section, (e.name, p.name)


def test_hand_written_methods_and_exports_are_listed(catalogue: Any) -> None:
    import yaml

    from ibkr_sdk import IbkrClient

    index = (DOCS / "api-reference.md").read_text(encoding="utf-8")
    for e in catalogue.endpoints:
        if e.overlay:
            page = (DOCS / "api" / f"{e.area}.md").read_text(encoding="utf-8")
            section = page.split(f"\n## `{e.name}`\n", 1)[1].split("\n## `", 1)[0]
            if hasattr(IbkrClient, e.name):
                assert "**Hand-written method**" in section and f"{e.method_name}(" in section
            else:
                assert "No public method" in section
    names = {e.name for e in catalogue.endpoints}
    helpers = [n for n in dir(IbkrClient) if not n.startswith("_") and n not in names]
    for name in helpers:
        if callable(getattr(IbkrClient, name)):
            assert f"### `{name}`" in index, name
    exports = yaml.safe_load((ROOT / "spec" / "exports.yaml").read_text())["lib"]
    for module, exported in exports.items():
        for name in exported:
            assert f"| `{name}` |" in index and f"`ibkr_sdk.lib.{module}`" in index


def test_every_method_shows_its_checks_and_its_catalogue_entry(catalogue) -> None:  # type: ignore[no-untyped-def]
    for e in catalogue.endpoints:
        page = (DOCS / "api" / f"{e.area}.md").read_text(encoding="utf-8")
        section = page.split(f"\n## `{e.name}`\n", 1)[1].split("\n## `", 1)[0]
        assert "| checks | " in section and "| pacing | " in section and "| retry | " in section, e.name
        assert "| response model | " in section, e.name
        entry = re.search(rf"\| catalogue entry \| \[`{e.source_file}`, line (\d+)\]\(#spec-{e.name}\) \|", section)
        assert entry is not None, e.name
        line = (ROOT / e.source_file).read_text(encoding="utf-8").splitlines()[int(entry.group(1)) - 1]
        assert line.strip() == f"- name: {e.name}", e.name  # the line named is the entry's first
        assert f'<details id="spec-{e.name}"' in section and f"```yaml\n- name: {e.name}\n" in section
        for p in e.params:
            if p.required:
                assert f"`{p.name}`" in section.split("| checks | ", 1)[1].split("\n", 1)[0], (e.name, p.name)


def test_links_between_pages_resolve() -> None:
    pages = [DOCS / "api-reference.md", *sorted((DOCS / "api").glob("*.md"))]
    anchors = {
        page.resolve(): set(re.findall(r"^#{2,3} `([a-z0-9_]+)`$", page.read_text(encoding="utf-8"), re.MULTILINE))
        | set(re.findall(r'<details id="([a-z0-9_-]+)"', page.read_text(encoding="utf-8")))
        for page in pages
    }
    for page in pages:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            file_part, _, anchor = target.partition("#")
            path = (page.parent / file_part).resolve() if file_part else page.resolve()
            assert path.exists(), f"{page.name}: broken link {target}"
            if anchor:
                assert anchor in anchors[path], f"{page.name}: no anchor {target}"


# --- generation ---------------------------------------------------------------------------------------------------


def test_committed_docs_are_deterministic_and_up_to_date(tmp_path: Path) -> None:
    outputs = []
    for seed in ("0", "1"):
        out = tmp_path / f"run{seed}"
        command = ["-m", "codegen", "--spec", "spec", "--docs", str(out), "--openapi", str(out / "openapi.json")]
        subprocess.run(
            [sys.executable, *command],
            cwd=ROOT,
            env=dict(os.environ, PYTHONHASHSEED=seed),
            check=True,
            capture_output=True,
            timeout=600,
        )
        assert not (out / "ibkr_sdk").exists(), "--docs/--openapi alone do not render the package"
        outputs.append(_files(out))
    assert outputs[0] == outputs[1]
    committed = _files(DOCS)
    stale = sorted(set(outputs[0]) ^ set(committed) | {n for n in outputs[0] if outputs[0][n] != committed.get(n)})
    assert not stale, f"docs/ is stale ({stale}): run `make generate`"


def test_render_docs_replaces_its_own_files_only(tmp_path: Path, catalogue: Any) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "removed_area.md").write_text("stale")
    (tmp_path / "guide.md").write_text("hand-written")
    render_docs(catalogue, tmp_path, ROOT / "spec")
    assert not (tmp_path / "api" / "removed_area.md").exists()
    assert (tmp_path / "guide.md").read_text() == "hand-written"
    assert (tmp_path / "api-reference.md").exists()


def test_optional_properties_accept_null_and_enums_stay_open(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    # null where the gateway and the simulator send it for a value they do not have
    assert "null" in schemas["ContractInfo"]["properties"]["expiry_full"]["type"]
    assert schemas["OrderCancelSuccess"]["properties"]["account"]["type"] == ["string", "null"]  # conduit-cancel-order
    # known values listed, any other string accepted (businessType INDEPENDENT of the recorded answers)
    business = schemas["AccountAttributes"]["properties"]["businessType"]["anyOf"]
    assert {"type": "string", "enum": ["IB_SALES", "IB_PROSERVE"]} in business and {"type": "string"} in business
    # no oneOf: IBKR's alternatives overlap, so a valid answer could match two of them
    assert '"oneOf"' not in json.dumps(document)
    assert schemas["OrderSubmitError"]["required"] == ["error"]
