"""Market data endpoints: snapshots (with IBKR's pre-flight), historical bars (iserver and HMDS) and closing the
server-side streams.

Snapshot: the first request for a conid in a brokerage session only opens its stream and answers
`{"conid", "conidEx"}`; later requests answer every requested field that was already requested before (a field
added later shows up from the following request on). Values are strings, as on the gateway.

History: bars `{o, c, h, l, v, t}` for any bar and period IBKR accepts, ending now or at `startTime`, following
the contract's trading hours (regular hours unless `outsideRth=true`), at most 1000 bars, in IBKR's envelope.
HMDS answers 404 to the first request of a session while its "farm connection" is set up (as the catalogue
documents) unless the simulator was built with `hmds_warmup=False`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from ._core import GatewayError, SimRequest, as_int, csv, handles
from ._prices import DayStats, Quote, fmt_price, to_tick
from ._state import GatewayState
from ._universe import DAY, Contract, Session, day_start

_BAR = re.compile(r"(\d+)(S|min|h|d|w|m)")
_PERIOD = re.compile(r"(\d+)(min|h|d|w|m|y)")
_UNIT_SECONDS = {"S": 1, "min": 60, "h": 3600, "d": DAY, "w": 7 * DAY, "m": 30 * DAY}
_TIME_FORMAT = "%Y%m%d-%H:%M:%S"


# -- snapshot -------------------------------------------------------------------------------------------------------


def _volume_text(volume: float) -> str:
    if volume >= 1_000_000:
        return f"{volume / 1_000_000:.2f}M"
    if volume >= 10_000:
        return f"{volume / 1_000:.1f}K"
    return f"{volume:,.0f}"


class _FieldSource:
    """Values of snapshot fields for one contract at one time; day statistics are computed only when needed."""

    def __init__(self, state: GatewayState, contract: Contract, now: float) -> None:
        self.state = state
        self.c = contract
        self.now = now
        self.q: Quote = state.prices.quote(contract, now)
        self._day: DayStats | None = None

    @property
    def day(self) -> DayStats:
        if self._day is None:
            self._day = self.state.prices.day_stats(self.c, self.now)
        return self._day

    def price(self, value: float) -> str:
        return fmt_price(value, self.c.tick)

    def value(self, field: str) -> str | None:
        c, q = self.c, self.q
        simple: dict[str, Callable[[], str | None]] = {
            "31": lambda: self.price(q.last),
            "84": lambda: self.price(q.bid),
            "86": lambda: self.price(q.ask),
            "85": lambda: str(q.ask_size),
            "88": lambda: str(q.bid_size),
            "7059": lambda: str(q.last_size),
            "55": lambda: c.symbol,
            "70": lambda: self.price(max(self.day.high, q.last)),
            "71": lambda: self.price(min(self.day.low, q.last)),
            "7295": lambda: self.price(self.day.open),
            "7741": lambda: self.price(self.day.prior_close),
            "82": lambda: self.price(q.last - self.day.prior_close),
            "83": lambda: f"{(q.last / self.day.prior_close - 1.0) * 100.0:.2f}%",
            "87": lambda: _volume_text(self.day.volume),
            "7762": lambda: str(int(self.day.volume)),
            "7635": lambda: self.price(to_tick((q.bid + q.ask) / 2.0, c.tick)),
            "7051": lambda: c.name,
            "6004": lambda: c.exchange,
            "6008": lambda: str(c.conid),
            "6070": lambda: c.sec_type,
            "7221": lambda: c.listing_label,
            "7219": lambda: c.description,
            "7220": lambda: c.description,
            "7768": lambda: "1",
            "7184": lambda: "1",
            "7899": lambda: c.stock_type or None,
            "201": lambda: c.right,
        }
        if field in simple:
            return simple[field]()
        if c.sec_type == "OPT" and field in ("7308", "7309", "7310", "7311", "7633"):
            g = self.state.prices.greeks(c, self.now)
            number = {"7308": g.delta, "7309": g.gamma, "7310": g.theta, "7311": g.vega}.get(field)
            if number is not None:
                return f"{number:.3f}"
            return f"{g.iv * 100.0:.1f}%"
        return None


@handles("live_marketdata_snapshot")
def _snapshot(state: GatewayState, req: SimRequest) -> Any:
    conids = [as_int(v, "conids") for v in csv(req.require_q("conids"))]
    fields = csv(req.require_q("fields"))
    now = state.now()
    markers = state.fixtures["marketdata"]["snapshot_markers"]
    streams = state.session.md_streams
    out = []
    for conid in conids:
        known = streams.get(conid)
        entry: dict[str, Any] = {"conid": conid, "conidEx": str(conid)}
        if known is None:  # pre-flight: open the stream, no data yet
            streams[conid] = set(fields)
            out.append(entry)
            continue
        ready = [f for f in fields if f in known]
        known.update(fields)
        contract = state.universe.get(conid)
        if contract is not None and ready:
            source = _FieldSource(state, contract, now)
            for f in ready:
                value = source.value(f)
                if value is not None:
                    entry[f] = value
                    if f == "87":
                        entry["87_raw"] = float(source.day.volume)
            entry.update(markers)
            entry["_updated"] = int(now * 1000)
        out.append(entry)
    return out


@handles("marketdata_unsubscribe")
def _unsubscribe(state: GatewayState, req: SimRequest) -> Any:
    conid = as_int(req.field("conid"), "conid")
    if state.session.md_streams.pop(conid, None) is None:
        raise GatewayError(404, f"no market data stream is open for conid {conid}")
    return {"success": True}


@handles("marketdata_unsubscribe_all")
def _unsubscribe_all(state: GatewayState, req: SimRequest) -> Any:
    state.session.md_streams.clear()
    return {"unsubscribed": True}


# -- history --------------------------------------------------------------------------------------------------------


def _parse(pattern: re.Pattern[str], text: str, what: str) -> tuple[int, str]:
    m = pattern.fullmatch(text.strip())
    if m is None or int(m.group(1)) <= 0:
        raise GatewayError(400, f"Bad Request: invalid {what} {text!r}")
    return int(m.group(1)), m.group(2)


def _window(session: Session, day: dt.date, extended: bool) -> tuple[float, float]:
    lo, hi = session.extended if extended else session.rth
    start = day_start(day) + lo * 60
    end = day_start(day) + hi * 60
    if hi <= lo:
        end += DAY
    return start, end


def _bar_count(bar_n: int, bar_unit: str, period_n: int, period_unit: str, session_seconds: float) -> int:
    bar_s = bar_n * _UNIT_SECONDS[bar_unit]
    if bar_s < DAY:
        span = {
            "min": period_n * 60.0,
            "h": period_n * 3600.0,
            "d": period_n * session_seconds,
            "w": period_n * 5 * session_seconds,
            "m": period_n * 21 * session_seconds,
            "y": period_n * 252 * session_seconds,
        }[period_unit]
        return math.ceil(span / bar_s)
    days = {"min": 1, "h": 1, "d": period_n, "w": 5 * period_n, "m": 21 * period_n, "y": 252 * period_n}[period_unit]
    if bar_unit == "d":
        return math.ceil(days / bar_n)
    if bar_unit == "w":
        return math.ceil(days / (5 * bar_n))
    return math.ceil(days / (21 * bar_n))


def _intraday_slots(session: Session, end: float, bar_s: int, extended: bool) -> Iterator[tuple[float, float]]:
    """(start, end) of bars of `bar_s` seconds inside trading windows, newest first, ending at `end`."""
    day = dt.datetime.fromtimestamp(end, dt.timezone.utc).date() + dt.timedelta(days=1)
    for _ in range(4000):
        if session.is_trading_day(day):
            w_start, w_end = _window(session, day, extended)
            slot = math.floor((min(end, w_end) - w_start - 1e-9) / bar_s) * bar_s + w_start
            while slot >= w_start:
                if slot < end:
                    yield slot, min(slot + bar_s, w_end)
                slot -= bar_s
        day -= dt.timedelta(days=1)


def _session_slots(session: Session, end: float, unit: str, extended: bool) -> Iterator[tuple[float, float]]:
    """Daily, weekly (unit w) or monthly (unit m) bars over trading days, newest first."""
    day = dt.datetime.fromtimestamp(end, dt.timezone.utc).date()
    current: list[float] | None = None
    key_of: Callable[[dt.date], tuple[int, int]] = {
        "d": lambda d: (d.toordinal(), 0),
        "w": lambda d: (d.isocalendar()[0], d.isocalendar()[1]),
        "m": lambda d: (d.year, d.month),
    }[unit]
    current_key: tuple[int, int] | None = None
    for _ in range(8000):
        if session.is_trading_day(day):
            start, stop = _window(session, day, extended)
            if start < end:
                key = key_of(day)
                if current is not None and key != current_key:
                    yield current[0], current[1]
                    current = None
                if current is None:
                    current, current_key = [start, min(stop, end)], key
                else:
                    current[0] = start
        day -= dt.timedelta(days=1)
    if current is not None:
        yield current[0], current[1]


def _history(state: GatewayState, req: SimRequest, *, series: str) -> dict[str, Any]:
    contract = state.contract(req.require_q("conid"))
    bar_text = req.require_q("bar")
    bar_n, bar_unit = _parse(_BAR, bar_text, "bar")
    if bar_unit in ("S", "min", "h") and bar_n * _UNIT_SECONDS[bar_unit] >= DAY:  # 25h, 1440min: daily bars
        bar_n, bar_unit = bar_n * _UNIT_SECONDS[bar_unit] // DAY, "d"
    period_text = req.q("period", state.fixtures["marketdata"]["history_default_period"]) or "1d"
    period_n, period_unit = _parse(_PERIOD, period_text, "period")
    extended = req.q("outsideRth") == "true"
    now = state.now()
    start_text = req.q("startTime")
    end = now
    if start_text is not None:
        try:
            parsed = dt.datetime.strptime(start_text, _TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            raise GatewayError(400, f"Bad Request: invalid startTime {start_text!r}") from None
        end = min(parsed.timestamp(), now)
    session = contract.session
    w_start, w_end = _window(session, dt.date(2024, 1, 2), extended)
    fixture = state.fixtures["marketdata"]
    count = min(_bar_count(bar_n, bar_unit, period_n, period_unit, w_end - w_start), int(fixture["max_points"]))
    bar_s = bar_n * _UNIT_SECONDS[bar_unit]
    if bar_s < DAY:
        slots = _intraday_slots(session, end, bar_s, extended)
    else:
        slots = _session_slots(session, end, bar_unit, extended)
    group = bar_n if bar_s >= DAY else 1  # e.g. 2d, 2w: bars span several sessions (weeks, months)
    units: list[tuple[float, float]] = []
    for slot in slots:
        if len(units) >= count * group:
            break
        units.append(slot)
    picked = [(units[min(i + group, len(units)) - 1][0], units[i][1]) for i in range(0, len(units), group)]
    picked.reverse()
    price_factor = int(fixture["price_factor"])
    volume_factor = int(fixture["volume_factor"])
    half_spread = contract.spread_ticks * contract.tick / 2.0
    shift = {"Bid": -half_spread, "Ask": half_spread}.get(series, 0.0)
    bars = []
    for start, stop in picked:
        stop = min(stop, now)
        samples = [state.prices.raw(contract, start + (stop - start) * k / 7.0) + shift for k in range(8)]
        volume = 0.0
        if series == "Last":
            volume = round(state.prices.bar_volume(contract, start, stop - start) / volume_factor, 2)
        bars.append(
            {
                "o": to_tick(samples[0], contract.tick),
                "c": to_tick(samples[-1], contract.tick),
                "h": to_tick(max(samples), contract.tick),
                "l": to_tick(min(samples), contract.tick),
                "v": volume,
                "t": int(start * 1000),
            }
        )
    envelope: dict[str, Any] = dict(fixture["history_envelope"])
    first_t = bars[0]["t"] if bars else int(end * 1000)

    def extreme(bar: dict[str, Any] | None, key: str) -> str:
        if bar is None:
            return "0/0/0"
        return f"{round(bar[key] * price_factor)}/{bar['v']:g}/{(bar['t'] - first_t) // 60000}"

    highest = max(bars, key=lambda b: float(b["h"])) if bars else None
    lowest = min(bars, key=lambda b: float(b["l"])) if bars else None

    envelope.update(
        {
            "serverId": state.next_server_id(),
            "symbol": contract.symbol,
            "text": contract.name,
            "priceFactor": price_factor,
            "startTime": time.strftime(_TIME_FORMAT, time.gmtime(first_t / 1000)),
            "high": extreme(highest, "h"),
            "low": extreme(lowest, "l"),
            "timePeriod": period_text,
            "barLength": bar_s,
            "outsideRth": extended,
            "volumeFactor": volume_factor,
            "tradingDayDuration": (contract.session.rth[1] - contract.session.rth[0]) % 1440 or 1440,
            "chartPanStartTime": time.strftime(_TIME_FORMAT, time.gmtime(end)),
            "data": bars,
            "points": max(len(bars) - 1, 0),
        }
    )
    return envelope


@handles("marketdata_history_by_conid")
def _md_history(state: GatewayState, req: SimRequest) -> Any:
    source = req.q("source", "Last") or "Last"
    series = {"trades": "Last", "last": "Last", "midpoint": "Midpoint", "bid_ask": "Midpoint"}.get(
        source.lower(), "Last"
    )
    return _history(state, req, series=series)


@handles("historical_marketdata_beta")
def _hmds_history(state: GatewayState, req: SimRequest) -> Any:
    if state.hmds_warmup and not state.session.hmds_ready:
        state.session.hmds_ready = True
        raise GatewayError(404, "Chart data unavailable: the historical data farm is connecting, try again")
    series = req.q("barType", "Last") or "Last"
    if series not in ("Last", "Bid", "Ask", "Midpoint"):
        raise GatewayError(400, f"Bad Request: barType {series} is not modelled by the simulator")
    body = _history(state, req, series=series)
    direction = req.q("direction")
    if direction in ("-1", "1"):
        body["direction"] = int(direction)
    return body
