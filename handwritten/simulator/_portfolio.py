"""Portfolio endpoints: accounts, metadata, summary, ledger and positions, valued at the simulated prices.

Positions reflect fills at once (the real portfolio service caches and may lag; that lag is not modelled).
Closed positions (quantity 0) are left out. Currency-pair trades change cash balances, not positions.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from ._book import Position
from ._contracts import secdef
from ._core import SimRequest, as_int, handles
from ._state import GatewayState
from ._universe import Contract

PAGE_SIZE = 100


def _account_record(state: GatewayState, account: str) -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(state.fixtures["accounts"]["portfolio_account"])
    record.update({"id": account, "accountId": account, "accountVan": account, "desc": account})
    record["currency"] = state.book.base_currency
    record["type"] = "DEMO" if account.startswith("D") else "INDIVIDUAL"
    return record


@handles("portfolio_accounts", "portfolio_subaccounts")
def _accounts(state: GatewayState, req: SimRequest) -> Any:
    return [_account_record(state, a) for a in state.account_ids]


@handles("portfolio_account_information")
def _meta(state: GatewayState, req: SimRequest) -> Any:
    return _account_record(state, state.account(req.params["accountId"]))


def position_entry(
    state: GatewayState, account: str, pos: Position, c: Contract, now: float, *, by_conid: bool = False
) -> dict[str, Any]:
    """One position row. The gateway sends `strike` as a number in position lists and as text ("0") in the
    single-contract answer, which also repeats the values in the base currency (`base*`)."""
    mark = state.book.mark(c, now)
    entry = secdef(c)
    entry.update(
        {
            "acctId": account,
            "conid": c.conid,
            "contractDesc": c.description,
            "position": pos.quantity,
            "mktPrice": mark,
            "mktValue": round(pos.quantity * mark * c.multiplier, 2),
            "avgCost": round(pos.avg_price * c.multiplier, 6),
            "avgPrice": round(pos.avg_price, 6),
            "realizedPnl": round(pos.realized, 2),
            "unrealizedPnl": round((mark - pos.avg_price) * pos.quantity * c.multiplier, 2),
            "exchs": None,
            "exerciseStyle": None,
            "conExchMap": [],
            "model": "",
            "pageSize": PAGE_SIZE,
        }
    )
    if by_conid:
        rate = state.book.fx(c.currency, now)
        for key in ("mktValue", "mktPrice", "avgCost", "avgPrice", "realizedPnl", "unrealizedPnl"):
            entry["base" + key[0].upper() + key[1:]] = round(entry[key] * rate, 6)
    else:
        entry["strike"] = c.strike if c.strike is not None else 0.0
    return entry


def _sort_key(value: Any) -> tuple[int, float, str]:
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _sorted(entries: list[dict[str, Any]], req: SimRequest) -> list[dict[str, Any]]:
    key = req.q("sort")
    if key and all(key in e for e in entries):
        entries.sort(key=lambda e: _sort_key(e[key]), reverse=req.q("direction") == "d")
    return entries


@handles("positions")
def _positions(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    page = as_int(req.params["pageId"], "pageId")
    now = state.now()
    entries = [position_entry(state, account, p, c, now) for p, c in state.book.open_positions(account)]
    entries = _sorted(entries, req)
    return entries[page * PAGE_SIZE : (page + 1) * PAGE_SIZE] if page >= 0 else []


@handles("positions2")
def _positions2(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    now = state.now()
    out = []
    for pos, c in state.book.open_positions(account):
        mark = state.prices.raw(c, now)
        out.append(
            {
                "position": pos.quantity,
                "conid": str(c.conid),
                "avgCost": pos.avg_price * c.multiplier,
                "avgPrice": pos.avg_price,
                "currency": c.currency,
                "description": c.description,
                "isLastToLoq": False,
                "marketPrice": mark,
                "marketValue": pos.quantity * mark * c.multiplier,
                "realizedPnl": pos.realized,
                "secType": c.sec_type,
                "timestamp": int(now),
                "unrealizedPnl": (mark - pos.avg_price) * pos.quantity * c.multiplier,
                "assetClass": c.sec_type,
                "sector": c.sector,
                "group": c.group,
                "model": "",
            }
        )
    return _sorted(out, req)


@handles("positions_by_conid")
def _position_by_conid(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    conid = as_int(req.params["conid"], "conid")
    now = state.now()
    return [
        position_entry(state, account, p, c, now, by_conid=True)
        for p, c in state.book.open_positions(account)
        if c.conid == conid
    ]


@handles("position_and_contract_info")
def _positions_all_accounts(state: GatewayState, req: SimRequest) -> Any:
    conid = as_int(req.params["conid"], "conid")
    now = state.now()
    out: dict[str, Any] = {}
    for account in state.account_ids:
        held = [
            position_entry(state, account, p, c, now) for p, c in state.book.open_positions(account) if c.conid == conid
        ]
        if held:
            out[account] = held
    return out


def _ledger_entry(
    state: GatewayState, account: str, currency: str, cash: float, rate: float, now: float
) -> dict[str, Any]:
    return {
        "acctcode": account,
        "currency": currency,
        "secondkey": currency,
        "key": "LedgerList",
        "cashbalance": round(cash, 2),
        "settledcash": round(cash, 2),
        "cashbalancefxsegment": 0.0,
        "exchangerate": round(rate, 6),
        "stockmarketvalue": 0.0,
        "stockoptionmarketvalue": 0.0,
        "futuremarketvalue": 0.0,
        "futureoptionmarketvalue": 0.0,
        "futuresonlypnl": 0.0,
        "commoditymarketvalue": 0.0,
        "corporatebondsmarketvalue": 0.0,
        "tbondsmarketvalue": 0.0,
        "tbillsmarketvalue": 0.0,
        "issueroptionsmarketvalue": 0.0,
        "warrantsmarketvalue": 0.0,
        "cryptocurrencyvalue": 0.0,
        "moneyfunds": 0.0,
        "funds": 0.0,
        "interest": 0.0,
        "dividends": 0.0,
        "netliquidationvalue": round(cash, 2),
        "unrealizedpnl": 0.0,
        "realizedpnl": 0.0,
        "sessionid": 1,
        "severity": 0,
        "timestamp": int(now),
    }


@handles("get_ledger")
def _ledger(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    now = state.now()
    book = state.book
    cash_by_ccy = dict(book.accounts[account].cash)
    per_ccy: dict[str, dict[str, Any]] = {}
    for ccy, cash in sorted(cash_by_ccy.items()):
        per_ccy[ccy] = _ledger_entry(state, account, ccy, cash, book.fx(ccy, now), now)
    for pos, c in book.open_positions(account):
        entry = per_ccy.setdefault(
            c.currency, _ledger_entry(state, account, c.currency, 0.0, book.fx(c.currency, now), now)
        )
        mark = book.mark(c, now)
        value = pos.quantity * mark * c.multiplier
        upnl = (mark - pos.avg_price) * pos.quantity * c.multiplier
        kind = {"OPT": "stockoptionmarketvalue", "FUT": "futuremarketvalue"}.get(c.sec_type, "stockmarketvalue")
        entry[kind] = round(entry[kind] + (upnl if c.sec_type == "FUT" else value), 2)
        if c.sec_type == "FUT":
            entry["futuresonlypnl"] = round(entry["futuresonlypnl"] + upnl, 2)
        entry["unrealizedpnl"] = round(entry["unrealizedpnl"] + upnl, 2)
        entry["netliquidationvalue"] = round(entry["netliquidationvalue"] + (upnl if c.sec_type == "FUT" else value), 2)
    for pos in book.accounts[account].positions.values():
        contract = state.universe.get(pos.conid)
        if contract is not None and contract.currency in per_ccy:
            entry = per_ccy[contract.currency]
            entry["realizedpnl"] = round(entry["realizedpnl"] + pos.realized, 2)
    totals = book.totals(account, now)
    base = _ledger_entry(state, account, "BASE", totals["cash"], 1.0, now)
    base.update(
        {
            "stockmarketvalue": round(totals["stock"], 2),
            "stockoptionmarketvalue": round(totals["option"], 2),
            "futuremarketvalue": round(totals["future"], 2),
            "futuresonlypnl": round(totals["future"], 2),
            "netliquidationvalue": round(totals["net_liq"], 2),
            "unrealizedpnl": round(totals["unrealized"], 2),
            "realizedpnl": round(totals["realized"], 2),
        }
    )
    out: dict[str, Any] = {"BASE": base}
    out.update(per_ccy)
    last = list(out)[-1]
    out[last]["endofbundle"] = 1
    return out


def _summary_value(amount: float | None, currency: str | None, value: str | None, now: float) -> dict[str, Any]:
    return {
        "amount": round(amount, 2) if amount is not None else 0.0,
        "currency": currency,
        "isNull": False,
        "severity": 0,
        "timestamp": int(now * 1000),
        "value": value,
    }


# The gateway reports most amounts for the whole account and again per segment: -s US securities, -c US
# commodities, -p crypto at Paxos. The simulator trades securities only, so -c and -p amounts are zero.
_SEGMENTED = (
    "accruedcash accrueddividend availablefunds billable equitywithloanvalue excessliquidity fullavailablefunds "
    "fullexcessliquidity fullinitmarginreq fullmaintmarginreq guarantee incentivecoupons indianstockhaircut "
    "initmarginreq lookaheadavailablefunds lookaheadexcessliquidity lookaheadinitmarginreq lookaheadmaintmarginreq "
    "maintmarginreq netliquidation pasharesvalue physicalcertificatevalue postexpirationexcess postexpirationmargin "
    "totalcashvalue totaldebitcardpendingcharges"
).split()
_SECURITIES_ONLY = "grosspositionvalue previousdayequitywithloanvalue regtequity regtmargin sma".split()
_SEGMENT_TITLES = {"s": ("US Securities", "1"), "c": ("US Commodities", "2"), "p": ("Crypto at Paxos", "5")}


@handles("portfolio_summary")
def _summary(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    now = state.now()
    t = state.book.totals(account, now)
    ccy = state.book.base_currency
    amounts = dict.fromkeys(_SEGMENTED + _SECURITIES_ONLY, 0.0)
    amounts.update(
        {
            "netliquidation": t["net_liq"],
            "totalcashvalue": t["cash"],
            "grosspositionvalue": t["gross"],
            "equitywithloanvalue": t["net_liq"],
            "previousdayequitywithloanvalue": t["net_liq"],
            "regtequity": t["net_liq"],
            "regtmargin": t["initial"],
            "initmarginreq": t["initial"],
            "maintmarginreq": t["maintenance"],
            "fullinitmarginreq": t["initial"],
            "fullmaintmarginreq": t["maintenance"],
            "lookaheadinitmarginreq": t["initial"],
            "lookaheadmaintmarginreq": t["maintenance"],
            "availablefunds": t["available"],
            "fullavailablefunds": t["available"],
            "lookaheadavailablefunds": t["available"],
            "excessliquidity": t["excess"],
            "fullexcessliquidity": t["excess"],
            "lookaheadexcessliquidity": t["excess"],
            "postexpirationexcess": t["excess"],
            "sma": max(t["available"], 0.0),
        }
    )
    out: dict[str, Any] = {}
    for key, value in amounts.items():
        out[key] = _summary_value(value, ccy, None, now)
        out[f"{key}-s"] = _summary_value(value, ccy, None, now)
        if key in _SEGMENTED:
            out[f"{key}-c"] = _summary_value(0.0, ccy, None, now)
            out[f"{key}-p"] = _summary_value(0.0, ccy, None, now)
    out["buyingpower"] = _summary_value(t["buying_power"], ccy, None, now)
    out["netliquidationuncertainty"] = _summary_value(0.0, ccy, None, now)
    day = time.strftime("%Y%m%d", time.gmtime(now))
    cushion = t["excess"] / t["net_liq"] if t["net_liq"] else 0.0
    leverage = t["gross"] / t["net_liq"] if t["net_liq"] else 0.0
    texts = {
        "accountcode": account,
        "accountready": "true",
        "accounttype": "INDIVIDUAL",
        "cushion": f"{cushion:.4g}",
        "depositoncredithold": "null",
        "highestseverity": "null",
        "lookaheadnextchange": "0",
        "nlvandmargininreview": "false",
        "whatifpmenabled": "true",
        "settledcashbydate": f"{day}:{t['cash']:.2f}",
        "settledcashbydate-s": f"{day}:{t['cash']:.2f}",
        "settledcashbydate-c": f"{day}:0",
        "settledcashbydate-p": f"{day}:0",
        "daytradingstatus-s": f"::false:{t['net_liq']:.2f}::false",
        "leverage-s": f"{leverage:.2f}",
        "tradingtype-s": "STKNOPT",
    }
    for key in ("", "t+1", "t+2", "t+3", "t+4"):
        texts[f"daytradesremaining{key}"] = "-1"
    for segment, (title, prio) in _SEGMENT_TITLES.items():
        texts[f"segmenttitle-{segment}"] = title
        texts[f"columnprio-{segment}"] = prio
    for key, text in texts.items():
        out[key] = _summary_value(None, None, text, now)
    return dict(sorted(out.items()))
