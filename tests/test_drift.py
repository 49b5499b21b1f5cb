"""`python -m codegen drift`: real history (legacy Swagger 2.0 → 2.29.0) and synthetic edits of the pinned document,
each of which must be reported exactly, with the catalogue entries and fixes it touches."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codegen.drift import Change, Drift, drift, main, read_document, report, swagger2_to_openapi3
from codegen.load import load_catalogue
from codegen.models import load_fixes

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec"
PINNED = SPEC / "openapi" / "ibkr-web-api-2.29.0.openapi3.json"
LEGACY = SPEC / "openapi" / "cpapi-v1-doc.swagger2.json"
CATALOGUE = load_catalogue(SPEC)
FIXES = load_fixes(SPEC)


@pytest.fixture(scope="module")
def pinned() -> dict[str, Any]:
    return read_document(PINNED)


@pytest.fixture(scope="module")
def history_drift() -> Drift:
    """What changed from the legacy Swagger 2.0 document to the 2.29.0 OpenAPI document."""
    return drift(CATALOGUE, read_document(LEGACY), read_document(PINNED), FIXES)


@pytest.fixture(scope="module")
def history(history_drift: Drift) -> list[Change]:
    return history_drift.changes


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(doc))  # much faster than deepcopy on a 2 MB document
    return copied


def _drift(pinned: dict[str, Any], edited: dict[str, Any]) -> list[Change]:
    return drift(CATALOGUE, pinned, edited, FIXES).changes


def _find(changes: list[Change], kind: str, route: str, subject: str | None = None) -> Change:
    found = [c for c in changes if c.kind == kind and c.route == route and (subject is None or c.subject == subject)]
    assert len(found) == 1, f"{kind} {route} {subject}: {found}"
    return found[0]


def test_the_pinned_document_has_not_drifted_from_itself(pinned: dict[str, Any]) -> None:
    assert _drift(pinned, _copy(pinned)) == []


def test_swagger2_conversion_keeps_operations_parameters_and_bodies() -> None:
    legacy = json.loads(LEGACY.read_text(encoding="utf-8"))
    doc = swagger2_to_openapi3(legacy)
    assert doc["openapi"].startswith("3") and "#/definitions/" not in json.dumps(doc)
    count = sum(len([m for m in ops if m in ("get", "post", "put", "delete")]) for ops in legacy["paths"].values())
    assert sum(len(ops) for ops in doc["paths"].values()) == count
    order = doc["paths"]["/iserver/account/{accountId}/orders"]["post"]
    assert "application/json" in order["requestBody"]["content"]
    assert {p["in"] for p in order["parameters"]} == {"path"}


def test_history_operations_only_in_one_document(history: list[Change], history_drift: Drift) -> None:
    added = _find(history, "operation-added", "GET /iserver/account/{accountId}/summary")
    assert added.new == "getAccountSummary"
    assert added.area == "accounts" and added.endpoints == ["spec/accounts.yaml: account_summary"]
    removed = _find(history, "operation-removed", "GET /hmds/history")
    assert removed.endpoints == ["spec/marketdata.yaml: historical_marketdata_beta"]
    gone_ccp = {c.route for c in history if c.kind == "operation-removed" and c.route.split()[1].startswith("/ccp/")}
    assert {"GET /ccp/account", "GET /ccp/orders", "GET /ccp/positions", "GET /ccp/status"} <= gone_ccp
    summary = history_drift.summary
    assert summary["operation-added"] > 90 and summary["operation-removed"] > 20


def test_history_parameters_renamed_retyped_and_enums(history: list[Change]) -> None:
    devicename = [c for c in history if c.kind == "parameter-renamed" and c.old == "devicename"]
    assert len(devicename) == 1 and devicename[0].new == "deviceName"
    positions = [c for c in history if c.kind == "parameter-renamed" and c.params == ["positions_by_conid.account_id"]]
    assert len(positions) == 1 and (positions[0].old, positions[0].new) == ("accountId", "accountid")
    fields = _find(history, "enum-changed", "GET /iserver/marketdata/snapshot", "query parameter fields")
    assert fields.params == ["live_marketdata_snapshot.fields"] and "31" in json.dumps(fields.new)


def test_history_response_changes_name_the_fixes_they_touch(history: list[Change]) -> None:
    aliases = _find(history, "response-field-added", "GET /iserver/accounts", "response field aliases.U1234567")
    assert aliases.fixes == ["sample-keys-are-maps"]
    assert aliases.endpoints == ["spec/accounts.yaml: receive_brokerage_accounts"]
    # A parent that appears reports once, not once per nested field.
    assert not [c for c in history if c.subject == "response field groups[]" and c.route == "GET /iserver/accounts"]


def test_an_added_operation_is_reported_alone(pinned: dict[str, Any]) -> None:
    edited = _copy(pinned)
    edited["paths"]["/iserver/brand/new"] = {"get": {"operationId": "getBrandNew", "responses": {}}}
    (change,) = _drift(pinned, edited)
    assert (change.kind, change.route, change.new) == ("operation-added", "GET /iserver/brand/new", "getBrandNew")
    assert change.endpoints == [] and change.area == "(not in the catalogue)"


def test_a_removed_parameter_is_reported_alone(pinned: dict[str, Any]) -> None:
    edited = _copy(pinned)
    op = edited["paths"]["/iserver/marketdata/history"]["get"]
    op["parameters"] = [p for p in op["parameters"] if p.get("name") != "period"]
    (change,) = _drift(pinned, edited)
    assert (change.kind, change.route, change.subject) == (
        "parameter-removed",
        "GET /iserver/marketdata/history",
        "query parameter period",
    )
    assert change.area == "marketdata"
    assert change.endpoints == ["spec/marketdata.yaml: marketdata_history_by_conid"]
    assert change.params == ["marketdata_history_by_conid.period"]


def test_a_changed_enum_is_reported_alone(pinned: dict[str, Any]) -> None:
    edited = _copy(pinned)
    op = edited["paths"]["/iserver/marketdata/history"]["get"]
    (direction,) = [p for p in op["parameters"] if p.get("name") == "direction"]
    direction["schema"]["enum"] = [-1, 0]
    (change,) = _drift(pinned, edited)
    assert (change.kind, change.subject) == ("enum-changed", "query parameter direction")
    assert (change.old, change.new) == (["-1", "1"], ["-1", "0"])
    assert change.detail.endswith("enum added 0; removed 1")
    assert change.params == []  # the catalogue does not expose direction on this endpoint


def test_a_retyped_response_field_is_reported_alone(pinned: dict[str, Any]) -> None:
    edited = _copy(pinned)
    edited["components"]["schemas"]["userAccountsResponse"]["properties"]["selectedAccount"]["type"] = "integer"
    (change,) = _drift(pinned, edited)
    assert (change.kind, change.route, change.subject) == (
        "response-field-retyped",
        "GET /iserver/accounts",
        "response field selectedAccount",
    )
    assert (change.old, change.new, change.fixes) == ("string", "integer", [])


def test_a_removed_field_names_the_fix_that_no_longer_applies(pinned: dict[str, Any]) -> None:
    edited = _copy(pinned)
    del edited["components"]["schemas"]["userAccountsResponse"]["properties"]["aliases"]
    changes = _drift(pinned, edited)
    assert sorted(c.kind for c in changes) == ["fix-no-longer-applies", "response-field-removed"]
    removed = _find(changes, "response-field-removed", "GET /iserver/accounts", "response field aliases")
    assert removed.fixes == ["sample-keys-are-maps"]
    broken = _find(changes, "fix-no-longer-applies", "-")
    assert broken.fixes == ["sample-keys-are-maps"] and "sample-keys-are-maps" in broken.detail


def test_a_renamed_operation_id_is_reported_alone(pinned: dict[str, Any]) -> None:
    edited = _copy(pinned)
    edited["paths"]["/iserver/marketdata/history"]["get"]["operationId"] = "getMarketHistory"
    (change,) = _drift(pinned, edited)
    assert (change.kind, change.old, change.new) == ("operation-id-changed", "getMdHistory", "getMarketHistory")
    assert change.endpoints == ["spec/marketdata.yaml: marketdata_history_by_conid"]


def test_command_line_exit_status_report_and_json(
    tmp_path: Path, pinned: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--spec", str(SPEC), "--openapi", str(PINNED)]) == 0
    assert "No relevant change" in capsys.readouterr().out
    edited = _copy(pinned)
    edited["paths"]["/iserver/marketdata/history"]["get"]["parameters"].pop(0)  # conid
    new = tmp_path / "new.json"
    new.write_text(json.dumps(edited), encoding="utf-8")
    assert main(["--spec", str(SPEC), "--openapi", str(new)]) == 1
    text = capsys.readouterr().out
    assert "== spec/marketdata.yaml (1) ==" in text
    assert "query parameter conid (integer) was removed" in text
    assert "marketdata_history_by_conid.conid" in text
    assert main(["--spec", str(SPEC), "--openapi", str(new), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["summary"] == {"parameter-removed": 1}
    assert data["changes"][0]["params"] == ["marketdata_history_by_conid.conid"]
    assert main(["--spec", str(SPEC), "--openapi", str(tmp_path / "missing.json")]) == 2


def test_report_triage_first_no_none_and_number_to_integer_summarised(pinned: dict[str, Any]) -> None:
    edited = _copy(pinned)
    del edited["paths"]["/iserver/account/orders"]["get"]  # live_orders: removed
    del edited["paths"]["/iserver/marketdata/snapshot"]["get"]["operationId"]  # still there, without an id
    retyped = 0
    for schema in edited["components"]["schemas"].values():  # number → integer everywhere it is a property
        for prop in (schema.get("properties") or {}).values() if isinstance(schema, dict) else []:
            if isinstance(prop, dict) and prop.get("type") == "number":
                prop["type"] = "integer"
                retyped += 1
    assert retyped > 20
    result = drift(CATALOGUE, pinned, edited, FIXES, check_fixes=False)  # fixes have their own tests (slow here)
    text = report(result)
    assert "None" not in text
    assert "GET /iserver/marketdata/snapshot is still there, without an operationId" in text
    triage = text.index("== Needs action (")
    assert triage < text.index("== spec/")
    urgent = text[triage : text.index("== spec/")]
    assert "operation-removed (1):\n    GET /iserver/account/orders [live_orders] (getOpenOrders)" in urgent
    assert "number → integer" not in urgent and ": type number → integer" not in text
    summary = text[text.index("== number → integer (") :]
    assert summary.count("\n  ") >= 5 and "existing models still parse" in summary
    data = result.to_json()
    removed = [c for c in data["changes"] if c["kind"] == "operation-removed"]
    assert len(removed) == 1 and removed[0]["needs_action"] is True
    narrowed = [c for c in data["changes"] if (c["old"], c["new"]) == ("number", "integer")]
    assert narrowed and not any(c["needs_action"] for c in narrowed)


def _tiny_documents(tmp_path: Path) -> tuple[Path, Path]:
    """Two small documents (one operation removed), so a command-line run stays quick."""
    op = {"operationId": "getOrders", "responses": {"200": {"description": "ok"}}}
    old = {
        "openapi": "3.0.0",
        "info": {"title": "old", "version": "1"},
        "paths": {"/iserver/account/orders": {"get": op}},
    }
    new = {"openapi": "3.0.0", "info": {"title": "new", "version": "2"}, "paths": {}}
    paths = tmp_path / "old.json", tmp_path / "new.json"
    for path, doc in zip(paths, (old, new), strict=True):
        path.write_text(json.dumps(doc), encoding="utf-8")
    return paths


def test_make_drift_exit_status_is_what_the_readme_says_and_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`make drift` passes 0\n   through and, as make does for any failing command, exits 2 otherwise" in readme
    old, new = _tiny_documents(tmp_path)
    proc = subprocess.Popen(
        ["make", "-s", "drift", f"OPENAPI={new}", f"DRIFT_ARGS=--old {old} --json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything is written (`--json | head` that already quit)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2, err  # codegen drift said 1 (changes found); make turns that into 2
    assert "Traceback" not in err and "BrokenPipe" not in err, err
