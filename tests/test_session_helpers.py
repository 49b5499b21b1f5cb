"""Tickler, shutdown handler, auto_suppress, the per-account order lock and the positions walk."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ibkr_sdk import IbkrClient, QuestionType
from tests.recording_server import RecordingServer, Reply

ORDERS = "/iserver/account/DU1234567/orders"
AAPL = {"conid": 265598, "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"}
ACK = Reply(body=[{"order_id": "1", "order_status": "Submitted"}])


def test_tickler_starts_ticks_and_stops(client: IbkrClient, recorder: RecordingServer) -> None:
    client.tickler_interval = 0.05
    client.start_tickler()
    deadline = time.monotonic() + 5
    while len(recorder.sent("POST", "/tickle")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(recorder.sent("POST", "/tickle")) >= 3
    client.stop_tickler()
    count = len(recorder.sent("POST", "/tickle"))
    time.sleep(0.2)
    assert len(recorder.sent("POST", "/tickle")) == count, "no tick after stop"
    assert not any(t.name == "ibkr_sdk-tickler" for t in threading.enumerate())


def test_close_stops_the_tickler(recorder: RecordingServer) -> None:
    c = IbkrClient(url=recorder.url, pacing=False)
    c.tickler_interval = 0.05
    c.start_tickler()
    c.close()
    assert not any(t.name == "ibkr_sdk-tickler" and t.is_alive() for t in threading.enumerate())


def test_shutdown_handler_keeps_the_previous_handler(client: IbkrClient) -> None:
    calls: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda sig, frame: calls.append(sig))
    try:
        client.tickler_interval = 30
        client.start_tickler()
        client.register_shutdown_handler()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert calls == [signal.SIGTERM], "the previously installed handler still ran"
        assert client._tickler is not None and not client._tickler.running
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_auto_suppress_cuts_round_trips(recorder: RecordingServer) -> None:
    question = Reply(body=[{"id": "q1", "message": ["no market data"], "messageIds": ["o354"]}])
    answers = {QuestionType.MISSING_MARKET_DATA: True}
    with IbkrClient(account_id="DU1234567", url=recorder.url, pacing=False, auto_preflight=False) as plain:
        recorder.reply("POST", ORDERS, question)
        recorder.reply("POST", "/iserver/reply/q1", ACK)
        plain.place_order(AAPL, answers)
        without = len(recorder.requests)
    recorder.reset()
    with IbkrClient(
        account_id="DU1234567", url=recorder.url, pacing=False, auto_preflight=False, auto_suppress=True
    ) as smart:
        recorder.reply("POST", ORDERS, ACK)  # a server honouring the suppression asks nothing
        smart.place_order(AAPL, answers)
        smart.place_order(AAPL, answers)
        assert [r.body for r in recorder.sent("POST", "/iserver/questions/suppress")] == [{"messageIds": ["o354"]}]
        assert len(recorder.sent("POST", ORDERS)) == 2
    assert without == 2  # order + reply
    assert len(recorder.requests) == 3  # suppress once + one request per order


def test_orders_on_one_account_do_not_interleave(recorder: RecordingServer) -> None:
    recorder.reply(
        "POST",
        ORDERS,
        Reply(body=[{"id": "q", "message": ["trigger and fill immediately"], "messageIds": ["o403"]}], delay=0.1),
    )
    recorder.reply("POST", "/iserver/reply/q", ACK)
    with IbkrClient(account_id="DU1234567", url=recorder.url, pacing=False, auto_preflight=False) as c:
        threads = [threading.Thread(target=c.place_order, args=(AAPL, {"o403": True})) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    kinds = ["order" if r.path.endswith("/orders") else "reply" for r in recorder.requests]
    assert kinds == ["order", "reply"] * 3, "each exchange completes before the next order starts"


def test_positions_all_walks_the_pages(client: IbkrClient, recorder: RecordingServer) -> None:
    full = [{"conid": i} for i in range(100)]
    recorder.reply("GET", "/portfolio/DU1234567/positions/0", Reply(body=full))
    recorder.reply("GET", "/portfolio/DU1234567/positions/1", Reply(body=full))
    recorder.reply("GET", "/portfolio/DU1234567/positions/2", Reply(body=[{"conid": 1000}]))
    result = client.positions_all()
    assert len(result.data) == 201
    assert [r.path for r in recorder.requests] == [f"/v1/api/portfolio/DU1234567/positions/{n}" for n in range(3)]


def test_tickler_interval_must_be_positive() -> None:
    from ibkr_sdk.lib.tickler import Tickler

    with pytest.raises(ValueError, match="interval"):
        Tickler(lambda: None, 0)


def test_clients_of_one_process_share_the_order_lock(recorder: RecordingServer) -> None:
    """IBKR runs one question/reply flow per session: a second client on the same server and account waits for the
    first one's exchange instead of invalidating its open question."""
    delayed = Reply(body=[{"order_id": "1", "order_status": "Submitted"}], delay=0.5)
    recorder.reply("POST", ORDERS, delayed, ACK)  # the first order's answer is slow, the second's is not
    finished: list[str] = []
    with (
        IbkrClient(account_id="DU1234567", url=recorder.url, pacing=False, auto_preflight=False) as a,
        IbkrClient(account_id="DU1234567", url=recorder.url, pacing=False, auto_preflight=False) as b,
    ):
        t = threading.Thread(target=lambda: (a.place_order(AAPL, {}), finished.append("a")))
        t.start()
        time.sleep(0.1)  # a holds the account's order lock while its answer is delayed
        b.place_order(AAPL, {})
        finished.append("b")
        t.join(timeout=10)
    assert finished == ["a", "b"]
