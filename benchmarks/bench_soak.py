"""Soak: 8 threads of mixed traffic against the simulator with faults on about 1 request in 10 and IBKR's pacing on.

Each thread loops over reads (portfolio summary, positions, live orders), market data snapshots, history, order
placements (market orders that fill; limit orders that rest, some with questions) and cancels of its resting
orders. The simulator enforces IBKR's limits (scaled by SCALE) and answers 429 beyond them; faults are drawn per
request (seeded): HTTP 503 before or after the request took effect, resets before or after, stalls past the client
timeout after the request took effect, and malformed 200 answers before or after. Stalls are not injected on the
history endpoints: a server still working on a request the client gave up on keeps its in-flight slot, which no
client can see. The pause between two looks at the live orders during a reconciliation is scaled like the pacing.

Every intended order carries a unique `referrer` tag, so the simulator's book shows how often each was booked
whatever the client reported. Nobody retries an order blindly: an error is counted as the caller saw it.

Prints orders intended vs booked, duplicates, failed-but-booked (and how many of those errors lacked the cOID),
reported-placed-but-not-booked, 429s received, order latency p50/max against the client timeout, and how many
live_orders requests the reconciliations needed. Targets: 0 duplicates, 0 failed-but-booked without the cOID,
0 reported-but-not-booked, 0 x 429, order latency max <= 3 x the client timeout. Loopback only.
"""

from __future__ import annotations

import logging
import random
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ibkr_sdk import IbkrClient, IbkrError, OrderQuestionError, OrderStateUnknownError  # noqa: E402
from ibkr_sdk.lib import orders as order_flow  # noqa: E402
from ibkr_sdk.simulator import Simulator  # noqa: E402

THREADS = 8
ROUNDS = 60  # per thread
SCALE = 0.2  # IBKR's pacing periods x 0.2 (global 10 per 0.2 s, live_orders 1 per 1 s)
TIMEOUT = 2.0  # client timeout, seconds
SEED = 12
CONIDS = (265598, 8314, 272093)  # AAPL, IBM, MSFT
ANSWERS = {"o354": True, "o163": True, "o383": True, "o451": True}
HISTORY_ROUTES = ("marketdata_history_by_conid", "hmds_history_by_conid")
# (kind, value, after, probability): about 10 % of requests in all.
FAULTS = [
    ("status", 503, False, 0.03),
    ("status", 503, True, 0.02),
    ("reset", None, False, 0.02),
    ("reset", None, True, 0.02),
    ("malformed", None, False, 0.015),
    ("malformed", None, True, 0.015),
]
STALL = ("stall", TIMEOUT + 0.5, True, 0.02)


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: dict[str, tuple[str, Any]] = {}  # tag -> ("placed", ack) | ("error", exception)
        self.latencies: list[float] = []
        self.calls = Counter[str]()
        self.read_errors = Counter[str]()
        self.cancel_errors = Counter[str]()

    def order(self, tag: str, outcome: tuple[str, Any], latency: float) -> None:
        with self.lock:
            self.outcomes[tag] = outcome
            self.latencies.append(latency)


def worker(n: int, client: IbkrClient, tally: Tally) -> None:
    rng = random.Random(SEED * 100 + n)
    resting: list[str] = []
    for i in range(ROUNDS):
        conid = rng.choice(CONIDS)
        action = rng.choices(["read", "snapshot", "history", "order", "cancel"], [3, 3, 1, 3, 1])[0]
        tally.calls[action] += 1
        try:
            if action == "read":
                # live_orders is paced at 1 per 5 s: IBKR advises against polling it, so reads rarely do.
                rng.choice([client.portfolio_summary, client.positions] * 3 + [client.live_orders])()
            elif action == "snapshot":
                client.live_marketdata_snapshot(conids=str(conid), fields=["31", "84", "86"])
            elif action == "history":
                client.marketdata_history_by_conid(str(conid), bar="1h", period="1d")
            elif action == "cancel" and resting:
                client.cancel_order(resting.pop(0))
        except IbkrError as exc:
            (tally.cancel_errors if action == "cancel" else tally.read_errors)[type(exc).__name__] += 1
        if action != "order":
            continue
        tag = f"soak-{n}-{i}"
        ticket: dict[str, Any] = {"conid": conid, "side": rng.choice(["BUY", "SELL"]), "quantity": 1, "tif": "DAY"}
        ticket["referrer"] = tag
        if rng.random() < 0.5:
            ticket["orderType"] = "MKT"
        else:
            ticket.update(orderType="LMT", price=1.0 if ticket["side"] == "BUY" else 9999.0)  # rests
        if rng.random() < 0.5:
            ticket["cOID"] = tag  # half carry the caller's cOID, half get the SDK's
        started = time.monotonic()
        try:
            ack = client.place_order(ticket, ANSWERS)
            outcome: tuple[str, Any] = ("placed", ack.data)
            if ticket["orderType"] == "LMT":
                resting.append(str(ack.data["order_id"]))
        except (IbkrError, OrderQuestionError) as exc:
            outcome = ("error", exc)
        tally.order(tag, outcome, time.monotonic() - started)


def main() -> None:
    started = time.monotonic()
    logging.getLogger("ibkr_sdk").setLevel(logging.ERROR)  # the reconciliations' warnings are counted, not shown
    # Time scaled as IBKR's limits are: the pause between two looks at the live orders (1 s, for IBKR's lag in
    # listing a new order) keeps its proportion to the client timeout and the live_orders period.
    order_flow.RESOLVE_INTERVAL *= SCALE
    with Simulator(pacing=True, pacing_time_scale=SCALE, seed=SEED) as sim:
        for kind, value, after, probability in FAULTS:
            sim.inject("*", kind, value, times=None, after=after, probability=probability)
        kind, value, after, probability = STALL
        for route in ("place_order", "reply", "cancel_order", "live_orders", "live_marketdata_snapshot"):
            sim.inject(route, kind, value, times=None, after=after, probability=probability)
        clients = [
            IbkrClient(url=sim.url, account_id=sim.accounts[0], timeout=TIMEOUT, pacing_time_scale=SCALE)
            for _ in range(2)  # two clients of one process on one account, four threads each
        ]
        feed_before = {key: feed.fetches for key, feed in order_flow._LIVE_FEEDS.items()}
        tally = Tally()
        threads = [threading.Thread(target=worker, args=(n, clients[n % 2], tally)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        sim.clear_faults()
        for c in clients:
            c.close()
        booked = Counter(o.ticket.get("referrer") for o in sim.orders)
        coid_of = {o.ticket.get("referrer"): o.coid for o in sim.orders}
        requests = sim.requests
    fetches = sum(feed.fetches - feed_before.get(key, 0) for key, feed in order_flow._LIVE_FEEDS.items())

    intended = len(tally.outcomes)
    duplicates = sum(n - 1 for tag, n in booked.items() if tag in tally.outcomes and n > 1)
    failed = {tag: exc for tag, (kind, exc) in tally.outcomes.items() if kind == "error"}
    failed_booked = [tag for tag in failed if booked[tag]]
    without_coid = [
        tag
        for tag in failed_booked
        if not (isinstance(failed[tag], OrderStateUnknownError) and failed[tag].coid == coid_of[tag])
    ]
    reported_not_booked = [tag for tag, (kind, _) in tally.outcomes.items() if kind == "placed" and not booked[tag]]
    unknown = sum(isinstance(e, OrderStateUnknownError) for e in failed.values())
    # A reconciled order is returned as {"order_id", "order_status", "cOID"} (an acknowledgement has more fields).
    found = sum(
        1
        for kind, data in tally.outcomes.values()
        if kind == "placed" and set(data) == {"order_id", "order_status", "cOID"}
    )
    error_kinds = Counter(type(e).__name__ for e in failed.values())
    faults = sum(1 for r in requests if r.fault)
    too_many = sum(1 for r in requests if r.status == 429)
    latencies = sorted(tally.latencies)
    p50, worst = statistics.median(latencies), latencies[-1]

    print(
        f"soak: {THREADS} threads x {ROUNDS} rounds, {len(requests)} requests, {faults} faults "
        f"({faults / max(1, len(requests)):.1%}), pacing x{SCALE}, client timeout {TIMEOUT:g} s, "
        f"{time.monotonic() - started:.0f} s"
    )
    placed = sum(booked[t] for t in tally.outcomes)
    print(f"orders intended {intended}, booked {placed}, failed {len(failed)} {dict(error_kinds)}")
    print(f"duplicates {duplicates} (target 0)")
    print(
        f"failed-but-booked {len(failed_booked)}; without the cOID in the error {len(without_coid)} (target 0); "
        f"OrderStateUnknownError {unknown}"
    )
    print(f"reported-placed-but-not-booked {len(reported_not_booked)} (target 0)")
    print(f"429s received {too_many} (target 0)")
    print(
        f"order latency p50 {p50:.2f} s, max {worst:.2f} s = {worst / TIMEOUT:.2f} x the client timeout (target <= 3)"
    )
    print(
        f"reconciliations {found + unknown} ({found} found by cOID, {unknown} unknown) served by {fetches} "
        f"live_orders requests of their own; read errors {dict(tally.read_errors)}"
    )
    ok = not duplicates and not without_coid and not reported_not_booked and not too_many and worst <= 3 * TIMEOUT
    print("soak targets met" if ok else "soak targets MISSED")


if __name__ == "__main__":
    main()
