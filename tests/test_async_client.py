"""AsyncIbkrClient against the simulator over real sockets: the sync client's order-safety scenarios (imported from
tests/test_order_safety.py), cancellation in the middle of the order flow, the order lock and the pacer shared with
sync clients, 100 concurrent paced calls without a 429 and without a thread per request, a loop never blocked."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import pytest

from ibkr_sdk import (
    ApiConnectionError,
    IbkrClient,
    OrderQuestionError,
    OrderStateUnknownError,
    RequestValidationError,
)
from ibkr_sdk.lib.aio.client import AsyncIbkrClient
from ibkr_sdk.lib.orders import order_lock
from ibkr_sdk.simulator import Simulator
from tests.test_order_safety import AAPL, ACCOUNT, LOST_AFTER_BOOKING, MKT, NO_DATA, _sent

T = TypeVar("T")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture(autouse=True)
def _fast_reconciliation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ibkr_sdk.lib.orders.RESOLVE_INTERVAL", 0.05)


def _client(sim: Simulator, **options: Any) -> AsyncIbkrClient:
    settings: dict[str, Any] = {"url": sim.url, "account_id": ACCOUNT, "timeout": 0.5, "max_retries": 0}
    settings["pacing"] = False
    settings.update(options)
    return AsyncIbkrClient(**settings)


def _run(sim: Simulator, body: Callable[[AsyncIbkrClient], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with _client(sim, **options) as client:
            return await asyncio.wait_for(body(client), 30)

    return asyncio.run(main())


# --- the sync client's order-safety scenarios, on the asyncio client ---------------------------------------------


@pytest.mark.parametrize(("kind", "value"), LOST_AFTER_BOOKING)
def test_lost_answer_to_the_reply_finds_the_booked_order(sim: Simulator, kind: str, value: float | None) -> None:
    sim.inject("reply", kind, value, after=True)
    result = _run(sim, lambda c: c.place_order(MKT, NO_DATA))
    booked = sim.orders
    assert len(booked) == 1 and booked[0].coid and booked[0].coid.startswith("sdk-")
    expected = {"order_id": str(booked[0].order_id), "order_status": booked[0].status, "cOID": booked[0].coid}
    assert result.data == expected
    assert _sent(sim, "place_order") == 1 and _sent(sim, "reply") == 1, "nothing is sent twice"


@pytest.mark.parametrize(("kind", "value"), LOST_AFTER_BOOKING)
def test_lost_answer_to_the_order_post_finds_the_booked_order(sim: Simulator, kind: str, value: float | None) -> None:
    async def body(c: AsyncIbkrClient) -> Any:
        await c.live_marketdata_snapshot(conids=str(AAPL), fields="31")
        sim.inject("place_order", kind, value, after=True)
        return await c.place_order(dict(MKT, cOID="mine-1"), {})

    result = _run(sim, body)
    assert [o.coid for o in sim.orders] == ["mine-1"]
    assert result.data["cOID"] == "mine-1" and result.data["order_id"] == str(sim.orders[0].order_id)
    assert _sent(sim, "place_order") == 1


@pytest.mark.parametrize(("kind", "value"), [("reset", None), ("stall", 1.0), ("status", 503)], ids=str)
def test_answer_lost_before_booking_raises_state_unknown_with_the_coid(
    sim: Simulator, kind: str, value: float | None
) -> None:
    sim.inject("reply", kind, value)
    with pytest.raises(OrderStateUnknownError) as info:
        _run(sim, lambda c: c.place_order(MKT, NO_DATA))
    coid = next(r.body["orders"][0]["cOID"] for r in sim.requests if r.endpoint == "place_order")
    assert info.value.coid == coid and coid in str(info.value)
    assert sim.orders == [] and _sent(sim, "reply") == 1 and _sent(sim, "live_orders") == 2


def test_lost_answer_to_a_modification_is_not_resent(sim: Simulator) -> None:
    async def body(c: AsyncIbkrClient) -> Any:
        await c.live_marketdata_snapshot(conids=str(AAPL), fields="31")
        placed = (await c.place_order(dict(MKT, orderType="LMT", price=1.0, cOID="m-1"), {"o163": True})).data
        await c.suppress_messages(["o163"])
        sim.inject("modify_order", "stall", 1.0, after=True)
        modified = await c.modify_order(placed["order_id"], dict(MKT, orderType="LMT", price=2.0), {"o163": True})
        sim.inject("modify_order", "status", 503)
        with pytest.raises(OrderStateUnknownError) as info:
            await c.modify_order(placed["order_id"], dict(MKT, orderType="LMT", price=3.0), {"o163": True})
        return placed["order_id"], modified.data, info.value

    order_id, modified, error = _run(sim, body)
    assert modified == {"order_id": order_id, "order_status": "Submitted", "cOID": "m-1"}
    assert error.order_id == order_id and error.coid == "m-1"
    assert [o.price for o in sim.orders] == [2.0] and _sent(sim, "modify_order") == 2


@pytest.mark.parametrize(
    ("answers", "order", "param"),
    [
        (None, MKT, "answers"),
        ({163: True}, MKT, "answers"),
        ({"o163": "no"}, MKT, "answers"),
        ({}, dict(MKT, pricee=1.0), "order_request"),
        ({}, dict(MKT, orderType="LMT", price=float("nan")), "order_request"),
    ],
    ids=["none", "int-key", "str-value", "typo", "nan"],
)
def test_bad_input_is_refused_before_sending(sim: Simulator, answers: Any, order: Any, param: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        _run(sim, lambda c: c.place_order(order, answers))
    assert info.value.method == "place_order" and info.value.param == param and "Nothing was sent" in str(info.value)
    with pytest.raises(RequestValidationError, match=r"trades\(\): parameter 'days' must be from 1 to 7"):
        _run(sim, lambda c: c.trades(days=-3))
    assert sim.requests == []


def test_message_ids_as_answers_and_a_declined_question(sim: Simulator) -> None:
    async def body(c: AsyncIbkrClient) -> Any:
        placed = await c.place_order(MKT, {"o354": True}, ACCOUNT)
        with pytest.raises(OrderQuestionError) as info:
            await c.place_order(dict(MKT, orderType="LMT", price=1.0), {"o163": False})
        return placed, info.value

    placed, declined = _run(sim, body)
    assert isinstance(placed.data, dict) and placed.data["order_id"] == str(sim.orders[0].order_id)
    assert declined.declined and len(sim.orders) == 1


def test_unreachable_gateway_says_nothing_was_sent() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        async with AsyncIbkrClient(url=f"http://127.0.0.1:{port}/v1/api/", account_id=ACCOUNT, pacing=False) as c:
            await c.place_order(MKT, {})

    with pytest.raises(ApiConnectionError) as info:
        asyncio.run(main())
    assert info.value.maybe_sent is False


# --- cancellation in the middle of the order flow ------------------------------------------------------------------


def test_a_caller_cancelled_mid_flow_leaves_no_question_open_and_reports_the_order(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.inject("reply", "latency", 0.3)  # the question is being answered when the caller goes away

    async def body(c: AsyncIbkrClient) -> Any:
        task = asyncio.ensure_future(c.place_order(dict(MKT, cOID="cancel-1"), NO_DATA))
        while _sent(sim, "place_order") == 0:  # logged once answered: the reply goes out next, and takes 0.3 s
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        locked = order_lock(c, None).locked()
        again = await c.place_order(dict(MKT, cOID="after-1"), NO_DATA)  # the client stays usable
        return locked, again.data

    with caplog.at_level(logging.INFO, logger="ibkr_sdk"):
        locked, again = _run(sim, body)
    assert not locked, "the order lock is released once the shielded flow ended"
    assert [o.coid for o in sim.orders] == ["cancel-1", "after-1"] and again["order_id"]
    assert _sent(sim, "place_order") == 2 and _sent(sim, "reply") == 2, "the question was answered, not left open"
    assert any("cancel-1" in r.getMessage() and "cancelled" in r.getMessage() for r in caplog.records)


def test_a_caller_cancelled_while_waiting_for_the_order_lock_sends_nothing(sim: Simulator) -> None:
    async def body(c: AsyncIbkrClient) -> Any:
        lock = order_lock(c, None)
        assert lock.acquire()  # another exchange (e.g. a sync thread) holds the account's lock
        task = asyncio.ensure_future(c.place_order(MKT, NO_DATA))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.05)  # the cancellation reaches the caller while the lock is still held
        lock.release()
        with pytest.raises(asyncio.CancelledError):
            await task

    _run(sim, body)
    assert _sent(sim, "place_order") == 0 and sim.orders == []


# --- shared with sync clients: the order lock and the pacer --------------------------------------------------------


def test_sync_and_async_clients_share_the_order_lock_and_the_pacer(sim: Simulator) -> None:
    sync = IbkrClient(url=sim.url, account_id=ACCOUNT, timeout=5, max_retries=0, pacing_time_scale=0.01)
    errors: list[BaseException] = []

    def thread_orders() -> None:
        try:
            for _ in range(4):
                sync.place_order(MKT, NO_DATA)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    async def body(c: AsyncIbkrClient) -> Any:
        assert c._transport.pacer is sync._transport.pacer, "one set of limits per server in the process"
        thread = threading.Thread(target=thread_orders)
        thread.start()
        outcomes = await asyncio.gather(*(c.place_order(MKT, NO_DATA) for _ in range(4)), return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 30)
        return outcomes

    outcomes = _run(sim, body, timeout=5, pacing=True, pacing_time_scale=0.01)
    sync.close()
    assert errors == [] and not [o for o in outcomes if isinstance(o, BaseException)]
    assert len(sim.orders) == 8 and _sent(sim, "place_order") == 8 and _sent(sim, "reply") == 8


# --- native: no thread per request, no 429, a loop never blocked ---------------------------------------------------


def _client_threads() -> int:
    """OS threads of this process, less any in-process simulator's own."""
    simulator = sum(1 for t in threading.enumerate() if t.name.startswith("ibkr-simulator"))
    return len(os.listdir("/proc/self/task")) - simulator


class _Heartbeat:
    """A 10 ms task on the loop, and a 10 ms thread as a control: a loop gap the control thread did not share
    (it ticked inside it) means the loop itself was blocked; a gap both share is the machine being busy."""

    def __init__(self) -> None:
        self.loop_ticks: list[float] = []
        self.thread_ticks: list[float] = []
        self._stop = threading.Event()

    async def beat(self) -> None:
        while not self._stop.is_set():
            self.loop_ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    def control(self) -> None:
        while not self._stop.wait(0.01):
            self.thread_ticks.append(time.monotonic())

    def stop(self) -> None:
        self._stop.set()

    def blocked_gaps(self, limit: float = 0.1) -> list[float]:
        gaps = []
        for before, after in zip(self.loop_ticks, self.loop_ticks[1:], strict=False):
            if after - before <= limit:
                continue
            inside = [t for t in self.thread_ticks if before + 0.03 < t < after - 0.03]
            covered = len(inside) * 0.01 >= (after - before - 0.06) * 0.5  # the control kept ticking: not the CPU
            if covered:
                gaps.append(after - before)
        return gaps


def _paced_simulator_in_child(conn: Connection, scale: float) -> None:
    """A paced simulator in its own process: its request threads then share no GIL with the loop under test."""
    with Simulator(pacing=True, pacing_time_scale=scale) as sim:
        conn.send(sim.url)
        if conn.poll(60):  # the parent's "done"; bounded, should the parent die
            conn.recv()
        conn.send([r.status for r in sim.requests if r.endpoint == "live_marketdata_snapshot"])


def test_100_concurrent_paced_calls_draw_no_429_add_few_threads_and_never_block_the_loop() -> None:
    scale = 0.02  # the global 10 per second becomes 10 per 20 ms
    # The simulator runs in a child process. In this process it would compete with the loop for the GIL, and on a
    # busy machine that shows as a loop gap no call of ours caused.
    parent, child = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_paced_simulator_in_child, args=(child, scale))
    server.start()
    try:
        assert parent.poll(60), "the simulator process did not start"
        url = parent.recv()
        heart = _Heartbeat()
        control = threading.Thread(target=heart.control)
        control.start()

        async def main() -> tuple[int, int, list[Any]]:
            beat = asyncio.ensure_future(heart.beat())
            before = _client_threads()
            peak = before
            async with AsyncIbkrClient(url=url, account_id=ACCOUNT, pacing_time_scale=scale, max_retries=0) as c:
                await c.receive_brokerage_accounts()
                calls = asyncio.gather(
                    *(c.live_marketdata_snapshot(conids=str(AAPL), fields=["31", "84"]) for _ in range(100))
                )
                while not calls.done():
                    peak = max(peak, _client_threads())
                    await asyncio.sleep(0.005)
                results = await calls
            heart.stop()
            await beat
            return before, peak, results

        before, peak, results = asyncio.run(main())
        control.join(5)
        parent.send("done")
        assert parent.poll(30), "the simulator process did not report its requests"
        statuses = parent.recv()
    finally:
        server.join(30)
        if server.is_alive():
            server.kill()
            server.join(5)
    assert len(results) == 100 and len(statuses) == 100 and 429 not in statuses
    assert peak - before <= 4, f"threads added during 100 concurrent calls: {peak - before}"
    assert heart.blocked_gaps() == [], "the loop was blocked (its heartbeat stopped while a thread kept ticking)"


def test_pacing_counts_arrivals_when_answers_take_300_ms() -> None:
    """Answers slower than the pacing period: requests still reach the server within its limits (no 429)."""
    scale = 0.05  # 10 per 50 ms at the server; the answers take 300 ms
    with Simulator(pacing=True, pacing_time_scale=scale, latency=0.3) as sim:

        async def main() -> list[Any]:
            async with AsyncIbkrClient(
                url=sim.url, account_id=ACCOUNT, pacing_time_scale=scale, max_retries=0, timeout=5
            ) as c:
                await c.receive_brokerage_accounts()
                return await asyncio.gather(
                    *(c.live_marketdata_snapshot(conids=str(AAPL), fields="31") for _ in range(33)),
                    return_exceptions=True,
                )

        outcomes = asyncio.run(main())
        statuses = [r.status for r in sim.requests if r.endpoint == "live_marketdata_snapshot"]
    assert not [o for o in outcomes if isinstance(o, BaseException)]
    assert len(statuses) == 33 and 429 not in statuses
