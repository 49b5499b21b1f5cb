"""Orders are never doubled, stranded or approved by mistake (issue 12): one test per defect, through the
simulator's fault injection, asserting what the simulator booked as well as what the client returned."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ibkr_sdk import (
    ApiConnectionError,
    IbkrClient,
    OrderQuestionError,
    OrderRejectedError,
    OrderStateUnknownError,
    QuestionType,
    RateLimitedError,
    RequestValidationError,
)
from ibkr_sdk.lib import cli
from ibkr_sdk.lib.orders import _LiveOrdersFeed
from ibkr_sdk.lib.result import Result
from ibkr_sdk.simulator import Simulator

ACCOUNT = "DU1234567"
AAPL = 265598
MKT = {"conid": AAPL, "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"}
NO_DATA = {QuestionType.MISSING_MARKET_DATA: True}  # the simulator asks o354 until a snapshot was taken


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture(autouse=True)
def _fast_reconciliation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ibkr_sdk.lib.orders.RESOLVE_INTERVAL", 0.05)


def _client(sim: Simulator, **options: Any) -> IbkrClient:
    settings: dict[str, Any] = {"url": sim.url, "account_id": ACCOUNT, "timeout": 0.5, "max_retries": 0}
    settings["pacing"] = False
    settings.update(options)
    return IbkrClient(**settings)


@pytest.fixture
def api(sim: Simulator) -> Iterator[IbkrClient]:
    c = _client(sim)
    yield c
    c.close()


def _sent(sim: Simulator, endpoint: str) -> int:
    return len([r for r in sim.requests if r.endpoint == endpoint])


# --- 1. a lost answer anywhere in the flow: found by cOID, never sent again ---------------------------------------

LOST_AFTER_BOOKING = [
    pytest.param("reset", None, id="reset"),
    pytest.param("stall", 1.0, id="stall-past-timeout"),
    pytest.param("status", 503, id="503"),
    pytest.param("status", 500, id="500"),
    pytest.param("malformed", None, id="malformed-200"),
]


@pytest.mark.parametrize(("kind", "value"), LOST_AFTER_BOOKING)
def test_lost_answer_to_the_reply_finds_the_booked_order(
    sim: Simulator, api: IbkrClient, kind: str, value: float | None
) -> None:
    sim.inject("reply", kind, value, after=True)  # the gateway books the order, then the answer is lost
    result = api.place_order(MKT, NO_DATA)  # no caller cOID: the SDK's own one must find it
    booked = sim.orders
    assert len(booked) == 1 and booked[0].coid and booked[0].coid.startswith("sdk-")
    assert result.data == {
        "order_id": str(booked[0].order_id),
        "order_status": booked[0].status,
        "cOID": booked[0].coid,
    }
    assert _sent(sim, "place_order") == 1 and _sent(sim, "reply") == 1, "nothing is sent twice"


@pytest.mark.parametrize(("kind", "value"), LOST_AFTER_BOOKING)
def test_lost_answer_to_the_order_post_finds_the_booked_order(
    sim: Simulator, api: IbkrClient, kind: str, value: float | None
) -> None:
    api.live_marketdata_snapshot(conids=str(AAPL), fields="31")  # no question: the POST itself books the order
    sim.inject("place_order", kind, value, after=True)
    result = api.place_order(dict(MKT, cOID="mine-1"), {})
    assert [o.coid for o in sim.orders] == ["mine-1"]
    assert result.data["cOID"] == "mine-1" and result.data["order_id"] == str(sim.orders[0].order_id)
    assert _sent(sim, "place_order") == 1


@pytest.mark.parametrize(
    ("kind", "value"),
    [("reset", None), ("stall", 1.0), ("status", 503), ("malformed", None)],
    ids=["reset", "stall", "503", "malformed-200"],
)
def test_answer_lost_before_booking_raises_state_unknown_with_the_coid(
    sim: Simulator, api: IbkrClient, kind: str, value: float | None
) -> None:
    sim.inject("reply", kind, value)  # lost before the gateway acted: nothing is booked
    with pytest.raises(OrderStateUnknownError) as info:
        api.place_order(MKT, NO_DATA)
    coid = next(r.body["orders"][0]["cOID"] for r in sim.requests if r.endpoint == "place_order")
    assert info.value.coid == coid and coid in str(info.value)
    assert sim.orders == [] and _sent(sim, "reply") == 1
    assert _sent(sim, "live_orders") == 2  # it was looked for, twice, and not re-sent


def test_lost_answer_to_a_modification_is_not_resent(sim: Simulator, api: IbkrClient) -> None:
    api.live_marketdata_snapshot(conids=str(AAPL), fields="31")
    placed = api.place_order(dict(MKT, orderType="LMT", price=1.0, cOID="m-1"), {"o163": True}).data
    order_id = placed["order_id"]
    api.suppress_messages(["o163"])  # the modification then applies at once, without a question
    sim.inject("modify_order", "stall", 1.0, after=True)
    result = api.modify_order(order_id, dict(MKT, orderType="LMT", price=2.0), {"o163": True})
    assert result.data == {"order_id": order_id, "order_status": "Submitted", "cOID": "m-1"}
    assert [(o.coid, o.price) for o in sim.orders] == [("m-1", 2.0)]
    assert _sent(sim, "modify_order") == 1
    sim.inject("modify_order", "status", 503)  # lost before it applied: the order does not show the change
    with pytest.raises(OrderStateUnknownError) as info:
        api.modify_order(order_id, dict(MKT, orderType="LMT", price=3.0), {"o163": True})
    assert info.value.order_id == order_id and info.value.coid == "m-1" and "order_status" in str(info.value)
    assert [o.price for o in sim.orders] == [2.0] and _sent(sim, "modify_order") == 2


# --- 2. answers are checked before anything is sent ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "problem"),
    [
        (None, "pass {}"),
        ("yes", "must map questions to True or False"),
        (["o163"], "must map questions to True or False"),
        ({163: True}, "e.g. 'o163'"),
        ({"o163": "no"}, "'o163' maps to 'no'"),
        ({QuestionType.MISSING_MARKET_DATA: 1}, "maps to 1"),
        ({"": True}, "empty key"),
    ],
)
def test_bad_answers_are_refused_before_sending(sim: Simulator, api: IbkrClient, answers: Any, problem: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        api.place_order(MKT, answers)
    assert info.value.method == "place_order" and info.value.param == "answers" and problem in str(info.value)
    assert sim.requests == [] and sim.orders == []


def test_the_peer_positional_call_shape_and_a_declined_question(sim: Simulator, api: IbkrClient) -> None:
    api.place_order(MKT, {"o354": True}, ACCOUNT)  # ibind: place_order(order_request, answers, account_id)
    assert len(sim.orders) == 1
    with pytest.raises(OrderQuestionError) as info:
        api.place_order(dict(MKT, orderType="LMT", price=1.0), {"o163": False})  # CLI: --answer o163=no
    assert info.value.declined and len(sim.orders) == 1


# --- 3 and 4. order fields are checked before sending ------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"price": math.nan}, "price must be a finite number"),
        ({"quantity": math.inf}, "quantity must be a finite number"),
        ({"price": -1.0}, "price must be a number above 0, got -1.0"),
        ({"price": 0}, "price must be a number above 0, got 0"),
        ({"price": "abc"}, "price must be a number above 0, got str 'abc'"),
        ({"price": True}, "price must be a number above 0, got bool True"),
        ({"pricee": 1.0}, "unknown field 'pricee' (did you mean 'price'?)"),
        ({"order_type": "LMT"}, "IBKR spells it 'orderType'"),
        ({"tif": "GTD"}, "GTD needs an expiry"),
    ],
)
def test_bad_order_fields_are_refused_naming_the_field(
    sim: Simulator, api: IbkrClient, change: dict[str, Any], problem: str
) -> None:
    order = {**MKT, "orderType": "LMT", "price": 100.0, **change}
    with pytest.raises(RequestValidationError, match="place_order") as info:
        api.place_order(order, {})
    assert problem in str(info.value) and "Nothing was sent" in str(info.value)
    assert sim.requests == []


def test_lowercase_side_and_type_are_normalised(sim: Simulator, api: IbkrClient) -> None:
    api.place_order(dict(MKT, side="buy", orderType="mkt", tif="day"), NO_DATA)
    sent = next(r.body["orders"][0] for r in sim.requests if r.endpoint == "place_order")
    assert (sent["side"], sent["orderType"], sent["tif"]) == ("BUY", "MKT", "DAY")
    assert [o.side for o in sim.orders] == ["BUY"]


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda c: c.trades(days=-3), "trades(): parameter 'days' must be from 1 to 7"),
        (lambda c: c.trades(days="9999"), "trades(): parameter 'days' must be from 1 to 7"),
        (lambda c: c.positions(page=-1), "positions(): parameter 'page' must be at least 0"),
    ],
)
def test_documented_bounds_are_enforced(sim: Simulator, api: IbkrClient, call: Any, problem: str) -> None:
    with pytest.raises(RequestValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        call(api)
    assert sim.requests == []
    api.trades(days=7)
    assert [r.query.get("days") for r in sim.requests if r.endpoint == "trades"] == ["7"]


def test_unreachable_gateway_says_nothing_was_sent(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with IbkrClient(url=f"http://127.0.0.1:{port}/v1/api/", account_id=ACCOUNT, pacing=False, max_retries=0) as c:
        with caplog.at_level(logging.DEBUG, logger="ibkr_sdk"), pytest.raises(ApiConnectionError) as info:
            c.place_order(MKT, {})
    tried = [r.getMessage() for r in caplog.records if r.getMessage().startswith("-> ")]
    assert info.value.maybe_sent is False
    assert not [t for t in tried if t.startswith("-> GET /iserver/account/orders")], "no reconciliation: nothing left"


# --- 5. two clients of one process share the order lock ----------------------------------------------------------


def test_two_clients_on_one_account_do_not_break_each_other(sim: Simulator) -> None:
    clients = [_client(sim, timeout=5), _client(sim, timeout=5)]
    errors: list[BaseException] = []

    def work(c: IbkrClient) -> None:
        try:
            for _ in range(3):
                c.place_order(MKT, NO_DATA)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for c in clients:
        c.close()
    assert errors == []
    assert len(sim.orders) == 18 and _sent(sim, "place_order") == 18 and _sent(sim, "reply") == 18


# --- 6. reconciliation does not hold other threads' orders hostage -------------------------------------------------


def test_reconciliation_runs_outside_the_order_lock(
    sim: Simulator, api: IbkrClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ibkr_sdk.lib.orders.RESOLVE_INTERVAL", 1.2)  # A looks twice, 1.2 s apart
    sim.inject("reply", "status", 503)  # A's order is lost before booking: A reconciles, and finds nothing
    finished: dict[str, float] = {}
    started = time.monotonic()

    def a() -> None:
        with pytest.raises(OrderStateUnknownError):
            api.place_order(dict(MKT, cOID="a"), NO_DATA)
        finished["a"] = time.monotonic() - started

    thread = threading.Thread(target=a)
    thread.start()
    while _sent(sim, "live_orders") == 0 and time.monotonic() - started < 5:
        time.sleep(0.01)  # A is reconciling now
    api.place_order(dict(MKT, cOID="b"), NO_DATA)
    finished["b"] = time.monotonic() - started
    thread.join(timeout=10)
    assert finished["b"] < finished["a"] - 0.5, finished
    assert [o.coid for o in sim.orders] == ["b"]


def test_waiting_reconciliations_share_one_live_orders_fetch() -> None:
    feed = _LiveOrdersFeed()
    calls: list[float] = []
    gate = threading.Event()

    def fetch() -> None:
        sent = time.monotonic()  # when the request leaves the client: the snapshot's date
        calls.append(sent)
        gate.wait(2)
        feed.offer(Result(data={"orders": [], "snapshot": True}), sent)

    first = threading.Thread(target=feed.snapshot, args=(time.monotonic(), fetch))
    first.start()
    while not calls:
        time.sleep(0.001)
    asked = time.monotonic()  # after the first fetch started: it cannot serve these callers
    got: list[Any] = []
    waiters = [threading.Thread(target=lambda: got.append(feed.snapshot(asked, fetch))) for _ in range(6)]
    for t in waiters:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in [first, *waiters]:
        t.join(timeout=5)
    assert len(got) == 6 and all(value is not None for value, _ in got)
    # The callers return as soon as the second snapshot is offered; its helper thread counts the fetch just after.
    assert len(calls) == 2, "six waiting reconciliations were served by one further fetch"
    deadline = time.monotonic() + 2
    while feed.fetches < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert feed.fetches == 2


# --- 7. pacing: zero 429s under scheduling jitter; the pacing wait is bounded and logged -------------------------


def test_no_429_when_requests_reach_the_server_late() -> None:
    """Threads are scheduled unevenly: a request can reach the server long after the pacer let it start. The pacer
    counts a request until its answer arrives, so the server never sees more than its limit."""
    scale = 0.02  # the global 10 per second becomes 10 per 20 ms
    with Simulator(pacing=True, pacing_time_scale=scale) as sim:
        with IbkrClient(url=sim.url, account_id=ACCOUNT, pacing_time_scale=scale, max_retries=0) as c:
            c.receive_brokerage_accounts()
            send = c._transport.session.request
            rng = random.Random(7)

            def late(*args: Any, **kwargs: Any) -> Any:
                time.sleep(rng.choice([0.0, 0.0, 0.0, 0.06]))  # scheduling delay after the pacer's start
                return send(*args, **kwargs)

            c._transport.session.request = late  # type: ignore[method-assign]
            threads = [
                threading.Thread(
                    target=lambda: [c.tickle() if i % 5 == 0 else c.portfolio_summary() for i in range(25)]
                )
                for _ in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
        statuses = [r.status for r in sim.requests]
    assert len(statuses) >= 200 and 429 not in statuses


def test_max_pacing_wait_refuses_before_sending_and_long_waits_are_logged(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    scale = 0.25  # live_orders: 1 per 1.25 s
    with _client(sim, pacing=True, pacing_time_scale=scale, max_pacing_wait=0.3) as hurried:
        hurried.live_orders()
        with pytest.raises(RateLimitedError, match=r"pacing would hold this request .* live_orders .*max_pacing_wait"):
            hurried.live_orders()
    assert _sent(sim, "live_orders") == 1, "refused before sending"
    with _client(sim, pacing=True, pacing_time_scale=scale) as patient:
        with caplog.at_level(logging.INFO, logger="ibkr_sdk"):
            patient.live_orders()
    assert _sent(sim, "live_orders") == 2
    assert any("waited" in r.getMessage() and "live_orders limit" in r.getMessage() for r in caplog.records)


# --- 8. order errors read well ----------------------------------------------------------------------------------


def test_order_errors_read_well(sim: Simulator, api: IbkrClient) -> None:
    with pytest.raises(OrderQuestionError) as question:
        api.place_order(MKT, {})
    assert "\\n" not in str(question.value) and "\n" not in question.value.question
    sim.inject("reply", "status", 400, body={"error": "We cannot accept an order at the limit price you selected"})
    with pytest.raises(Exception) as refused:
        api.place_order(MKT, NO_DATA)
    text = str(refused.value)
    assert text.startswith("place_order(): ") and "The order was not placed." in text and "http" not in text
    sim.inject("reply", "status", 200, body={"error": "Order not confirmed"})
    with pytest.raises(OrderRejectedError) as rejected:
        api.place_order(MKT, NO_DATA)
    assert str(rejected.value) == "place_order(): IBKR refused the order: Order not confirmed"
    assert sim.orders == []


def test_preflight_failure_names_the_method_called(sim: Simulator) -> None:
    sim.inject("receive_brokerage_accounts", "status", 503)
    with _client(sim) as c, pytest.raises(Exception, match=r"^live_orders\(\): its preflight request failed"):
        c.live_orders()
    sim.inject("receive_brokerage_accounts", "status", 503)  # before an order: not ambiguous, nothing was sent
    with _client(sim) as c, pytest.raises(Exception, match=r"^place_order\(\): .*preflight.*not placed") as info:
        c.place_order(MKT, NO_DATA)
    assert not isinstance(info.value, OrderStateUnknownError) and _sent(sim, "place_order") == 0
    assert _sent(sim, "live_orders") == 0  # no reconciliation (the call above stopped at its preflight)


def test_cancel_of_an_unknown_order_raises_and_the_cli_exits_non_zero(
    sim: Simulator, api: IbkrClient, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(OrderRejectedError, match=r"cancel_order\(\): IBKR refused order 4242: .*doesn't exist"):
        api.cancel_order("4242")
    code = cli.main(["--url", sim.url, "--account", ACCOUNT, "call", "cancel_order", "--order-id", "4242"])
    assert code == 1 and "doesn't exist" in capsys.readouterr().err
