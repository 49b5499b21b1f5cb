"""The simulator's contract universe, read from `data/contracts.json`.

Stocks (with their other listings: Mexican and Swiss lines, Canadian CDRs, London ETPs under the same symbol),
indices, currency pairs and their descriptive fields come straight from the file. Futures and options are derived
when the simulator is built from the simulated date, so a chain never lies in the past: the next quarterly futures,
the next monthly option expiries (third Fridays) and, for chains with weeklies, every Friday up to the last monthly
expiry in the weekly trading class (SPXW for SPX; SPY's weeklies keep the class SPY). So one strike and month can
name several contracts, told apart by `maturityDate` and `tradingClass`, as on IBKR.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MONTH_CODES = "FGHJKMNQUVXZ"
_FIXED_HOLIDAYS = {(1, 1), (6, 19), (7, 4), (12, 25)}  # US exchange holidays on a fixed date
DAY = 86400


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (calendar.FRIDAY - first.weekday()) % 7
    return first + dt.timedelta(days=offset + 14)


def month_label(day: dt.date) -> str:
    """IBKR's month code for derivatives, e.g. JAN27."""
    return day.strftime("%b%y").upper()


def utc_day(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).date()


def day_start(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()


@dataclass(frozen=True)
class Session:
    """Trading hours in UTC minutes of the day (approximate: daylight saving time is ignored)."""

    rth: tuple[int, int]
    extended: tuple[int, int]
    weekdays_only: bool = True
    timezone: str = "UTC"  # the exchange's zone (IANA name)
    timezone_alias: str = "UTC"  # the older name some endpoints use, e.g. US/Eastern
    utc_offset: int = 0  # minutes; standard time (daylight saving time is ignored, as everywhere here)

    def is_trading_day(self, day: dt.date) -> bool:
        return not self.weekdays_only or day.weekday() < 5

    def rth_bounds(self, day: dt.date) -> tuple[float, float]:
        start = day_start(day)
        return start + self.rth[0] * 60, start + self.rth[1] * 60

    def last_open_day(self, ts: float) -> dt.date:
        """The latest trading day whose regular session opened at or before `ts`."""
        day = utc_day(ts)
        for _ in range(10):
            if self.is_trading_day(day) and self.rth_bounds(day)[0] <= ts:
                return day
            day -= dt.timedelta(days=1)
        return day

    def previous_day(self, day: dt.date) -> dt.date:
        day -= dt.timedelta(days=1)
        while not self.is_trading_day(day):
            day -= dt.timedelta(days=1)
        return day


@dataclass(frozen=True)
class Contract:
    conid: int
    symbol: str
    sec_type: str
    name: str
    exchange: str
    listing_label: str
    execution_exchange: str
    currency: str
    session: Session
    tick: float
    spread_ticks: int
    price: float
    is_us: bool = True
    country: str | None = "US"
    multiplier: float = 1.0
    avg_volume: float = 0.0
    chinese_name: str | None = None
    stock_type: str = ""
    local_symbol: str | None = None
    base_currency: str | None = None
    has_options: bool = False
    valid_exchanges: str = ""
    sector: str | None = None
    group: str | None = None
    sector_group: str | None = None
    industry: str | None = None
    category: str | None = None
    underlying: int | None = None
    expiry: dt.date | None = None
    strike: float | None = None
    right: str | None = None  # "C" / "P"
    trading_class: str | None = None  # options: SPX / SPXW; None means the symbol
    monthly: bool = True  # options: a standard third-Friday expiry in its symbol's own class
    legs: tuple[tuple[int, int], ...] = ()  # a combo (BAG): (leg conid, signed ratio) per leg
    volatility: float = 0.25
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_derivative(self) -> bool:
        return self.sec_type in ("OPT", "FUT", "FOP", "WAR", "BAG")

    @property
    def expiry_ts(self) -> float | None:
        """The expiry as a timestamp (the close of the US session on the expiry day)."""
        return day_start(self.expiry) + 21 * 3600 if self.expiry else None

    @property
    def month(self) -> str | None:
        return month_label(self.expiry) if self.expiry else None

    @property
    def expiry_text(self) -> str | None:
        return self.expiry.strftime("%Y%m%d") if self.expiry else None

    @property
    def ticker(self) -> str:
        return self.local_symbol or self.symbol

    @property
    def klass(self) -> str:
        """The trading class (IBKR's `tradingClass`): the symbol unless the file or the chain says otherwise."""
        return self.trading_class or self.symbol

    @property
    def description(self) -> str:
        """IBKR's one-line contract description, e.g. `AAPL`, `ES DEC26`, `AAPL JAN27 230 C`; a weekly option names
        its day and class (`SPXW 04DEC26 5900 C`), so the contracts of one strike and month read apart."""
        if self.sec_type == "OPT" and self.expiry and self.strike is not None:
            if not self.monthly:
                return f"{self.klass} {self.expiry.strftime('%d%b%y').upper()} {self.strike:g} {self.right}"
            return f"{self.symbol} {self.month} {self.strike:g} {self.right}"
        if self.sec_type == "FUT" and self.expiry:
            return f"{self.symbol} {self.month}"
        if self.sec_type == "BAG":
            return f"{self.symbol} spread ({self.name})"
        return self.symbol

    @property
    def full_name(self) -> str:
        if self.sec_type == "OPT" and self.expiry and self.strike is not None:
            kind = "Call" if self.right == "C" else "Put"
            return f"{self.symbol} {self.expiry.strftime('%b%d')}'{self.expiry.strftime('%y')} {self.strike:g} {kind}"
        return self.description


# Combos get ids of their own in the simulator (from here up) so every lookup by conid finds them; IBKR's orders
# name a combo by its conidex, `{spread conid};;;{leg}/{ratio},...`, which the order answers keep.
COMBO_CONID_BASE = 2_880_000_000


class Universe:
    def __init__(self, data: Mapping[str, Any], today: dt.date) -> None:
        sessions = {
            name: Session(
                rth=(_minutes(s["rth"][0]), _minutes(s["rth"][1])),
                extended=(_minutes(s["extended"][0]), _minutes(s["extended"][1])),
                weekdays_only=bool(s.get("weekdays_only", True)),
                timezone=str(s.get("timezone", "UTC")),
                timezone_alias=str(s.get("timezone_alias", s.get("timezone", "UTC"))),
                utc_offset=int(s.get("utc_offset_minutes", 0)),
            )
            for name, s in data["sessions"].items()
        }
        self.sessions = sessions
        self._option_exchanges = str(data.get("option_exchanges", "SMART"))
        self.by_conid: dict[int, Contract] = {}
        self._combos: dict[str, Contract] = {}
        for raw in data["contracts"]:
            self._add(self._contract(raw, sessions, data))
        for fut in data.get("futures", []):
            for contract in self._futures(fut, sessions, today):
                self._add(contract)
        for chain in data.get("option_chains", []):
            for contract in self._options(chain, sessions, today):
                self._add(contract)

    def _add(self, contract: Contract) -> None:
        self.by_conid[contract.conid] = contract

    @staticmethod
    def _contract(raw: Mapping[str, Any], sessions: Mapping[str, Session], data: Mapping[str, Any]) -> Contract:
        known = set(Contract.__dataclass_fields__)
        kwargs = {k: v for k, v in raw.items() if k in known and k not in ("session", "valid_exchanges")}
        valid = str(raw.get("valid_exchanges", ""))
        if valid in data:  # a named list, e.g. "us_exchanges"
            valid = str(data[valid])
        extra = {k: v for k, v in raw.items() if k not in known}
        return Contract(session=sessions[raw["session"]], valid_exchanges=valid, extra=extra, **kwargs)

    def _futures(self, spec: Mapping[str, Any], sessions: Mapping[str, Session], today: dt.date) -> Iterable[Contract]:
        expiries: list[dt.date] = []
        year, month = today.year, today.month
        while len(expiries) < int(spec["count"]):
            if month in spec["months"] and third_friday(year, month) > today:
                expiries.append(third_friday(year, month))
            month += 1
            if month > 12:
                year, month = year + 1, 1
        underlying = self.by_conid.get(int(spec["underlying"]))
        base = underlying.price if underlying else 100.0
        for conid, expiry in zip(spec["conids"], expiries, strict=False):
            yield Contract(
                conid=int(conid),
                symbol=spec["symbol"],
                sec_type="FUT",
                name=spec["name"],
                exchange=spec["exchange"],
                listing_label=spec["exchange"],
                execution_exchange=spec["exchange"],
                currency=spec["currency"],
                session=sessions[spec["session"]],
                tick=float(spec["tick"]),
                spread_ticks=int(spec["spread_ticks"]),
                price=base,
                multiplier=float(spec["multiplier"]),
                avg_volume=float(spec.get("avg_volume", 0)),
                local_symbol=f"{spec['symbol']}{MONTH_CODES[expiry.month - 1]}{expiry.year % 10}",
                valid_exchanges=spec["exchange"],
                underlying=int(spec["underlying"]),
                expiry=expiry,
            )

    @staticmethod
    def _expiries(spec: Mapping[str, Any], today: dt.date) -> list[tuple[dt.date, str, bool, int]]:
        """(expiry, trading class, monthly?, conid base) of a chain: the monthly expiries first, then the weeklies
        (every Friday after `today` up to the last monthly expiry; in the standard class they skip the monthly
        days, in a class of their own, such as SPXW, they include them)."""
        monthly: list[dt.date] = []
        year, month = today.year, today.month
        while len(monthly) < int(spec["monthly_expiries"]):
            if third_friday(year, month) > today:
                monthly.append(third_friday(year, month))
            month += 1
            if month > 12:
                year, month = year + 1, 1
        out = [(day, str(spec.get("trading_class", spec["symbol"])), True, int(spec["conid_base"])) for day in monthly]
        weekly = spec.get("weeklies")
        if weekly:
            klass = str(weekly["trading_class"])
            same_class = klass == str(spec.get("trading_class", spec["symbol"]))
            day = today + dt.timedelta(days=(calendar.FRIDAY - today.weekday()) % 7 or 7)
            while day <= monthly[-1]:
                if not (same_class and day in monthly):
                    # A Friday on a fixed-date exchange holiday expires on the Thursday before, as listed chains do.
                    expiry = day - dt.timedelta(days=1) if (day.month, day.day) in _FIXED_HOLIDAYS else day
                    out.append((expiry, klass, False, int(weekly["conid_base"])))
                day += dt.timedelta(days=7)
        return out

    def _options(self, spec: Mapping[str, Any], sessions: Mapping[str, Session], today: dt.date) -> Iterable[Contract]:
        underlying = self.by_conid[int(spec["underlying"])]
        counters: dict[int, int] = {}
        for expiry, klass, monthly, base in self._expiries(spec, today):
            i = counters[base] = counters.get(base, -1) + 1
            for j, strike in enumerate(spec["strikes"]):
                for k, right in enumerate(("C", "P")):
                    occ = f"{klass:<6}{expiry.strftime('%y%m%d')}{right}{int(round(float(strike) * 1000)):08d}"
                    yield Contract(
                        conid=base + i * 100 + j * 2 + k,
                        symbol=spec["symbol"],
                        sec_type="OPT",
                        name=spec["name"],
                        exchange="SMART",
                        listing_label="SMART",
                        execution_exchange="CBOE",
                        currency=spec["currency"],
                        session=sessions[spec["session"]],
                        tick=float(spec["tick"]),
                        spread_ticks=int(spec["spread_ticks"]),
                        price=0.0,
                        multiplier=float(spec["multiplier"]),
                        avg_volume=float(spec.get("avg_volume", 0)),
                        chinese_name=underlying.chinese_name,
                        local_symbol=occ,
                        valid_exchanges=self._option_exchanges,
                        underlying=underlying.conid,
                        expiry=expiry,
                        strike=float(strike),
                        right=right,
                        trading_class=klass,
                        monthly=monthly,
                        volatility=float(spec.get("volatility", 0.25)),
                        sector=underlying.sector,
                        group=underlying.group,
                        sector_group=underlying.sector_group,
                    )

    def combo(self, conidex: str) -> Contract:
        """The combo (BAG) contract of a conidex `{spread conid};;;{leg conid}/{ratio},...`, made on first use.

        Legs must be options or stocks of the universe with one currency; ratios are non-zero integers (negative:
        sold). Raises ValueError naming what is wrong.
        """
        spread, _, text = conidex.partition(";;;")
        legs: list[tuple[int, int]] = []
        for part in text.split(","):
            conid, _, ratio = part.partition("/")
            try:
                leg = (int(conid), int(ratio))
            except ValueError:
                raise ValueError(f"combo leg {part!r} is not conid/ratio") from None
            if leg[1] == 0 or self.get(leg[0]) is None or self.by_conid[leg[0]].sec_type not in ("OPT", "STK"):
                raise ValueError(f"combo leg {part!r} names no option or stock of the universe, or a zero ratio")
            legs.append(leg)
        contracts = [self.by_conid[c] for c, _ in legs]
        if len(legs) < 2 or len({c for c, _ in legs}) != len(legs) or len({c.currency for c in contracts}) != 1:
            raise ValueError("a combo needs two or more different legs in one currency")
        key = f"{spread.split('@')[0]};;;" + ",".join(f"{c}/{r}" for c, r in legs)
        found = self._combos.get(key)
        if found is not None:
            return found
        first = contracts[0]
        name = ", ".join(f"{r:+d} {c.description}" for (_, r), c in zip(legs, contracts, strict=True))
        combo = Contract(
            conid=COMBO_CONID_BASE + len(self._combos),
            symbol=first.symbol,
            sec_type="BAG",
            name=name,
            exchange="SMART",
            listing_label="SMART",
            execution_exchange="SMART",
            currency=first.currency,
            session=first.session,
            tick=min(c.tick for c in contracts),
            spread_ticks=1,
            price=0.0,
            multiplier=first.multiplier,
            underlying=first.underlying,
            legs=tuple(legs),
            extra={"conidex": key},
        )
        self._combos[key] = combo
        self._add(combo)
        return combo

    # -- queries ------------------------------------------------------------------------------------------------

    def get(self, conid: int) -> Contract | None:
        return self.by_conid.get(conid)

    def all(self) -> list[Contract]:
        return list(self.by_conid.values())

    def listings(self, symbol: str) -> list[Contract]:
        """Top-level contracts (stocks, indices, currency pairs) whose symbol is `symbol`, case-insensitive."""
        wanted = symbol.strip().upper()
        return [c for c in self.by_conid.values() if not c.is_derivative and c.symbol.upper() == wanted]

    def by_name(self, text: str) -> list[Contract]:
        wanted = text.strip().upper()
        return [c for c in self.by_conid.values() if not c.is_derivative and wanted in c.name.upper()]

    def derivatives(
        self,
        underlying: int,
        sec_type: str,
        month: str | None = None,
        strike: float | None = None,
        right: str | None = None,
    ) -> list[Contract]:
        out = []
        for c in self.by_conid.values():
            if c.underlying != underlying or c.sec_type != sec_type:
                continue
            if month and c.month != month.upper():
                continue
            if strike is not None and (c.strike is None or abs(c.strike - strike) > 1e-9):
                continue
            if right and c.right != right[:1].upper():
                continue
            out.append(c)
        return sorted(out, key=lambda c: (c.expiry or dt.date.min, c.klass, c.strike or 0.0, c.right or ""))

    def months(self, underlying: int, sec_type: str) -> list[str]:
        seen: dict[str, dt.date] = {}
        for c in self.derivatives(underlying, sec_type):
            if c.expiry and c.month:
                seen.setdefault(c.month, c.expiry)
        return [m for m, _ in sorted(seen.items(), key=lambda kv: kv[1])]

    def futures_of(self, symbol: str) -> list[Contract]:
        wanted = symbol.strip().upper()
        out = [c for c in self.by_conid.values() if c.sec_type == "FUT" and c.symbol.upper() == wanted]
        return sorted(out, key=lambda c: c.expiry or dt.date.min)
