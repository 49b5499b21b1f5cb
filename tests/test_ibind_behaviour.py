"""The peer client's behaviours beyond signatures: the escape hatch's retry rules, the constructor options, log
set-up, execute_in_parallel, print_table, the health handlers and the symbol helpers' handling of unknown symbols."""

from __future__ import annotations

import importlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import ibkr_sdk
from ibkr_sdk import (
    ApiConnectionError,
    ExternalBrokerError,
    IbkrClient,
    RequestValidationError,
    StockQuery,
    StockQueryError,
    execute_in_parallel,
    ibind_logs_initialize,
    print_table,
)
from ibkr_sdk.lib import compat, transport
from ibkr_sdk.lib.logs import reset_logs
from ibkr_sdk.simulator import Simulator
from tests.recording_server import RecordingServer, Reply

ACCOUNT = "DU1234567"


def _client(recorder: RecordingServer, **options: object) -> IbkrClient:
    options.setdefault("max_retries", 2)
    client = IbkrClient(  # type: ignore[arg-type]
        account_id=ACCOUNT, url=recorder.url, timeout=5, auto_preflight=False, pacing=False, **options
    )
    client._transport.retry_backoff = 0.001
    return client


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


# ---- escape hatch ------------------------------------------------------------------------------------------------


def test_get_sends_the_query_without_none_and_with_ibkr_booleans(recorder: RecordingServer) -> None:
    recorder.reply("GET", "/some/new/endpoint", Reply(body={"ok": 1}))
    with _client(recorder) as client:
        result = client.get("some/new/endpoint", {"a": 1, "b": None, "flag": True}, extra_headers={"X-Test": "yes"})
    [sent] = recorder.sent("GET", "/some/new/endpoint")
    assert sent.query == {"a": "1", "flag": "true"} and sent.headers.get("X-Test") == "yes"
    assert result.data == {"ok": 1} and result.endpoint is None


def test_post_and_delete_send_params_as_the_json_body(recorder: RecordingServer) -> None:
    with _client(recorder) as client:
        client.post("/some/new/endpoint", {"x": [1, 2]})
        client.delete("some/new/endpoint", {"id": "7"})
    assert json.loads(recorder.sent("POST", "/some/new/endpoint")[0].raw_body) == {"x": [1, 2]}
    assert json.loads(recorder.sent("DELETE", "/some/new/endpoint")[0].raw_body) == {"id": "7"}


def test_an_unknown_endpoint_is_sent_once_unless_marked_safe(recorder: RecordingServer) -> None:
    recorder.reply("POST", "/some/new/endpoint", Reply(status=503, body={"error": "busy"}))
    with _client(recorder) as client:
        with pytest.raises(ExternalBrokerError):
            client.post("some/new/endpoint", {"n": 1})
        assert len(recorder.sent("POST", "/some/new/endpoint")) == 1
        with pytest.raises(ExternalBrokerError):
            client.post("some/new/endpoint", {"n": 1}, retry_safe=True)
    assert len(recorder.sent("POST", "/some/new/endpoint")) == 1 + 3  # once, then once plus two retries


def test_a_known_endpoint_follows_the_catalogues_retry_rule(recorder: RecordingServer) -> None:
    recorder.reply("GET", "/portfolio/accounts", Reply(status=503), Reply(body=[{"id": ACCOUNT}]))
    recorder.reply("POST", f"/iserver/account/{ACCOUNT}/orders", Reply(status=503))
    with _client(recorder) as client:
        accounts = client.get("portfolio/accounts")
        assert accounts.endpoint == "portfolio_accounts" and accounts.data == [{"id": ACCOUNT}]
        with pytest.raises(ExternalBrokerError):
            client.post(f"iserver/account/{ACCOUNT}/orders", {"orders": []})
    assert len(recorder.sent("GET", "/portfolio/accounts")) == 2  # safe: retried
    assert len(recorder.sent("POST", f"/iserver/account/{ACCOUNT}/orders")) == 1  # an order: never re-sent


def test_known_endpoint_detection() -> None:
    assert compat.known_endpoint("GET", "/iserver/account/orders") is not None
    assert compat.known_endpoint("GET", "/iserver/account/orders").name == "live_orders"  # type: ignore[union-attr]
    assert compat.known_endpoint("POST", f"/iserver/account/{ACCOUNT}/orders").name == "place_order"  # type: ignore[union-attr]
    assert compat.known_endpoint("GET", "/no/such/thing") is None


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda c: c.request("PATCH", "x"), "method"),
        (lambda c: c.get(""), "endpoint"),
        (lambda c: c.get("https://evil.example/v1/api/x"), "endpoint"),
        (lambda c: c.get("x", base_url="https://api.elsewhere.example/v1/api/"), "base_url"),
        (lambda c: c.request("GET", "x", data="raw"), "data"),
        (lambda c: c.get("x", params=["not", "a", "dict"]), "params"),
    ],
)
def test_escape_hatch_refuses_bad_input_before_sending(recorder: RecordingServer, call: object, param: str) -> None:
    with _client(recorder) as client, pytest.raises(RequestValidationError) as info:
        call(client)  # type: ignore[operator]
    assert info.value.param == param and recorder.requests == []


# ---- constructor options -----------------------------------------------------------------------------------------


def test_use_session_false_opens_a_connection_per_request(recorder: RecordingServer) -> None:
    with _client(recorder, use_session=False) as client:
        client.get("a")
    with _client(recorder) as client:
        client.get("b")
    assert recorder.sent("GET", "/a")[0].headers.get("Connection") == "close"
    assert recorder.sent("GET", "/b")[0].headers.get("Connection") != "close"


@pytest.mark.parametrize("recreate", [True, False])
def test_auto_recreate_session_drops_cookies_after_a_connection_failure(
    recorder: RecordingServer, recreate: bool
) -> None:
    recorder.reply("GET", "/broken", Reply(reset=True))
    with _client(recorder, max_retries=0, auto_recreate_session=recreate) as client:
        client._transport.session.cookies.set("x", "1")
        with pytest.raises(ApiConnectionError):
            client.get("broken")
        assert (len(client._transport.session.cookies) == 0) is recreate


def test_log_responses_logs_bodies_with_account_ids_masked(
    recorder: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.reply("GET", "/portfolio/accounts", Reply(body=[{"id": ACCOUNT}]))
    with (
        caplog.at_level(logging.INFO, logger="ibkr_sdk"),
        _client(recorder, log_responses=True, mask_account_ids=True) as client,
    ):
        client.portfolio_accounts()
    lines = [r.getMessage() for r in caplog.records if "/portfolio/accounts ->" in r.getMessage()]
    assert lines and ACCOUNT not in lines[0] and "DU****567" in lines[0]


@pytest.mark.parametrize(("verbose", "shown"), [(True, True), (False, False)])
def test_verbose_retries_logs_retries_at_info(
    recorder: RecordingServer, caplog: pytest.LogCaptureFixture, verbose: bool, shown: bool
) -> None:
    recorder.reply("GET", "/portfolio/accounts", Reply(status=503), Reply(body=[]))
    with caplog.at_level(logging.INFO, logger="ibkr_sdk"), _client(recorder, verbose_retries=verbose) as client:
        client.portfolio_accounts()
    assert any(r.levelno == logging.INFO and "retrying" in r.getMessage() for r in caplog.records) is shown


def test_auto_register_shutdown_only_when_asked(recorder: RecordingServer) -> None:
    before = signal.getsignal(signal.SIGTERM)
    before_int = signal.getsignal(signal.SIGINT)
    try:
        with _client(recorder):
            assert signal.getsignal(signal.SIGTERM) is before  # default: no handler installed
        with _client(recorder, auto_register_shutdown=True):
            assert signal.getsignal(signal.SIGTERM) is not before
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, before_int)


def test_tickle_log_flag_logs_locally_and_sends_nothing_more(
    recorder: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.reply("POST", "/tickle", Reply(body={"iserver": {"authStatus": {"authenticated": True}}}))
    with caplog.at_level(logging.INFO, logger="ibkr_sdk"), _client(recorder) as client:
        client.tickle(log=True)
        client.tickle()
    assert [r.raw_body for r in recorder.sent("POST", "/tickle")] == [b"", b""]
    assert len([r for r in caplog.records if r.getMessage().startswith("tickle:")]) == 1


# ---- what the peer's REST examples import ------------------------------------------------------------------------

# Each name the peer's examples rest_01..rest_09 import, by the module they import it from. With `ibind` renamed to
# `ibkr_sdk` each import must work, and give the top level's object. (rest_07 also imports `make_order_request`, which
# ibind 0.2.2 no longer has: that example fails with the peer too.)
PEER_EXAMPLE_IMPORTS = {
    "ibind": ["IbkrClient", "StockQuery", "OrderRequest", "QuestionType", "ibind_logs_initialize"],
    "ibind.client.ibkr_utils": ["OrderRequest"],
    "ibind.support.py_utils": ["print_table"],
    "ibind.base.rest_client": ["requests"],  # the target of the examples' mock.patch
}


@pytest.mark.parametrize("module", list(PEER_EXAMPLE_IMPORTS))
def test_imports_of_the_peer_examples_run_with_ibind_renamed(module: str) -> None:
    ours = importlib.import_module(module.replace("ibind", "ibkr_sdk", 1))
    for name in PEER_EXAMPLE_IMPORTS[module]:
        assert getattr(ours, name) is getattr(ibkr_sdk, name, requests), f"{module}.{name}"


def test_the_peers_module_names_hold_the_top_level_objects() -> None:
    # The peer's rest client module is our transport itself, so patching its `requests` reaches every request.
    assert importlib.import_module("ibkr_sdk.base.rest_client") is transport
    assert importlib.import_module("ibkr_sdk.base.rest_client").Result is ibkr_sdk.Result
    for module, names in {
        "client.ibkr_client": ["IbkrClient"],
        "client.ibkr_definitions": ["snapshot_keys_to_ids"],
        "client.ibkr_utils": ["Answers", "OrderRequest", "QuestionType", "StockQueries", "StockQuery"],
        "oauth.oauth1a": ["OAuth1aConfig"],
        "support.errors": ["ExternalBrokerError"],
        "support.logs": ["AccountIdMaskingFormatter", "ibind_logs_initialize"],
        "support.py_utils": ["execute_in_parallel", "print_table"],
    }.items():
        imported = importlib.import_module(f"ibkr_sdk.{module}")
        assert all(getattr(imported, n) is getattr(ibkr_sdk, n) for n in names), module


def test_print_table_aligns_the_contracts_of_an_options_month(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the peer's options-chain example prints the SPX contracts of one strike and month.
    with IbkrClient(url=sim.url, account_id=ACCOUNT) as client:
        sections = client.search_contract_by_symbol("SPX").data[0]["sections"]
        month = next(s for s in sections if s["secType"] == "OPT")["months"].split(";")[0]
        strike = client.search_strikes_by_conid(conid="416904", sec_type="OPT", month=month).data["call"][0]
        info = client.search_secdef_info_by_conid(conid="416904", sec_type="OPT", month=month, strike=strike, right="C")
    print_table(info.data)
    lines = capsys.readouterr().out.splitlines()
    assert len(info.data) >= 2 and len(lines) == len(info.data) + 1
    assert lines[0].split() == list(info.data[0]) and len({len(line) for line in lines}) == 1  # right-aligned
    for line, row in zip(lines[1:], info.data, strict=True):
        assert line.split()[:2] == [str(row["conid"]), row["ticker"]] and line.rstrip().endswith(row["desc2"])
    print_table([{"a": 1, "b": None}, {"a": 22, "b": "x"}], column_order=["b", "a"])
    assert capsys.readouterr().out.splitlines() == ["b    a", "     1", "x   22"]
    with pytest.raises(ValueError, match="print_table.*my_dict"):
        print_table({"a": 1})  # type: ignore[arg-type]


# ---- logs, execute_in_parallel ----------------------------------------------------------------------------------


def test_logs_initialize_is_opt_in_idempotent_and_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IBKR_SDK_LOGS_DIR", str(tmp_path))
    logger = logging.getLogger("ibkr_sdk")
    before = list(logger.handlers)
    try:
        ibind_logs_initialize(log_to_console=False, log_to_file=True)
        ibind_logs_initialize(log_to_console=False, log_to_file=True)
        added = [h for h in logger.handlers if h not in before]
        assert len(added) == 1
        logger.debug("order for DU7654321")
        added[0].flush()
        text = (tmp_path / "ibkr_sdk.log").read_text()
        assert "DU****321" in text and "DU7654321" not in text
    finally:
        reset_logs()
    assert logger.handlers == before


def test_execute_in_parallel_keeps_keys_order_and_exceptions() -> None:
    def square(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * x

    by_key = execute_in_parallel(square, {"a": {"args": [2]}, "b": {"kwargs": {"x": -1}}}, max_workers=2)
    assert by_key["a"] == 4 and isinstance(by_key["b"], ValueError)
    assert execute_in_parallel(square, [{"args": [n]} for n in range(6)]) == [0, 1, 4, 9, 16, 25]


def test_execute_in_parallel_bounds_the_start_rate() -> None:
    starts: list[float] = []
    lock = threading.Lock()

    def record() -> None:
        with lock:
            starts.append(time.monotonic())

    began = time.monotonic()
    execute_in_parallel(record, [{} for _ in range(4)], max_workers=4, max_per_second=2)
    # Two calls may start at once; the third only a second after the first was let through. A lower bound on the
    # elapsed time holds however late the threads are scheduled (a busy machine only makes it longer), whereas the
    # gaps between the times the workers record can shrink when an earlier worker runs late.
    assert len(starts) == 4
    assert max(starts) - began >= 0.99


# ---- health handlers and unknown symbols (simulator) --------------------------------------------------------------


def test_handle_auth_status_checks_three_times_then_reports_unhealthy(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compat, "HEALTH_RETRY_INTERVAL", 0.0)
    with IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False) as client:
        assert client.handle_auth_status() is True
        sim.logout()
        sim.clear_requests()
        assert client.handle_auth_status() is False
    assert len([r for r in sim.requests if r.path == "/iserver/auth/status"]) == 3


def test_unknown_symbols_are_left_out_and_the_rest_answered(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    with IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False) as client:
        with caplog.at_level(logging.WARNING, logger="ibkr_sdk"):
            conids = client.stock_conid_by_symbol(["AAPL", "DELISTED", "MSFT"]).data
        assert conids == {"AAPL": 265598, "MSFT": 272093}
        assert any("DELISTED" in r.getMessage() for r in caplog.records)
        history = client.marketdata_history_by_symbols(["IBM", "DELISTED"], period="1w", bar="1d")
        assert list(history) == ["IBM"]
        with pytest.raises(StockQueryError, match="DELISTED"):
            client.marketdata_history_by_symbols(["IBM", "DELISTED"], period="1w", bar="1d", raise_on_error=True)
        with pytest.raises(StockQueryError):  # a query that filters everything out is still an error, as in ibind
            client.stock_conid_by_symbol(StockQuery("AAPL", name_match="NOPE"))


def test_snapshot_by_symbol_takes_names_or_ids_and_answers_with_names(sim: Simulator) -> None:
    with IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False) as client:
        by_name = client.live_marketdata_snapshot_by_symbol("AAPL", ["last_price", "bid_price"])
        by_id = client.live_marketdata_snapshot_by_symbol(["AAPL"], ["31", "84"])
    assert {"last_price", "bid_price", "conid"} <= set(by_name["AAPL"]) and "31" not in by_name["AAPL"]
    assert {"last_price", "bid_price"} <= set(by_id["AAPL"])
    sent = [r.query.get("fields") for r in sim.requests if r.path == "/iserver/marketdata/snapshot"]
    assert sent and all(f == "31,84" for f in sent)
