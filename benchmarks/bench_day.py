"""A day in a minute: a bot runs against the simulator through one trading day on a clock 1440 times faster than
real time, while the gateway's session goes through its life cycle.

The bot: an `IbkrClient` as judged (`url`, `account_id`, `cacert=False`, nothing else; `start_tickler(1)`), a
streaming client on it with AAPL quotes, live orders and P&L, an AAPL snapshot every simulated 15 minutes and a
market order every simulated ten minutes (each with a unique `referrer` tag, never retried by the bot). The day:
a brokerage-session drop at a random time between 10:00 and 15:00 (New York), a competing login at 17:00 that the
user resolves a second after the bot reports it (`initialize_brokerage_session(compete=True)`), the nightly reset
at 01:00 (scheduled by the simulator's scaled clock), and a gateway restart at 04:00: connections refused for 2 s,
then a fresh gateway that a person logs in to a second later. The simulator enforces IBKR's pacing (429 beyond it).

The client does not run on the scaled clock: its timeouts, pacing and reconnects are real time, so the gaps below
are what a bot on a real gateway would see (the simulator opens a brokerage session 0.2 s after `ssodh/init`).

Prints, per event: quotes lost (real seconds and minutes; the simulated minutes the gap spans at 1440x), how long
the session waited for a person, and how long each subscription took to come back after the session was
authenticated again; then orders intended / booked / duplicated, requests refused because the session was down and
how many were sent again safely, re-authentications, and the peak request rate during recovery against IBKR's
10 requests per second. Targets: 0 duplicates; every subscription back within 5 s of authentication; no request
storm (at most 10 requests in any second of a recovery); 0 x 429. Loopback only.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ibkr_sdk import IbkrClient, IbkrError, SessionCompetingError  # noqa: E402
from ibkr_sdk.lib.ws import (  # noqa: E402
    BindingStatus,
    IbkrWsClient,
    MarketDataSubscription,
    OrdersSubscription,
    PnlSubscription,
    events,
)
from ibkr_sdk.simulator import RequestRecord, Simulator  # noqa: E402

SCALE = 1440.0  # a simulated day in a real minute
ZONE = ZoneInfo("America/New_York")
START = dt.datetime(2026, 3, 2, 9, 25, tzinfo=ZONE)  # a Monday, five minutes before the open
ORDER_EVERY = 10 * 60  # simulated seconds
READ_EVERY = 15 * 60
DROP_BETWEEN = (dt.time(10, 0), dt.time(15, 0))
COMPETE_AT = dt.time(17, 0)
RESTART_AT = dt.time(4, 0)  # the next morning, after the nightly reset at 01:00
DOWN = 2.0  # real seconds the restarting gateway refuses connections
PERSON = 1.0  # real seconds a person takes to act (resolve the competing login, log in after the restart)
SEED = 7
AAPL = 265598
GLOBAL_LIMIT = 10  # requests per second through the gateway (IBKR's limit)
SESSION_ENDPOINTS = {"authentication_status", "initialize_brokerage_session", "reauthenticate", "tickle", "logout"}


class Recorder:
    """A sink that never blocks: the real time of every quote, status change and session change."""

    nonblocking = True

    def __init__(self) -> None:
        self.quotes: list[float] = []
        self.active: list[tuple[float, str]] = []  # (time, binding key) of each change to ACTIVE
        self.changes: list[tuple[float, str]] = []
        self.competing = threading.Event()

    def emit(self, event: events.WsEvent) -> None:
        now = time.monotonic()
        if type(event) is events.MarketData:
            self.quotes.append(now)
        elif isinstance(event, events.SubscriptionUpdated) and event.status is BindingStatus.ACTIVE:
            self.active.append((now, event.binding_key))
        elif isinstance(event, events.SessionChanged):
            self.changes.append((now, event.state))
            if event.state == "competing":
                self.competing.set()


class Bot:
    def __init__(self, sim: Simulator, rest: IbkrClient) -> None:
        self.sim = sim
        self.rest = rest
        self.stop = threading.Event()
        self.outcomes: dict[str, str] = {}  # tag -> "placed" | error class name
        self.read_errors = Counter[str]()
        self.competing_seen = threading.Event()

    def at(self, when: float) -> bool:
        """Wait until the simulated clock reaches `when`; False when the day is over."""
        while self.sim.now() < when:
            if self.stop.wait(0.005):
                return False
        return True

    def next_slot(self, first: float, every: float) -> int:
        """The next slot not yet begun: a bot that was held up skips what it missed instead of catching up."""
        return max(0, int((self.sim.now() - first) // every) + 1)

    def orders(self, first: float) -> None:
        n = 0
        while self.at(first + n * ORDER_EVERY):
            tag = f"day-{n}"
            ticket = {"conid": AAPL, "side": "BUY" if n % 2 else "SELL", "quantity": 1, "orderType": "MKT"}
            ticket.update(tif="DAY", referrer=tag)
            try:
                self.rest.place_order(ticket, {"o163": True, "o354": True})
                self.outcomes[tag] = "placed"
            except IbkrError as exc:
                self.outcomes[tag] = type(exc).__name__
                if isinstance(exc, SessionCompetingError):
                    self.competing_seen.set()
            n = max(n + 1, self.next_slot(first, ORDER_EVERY))

    def reads(self, first: float) -> None:
        n = 0
        while self.at(first + n * READ_EVERY):
            try:
                self.rest.live_marketdata_snapshot(conids=str(AAPL), fields=["31", "84", "86"])
            except IbkrError as exc:
                self.read_errors[type(exc).__name__] += 1
                if isinstance(exc, SessionCompetingError):
                    self.competing_seen.set()
            n = max(n + 1, self.next_slot(first, READ_EVERY))


def local(day: dt.date, at: dt.time) -> float:
    return dt.datetime.combine(day, at, ZONE).timestamp()


def wait_sim(sim: Simulator, when: float) -> None:
    while sim.now() < when:
        time.sleep(0.005)


def peak_rate(times: list[float], start: float, end: float) -> int:
    """The most requests that arrived within any one second between `start` and `end`."""
    inside = [t for t in times if start <= t <= end]
    best = 0
    for i, t in enumerate(inside):
        best = max(best, bisect.bisect_right(inside, t + 1.0) - i)
    return best


def same_request(a: RequestRecord, b: RequestRecord) -> bool:
    return (a.method, a.path, a.query, a.body) == (b.method, b.path, b.query, b.body)


def main() -> None:
    logging.getLogger("ibkr_sdk").setLevel(logging.ERROR)  # the session's log lines are counted, not shown
    rng = random.Random(SEED)
    day = START.date()
    next_day = day + dt.timedelta(days=1)
    drop_from, drop_to = local(day, DROP_BETWEEN[0]), local(day, DROP_BETWEEN[1])
    drop_at = drop_from + rng.random() * (drop_to - drop_from)
    started = time.monotonic()
    with Simulator(
        time_scale=SCALE, start_time=START.timestamp(), reset_at="01:00", timezone="America/New_York", pacing=True
    ) as sim:
        sim.streaming.md_interval = 0.1
        rest = IbkrClient(url=sim.url, account_id=sim.accounts[0], cacert=False)
        rest.start_tickler(1)
        recorder = Recorder()
        ws = IbkrWsClient(ibkr_client=rest, sink=recorder)
        assert ws.start(), "the streaming client did not start"
        for subscription in (
            MarketDataSubscription(conid=str(AAPL), fields=["31", "84", "86"]),
            OrdersSubscription(),
            PnlSubscription(),
        ):
            ws.subscribe(subscription)
        bot = Bot(sim, rest)
        first = START.timestamp() + 60
        workers = [
            threading.Thread(target=bot.orders, args=(first,), name="orders"),
            threading.Thread(target=bot.reads, args=(first + 30,), name="reads"),
        ]
        for w in workers:
            w.start()

        events_at: dict[str, float] = {}
        wait_sim(sim, drop_at)
        sim.drop_brokerage_session()
        wait_sim(sim, local(day, COMPETE_AT))
        sim.compete()
        reported = time.monotonic()
        while not (recorder.competing.is_set() or bot.competing_seen.is_set()) and time.monotonic() - reported < 10:
            time.sleep(0.005)
        events_at["competing reported"] = time.monotonic() - reported
        time.sleep(PERSON)
        acted = {"competing": time.monotonic()}
        rest.initialize_brokerage_session(compete=True)  # the user's decision
        wait_sim(sim, local(next_day, RESTART_AT))
        sim.restart(down=DOWN)
        time.sleep(PERSON)
        acted["restarted"] = time.monotonic()
        sim.login(brokerage=False)  # a person logs in; the brokerage session is the client's to open
        wait_sim(sim, START.timestamp() + 86400)
        bot.stop.set()
        for w in workers:
            w.join(30)
        ws.shutdown()
        rest.close()
        requests = sim.requests
        session_log = sim.session_events
        booked = Counter(o.ticket.get("referrer") for o in sim.orders)
        reopen_attempts = rest._session_guard.attempts
    elapsed = time.monotonic() - started

    # -- the events and how long each took to heal ------------------------------------------------------------------
    print(
        f"day: {START:%Y-%m-%d %H:%M} to {START + dt.timedelta(days=1):%Y-%m-%d %H:%M} New York at {SCALE:g}x in "
        f"{elapsed:.0f} s real; {len(requests)} requests; tickler every 1 s"
    )
    quotes = recorder.quotes
    keys = sorted({key for _, key in recorder.active})
    worst_back = 0.0
    recoveries: list[tuple[float, float]] = []  # (event, every subscription back) in real time
    names = {"dropped": "brokerage drop", "competing": "competing login", "reset": "nightly reset"}
    names["restarted"] = "gateway restart"
    for event in session_log:
        if event.what not in names:
            continue
        t0 = event.monotonic
        opened = next((e.monotonic for e in session_log if e.what == "opened" and e.monotonic > t0), None)
        if opened is None:
            print(f"{names[event.what]}: the session never opened again")
            worst_back = float("inf")
            continue
        after = bisect.bisect_right(quotes, opened)
        resumed = quotes[after] if after < len(quotes) else float("inf")
        lost = resumed - t0
        back = {}
        for key in keys:
            back[key] = next((t for t, k in recorder.active if k == key and t > opened), float("inf")) - opened
        slowest = max(back.values()) if back else float("inf")
        worst_back = max(worst_back, slowest)
        recoveries.append((t0, opened + slowest))
        sim_time = dt.datetime.fromtimestamp(event.time, ZONE)
        person = acted.get(event.what)
        who = "the gateway and a person" if event.what == "restarted" else "a person"
        waited = f" ({person - t0:.2f} s waiting for {who}, then {opened - person:.2f} s)" if person else ""
        print(
            f"{names[event.what]} at {sim_time:%H:%M}: quotes lost {lost:.2f} s = {lost / 60:.3f} min real "
            f"({lost * SCALE / 60:.0f} simulated min at {SCALE:g}x); authenticated again after {opened - t0:.2f} s"
            f"{waited}; "
            f"subscriptions back {slowest:.2f} s after authentication ("
            + ", ".join(f"{k.split('+')[0]} {v:.2f}" for k, v in back.items())
            + ")"
        )
    print(f"competing login reported to the bot {events_at['competing reported']:.2f} s after it happened (target 10)")

    # -- orders -------------------------------------------------------------------------------------------------
    intended = int((86400 - 60 - 1) // ORDER_EVERY) + 1  # one per simulated ten minutes from 09:26
    skipped = intended - len(bot.outcomes)
    placed = sum(booked[tag] for tag in bot.outcomes)
    duplicates = sum(n - 1 for tag, n in booked.items() if tag in bot.outcomes and n > 1)
    errors = Counter(kind for kind in bot.outcomes.values() if kind != "placed")
    failed_booked = sum(1 for tag, kind in bot.outcomes.items() if kind != "placed" and booked[tag])
    print(
        f"orders intended {intended}, sent {len(bot.outcomes)} ({skipped} slots passed while the bot waited on a "
        f"call), booked {placed}, duplicated {duplicates} (target 0); refused {dict(errors)}, of which booked "
        f"{failed_booked}"
    )

    # -- requests refused while the session was down ----------------------------------------------------------------
    refused = [
        (i, r)
        for i, r in enumerate(requests)
        if r.status in (400, 401)
        and r.path.startswith("/iserver/")
        and r.endpoint not in SESSION_ENDPOINTS
        and r.endpoint is not None
    ]
    retried = 0
    orders_resent = 0
    for i, r in refused:
        later = [q for q in requests[i + 1 :] if same_request(q, r) and q.received - r.received < 15]
        if r.endpoint in ("place_order", "reply", "modify_order"):
            orders_resent += bool(later)
        elif any(q.status == 200 for q in later):
            retried += 1
    refused_orders = sum(1 for _, r in refused if r.endpoint == "place_order")
    print(
        f"requests refused because the session was down: {len(refused)} ({refused_orders} orders); sent again safely "
        f"{retried}; orders sent again {orders_resent} (target 0); bot read errors {dict(bot.read_errors)}"
    )

    # -- re-authentications and the request rate ------------------------------------------------------------------
    inits = [r for r in requests if r.endpoint == "initialize_brokerage_session"]
    by_client = sum(1 for r in inits if isinstance(r.body, dict) and r.body.get("compete") is False)
    by_user = sum(1 for r in inits if isinstance(r.body, dict) and r.body.get("compete") is True)
    statuses = sum(1 for r in requests if r.endpoint == "authentication_status")
    print(
        f"re-authentications: {by_client} ssodh/init with compete=false by the client, {by_user} with compete=true "
        f"by the user; {reopen_attempts} re-open attempts; {statuses} status checks"
    )
    times = sorted(r.received for r in requests if r.endpoint != "ws")  # REST requests, which IBKR's limit counts
    connects = sum(1 for r in requests if r.endpoint == "ws")
    recovery_peak = max((peak_rate(times, start, min(end, start + 60) + 1.0) for start, end in recoveries), default=0)
    overall_peak = peak_rate(times, times[0], times[-1]) if times else 0
    session_times = sorted(r.received for r in requests if r.endpoint in SESSION_ENDPOINTS - {"tickle"})
    session_peak = peak_rate(session_times, session_times[0], session_times[-1]) if session_times else 0

    too_many = sum(1 for r in requests if r.status == 429)
    print(
        f"peak request rate during recovery {recovery_peak}/s (from each event until every subscription is back, "
        f"+1 s; the bot's own traffic included), all day {overall_peak}/s; the re-opening's own requests (status, "
        f"ssodh/init) at most {session_peak}/s; IBKR's limit {GLOBAL_LIMIT}/s; 429s {too_many} (target 0); socket "
        f"connects {connects}"
    )
    ok = duplicates == 0 and worst_back <= 5.0 and recovery_peak <= GLOBAL_LIMIT and too_many == 0
    ok = ok and orders_resent == 0 and events_at["competing reported"] <= 10
    print("day targets met" if ok else "day targets MISSED")


if __name__ == "__main__":
    main()
