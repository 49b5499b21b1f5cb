"""Portfolio Analyst reports: performance over one period (`/pa/performance`), over every period at once
(`/pa/allperiods`) and the transaction history of one contract (`/pa/transactions`).

The net asset value (NAV) series ends at the account's current net liquidation value; earlier daily values come
from reproducible daily returns (per seed and account) walked backwards over business days. Several accounts are
consolidated: their NAVs are summed and returns computed from the sum. Transactions are the simulated fills of the
session (nothing before the simulator started), valued in the contract's currency; realized P&L is replayed from
them at average cost. Accounts the simulator does not have answer 400.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from typing import Any

from ._core import GatewayError, SimRequest, as_int, handles
from ._state import GatewayState

PERIODS = ("1D", "7D", "MTD", "1M", "3M", "6M", "12M", "YTD")
ALL_PERIODS = ("1D", "7D", "MTD", "1M", "YTD", "1Y")  # the periods of IBKR's all-periods answer
_HISTORY_DAYS = 400  # calendar days of simulated NAV history


def _accounts(state: GatewayState, req: SimRequest) -> list[str]:
    raw = req.field("acctIds")
    ids = [raw] if isinstance(raw, str) else raw
    if not isinstance(ids, list) or not ids or not all(isinstance(a, str) and a for a in ids):
        raise GatewayError(400, "Bad Request: acctIds must name at least one account")
    for account in ids:
        if account not in state.book.accounts:
            raise GatewayError(400, f"Bad Request: account {account} is not one of {', '.join(state.account_ids)}")
    return list(dict.fromkeys(ids))


def _today(state: GatewayState) -> dt.date:
    return dt.datetime.fromtimestamp(state.now(), dt.timezone.utc).date()


def _business_days(start: dt.date, end: dt.date) -> list[dt.date]:
    days, day = [], start
    while day <= end:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def nav_history(state: GatewayState, accounts: list[str]) -> list[tuple[dt.date, float]]:
    """Daily NAV (base currency) of the accounts together, oldest first, ending today at the live value."""
    today = _today(state)
    days = _business_days(today - dt.timedelta(days=_HISTORY_DAYS), today)
    if days[-1] != today:
        days.append(today)  # the live value on a weekend
    total = [0.0] * len(days)
    for account in accounts:
        rng = random.Random(f"{state.seed}:pa:{account}")
        returns = [rng.gauss(0.0003, 0.006) for _ in days]
        nav = state.book.totals(account, state.now())["net_liq"]
        for i in range(len(days) - 1, -1, -1):
            total[i] += nav
            nav /= 1.0 + returns[i]
    return list(zip(days, total, strict=True))


def _period_start(today: dt.date, period: str) -> dt.date:
    """The last day before the period (its starting NAV), as a calendar date."""
    if period == "1D":
        return today - dt.timedelta(days=1)
    if period == "7D":
        return today - dt.timedelta(days=7)
    if period == "MTD":
        return today.replace(day=1) - dt.timedelta(days=1)
    if period == "YTD":
        return today.replace(month=1, day=1) - dt.timedelta(days=1)
    months = {"1M": 1, "3M": 3, "6M": 6, "12M": 12, "1Y": 12}[period]
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    return dt.date(year, month + 1, min(today.day, 28))


def _ymd(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


Day = tuple[dt.date, float]


def _slice(history: list[Day], period: str) -> tuple[Day, list[Day]]:
    """The starting NAV (last value on or before the period start) and the values inside the period."""
    start = _period_start(history[-1][0], period)
    before = [h for h in history if h[0] <= start]
    inside = [h for h in history if h[0] > start]
    return (before[-1] if before else history[0]), inside


def _cumulative(start_nav: float, inside: list[tuple[dt.date, float]]) -> list[float]:
    return [round(nav / start_nav - 1.0, 4) if start_nav else 0.0 for _, nav in inside]


def _entry(accounts: list[str], base: str, first: dt.date, last: dt.date) -> dict[str, Any]:
    single = len(accounts) == 1
    return {
        "id": accounts[0] if single else "consolidated",
        "idType": "acctid" if single else "consolidated",
        "baseCurrency": base,
        "start": _ymd(first),
        "end": _ymd(last),
    }


def _monthly(start_nav: float, inside: list[tuple[dt.date, float]]) -> tuple[list[str], list[float]]:
    """Time-period returns per calendar month (TWR without flows: the NAV ratio month end over previous end)."""
    months: list[str] = []
    returns: list[float] = []
    previous = start_nav
    for i, (day, nav) in enumerate(inside):
        month_end = i == len(inside) - 1 or inside[i + 1][0].month != day.month
        if month_end:
            months.append(day.strftime("%Y%m"))
            returns.append(round(nav / previous - 1.0, 4) if previous else 0.0)
            previous = nav
    return months, returns


@handles("account_performance")
def _performance(state: GatewayState, req: SimRequest) -> Any:
    accounts = _accounts(state, req)
    period = req.field("period")
    if period not in PERIODS:
        raise GatewayError(400, f"Bad Request: period must be one of {', '.join(PERIODS)}, got {period!r}")
    history = nav_history(state, accounts)
    (start_day, start_nav), inside = _slice(history, str(period))
    base = state.book.base_currency
    dates = [_ymd(d) for d, _ in inside]
    frame = _entry(accounts, base, inside[0][0], inside[-1][0])
    months, monthly = _monthly(start_nav, inside)
    return {
        "id": "getPerformanceData",
        "currencyType": "base",
        "included": accounts,
        "pm": "TWR",
        "rc": 0,
        "nd": len(history),
        "cps": {"dates": dates, "freq": "D", "data": [{**frame, "returns": _cumulative(start_nav, inside)}]},
        "nav": {
            "dates": dates,
            "freq": "D",
            "data": [
                {
                    **frame,
                    "navs": [round(n, 4) for _, n in inside],
                    "startNAV": {"date": _ymd(start_day), "val": round(start_nav, 4)},
                }
            ],
        },
        "tpps": {"dates": months, "freq": "M", "data": [{**frame, "returns": monthly}]},
    }


@handles("all_periods")
def _all_periods(state: GatewayState, req: SimRequest) -> Any:
    accounts = _accounts(state, req)
    history = nav_history(state, accounts)
    key = accounts[0] if len(accounts) == 1 else "consolidated"
    block: dict[str, Any] = {
        "baseCurrency": state.book.base_currency,
        "start": _ymd(_slice(history, "1Y")[1][0][0]),
        "end": _ymd(history[-1][0]),
        "lastSuccessfulUpdate": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(state.now())),
        "periods": list(ALL_PERIODS),
    }
    for period in ALL_PERIODS:
        (start_day, start_nav), inside = _slice(history, period)
        block[period] = {
            "cps": _cumulative(start_nav, inside),
            "dates": [_ymd(d) for d, _ in inside],
            "freq": "D",
            "nav": [round(n, 4) for _, n in inside],
            "startNAV": {"date": _ymd(start_day), "val": round(start_nav, 4)},
        }
    return {
        key: block,
        "currencyType": "base",
        "id": "getPerformanceAllPeriods",
        "included": accounts,
        "nd": len(history),
        "pm": "TWR",
        "rc": 0,
        "view": accounts,
    }


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


@handles("transaction_history")
def _transactions(state: GatewayState, req: SimRequest) -> Any:
    accounts = _accounts(state, req)
    raw = req.field("conids")
    conids = raw if isinstance(raw, list) else [raw]
    if len(conids) != 1:
        raise GatewayError(400, "Bad Request: exactly one conid per request")
    contract = state.contract(conids[0])
    currency = req.field("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise GatewayError(400, f"Bad Request: currency must be a three-letter code, got {currency!r}")
    days = as_int(req.field("days", 90), "days")
    now = state.now()
    since = now - days * 86400
    # Amounts in the requested currency (IBKR's fxRate converts the contract's currency into it).
    rate = state.book.fx(contract.currency, now) / state.book.fx(currency, now)
    transactions: list[dict[str, Any]] = []
    realized: list[dict[str, Any]] = []
    total_realized = 0.0
    for account in accounts:
        quantity = avg = 0.0
        for trade in state.book.trades:
            if trade["account"] != account or trade["conid"] != contract.conid:
                continue
            signed = float(trade["size"]) * (1 if trade["side"] == "B" else -1)
            price = float(trade["price"])
            stamp = trade["trade_time_r"] / 1000
            pnl = 0.0
            was_long = quantity > 0
            if quantity == 0 or (quantity > 0) == (signed > 0):
                avg = (abs(quantity) * avg + abs(signed) * price) / (abs(quantity) + abs(signed))
            else:
                closed = min(abs(signed), abs(quantity))
                pnl = closed * (price - avg) * (1 if quantity > 0 else -1) * contract.multiplier
                if abs(signed) > abs(quantity):
                    avg = price
            quantity += signed
            if stamp < since:
                continue
            day = time.gmtime(stamp)
            entry: dict[str, Any] = {
                "acctid": account,
                "amt": round(-signed * price * contract.multiplier * rate, 2),
                "conid": contract.conid,
                "cur": currency,
                "date": time.strftime("%a %b %d 00:00:00 UTC %Y", day),
                "rawDate": time.strftime("%Y%m%d", day),
                "desc": contract.name,
                "pr": round(price * rate, 6),
                "qty": _number(signed),
                "type": "Buy" if signed > 0 else "Sell",
            }
            entry["fxRate"] = 1 if rate == 1.0 else round(rate, 6)
            transactions.append(entry)
            if pnl:
                total_realized += pnl * rate
                item: dict[str, Any] = {
                    "acctid": account,
                    "amt": f"{pnl * rate:.4f}",
                    "conid": str(contract.conid),
                    "cur": currency,
                    "date": time.strftime("%Y%m%d", day),
                    "side": "L" if was_long else "G",  # L: a long position closed (IBKR's example); G assumed otherwise
                    "fxRate": 1 if rate == 1.0 else round(rate, 6),
                }
                realized.append(item)
    return {
        "id": "getTransactions",
        "currency": currency,
        "from": int(since * 1000),
        "to": int(now * 1000),
        "includesRealTime": True,
        "nd": days,
        "rc": 0,
        "rpnl": {"amt": f"{total_realized:.4f}", "data": realized},
        "transactions": transactions,
    }
