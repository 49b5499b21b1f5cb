"""IbkrWsClient over real sockets: acknowledgements per topic, readiness, reconnect with exactly-once re-subscribe,
stall detection, market-data renewal, malformed frames, bounded queues, threads and shutdown."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ibkr_sdk import IbkrClient, RequestValidationError
from ibkr_sdk.lib.ws import (
    AccountLedgerSubscription,
    AccountSummarySubscription,
    BindingStatus,
    CallbackSink,
    IbkrRouter,
    IbkrWsClient,
    MarketDataSubscription,
    MarketHistorySubscription,
    OrdersSubscription,
    PnlSubscription,
    PriceLadderSubscription,
    QueueSink,
    QuoteBook,
    SubscriptionConflictError,
    TradesSubscription,
    WsState,
    events,
    parse_number,
)
from ibkr_sdk.simulator import Simulator
from tests.ws_gateway import LoopbackGateway

ACCOUNT = "DU1234567"


# Returns as soon as `check` holds, so a long bound costs nothing; it only lets a starved machine catch up.
def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


@pytest.fixture(scope="module")
def rest() -> Iterator[IbkrClient]:
    with Simulator() as sim:
        client = IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False)
        yield client
        client.close()


@pytest.fixture
def gateway() -> Iterator[LoopbackGateway]:
    with LoopbackGateway() as gw:
        yield gw


@pytest.fixture
def make(rest: IbkrClient, gateway: LoopbackGateway) -> Iterator[Callable[..., IbkrWsClient]]:
    made: list[IbkrWsClient] = []

    def factory(**kwargs: Any) -> IbkrWsClient:
        options: dict[str, Any] = {
            "url": gateway.url,
            "ibkr_client": rest,
            "account_id": ACCOUNT,
            "cycle_interval": 0.02,
            "connect_timeout": 5.0,
            "ack_timeout": 1.0,
            "reconnect_delay": 0.05,
            "max_reconnect_delay": 0.2,
        }
        options.update(kwargs)
        client = IbkrWsClient(**options)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.shutdown()


TOPICS = [
    (
        MarketDataSubscription(conid="265598", fields=["31", "84"]),
        'smd+265598+{"fields":["31","84"]}',
        "umd+265598+{}",
    ),
    (AccountSummarySubscription(account_id=ACCOUNT), f"ssd+{ACCOUNT}+{{}}", f"usd+{ACCOUNT}+{{}}"),
    (
        AccountLedgerSubscription(account_id=ACCOUNT, keys=["LedgerListBASE"]),
        f'sld+{ACCOUNT}+{{"keys":["LedgerListBASE"]}}',
        f"uld+{ACCOUNT}+{{}}",
    ),
    (OrdersSubscription(), "sor+{}", "uor+{}"),
    (PnlSubscription(), "spl+{}", "upl+{}"),
    (TradesSubscription(days=2), 'str+{"days":2}', "utr"),
    (
        MarketHistorySubscription(conid="265598", period="1d", bar="5min"),
        'smh+265598+{"period":"1d","bar":"5min"}',
        "umh+sid265598",
    ),
    (PriceLadderSubscription(conid="265598", account_id=ACCOUNT), f"sbd+{ACCOUNT}+265598", f"ubd+{ACCOUNT}"),
]


@pytest.mark.parametrize("subscription,subscribe,unsubscribe", TOPICS, ids=lambda v: getattr(v, "topic", None))
def test_subscribe_and_unsubscribe_each_topic(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway, subscription: Any, subscribe: str, unsubscribe: str
) -> None:
    sink = QueueSink()
    client = make(sink=sink)
    assert client.start()
    handle = client.subscribe(subscription)
    assert handle.wait(3), handle
    assert handle.status is BindingStatus.ACTIVE
    assert wait_until(lambda: gateway.frames(subscribe[:3]) == [subscribe])  # sent once, in the gateway's format
    client.unsubscribe(subscription)
    assert handle.wait(3)
    assert client.get_binding_status(handle.binding_key) is BindingStatus.UNSUBSCRIBED
    assert wait_until(lambda: gateway.frames(unsubscribe[:3]) == [unsubscribe])
    updates = []
    while (update := sink.get(events.SubscriptionUpdated)) is not None:
        updates.append(update.status)
    assert updates == [BindingStatus.ACTIVE, BindingStatus.UNSUBSCRIBED]


def test_session_cookie_from_tickle_and_readiness_before_subscribing(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway, rest: IbkrClient
) -> None:
    gateway.authenticated = False
    sink = QueueSink()
    client = make(sink=sink, connect_timeout=0.3)
    assert client.start() is False  # the gateway waits for a session: not ready
    handle = client.subscribe(PnlSubscription())
    time.sleep(0.2)
    assert client.get_state() is WsState.OPEN
    assert gateway.frames("spl") == []  # nothing is sent before the session is ready
    assert sink.get(events.WaitingForSession) is not None
    gateway.authenticated = True
    assert handle.wait(3)
    assert gateway.frames("spl") == ["spl+{}"]
    session = rest.tickle().data["session"]
    assert gateway.cookies[0] == "api=" + json.dumps({"session": session})


def test_reconnect_after_a_drop_sends_each_subscription_exactly_once(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway
) -> None:
    sink = QueueSink()
    client = make(sink=sink)
    assert client.start()
    subs = [MarketDataSubscription(conid="265598", fields=["31"]), OrdersSubscription(), PnlSubscription()]
    handles = [client.subscribe(s) for s in subs]
    assert client.wait_all(handles, timeout_each=3) == []
    gateway.drop()
    assert wait_until(lambda: gateway.connections == 2)
    assert wait_until(lambda: all(h.active for h in handles) and client.is_authenticated())
    time.sleep(0.3)  # time for any duplicate to show
    again = gateway.frames(connection=2)
    for sub in subs:
        assert again.count(sub.subscribe_payload()) == 1, again
    statuses = []
    while (update := sink.get(events.SubscriptionUpdated)) is not None:
        if update.binding_key == handles[0].binding_key:
            statuses.append(update.status)
    assert statuses == [BindingStatus.ACTIVE, BindingStatus.DEGRADED, BindingStatus.ACTIVE]
    assert client.stats()["reconnects"] == 1


def test_a_stalled_connection_is_detected_and_replaced(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway
) -> None:
    client = make(heartbeat_timeout=0.5)
    assert client.start()
    handle = client.subscribe(MarketDataSubscription(conid="265598", fields=["31"]))
    assert handle.wait(3)
    gateway.stalled = True  # no frame at all, though the TCP connection and WebSocket pings still work
    assert wait_until(lambda: client.stats()["stalls"] == 1, 3)
    gateway.stalled = False
    assert wait_until(lambda: gateway.connections == 2 and handle.active, 3)
    assert gateway.frames("smd", connection=2) == [handle.subscription.subscribe_payload()]


def test_market_data_is_renewed_before_the_gateway_ends_it(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway
) -> None:
    gateway.smd_lifetime = 0.6  # IBKR's 15 minutes, scaled down
    client = make(md_renew_after=0.35)
    assert client.start()
    handle = client.subscribe(MarketDataSubscription(conid="265598", fields=["31", "84"]))
    assert handle.wait(3)
    time.sleep(1.5)
    before = client.quote("265598")
    time.sleep(0.3)
    after = client.quote("265598")
    assert before is not None and after is not None and after.updated != before.updated  # still streaming
    assert handle.active and gateway.connections == 1
    client.shutdown()
    renewed = client.stats()["subscriptions"][handle.binding_key]["renewals"]
    assert renewed >= 3
    time.sleep(0.2)
    sent = len(gateway.frames("smd", connection=1))
    assert sent in (renewed, renewed + 1)  # each renewal sent once (the last one may have met the shutdown)
    assert set(gateway.frames("smd")) == {handle.subscription.subscribe_payload()}


def test_partial_frames_merge_into_a_current_quote(make: Callable[..., IbkrWsClient], gateway: LoopbackGateway) -> None:
    sink = QueueSink()
    client = make(sink=sink)
    assert client.start()
    assert client.subscribe(MarketDataSubscription(conid="265598", fields=["31", "84", "86"])).wait(3)
    assert wait_until(lambda: (q := client.quote(265598)) is not None and {"31", "84", "86"} <= set(q))
    first = sink.get(events.MarketData)
    assert first is not None and set(first.fields) == {"84", "86"}  # the first frame carried two fields
    quote = client.quote("265598")
    assert quote is not None and quote.number("86") == 101.0
    assert quote["86"] == "101.00"


def test_malformed_frames_are_skipped_and_counted(make: Callable[..., IbkrWsClient], gateway: LoopbackGateway) -> None:
    sink = QueueSink()
    client = make(sink=sink)
    assert client.start()
    assert client.subscribe(MarketDataSubscription(conid="265598", fields=["31"])).wait(3)
    for bad in ("{not json", "[1, 2]", '{"topic": 5}', '{"topic": "smd+265598", "conid": null}', "\x00"):
        gateway.send_raw(bad)
    frames = client.stats()["frames"]
    assert wait_until(lambda: client.stats()["frames"] > frames + 10)  # market data still flows
    assert client.stats()["malformed"] == 2
    assert gateway.connections == 1 and client.is_authenticated()
    assert sink.get(events.GenericIbkrEvent) is not None


def test_an_unacknowledged_subscription_fails_visibly(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway
) -> None:
    sink = QueueSink()
    client = make(sink=sink, ack_timeout=0.2, subscription_retries=1, heartbeat_timeout=30)
    assert client.start()
    gateway.stalled = True  # frames are received and logged, nothing is answered
    handle = client.subscribe(PnlSubscription())
    assert handle.wait(3) is False
    assert handle.status is BindingStatus.FAILED and handle.failed
    assert gateway.frames("spl") == ["spl+{}", "spl+{}"]  # sent, then once more, then given up
    failed = [u for u in iter(lambda: sink.get(events.SubscriptionUpdated), None) if u.status is BindingStatus.FAILED]
    assert len(failed) == 1


def test_a_consumer_that_does_not_read_costs_bounded_memory(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway
) -> None:
    gateway.md_interval = 0.0005
    sink = QueueSink(maxsize=50)
    client = make(sink=sink)
    assert client.start()
    assert client.subscribe(MarketDataSubscription(conid="265598", fields=["31"])).wait(3)
    assert wait_until(lambda: client.stats()["frames"] > 400)
    assert sink.qsize(events.MarketData) == 50
    assert sink.dropped()["MarketData"] >= 300
    assert client.stats()["dropped"]["MarketData"] == sink.dropped()["MarketData"]


def test_a_slow_callback_never_holds_up_the_reader(make: Callable[..., IbkrWsClient], gateway: LoopbackGateway) -> None:
    gateway.md_interval = 0.001
    sink = CallbackSink()
    seen: list[Any] = []

    def slow(event: events.MarketData) -> None:
        seen.append(event)
        time.sleep(0.05)

    sink.on(events.MarketData, slow)
    client = make(sink=sink, queue_size=20)
    assert client.start()
    assert client.subscribe(MarketDataSubscription(conid="265598", fields=["31"])).wait(3)
    assert wait_until(lambda: client.stats()["frames"] > 300)
    assert len(seen) < 60  # the callback saw a fraction; the reader went on
    assert client.stats()["dropped"]["MarketData"] > 200


@pytest.mark.parametrize("blocking", [False, True], ids=["queue-sink", "callback-sink"])
def test_threads_started_and_all_stopped_within_a_second(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway, blocking: bool
) -> None:
    before = set(threading.enumerate())
    client = make(sink=CallbackSink() if blocking else QueueSink())
    assert client.start()
    assert client.subscribe(MarketDataSubscription(conid="265598", fields=["31"])).wait(3)
    # The client's own threads: the REST client's keep-alive connection to the simulator has a server thread too.
    started = {t for t in set(threading.enumerate()) - before if t.name.startswith("ibkr-ws")}
    assert len(started) == (2 if blocking else 1), started
    assert client.shutdown()  # True: every thread ended within the shutdown's own bound
    assert not any(t.is_alive() for t in started)
    assert client.get_state() is WsState.STOPPED


def test_tic_answers(make: Callable[..., IbkrWsClient], gateway: LoopbackGateway) -> None:
    client = make()
    assert client.tic() is None  # not connected
    assert client.start()
    answer = client.tic()
    assert answer is not None and answer["alive"] is True
    assert gateway.frames("tic") == ["tic"]


def test_bad_subscription_arguments_fail_before_anything_is_sent() -> None:
    with pytest.raises(RequestValidationError, match=r"MarketDataSubscription\(\): parameter 'conid'"):
        MarketDataSubscription(conid="AAPL", fields=["31"])
    with pytest.raises(RequestValidationError, match=r"MarketDataSubscription\(\): parameter 'fields'"):
        MarketDataSubscription(conid="265598", fields=["last"])
    with pytest.raises(RequestValidationError, match=r"AccountSummarySubscription\(\): parameter 'account_id'"):
        AccountSummarySubscription(account_id="DU1+x")
    with pytest.raises(RequestValidationError, match=r"TradesSubscription\(\): parameter 'days'"):
        TradesSubscription(days=0)
    with pytest.raises(RequestValidationError, match=r"MarketHistorySubscription\(\): parameter 'bar'"):
        MarketHistorySubscription(conid="265598", period="1d", bar="5 minutes")


def test_quotes_read_by_field_id_and_by_name() -> None:
    book = QuoteBook({"31": "last_price", "84": "bid_price"}, frozenset({"topic", "conid", "_updated"}), "_updated")
    router = IbkrRouter(book)
    first = router.route('{"topic": "smd+1", "conid": 1, "31": "C10.50", "84": "10.40", "_updated": 7}')
    second = router.route('{"topic": "smd+1", "conid": 1, "84": "10.45"}')
    assert isinstance(first, events.MarketData) and isinstance(second, events.MarketData)
    assert second.data == {"bid_price": "10.45"} and second.fields == {"84": "10.45"}
    quote = second.quote
    assert quote is not None and quote is book.get(1)
    assert quote["last_price"] == quote["31"] == "C10.50" and quote.number("last_price") == 10.5
    assert quote.named() == {"last_price": "C10.50", "bid_price": "10.45"} and quote.updated == 7
    assert first.quote is not None and first.quote["84"] == "10.40"  # earlier quotes stay as they were
    assert parse_number("1,300") == 1300 and parse_number("12.2M") == 12.2e6 and parse_number("n/a") is None


def test_lazily_merged_quotes_match_an_eager_merge_across_threads() -> None:
    book = QuoteBook({"31": "last_price"}, frozenset({"topic", "conid", "_updated"}), "_updated")
    router = IbkrRouter(book)
    routed: list[events.MarketData] = []
    expected: list[dict[str, str]] = []
    current: dict[str, str] = {}
    stop = threading.Event()
    seen: list[int] = []

    def read_while_written() -> None:  # builds quotes on another thread while the router folds new ones
        while not stop.is_set():
            quote = book.get("7")
            if quote is not None:
                seen.append(len(quote))

    reader = threading.Thread(target=read_while_written)
    reader.start()
    for i in range(500):
        fields = {str(31 + i % 5): f"v{i}"} if i % 4 else {"31": f"v{i}", str(80 + i % 3): f"w{i}"}
        current = {**current, **fields}
        expected.append(current)
        event = router.route(json.dumps({"topic": "smd+7", "conid": 7, "_updated": i, **fields}))
        assert isinstance(event, events.MarketData)
        assert event.fields == fields and event.quote is not None and event.quote.updated == i
        routed.append(event)
    stop.set()
    reader.join(5)
    assert seen and [dict(e.quote) for e in routed if e.quote is not None] == expected  # every quote as it was then
    last, named = routed[-1], routed[-4]  # frame 499 changed field 35; frame 496 fields 31 and 81
    assert last.quote is book.get(7) and "_updated" not in last.quote and "conid" not in last.quote
    assert last.data == {"35": "v499"} and named.data == {"last_price": "v496", "81": "w496"}


def test_oauth_connects_with_the_access_token_and_session_cookie(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway, rest: IbkrClient
) -> None:
    client = make(use_oauth=True, access_token="tok-secret-123")
    assert client.start()
    path, headers = gateway.requests[0]
    assert path == "/v1/api/ws?oauth_token=tok-secret-123"
    assert headers["user-agent"] == "ClientPortalGW/1"
    assert headers["cookie"] == "api=" + rest.tickle().data["session"]
    assert "tok-secret" not in repr(client)


def test_url_and_certificate_come_from_the_rest_client(rest: IbkrClient) -> None:
    client = IbkrWsClient(ibkr_client=rest)
    assert repr(client) == f"IbkrWsClient(url='ws://{rest.base_url.split('://')[1]}ws')"
    assert client._cacert == rest.cacert
    with pytest.raises(ValueError, match="access_token is required"):
        IbkrWsClient(ibkr_client=rest, use_oauth=True)


def test_cli_stream_md_prints_merged_quotes_as_json_lines(
    gateway: LoopbackGateway, rest: IbkrClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibkr_sdk.lib.cli import main

    url = rest.base_url
    status = main(
        ["--url", url, "stream", "md", "265598", "--fields", "31,84,86", "--count", "4"] + ["--ws-url", gateway.url]
    )
    assert status == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and all(line["conid"] == "265598" for line in lines)
    assert set(lines[-1]["fields"]) == {"31", "84", "86"}  # merged: the last line holds every field seen
    assert gateway.frames("smd") == ['smd+265598+{"fields":["31","84","86"]}']


def test_many_threads_subscribe_at_once_and_each_stream_is_sent_once(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway
) -> None:
    client = make(sink=QueueSink())
    assert client.start()
    conids = [str(100 + i) for i in range(16)]
    handles: list[Any] = []
    lock = threading.Lock()

    def worker(conid: str) -> None:
        for _ in range(5):  # repeated subscribe calls are idempotent
            handle = client.subscribe(MarketDataSubscription(conid=conid, fields=["31"]))
        with lock:
            handles.append(handle)

    threads = [threading.Thread(target=worker, args=(c,)) for c in conids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert client.wait_all(handles, timeout_each=3) == []
    sent = gateway.frames("smd")
    assert sorted(sent) == sorted(f'smd+{c}+{{"fields":["31"]}}' for c in conids)


def test_changed_parameters_conflict_until_unsubscribed(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway
) -> None:
    client = make()
    assert client.start()
    handle = client.subscribe(MarketDataSubscription(conid="265598", fields=["31"]))
    assert handle.wait(3)
    with pytest.raises(SubscriptionConflictError):
        client.subscribe(MarketDataSubscription(conid="265598", fields=["84"]))
    assert client.unsubscribe(handle.subscription).wait(3)
    again = client.subscribe(MarketDataSubscription(conid="265598", fields=["84"]))
    assert again.wait(3)
    assert wait_until(lambda: gateway.frames("smd")[-1:] == ['smd+265598+{"fields":["84"]}'])


def test_reset_websocket_app_reconnects_and_resubscribes(
    make: Callable[..., IbkrWsClient], gateway: LoopbackGateway
) -> None:
    client = make()
    assert client.start()
    handle = client.subscribe(PnlSubscription())
    assert handle.wait(3)
    client.reset_websocket_app()
    assert wait_until(lambda: gateway.connections == 2 and handle.active)
    assert gateway.frames("spl", connection=2) == ["spl+{}"]


def test_shutdown_during_a_handshake_that_never_ends_is_prompt(rest: IbkrClient) -> None:
    import socket

    with socket.socket() as silent:  # accepts TCP connections (backlog) and never answers the WebSocket handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}/v1/api/ws"
        client = IbkrWsClient(url=url, ibkr_client=rest, connect_timeout=0.2)
        before = set(threading.enumerate())
        assert client.start() is False
        started = set(threading.enumerate()) - before
        assert client.shutdown()  # True: the stuck handshake did not hold it past its bound
        assert not [t.name for t in started if t.is_alive() and not t.name.startswith("ibkr-simulator")]


def test_shutdown_while_the_gateway_is_slow_to_answer_tickle_is_prompt() -> None:
    """The handshake's `/tickle` runs off the connection loop: a gateway slow to answer it holds no shutdown. (Run
    on the loop, the call held the loop thread for the REST timeout, and shutdown() gave up after its second.)"""
    with Simulator() as sim:
        rest = IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False, max_retries=0, timeout=30)
        try:
            sim.inject("tickle", "stall", 30.0, times=None)
            client = IbkrWsClient(ibkr_client=rest, connect_timeout=0.2)
            assert client.start() is False
            assert wait_until(lambda: any(r.endpoint == "tickle" for r in sim.requests), 5)
            loop_thread = client._thread
            assert client.shutdown(), "shutdown() waited for the stalled /tickle"
            assert loop_thread is not None and not loop_thread.is_alive()
        finally:
            sim.clear_faults()
            rest.close()


def test_queue_sink_hands_every_event_across_threads_in_order() -> None:
    from ibkr_sdk.lib.ws.sinks import BoundedQueue

    q = BoundedQueue(100_000)
    got: list[int] = []

    def consume() -> None:
        while len(got) < 20_000:
            got.append(q.get(block=True, timeout=2))

    reader = threading.Thread(target=consume)
    reader.start()
    for i in range(20_000):
        assert q.offer(i)
        if i % 1000 == 0:
            time.sleep(0.001)  # let the reader drain and wait, so wake-ups are exercised
    reader.join(10)
    assert got == list(range(20_000))
    small = BoundedQueue(3, drop_oldest=False)
    assert [small.offer(i) for i in range(5)] == [True, True, True, False, False]
    assert [small.get_nowait() for _ in range(3)] == [0, 1, 2]
