"""An asyncio trading bot: stream quotes, place a bracket order on a signal, watch its status on the socket.

By default it starts the embedded gateway simulator on a free loopback port, so it runs offline (CI runs it so):

    python examples/async_bot.py
    python examples/async_bot.py --url https://localhost:5000/v1/api/ --account DU1234567   # a real gateway

The signal is deliberately simple (the ask ticks above its first value, or a few quotes have arrived). Against a
real gateway this PLACES AN ORDER on the account given: use a paper account. Needs `ibkr-cpapi-sdk[async,stream]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

from ibkr_sdk import AsyncIbkrClient, AsyncIbkrWsClient, OrderRequest, QuestionType, events
from ibkr_sdk.subscriptions import MarketDataSubscription, OrdersSubscription

FIELDS = ["31", "84", "86"]  # last, bid, ask
ANSWERS = {QuestionType.MISSING_MARKET_DATA: True, QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True}


def bracket(conid: int, ask: float, quantity: int = 1) -> list[OrderRequest]:
    """A marketable limit entry with a take-profit (+2 %) and a stop-loss (-2 %) attached by cOID."""
    parent = OrderRequest(
        conid=conid,
        side="BUY",
        quantity=quantity,
        order_type="LMT",
        price=round(ask * 1.001, 2),
        tif="DAY",
        coid=f"bot-{int(time.time() * 1000)}",
    )
    take_profit = OrderRequest(
        conid=conid, side="SELL", quantity=quantity, order_type="LMT", price=round(ask * 1.02, 2), tif="GTC"
    )
    stop_loss = OrderRequest(
        conid=conid, side="SELL", quantity=quantity, order_type="STP", price=round(ask * 0.98, 2), tif="GTC"
    )
    take_profit.parent_id = stop_loss.parent_id = parent.coid
    return [parent, take_profit, stop_loss]


async def run(url: str, account: str, seconds: float) -> int:
    async with AsyncIbkrClient(url=url, account_id=account) as client:
        conid = (await client.stock_conid_by_symbol("AAPL")).data["AAPL"]
        print(f"AAPL is conid {conid}")
        async with AsyncIbkrWsClient(ibkr_client=client) as ws:
            await ws.subscribe(MarketDataSubscription(conid=str(conid), fields=FIELDS))
            await ws.subscribe(OrdersSubscription())
            first_ask: float | None = None
            quotes = 0
            placed: list[dict[str, Any]] = []
            statuses: dict[str, str] = {}
            deadline = time.monotonic() + seconds
            events_seen = ws.events(events.MarketData, events.Orders)
            while time.monotonic() < deadline:
                try:
                    event = await asyncio.wait_for(anext(events_seen), max(0.0, deadline - time.monotonic()))
                except (asyncio.TimeoutError, StopAsyncIteration):
                    break
                if isinstance(event, events.MarketData):
                    quote = ws.quote(conid)
                    ask = quote.number("86") if quote is not None else None
                    if ask is None:
                        continue
                    quotes += 1
                    print(f"  quote {quotes}: last {quote.number('31') if quote else None} ask {ask}")
                    first_ask = ask if first_ask is None else first_ask
                    if not placed and (ask > first_ask or quotes >= 3):  # the signal
                        print(f"signal at ask {ask}: placing a bracket order")
                        placed = (await client.place_order(bracket(conid, ask), ANSWERS)).data
                        for ack in placed:
                            print(f"  order {ack.get('order_id')}: {ack.get('order_status')}")
                else:
                    for order in event.data.get("args") or []:
                        order_id, status = str(order.get("orderId")), order.get("status")
                        if status and statuses.get(order_id) != status:
                            statuses[order_id] = status
                            print(f"  socket: order {order_id} is {status}")
                mine = {str(ack.get("order_id")) for ack in placed}
                if mine and mine <= set(statuses):
                    break
            await events_seen.aclose()
    if not placed:
        print("no signal within the time given", file=sys.stderr)
        return 1
    print(f"done: {len(placed)} orders placed, {len(statuses)} order updates seen on the socket")
    return 0 if statuses else 1


@contextlib.contextmanager
def _gateway(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from ibkr_sdk.simulator import Simulator

    with Simulator() as sim:
        sim.streaming.md_interval = 0.2
        yield sim.url


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="async_bot.py", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the gateway's REST URL (default: the embedded simulator)")
    parser.add_argument("--account", default="DU1234567", help="the account to trade in")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to run at most")
    args = parser.parse_args(argv)
    with _gateway(args.url) as url:
        return asyncio.run(run(url, args.account, args.seconds))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
