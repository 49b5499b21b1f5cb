"""The last endpoints the simulator models: portfolio allocation, dynamic accounts, bond filters, the regulatory
snapshot, the server-prompt acknowledgement and the OAuth token requests of a gateway session.

- Allocation (`/portfolio/{accountId}/allocation`, `POST /portfolio/allocation` for several accounts together):
  the market value of the positions by asset class, sector and group, long and short apart (short values are
  negative), plus the cash in the base currency as asset class CASH; contracts without a sector or group count as
  "Others", as the gateway reports ETFs.
- Dynamic accounts: the search matches the pattern anywhere in the user's account ids (case-insensitive); setting
  one selects it, like `POST /iserver/account`.
- Bond filters come from `data/reference.json` (`bond_issuers`, made-up issuers); an unknown issuer answers 400.
- The regulatory snapshot quotes at once (no pre-flight, unlike `/iserver/marketdata/snapshot`) and is billed:
  every request is counted in `GatewayState.regulatory_snapshots`, so a test can assert it was sent only once.
- The server-prompt acknowledgement answers the plain text `Success` for an order of the session (the simulator
  sends no prompts of its own; the answer is the gateway's to a valid acknowledgement).
- OAuth token requests reach these handlers only when the simulator is not in OAuth mode (with `oauth=...` the
  server answers the live session token request itself). A Client Portal Gateway session is not an OAuth
  consumer, so they answer 401 as IBKR's document says for a request without a valid access token.
"""

from __future__ import annotations

import calendar
from typing import Any

from ._core import GatewayError, SimRequest, SimResponse, as_int, handles
from ._prices import fmt_price
from ._state import GatewayState

OTHERS = "Others"


def _allocation(state: GatewayState, accounts: list[str]) -> dict[str, Any]:
    now = state.now()
    book = state.book
    out: dict[str, Any] = {view: {"long": {}, "short": {}} for view in ("assetClass", "sector", "group")}

    def add(view: str, key: str, value: float) -> None:
        side = out[view]["long" if value >= 0 else "short"]
        side[key] = round(side.get(key, 0.0) + value, 2)

    for account in accounts:
        cash = book.totals(account, now)["cash"]
        if cash:
            add("assetClass", "CASH", cash)
        for pos, c in book.open_positions(account):
            value = pos.quantity * book.mark(c, now) * c.multiplier * book.fx(c.currency, now)
            add("assetClass", c.sec_type, value)
            add("sector", c.sector or OTHERS, value)
            add("group", c.group or OTHERS, value)
    return out


@handles("portfolio_account_allocation")
def _account_allocation(state: GatewayState, req: SimRequest) -> Any:
    return _allocation(state, [state.account(req.params.get("accountId"))])


@handles("portfolio_account_allocations")
def _accounts_allocation(state: GatewayState, req: SimRequest) -> Any:
    wanted = req.field("acctIds")
    if not isinstance(wanted, list) or not wanted or not all(isinstance(a, str) for a in wanted):
        raise GatewayError(400, "Bad Request: acctIds must be a list of account ids")
    return _allocation(state, [state.account(a) for a in wanted])


@handles("search_dynamic_account")
def _search_dynamic(state: GatewayState, req: SimRequest) -> Any:
    pattern = req.params["searchPattern"]
    matched = [a for a in state.account_ids if pattern.upper() in a.upper()]
    return {
        "matchedAccounts": [{"accountId": a, "alias": a, "allocationId": a} for a in matched],
        "pattern": pattern,
    }


@handles("set_dynamic_account")
def _set_dynamic(state: GatewayState, req: SimRequest) -> Any:
    wanted = req.field("acctId") or req.q("acctId")
    if not isinstance(wanted, str) or not wanted:
        raise GatewayError(400, "Bad Request: acctId is required")
    if wanted not in state.book.accounts:
        raise GatewayError(400, f"Bad Request: account {wanted} is not available")
    state.session.selected_account = wanted
    return {"set": True, "acctId": wanted}


def _month_text(yyyymm: str) -> str:
    return f"{calendar.month_abbr[int(yyyymm[4:6])]} {yyyymm[:4]}"


def _day_text(yyyymmdd: str) -> str:
    return f"{calendar.month_abbr[int(yyyymmdd[4:6])]} {int(yyyymmdd[6:8]):02d} {yyyymmdd[:4]}"


@handles("search_bond_filter_information")
def _bond_filters(state: GatewayState, req: SimRequest) -> Any:
    if req.require_q("symbol").upper() != "BOND":
        raise GatewayError(400, "Bad Request: symbol must be BOND")
    issuer = req.require_q("issuerId")
    found = state.fixtures["reference"]["bond_issuers"].get(issuer)
    if not isinstance(found, dict):
        raise GatewayError(400, f"Bad Request: unknown bond issuer {issuer}")
    return {
        "bondFilters": [
            {
                "displayText": "Maturity Date",
                "columnId": 27,
                "options": [{"text": _month_text(v), "value": v} for v in found["maturities"]],
            },
            {
                "displayText": "Issue Date",
                "columnId": 28,
                "options": [{"text": _day_text(v), "value": v} for v in found["issue_dates"]],
            },
            {"displayText": "Coupon", "columnId": 25, "options": [{"value": v} for v in found["coupons"]]},
            {"displayText": "Currency", "columnId": 5, "options": [{"value": v} for v in found["currencies"]]},
        ]
    }


@handles("regulatory_snapshot")
def _regulatory_snapshot(state: GatewayState, req: SimRequest) -> Any:
    conid = as_int(req.require_q("conid"), "conid")
    contract = state.universe.get(conid)
    if contract is None:
        raise GatewayError(400, f"Bad Request: unknown conid {conid}")
    now = state.now()
    q = state.prices.quote(contract, now)
    state.regulatory_snapshots.append(conid)
    return {
        "conid": conid,
        "conidEx": str(conid),
        "sizeMinTick": 0.0001 if contract.sec_type == "STK" else 1.0,
        "BboExchange": "9c0000",
        "HasDelayed": False,
        "84": fmt_price(q.bid, contract.tick),
        "86": fmt_price(q.ask, contract.tick),
        "88": q.bid_size,
        "85": q.ask_size,
        "BestBidExch": 1,
        "BestAskExch": 1,
        "31": fmt_price(q.last, contract.tick),
        "7059": q.last_size,
        "LastExch": 1,
        "7057": "Q",
        "7068": "Q",
        "7058": "Q",
        "6509": "RB",
        "_updated": int(now * 1000),
    }


@handles("acknowledge_server_prompt")
def _acknowledge_prompt(state: GatewayState, req: SimRequest) -> Any:
    order_id = as_int(req.field("orderId"), "orderId")
    req_id, text = req.field("reqId"), req.field("text")
    if not isinstance(req_id, str) or not req_id:
        raise GatewayError(400, "Bad Request: reqId is required")
    if not isinstance(text, str) or not text:
        raise GatewayError(400, "Bad Request: text is required (one of the prompt's options)")
    if order_id not in state.book.orders:
        raise GatewayError(400, f"Bad Request: no prompt for order {order_id}")
    return SimResponse(200, raw=b"Success", content_type="text/plain;charset=utf-8")


_NOT_OAUTH = (
    "Invalid or expired access token: this is a Client Portal Gateway session, not an OAuth consumer "
    "(start the simulator with oauth=OAuthSettings(...) to use OAuth 1.0a)"
)


@handles("oauth_request_token")
def _oauth_request_token(state: GatewayState, req: SimRequest) -> Any:
    raise GatewayError(401, _NOT_OAUTH)


@handles("oauth_access_token")
def _oauth_access_token(state: GatewayState, req: SimRequest) -> Any:
    raise GatewayError(401, _NOT_OAUTH)


@handles("oauth_live_session_token")
def _oauth_live_session_token(state: GatewayState, req: SimRequest) -> Any:
    raise GatewayError(401, _NOT_OAUTH)
