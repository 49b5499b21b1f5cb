"""Order rules and IB algos of a contract: `/iserver/contract/{conid}/info-and-rules`, `/iserver/contract/rules`
and `/iserver/contract/{conid}/algos`, from `data/rules.json` and the current quote.

Rules follow the security type; US and non-US stocks differ (no fractions, cash quantities or overnight trading
abroad). Indices cannot be traded: their rules say so in `error` and list no order types. The default limit and
stop prices are the current ask for a buy and the bid for a sell; options leave them empty, as IBKR's example does.
For a modification (`modifyOrder` with `orderId`) the side comes from the order and `modTypes` lists the order
types it may become; an unknown order answers 200 `{"error": ...}`, as the order endpoints do.
"""

from __future__ import annotations

import copy
from typing import Any

from ._contracts import contract_info
from ._core import GatewayError, SimRequest, as_int, handles
from ._prices import decimals, fmt_price
from ._state import GatewayState
from ._universe import Contract


def rules_template(state: GatewayState, c: Contract) -> dict[str, Any] | None:
    """The rules of `data/rules.json` for this contract's kind; None when it cannot be traded."""
    key = "STK_NON_US" if c.sec_type == "STK" and not c.is_us else c.sec_type
    template: dict[str, Any] | None = state.fixtures["rules"]["by_sec_type"].get(key)
    return template


def contract_rules(state: GatewayState, c: Contract, is_buy: bool) -> dict[str, Any]:
    increments = {
        "increment": c.tick,
        "incrementDigits": decimals(c.tick),
        "incrementRules": [{"increment": c.tick, "lowerEdge": 0.0}],
        "incrementType": 1,
    }
    template = rules_template(state, c)
    if template is None:
        return {"canTradeAcctIds": [], "orderTypes": [], "error": state.fixtures["rules"]["not_tradable"], **increments}
    price: float | None = None
    if template["with_prices"]:
        quote = state.quote(c)
        price = quote.ask if is_buy else quote.bid
    size = template["defaultSize"]
    tif_defaults: dict[str, Any] = {"TIF": "DAY", "SIZE": f"{size:.2f}"}
    if len(state.account_ids) > 1:
        tif_defaults.update({"DEFAULT_ACCT": state.session.selected_account, "PMALGO": True})
    rules = {k: copy.deepcopy(v) for k, v in template.items() if k not in ("with_prices", "algos")}
    rules.update(increments)
    rules.update(
        {
            "canTradeAcctIds": list(state.account_ids),
            "cashCcy": c.currency,
            "cashSize": 0.0,
            "costReport": False,
            "displaySize": None,
            "error": None,
            "forceOrderPreview": False,
            "limitPrice": price,
            "stopprice": price,  # IBKR's examples spell it in lower case
            "orderDefaults": {"LMT": {"LP": fmt_price(price, c.tick) if price is not None else "empty"}},
            "orderOrigination": None,
            "preview": True,
            "priceMagnifier": None,
            "tifDefaults": tif_defaults,
        }
    )
    return dict(sorted(rules.items()))


def _is_buy(value: Any) -> bool:
    if value is None:
        return True  # IBKR's default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1")


@handles("info_and_rules_by_conid")
def _info_and_rules(state: GatewayState, req: SimRequest) -> Any:
    c = state.contract(req.params["conid"])
    info = contract_info(c)
    info["rules"] = contract_rules(state, c, _is_buy(req.q("isBuy")))
    return info


@handles("search_contract_rules")
def _rules(state: GatewayState, req: SimRequest) -> Any:
    if req.field("conid") is None:
        raise GatewayError(400, "Bad Request: conid is required")
    c = state.contract(req.field("conid"))
    exchange = req.field("exchange")
    if exchange and str(exchange).upper() not in c.valid_exchanges.split(","):
        raise GatewayError(400, f"Bad Request: {exchange} is not an exchange of conid {c.conid}")
    if req.field("modifyOrder") is not True:
        return contract_rules(state, c, _is_buy(req.field("isBuy")))
    if req.field("orderId") is None:
        raise GatewayError(400, "Bad Request: orderId is required with modifyOrder")
    order_id = as_int(req.field("orderId"), "orderId")
    order = state.book.orders.get(order_id)
    if order is None or order.conid != c.conid:
        return {"error": f"OrderID {order_id} doesn't exist"}
    if not order.working:
        return {"error": f"OrderID {order_id} is {order.status} and can no longer be modified"}
    rules = contract_rules(state, c, order.side == "BUY")
    rules["modTypes"] = list(rules.get("orderTypes", []))
    return rules


@handles("algo_params_by_conid")
def _algos(state: GatewayState, req: SimRequest) -> Any:
    c = state.contract(req.params["conid"])
    template = rules_template(state, c)
    offered = set(template["algos"]) if template else set()
    asked = req.q("algos")
    wanted = {a.strip() for a in asked.split(";") if a.strip()} if asked else None
    describe, with_params = req.q("addDescription") == "1", req.q("addParams") == "1"
    algos = []
    for algo in state.fixtures["rules"]["algos"]:
        if algo["id"] not in offered or (wanted is not None and algo["id"] not in wanted):
            continue
        entry: dict[str, Any] = {"id": algo["id"], "name": algo["name"]}
        if describe:
            entry["description"] = algo["description"]
        if with_params:
            entry["parameters"] = copy.deepcopy(algo["parameters"])
        algos.append(entry)
    return {"algos": algos}
