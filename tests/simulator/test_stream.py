"""The simulator's WebSocket at /v1/api/ws, over real sockets, with a minimal client on the `websockets` library.

Frames are built and recognised through the generated stream table (`ibkr_sdk._streams`), so these tests also hold
the simulator to the catalogue. Every wait is bounded.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ibkr_sdk import IbkrClient
from ibkr_sdk._streams import (
    ECHO,
    HEARTBEAT_FIELD,
    STREAMS,
    TIC,
    WAITING_FOR_SESSION,
    WS_PATH,
    route,
)
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, IBM, answer_all, make_client

websockets = pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus  # noqa: E402
from websockets.sync.client import ClientConnection, connect  # noqa: E402

Frame = dict[str, Any]


def ws_url(sim: Simulator, query: str = "") -> str:
    base = sim.url.replace("https://", "wss://").replace("http://", "ws://").rstrip("/")
    return base + WS_PATH + (f"?{query}" if query else "")


class Probe:
    """A test client: collects decoded frames, waits for one that matches (time-bounded)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Any] = []  # everything received, decoded when JSON, raw text otherwise

    def send(self, text: str) -> None:
        self.ws.send(text)

    def next(self, timeout: float = 3.0) -> Any:
        raw = self.ws.recv(timeout=timeout)
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = raw
        self.frames.append(frame)
        return frame

    def wait(self, match: Callable[[Any], bool], timeout: float = 20.0) -> Any:  # returns at the first match
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame within {timeout}s; got {self.frames[-10:]}")
            try:
                frame = self.next(left)
            except TimeoutError:
                continue
            if match(frame):
                return frame

    def quiet(self, match: Callable[[Any], bool], seconds: float) -> list[Any]:
        """Frames matching `match` received within `seconds` (the caller usually expects none)."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.next(left)
            except TimeoutError:
                break
            if match(frame):
                got.append(frame)
        return got


def of(name: str, key: str | None = None) -> Callable[[Any], bool]:
    def match(frame: Any) -> bool:
        if not isinstance(frame, dict):
            return False
        r = route(frame)
        return r.name == name and r.kind in ("stream", "unsolicited") and (key is None or r.key == key)

    return match


@pytest.fixture
def api(sim: Simulator) -> IbkrClient:
    client = make_client(sim)
    client.receive_brokerage_accounts()
    return client


@pytest.fixture
def fast(sim: Simulator) -> Simulator:
    sim.streaming.heartbeat = 0.2
    sim.streaming.md_interval = 0.05
    sim.streaming.pnl_interval = 0.2
    sim.streaming.account_interval = 0.3
    return sim


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": "api=" + json.dumps({"session": token}, separators=(",", ":"))}


@pytest.fixture
def probe(fast: Simulator, api: IbkrClient) -> Iterator[Probe]:
    token = api.tickle().data["session"]
    with connect(ws_url(fast), additional_headers=cookie(token), open_timeout=5, close_timeout=2) as ws:
        p = Probe(ws)
        p.wait(of("auth_status"))
        yield p


def test_an_authenticated_socket_gets_system_act_sts_then_heartbeats(fast: Simulator, api: IbkrClient) -> None:
    token = api.tickle().data["session"]
    with connect(ws_url(fast), additional_headers=cookie(token), open_timeout=5) as ws:
        p = Probe(ws)
        first = [p.next(), p.next(), p.next()]
        assert [route(f).name for f in first] == ["system", "account_update", "auth_status"]
        assert first[1]["args"]["accounts"] == [ACCOUNT] and first[1]["args"]["sessionId"] == token
        assert first[2]["args"]["authenticated"] is True
        beats = [p.wait(lambda f: isinstance(f, dict) and HEARTBEAT_FIELD in f, timeout=2) for _ in range(2)]
        assert beats[1][HEARTBEAT_FIELD] >= beats[0][HEARTBEAT_FIELD]
    record = [r for r in fast.requests if r.endpoint == "ws"][-1]
    assert record.status == 101 and record.path == "/v1/api" + WS_PATH


def test_without_a_session_the_socket_waits_for_one(fast: Simulator, api: IbkrClient) -> None:
    token = api.tickle().data["session"]
    with connect(ws_url(fast), additional_headers=cookie("not-the-session"), open_timeout=5) as ws:
        p = Probe(ws)
        assert p.next() == {"message": WAITING_FOR_SESSION}
        p.send(STREAMS["pnl"].subscribe_message())
        assert p.next() == {"message": WAITING_FOR_SESSION}  # nothing streams before authentication
        p.send(json.dumps({"session": "wrong"}))
        assert p.next() == {"message": WAITING_FOR_SESSION}
        p.send(json.dumps({"session": token}))
        assert p.wait(of("auth_status"))["args"]["authenticated"] is True


def test_market_data_sends_only_changed_fields_and_stops_on_unsubscribe(fast: Simulator, probe: Probe) -> None:
    md = STREAMS["market_data"]
    probe.send(md.subscribe_message(conid=AAPL, fields=["31", "84", "86", "55"]))
    first = probe.wait(of("market_data", str(AAPL)))
    assert first["topic"] == md.route_topic(conid=AAPL) and first["conid"] == AAPL
    assert {"31", "84", "86", "55", "_updated"} <= set(first)
    fast.set_price(AAPL, float(first["31"]) + 1.0)
    second = probe.wait(of("market_data", str(AAPL)))
    assert second["31"] == f"{float(first['31']) + 1.0:.2f}"
    assert "55" not in second  # the symbol did not change, so it is not sent again
    probe.send(md.unsubscribe_message(conid=AAPL))
    time.sleep(0.2)
    fast.set_price(AAPL, float(first["31"]) + 2.0)
    assert probe.quiet(of("market_data"), 0.4) == []


def test_market_data_streams_expire_and_resubscribing_renews_them(fast: Simulator, probe: Probe) -> None:
    fast.streaming.md_expiry = 0.4
    md = STREAMS["market_data"]
    probe.send(md.subscribe_message(conid=IBM, fields=["31"]))
    price = float(probe.wait(of("market_data", str(IBM)))["31"])
    time.sleep(0.5)
    fast.set_price(IBM, price + 1.0)
    assert probe.quiet(of("market_data"), 0.3) == []  # expired: ended without a word
    probe.send(md.subscribe_message(conid=IBM, fields=["31"]))
    assert probe.wait(of("market_data", str(IBM)))["31"] == f"{price + 1.0:.2f}"


def test_rest_orders_show_up_on_sor_and_fills_on_str(fast: Simulator, api: IbkrClient, probe: Probe) -> None:
    probe.send(STREAMS["orders"].subscribe_message())
    probe.send(STREAMS["trades"].subscribe_message())
    assert probe.wait(of("trades"))["args"] == []  # the first frame: no executions yet
    snapshot = api.live_marketdata_snapshot(conids=str(AAPL), fields=["31"])
    del snapshot
    ticket = {
        "conid": AAPL,
        "orderType": "LMT",
        "price": 1.0,
        "quantity": 3,
        "side": "BUY",
        "tif": "DAY",
        "cOID": "ws-limit-1",
    }
    answer, _ = answer_all(api, api._place_order(orders=[ticket]).data)
    order_id = int(answer[0]["order_id"])
    placed = probe.wait(lambda f: of("orders")(f) and any(o["orderId"] == order_id for o in f["args"]))
    entry = next(o for o in placed["args"] if o["orderId"] == order_id)
    assert entry["order_ref"] == "ws-limit-1" and entry["status"] in ("PreSubmitted", "Submitted")
    api.cancel_order(order_id=order_id)
    cancelled = probe.wait(
        lambda f: (
            of("orders")(f) and any(o["orderId"] == order_id and "Cancel" in o.get("status", "") for o in f["args"])
        )
    )
    delta = next(o for o in cancelled["args"] if o["orderId"] == order_id)
    assert "ticker" not in delta  # a change carries what changed, not the whole order again
    market = {"conid": AAPL, "orderType": "MKT", "quantity": 2, "side": "BUY", "tif": "DAY", "cOID": "ws-mkt-1"}
    answer_all(api, api._place_order(orders=[market]).data)
    fill = probe.wait(of("trades"))
    assert [t["order_ref"] for t in fill["args"]] == ["ws-mkt-1"] and fill["args"][0]["size"] == 2
    filled = [
        o
        for f in probe.frames + probe.quiet(of("orders"), 0.3)
        if of("orders")(f)
        for o in f["args"]
        if o.get("status") == "Filled"
    ]
    assert filled and filled[-1]["filledQuantity"] == 2


def test_pnl_summary_and_ledger_streams(fast: Simulator, probe: Probe) -> None:
    probe.send(STREAMS["pnl"].subscribe_message())
    pnl = probe.wait(of("pnl"))
    assert set(pnl["args"]) == {f"{ACCOUNT}.Core"} and {"dpl", "upl", "nl"} <= set(pnl["args"][f"{ACCOUNT}.Core"])
    summary = STREAMS["account_summary"]
    probe.send(summary.subscribe_message(account_id=ACCOUNT))
    rows = probe.wait(of("account_summary", ACCOUNT))["result"]
    assert {"key": "AccountCode", "value": ACCOUNT} == {k: rows[-1][k] for k in ("key", "value")}
    probe.send(summary.unsubscribe_message(account_id=ACCOUNT))
    assert probe.wait(lambda f: route(f).kind == "unsubscribed") == summary.unsubscribe_ack.ack_frame()
    ledger = STREAMS["account_ledger"]
    probe.send(ledger.subscribe_message(account_id=ACCOUNT, keys=["LedgerListBASE"]))
    result = probe.wait(of("account_ledger", ACCOUNT))["result"]
    assert "LedgerListBASE" in {r["key"] for r in result} and all(r["acctCode"] == ACCOUNT for r in result)
    probe.send(ledger.unsubscribe_message(account_id=ACCOUNT))
    assert probe.wait(lambda f: route(f).kind == "unsubscribed") == {"result": "unsubscribed from ledger"}


def test_history_has_server_ids_and_at_most_five_at_once(probe: Probe) -> None:
    history = STREAMS["market_history"]
    server_ids = []
    for _ in range(5):
        probe.send(history.subscribe_message(conid=AAPL, period="1d", bar="1h"))
        frame = probe.wait(of("market_history", str(AAPL)))
        assert frame["data"] and frame["serverId"] not in server_ids
        server_ids.append(frame["serverId"])
    probe.send(history.subscribe_message(conid=AAPL, period="1d", bar="1h"))
    assert "at most 5" in probe.wait(lambda f: isinstance(f, dict) and "error" in f)["error"]
    probe.send(history.unsubscribe_message(server_id=server_ids[0]))
    ack = probe.wait(lambda f: isinstance(f, dict) and route(f).kind == "unsubscribed")
    assert route(ack).key == server_ids[0] and ack == {"message": f"Unsubscribed {server_ids[0]}"}
    probe.send(history.subscribe_message(conid=AAPL, period="1d", bar="1h"))
    assert probe.wait(of("market_history"))["serverId"] not in server_ids


def test_price_ladder_rows(probe: Probe) -> None:
    ladder = STREAMS["price_ladder"]
    probe.send(ladder.subscribe_message(account_id=ACCOUNT, conid=AAPL))
    frame = probe.wait(of("price_ladder", ACCOUNT))
    assert frame["topic"] == ladder.route_topic(account_id=ACCOUNT, conid=AAPL)
    assert [r["focus"] for r in frame["data"]].count(1) == 1


def test_keepalive_unknown_topics_and_bad_frames(probe: Probe) -> None:
    probe.send(TIC)
    assert probe.wait(of("tic"))["alive"] is True
    probe.send(ECHO)
    assert probe.wait(lambda f: f == ECHO) == ECHO
    probe.send("xyz+1")
    assert route(probe.wait(lambda f: isinstance(f, dict) and "error" in f)).name == "error"
    probe.send('smd+265598+{"fields":"31"}')  # fields must be a list
    assert "fields" in probe.wait(lambda f: isinstance(f, dict) and "error" in f)["error"]


def test_sts_follows_the_session(fast: Simulator, probe: Probe) -> None:
    fast.logout()
    assert probe.wait(of("auth_status"))["args"]["authenticated"] is False
    probe.send(STREAMS["pnl"].subscribe_message())
    assert "no brokerage session" in probe.wait(lambda f: isinstance(f, dict) and "error" in f)["error"]
    fast.login()
    assert probe.wait(of("auth_status"))["args"]["authenticated"] is True


# --- faults ----------------------------------------------------------------------------------------------------


def test_fault_reset_drops_the_socket_without_a_close_frame(fast: Simulator, probe: Probe) -> None:
    fast.inject("ws", "reset")
    with pytest.raises(ConnectionClosedError):
        probe.wait(lambda f: False, timeout=3)


def test_fault_stall_silences_the_socket_then_it_resumes(fast: Simulator, probe: Probe) -> None:
    probe.wait(of("system"))
    fast.inject("ws", "stall", 0.6)
    time.sleep(0.1)
    assert probe.quiet(lambda f: True, 0.4) == []
    assert probe.wait(of("system"), timeout=2)


def test_fault_malformed_frame_then_the_socket_goes_on(fast: Simulator, probe: Probe) -> None:
    fast.inject("ws", "malformed")
    bad = probe.wait(lambda f: isinstance(f, str))
    with pytest.raises(ValueError):
        json.loads(bad)
    probe.send(TIC)
    assert probe.wait(of("tic"))["alive"] is True


def test_fault_status_refuses_the_next_connect_only(fast: Simulator, api: IbkrClient) -> None:
    token = api.tickle().data["session"]
    fast.inject("ws", "status", 503)
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(fast), additional_headers=cookie(token), open_timeout=5)
    assert refused.value.response.status_code == 503
    with connect(ws_url(fast), additional_headers=cookie(token), open_timeout=5) as ws:
        assert Probe(ws).wait(of("auth_status"))
    with pytest.raises(ValueError):
        fast.inject("ws", "reset", after=True)


def test_stop_ends_open_sockets() -> None:
    sim = Simulator().start()
    try:
        token = make_client(sim).tickle().data["session"]
        with connect(ws_url(sim), additional_headers=cookie(token), open_timeout=5) as ws:
            Probe(ws).wait(of("auth_status"))
            sim.stop()
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=3)
    finally:
        sim.stop()


# --- transport and authentication variants ----------------------------------------------------------------------


def test_wss_on_the_same_port_as_https() -> None:
    with Simulator(https=True) as sim:
        token = make_client(sim, cacert=sim.cacert).tickle().data["session"]
        context = ssl.create_default_context(cafile=sim.cacert)
        assert sim.url.startswith("https://")
        with connect(ws_url(sim), additional_headers=cookie(token), ssl=context, open_timeout=5) as ws:
            assert Probe(ws).wait(of("auth_status"))["args"]["authenticated"] is True


def test_oauth_socket_needs_the_access_token() -> None:
    from ibkr_sdk.simulator import OAuthSettings

    settings = OAuthSettings(
        consumer_key="TESTCONS",
        access_token="a1b2c3d4e5f6a7b8c9d0",
        access_token_secret_hex="00",
        signature_public_key="unused here",
        dh_prime="ff",
    )
    with Simulator(oauth=settings) as sim:
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(sim, "oauth_token=wrong"), open_timeout=5)
        assert refused.value.response.status_code == 401
        token = sim._state.session.token
        with connect(
            ws_url(sim, "oauth_token=a1b2c3d4e5f6a7b8c9d0"),
            additional_headers={"Cookie": f"api={token}"},
            open_timeout=5,
        ) as ws:
            assert Probe(ws).wait(of("auth_status"))["args"]["authenticated"] is True


def test_bulletins_and_notifications_reach_open_sockets(fast: Simulator, probe: Probe) -> None:
    assert fast.streaming.open_sockets == 1
    fast.streaming.bulletin("Exchange halted", id="7")
    assert probe.wait(of("bulletin"))["args"] == {"id": "7", "message": "Exchange halted"}
    fast.streaming.notify("Order filled", title="Fill")
    assert probe.wait(of("notification"))["args"][0]["text"] == "Order filled"
    with pytest.raises(ValueError):
        fast.streaming.send_unsolicited("nope", {})


def test_a_burst_of_market_data_frames_reaches_the_subscriber(fast: Simulator, probe: Probe) -> None:
    md = STREAMS["market_data"]
    probe.send(md.subscribe_message(conid=AAPL, fields=["31"]))
    probe.wait(of("market_data", str(AAPL)))
    burst = fast.streaming.burst(AAPL, 200)
    seqs = [int(probe.wait(of("market_data", str(AAPL)))["7059"]) for _ in range(200)]
    assert seqs == list(range(200))
    assert burst.done.wait(3) and len(burst.sent_ns) == 200
    paced = fast.streaming.burst(AAPL, 20, rate=100.0)  # 20 frames at 100/s: about 0.2 s
    for _ in range(20):
        probe.wait(of("market_data", str(AAPL)))
    assert paced.done.wait(3)
    assert (paced.sent_ns[-1] - paced.sent_ns[0]) / 1e9 >= 0.15
