"""Placing and modifying an order through IBKR's confirmation questions.  PLACES ORDERS (use a paper account).

    python examples/order_questions.py
    python examples/order_questions.py --url https://localhost:5000/v1/api/ --account DU1234567

IBKR often answers an order with a question ("the price is far from the market; are you sure?"). `answers` says
in advance which questions you accept; a question nobody accepted is declined on the server and raised as
`OrderQuestionError` with its text, so nothing stays half-placed. The order is a limit buy well below the market,
so it rests and can be modified and cancelled.
"""

from __future__ import annotations

import time

from _common import Session, run, step

from ibkr_sdk import OrderQuestionError, OrderRequest, QuestionType

AAPL = 265598


def main(s: Session) -> None:
    client = s.client
    client.snapshot_until_ready(str(AAPL), ["31", "84", "86"], interval=0.2)  # market data for the contract
    last = float(str(client.live_marketdata_snapshot(str(AAPL), ["31"]).data[0]["31"]).lstrip("CH"))
    price = round(last * 0.85, 2)  # far below the market: it will not fill, and IBKR asks about the price
    coid = f"example-questions-{int(time.time() * 1000)}"  # our own id: finds the order again whatever happens
    order = OrderRequest(conid=AAPL, side="BUY", quantity=5, order_type="LMT", price=price, tif="DAY", coid=coid)

    step("What if: the order's effect, without placing it")
    preview = client.whatif_order(order).data
    amount = preview.get("amount") or {}
    print(f"  amount {amount.get('amount')}, commission {amount.get('commission')}, total {amount.get('total')}")

    step(f"Place BUY 5 AAPL LMT {price} with no answers: the question is declined and raised")
    try:
        client.place_order(order, answers={})
    except OrderQuestionError as exc:
        print(f"  OrderQuestionError: {exc}")

    step("Place it again, accepting the price question")
    answers = {QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True, QuestionType.MISSING_MARKET_DATA: True}
    ack = client.place_order(order, answers).data
    order_id = ack["order_id"]
    print(f"  order {order_id}: {ack['order_status']} (cOID {order.coid})")

    step("Modify: a higher limit and a larger size (questions answered the same way)")
    changed = OrderRequest(conid=AAPL, side="BUY", quantity=8, order_type="LMT", price=round(last * 0.9, 2), tif="DAY")
    # The modification is sent once; if its answer is lost, the client looks at the order instead of re-sending.
    print(f"  {client.modify_order(order_id, changed, answers).data}")
    status = client.order_status(order_id).data
    print(f"  now: {status.get('order_status')} {status.get('size')} @ {status.get('limit_price')}")

    step("Cancel")
    print(f"  {client.cancel_order(order_id).data.get('msg')}")
    for _ in range(10):  # a cancel is acknowledged first and takes effect a moment later
        status = client.order_status(order_id).data
        if status.get("order_status") == "Cancelled":
            break
        time.sleep(0.2)
    print(f"  now: {status.get('order_status')}")


if __name__ == "__main__":
    run(main, __doc__, places_orders=True)
