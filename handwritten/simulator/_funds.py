"""Account summaries by segment (`/iserver/account/{accountId}/summary/available_funds`, `.../balances`,
`.../margins`, `.../market_value`) and the partitioned P&L (`/iserver/account/pnl/partitioned`).

Every figure comes from the simulated book at the current prices, so the totals equal those of the iserver and
portfolio summaries. Segments: futures (their unrealised P&L and margin) form `commodities`, with cash swept in to
cover their initial margin, as IBKR sweeps between segments; everything else is `securities`; `Crypto at Paxos`
is always empty. Amounts are strings in IBKR's style (rounded, thousands separators, "1,234 USD"). Reg T margin is
the Reg T initial rate of `data/accounts.json` on the securities' gross position value.

Partitioned P&L: like IBKR's, the first request of a brokerage session answers `{"upnl": {}}` and starts the
computation; later requests give one `<account>.Core` row per account: daily P&L (`dpl`: the move since the prior
close of each open position, or since its cost when it was traded today), unrealised P&L, net liquidation, excess
liquidity and the gross value of the positions (`mv`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._core import SimRequest, handles
from ._state import GatewayState

_CRYPTO = "Crypto at Paxos"


@dataclass(frozen=True)
class _Segment:
    cash: float
    net_liq: float
    gross: float
    initial: float
    maintenance: float

    @property
    def available(self) -> float:
        return self.net_liq - self.initial

    @property
    def excess(self) -> float:
        return self.net_liq - self.maintenance


def _segments(state: GatewayState, account: str, now: float) -> dict[str, _Segment]:
    book = state.book
    t = book.totals(account, now)
    margin = state.fixtures["accounts"]["margin"]
    gross = upnl = 0.0
    for pos, c in book.open_positions(account):
        if c.sec_type == "FUT":
            rate, mark = book.fx(c.currency, now), book.mark(c, now)
            gross += abs(pos.quantity * mark * c.multiplier * rate)
            upnl += (mark - pos.avg_price) * pos.quantity * c.multiplier * rate
    initial, maintenance = gross * float(margin["initial"]), gross * float(margin["maintenance"])
    commodities = _Segment(initial, initial + upnl, gross, initial, maintenance)
    securities = _Segment(
        cash=t["cash"] - initial,
        net_liq=t["net_liq"] - commodities.net_liq,
        gross=t["gross"] - gross,
        initial=t["initial"] - initial,
        maintenance=t["maintenance"] - maintenance,
    )
    total = _Segment(t["cash"], t["net_liq"], t["gross"], t["initial"], t["maintenance"])
    return {"commodities": commodities, "securities": securities, "total": total}


def _money(value: float, currency: str) -> str:
    return f"{round(value):,} {currency}"


def _leverage(segment: _Segment) -> str:
    return f"{segment.gross / segment.net_liq:.2f}" if segment.net_liq > 0 else "0.00"


Builder = Callable[[GatewayState, str, _Segment, dict[str, _Segment], str], dict[str, str]]


def _summary(state: GatewayState, req: SimRequest, build: Builder) -> dict[str, Any]:
    account = state.account(req.params["accountId"])
    ccy = state.book.base_currency
    segments = _segments(state, account, state.now())
    out = {_CRYPTO: build(state, _CRYPTO, _Segment(0.0, 0.0, 0.0, 0.0, 0.0), segments, ccy)}
    out.update({name: build(state, name, seg, segments, ccy) for name, seg in segments.items()})
    return out


# The keys are the ones the gateway sends (recorded answers), not the abbreviations of IBKR's documentation.


def _funds(state: GatewayState, name: str, s: _Segment, segments: dict[str, _Segment], ccy: str) -> dict[str, str]:
    factor = float(state.fixtures["accounts"]["margin"]["buying_power_factor"])
    power = max(s.available, 0.0) * factor if name in ("securities", "total") else 0.0
    return {
        "current_available": _money(s.available, ccy),
        "current_excess": _money(s.excess, ccy),
        "buying_power": _money(power, ccy),
        "leverage": _leverage(s),
        "look_ahead_available": _money(s.available, ccy),
        "look_ahead_excess": _money(s.excess, ccy),
    }


def _balances(state: GatewayState, name: str, s: _Segment, segments: dict[str, _Segment], ccy: str) -> dict[str, str]:
    return {
        "net_liquidation": _money(s.net_liq, ccy),
        "equity_with_loan": _money(s.net_liq, ccy),
        "cash": _money(s.cash, ccy),
        "MTD Interest": _money(0.0, ccy),
        "previous_day_equity_with_loan": _money(s.net_liq, ccy),
    }


def _margins(state: GatewayState, name: str, s: _Segment, segments: dict[str, _Segment], ccy: str) -> dict[str, str]:
    regt = 0.0
    if name in ("securities", "total"):
        regt = segments["securities"].gross * float(state.fixtures["accounts"]["margin"]["regt_initial"])
    return {
        "current_initial": _money(s.initial, ccy),
        "current_maint": _money(s.maintenance, ccy),
        "look_ahead_initial": _money(s.initial, ccy),
        "look_ahead_maint": _money(s.maintenance, ccy),
        "RegT Margin": _money(regt, ccy),
    }


@handles("account_summary_available_funds")
def _available_funds(state: GatewayState, req: SimRequest) -> Any:
    return _summary(state, req, _funds)


@handles("account_summary_balances")
def _account_balances(state: GatewayState, req: SimRequest) -> Any:
    return _summary(state, req, _balances)


@handles("account_summary_margins")
def _account_margins(state: GatewayState, req: SimRequest) -> Any:
    return _summary(state, req, _margins)


# -- market value by currency ---------------------------------------------------------------------------------------

_MV_ZERO = (  # kinds of holdings the simulator does not have
    "Cryptocurrency",
    "Govt Bonds",
    "MTD Interest",
    "Notional CFD",
    "bonds",
    "cfd",
    "commodity",
    "dividends_receivable",
    "funds",
    "future_options",
    "issuer_option",
    "money_market",
    "mutual_funds",
    "t_bills",
    "warrants",
)
_MV_FIGURES = ("futures", "net_liquidation", "options", "realized_pnl", "stock", "total_cash", "unrealized_pnl")


def _by_currency(state: GatewayState, account: str, now: float) -> dict[str, dict[str, float]]:
    book = state.book
    figures: dict[str, dict[str, float]] = {}

    def row(ccy: str) -> dict[str, float]:
        return figures.setdefault(ccy, dict.fromkeys(_MV_FIGURES, 0.0))

    row(book.base_currency)
    for ccy, cash in book.accounts[account].cash.items():
        row(ccy)["total_cash"] += cash
    for pos, c in book.open_positions(account):
        mark = book.mark(c, now)
        value = pos.quantity * mark * c.multiplier
        upnl = (mark - pos.avg_price) * pos.quantity * c.multiplier
        kind = {"OPT": "options", "FUT": "futures"}.get(c.sec_type, "stock")
        row(c.currency)[kind] += upnl if c.sec_type == "FUT" else value
        row(c.currency)["unrealized_pnl"] += upnl
    for pos in book.accounts[account].positions.values():
        held = state.universe.get(pos.conid)
        if held is not None and pos.realized:
            row(held.currency)["realized_pnl"] += pos.realized
    for r in figures.values():
        r["net_liquidation"] = r["total_cash"] + r["stock"] + r["options"] + r["futures"]
    return figures


def _amount(value: float) -> str:
    return f"{round(value):,}"


def _mv_entry(figures: dict[str, float], rate: float, base: bool) -> dict[str, str]:
    entry = dict.fromkeys(_MV_ZERO, "0")
    entry.update({k: _amount(v) for k, v in figures.items()})
    entry["settled_cash"] = entry["total_cash"]
    entry["Exchange Rate"] = "1.00" if base else f"{rate:.7g}"
    return dict(sorted(entry.items()))


@handles("account_summary_market_value")
def _market_value(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    now, book = state.now(), state.book
    base = book.base_currency
    figures = _by_currency(state, account, now)
    total = dict.fromkeys(_MV_FIGURES, 0.0)
    out: dict[str, Any] = {}
    for ccy, values in figures.items():
        rate = book.fx(ccy, now)
        out[ccy] = _mv_entry(values, rate, ccy == base)
        for key, value in values.items():
            total[key] += value * rate
    out[f"Total (in {base})"] = _mv_entry(total, 1.0, True)
    return dict(sorted(out.items()))


# -- partitioned P&L ------------------------------------------------------------------------------------------------


def _daily_pnl(state: GatewayState, account: str, now: float) -> float:
    book, total = state.book, 0.0
    for pos, c in book.open_positions(account):
        session = c.session
        day_open = session.rth_bounds(session.last_open_day(now))[0]
        traded_today = any(
            t["account"] == account and t["conid"] == c.conid and t["trade_time_r"] >= day_open * 1000
            for t in book.trades
        )
        reference = pos.avg_price if traded_today else state.prices.day_stats(c, now).prior_close
        total += (book.mark(c, now) - reference) * pos.quantity * c.multiplier * book.fx(c.currency, now)
    return total


@handles("account_profit_and_loss")
def _pnl(state: GatewayState, req: SimRequest) -> Any:
    if not state.session.pnl_ready:
        state.session.pnl_ready = True
        return {"upnl": {}}
    now, rows = state.now(), {}
    for i, account in enumerate(state.account_ids, start=1):
        t = state.book.totals(account, now)
        rows[f"{account}.Core"] = {
            "rowType": i,
            "dpl": round(_daily_pnl(state, account, now), 2),
            "nl": round(t["net_liq"], 2),
            "upl": round(t["unrealized"], 2),
            "el": round(t["excess"], 2),
            "mv": round(t["gross"], 2),
        }
    return {"upnl": rows}
