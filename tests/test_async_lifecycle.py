"""Session recovery (issue 24) on AsyncIbkrClient: the same flows as IbkrClient. A drop re-opens the brokerage
session once with compete=false for many concurrent tasks, reads are sent again, an order refused by the drop is
not; a competing login raises; the streaming client re-subscribes once the session is back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ibkr_sdk import NotAuthenticatedError, OrderRequest, SessionCompetingError
from ibkr_sdk.lib.aio.client import AsyncIbkrClient
from ibkr_sdk.simulator import Simulator
from tests.test_session_lifecycle import AAPL, ACCOUNT, ANSWERS, count, reopen_bodies, sim  # noqa: F401


def _client(sim: Simulator, **options: Any) -> AsyncIbkrClient:  # noqa: F811
    settings: dict[str, Any] = {"url": sim.url, "account_id": ACCOUNT, "timeout": 5, "pacing": False}
    settings.update(options)
    return AsyncIbkrClient(**settings)


def test_eight_tasks_share_one_reopen_and_reads_are_sent_again(sim: Simulator) -> None:  # noqa: F811
    async def main() -> list[Any]:
        async with _client(sim) as a, _client(sim) as b:
            await a.receive_brokerage_accounts()
            await b.receive_brokerage_accounts()
            sim.drop_brokerage_session()
            sim.clear_requests()
            return await asyncio.gather(*((a, b)[n % 2].live_orders() for n in range(8)), return_exceptions=True)

    results = asyncio.run(main())
    assert not [r for r in results if isinstance(r, BaseException)]
    assert 1 <= len(reopen_bodies(sim)) <= 2 and all(body["compete"] is False for body in reopen_bodies(sim))
    assert count(sim, "live_orders") >= 9  # each refused read was sent again once the session was open


def test_an_order_refused_by_a_drop_is_not_sent_again(sim: Simulator) -> None:  # noqa: F811
    order = OrderRequest(conid=AAPL, side="BUY", quantity=1, order_type="MKT", tif="DAY")

    async def main() -> Any:
        async with _client(sim) as client:
            await client.receive_brokerage_accounts()
            sim.drop_brokerage_session()
            sim.clear_requests()
            with pytest.raises(NotAuthenticatedError, match="not placed") as caught:
                await client.place_order(order, ANSWERS)
            assert "not sent again" in str(caught.value)
            return await client.place_order(order, ANSWERS)

    placed = asyncio.run(main())
    assert placed.data["order_status"] and count(sim, "place_order") == 2 and len(sim.orders) == 1
    assert reopen_bodies(sim) == [{"publish": True, "compete": False}]


def test_a_competing_login_raises_and_is_never_taken_over(sim: Simulator) -> None:  # noqa: F811
    async def main() -> None:
        async with _client(sim) as client:
            await client.receive_brokerage_accounts()
            sim.compete()
            sim.clear_requests()
            for _ in range(3):
                with pytest.raises(SessionCompetingError, match="compet"):
                    await client.live_orders()

    asyncio.run(main())
    assert reopen_bodies(sim) == [] and count(sim, "authentication_status") == 1


def test_the_streaming_client_survives_a_drop_and_sends_each_subscription_once_more(
    sim: Simulator,  # noqa: F811
) -> None:
    pytest.importorskip("websockets")
    from ibkr_sdk.lib.aio.ws import AsyncIbkrWsClient
    from ibkr_sdk.lib.ws import MarketDataSubscription, OrdersSubscription, events
    from tests.test_ws_simulator import received

    sim.streaming.heartbeat = 0.2
    sim.streaming.md_interval = 0.05
    subs = [MarketDataSubscription(conid=str(AAPL), fields=["31"]), OrdersSubscription()]

    async def main() -> list[str]:
        async with _client(sim) as rest:
            ws = AsyncIbkrWsClient(ibkr_client=rest, cycle_interval=0.02, reconnect_delay=0.05)
            async with ws:
                handles = [await ws.subscribe(s) for s in subs]
                assert await ws.wait(handles, timeout=5)
                mark = len(received(sim))
                sim.drop_brokerage_session()
                said = []
                async for event in ws.events(events.SessionChanged):
                    said.append(event.state)
                    if event.state == "open":
                        break
                assert await ws.wait(handles, timeout=5)
                await asyncio.sleep(0.2)  # room for a duplicate to show
                return said + [t for t in received(sim)[mark:] if t.startswith(("smd", "sor"))]

    said_and_sent = asyncio.run(asyncio.wait_for(main(), 30))
    assert said_and_sent[:2] == ["closed", "open"]
    assert sorted(said_and_sent[2:]) == sorted(s.subscribe_payload() for s in subs), "each sent once more"
    assert reopen_bodies(sim) == [{"publish": True, "compete": False}]
