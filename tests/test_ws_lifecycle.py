"""The WebSocket through the session's life cycle: `sts` false ends every stream on the simulator and makes the
client's subscriptions DEGRADED (said in an event and a log line); when the session is back, on the same connection or
a new one, each subscription is sent exactly once more and data resumes. Counted on what the simulator received."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ibkr_sdk import IbkrClient, SessionCompetingError
from ibkr_sdk.lib.ws import (
    BindingStatus,
    IbkrWsClient,
    MarketDataSubscription,
    OrdersSubscription,
    PnlSubscription,
    QueueSink,
    SubscriptionHandle,
    events,
)
from ibkr_sdk.simulator import Simulator

pytest.importorskip("websockets")

AAPL = "265598"
ACCOUNT = "DU1234567"
TOPICS = ("smd+265598", "sor", "spl")


# Returns as soon as `check` holds, so a long bound costs nothing; it only lets a starved machine catch up.
def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def fast(sim: Simulator) -> Simulator:
    sim.streaming.heartbeat = 0.2
    sim.streaming.md_interval = 0.05
    sim.streaming.pnl_interval = 0.1
    return sim


class Bot:
    """A REST client, a streaming client on its session, and three subscriptions."""

    def __init__(self, sim: Simulator, **rest_options: Any) -> None:
        self.sim = sim
        self.rest = IbkrClient(url=sim.url, account_id=ACCOUNT, pacing=False, timeout=5, **rest_options)
        self.sink = QueueSink()
        self.kept: list[Any] = []
        self.ws = IbkrWsClient(
            ibkr_client=self.rest,
            sink=self.sink,
            cycle_interval=0.02,
            reconnect_delay=0.05,
            max_reconnect_delay=0.5,
            heartbeat_timeout=3.0,
        )
        assert self.ws.start()
        self.md = self.ws.subscribe(MarketDataSubscription(conid=AAPL, fields=["31", "84", "86"]))
        self.handles: list[SubscriptionHandle] = [
            self.md,
            self.ws.subscribe(OrdersSubscription()),
            self.ws.subscribe(PnlSubscription()),
        ]
        assert self.md.wait(5) and self.handles[2].wait(5)
        assert wait_until(lambda: len(self.sent_since(0)) == 3)
        self.mark = len(self.sim.ws_received)

    def sent_since(self, mark: int) -> list[str]:
        """Subscription frames the simulator received after `mark`, by topic."""
        frames = [text for _, text in list(self.sim.ws_received)[mark:]]
        return [t.split("+{")[0] for t in frames if t.startswith(("smd", "sor", "spl"))]

    def resent(self) -> list[str]:
        """The topics sent since `mark`, once each has arrived. A subscription that the gateway does not acknowledge is
        ACTIVE as soon as the client queues its frame, so the frame may reach the simulator a moment after the status
        flips; a duplicate would follow right behind, which the short settle catches."""
        wait_until(lambda: len(self.sent_since(self.mark)) >= len(TOPICS), 10)
        time.sleep(0.1)
        return sorted(self.sent_since(self.mark))

    def drain(self) -> list[Any]:
        """Events delivered since the last call (also kept in `kept`)."""
        out: list[Any] = []
        for kind in (events.MarketData, events.SessionChanged, events.SubscriptionUpdated, events.WsDegraded):
            while (event := self.sink.get(kind)) is not None:
                out.append(event)
        self.kept.extend(out)
        return out

    def said(self) -> list[events.SessionChanged]:
        self.drain()
        return [e for e in self.kept if isinstance(e, events.SessionChanged)]

    def quotes_resume(self) -> bool:
        """A market-data frame arrives (after draining the older ones)."""
        self.drain()
        return wait_until(lambda: self.sink.get(events.MarketData) is not None, 5)

    def all_active(self) -> bool:
        return all(h.status is BindingStatus.ACTIVE for h in self.handles)

    def reopen_bodies(self) -> list[Any]:
        return [r.body for r in self.sim.requests if r.endpoint == "initialize_brokerage_session"]

    def close(self) -> None:
        self.ws.shutdown()
        self.rest.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield fast(s)


@pytest.fixture
def bot_for() -> Iterator[Callable[..., Bot]]:
    made: list[Bot] = []

    def build(sim: Simulator, **options: Any) -> Bot:
        bot = Bot(sim, **options)
        made.append(bot)
        return bot

    yield build
    for bot in made:
        bot.close()


def test_a_drop_degrades_and_each_subscription_is_sent_once_more(
    sim: Simulator, bot_for: Callable[..., Bot], caplog: pytest.LogCaptureFixture
) -> None:
    bot = bot_for(sim)
    bot.drain()
    sim.clear_requests()
    with caplog.at_level(logging.INFO, logger="ibkr_sdk.ws"):
        sim.drop_brokerage_session()
        assert wait_until(bot.all_active) and bot.quotes_resume()  # the client re-opened it on its own
    assert [e.state for e in bot.said()] == ["closed", "open"]
    degraded = [r for r in caplog.records if "closed" in r.getMessage()]
    assert degraded and degraded[0].levelno >= logging.INFO
    assert bot.resent() == sorted(TOPICS)  # each exactly once after sts true
    assert bot.reopen_bodies() == [{"publish": True, "compete": False}]


def test_streams_stop_while_closed_and_resume_when_the_user_reopens(
    sim: Simulator, bot_for: Callable[..., Bot]
) -> None:
    bot = bot_for(sim, auto_reauthenticate=False)  # nobody re-opens but the user
    sim.drop_brokerage_session()
    assert wait_until(lambda: bot.md.status is BindingStatus.DEGRADED)
    assert bot.ws.get_state().value == "DEGRADED"
    bot.drain()
    time.sleep(0.3)  # six quote intervals of the simulator
    assert bot.sink.get(events.MarketData) is None and bot.sent_since(bot.mark) == []
    bot.rest.initialize_brokerage_session(compete=False)
    assert wait_until(bot.all_active) and bot.quotes_resume()
    assert bot.resent() == sorted(TOPICS)


def test_the_nightly_reset_is_survived_without_help(sim: Simulator, bot_for: Callable[..., Bot]) -> None:
    bot = bot_for(sim)  # no tickler and no REST calls: the streaming client re-opens the session itself
    sim.clear_requests()
    sim.nightly_reset()  # (on a scaled clock the simulator does this at reset_at; see test_session_lifecycle)
    assert wait_until(lambda: bot.md.status is not BindingStatus.ACTIVE or bot.reopen_bodies() != [], 3)
    assert wait_until(bot.all_active, 10) and bot.quotes_resume()
    assert bot.resent() == sorted(TOPICS)
    assert bot.reopen_bodies() == [{"publish": True, "compete": False}]


def test_a_competing_login_is_reported_and_left_to_the_user(sim: Simulator, bot_for: Callable[..., Bot]) -> None:
    bot = bot_for(sim)
    bot.drain()
    sim.compete()
    assert wait_until(lambda: bot.md.status is BindingStatus.DEGRADED)
    assert wait_until(lambda: bool(bot.said()), 3)
    competing = bot.said()[0]
    assert competing.state == "competing" and isinstance(competing.error, SessionCompetingError)
    time.sleep(0.3)
    assert bot.reopen_bodies() == []  # never taken over on its own
    bot.rest.initialize_brokerage_session(compete=True)  # the user's decision
    assert wait_until(bot.all_active) and bot.quotes_resume()
    assert bot.resent() == sorted(TOPICS)
    assert [b["compete"] for b in bot.reopen_bodies()] == [True]


def test_a_gateway_restart_is_survived_once_the_user_logs_in(sim: Simulator, bot_for: Callable[..., Bot]) -> None:
    bot = bot_for(sim)
    connections = sim.ws_connections
    sim.restart(down=0.3)
    assert wait_until(lambda: bot.md.status is BindingStatus.DEGRADED)
    sim.login()  # the person logs in to the fresh gateway
    assert wait_until(bot.all_active, 8) and bot.quotes_resume()
    assert sim.ws_connections > connections
    assert bot.resent() == sorted(TOPICS)
