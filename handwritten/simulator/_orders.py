"""Order endpoints: placing (with the question / reply flow), modifying, cancelling, previewing, suppressing
questions, and reading live orders, order status and trades.

Placing: every ticket is checked (conid, side, orderType, quantity, tif, prices); the question rules then decide
which confirmations to ask. Questions come one at a time, each with a fresh reply id; `POST /iserver/reply/{id}`
with `{"confirmed": true}` moves to the next question or, after the last one, creates the orders and answers
`[{"order_id", "order_status", "encrypt_message"}]`; `{"confirmed": false}` discards the order. Placing another
order while a question is open invalidates it (IBKR: "the reply must be confirmed before sending any further
orders"). `POST /iserver/questions/suppress` replaces the list of suppressed ids for the session (IBKR: resend
the complete list to add one); suppressed questions are skipped.

Error answers follow IBKR's examples: a malformed ticket answers 400, while business refusals (unknown reply
id, unknown order, declined question) answer 200 with `{"error": ...}`, as the gateway does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ._book import FINAL, SimOrder
from ._core import GatewayError, SimRequest, as_float, as_int, csv, handles
from ._prices import fmt_price
from ._questions import OrderCheck
from ._state import GatewayState, PendingReply
from ._universe import Contract

ORDER_TYPES = {
    "MKT": "MKT",
    "MARKET": "MKT",
    "LMT": "LMT",
    "LIMIT": "LMT",
    "STP": "STP",
    "STOP": "STP",
    "STOP_LIMIT": "STOP_LIMIT",
    "STPLMT": "STOP_LIMIT",
    "MIDPRICE": "MIDPRICE",
    "TRAIL": "TRAIL",
}
TIFS = ("DAY", "GTC", "IOC", "OPG", "PAX", "OVT", "OND", "GTD")
_TYPE_TEXT = {
    "MKT": ("Market", "MARKET"),
    "LMT": ("Limit", "LIMIT"),
    "STP": ("Stop", "STOP"),
    "STOP_LIMIT": ("Stop Limit", "STOP_LIMIT"),
    "MIDPRICE": ("MidPrice", "MIDPRICE"),
    "TRAIL": ("Trail", "TRAIL"),  # IBKR's display text of a trailing stop is not in any recording: our guess
}
_TIF_TEXT = {"DAY": "Day", "OVT": "Overnight", "OND": "Overnight+Day"}
_STATUS_FILTERS = {
    "inactive": "Inactive",
    "pending_submit": "PendingSubmit",
    "pre_submitted": "PreSubmitted",
    "submitted": "Submitted",
    "filled": "Filled",
    "pending_cancel": "PendingCancel",
    "cancelled": "Cancelled",
    "warn_state": "WarnState",
}
_CCP_CODES = {"PreSubmitted": "0", "Submitted": "1", "Filled": "2", "Cancelled": "3", "PendingCancel": "4"}


@dataclass(frozen=True)
class Ticket:
    raw: dict[str, Any]
    contract: Contract
    side: str
    order_type: str
    quantity: float
    tif: str
    price: float | None  # limit price (cap for MIDPRICE)
    stop_price: float | None
    coid: str | None
    parent_coid: str | None
    outside_rth: bool
    single_group: bool
    trail_amount: float | None = None  # TRAIL: the distance the stop keeps from the last price
    trail_type: str | None = None  # "amt" (price units) or "%" (of the last price)


def _bad(message: str) -> GatewayError:
    return GatewayError(400, f"Bad Request: {message}")


def parse_ticket(state: GatewayState, raw: Any, account: str) -> Ticket:
    if not isinstance(raw, dict):
        raise _bad("each order must be a JSON object")
    acct = raw.get("acctId")
    if acct not in (None, "", account):
        raise _bad(f"acctId {acct} does not match the account {account} of the request")
    conid: Any = raw.get("conid")
    conidex = raw.get("conidex")
    if conid is None and isinstance(conidex, str) and ";;;" in conidex:
        try:
            contract = state.universe.combo(conidex)
        except ValueError as exc:
            raise _bad(f"conidex {conidex!r}: {exc}") from None
    else:
        if conid is None and isinstance(conidex, str):
            conid = conidex.split("@")[0]
        if conid is None:
            raise _bad("conid (or conidex) is required")
        contract = state.contract(conid)
    kind = ORDER_TYPES.get(str(raw.get("orderType", "")).upper())
    if kind is None:
        supported = "MKT, LMT, STP, STOP_LIMIT, MIDPRICE, TRAIL"
        raise _bad(f"orderType {raw.get('orderType')!r} is not supported by the simulator ({supported})")
    side = str(raw.get("side", "")).upper()
    if side not in ("BUY", "SELL"):
        raise _bad(f"side must be BUY or SELL, got {raw.get('side')!r}")
    if raw.get("quantity") is None:
        raise _bad("quantity is required (cash quantity orders are not modelled)")
    quantity = as_float(raw["quantity"], "quantity")
    if quantity <= 0:
        raise _bad("quantity must be positive")
    tif = str(raw.get("tif", "DAY")).upper()
    if tif not in TIFS:
        raise _bad(f"tif {raw.get('tif')!r} is not valid")
    price = as_float(raw["price"], "price") if raw.get("price") is not None else None
    aux = as_float(raw["auxPrice"], "auxPrice") if raw.get("auxPrice") is not None else None
    stop: float | None = None
    if kind == "LMT" and price is None:
        raise _bad("price is required for a limit order")
    if kind == "STP":
        stop, price = (price if price is not None else aux), None
        if stop is None:
            raise _bad("price (the stop price) is required for a stop order")
    if kind == "STOP_LIMIT":
        if price is None or aux is None:
            raise _bad("price (limit) and auxPrice (stop) are required for a stop limit order")
        stop = aux
    trail_amount: float | None = None
    trail_type: str | None = None
    if kind == "TRAIL":
        if raw.get("trailingAmt") is None:
            raise _bad("trailingAmt is required for a trailing stop order")
        trail_amount = as_float(raw["trailingAmt"], "trailingAmt")
        trail_type = str(raw.get("trailingType") or "amt")
        if trail_amount <= 0 or trail_type not in ("amt", "%"):
            raise _bad("trailingAmt must be positive and trailingType 'amt' or '%'")
        price = stop = None  # the stop follows the market from the first price the simulator sees
    coid = raw.get("cOID")
    parent = raw.get("parentId")
    return Ticket(
        raw=dict(raw),
        contract=contract,
        side=side,
        order_type=kind,
        quantity=quantity,
        tif=tif,
        price=price,
        stop_price=stop,
        coid=str(coid) if coid not in (None, "") else None,
        parent_coid=str(parent) if parent not in (None, "") else None,
        outside_rth=raw.get("outsideRTH") is True,
        single_group=raw.get("isSingleGroup") is True,
        trail_amount=trail_amount,
        trail_type=trail_type,
    )


def _questions(state: GatewayState, tickets: list[Ticket]) -> list[tuple[str, str]]:
    asked: list[tuple[str, str]] = []
    seen: set[str] = set()
    for t in tickets:
        check = OrderCheck(
            ticket=t.raw,
            contract=t.contract,
            side=t.side,
            order_type=t.order_type,
            quantity=t.quantity,
            price=t.price if t.price is not None else t.stop_price,
            last=state.quote(t.contract).last,
            has_market_data=t.contract.conid in state.session.md_streams,
        )
        for rule in state.question_rules:
            if rule.message_id in seen or rule.message_id in state.session.suppressed:
                continue
            if rule.applies(check):
                seen.add(rule.message_id)
                asked.append((rule.message_id, rule.message(check)))
    return asked


def _ask(state: GatewayState, pending: PendingReply) -> list[dict[str, Any]]:
    message_id, text = pending.questions.pop(0)
    reply_id = state.new_id()
    state.session.pending[reply_id] = pending
    return [
        {
            "id": reply_id,
            "message": [text],
            "isSuppressed": False,
            "messageIds": [message_id],
            "messageOptions": list(state.fixtures["questions"]["message_options"]),
        }
    ]


def _ack(order: SimOrder) -> dict[str, Any]:
    return {"order_id": str(order.order_id), "order_status": order.status, "encrypt_message": "1"}


def _find_parent(state: GatewayState, coid: str, created: dict[str, SimOrder]) -> SimOrder | None:
    if coid in created:
        return created[coid]
    for order in state.book.orders.values():
        if order.coid == coid and order.status not in FINAL:
            return order
    return None


def _check_references(state: GatewayState, tickets: list[Ticket]) -> None:
    coids = [t.coid for t in tickets if t.coid]
    if len(coids) != len(set(coids)):
        raise _bad("cOID values must be unique within a request")
    live = {o.coid for o in state.book.orders.values() if o.coid and o.status not in FINAL}
    for c in coids:
        if c in live:
            raise _bad(f"cOID {c} is already used by a working order")
    for t in tickets:
        if t.parent_coid and t.parent_coid not in coids and t.parent_coid not in live:
            raise _bad(f"parentId {t.parent_coid} names no order of this request and no working order")


def _place(state: GatewayState, account: str, tickets: list[Ticket]) -> list[dict[str, Any]]:
    now = state.now()
    book = state.book
    created: dict[str, SimOrder] = {}
    orders: list[SimOrder] = []
    group: str | None = None
    for t in tickets:
        order = SimOrder(
            order_id=book.next_order_id(),
            account=account,
            conid=t.contract.conid,
            side=t.side,
            order_type=t.order_type,
            quantity=t.quantity,
            tif=t.tif,
            price=t.price,
            stop_price=t.stop_price,
            trail_amount=t.trail_amount,
            trail_type=t.trail_type,
            coid=t.coid,
            parent_coid=t.parent_coid,
            outside_rth=t.outside_rth,
            created=now,
            ticket=dict(t.raw),
        )
        if t.parent_coid:
            parent = _find_parent(state, t.parent_coid, created)
            if parent is not None:
                order.parent_order_id = parent.order_id
                order.held = parent.status != "Filled"
                order.oca_group = f"bracket:{parent.order_id}"
        elif t.single_group:
            group = group or f"oca:{order.order_id}"
            order.oca_group = group
        if t.coid:
            created[t.coid] = order
        book.add(order)
        orders.append(order)
    book.match(now)
    return [_ack(o) for o in orders]


def _apply_modify(state: GatewayState, order: SimOrder, t: Ticket) -> list[dict[str, Any]]:
    order.order_type = t.order_type
    order.quantity = t.quantity
    order.price = t.price
    order.stop_price = t.stop_price
    order.trail_amount, order.trail_type = t.trail_amount, t.trail_type
    if t.order_type == "TRAIL":
        order.triggered = False  # the new distance trails from the next price seen
    order.tif = t.tif
    order.outside_rth = t.outside_rth
    order.ticket = dict(t.raw)
    state.book.match(state.now())
    return [_ack(order)]


@handles("place_order")
def _place_order(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    raw_orders = req.field("orders")
    if not isinstance(raw_orders, list) or not raw_orders:
        raise _bad('the body must be {"orders": [...]} with at least one order')
    state.session.pending.clear()  # an unanswered question is invalidated by the next order
    tickets = [parse_ticket(state, raw, account) for raw in raw_orders]
    _check_references(state, tickets)
    questions = _questions(state, tickets)
    if questions:
        return _ask(state, PendingReply("place", account, tickets, questions))
    return _place(state, account, tickets)


@handles("reply")
def _reply(state: GatewayState, req: SimRequest) -> Any:
    reply_id = req.params["replyId"]
    confirmed = req.field("confirmed")
    if not isinstance(confirmed, bool):
        raise _bad("confirmed must be true or false")
    pending = state.session.pending.pop(reply_id, None)
    if pending is None:
        return {"error": f"reply id not found: '{reply_id}'"}
    if not confirmed:
        return {"error": state.fixtures["questions"]["order_not_confirmed"]}
    if pending.questions:
        return _ask(state, pending)
    if pending.kind == "modify":
        order = state.book.orders.get(pending.order_id or 0)
        if order is None or not order.working:
            return {"error": f"OrderID {pending.order_id} doesn't exist"}
        return _apply_modify(state, order, pending.tickets[0])
    return _place(state, pending.account, pending.tickets)


def _order_of(state: GatewayState, req: SimRequest, account: str) -> SimOrder | None:
    try:
        order_id = int(req.params["orderId"])
    except ValueError:
        return None
    order = state.book.orders.get(order_id)
    return order if order is not None and order.account == account else None


@handles("modify_order")
def _modify_order(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    order = _order_of(state, req, account)
    if order is None or not order.working:
        return {"error": f"OrderID {req.params['orderId']} doesn't exist"}
    if not isinstance(req.body, dict):
        raise _bad("the body must be one order object")
    merged = {**order.ticket, **req.body}
    ticket = parse_ticket(state, merged, account)
    if ticket.contract.conid != order.conid or ticket.side != order.side:
        raise _bad("a modification cannot change the contract or the side")
    state.session.pending.clear()
    questions = _questions(state, [ticket])
    if questions:
        return _ask(state, PendingReply("modify", account, [ticket], questions, order_id=order.order_id))
    return _apply_modify(state, order, ticket)


@handles("cancel_order")
def _cancel_order(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    order = _order_of(state, req, account)
    if order is None or order.status in FINAL or order.status == "PendingCancel":
        return {"error": f"OrderID {req.params['orderId']} doesn't exist"}
    status = order.status
    state.book.cancel(order)
    return {
        "msg": "Request was submitted",
        "order_id": order.order_id,  # a number here, unlike the order placement answer
        "conid": order.conid,
        "account": account,
        "order_status": status,
        "encrypt_message": "1",
    }


# -- preview --------------------------------------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"{value:,.0f}"


@handles("whatif_order")
def _whatif(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    raw_orders = req.field("orders")
    if not isinstance(raw_orders, list) or not raw_orders:
        raise _bad('the body must be {"orders": [...]} with at least one order')
    t = parse_ticket(state, raw_orders[0], account)
    c = t.contract
    now = state.now()
    q = state.quote(c)
    fill = t.price if t.price is not None else (q.ask if t.side == "BUY" else q.bid)
    value = t.quantity * fill * c.multiplier
    commission = state.book.commission(c, t.quantity, fill)
    totals = state.book.totals(account, now)
    margin = state.fixtures["accounts"]["margin"]
    held = state.book.accounts[account].positions.get(c.conid)
    current = held.quantity if held else 0.0
    signed = t.quantity if t.side == "BUY" else -t.quantity
    gross_change = (abs(current + signed) - abs(current)) * fill * c.multiplier
    init_change = gross_change * float(margin["initial"])
    maint_change = gross_change * float(margin["maintenance"])
    unit = "Shares" if c.sec_type == "STK" else "Contracts"
    warn = None
    if c.conid not in state.session.md_streams:
        warn = state.fixtures["questions"]["whatif_no_market_data_warning"]
    return {
        "amount": {
            "amount": f"{value:,.2f} {c.currency} ({t.quantity:g} {unit})",
            "commission": f"{commission:g} {c.currency}",
            "total": f"{value + commission:,.2f} {c.currency}",
        },
        "equity": {
            "current": _money(totals["net_liq"]),
            "change": _money(-commission),
            "after": _money(totals["net_liq"] - commission),
        },
        "initial": {
            "current": _money(totals["initial"]),
            "change": _money(init_change),
            "after": _money(totals["initial"] + init_change),
        },
        "maintenance": {
            "current": _money(totals["maintenance"]),
            "change": _money(maint_change),
            "after": _money(totals["maintenance"] + maint_change),
        },
        "position": {"current": f"{current:g}", "change": f"{signed:g}", "after": f"{current + signed:g}"},
        "warn": warn,
        "error": None,
    }


# -- questions ------------------------------------------------------------------------------------------------------


@handles("suppress_messages")
def _suppress(state: GatewayState, req: SimRequest) -> Any:
    ids = req.field("messageIds")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise _bad("messageIds must be a list of message ids")
    state.session.suppressed = set(ids)
    return {"status": "submitted"}


@handles("reset_suppressed_messages")
def _reset_suppressed(state: GatewayState, req: SimRequest) -> Any:
    state.session.suppressed.clear()
    return {"status": "submitted"}


# -- reading orders and trades --------------------------------------------------------------------------------------


def _describe(order: SimOrder, contract: Contract, *, with_contract: bool = False) -> str:
    filled = order.status == "Filled"
    buy = order.side == "BUY"
    verb = ("Bought" if buy else "Sold") if filled else ("Buy" if buy else "Sell")
    text = f"{verb} {order.quantity:g}"
    if with_contract:
        text += f" {contract.description}"
    text += f" {_TYPE_TEXT[order.order_type][0]}"
    if order.price is not None:
        text += f" {fmt_price(order.price, contract.tick)}"
    if order.stop_price is not None:
        text += f" {'stop ' if order.order_type == 'STOP_LIMIT' else ''}{fmt_price(order.stop_price, contract.tick)}"
    return f"{text}, {_TIF_TEXT.get(order.tif, order.tif)}"


def _stamp(ts: float | None, fmt: str = "%y%m%d%H%M%S") -> str | None:
    return time.strftime(fmt, time.gmtime(ts)) if ts is not None else None


def live_order_entry(order: SimOrder, contract: Contract) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "acct": order.account,
        "account": order.account,
        "conid": order.conid,
        "conidex": str(contract.extra.get("conidex", order.conid)),
        "orderId": order.order_id,
        "cashCcy": contract.currency,
        "sizeAndFills": f"{order.quantity:g}" if order.status == "Filled" else f"{order.filled:g}/{order.quantity:g}",
        "orderDesc": _describe(order, contract),
        "description1": contract.description,
        "ticker": contract.symbol,
        "secType": contract.sec_type,
        "listingExchange": contract.listing_label,
        "exchange": "SMART" if contract.sec_type in ("STK", "OPT") else contract.exchange,
        "remainingQuantity": order.remaining,
        "filledQuantity": order.filled,
        "totalSize": order.quantity,
        "companyName": contract.name,
        "status": order.status,
        "order_ccp_status": order.status,
        "origOrderType": _TYPE_TEXT[order.order_type][1],
        "supportsTaxOpt": "1",
        "orderType": _TYPE_TEXT[order.order_type][0],
        "bgColor": "#FFFFFF",
        "fgColor": "#000000",
        "timeInForce": "CLOSE" if order.tif == "DAY" else order.tif,
        "side": order.side,
        "outsideRTH": order.outside_rth,
        "isEventTrading": "0",
        "lastExecutionTime": _stamp(order.last_execution or order.created),
        "lastExecutionTime_r": int((order.last_execution or order.created) * 1000),
    }
    # The gateway sends price "" for orders without a limit price, and links bracket children by ocaGroupId.
    entry["price"] = fmt_price(order.price, contract.tick) if order.price is not None else ""
    if order.stop_price is not None:
        entry["auxPrice"] = fmt_price(order.stop_price, contract.tick)
    if order.avg_fill_price is not None:
        entry["avgPrice"] = fmt_price(order.avg_fill_price, contract.tick)
    if order.coid:
        entry["order_ref"] = order.coid
    if order.parent_order_id is not None:
        entry["parentId"] = order.parent_order_id
        entry["ocaGroupId"] = str(order.parent_order_id)
    return entry


@handles("live_orders")
def _live_orders(state: GatewayState, req: SimRequest) -> Any:
    if req.q("force") == "true":
        return {"orders": [], "snapshot": False}
    account = state.account(req.q("accountId"))
    orders = [o for o in state.book.orders.values() if o.account == account]
    filters = csv(req.q("filters") or "")
    wanted = {_STATUS_FILTERS[f] for f in filters if f in _STATUS_FILTERS}
    if wanted:
        orders = [o for o in orders if o.status in wanted]
    if "sort_by_time" in filters:
        orders.sort(key=lambda o: (o.last_execution or o.created, o.order_id))
    else:
        orders.sort(key=lambda o: o.order_id, reverse=True)
    entries = []
    for o in orders:
        contract = state.universe.get(o.conid)
        if contract is not None:
            entries.append(live_order_entry(o, contract))
    return {"orders": entries, "snapshot": True}


@handles("order_status")
def _order_status(state: GatewayState, req: SimRequest) -> Any:
    order_id = as_int(req.params["orderId"], "orderId")
    order = state.book.orders.get(order_id)
    contract = state.universe.get(order.conid) if order else None
    if order is None or contract is None:
        raise GatewayError(503, f"order {order_id} is not in this session's order cache")
    final = order.status in FINAL
    body: dict[str, Any] = {
        "account": order.account,
        "order_clearing_account": order.account,
        "alert_active": 1,
        "allowed_duplicate_opposite": True,
        "available_chart_periods": "#R|1",
        "average_price": fmt_price(order.avg_fill_price, contract.tick) if order.avg_fill_price is not None else None,
        "bg_color": "#000000",
        "fg_color": "#FFFFFF",
        "cannot_cancel_order": final,
        "child_order_type": "0",
        "company_name": contract.name,
        "conid": order.conid,
        "conidex": str(contract.extra.get("conidex", order.conid)),
        "contract_description_1": contract.description,
        "cum_fill": f"{order.filled:.1f}",
        "currency": contract.currency,
        "deactivate_order": False,
        "editable_fields": "",
        "listing_exchange": contract.listing_label,
        "option_acct": "c",
        "order_ccp_status": _CCP_CODES.get(order.status, "0"),
        "order_description": _describe(order, contract),
        "order_description_with_contract": _describe(order, contract, with_contract=True),
        "order_id": order.order_id,
        "order_not_editable": final,
        "order_status": order.status,
        "order_status_description": f"Order {order.status}",
        "order_time": _stamp(order.created),
        "order_type": _TYPE_TEXT[order.order_type][1],
        "request_id": str(order.order_id % 1000),
        "sec_type": contract.sec_type,
        "server_id": "0",
        "side": "B" if order.side == "BUY" else "S",
        "size": f"{order.remaining:.1f}",
        "size_and_fills": f"{order.filled:g}",
        "sub_type": None,
        "symbol": contract.symbol,
        "tif": order.tif,
        "total_size": f"{order.quantity:.1f}",
        "total_cash_size": "0.0",
        "remaining_quantity": f"{order.remaining:.1f}",
        "filled_quantity": f"{order.filled:.1f}",
        "price": fmt_price(order.price, contract.tick) if order.price is not None else "0.0",
        "outside_rth": order.outside_rth,
        "all_or_none": False,
        "use_price_mgmt_algo": False,
        "is_event_trading": "0",
        "clearing_id": "IB",
        "clearing_name": "IB",
        "order_desc": _describe(order, contract),
        "exit_strategy_display_price": fmt_price(order.price, contract.tick) if order.price is not None else "0.0",
        "exit_strategy_chart_description": _describe(order, contract) if not final else "",
        "exit_strategy_tool_availability": "0" if final else "1",
    }
    if order.avg_fill_price is not None:
        filled = fmt_price(order.avg_fill_price, contract.tick)
        body.update(avg_fill_price=filled, fill_price=filled, last_fill_price=filled)
    if order.price is not None:
        body["limit_price"] = fmt_price(order.price, contract.tick)
    if order.stop_price is not None:
        body["stop_price"] = fmt_price(order.stop_price, contract.tick)
    if order.coid:
        body["order_ref"] = order.coid
    return body


@handles("trades")
def _trades(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.q("accountId"))
    days_text = req.q("days")
    days = min(as_int(days_text, "days"), 7) if days_text is not None else 0
    now = state.now()
    since = (now // 86400 - days) * 86400
    return [dict(t) for t in state.book.trades if t["account"] == account and t["trade_time_r"] >= since * 1000]
