"""An ibind-style streaming program runs with only its imports changed (`ibind` -> `ibkr_sdk`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ibkr_sdk import IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.ws_gateway import LoopbackGateway


@pytest.fixture
def setup() -> Iterator[tuple[str, str]]:
    with Simulator() as sim, LoopbackGateway() as gateway:
        yield sim.url, gateway.url


def test_peer_style_program(setup: tuple[str, str]) -> None:
    rest_url, ws_url = setup
    # --- the program, as written for ibind 0.2.2 (imports changed only) ---
    from ibkr_sdk import (
        BindingStatus,
        CallbackSink,
        CompositeSink,
        IbkrWsClient,
        QueueSink,
        WsState,
        events,
        make_binding_key,
    )
    from ibkr_sdk.subscriptions import MarketDataSubscription, OrdersSubscription, PnlSubscription

    sink = QueueSink()
    seen: list[events.MarketData] = []
    callbacks = CallbackSink()
    callbacks.on(events.MarketData, seen.append)
    client = IbkrClient(url=rest_url, account_id="DU1234567")
    ws_client = IbkrWsClient("DU1234567", ws_url, ibkr_client=client, sink=CompositeSink(sink, callbacks))
    assert ws_client.start()
    handles = [
        ws_client.subscribe(PnlSubscription()),
        ws_client.subscribe(MarketDataSubscription(conid="265598", fields=["31", "84"])),
        ws_client.subscribe(OrdersSubscription()),
    ]
    failed = ws_client.wait_all(handles, timeout_each=5)
    key = make_binding_key(events.MarketData, conid="265598")
    pnl = None
    deadline = time.monotonic() + 5
    while pnl is None and time.monotonic() < deadline:
        while not sink.empty(events.Pnl):
            pnl = sink.get(events.Pnl)
        time.sleep(0.01)
    state = ws_client.get_state()
    status = ws_client.get_binding_status(key)
    active = ws_client.is_subscription_active(key)
    ws_client.shutdown()
    # --- what it got ---
    assert failed == []
    assert key == "md+265598" and status is BindingStatus.ACTIVE and active
    assert state is WsState.AUTHENTICATED and ws_client.get_state() is WsState.STOPPED
    assert pnl is not None and "DU1234567.Core" in pnl.data["args"]
    assert seen and all(isinstance(e, events.MarketData) and e.conid == "265598" for e in seen)
