"""The stream table rendered from spec/streams.yaml: frames as IBKR documents them, checks, routing, the exports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ibkr_sdk._streams import (
    BY_TOPIC,
    STREAMS,
    UNSOLICITED,
    WAITING_FOR_SESSION,
    parse_client_frame,
    route,
)
from ibkr_sdk.lib.errors import RequestValidationError

ROOT = Path(__file__).resolve().parent.parent

# Frames written by hand from IBKR's WebSocket documentation (never derived from the generator).
DOCUMENTED = [
    ("market_data", {"conid": "265598", "fields": ["31", "84", "86"]}, 'smd+265598+{"fields":["31","84","86"]}'),
    ("market_data", {"conid": "265598@NYSE", "fields": ["31"]}, 'smd+265598@NYSE+{"fields":["31"]}'),
    (
        "market_history",
        {
            "conid": 265598,
            "exchange": "ISLAND",
            "period": "2h",
            "bar": "5min",
            "outside_rth": False,
            "source": "trades",
            "format": "%h/%l",
        },
        'smh+265598+{"exchange":"ISLAND","period":"2h","bar":"5min","outsideRth":false,"source":"trades","format":"%h/%l"}',
    ),
    ("price_ladder", {"account_id": "DU12345", "conid": 265598, "exchange": "ARCA"}, "sbd+DU12345+265598+ARCA"),
    ("price_ladder", {"account_id": "DU12345", "conid": 265598}, "sbd+DU12345+265598"),
    ("account_summary", {"account_id": "DU1234567"}, "ssd+DU1234567+{}"),
    (
        "account_ledger",
        {"account_id": "DU1234567", "keys": ["LedgerListBASE"]},
        'sld+DU1234567+{"keys":["LedgerListBASE"]}',
    ),
    ("orders", {}, "sor+{}"),
    ("orders", {"filters": ["Submitted"]}, 'sor+{"filters":["Submitted"]}'),
    ("pnl", {}, "spl+{}"),
    ("trades", {"realtime_updates_only": True}, 'str+{"realtimeUpdatesOnly":true}'),
]
UNSUBSCRIBE = [
    ("market_data", {"conid": "265598"}, "umd+265598+{}"),
    ("market_history", {"server_id": "341115"}, "umh+341115"),
    ("price_ladder", {"account_id": "DU12345"}, "ubd+DU12345"),
    ("account_summary", {"account_id": "DU1"}, "usd+DU1+{}"),
    ("account_ledger", {"account_id": "DU1"}, "uld+DU1+{}"),
    ("orders", {}, "uor+{}"),
    ("pnl", {}, "upl+{}"),
    ("trades", {}, "utr"),
]


@pytest.mark.parametrize(("name", "values", "frame"), DOCUMENTED)
def test_subscribe_frames_are_the_documented_ones_and_parse_back(name: str, values: dict, frame: str) -> None:
    spec = STREAMS[name]
    assert spec.subscribe_message(**values) == frame
    parsed = parse_client_frame(frame)
    assert parsed.stream is spec and parsed.subscribe
    assert parsed.targets == {t.name: str(values[t.name]) for t in spec.targets if t.name in values}


@pytest.mark.parametrize(("name", "values", "frame"), UNSUBSCRIBE)
def test_unsubscribe_frames(name: str, values: dict, frame: str) -> None:
    spec = STREAMS[name]
    assert spec.unsubscribe_message(**values) == frame
    parsed = parse_client_frame(frame)
    assert parsed.stream is spec and not parsed.subscribe
    assert parsed.server_id == values.get("server_id")


def test_every_topic_of_the_issue_is_declared() -> None:
    assert set(BY_TOPIC) == {
        "smd",
        "umd",
        "smh",
        "umh",
        "sbd",
        "ubd",
        "ssd",
        "usd",
        "sld",
        "uld",
        "sor",
        "uor",
        "spl",
        "upl",
        "str",
        "utr",
    }
    assert {"system", "sts", "act", "blt", "ntf", "error"} <= set(UNSOLICITED)
    assert STREAMS["market_data"].expires_after == 900 and STREAMS["market_data"].renew_after < 900
    assert STREAMS["market_history"].max_concurrent == 5


@pytest.mark.parametrize(
    ("name", "values", "param"),
    [
        ("market_data", {"conid": "AAPL", "fields": ["31"]}, "conid"),
        ("market_data", {"conid": "265598"}, "fields"),
        ("market_data", {"conid": "265598", "fields": "31"}, "fields"),
        ("market_data", {"conid": "265598", "fields": ["last"]}, "fields"),
        ("market_history", {"conid": "1", "period": "1d", "bar": "5min", "source": "volume"}, "source"),
        ("trades", {"days": 8}, "days"),
        ("trades", {"days": True}, "days"),
        ("pnl", {"account_id": "DU1"}, "account_id"),
    ],
)
def test_bad_arguments_are_refused_naming_the_parameter(name: str, values: dict, param: str) -> None:
    with pytest.raises(RequestValidationError) as err:
        STREAMS[name].subscribe_message(method="IbkrWsClient.subscribe", **values)
    assert err.value.param == param and err.value.method == "IbkrWsClient.subscribe"


def test_unsubscribing_history_needs_the_server_id() -> None:
    with pytest.raises(RequestValidationError, match="server_id"):
        STREAMS["market_history"].unsubscribe_message()


def test_routing_of_server_frames() -> None:
    assert route({"topic": "smd+265598", "31": "1.0"})[:3] == ("stream", "market_data", "265598")
    assert route({"topic": "sbd+DU1+265598+ARCA", "data": []})[:3] == ("stream", "price_ladder", "DU1")
    assert route({"topic": "sor", "args": []})[:3] == ("stream", "orders", None)
    assert route({"topic": "ssd+DU1", "result": []})[:3] == ("stream", "account_summary", "DU1")
    assert route({"message": "Unsubscribed 341115"})[:3] == ("unsubscribed", "market_history", "341115")
    assert route({"result": "unsubscribed from ledger"})[:2] == ("unsubscribed", "account_ledger")
    assert route({"topic": "system", "hb": 1})[:2] == ("unsolicited", "system")
    assert route({"topic": "sts", "args": {}})[:2] == ("unsolicited", "auth_status")
    assert route({"message": WAITING_FOR_SESSION}).kind == "waiting"
    assert route({"error": "Topic unknown", "code": 1})[:2] == ("unsolicited", "error")
    assert route({"topic": "zzz"}).kind == "unknown"


@pytest.mark.parametrize("frame", ["xyz+1", "smdx", "smd+AAPL+{}", "smd+265598+[1]", "smd+265598+{", "umh", "sbd+DU1"])
def test_malformed_client_frames_are_refused(frame: str) -> None:
    with pytest.raises(ValueError):
        parse_client_frame(frame)


def test_lenient_forms_that_clients_send_are_accepted() -> None:
    assert parse_client_frame("spl").stream is STREAMS["pnl"]  # the bare form
    assert parse_client_frame("str+{}").subscribe


def test_asyncapi_export_declares_every_stream() -> None:
    doc = json.loads((ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8"))
    assert doc["asyncapi"].startswith("2.")
    topics = {c.get("x-ibkr-topic") for c in doc["channels"].values()}
    assert {s.topic for s in STREAMS.values()} <= topics
    assert doc["channels"]["smd+{conid}"]["x-ibkr-limits"]["expires_after"] == 900
    for channel in doc["channels"].values():
        for op in ("publish", "subscribe"):
            ref = channel.get(op, {}).get("message", {}).get("$ref")
            if ref:
                assert ref.rsplit("/", 1)[1] in doc["components"]["messages"]


def test_a_bad_stream_spec_is_refused_naming_the_stream(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    shutil.copytree(ROOT / "spec", spec)
    text = (spec / "streams.yaml").read_text(encoding="utf-8")
    (spec / "streams.yaml").write_text(
        text.replace("route: 'smd+{conid}'", "route: 'smd+{contract}'"), encoding="utf-8"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "codegen", "--spec", str(spec), "--check-spec"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "stream 'market_data'" in proc.stderr and "route" in proc.stderr
