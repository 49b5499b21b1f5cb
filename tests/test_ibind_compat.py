"""Drop-in for ibind 0.2.2: every name and signature of the peer's public surface matches ours, or is a documented
deviation (listed below with its reason, and in README's "Migrating from ibind" section).

The surface was recorded once from the peer's distribution by tests/tools/extract_peer_surface.py into
tests/data/ibind_0_2_2_surface.json (names, parameters, order, defaults, enum values); no peer code is used here.

`python -m tests.test_ibind_compat` prints how many names and signatures match.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

import ibkr_sdk
from ibkr_sdk import IbkrClient

ROOT = Path(__file__).resolve().parent.parent
SURFACE: dict[str, Any] = json.loads((ROOT / "tests" / "data" / "ibind_0_2_2_surface.json").read_text())
README = (ROOT / "README.md").read_text()

# Every deliberate difference: subject -> reason. README's migration section names each subject in backquotes.
DEVIATIONS: dict[str, str] = {
    # Behaviour behind an equal signature.
    "auto_register_shutdown": "default False unless IBKR_SDK_/IBIND_AUTO_REGISTER_SHUTDOWN says true: the library "
    "installs no signal handler the user did not ask for",
    # OrderRequest.
    "OrderRequest.required": "conid, side, quantity, order_type and acct_id may be left out: the order check names a "
    "missing one before anything is sent, and no acct_id means the account the order is placed in",
    # Snapshot field table.
    "server_id": "the peer's table maps it to the type name 'string', not a field id",
    "conid_str": "the peer's table maps it to the type name 'integer_str', not a field id",
    "_updated_str": "the peer's table maps it to the type name 'integer_str', not a field id",
    # Exception constructor.
    "ExternalBrokerError.__init__": "takes one message plus keyword-only status_code, method, path and hint "
    "(the peer's *args, **kwargs): every attribute the peer sets exists",
}

# Peer defaults read from its environment variables at import; ours default to None and read IBKR_SDK_<NAME> (then
# the peer's IBIND_<NAME>) when the client is built, which means the same when the variable is set.
ENV_DEFAULT = re.compile(r"var\.[A-Z_]+")


def _readme_migration_section() -> str:
    start = README.find("## Migrating from ibind")
    assert start >= 0, "README lacks its 'Migrating from ibind' section"
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _expected_default(text: str | None) -> Any:
    if text is None:
        return inspect.Parameter.empty
    if ENV_DEFAULT.fullmatch(text):
        return None
    return ast.literal_eval(text)


def _positional(func: Any) -> list[inspect.Parameter]:
    return [
        p
        for p in inspect.signature(func).parameters.values()
        if p.name != "self" and p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]


def _signature_problems(func: Any, recorded: list[dict[str, str]]) -> list[str]:
    """Differences between our signature and the recorded one. Extra keyword-only parameters of ours are allowed
    (they cannot change what a peer-style call means)."""
    ours = _positional(func)
    problems = []
    names = [p.name for p in ours]
    wanted = [p["name"] for p in recorded]
    if names != wanted:
        return [f"parameters {names} != the peer's {wanted}"]
    for p, r in zip(ours, recorded, strict=True):
        if p.kind.name != r["kind"]:
            problems.append(f"{p.name}: kind {p.kind.name} != {r['kind']}")
        expected = _expected_default(r.get("default"))
        if p.default != expected or type(p.default) is not type(expected):
            problems.append(f"{p.name}: default {p.default!r} != the peer's {r.get('default')}")
    return problems


# ---- top-level names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SURFACE["top_level"]))
def test_top_level_name(name: str) -> None:
    entry = SURFACE["top_level"][name]
    if name in DEVIATIONS:
        pytest.skip(f"{name}: {DEVIATIONS[name]}")
    assert name in ibkr_sdk.__all__, f"`from ibkr_sdk import {name}` is missing"
    ours = getattr(ibkr_sdk, name)
    if entry["kind"] == "class":
        assert inspect.isclass(ours)
    elif entry["kind"] == "function":
        assert callable(ours)
        assert _signature_problems(ours, entry["params"]) == []


# ---- client methods -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SURFACE["client_methods"]))
def test_client_method_signature(name: str) -> None:
    assert hasattr(IbkrClient, name), f"IbkrClient lacks the peer's method {name}"
    assert _signature_problems(getattr(IbkrClient, name), SURFACE["client_methods"][name]) == []


def test_constructor_keywords_of_the_peer_are_accepted_with_their_meaning() -> None:
    client = IbkrClient(
        url="http://127.0.0.1:9/v1/api/",
        use_session=False,
        auto_recreate_session=False,
        auto_register_shutdown=False,
        log_responses=True,
        verbose_retries=False,
        pacing=False,
    )
    try:
        assert client.use_session is False and client._transport.session.headers["Connection"] == "close"
        assert client.auto_recreate_session is False and client.log_responses is True
        assert client._transport.verbose_retries is False
    finally:
        client.close()


# ---- OrderRequest, QuestionType, field names, errors, Result, StockQuery ---------------------------------------


def test_order_request_has_the_peers_fields_in_order_with_its_defaults() -> None:
    ours = dataclasses.fields(ibkr_sdk.OrderRequest)
    recorded = SURFACE["order_request_fields"]
    assert [f.name for f in ours[: len(recorded)]] == [r["name"] for r in recorded]
    for field, r in zip(ours, recorded, strict=False):
        if "default" in r:
            assert field.default == ast.literal_eval(r["default"]), field.name
        else:  # required in the peer: a documented deviation (OrderRequest.required)
            assert "OrderRequest.required" in DEVIATIONS and field.default is None, field.name
    assert ibkr_sdk.OrderRequest(1, "BUY", 1, "MKT", "DU1").tif == "GTC"  # the peer's default, so no order changes
    assert ibkr_sdk.OrderRequest(1, "BUY", 1, "MKT", "DU1").acct_id == "DU1"  # 5th positional is acct_id


@pytest.mark.parametrize("name", list(SURFACE["question_types"]))
def test_question_type_member_and_value(name: str) -> None:
    member = ibkr_sdk.QuestionType[name]
    text = SURFACE["question_types"][name]
    assert member.value == text and str(member) == text and member == text  # a str, as the peer's
    message_id = SURFACE["question_type_message_ids"][name]
    if message_id is None:
        with pytest.raises(ValueError):
            ibkr_sdk.question_type_to_message_id(member)
    else:
        assert ibkr_sdk.question_type_to_message_id(member) == message_id == member.message_id


@pytest.mark.parametrize("key", list(SURFACE["snapshot_fields"]))
def test_snapshot_field_name(key: str) -> None:
    if key in DEVIATIONS:
        with pytest.raises(KeyError):
            ibkr_sdk.snapshot_keys_to_ids([key])
        pytest.skip(f"{key}: {DEVIATIONS[key]}")
    assert ibkr_sdk.snapshot_keys_to_ids([key]) == [SURFACE["snapshot_fields"][key]]


def test_external_broker_error_keeps_status_code_and_is_an_exception() -> None:
    recorded = SURFACE["errors"]["ExternalBrokerError"]
    assert "Exception" in recorded["bases"] and issubclass(ibkr_sdk.ExternalBrokerError, Exception)
    assert [p["name"] for p in recorded["init"] if p["kind"] == "KEYWORD_ONLY"] == ["status_code"]
    error = ibkr_sdk.ExternalBrokerError("refused", status_code=400)
    assert error.status_code == 400 and "refused" in str(error)
    assert "ExternalBrokerError.__init__" in DEVIATIONS  # the rest of the constructor differs, documented


def test_order_question_error_is_a_runtime_error_as_the_peer_raises() -> None:
    assert issubclass(ibkr_sdk.OrderQuestionError, RuntimeError)
    assert issubclass(ibkr_sdk.StockQueryError, RuntimeError)


def test_result_and_stock_query_fields() -> None:
    assert [f.name for f in dataclasses.fields(ibkr_sdk.Result)][:2] == SURFACE["result_fields"]
    ours = dataclasses.fields(ibkr_sdk.StockQuery)
    for field, r in zip(ours, SURFACE["stock_query_fields"], strict=True):
        assert field.name == r["name"]
        if "default" in r:
            assert field.default == ast.literal_eval(r["default"])


# ---- the deviations are documented ---------------------------------------------------------------------------


@pytest.mark.parametrize("subject", list(DEVIATIONS))
def test_every_deviation_is_documented_in_the_readme(subject: str) -> None:
    section = _readme_migration_section()
    names = [subject.split(".")[0]] if subject.startswith("OrderRequest") else [subject]
    assert any(f"`{n}" in section for n in names), f"README's migration section does not mention {subject}"


def surface_report() -> dict[str, int]:
    """How much of the recorded surface matches, for the closing note of the compatibility work."""
    top = SURFACE["top_level"]
    top_ok = sum(1 for n in top if n in ibkr_sdk.__all__)
    functions = [n for n, e in top.items() if e["kind"] == "function" and n in ibkr_sdk.__all__]
    functions_ok = sum(1 for n in functions if not _signature_problems(getattr(ibkr_sdk, n), top[n]["params"]))
    methods = SURFACE["client_methods"]
    methods_ok = sum(
        1 for n, p in methods.items() if hasattr(IbkrClient, n) and not _signature_problems(getattr(IbkrClient, n), p)
    )
    pairs = list(zip(dataclasses.fields(ibkr_sdk.OrderRequest), SURFACE["order_request_fields"], strict=False))
    fields_placed = sum(1 for f, r in pairs if f.name == r["name"])
    fields_ok = sum(
        1 for f, r in pairs if f.name == r["name"] and "default" in r and f.default == ast.literal_eval(r["default"])
    )
    qt = SURFACE["question_types"]
    qt_ok = sum(1 for n, v in qt.items() if n in ibkr_sdk.QuestionType.__members__ and ibkr_sdk.QuestionType[n] == v)
    snap = SURFACE["snapshot_fields"]
    snap_ok = sum(1 for k, v in snap.items() if ibkr_sdk.lib.snapshot_fields.SNAPSHOT_FIELDS.get(k) == v)
    return {
        "top-level names": top_ok,
        "top-level names recorded": len(top),
        "function signatures": functions_ok,
        "function signatures recorded": len(functions),
        "client method signatures": methods_ok,
        "client methods recorded": len(methods),
        "OrderRequest fields (name, position)": fields_placed,
        "OrderRequest fields (name, position, default)": fields_ok,
        "OrderRequest fields recorded": len(SURFACE["order_request_fields"]),
        "QuestionType members": qt_ok,
        "QuestionType members recorded": len(qt),
        "snapshot field names": snap_ok,
        "snapshot field names recorded": len(snap),
        "documented deviations": len(DEVIATIONS),
    }


if __name__ == "__main__":
    for label, count in surface_report().items():
        print(f"{label}: {count}")
