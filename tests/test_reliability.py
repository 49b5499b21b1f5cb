"""Retry policy, duplicate-order safety, errors, pacing, threads and logging, over real HTTP on loopback."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from ibkr_sdk import (
    ApiConnectionError,
    ApiTimeoutError,
    ExternalBrokerError,
    IbkrClient,
    NotAuthenticatedError,
    OrderStateUnknownError,
    RateLimitedError,
    ServerError,
)
from ibkr_sdk._endpoint_table import PACING_BUCKETS
from ibkr_sdk.lib.endpoint import PacingBucket
from ibkr_sdk.lib.pacing import Pacer
from tests.recording_server import RecordingServer, Reply

ORDERS = "/iserver/account/DU1234567/orders"
AAPL = {"conid": 265598, "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"}


# A timeout far above a loopback answer on a busy machine, and stalls (`delay=STALL`) well beyond it: a test then
# times out only where it means to.
TIMEOUT, STALL = 2.0, 3.0


@pytest.fixture
def retrying(recorder: RecordingServer) -> Iterator[IbkrClient]:
    c = IbkrClient(
        account_id="DU1234567", url=recorder.url, timeout=TIMEOUT, max_retries=3, auto_preflight=False, pacing=False
    )
    c._transport.retry_backoff = 0.01
    yield c
    c.close()


def test_5xx_then_success_is_retried_for_a_safe_request(retrying: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("GET", "/portfolio/accounts", Reply(503, {"error": "busy"}), Reply(503, {}), Reply(body=[{"id": 1}]))
    assert retrying.portfolio_accounts().data == [{"id": 1}]
    assert len(recorder.sent("GET", "/portfolio/accounts")) == 3


def test_5xx_on_an_unsafe_request_is_not_resent(retrying: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("POST", "/iserver/watchlist", Reply(503, {"error": "busy"}))
    with pytest.raises(ServerError) as info:
        retrying.create_watchlist("1", "w", [{"C": 265598}])
    assert info.value.status_code == 503 and "busy" in str(info.value)
    assert len(recorder.sent("POST", "/iserver/watchlist")) == 1


def test_retries_are_bounded(retrying: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("GET", "/portfolio/accounts", Reply(502, {"error": "down"}))
    with pytest.raises(ServerError):
        retrying.portfolio_accounts()
    assert len(recorder.sent("GET", "/portfolio/accounts")) == 4  # first try + max_retries


def test_stalled_get_is_retried(retrying: IbkrClient, recorder: RecordingServer) -> None:
    stalled, fresh = Reply(body={"stale": True}, delay=STALL), Reply(body={"accounts": ["A"]})
    recorder.reply("GET", "/iserver/accounts", stalled, fresh)
    assert retrying.receive_brokerage_accounts().data == {"accounts": ["A"]}
    assert len(recorder.sent("GET", "/iserver/accounts")) == 2


def test_reset_mid_request_retried_for_get_not_for_post(retrying: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("GET", "/iserver/accounts", Reply(reset=True), Reply(body={"ok": 1}))
    assert retrying.receive_brokerage_accounts().data == {"ok": 1}
    recorder.reply("POST", "/iserver/watchlist", Reply(reset=True))
    with pytest.raises(ApiConnectionError) as info:
        retrying.create_watchlist("1", "w", [{"C": 265598}])
    assert info.value.maybe_sent
    assert len(recorder.sent("POST", "/iserver/watchlist")) == 1


def test_stalled_order_accepted_by_server_is_placed_once_and_found_by_coid(
    retrying: IbkrClient, recorder: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ibkr_sdk.lib.orders.RESOLVE_INTERVAL", 0.01)
    recorder.reply("POST", ORDERS, Reply(body=[{"order_id": "1", "order_status": "Submitted"}], delay=STALL))
    order = dict(AAPL, cOID="coid-42")
    live = {"orders": [{"orderId": 987, "status": "Submitted", "order_ref": "coid-42"}], "snapshot": True}
    recorder.reply("GET", "/iserver/account/orders", Reply(body={"orders": []}), Reply(body=live))
    result = retrying.place_order(order, answers={})
    assert result.data == {"order_id": "987", "order_status": "Submitted", "cOID": "coid-42"}
    assert len(recorder.sent("POST", ORDERS)) == 1, "an order is never sent twice"


def test_order_state_unknown_carries_the_coid(
    retrying: IbkrClient, recorder: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ibkr_sdk.lib.orders.RESOLVE_INTERVAL", 0.01)
    recorder.reply("POST", ORDERS, Reply(reset=True))
    recorder.reply("GET", "/iserver/account/orders", Reply(body={"orders": []}))
    with pytest.raises(OrderStateUnknownError) as info:
        retrying.place_order(AAPL, answers={})
    coid = recorder.sent("POST", ORDERS)[0].body["orders"][0]["cOID"]
    assert info.value.coid == coid and coid in str(info.value) and "live_orders()" in str(info.value)
    assert len(recorder.sent("POST", ORDERS)) == 1
    assert len(recorder.sent("GET", "/iserver/account/orders")) == 2


def test_unreachable_server_retries_even_unsafe_requests_and_says_nothing_was_sent() -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with IbkrClient(
        url=f"http://127.0.0.1:{port}/v1/api/", account_id="DU1", max_retries=2, pacing=False, auto_preflight=False
    ) as c:
        c._transport.retry_backoff = 0.01
        with pytest.raises(ApiConnectionError) as info:
            c.place_order(AAPL, answers={})
    assert info.value.maybe_sent is False and "Nothing reached the server" in str(info.value)


def test_malformed_json_gives_a_clear_error(retrying: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("GET", "/portfolio/accounts", Reply(raw=b'{"accounts": [1, 2'))
    with pytest.raises(ExternalBrokerError, match=r"GET /portfolio/accounts.*not valid JSON"):
        retrying.portfolio_accounts()
    assert len(recorder.sent("GET", "/portfolio/accounts")) == 1


def test_429_honours_retry_after(retrying: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply(
        "GET", "/portfolio/accounts", Reply(429, {"error": "slow"}, headers={"Retry-After": "0.3"}), Reply(body=[])
    )
    start = time.monotonic()
    assert retrying.portfolio_accounts().data == []
    assert time.monotonic() - start >= 0.3
    recorder.reply("GET", "/portfolio/subaccounts", Reply(429, {"error": "slow"}, headers={"Retry-After": "600"}))
    with pytest.raises(RateLimitedError) as info:
        retrying.portfolio_subaccounts()
    assert info.value.retry_after == 600 and "pacing limit" in str(info.value)
    assert len(recorder.sent("GET", "/portfolio/subaccounts")) == 1


def test_error_types_and_hints(client: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("GET", "/iserver/accounts", Reply(401, {"error": "not authenticated"}))
    with pytest.raises(NotAuthenticatedError, match="log in to the gateway"):
        client.receive_brokerage_accounts()
    recorder.reply("GET", "/iserver/accounts", Reply(400, {"error": "Bad Request: no bridge"}))
    with pytest.raises(NotAuthenticatedError, match=r"initialize_brokerage_session\(\)"):
        client.receive_brokerage_accounts()


def test_timeout_error_names_the_request(client: IbkrClient, recorder: RecordingServer) -> None:
    client._transport.timeout = 0.2
    recorder.reply("POST", "/iserver/watchlist", Reply(delay=0.6))
    with pytest.raises(ApiTimeoutError, match=r"POST /iserver/watchlist"):
        client.create_watchlist("1", "w", [{"C": 265598}])


def test_pacer_rate_window_with_a_fake_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(
        {"b": PacingBucket("b", rate=1, per=5)},
        PacingBucket("g", rate=10, per=1),
        clock=lambda: now[0],
        sleep=sleep,
        safety=0,
    )
    starts = []
    for _ in range(25):
        with pacer.slot(None):
            starts.append(now[0])
    # 10 per second: the 11th start waits until t=1, the 21st until t=2.
    assert starts[9] == 0.0 and starts[10] == pytest.approx(1.0) and starts[20] == pytest.approx(2.0)
    for _ in range(3):
        with pacer.slot("b"):
            starts.append(now[0])
    assert starts[-1] - starts[-3] == pytest.approx(10.0)


def test_pacer_keeps_a_safety_margin_over_the_window() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = Pacer({}, PacingBucket("g", rate=2, per=1), clock=lambda: now[0], sleep=sleep)
    starts = []
    for _ in range(3):
        with pacer.slot(None):
            starts.append(now[0])
    assert starts[2] == pytest.approx(1.0 * 1.01 + 0.025)


def test_history_for_20_conids_stays_within_5_in_flight(recorder: RecordingServer) -> None:
    bars = {"data": [{"o": 1, "c": 1, "h": 1, "l": 1, "v": 1, "t": 1700000000000}]}
    recorder.reply("GET", "/iserver/marketdata/history", Reply(body=bars, delay=0.05))
    with IbkrClient(account_id="DU1234567", url=recorder.url, pacing_time_scale=0.01, auto_preflight=False) as c:
        out = c.marketdata_history_by_conids([str(100 + i) for i in range(20)], period="1d", bar="1h")
    assert len(out) == 20 and all(isinstance(v, list) and len(v) == 1 for v in out.values())
    assert recorder.max_in_flight["/v1/api/iserver/marketdata/history"] == 5
    assert PACING_BUCKETS["md_history"].concurrent == 5


def test_one_client_from_8_threads(recorder: RecordingServer) -> None:
    recorder.reply("GET", "/portfolio/accounts", Reply(body=[{"id": "DU1234567"}]))
    recorder.reply("GET", "/iserver/accounts", Reply(body={"accounts": ["DU1234567"]}))
    errors: list[BaseException] = []
    results: list[object] = []
    lock = threading.Lock()
    with IbkrClient(account_id="DU1234567", url=recorder.url, pacing=False, auto_preflight=False) as c:

        def work(n: int) -> None:
            try:
                for i in range(50):
                    data = (c.portfolio_accounts() if (n + i) % 2 else c.receive_brokerage_accounts()).data
                    with lock:
                        results.append(data)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert not errors
    assert len(results) == 400 and len(recorder.requests) == 400
    assert all(r in ([{"id": "DU1234567"}], {"accounts": ["DU1234567"]}) for r in results)


def test_debug_log_masks_account_ids_when_asked(recorder: RecordingServer, caplog: pytest.LogCaptureFixture) -> None:
    with IbkrClient(account_id="DU1234567", url=recorder.url, pacing=False, mask_account_ids=True) as c:
        with caplog.at_level(logging.DEBUG, logger="ibkr_sdk"):
            c.portfolio_summary()
    text = caplog.text
    assert "/portfolio/DU****567/summary" in text and "DU1234567" not in text
    handlers = logging.getLogger("ibkr_sdk").handlers
    assert [type(h) for h in handlers] == [logging.NullHandler], "the library installs only a NullHandler"


def test_clients_of_one_process_share_the_limits(recorder: RecordingServer) -> None:
    a = IbkrClient(url=recorder.url, pacing_time_scale=0.5)
    b = IbkrClient(url=recorder.url, pacing_time_scale=0.5)
    other = IbkrClient(url=recorder.url.replace("127.0.0.1", "localhost"), pacing_time_scale=0.5)
    assert a._transport.pacer is b._transport.pacer, "IBKR counts per IP: one set of limits per server"
    assert other._transport.pacer is not a._transport.pacer
    for c in (a, b, other):
        c.close()
