"""IbkrWsClient against the simulator's WebSocket (same port as its REST routes, same state): acknowledgements per
topic, order updates for REST orders, reconnect after a drop with each subscription re-sent exactly once, stall
detection, scaled market-data expiry, malformed frames. Assertions are on what the simulator received."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ibkr_sdk import IbkrClient
from ibkr_sdk.lib.ws import (
    AccountLedgerSubscription,
    AccountSummarySubscription,
    BindingStatus,
    IbkrWsClient,
    MarketDataSubscription,
    MarketHistorySubscription,
    OrdersSubscription,
    PnlSubscription,
    PriceLadderSubscription,
    QueueSink,
    TradesSubscription,
    events,
)
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import answer_all

pytest.importorskip("websockets")

AAPL = "265598"
IBM = "8314"
ACCOUNT = "DU1234567"


# Returns as soon as `check` holds, so a long bound costs nothing; it only lets a starved machine catch up.
def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as sim:
        sim.streaming.heartbeat = 0.2
        sim.streaming.md_interval = 0.05
        sim.streaming.pnl_interval = 0.1
        sim.streaming.account_interval = 0.2
        yield sim


@pytest.fixture
def rest(sim: Simulator) -> Iterator[IbkrClient]:
    client = IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def make(rest: IbkrClient) -> Iterator[Callable[..., IbkrWsClient]]:
    made: list[IbkrWsClient] = []

    def factory(**kwargs: Any) -> IbkrWsClient:
        options: dict[str, Any] = {
            "ibkr_client": rest,  # the URL (ws://<the REST host>/v1/api/ws) and session come from the REST client
            "cycle_interval": 0.02,
            "ack_timeout": 2.0,
            "reconnect_delay": 0.05,
            "max_reconnect_delay": 0.2,
            "heartbeat_timeout": 2.0,
        }
        options.update(kwargs)
        client = IbkrWsClient(**options)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.shutdown()


def received(sim: Simulator, prefix: str = "", connection: int | None = None) -> list[str]:
    return [t for n, t in list(sim.ws_received) if t.startswith(prefix) and (connection is None or n == connection)]


TOPICS: list[Any] = [
    MarketDataSubscription(conid=AAPL, fields=["31", "84", "86"]),
    AccountSummarySubscription(account_id=ACCOUNT),
    AccountLedgerSubscription(account_id=ACCOUNT),
    OrdersSubscription(),
    PnlSubscription(),
    TradesSubscription(days=1),
    MarketHistorySubscription(conid=AAPL, period="1d", bar="1h"),
    PriceLadderSubscription(conid=AAPL, account_id=ACCOUNT),
]


@pytest.mark.parametrize("subscription", TOPICS, ids=lambda s: type(s).__name__)
def test_each_topic_is_acknowledged_and_unsubscribed(
    sim: Simulator, make: Callable[..., IbkrWsClient], subscription: Any
) -> None:
    sink = QueueSink()
    client = make(sink=sink)
    assert client.start()
    handle = client.subscribe(subscription)
    assert handle.wait(5), handle
    assert wait_until(lambda: received(sim, subscription.subscribe_payload()[:3]) == [subscription.subscribe_payload()])
    if subscription.confirms_subscribe:  # acknowledged by a frame of the stream, which the sink got too
        assert sink.get(subscription.event_type) is not None
    client.unsubscribe(subscription)
    assert handle.wait(5) and handle.status is BindingStatus.UNSUBSCRIBED
    unsubscribe = subscription.unsubscribe_payload()
    assert wait_until(lambda: received(sim, unsubscribe[:3]) == [unsubscribe])


def test_rest_orders_arrive_over_the_socket(
    sim: Simulator, rest: IbkrClient, make: Callable[..., IbkrWsClient]
) -> None:
    sink = QueueSink()
    client = make(sink=sink)
    assert client.start()
    assert client.subscribe(OrdersSubscription()).wait(5)
    rest.live_marketdata_snapshot(conids=AAPL, fields=["31"])
    ticket = {"conid": int(AAPL), "orderType": "LMT", "price": 1.0, "quantity": 3, "side": "BUY", "tif": "DAY"}
    placed, _ = answer_all(rest, rest._place_order(orders=[{**ticket, "cOID": "ws-client-1"}]).data)
    order_id = int(placed[0]["order_id"])
    statuses: list[str] = []

    def collect(done: Callable[[str], bool]) -> bool:
        while (event := sink.get(events.Orders)) is not None:
            statuses.extend(o.get("status", "") for o in event.data["args"] if o.get("orderId") == order_id)
        return any(done(s) for s in statuses)

    assert wait_until(lambda: collect(lambda s: s in ("PreSubmitted", "Submitted")))
    rest.cancel_order(order_id=str(order_id))
    assert wait_until(lambda: collect(lambda s: "Cancel" in s))
    assert statuses[0] in ("PreSubmitted", "Submitted") and "Cancel" in statuses[-1]


def test_reconnect_after_a_drop_resends_each_subscription_exactly_once(
    sim: Simulator, make: Callable[..., IbkrWsClient]
) -> None:
    client = make()
    assert client.start()
    subs: list[Any] = [
        MarketDataSubscription(conid=AAPL, fields=["31"]),
        MarketDataSubscription(conid=IBM, fields=["84"]),
        OrdersSubscription(),
        PnlSubscription(),
        AccountSummarySubscription(account_id=ACCOUNT),
    ]
    handles = [client.subscribe(s) for s in subs]
    assert client.wait_all(handles, timeout_each=5) == []
    sim.inject("ws", "reset")
    assert wait_until(lambda: sim.ws_connections == 2 and client.is_authenticated() and all(h.active for h in handles))
    time.sleep(0.3)  # room for a duplicate to show
    again = received(sim, connection=2)
    for sub in subs:
        assert again.count(sub.subscribe_payload()) == 1, again
        assert received(sim, connection=1).count(sub.subscribe_payload()) == 1
    assert client.stats()["reconnects"] == 1


def test_a_stall_is_detected_from_missing_heartbeats(sim: Simulator, make: Callable[..., IbkrWsClient]) -> None:
    client = make(heartbeat_timeout=0.6)
    assert client.start()
    handle = client.subscribe(PnlSubscription())
    assert handle.wait(5)
    sim.inject("ws", "stall", 5.0)  # the socket stays open and answers pings, but sends nothing
    assert wait_until(lambda: client.stats()["stalls"] >= 1, 3)
    assert wait_until(lambda: sim.ws_connections == 2 and handle.active, 5)
    assert received(sim, "spl", connection=2) == [handle.subscription.subscribe_payload()]


def test_market_data_is_renewed_before_it_expires(sim: Simulator, make: Callable[..., IbkrWsClient]) -> None:
    sim.streaming.md_expiry = 0.6  # IBKR's 15 minutes, scaled down
    client = make(md_renew_after=0.3)
    assert client.start()
    handle = client.subscribe(MarketDataSubscription(conid=IBM, fields=["31"]))
    assert handle.wait(5)
    time.sleep(1.5)  # well past the expiry of the first request
    price = client.quote(IBM)
    assert price is not None
    sim.set_price(int(IBM), (price.number("31") or 100.0) + 7.0)
    assert wait_until(lambda: (q := client.quote(IBM)) is not None and q["31"] != price["31"], 3)  # still streaming
    assert handle.active and sim.ws_connections == 1
    assert len(received(sim, "smd", connection=1)) >= 4


def test_a_malformed_frame_is_skipped(sim: Simulator, make: Callable[..., IbkrWsClient]) -> None:
    client = make()
    assert client.start()
    assert client.subscribe(MarketDataSubscription(conid=IBM, fields=["31"])).wait(5)
    sim.inject("ws", "malformed")
    assert wait_until(lambda: client.stats()["malformed"] == 1, 3)
    before = client.quote(IBM)
    assert before is not None
    sim.set_price(int(IBM), (before.number("31") or 100.0) + 3.0)
    assert wait_until(lambda: (q := client.quote(IBM)) is not None and q["31"] != before["31"], 3)
    assert sim.ws_connections == 1 and client.is_authenticated()


def test_no_session_means_nothing_is_sent_until_there_is_one(sim: Simulator, make: Callable[..., IbkrWsClient]) -> None:
    sim.logout()  # /tickle answers 401: there is no session cookie to open the socket with
    client = make(connect_timeout=0.3)
    assert client.start() is False
    handle = client.subscribe(PnlSubscription())
    time.sleep(0.3)
    assert sim.ws_connections == 0 and received(sim) == [] and handle.status is BindingStatus.NEW
    sim.login()
    assert handle.wait(5)  # the client kept trying (with backoff) and sent the subscription once ready
    assert received(sim, "spl") == ["spl+{}"]


def test_cli_streams_quotes_from_the_gateway_of_its_url(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from ibkr_sdk.lib.cli import main

    assert main(["--url", sim.url, "stream", "md", AAPL, "--fields", "31,84,86", "--count", "1", "--seconds", "5"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    quote = json.loads(line)
    assert quote["conid"] == AAPL and {"31", "84", "86"} <= set(quote["fields"])
    assert received(sim, "smd") == ['smd+265598+{"fields":["31","84","86"]}']


def test_subscriptions_wait_for_the_brokerage_session() -> None:
    with Simulator(authenticated=False) as sim:  # logged in (the socket opens), no brokerage session yet
        # Without re-authentication the client only waits (with it, it would open the session itself).
        rest = IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False, max_retries=0, auto_reauthenticate=False)
        client = IbkrWsClient(ibkr_client=rest, connect_timeout=0.5, cycle_interval=0.02)
        try:
            assert client.start() is False  # sts says not authenticated: not ready
            handle = client.subscribe(PnlSubscription())
            time.sleep(0.3)
            assert sim.ws_connections == 1 and received(sim, "spl") == [] and not client.is_authenticated()
            sim.login(brokerage=True)  # the socket then gets sts authenticated=true
            assert handle.wait(5)
            assert received(sim, "spl", connection=1) == ["spl+{}"] and sim.ws_connections == 1
        finally:
            client.shutdown()
            rest.close()


def test_wss_with_the_certificate_of_the_rest_client() -> None:
    with Simulator(https=True) as sim:
        rest = IbkrClient(url=sim.url, account_id=ACCOUNT, cacert=sim.cacert, pacing=False)
        client = IbkrWsClient(ibkr_client=rest)  # wss://, verified against the same CA bundle as the REST calls
        try:
            assert repr(client).startswith("IbkrWsClient(url='wss://")
            assert client.start()
            assert client.subscribe(PnlSubscription()).wait(5)
        finally:
            client.shutdown()
            rest.close()
