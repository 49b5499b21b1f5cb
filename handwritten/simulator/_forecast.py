"""Event (forecast) contracts: the category tree, the contracts of one market, and the details, rules and weekly
trading schedule of one contract, from `data/forecast.json` (IBKR's examples plus a few made-up contracts).

Each contract pair is one question about a market (e.g. "US CO2 emissions above 5,050 in 2035?"): a yes and a no
contract with their own conids; the details and rules of either side name both. A contract for year Y expires on
April 30 of Y+1 and stops trading at 16:00 exchange time (US/Central, taken as UTC-5 all year) that day; the
payout follows 21 hours later. The market listing leaves out contracts whose last trading time has passed;
details, rules and schedules still answer for them. Unknown conids, unknown markets and an exchange other than
the market's answer 400, as does a missing conid.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ._core import GatewayError, SimRequest, as_int, handles
from ._state import GatewayState


@dataclass(frozen=True)
class EventContract:
    conid: int
    side: str  # "Y" | "N"
    other: int  # the conid of the opposite side
    market: dict[str, Any]
    year: int
    strike: float


def _fixture(state: GatewayState) -> dict[str, Any]:
    data: dict[str, Any] = state.fixtures["forecast"]
    return data


def _markets(state: GatewayState) -> dict[int, dict[str, Any]]:
    return {int(m["conid"]): m for m in _fixture(state)["markets"]}


def _contracts(state: GatewayState) -> dict[int, EventContract]:
    found: dict[int, EventContract] = {}
    for market in _fixture(state)["markets"]:
        for raw in market["contracts"]:
            yes, no = int(raw["yes"]), int(raw["no"])
            for conid, side, other in ((yes, "Y", no), (no, "N", yes)):
                found[conid] = EventContract(conid, side, other, market, int(raw["year"]), float(raw["strike"]))
    return found


def _contract(state: GatewayState, req: SimRequest) -> EventContract:
    conid = as_int(req.require_q("conid"), "conid")
    contract = _contracts(state).get(conid)
    if contract is None:
        raise GatewayError(400, f"Bad Request: {conid} is not an event contract")
    return contract


def _expiration(c: EventContract) -> dt.date:
    return dt.date(c.year + 1, 4, 30)


def _last_trade(state: GatewayState, c: EventContract) -> int:
    data = _fixture(state)
    hour, minute = (int(x) for x in data["last_trade_local"].split(":"))
    local = dt.datetime.combine(_expiration(c), dt.time(hour, minute), tzinfo=dt.timezone.utc)
    return int((local - dt.timedelta(hours=data["utc_offset_hours"])).timestamp())


def _strike_label(c: EventContract) -> str:
    return f"Above {c.strike:,.0f}" if c.strike.is_integer() else f"Above {c.strike:,}"


def _measured(c: EventContract) -> str:
    return f"Dec31'{c.year % 100:02d}"


@handles("forecast_categories")
def _categories(state: GatewayState, req: SimRequest) -> Any:
    tree: dict[str, dict[str, Any]] = {k: dict(v) for k, v in _fixture(state)["categories"].items()}
    for market in _fixture(state)["markets"]:
        tree[market["leaf"]].setdefault("markets", []).append(
            {k: market[k] for k in ("conid", "exchange", "name", "product_conid", "symbol")}
        )
    return {"categories": tree}


@handles("forecast_contract_markets")
def _market(state: GatewayState, req: SimRequest) -> Any:
    underlying = as_int(req.require_q("underlyingConid"), "underlyingConid")
    market = _markets(state).get(underlying)
    if market is None:
        raise GatewayError(400, f"Bad Request: {underlying} is not an event market")
    exchange = req.q("exchange", market["exchange"])
    if exchange != market["exchange"]:
        raise GatewayError(400, f"Bad Request: market {market['symbol']} is not listed on {exchange}")
    now = state.now()
    listed = []
    for c in sorted(_contracts(state).values(), key=lambda c: (c.year, c.strike, c.side == "N")):
        if c.market is not market or _last_trade(state, c) <= now:
            continue
        listed.append(
            {
                "conid": c.conid,
                "expiration": _expiration(c).strftime("%Y%m%d"),
                "expiry_label": str(c.year),
                "side": c.side,
                "strike": c.strike,
                "strike_label": _strike_label(c),
                "time_specifier": f"{c.year}.12.31",
                "underlying_conid": underlying,
            }
        )
    return {
        "contracts": listed,
        "exchange": exchange,
        "exclude_historical_data": False,
        "logo_category": market["logo_category"],
        "market_name": market["name"],
        "payout": market["payout"],
        "symbol": market["symbol"],
    }


@handles("forecast_contract_details")
def _details(state: GatewayState, req: SimRequest) -> Any:
    c = _contract(state, req)
    market = c.market
    yes, no = (c.conid, c.other) if c.side == "Y" else (c.other, c.conid)
    strike = f"{c.strike:,.0f}" if c.strike.is_integer() else f"{c.strike:,}"
    return {
        "category": market["category"],
        "conid_no": no,
        "conid_yes": yes,
        "exchange": market["exchange"],
        "expiration": _expiration(c).strftime("%Y%m%d"),
        "logo_category": market["logo_category"],
        "market_name": market["name"],
        "measured_period": _measured(c),
        "payout": market["payout"],
        "question": market["question"].format(strike=strike, unit=market["unit"], year=c.year),
        "side": c.side,
        "strike": c.strike,
        "strike_label": _strike_label(c),
        "symbol": market["symbol"],
        "underlying_conid": market["conid"],
        "product_conid": market["product_conid"],
        "is_restricted": False,
    }


@handles("forecast_contract_rules")
def _rules(state: GatewayState, req: SimRequest) -> Any:
    c = _contract(state, req)
    data, market = _fixture(state), c.market
    last = _last_trade(state, c)
    return {
        "asset_class": data["asset_class"],
        "data_and_resolution_link": market["data_and_resolution_link"],
        "description": market["description"],
        "exchange_timezone": data["timezone"],
        "last_trade_time": last,
        "market_name": market["name"],
        "market_rules_link": market["market_rules_link"],
        "measured_period": _measured(c),
        "payout": f"${market['payout']:.2f}",
        "payout_time": last + int(data["payout_after_hours"]) * 3600,
        "price_increment": data["price_increment"],
        "product_code": market["symbol"],
        "release_time": last,
        "source_agency": market["source_agency"],
        "threshold": str(c.strike),
    }


@handles("forecast_contract_schedules")
def _schedules(state: GatewayState, req: SimRequest) -> Any:
    _contract(state, req)
    data = _fixture(state)
    return {
        "timezone": data["timezone"],
        "trading_schedules": [
            {"day_of_week": day, "trading_times": [dict(t) for t in data["trading_times"]]}
            for day in data["trading_days"]
        ],
    }
