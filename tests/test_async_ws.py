"""AsyncIbkrWsClient against the simulator's WebSocket: `async for` over events, merged quotes, a subscription made
before the session is ready, unsubscribe on the wire when the call returns, reconnect with each subscription re-sent
once, leaving the context within a second with no thread left; and the sync client's unsubscribe-then-shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ibkr_sdk import IbkrClient
from ibkr_sdk.lib.aio.client import AsyncIbkrClient
from ibkr_sdk.lib.aio.ws import AsyncIbkrWsClient, AsyncSubscriptionHandle
from ibkr_sdk.lib.ws import IbkrWsClient, MarketDataSubscription, OrdersSubscription, PnlSubscription, events
from ibkr_sdk.simulator import Simulator
from tests.test_ws_simulator import received, wait_until

pytest.importorskip("websockets")

AAPL = "265598"
ACCOUNT = "DU1234567"
FAST = {"cycle_interval": 0.02, "ack_timeout": 2.0, "reconnect_delay": 0.05, "max_reconnect_delay": 0.2}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as sim:
        sim.streaming.heartbeat = 0.2
        sim.streaming.md_interval = 0.05
        sim.streaming.pnl_interval = 0.1
        yield sim


def test_streaming_through_async_for(sim: Simulator) -> None:
    def ours() -> list[str]:
        return sorted(t.name for t in threading.enumerate() if not t.name.startswith("ibkr-simulator"))

    threads_before = ours()

    async def main() -> dict[str, Any]:
        async with AsyncIbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False) as rest:
            ws = AsyncIbkrWsClient(ibkr_client=rest, **FAST)
            async with ws:
                # made as soon as the block is entered: kept until the session is ready, then sent
                md = await ws.subscribe(MarketDataSubscription(conid=AAPL, fields=["31", "84", "86"]))
                orders = await ws.subscribe(OrdersSubscription())
                assert await ws.wait([md, orders], timeout=5)
                await rest.place_order(
                    {"conid": int(AAPL), "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"},
                    {"o354": True},
                )
                seen: dict[str, Any] = {"md": 0, "orders": 0}
                async for event in ws.events(events.MarketData, events.Orders):
                    seen["md" if isinstance(event, events.MarketData) else "orders"] += 1
                    if seen["md"] >= 5 and seen["orders"] >= 1:
                        break
                quote = ws.quote(AAPL)
                seen["quote"] = None if quote is None else (quote.number("31"), quote["bid_price"])
                seen["threads"] = ours()
                sent = ws.stats()["sent"]
                await ws.unsubscribe(md.subscription)
                seen["unsubscribed"] = ws.stats()["sent"] - sent  # handed to the socket when unsubscribe() returned
                started = time.monotonic()
            seen["left_in"] = time.monotonic() - started
            return seen

    seen = asyncio.run(main())
    assert seen["md"] >= 5 and seen["orders"] >= 1
    assert seen["quote"] is not None and seen["quote"][0] is not None
    assert seen["threads"] == threads_before, "no thread of its own"
    assert wait_until(lambda: received(sim, "umd") == [f"umd+{AAPL}+{{}}"], 2)
    assert seen["unsubscribed"] == 1
    assert seen["left_in"] < 3.0  # the client gives itself 0.9 s, then cancels; slack for a busy machine
    assert received(sim, "smd") == [f'smd+{AAPL}+{{"fields":["31","84","86"]}}'], "subscribed exactly once"


def test_reconnect_resends_each_subscription_once_with_a_sync_rest_client(sim: Simulator) -> None:
    rest = IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False, max_retries=0)

    async def main() -> int:
        async with AsyncIbkrWsClient(ibkr_client=rest, heartbeat_timeout=2.0, **FAST) as ws:
            handles = [await ws.subscribe(PnlSubscription()), await ws.subscribe(OrdersSubscription())]
            assert await ws.wait(handles, timeout=5)
            sim.inject("ws", "reset")
            deadline = time.monotonic() + 5
            while not (sim.ws_connections == 2 and ws.is_ready() and all(h.active for h in handles)):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # room for a duplicate to show
            reconnects: int = ws.stats()["reconnects"]
            return reconnects

    try:
        assert asyncio.run(main()) == 1
    finally:
        rest.close()
    again = received(sim, connection=2)
    assert again.count(PnlSubscription().subscribe_payload()) == 1
    assert again.count(OrdersSubscription().subscribe_payload()) == 1


def test_an_async_handle_waits_on_the_loop_and_unsubscribes_on_the_wire(sim: Simulator) -> None:
    """`await handle.wait()` yields to the loop: the connection task (on the same loop) connects and the
    acknowledgement arrives while it waits; a blocking wait would have stalled both until its timeout."""

    async def main() -> tuple[bool, int, str]:
        async with AsyncIbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False) as rest:
            ws = AsyncIbkrWsClient(ibkr_client=rest, **FAST)
            handle = await ws.subscribe(MarketDataSubscription(conid=AAPL, fields=["31"]))  # before start
            assert isinstance(handle, AsyncSubscriptionHandle) and not handle.done
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.005)

            ticker = asyncio.ensure_future(tick())
            starting = asyncio.ensure_future(ws.start())
            acknowledged = await handle.wait(5)
            during = ticks
            ticker.cancel()
            await starting
            assert await (await handle.unsubscribe()).wait(5)
            status = handle.status.value if handle.status else "none"
            await ws.shutdown()
            return acknowledged, during, status

    acknowledged, ticks, status = asyncio.run(main())
    assert acknowledged and ticks > 0 and status == "UNSUBSCRIBED"
    assert received(sim, "umd") == [f"umd+{AAPL}+{{}}"]


def test_sync_shutdown_right_after_unsubscribe_sends_the_unsubscribe_frame(sim: Simulator) -> None:
    rest = IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False, max_retries=0)
    client = IbkrWsClient(ibkr_client=rest, **FAST)
    try:
        assert client.start()
        handle = client.subscribe(MarketDataSubscription(conid=AAPL, fields=["31"]))
        assert handle.wait(5)
        client.unsubscribe(handle.subscription)
        assert client.shutdown()
    finally:
        client.shutdown()
        rest.close()
    assert wait_until(lambda: received(sim, "umd") == [f"umd+{AAPL}+{{}}"], 2)


def test_the_example_bot_runs_against_the_simulator() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "async_bot.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--seconds", "20"], capture_output=True, text=True, timeout=90, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "placing a bracket order" in proc.stdout and "socket: order" in proc.stdout


def test_the_pytest_fixture_serves_asyncio_runs(ibkr_async_client: AsyncIbkrClient) -> None:
    async def one() -> Any:
        return (await ibkr_async_client.stock_conid_by_symbol("AAPL")).data

    assert asyncio.run(one()) == {"AAPL": int(AAPL)}
    assert asyncio.run(one()) == {"AAPL": int(AAPL)}, "a second loop gets a session of its own"
