"""Market scanners: the brokerage scanner (`/iserver/scanner/params`, `/iserver/scanner/run`) and the HMDS one
(`/hmds/scanner/params`, `/hmds/scanner`), over the universe's stocks at the simulated prices.

A scan keeps the stocks of the instrument (US stocks, US equity ETFs, or Canadian and Mexican stocks) listed at
an exchange of the location, drops those that fail a filter, and ranks the rest by the scan type's measure:
% change since the prior close, day volume, trade count (volume over a fixed trade size), volume against the
usual volume by this time of day, or the opening gap. Gainer and loser scans keep only rising or falling stocks.
Values come from the same day statistics as the snapshot fields (31, 83, 87, 7295, 7741). The lists and mappings
are in `data/scanner.json`; an instrument, location, scan type or filter not in them answers 400. The HMDS
scanner answers its parameters in the same shape as the brokerage one (IBKR documents neither shape) and its
results in the legacy document's `scanner-result` shape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._core import GatewayError, SimRequest, as_float, as_int, handles
from ._state import GatewayState
from ._universe import Contract

_PARAM_LISTS = ("filter_list", "instrument_list", "location_tree", "scan_type_list")


@dataclass(frozen=True)
class _Row:
    contract: Contract
    measures: dict[str, float]


def _params(state: GatewayState) -> dict[str, Any]:
    data = state.fixtures["scanner"]
    return {name: data[name] for name in _PARAM_LISTS}


@handles("scanner_parameters", "hmds_scanner_parameters")
def _scanner_params(state: GatewayState, req: SimRequest) -> Any:
    return _params(state)


def _locations(tree: list[dict[str, Any]]) -> Iterator[str]:
    for node in tree:
        yield node["type"]
        yield from _locations(node.get("locations") or [])


def _bad(message: str) -> GatewayError:
    return GatewayError(400, f"Bad Request: {message}")


def _row(state: GatewayState, c: Contract, now: float) -> _Row:
    day = state.prices.day_stats(c, now)
    last = state.quote(c).last
    opening, closing = c.session.rth_bounds(c.session.last_open_day(now))
    elapsed = min(max((now - opening) / max(closing - opening, 1.0), 0.0), 1.0)
    usual = c.avg_volume * elapsed
    measures = {
        "change_pct": (last / day.prior_close - 1.0) * 100.0 if day.prior_close else 0.0,
        "gap_pct": (day.open / day.prior_close - 1.0) * 100.0 if day.prior_close else 0.0,
        "volume": day.volume,
        "trades": float(round(day.volume / float(state.fixtures["scanner"]["shares_per_trade"]))),
        "volume_ratio": day.volume / usual if usual else 0.0,
        "price": last,
        "avg_volume": c.avg_volume,
    }
    return _Row(c, measures)


_FILTERS = {
    "priceAbove": ("price", 1),
    "priceBelow": ("price", -1),
    "volumeAbove": ("volume", 1),
    "avgVolumeAbove": ("avg_volume", 1),
    "changePercAbove": ("change_pct", 1),
    "changePercBelow": ("change_pct", -1),
}


def _filters(raw: Any) -> list[tuple[str, int, float]]:
    if raw in (None, ""):
        return []
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise _bad("filters must be a list of {code, value} objects")
    out = []
    for f in raw:
        code = f.get("code")
        if not isinstance(code, str) or code not in _FILTERS:
            raise _bad(f"unknown scanner filter code {code!r}")
        measure, direction = _FILTERS[code]
        out.append((measure, direction, as_float(f.get("value"), f"value of filter {code}")))
    return out


def scan(state: GatewayState, instrument: Any, scan_code: Any, location: Any, raw_filters: Any) -> list[_Row]:
    data = state.fixtures["scanner"]
    instruments = {i["type"] for i in data["instrument_list"]}
    if not isinstance(instrument, str) or instrument not in instruments:
        raise _bad(f"instrument {instrument!r} is not offered by the simulator's scanner")
    tree = next(node for node in data["location_tree"] if node["type"] == instrument)
    if not isinstance(location, str) or location not in set(_locations(tree.get("locations") or [])):
        raise _bad(f"location {location!r} is not a location of instrument {instrument}")
    kind = data["scan_types"].get(scan_code) if isinstance(scan_code, str) else None
    if kind is None:
        raise _bad(f"scan type {scan_code!r} is not offered by the simulator's scanner")
    filters = _filters(raw_filters)
    exchanges = set(data["location_exchanges"].get(location, []))
    countries = set(data["instrument_countries"][instrument])
    stock_types = data["instrument_stock_types"].get(instrument)
    now = state.now()
    rows = []
    for c in state.universe.all():
        if c.sec_type != "STK" or c.exchange not in exchanges or c.country not in countries:
            continue
        if stock_types is not None and c.stock_type not in stock_types:
            continue
        row = _row(state, c, now)
        if all((row.measures[m] - limit) * d > 0 for m, d, limit in filters):
            rows.append(row)
    measure, sign = kind["measure"], int(kind["sign"])
    rows = [r for r in rows if sign == 0 or r.measures[measure] * sign > 0]
    rows.sort(key=lambda r: (-r.measures[measure] if kind["descending"] else r.measures[measure], r.contract.conid))
    return rows


def _scan_text(measure: str, value: float) -> str:
    if measure in ("change_pct", "gap_pct"):
        return f"{value:+.2f}%"
    if measure == "volume_ratio":
        return f"{value:.2f}"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.3f}M"
    if value >= 1_000:
        return f"{value / 1_000:.3f}K"
    return f"{value:.0f}"


@handles("market_scanner")
def _run(state: GatewayState, req: SimRequest) -> Any:
    scan_code = req.field("type")
    rows = scan(state, req.field("instrument"), scan_code, req.field("location"), req.field("filter"))
    kind = state.fixtures["scanner"]["scan_types"][scan_code]
    contracts = []
    for i, row in enumerate(rows[: int(state.fixtures["scanner"]["iserver_limit"])]):
        c = row.contract
        entry: dict[str, Any] = {
            "server_id": str(i),
            "symbol": c.symbol,
            "conidex": str(c.conid),
            "con_id": c.conid,
            "available_chart_periods": "#R|1",
            "company_name": c.name,
            "scan_data": _scan_text(kind["measure"], row.measures[kind["measure"]]),
            "contract_description_1": c.symbol,
            "listing_exchange": c.listing_label,
            "sec_type": c.sec_type,
        }
        if i == 0:
            entry["column_name"] = kind["column"]
        contracts.append(entry)
    return {"contracts": contracts, "scan_data_column_name": kind["column"]}


@handles("hmds_market_scanner")
def _hmds_run(state: GatewayState, req: SimRequest) -> Any:
    sec_type = req.field("secType")
    if sec_type not in (None, "STK"):
        raise _bad(f"secType {sec_type!r} is not offered by the simulator's scanner (STK only)")
    rows = scan(state, req.field("instrument"), req.field("scanCode"), req.field("locations"), req.field("filters"))
    limit = int(state.fixtures["scanner"]["hmds_limit"])
    wanted = req.field("maxItems")
    size = min(as_int(wanted, "maxItems"), limit) if wanted is not None else limit
    rows = rows[: max(size, 0)]
    stamp = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(state.now()))
    return {
        "total": len(rows),
        "size": len(rows),
        "offset": 0,
        "scanTime": stamp,
        "id": int(state.next_server_id()),
        "position": "",
        "Contracts": {
            "Contract": [
                {"inScanTime": stamp, "distance": i, "contractID": row.contract.conid} for i, row in enumerate(rows)
            ]
        },
    }
