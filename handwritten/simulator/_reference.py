"""Reference endpoints of the contract area: currency pairs and exchange rates, trading schedules and the
conids of an exchange.

Exchange rates use the simulator's valuation (`Book.fx`): live for pairs in the universe (EUR.USD), the fixed
rates of `data/accounts.json` otherwise; a currency known to neither answers 400. Currency pairs come from
`data/reference.json`. Trading schedules follow the universe's session hours, shown in the exchange's local time
(standard time: daylight saving time is ignored throughout the simulator); holidays are not modelled.
`/contract/trading-schedule` lists the next six trading days with epoch opening and closing times;
`/trsrv/secdef/schedule` lists IBKR's generic week (20000101 = any Saturday ... 20000107 = any Friday).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ._core import GatewayError, SimRequest, csv, handles
from ._state import GatewayState
from ._universe import Contract, Session, day_start, utc_day

_WEEK_START = dt.date(2000, 1, 1)  # a Saturday: IBKR's generic schedule dates run 20000101 (Sat) to 20000107 (Fri)
_DAYS_LISTED = 6


# -- currencies -----------------------------------------------------------------------------------------------------


@handles("currency_pairs")
def _pairs(state: GatewayState, req: SimRequest) -> Any:
    currency = req.require_q("currency").strip().upper()
    pairs = []
    for pair in state.fixtures["reference"]["currency_pairs"]:
        base, quote = pair["symbol"].split(".")
        if currency in (base, quote):
            other = quote if base == currency else base
            pairs.append({"symbol": pair["symbol"], "conid": pair["conid"], "ccyPair": other})
    return {currency: pairs}


def _known_currency(state: GatewayState, currency: str) -> bool:
    book = state.book
    if currency == book.base_currency or currency in state.fixtures["accounts"]["fx_to_base"]:
        return True
    return any(c.sec_type == "CASH" and c.base_currency == currency for c in state.universe.all())


@handles("currency_exchange_rate")
def _rate(state: GatewayState, req: SimRequest) -> Any:
    source = req.require_q("source").strip().upper()
    target = req.require_q("target").strip().upper()
    for currency in (source, target):
        if not _known_currency(state, currency):
            raise GatewayError(400, f"Bad Request: no exchange rate for currency {currency}")
    now = state.now()
    return {"rate": round(state.book.fx(source, now) / state.book.fx(target, now), 8)}


# -- trading schedules ----------------------------------------------------------------------------------------------


def _local_window(window: tuple[int, int], offset: int) -> tuple[int, int]:
    """(local opening minute, length in minutes) of a UTC session window."""
    start, end = window
    return (start + offset) % 1440, (end - start) % 1440 or 1440


def _epoch_window(day: dt.date, window: tuple[int, int], offset: int) -> tuple[int, int]:
    """Epoch opening and closing of the window that closes on local trading day `day` (it may open the evening
    before, as CME's does)."""
    local_open, length = _local_window(window, offset)
    opening = day_start(day) - offset * 60 + local_open * 60
    if local_open + length > 1440:
        opening -= 86400
    return int(opening), int(opening + length * 60)


def _hhmm(minutes: int) -> str:
    return "2400" if minutes == 1440 else f"{minutes // 60 % 24:02d}{minutes % 60:02d}"


def _times(window: tuple[int, int], offset: int) -> tuple[str, str]:
    local_open, length = _local_window(window, offset)
    closing = local_open + length
    return _hhmm(local_open), _hhmm(closing if closing == 1440 else closing % 1440)


def _check_exchange(c: Contract, exchange: str | None) -> None:
    if exchange and exchange.upper() not in (c.exchange, *c.valid_exchanges.split(",")):
        raise GatewayError(400, f"Bad Request: {exchange} is not an exchange of conid {c.conid}")


@handles("trading_schedule_by_conid")
def _schedule_by_conid(state: GatewayState, req: SimRequest) -> Any:
    c = state.contract(req.require_q("conid"))
    _check_exchange(c, req.q("exchange"))
    session = c.session
    day = utc_day(state.now() + session.utc_offset * 60)
    schedules: dict[str, Any] = {}
    for _ in range(3 * _DAYS_LISTED):
        if len(schedules) == _DAYS_LISTED:
            break
        if session.is_trading_day(day):
            ext_open, ext_close = _epoch_window(day, session.extended, session.utc_offset)
            rth_open, rth_close = _epoch_window(day, session.rth, session.utc_offset)
            schedules[day.strftime("%Y%m%d")] = {
                "extended_hours": [{"cancel_daily_orders": True, "closing": ext_close, "opening": ext_open}],
                "liquid_hours": [{"closing": rth_close, "opening": rth_open}],
            }
        day += dt.timedelta(days=1)
    return {"exchange_time_zone": session.timezone_alias, "schedules": schedules}


def _generic_day(session: Session, day: dt.date) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "clearingCycleEndTime": "0000",
        "sessions": [],
        "tradingScheduleDate": day.strftime("%Y%m%d"),
    }
    if not session.is_trading_day(day):
        entry["tradingtimes"] = []
        return entry
    ext_open, ext_close = _times(session.extended, session.utc_offset)
    trading: dict[str, Any] = {"cancelDayOrders": "Y", "closingTime": ext_close, "openingTime": ext_open}
    if session.rth == session.extended:
        trading["prop"] = "LIQUID"
    else:
        rth_open, rth_close = _times(session.rth, session.utc_offset)
        entry["sessions"] = [{"closingTime": rth_close, "openingTime": rth_open, "prop": "LIQUID"}]
    entry.update({"clearingCycleEndTime": "1700", "tradingtimes": [trading]})
    return entry


def _exchange_schedule(state: GatewayState, exchange: str, session: Session) -> dict[str, Any]:
    info = state.fixtures["reference"]["exchanges"].get(exchange, {})
    return {
        "description": info.get("description", exchange),
        "exchange": exchange,
        "id": info.get("param_id"),
        "schedules": [_generic_day(session, _WEEK_START + dt.timedelta(days=i)) for i in range(7)],
        "timezone": session.timezone,
        "tradeVenueId": info.get("venue_id"),
    }


def _schedule_contracts(state: GatewayState, asset_class: str, symbol: str) -> list[Contract]:
    universe = state.universe
    if asset_class == "FUT":
        return universe.futures_of(symbol)
    listings = [c for c in universe.listings(symbol) if c.sec_type in ("STK", "IND", "CASH")]
    if asset_class == "OPT":
        return [o for c in listings for o in universe.derivatives(c.conid, "OPT")]
    return [c for c in listings if c.sec_type == asset_class]


def _venue(c: Contract) -> str:
    return c.execution_exchange if c.exchange == "SMART" else c.exchange


@handles("trading_schedule_by_symbol")
def _schedule_by_symbol(state: GatewayState, req: SimRequest) -> Any:
    asset_class = req.require_q("assetClass").strip().upper()
    contracts = _schedule_contracts(state, asset_class, req.require_q("symbol"))
    primary = req.q("exchange")
    if primary:
        contracts = [c for c in contracts if primary.upper() in (c.exchange, _venue(c))]
    wanted = [x.upper() for x in csv(req.q("exchangeFilter") or "")]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for c in contracts:
        venues = [x for x in wanted if x in c.valid_exchanges.split(",")] if wanted else [_venue(c)]
        for venue in venues:
            if venue not in seen:
                seen.add(venue)
                out.append(_exchange_schedule(state, venue, c.session))
    return out


# -- conids of an exchange ------------------------------------------------------------------------------------------


@handles("all_conids_by_exchange")
def _all_conids(state: GatewayState, req: SimRequest) -> Any:
    exchange = req.require_q("exchange").strip().upper()
    asset_class = (req.q("assetClass") or "STK").strip().upper()
    found = [c for c in state.universe.all() if c.sec_type == asset_class and c.exchange.upper() == exchange]
    return [
        {"conid": c.conid, "exchange": c.exchange, "ticker": c.symbol} for c in sorted(found, key=lambda c: c.symbol)
    ]
