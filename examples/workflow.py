"""The main workflow of a trading program, end to end, through ibkr_sdk.

By default it starts the embedded gateway simulator in this process on a free loopback port, so it runs offline:

    python examples/workflow.py                     # against the simulator (what `make demo` runs)
    python examples/workflow.py --url https://localhost:5000/v1/api/ --account DU1234567   # a real gateway

Steps: auth status -> accounts -> conids by StockQuery -> snapshot -> daily history for five symbols in parallel ->
a bracket order through the question/reply flow (and the same with auto_suppress) -> live orders -> positions after
the fill -> cancel the open child -> logout.

Against a real gateway this PLACES ORDERS (on the account given): use a paper account.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from ibkr_sdk import IbkrClient, OrderRequest, QuestionType, StockQuery

SYMBOLS = [StockQuery("AAPL", contract_conditions={"exchange": "NASDAQ"}), "MSFT", "IBM", "SPY", "NVDA"]
FIELDS = ["55", "31", "84", "86"]  # symbol, last, bid, ask
ANSWERS = {QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True, QuestionType.MISSING_MARKET_DATA: True}


class RoundTrips(logging.Handler):
    """Counts the order and reply requests the client sends (read from its DEBUG request log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("-> POST") and ("/orders" in text or "/iserver/reply/" in text):
            self.count += 1


@contextlib.contextmanager
def counting_round_trips() -> Iterator[RoundTrips]:
    counter = RoundTrips()
    log = logging.getLogger("ibkr_sdk")
    old_level = log.level
    log.addHandler(counter)
    log.setLevel(logging.DEBUG)
    try:
        yield counter
    finally:
        log.removeHandler(counter)
        log.setLevel(old_level)


def step(title: str) -> None:
    print(f"\n== {title}")


def bracket(conid: int, ask: float, quantity: int, tag: str) -> list[OrderRequest]:
    """A marketable limit entry with a take-profit (+5 %) and a stop-loss (-5 %) attached."""
    parent = OrderRequest(
        conid=conid,
        side="BUY",
        quantity=quantity,
        order_type="LMT",
        price=round(ask * 1.001, 2),
        coid=f"demo-{tag}-{int(time.time() * 1000)}",
    )
    take_profit = OrderRequest(
        conid=conid,
        side="SELL",
        quantity=quantity,
        order_type="LMT",
        price=round(ask * 1.05, 2),
        tif="GTC",
        parent_id=parent.coid,
    )
    stop_loss = OrderRequest(
        conid=conid,
        side="SELL",
        quantity=quantity,
        order_type="STP",
        price=round(ask * 0.95, 2),
        tif="GTC",
        parent_id=parent.coid,
    )
    return [parent, take_profit, stop_loss]


def run(url: str, account_id: str, verify: Any) -> None:
    client = IbkrClient(url=url, account_id=account_id, cacert=verify)

    step("Authentication status")
    status = client.authentication_status().data
    print(
        f"authenticated={status.get('authenticated')} connected={status.get('connected')} "
        f"competing={status.get('competing')}"
    )

    step("Accounts")
    accounts = client.receive_brokerage_accounts().data
    print(f"accounts: {accounts.get('accounts')}  selected: {accounts.get('selectedAccount')}")

    step("Conids by StockQuery (US listings unless a query says otherwise)")
    conids: dict[str, int] = client.stock_conid_by_symbol(SYMBOLS).data
    for symbol, conid in conids.items():
        print(f"  {symbol:6s} {conid}")

    step("Snapshot (the pre-flight request is repeated until the fields arrive)")
    snapshot = client.snapshot_until_ready([str(c) for c in conids.values()], FIELDS, interval=0.2).data
    quotes = {int(row["conid"]): row for row in snapshot}
    print(f"  {'symbol':6s} {'last':>9s} {'bid':>9s} {'ask':>9s}")
    for conid, row in quotes.items():
        print(
            f"  {row.get('55', conid)!s:6s} {row.get('31', '-'):>9s} {row.get('84', '-'):>9s} {row.get('86', '-'):>9s}"
        )

    step("Daily history for five symbols, in parallel (at most 5 requests in flight)")
    started = time.perf_counter()
    history = client.marketdata_history_by_conids(
        {symbol: str(conid) for symbol, conid in conids.items()}, period="1m", bar="1d"
    )
    elapsed = time.perf_counter() - started
    for symbol, bars in history.items():
        if isinstance(bars, Exception):
            print(f"  {symbol:6s} failed: {bars}")
        elif bars:
            print(f"  {symbol:6s} {len(bars):3d} bars, last close {bars[-1]['close']} on {bars[-1]['date']:%Y-%m-%d}")
        else:
            print(f"  {symbol:6s} no bars")
    print(f"  ({elapsed:.2f} s)")

    aapl = conids["AAPL"]
    ask = float(str(quotes[aapl].get("86") or quotes[aapl].get("31")).lstrip("CH"))

    step("Bracket order through the question/reply flow")
    with counting_round_trips() as plain:
        placed = client.place_order(bracket(aapl, ask, 10, "a"), ANSWERS).data
    for ack in placed:
        print(f"  order {ack.get('order_id')}: {ack.get('order_status')}")
    print(f"  round trips (order + replies): {plain.count}")

    step("The same bracket with auto_suppress (approved questions suppressed for the session)")
    smart = IbkrClient(url=url, account_id=account_id, cacert=verify, auto_suppress=True)
    with counting_round_trips() as suppressed:
        smart.place_order(bracket(aapl, ask, 5, "b"), ANSWERS)
    print(
        f"  round trips with auto_suppress: {suppressed.count} (without: {plain.count}); "
        f"one suppress request was sent first"
    )
    smart.close()

    step("Live orders")
    live = client.live_orders().data.get("orders", [])
    for order in live:
        print(
            f"  {order.get('orderId')}  {order.get('side'):4s} {order.get('orderDesc', ''):32s} "
            f"{order.get('status'):13s} cOID={order.get('order_ref')}"
        )

    step("Positions after the fill")
    for position in client.positions_all().data:
        print(f"  {position.get('contractDesc')}: {position.get('position')} @ {position.get('avgCost')}")

    step("Cancel the open take-profit child of the first bracket")
    first_parent = placed[0].get("order_id")
    children = [
        o
        for o in live
        if str(o.get("parentId")) == str(first_parent) and o.get("status") in ("Submitted", "PreSubmitted")
    ]
    take_profit = next((o for o in children if o.get("side") == "SELL" and "Limit" in str(o.get("orderType"))), None)
    if take_profit is None:
        print("  no open child found")
    else:
        answer = client.cancel_order(str(take_profit["orderId"])).data
        print(f"  cancel {take_profit['orderId']}: {answer.get('msg')}")
        time.sleep(0.2)
        status = client.order_status(str(take_profit["orderId"])).data
        print(f"  status now: {status.get('order_status')}")

    step("Logout")
    print(f"  {client.logout().data}")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="base URL of a real gateway; omit to use the embedded simulator")
    parser.add_argument("--account", default="DU1234567", help="account to use (default DU1234567)")
    parser.add_argument(
        "--cacert", default=None, help="CA bundle of the gateway (default: accept its self-signed cert)"
    )
    args = parser.parse_args()
    if args.url:
        run(args.url, args.account, args.cacert if args.cacert else False)
        return
    from ibkr_sdk.simulator import Simulator

    with Simulator(pacing=True, accounts=[args.account]) as sim:
        print(f"embedded gateway simulator listening at {sim.url}")
        run(sim.url, args.account, False)
        rejected = sum(1 for r in sim.requests if r.status == 429)
        print(f"\n{len(sim.requests)} requests served by the simulator, {rejected} answered 429 (pacing).")


if __name__ == "__main__":
    main()
