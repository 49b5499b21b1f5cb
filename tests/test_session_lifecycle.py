"""A program that runs for weeks: the brokerage session drops, another login competes, the nightly reset comes, the
gateway restarts. Against the simulator, counting what it received: one re-open request (with compete=false) per
drop, only retry-safe requests sent again, orders never, a competing login raised and never taken over, a gone login
said once while the tickler keeps its interval."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ibkr_sdk import (
    ApiConnectionError,
    IbkrClient,
    NotAuthenticatedError,
    OrderRequest,
    SessionCompetingError,
)
from ibkr_sdk.lib import lifecycle
from ibkr_sdk.lib.lifecycle import Action, Reopening, Verdict
from ibkr_sdk.simulator import Simulator

ACCOUNT = "DU1234567"
AAPL = 265598
ANSWERS = {"o163": True, "o354": True}


# Returns as soon as `check` holds, so a long bound costs nothing; it only lets a starved machine catch up.
def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def count(sim: Simulator, endpoint: str) -> int:
    return sum(1 for r in sim.requests if r.endpoint == endpoint)


def reopen_bodies(sim: Simulator) -> list[Any]:
    return [r.body for r in sim.requests if r.endpoint == "initialize_brokerage_session"]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture
def make(sim: Simulator) -> Iterator[Callable[..., IbkrClient]]:
    made: list[IbkrClient] = []

    def build(**options: Any) -> IbkrClient:
        settings: dict[str, Any] = {"url": sim.url, "account_id": ACCOUNT, "timeout": 5, "pacing": False}
        settings.update(options)
        client = IbkrClient(**settings)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


@pytest.fixture
def client(make: Callable[..., IbkrClient]) -> IbkrClient:
    c = make()
    c.receive_brokerage_accounts()
    return c


# -- the decisions, without I/O ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "path", "status", "message", "closed"),
    [
        ("live_orders", "/iserver/account/orders", 401, "not authenticated", True),
        ("live_orders", "/iserver/account/orders", 400, "Bad Request: no bridge", True),
        ("portfolio_accounts", "/portfolio/accounts", 401, "not authenticated", False),  # the login is gone
        ("authentication_status", "/iserver/auth/status", 401, "", False),  # an answer about the session
        ("live_orders", "/iserver/account/orders", 400, "bad conid", False),
        ("live_orders", "/iserver/account/orders", 500, "no bridge?", False),
    ],
)
def test_which_refusals_mean_a_closed_brokerage_session(
    endpoint: str, path: str, status: int, message: str, closed: bool
) -> None:
    assert lifecycle.refused_for_session(endpoint, path, status, message) is closed


def test_verdicts_of_status_answers() -> None:
    status = {"authenticated": True, "competing": False, "connected": True}
    assert lifecycle.verdict_of_status(status) is Verdict.OPEN
    assert lifecycle.verdict_of_status({**status, "authenticated": False}) is Verdict.CLOSED
    assert lifecycle.verdict_of_status({**status, "connected": False}) is Verdict.CLOSED
    assert lifecycle.verdict_of_status({**status, "authenticated": False, "competing": True}) is Verdict.COMPETING
    assert lifecycle.verdict_of_status({"iserver": {"authStatus": status}}) is Verdict.OPEN  # a tickle answer
    assert lifecycle.verdict_of_status({"ok": True}) is Verdict.UNKNOWN
    assert lifecycle.verdict_of_failure(NotAuthenticatedError("x", status_code=401)) is Verdict.LOGIN_GONE
    assert lifecycle.verdict_of_failure(ApiConnectionError("refused", maybe_sent=False)) is Verdict.UNREACHABLE


def test_the_reopen_sequence_as_data() -> None:
    plan = Reopening(timeout=10, now=0.0)
    assert plan.start().action is Action.CHECK
    assert plan.status(Verdict.CLOSED, 0.0).action is Action.REOPEN
    step = plan.reopen_answered(Verdict.CLOSED, 0.01)  # answered before the session is open
    assert step.action is Action.WAIT and step.delay == pytest.approx(0.1)
    assert plan.waited().action is Action.CHECK
    assert plan.status(Verdict.CLOSED, 0.2).action is Action.WAIT  # keep polling, no second request yet
    done = plan.status(Verdict.OPEN, 0.5)
    assert done.action is Action.DONE and done.verdict is Verdict.OPEN and plan.requests == 1
    # Already open, or a person needed: nothing is sent.
    assert Reopening(timeout=1, now=0).status(Verdict.OPEN, 0).verdict is Verdict.OPEN
    assert Reopening(timeout=1, now=0).status(Verdict.COMPETING, 0).verdict is Verdict.COMPETING
    # Never opened: asked once more after a while, then given up at the deadline.
    late = Reopening(timeout=10, now=0.0)
    late.status(Verdict.CLOSED, 0.0)
    assert late.status(Verdict.CLOSED, lifecycle.ASK_AGAIN_AFTER).action is Action.REOPEN
    assert late.status(Verdict.CLOSED, 9.0).action is Action.WAIT
    assert late.status(Verdict.CLOSED, 10.0).verdict is Verdict.CLOSED and late.requests == 2


# -- requests ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 400])
def test_a_read_after_a_drop_reopens_once_with_compete_false(
    sim: Simulator, client: IbkrClient, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    sim.drop_brokerage_session(status=status)
    assert client.authentication_status(log=False).data["connected"] is True
    sim.clear_requests()
    with caplog.at_level(logging.INFO, logger="ibkr_sdk"):
        assert client.live_orders().data["orders"] == []
    assert reopen_bodies(sim) == [{"publish": True, "compete": False}]
    assert count(sim, "live_orders") == 2  # refused, then sent again once the session was open
    assert any("open again" in r.getMessage() for r in caplog.records)


def test_eight_threads_share_one_reopen(sim: Simulator, make: Callable[..., IbkrClient]) -> None:
    clients = [make(), make()]  # two clients of one gateway share the guard too
    for c in clients:
        c.receive_brokerage_accounts()
    sim.drop_brokerage_session()
    sim.clear_requests()
    barrier = threading.Barrier(8)
    results: list[object] = []

    def read(n: int) -> None:
        barrier.wait(5)
        try:
            results.append(clients[n % 2].live_orders())
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(results) == 8 and not [r for r in results if isinstance(r, Exception)]
    assert 1 <= len(reopen_bodies(sim)) <= 2
    assert all(body["compete"] is False for body in reopen_bodies(sim))


def test_an_order_refused_by_a_drop_is_not_sent_again(sim: Simulator, client: IbkrClient) -> None:
    order = OrderRequest(conid=AAPL, side="BUY", quantity=1, order_type="MKT", tif="DAY")
    sim.drop_brokerage_session()
    sim.clear_requests()
    with pytest.raises(NotAuthenticatedError, match="not placed") as caught:
        client.place_order(order, ANSWERS)
    assert "not sent again" in str(caught.value)
    assert count(sim, "place_order") == 1 and sim.orders == []
    assert reopen_bodies(sim) == [{"publish": True, "compete": False}]  # the session is back for the next one
    placed = client.place_order(order, ANSWERS)
    assert placed.data["order_status"] and count(sim, "place_order") == 2 and len(sim.orders) == 1


def test_a_competing_login_raises_and_is_never_taken_over(
    sim: Simulator, client: IbkrClient, caplog: pytest.LogCaptureFixture
) -> None:
    sim.compete()
    sim.clear_requests()
    with caplog.at_level(logging.WARNING, logger="ibkr_sdk"):
        for _ in range(5):  # a busy program: the status is checked once, the answer reused for 5 s
            with pytest.raises(SessionCompetingError, match="compet"):
                client.live_orders()
    assert reopen_bodies(sim) == [] and count(sim, "authentication_status") == 1
    assert len([r for r in caplog.records if "compet" in r.getMessage()]) == 1
    # The user decides: take the session over (the client's only compete=true is this one).
    assert client.initialize_brokerage_session().request["json"]["compete"] is True
    assert wait_until(lambda: client.check_auth_status(), 3)
    assert client.live_orders().data["orders"] == []


def test_the_login_gone_is_said_once_while_the_tickler_keeps_its_interval(
    sim: Simulator, client: IbkrClient, caplog: pytest.LogCaptureFixture
) -> None:
    sim.logout()
    sim.clear_requests()
    with caplog.at_level(logging.WARNING, logger="ibkr_sdk"):
        client.start_tickler(0.05)
        tickler = client._tickler
        assert tickler is not None
        assert wait_until(lambda: tickler.ticks >= 10)
        client.stop_tickler(2)
        with pytest.raises(NotAuthenticatedError, match="log in again"):
            client.live_orders()
    paths = {r.path for r in sim.requests}
    assert paths == {"/tickle", "/iserver/account/orders", "/iserver/auth/status"}
    assert count(sim, "tickle") == tickler.ticks  # one request per tick, nothing more
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "login" in warnings[0].getMessage()


def test_the_tickler_reopens_ahead_of_the_next_request(sim: Simulator, client: IbkrClient) -> None:
    client.start_tickler(0.05)
    sim.nightly_reset()
    assert wait_until(lambda: count(sim, "initialize_brokerage_session") == 1)
    assert wait_until(lambda: client.check_auth_status(), 3)
    client.stop_tickler(2)
    sim.clear_requests()
    client.live_orders()
    assert [r.endpoint for r in sim.requests] == ["receive_brokerage_accounts", "live_orders"], sim.requests
    assert reopen_bodies(sim) == []


def test_turned_off_by_argument_or_environment(
    sim: Simulator, make: Callable[..., IbkrClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IBKR_SDK_AUTO_REAUTHENTICATE", "false")
    from_env = make()
    off = make(auto_reauthenticate=False)
    with pytest.raises(TypeError, match="auto_reauthenticate"):
        make(auto_reauthenticate="yes")
    sim.drop_brokerage_session()
    sim.clear_requests()
    for c in (from_env, off):
        with pytest.raises(NotAuthenticatedError):
            c.live_orders()
    sent = {r.endpoint for r in sim.requests}  # the refused preflight, nothing about the session
    assert sent == {"receive_brokerage_accounts"} and len(sim.requests) == 2


def test_a_restarted_gateway_needs_a_login_then_recovers(sim: Simulator, client: IbkrClient) -> None:
    sim.restart(down=0.2)
    with pytest.raises(NotAuthenticatedError, match="log in again"):
        client.live_orders()  # the fresh gateway has no login: said, nothing re-opened
    assert reopen_bodies(sim) == []
    client.start_tickler(0.05)
    sim.login(brokerage=False)  # the person logged in; the brokerage session is not open yet
    assert wait_until(lambda: client.check_auth_status(), 3)  # the tickler saw the login and re-opened it
    client.stop_tickler(2)
    assert client.live_orders().data["orders"] == []
    assert reopen_bodies(sim) == [{"publish": True, "compete": False}]


# -- the simulator's scaled clock --------------------------------------------------------------------------------------


def test_the_nightly_reset_on_a_scaled_clock() -> None:
    zone = ZoneInfo("America/New_York")
    start = dt.datetime(2026, 3, 2, 0, 58, 0, tzinfo=zone).timestamp()
    # A simulated minute in a second: the reset comes two seconds after the simulator is made, a margin that a busy
    # machine's delay between making and starting it does not eat (the schedule is read when it starts).
    with Simulator(time_scale=60, start_time=start, reset_at="01:00") as sim:
        client = IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False, auto_reauthenticate=False)
        try:
            assert wait_until(lambda: sim.resets == 1, timeout=60)
            assert dt.datetime.fromtimestamp(sim.now(), zone).time() >= dt.time(1, 0)
            status = client.authentication_status(log=False).data
            assert status["authenticated"] is False and status["connected"] is True
            with pytest.raises(NotAuthenticatedError, match="no bridge"):
                client.live_orders()
        finally:
            client.close()
    with pytest.raises(ValueError, match="clock"):
        Simulator(clock=time.time, time_scale=2)
    with pytest.raises(ValueError, match="reset_at"):
        Simulator(reset_at="1am")
