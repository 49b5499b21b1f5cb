"""A bracket order: an entry with a take-profit and a stop-loss attached.  PLACES ORDERS (use a paper account).

    python examples/bracket_order.py
    python examples/bracket_order.py --url https://localhost:5000/v1/api/ --account DU1234567

The three orders go in one request; the children name the parent by its cOID. They wait until the entry fills
and then form a one-cancels-the-other group. Offline, the example then moves the simulated price up to the
take-profit, so you see the stop-loss cancelled by the fill. Against a gateway it cancels the two exits at the end
(the bought shares stay in the account).
"""

from __future__ import annotations

import time

from _common import Session, run, step

from ibkr_sdk import OrderRequest, QuestionType

AAPL = 265598
ANSWERS = {
    QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True,
    QuestionType.MISSING_MARKET_DATA: True,
    QuestionType.STOP_ORDER_RISKS: True,
}


def _show(s: Session, ids: dict[str, str]) -> dict[str, str]:
    statuses = {}
    for role, order_id in ids.items():
        status = s.client.order_status(order_id).data
        statuses[role] = status.get("order_status", "?")
        print(f"  {role:11s} {order_id}  {status.get('order_type', ''):12s} {statuses[role]}")
    return statuses


def main(s: Session) -> None:
    client = s.client
    quote = client.snapshot_until_ready(str(AAPL), ["84", "86"], interval=0.2).data[0]
    ask = float(str(quote["86"]).lstrip("CH"))
    tag = f"example-bracket-{int(time.time() * 1000)}"
    entry = OrderRequest(AAPL, "BUY", 10, "LMT", price=round(ask * 1.002, 2), tif="DAY", coid=tag)  # marketable
    take_profit = OrderRequest(AAPL, "SELL", 10, "LMT", price=round(ask * 1.04, 2), tif="GTC", parent_id=tag)
    stop_loss = OrderRequest(AAPL, "SELL", 10, "STP", price=round(ask * 0.96, 2), tif="GTC", parent_id=tag)

    step(f"Place the bracket: entry at {entry.price}, take-profit {take_profit.price}, stop-loss {stop_loss.price}")
    acks = client.place_order([entry, take_profit, stop_loss], ANSWERS).data  # a list: one answer per order
    ids = dict(zip(("entry", "take-profit", "stop-loss"), (a["order_id"] for a in acks), strict=True))
    time.sleep(0.3)
    _show(s, ids)

    if s.offline:
        step("Offline: the price reaches the take-profit; its fill cancels the stop-loss")
        s.sim.set_price(AAPL, round(ask * 1.05, 2))
        time.sleep(0.3)
        _show(s, ids)
        s.sim.set_price(AAPL, None)
    else:
        step("Cancel the two exits")
        for role in ("take-profit", "stop-loss"):
            print(f"  {role}: {client.cancel_order(ids[role]).data.get('msg')}")

    step("Executions")
    for trade in client.trades().data:
        if trade.get("order_ref") == tag or str(trade.get("order_id")) in ids.values():
            print(f"  {trade.get('side')} {trade.get('size')} {trade.get('symbol')} @ {trade.get('price')}")


if __name__ == "__main__":
    run(main, __doc__, places_orders=True)
