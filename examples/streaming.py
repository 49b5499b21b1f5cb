"""Streaming quotes, orders and P&L over the gateway's WebSocket.

    python examples/streaming.py
    python examples/streaming.py --url https://localhost:5000/v1/api/ --seconds 30

Needs the `stream` extra (`pip install 'ibkr-cpapi-sdk[stream]'`). The WebSocket client takes its address,
certificate and session from the REST client. Subscriptions are sent once the session is ready and re-sent after
a reconnect; each quote frame carries only what changed, and `ws.quote(conid)` holds the merged quote. Read-only
against a gateway; offline, the example buys a few shares so that order and P&L updates arrive.
"""

from __future__ import annotations

import argparse
import time

from _common import Session, run, step

from ibkr_sdk import IbkrWsClient, OrderRequest, QuestionType, QueueSink, events
from ibkr_sdk.subscriptions import MarketDataSubscription, OrdersSubscription, PnlSubscription

QUOTES = {"265598": "AAPL", "272093": "MSFT"}
FIELDS = ["31", "84", "86"]  # last, bid, ask


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to listen (default 2)")


def _drain(sink: QueueSink, seconds: float) -> dict[str, int]:
    counts = {"quotes": 0, "orders": 0, "pnl": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = False
        while (md := sink.get(events.MarketData)) is not None:
            got = True
            counts["quotes"] += 1
            if counts["quotes"] <= 4 and md.quote is not None:
                symbol = QUOTES.get(str(md.quote.conid), md.quote.conid)
                print(f"  quote  {symbol}: last {md.quote.get('31')}  (changed: {', '.join(sorted(md.fields))})")
        while (orders := sink.get(events.Orders)) is not None:
            got = True
            for o in orders.data.get("args") or []:
                counts["orders"] += 1
                print(f"  order  {o.get('orderId')} {o.get('side', '')} {o.get('ticker', '')} {o.get('status')}")
        while (pnl := sink.get(events.Pnl)) is not None:
            got = True
            counts["pnl"] += 1
            if counts["pnl"] <= 2:
                for key, row in (pnl.data.get("args") or {}).items():
                    print(f"  p&l    {key}: daily {row.get('dpl')}, unrealized {row.get('upl')}")
        if not got:
            time.sleep(0.05)
    return counts


def main(s: Session) -> None:
    if s.offline:
        s.sim.streaming.pnl_interval = 0.5  # P&L frames twice a second instead of once

    step("Connect and subscribe")
    sink = QueueSink()
    ws = IbkrWsClient(ibkr_client=s.client, sink=sink, account_id=s.account)
    try:
        if not ws.start():
            raise SystemExit("the WebSocket session did not become ready")
        handles = [ws.subscribe(MarketDataSubscription(conid=c, fields=FIELDS)) for c in QUOTES]
        handles += [ws.subscribe(OrdersSubscription()), ws.subscribe(PnlSubscription())]
        for handle in handles:
            print(f"  {handle.binding_key}: {'acknowledged' if handle.wait(5) else handle.status}")

        if s.offline:
            step("Offline: buy 10 AAPL so that order and P&L frames arrive")
            order = OrderRequest(conid=265598, side="BUY", quantity=10, order_type="MKT", tif="DAY")
            answers = {QuestionType.MISSING_MARKET_DATA: True, QuestionType.MARKET_ORDER_CONFIRMATION: True}
            s.client.place_order(order, answers)

        step(f"Listening for {s.args.seconds:g} s")
        counts = _drain(sink, s.args.seconds)
        print(f"  received: {counts}")
        for conid, symbol in QUOTES.items():
            quote = ws.quote(int(conid))
            if quote is not None:
                print(f"  merged quote {symbol}: last {quote.get('31')} bid {quote.get('84')} ask {quote.get('86')}")
        stats = ws.stats()
        print(f"  frames {stats['frames']}, reconnects {stats['reconnects']}, dropped {stats['dropped'] or 'none'}")
    finally:
        print(f"  shut down cleanly: {ws.shutdown()}")


if __name__ == "__main__":
    run(main, __doc__, add_arguments=_options)
