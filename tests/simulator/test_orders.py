"""Orders: questions and replies, suppression, fills into positions, trades and cash, brackets, cancel, modify."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient, OrderRejectedError
from ibkr_sdk.simulator import OrderCheck, QuestionRule, Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, IBM, answer_all


def quote(api: IbkrClient, conid: int) -> dict[str, Any]:
    api.live_marketdata_snapshot(conids=str(conid), fields=["31", "84", "86"])
    data: dict[str, Any] = api.live_marketdata_snapshot(conids=str(conid), fields=["31", "84", "86"]).data[0]
    return data


def limit(price: float, quantity: float = 10, side: str = "BUY", **extra: Any) -> dict[str, Any]:
    return {
        "conid": AAPL,
        "orderType": "LMT",
        "price": price,
        "quantity": quantity,
        "side": side,
        "tif": "DAY",
        **extra,
    }


def market(quantity: float = 10, side: str = "BUY", conid: int = AAPL, **extra: Any) -> dict[str, Any]:
    return {"conid": conid, "orderType": "MKT", "quantity": quantity, "side": side, "tif": "DAY", **extra}


def test_two_questions_answered_with_exactly_two_replies(sim: Simulator, api: IbkrClient) -> None:
    # No snapshot for AAPL yet (o354) and a limit 30 % below the market (o163).
    first = api._place_order(orders=[limit(160.0)]).data
    assert first[0]["messageIds"] == ["o354"] and "without market data" in first[0]["message"][0]
    second = api.reply(first[0]["id"], True).data
    assert second[0]["messageIds"] == ["o163"] and second[0]["id"] != first[0]["id"]
    assert '"BUY 10 AAPL NASDAQ.NMS @ 160.0"' in second[0]["message"][0]
    ack = api.reply(second[0]["id"], True).data
    assert ack == [{"order_id": ack[0]["order_id"], "order_status": "Submitted", "encrypt_message": "1"}]
    replies = [r for r in sim.requests if r.endpoint == "reply"]
    assert len(replies) == 2 and all(r.body == {"confirmed": True} for r in replies)
    (order,) = sim.orders
    assert order.order_id == int(ack[0]["order_id"]) and order.status == "Submitted" and order.price == 160.0


def test_declined_question_discards_the_order(sim: Simulator, api: IbkrClient) -> None:
    question = api._place_order(orders=[limit(160.0)]).data
    answer = api.reply(question[0]["id"], False).data
    assert "error" in answer and "not confirmed" in answer["error"]
    assert sim.orders == []
    again = api.reply(question[0]["id"], True).data
    assert "reply id not found" in again["error"]


def test_suppressed_questions_are_skipped(api: IbkrClient) -> None:
    assert api.suppress_messages(["o354"]).data == {"status": "submitted"}
    answer, asked = answer_all(api, api._place_order(orders=[limit(160.0)]).data)
    assert asked == ["o163"] and answer[0]["order_status"] == "Submitted"
    api.suppress_messages(["o354", "o163"])
    answer, asked = answer_all(api, api._place_order(orders=[limit(161.0)]).data)
    assert asked == [] and "order_id" in answer[0]
    api.reset_suppressed_messages()
    _, asked = answer_all(api, api._place_order(orders=[limit(162.0)]).data)
    assert asked == ["o354", "o163"]


def test_size_and_value_questions(api: IbkrClient) -> None:
    quote(api, AAPL)
    _, asked = answer_all(api, api._place_order(orders=[market(quantity=650)]).data)
    assert asked == ["o383", "o451"]


def test_custom_question_rules(client_for: Callable[..., IbkrClient]) -> None:
    def is_stop(check: OrderCheck) -> bool:
        return check.order_type == "STP" and check.contract.symbol == "AAPL" and check.price == 100.0

    stop_rule = QuestionRule("o10331", "You are about to submit a stop order: {order}", is_stop)
    with Simulator(question_rules=[stop_rule]) as sim:
        api = client_for(sim)
        ticket = {"conid": AAPL, "orderType": "STP", "price": 100.0, "quantity": 1, "side": "SELL", "tif": "GTC"}
        question = api._place_order(orders=[ticket]).data
        assert question[0]["messageIds"] == ["o10331"]
        assert question[0]["message"] == ["You are about to submit a stop order: SELL 1 AAPL NASDAQ.NMS @ 100.0"]
        api.reply(question[0]["id"], True)
        _, asked = answer_all(api, api._place_order(orders=[market(1)]).data)
        assert asked == []  # the default o354 is not among the rules any more
        assert [r.message_id for r in sim.question_rules] == ["o10331"]


def test_a_new_order_invalidates_an_open_question(api: IbkrClient) -> None:
    question = api._place_order(orders=[limit(160.0)]).data
    quote(api, AAPL)
    api._place_order(orders=[market(1)])
    assert "reply id not found" in api.reply(question[0]["id"], True).data["error"]


def test_market_order_fills_into_position_trade_and_cash(sim: Simulator, api: IbkrClient) -> None:
    ask = float(quote(api, AAPL)["86"])
    cash_before = api.get_ledger().data["USD"]["cashbalance"]
    ack = api._place_order(orders=[market(10, cOID="mkt-1")]).data
    assert ack[0]["order_status"] == "Filled"
    order_id = int(ack[0]["order_id"])
    (position,) = api.positions().data
    assert position["conid"] == AAPL and position["position"] == 10.0
    assert position["avgPrice"] == pytest.approx(ask) and position["contractDesc"] == "AAPL"
    (trade,) = api.trades().data
    assert trade["order_id"] == order_id and trade["side"] == "B" and trade["size"] == 10.0
    assert trade["order_ref"] == "mkt-1" and float(trade["price"]) == pytest.approx(ask)
    commission = float(trade["commission"])
    ledger = api.get_ledger().data
    assert ledger["USD"]["cashbalance"] == pytest.approx(cash_before - 10 * ask - commission, abs=0.01)
    assert ledger["BASE"]["stockmarketvalue"] == pytest.approx(10 * ask, rel=0.01)
    status = api.order_status(str(order_id)).data
    assert status["order_status"] == "Filled" and status["side"] == "B" and status["cum_fill"] == "10.0"
    live = api.live_orders().data
    assert live["snapshot"] is True and live["orders"][0]["order_ref"] == "mkt-1"
    assert live["orders"][0]["status"] == "Filled"
    # Selling it again closes the position.
    api._place_order(orders=[market(10, side="SELL")])
    assert api.positions().data == []
    assert len(api.trades().data) == 2


def test_marketable_limit_fills_and_resting_limit_waits_for_the_price(sim: Simulator, api: IbkrClient) -> None:
    ask = float(quote(api, AAPL)["86"])
    filled = api._place_order(orders=[limit(round(ask * 1.01, 2))]).data
    assert filled[0]["order_status"] == "Filled"
    resting, _ = answer_all(api, api._place_order(orders=[limit(round(ask * 0.9, 2), cOID="dip")]).data)
    assert resting[0]["order_status"] == "Submitted"
    sim.set_price(AAPL, ask * 0.85)
    orders = {o["order_ref"]: o for o in api.live_orders().data["orders"] if "order_ref" in o}
    assert orders["dip"]["status"] == "Filled"
    assert api.positions().data[0]["position"] == 20.0


def test_ioc_limit_that_cannot_fill_is_cancelled(api: IbkrClient) -> None:
    quote(api, AAPL)
    ticket = limit(200.0, tif="IOC")
    answer, _ = answer_all(api, api._place_order(orders=[ticket]).data)
    assert answer[0]["order_status"] == "Cancelled"


def test_bracket_children_wait_for_the_parent(sim: Simulator, api: IbkrClient) -> None:
    sim.set_price(AAPL, 200.0)
    quote(api, AAPL)
    api.suppress_messages(["o163"])
    parent = limit(190.0, cOID="entry")
    take_profit = limit(210.0, side="SELL", cOID="tp", parentId="entry")
    stop_loss = {"conid": AAPL, "orderType": "STP", "price": 180.0, "quantity": 10, "side": "SELL", "tif": "GTC",
                 "cOID": "sl", "parentId": "entry"}  # fmt: skip
    ack = api._place_order(orders=[parent, take_profit, stop_loss]).data
    assert [a["order_status"] for a in ack] == ["Submitted", "PreSubmitted", "PreSubmitted"]
    by_ref = {o.coid: o for o in sim.orders}
    assert by_ref["tp"].held and by_ref["sl"].held
    assert by_ref["tp"].parent_order_id == by_ref["entry"].order_id
    # The children do not fill while the parent is working, even when their prices are reached.
    sim.set_price(AAPL, 211.0)
    assert {o.coid: o.status for o in sim.orders} == {"entry": "Submitted", "tp": "PreSubmitted", "sl": "PreSubmitted"}
    sim.set_price(AAPL, 189.0)  # the entry fills; the children become active
    states = {o.coid: o.status for o in sim.orders}
    assert states == {"entry": "Filled", "tp": "Submitted", "sl": "PreSubmitted"}
    sim.set_price(AAPL, 212.0)  # take profit fills, the stop is cancelled (one cancels the other)
    states = {o.coid: o.status for o in sim.orders}
    assert states == {"entry": "Filled", "tp": "Filled", "sl": "Cancelled"}
    assert api.positions().data == []
    children = [o for o in api.live_orders().data["orders"] if o.get("order_ref") in ("tp", "sl")]
    assert {o["parentId"] for o in children} == {by_ref["entry"].order_id}


def test_bracket_with_unknown_parent_is_refused(api: IbkrClient) -> None:
    with pytest.raises(ExternalBrokerError) as caught:
        api._place_order(orders=[limit(100.0, parentId="nope")])
    assert caught.value.status_code == 400


def test_cancel(sim: Simulator, api: IbkrClient) -> None:
    quote(api, AAPL)
    ack, _ = answer_all(api, api._place_order(orders=[limit(100.0, cOID="low")]).data)
    order_id = ack[0]["order_id"]
    answer = api.cancel_order(order_id).data
    assert answer["msg"] == "Request was submitted" and answer["order_id"] == int(order_id)  # a number here
    assert answer["conid"] == AAPL and answer["account"] == ACCOUNT
    assert api.live_orders(filters="cancelled").data["orders"][0]["order_ref"] == "low"
    assert api.live_orders(filters="submitted").data["orders"] == []
    for unknown in (order_id, "12345"):  # finished, never existed: a refusal, not a success
        with pytest.raises(
            OrderRejectedError, match=rf"cancel_order\(\): IBKR refused order {unknown}: .*doesn't exist"
        ):
            api.cancel_order(unknown)


def test_cancelling_a_bracket_parent_cancels_its_children(sim: Simulator, api: IbkrClient) -> None:
    quote(api, AAPL)
    api.suppress_messages(["o163"])
    ack = api._place_order(orders=[limit(100.0, cOID="p"), limit(400.0, side="SELL", cOID="c", parentId="p")]).data
    api.cancel_order(ack[0]["order_id"])
    api.tickle()
    assert {o.coid: o.status for o in sim.orders} == {"p": "Cancelled", "c": "Cancelled"}


def test_modify_to_a_marketable_price_fills(sim: Simulator, api: IbkrClient) -> None:
    ask = float(quote(api, AAPL)["86"])
    ack, _ = answer_all(api, api._place_order(orders=[limit(round(ask * 0.98, 2))]).data)
    order_id = ack[0]["order_id"]
    modified = api._modify_order(order_id, {"price": round(ask * 1.01, 2), "quantity": 5}).data
    assert modified == [{"order_id": order_id, "order_status": "Filled", "encrypt_message": "1"}]
    assert api.positions().data[0]["position"] == 5.0
    assert "doesn't exist" in api._modify_order(order_id, {"price": 1.0}).data["error"]


def test_modify_can_raise_a_question(api: IbkrClient) -> None:
    ask = float(quote(api, AAPL)["86"])
    ack, _ = answer_all(api, api._place_order(orders=[limit(round(ask * 0.99, 2))]).data)
    question = api._modify_order(ack[0]["order_id"], {"price": round(ask * 0.5, 2)}).data
    assert question[0]["messageIds"] == ["o163"]
    assert api.reply(question[0]["id"], True).data[0]["order_status"] == "Submitted"


def test_whatif_preview(api: IbkrClient) -> None:
    preview = api._whatif_order(orders=[market(10, conid=IBM)]).data
    assert preview["amount"]["amount"].endswith("USD (10 Shares)")
    assert set(preview) >= {"amount", "equity", "initial", "maintenance", "position", "warn", "error"}
    assert preview["warn"].startswith("21/") and preview["error"] is None
    assert preview["position"] == {"current": "0", "change": "10", "after": "10"}
    quote(api, IBM)
    assert api._whatif_order(orders=[market(10, conid=IBM)]).data["warn"] is None


def test_bad_tickets_are_refused(sim: Simulator, api: IbkrClient) -> None:
    for ticket in (
        {"conid": AAPL, "orderType": "LMT", "quantity": 1, "side": "BUY", "tif": "DAY"},  # no price
        {"conid": AAPL, "orderType": "MKT", "quantity": 1, "side": "HOLD", "tif": "DAY"},
        {"conid": AAPL, "orderType": "TRAIL", "quantity": 1, "side": "BUY", "tif": "DAY"},
        {"conid": 42, "orderType": "MKT", "quantity": 1, "side": "BUY", "tif": "DAY"},
        {"conid": AAPL, "orderType": "MKT", "quantity": 0, "side": "BUY", "tif": "DAY"},
    ):
        with pytest.raises(ExternalBrokerError) as caught:
            api._place_order(orders=[ticket])
        assert caught.value.status_code == 400, ticket
    assert sim.orders == []


def test_order_status_of_an_unknown_order(api: IbkrClient) -> None:
    with pytest.raises(ExternalBrokerError) as caught:
        api.order_status("1")
    assert caught.value.status_code == 503


def test_force_clears_the_live_orders_view(api: IbkrClient) -> None:
    quote(api, AAPL)
    api._place_order(orders=[market(1)])
    assert api.live_orders(force=True).data == {"orders": [], "snapshot": False}
    assert len(api.live_orders().data["orders"]) == 1


def _spx_calls(api: IbkrClient, *strikes: int) -> list[int]:
    """Conids of the monthly SPX calls at `strikes` in December 2026 (the test clock's next monthly expiry)."""
    out = []
    for strike in strikes:
        found = api.search_secdef_info_by_conid("416904", "OPT", "DEC26", strike=str(strike), right="C").data
        out.append(next(c["conid"] for c in found if c["tradingClass"] == "SPX"))
    return out


def test_combo_order_fills_leg_by_leg(sim: Simulator, api: IbkrClient) -> None:
    long_leg, short_leg = _spx_calls(api, 5900, 6000)
    legs = {c: quote(api, c) for c in (long_leg, short_leg)}
    conidex = f"28812380;;;{long_leg}/1,{short_leg}/-1"
    debit = float(legs[long_leg]["86"]) - float(legs[short_leg]["84"])  # buy the long at its ask, sell at the bid
    ticket = {"conidex": conidex, "orderType": "LMT", "price": round(debit + 1, 2), "quantity": 2, "side": "BUY"}
    ack, asked = answer_all(api, api._place_order(orders=[{**ticket, "tif": "DAY", "cOID": "vertical-1"}]).data)
    assert asked == ["o354"] and ack[0]["order_status"] == "Filled"  # a combo has no market data of its own
    status = api.order_status(ack[0]["order_id"]).data
    assert status["conidex"] == conidex and float(status["average_price"]) == pytest.approx(debit, abs=0.01)
    held = {p["conid"]: p["position"] for p in api.positions().data}
    assert held == {long_leg: 2.0, short_leg: -2.0}
    trades = {t["conid"]: (t["side"], t["size"], float(t["price"])) for t in api.trades().data}
    assert trades == {
        long_leg: ("B", 2.0, pytest.approx(float(legs[long_leg]["86"]))),
        short_leg: ("S", 2.0, pytest.approx(float(legs[short_leg]["84"]))),
    }
    assert api.live_orders().data["orders"][0]["conidex"] == conidex
    # Selling the same combo closes both legs; a credit below the market's bid rests.
    answer_all(api, api._place_order(orders=[{**ticket, "side": "SELL", "orderType": "MKT", "tif": "DAY"}]).data)
    assert api.positions().data == []
    resting = api._place_order(orders=[{**ticket, "side": "SELL", "price": round(debit + 50, 2), "tif": "DAY"}])
    assert answer_all(api, resting.data)[0][0]["order_status"] == "Submitted"


def test_bad_combos_are_refused(api: IbkrClient) -> None:
    (call,) = _spx_calls(api, 5900)
    for conidex in (f"28812380;;;{call}/1", f"28812380;;;{call}/1,1/-1", f"28812380;;;{call}/0,{call + 2}/1"):
        with pytest.raises(ExternalBrokerError) as caught:
            api._place_order(orders=[{"conidex": conidex, "orderType": "MKT", "quantity": 1, "side": "BUY"}])
        assert caught.value.status_code == 400 and "conidex" in str(caught.value)
