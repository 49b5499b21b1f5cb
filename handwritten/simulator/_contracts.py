"""Contract endpoints over the simulator's universe: stocks by symbol, security definitions, symbol search,
option strikes and derivative info, futures by symbol and contract details."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ._core import GatewayError, SimRequest, as_float, as_int, csv, handles
from ._prices import decimals
from ._state import GatewayState
from ._universe import Contract


def _display_rule(c: Contract) -> dict[str, Any]:
    return {
        "magnification": 0,
        "displayRuleStep": [{"decimalDigits": max(2, decimals(c.tick)), "lowerEdge": 0.0, "wholeDigits": 4}],
    }


def _yyyymmdd(day: dt.date | None) -> str | None:
    return day.strftime("%Y%m%d") if day else None


def secdef(c: Contract) -> dict[str, Any]:
    """The security definition record (`/trsrv/secdef`, and the contract part of portfolio positions)."""
    return {
        "conid": c.conid,
        "currency": c.currency,
        "time": 0,
        "chineseName": c.chinese_name,
        "allExchanges": c.valid_exchanges,
        "listingExchange": c.exchange,
        "countryCode": c.country,
        "name": c.name,
        "assetClass": c.sec_type,
        "expiry": _yyyymmdd(c.expiry),
        "lastTradingDay": _yyyymmdd(c.expiry),
        "group": c.group,
        "putOrCall": c.right,
        "sector": c.sector,
        "sectorGroup": c.sector_group,
        "strike": f"{c.strike:g}" if c.strike is not None else "0",
        "ticker": c.ticker if c.sec_type != "OPT" else c.symbol,
        "undConid": c.underlying or 0,
        "multiplier": c.multiplier if c.is_derivative else 0.0,
        "type": c.stock_type,
        "hasOptions": c.has_options,
        "fullName": c.full_name,
        "isUS": c.is_us,
        "incrementRules": [{"lowerEdge": 0.0, "increment": c.tick}],
        "displayRule": _display_rule(c),
        "isEventContract": False,
    }


@handles("security_stocks_by_symbol")
def _stocks(state: GatewayState, req: SimRequest) -> Any:
    out: dict[str, Any] = {}
    for symbol in csv(req.require_q("symbols")):
        groups: dict[str, dict[str, Any]] = {}
        for c in state.universe.listings(symbol):
            if c.sec_type != "STK":
                continue
            group = groups.setdefault(
                c.name, {"name": c.name, "chineseName": c.chinese_name, "assetClass": "STK", "contracts": []}
            )
            group["contracts"].append({"conid": c.conid, "exchange": c.exchange, "isUS": c.is_us})
        for group in groups.values():  # recorded answers list an instrument's listings by conid
            group["contracts"].sort(key=lambda listing: listing["conid"])
        out[symbol.upper()] = list(groups.values())
    return out


@handles("security_definition_by_conid")
def _secdef(state: GatewayState, req: SimRequest) -> Any:
    found = []
    for text in csv(req.require_q("conids")):
        contract = state.universe.get(as_int(text, "conids"))
        if contract is not None:
            found.append(secdef(contract))
    return {"secdef": found}


def _sections(state: GatewayState, c: Contract) -> list[dict[str, Any]]:
    sections: list[dict[str, Any]] = [{"secType": c.sec_type}]
    if c.sec_type == "IND":
        sections[0]["exchange"] = c.exchange
    if c.sec_type == "CASH":
        sections[0]["exchange"] = c.exchange
    if c.sec_type == "STK" and not c.is_us:  # a listing abroad names its exchange, as recorded answers do
        sections[0]["exchange"] = f"{c.exchange};"
    for kind in ("OPT", "FUT"):
        months = state.universe.months(c.conid, kind)
        if months:
            derivative = state.universe.derivatives(c.conid, kind)[0]
            exchanges = derivative.valid_exchanges.replace(",", ";")
            sections.append({"secType": kind, "months": ";".join(months), "exchange": exchanges})
    return sections


def _search_entry(state: GatewayState, c: Contract) -> dict[str, Any]:
    options = state.universe.derivatives(c.conid, "OPT")
    expiries = sorted({_yyyymmdd(o.expiry) or "" for o in options})
    return {
        "conid": str(c.conid),
        "companyHeader": f"{c.name} - {c.exchange}",
        "companyName": c.name,
        "symbol": c.symbol,
        "description": c.exchange,
        "restricted": None,
        "fop": None,
        "opt": ";".join(expiries) if expiries else None,
        "war": None,
        "sections": _sections(state, c),
    }


@handles("search_contract_by_symbol", "search_contract_by_body")
def _search(state: GatewayState, req: SimRequest) -> Any:
    if req.method == "GET":
        symbol = req.require_q("symbol")
        by_name = req.q("name") == "true"
        sec_type = req.q("secType")
    else:
        symbol = req.field("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise GatewayError(400, "Bad Request: symbol is required")
        by_name = req.field("name") is True
        sec_type = req.field("secType")
    found = state.universe.by_name(symbol) if by_name else state.universe.listings(symbol)
    if isinstance(sec_type, str) and sec_type:
        found = [c for c in found if c.sec_type == sec_type.upper()]
    return [_search_entry(state, c) for c in found]


@handles("search_strikes_by_conid")
def _strikes(state: GatewayState, req: SimRequest) -> Any:
    underlying = state.contract(req.require_q("conid"))
    sec_type = req.require_q("sectype").upper()
    month = req.require_q("month").upper()
    chain = state.universe.derivatives(underlying.conid, sec_type, month=month)
    calls = sorted({c.strike for c in chain if c.right == "C" and c.strike is not None})
    puts = sorted({c.strike for c in chain if c.right == "P" and c.strike is not None})
    return {"call": calls, "put": puts}


def _info_entry(c: Contract) -> dict[str, Any]:
    return {
        "conid": c.conid,
        "ticker": c.symbol,
        "secType": c.sec_type,
        "listingExchange": c.exchange if not c.is_derivative else c.execution_exchange,
        "exchange": "SMART" if c.sec_type in ("STK", "OPT") else c.exchange,
        "companyName": c.name,
        "currency": c.currency,
        "validExchanges": c.valid_exchanges,
        "priceRendering": None,
        "maturityDate": _yyyymmdd(c.expiry),
        "right": c.right or "?",
        "strike": c.strike if c.strike is not None else 0.0,
        "multiplier": f"{c.multiplier:g}" if c.is_derivative else None,
        "tradingClass": c.klass,
        "desc1": c.symbol,
        "desc2": c.full_name.replace(f"{c.symbol} ", "", 1) if c.is_derivative else None,
    }


@handles("search_secdef_info_by_conid")
def _info(state: GatewayState, req: SimRequest) -> Any:
    contract = state.contract(req.require_q("conid"))
    sec_type = req.require_q("sectype").upper()
    if sec_type in ("OPT", "FUT", "FOP", "WAR"):
        month = req.q("month")
        if month is None:
            raise GatewayError(400, "Bad Request: month is required for derivatives")
        strike_text = req.q("strike")
        strike = as_float(strike_text, "strike") if strike_text is not None else None
        if sec_type == "OPT" and strike is None:
            raise GatewayError(400, "Bad Request: strike is required for options")
        found = state.universe.derivatives(contract.conid, sec_type, month=month, strike=strike, right=req.q("right"))
        return [_info_entry(c) for c in found]
    if contract.sec_type != sec_type:
        return []
    return [_info_entry(contract)]


@handles("security_future_by_symbol")
def _futures(state: GatewayState, req: SimRequest) -> Any:
    out: dict[str, Any] = {}
    for symbol in csv(req.require_q("symbols")):
        entries = []
        for c in state.universe.futures_of(symbol):
            assert c.expiry is not None
            ltd = int((c.expiry - dt.timedelta(days=1)).strftime("%Y%m%d"))
            entries.append(
                {
                    "symbol": c.symbol,
                    "conid": c.conid,
                    "underlyingConid": c.underlying,
                    "expirationDate": int(c.expiry.strftime("%Y%m%d")),
                    "ltd": ltd,
                    "shortFuturesCutOff": ltd,
                    "longFuturesCutOff": ltd,
                }
            )
        out[symbol.upper()] = entries
    return out


def contract_info(c: Contract) -> dict[str, Any]:
    """The contract details record (`/iserver/contract/{conid}/info`, and the first part of info-and-rules)."""
    return {
        "cfi_code": "OCXXXS" if c.sec_type == "OPT" else "",
        "symbol": c.symbol,
        "cusip": None,
        "expiry_full": _yyyymmdd(c.expiry),
        "con_id": c.conid,
        "maturity_date": _yyyymmdd(c.expiry),
        "industry": c.industry,
        "instrument_type": c.sec_type,
        "trading_class": c.klass,
        "valid_exchanges": c.valid_exchanges,
        "allow_sell_long": False,
        "is_zero_commission_security": False,
        "local_symbol": c.ticker,
        "contract_clarification_type": None,
        "classifier": None,
        "currency": c.currency,
        "text": c.full_name if c.is_derivative else None,
        "underlying_con_id": c.underlying or 0,
        "r_t_h": c.sec_type == "STK",
        "multiplier": f"{c.multiplier:g}" if c.is_derivative else None,
        "underlying_issuer": None,
        "contract_month": c.expiry.strftime("%Y%m") if c.expiry else None,
        "company_name": c.name,
        "smart_available": c.sec_type in ("STK", "OPT"),
        "exchange": "SMART" if c.sec_type in ("STK", "OPT") else c.exchange,
        "category": c.category,
        "right": {"C": "CALL", "P": "PUT"}.get(c.right or ""),
        "strike": f"{c.strike:g}" if c.strike is not None else None,
        "has_related_contracts": c.has_options,
    }


@handles("contract_information_by_conid")
def _contract_info(state: GatewayState, req: SimRequest) -> Any:
    return contract_info(state.contract(req.params["conid"]))
