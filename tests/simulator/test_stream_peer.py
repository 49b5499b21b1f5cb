"""The peer library's WebSocket client (ibind 0.2.2), unchanged, against the simulator: skipped when not installed.

ibind is not a dependency of the project; this checks that a client nobody here wrote accepts the simulator's
socket as a gateway (handshake and cookie, ready frames, acknowledgements, routing of smd, sor and spl).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, answer_all, make_client

ibind = pytest.importorskip("ibind", reason="the peer library ibind is not installed")
pytest.importorskip("websocket", reason="websocket-client (the peer's transport) is not installed")


def _wait_get(accessor: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = accessor.get(block=True, timeout=0.2)
        if item is not None:
            return item
    raise AssertionError(f"nothing arrived within {timeout}s")


@pytest.fixture
def peer_ws(sim: Simulator) -> Iterator[tuple[Any, Any]]:
    from ibind.ibkr_ws.ibkr_ws_client import IbkrWsClient

    sim.streaming.heartbeat = 0.5
    sim.streaming.md_interval = 0.05
    sim.streaming.pnl_interval = 0.2
    rest = ibind.IbkrClient(url=sim.url, account_id=ACCOUNT, cacert=False, auto_register_shutdown=False)
    sink = ibind.QueueSink()
    ws_url = sim.url.replace("http://", "ws://") + "ws"
    client = IbkrWsClient(url=ws_url, account_id=ACCOUNT, ibkr_client=rest, cacert=False, sink=sink)
    client.start()
    try:
        yield client, sink
    finally:
        client.shutdown()


def test_peer_client_subscribes_and_receives_quotes_orders_and_pnl(sim: Simulator, peer_ws: tuple[Any, Any]) -> None:
    from ibind.ibkr_ws.ibkr_events import MarketData, Orders, Pnl
    from ibind.ibkr_ws.ibkr_subscriptions import MarketDataSubscription, OrdersSubscription, PnlSubscription

    client, sink = peer_ws
    quotes = sink.new_queue_accessor(MarketData)
    orders = sink.new_queue_accessor(Orders)
    pnl = sink.new_queue_accessor(Pnl)
    md = client.subscribe(MarketDataSubscription(conid=str(AAPL), fields=["31", "84", "86"]))
    assert md.wait(timeout=10), f"market data not acknowledged: {md}"
    quote = _wait_get(quotes, 5)
    assert str(quote.conid) == str(AAPL) and quote.data
    assert client.subscribe(PnlSubscription()).wait(timeout=10)
    assert f"{ACCOUNT}.Core" in _wait_get(pnl, 5).data["args"]
    client.subscribe(OrdersSubscription())
    api = make_client(sim)
    api.receive_brokerage_accounts()
    ticket = {"conid": AAPL, "orderType": "LMT", "price": 1.0, "quantity": 1, "side": "BUY", "tif": "DAY"}
    answer, _ = answer_all(api, api._place_order(orders=[ticket]).data)
    order_id = int(answer[0]["order_id"])
    deadline = time.monotonic() + 10
    seen: list[int] = []
    while order_id not in seen and time.monotonic() < deadline:
        event = orders.get(block=True, timeout=0.2)
        if event is not None:
            seen += [o["orderId"] for o in event.data["args"]]
    assert order_id in seen
