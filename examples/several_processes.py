"""Several processes on one gateway: they share IBKR's limits and take turns in the order flow.  PLACES ORDERS.

    python examples/several_processes.py
    python examples/several_processes.py --url https://localhost:5000/v1/api/ --account DU1234567
    python examples/several_processes.py --coordination redis://127.0.0.1:6379/0     # processes on several hosts

IBKR counts its request limits per session and IP, and runs one order question/reply exchange per brokerage session,
however many programs share them. Here three worker processes (think: a bot, a notebook and a scheduled job), each
with its own `IbkrClient`, place orders that draw a confirmation question and take snapshots in a burst. They
coordinate through the default `local` store (files under IBKR_SDK_STATE_DIR with OS locks; nothing to start), so
together they stay within the limits and no question is answered for another process's order.

Offline, the example then runs the same workers with `coordination="process"` (each process paces only itself, as
before issue 20) and shows what the simulator answered: 429s and "reply id not found". That half never runs
against a real gateway, where it would earn the penalty box for the whole IP.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from typing import Any

from _common import Session, run, step

from ibkr_sdk import IbkrClient, QuestionType

AAPL = 265598
WORKERS = 3
SNAPSHOTS = 20  # per worker
ORDERS = 2  # per worker
PACING_SCALE = 0.1  # offline: IBKR's periods a tenth as long on both sides (10 per second becomes 10 per 100 ms)
SPAWN = multiprocessing.get_context("spawn")  # nothing inherited: each worker is a program of its own


def worker(job: dict[str, Any], go: Any, out: Any) -> None:
    """One process: orders that each draw IBKR's price question, then a burst of snapshots."""
    client = IbkrClient(**job["client"])
    out.put(("ready", os.getpid()))
    go.wait(60)  # all workers start together, as a burst would
    errors: list[str] = []
    order_ids: list[str] = []
    for n in range(ORDERS):
        order = {
            "conid": AAPL,
            "side": "BUY",
            "orderType": "LMT",
            "price": job["price"],
            "quantity": 1,
            "tif": "DAY",
            "cOID": f"{job['tag']}-{n}-{int(time.time() * 1000)}",
        }
        answers = {QuestionType.MISSING_MARKET_DATA: True, QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True}
        try:
            placed = client.place_order(order, answers).data
            order_ids.append(str(placed.get("order_id") if isinstance(placed, dict) else placed))
        except Exception as exc:
            errors.append(f"order {order['cOID']}: {type(exc).__name__}: {str(exc)[:160]}")
    started = time.monotonic()
    for _ in range(SNAPSHOTS):
        try:
            client.live_marketdata_snapshot(conids=[str(AAPL)], fields=["31", "84", "86"])
        except Exception as exc:  # shown by the parent
            errors.append(f"snapshot: {type(exc).__name__}: {str(exc)[:160]}")
    snapshots_took = time.monotonic() - started
    client.close()
    out.put(("done", os.getpid(), {"tag": job["tag"], "took": snapshots_took, "orders": order_ids, "errors": errors}))


def fleet(s: Session, coordination: str, price: float) -> list[dict[str, Any]]:
    """Start the workers, let them go at once, and collect what each reports."""
    settings: dict[str, Any] = {"url": s.url, "account_id": s.account, "coordination": coordination, "timeout": 10}
    if s.cacert is not None:
        settings["cacert"] = s.cacert
    if s.offline:
        settings["pacing_time_scale"] = PACING_SCALE
    go, out = SPAWN.Event(), SPAWN.Queue()
    jobs = [{"client": settings, "tag": f"w{i}", "price": price} for i in range(WORKERS)]
    procs = [SPAWN.Process(target=worker, args=(job, go, out), daemon=True) for job in jobs]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            assert out.get(timeout=60)[0] == "ready"
        go.set()
        reports = [out.get(timeout=120)[2] for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    for r in sorted(reports, key=lambda r: r["tag"]):
        took = f"{SNAPSHOTS} snapshots in {r['took']:.2f} s"
        print(f"  {r['tag']}: orders {r['orders']}, {took}, {len(r['errors'])} errors")
        for e in r["errors"][:2]:
            print(f"      {e}")
    return reports


def tally(s: Session, since: int, reports: list[dict[str, Any]]) -> None:
    """What the simulator answered since request number `since`, and the orders it booked (offline only)."""
    seen = list(s.sim.requests)[since:]
    too_many = sum(1 for r in seen if r.status == 429)
    lost = sum(1 for r in reports for e in r["errors"] if "reply id not found" in e.lower())
    booked = sum(len(r["orders"]) for r in reports)
    print(f"  the gateway got {len(seen)} requests: {too_many} x 429; {lost} x 'reply id not found'")
    print(f"  orders booked: {booked} of {WORKERS * ORDERS}")


def cancel(client: IbkrClient, reports: list[dict[str, Any]]) -> None:
    for r in reports:
        for order_id in r["orders"]:
            client.cancel_order(order_id)
    print(f"  {sum(len(r['orders']) for r in reports)} cancelled")


def main(s: Session) -> None:
    # This process is one more on the gateway: offline, it paces on the simulator's scale like the workers.
    client = s.new_client(pacing_time_scale=PACING_SCALE) if s.offline else s.client
    client.snapshot_until_ready(str(AAPL), ["31", "84", "86"], interval=0.2)
    last = float(str(client.live_marketdata_snapshot(str(AAPL), ["31"]).data[0]["31"]).lstrip("CH"))
    price = round(last * 0.8, 2)  # far below the market: the orders rest, and IBKR asks about the price

    coordination = s.args.coordination
    if coordination == "process" and not s.offline:
        raise SystemExit("--coordination process lets the workers exceed IBKR's limits together: offline only")
    step(f"{WORKERS} processes with coordination={coordination!r}: {ORDERS} orders and {SNAPSHOTS} snapshots each")
    since = len(s.sim.requests) if s.offline else 0
    reports = fleet(s, coordination, price)
    if s.offline:
        tally(s, since, reports)
        assert not any(r["errors"] for r in reports), "coordinated workers must not fail"
    step("Cancel what the workers placed")
    cancel(client, reports)
    if not s.offline:
        return

    step("The same workers with coordination='process' (each process paces only itself)")
    since = len(s.sim.requests)
    reports = fleet(s, "process", price)
    tally(s, since, reports)
    # Nothing shared told this process about their burst: let the gateway's windows pass before sending more.
    time.sleep(1.0 * PACING_SCALE)
    step("Cancel what they placed")
    cancel(client, reports)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--coordination",
        default="local",
        help="'local' (default: the processes of this machine), or a redis:// URL shared by several hosts",
    )


if __name__ == "__main__":
    run(main, __doc__, places_orders=True, simulator={"pacing_time_scale": PACING_SCALE}, add_arguments=add_arguments)
