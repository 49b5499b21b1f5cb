"""Deterministic prices that move with (simulated) time.

A contract's price at time t is its starting price times a smooth wiggle: a sum of sine waves (periods from
days down to under a minute) whose phases come from `random.Random(f"{seed}:{conid}")`. The same seed, conid
and clock reading always give the same price, in any process, and nearby times give nearby prices, so quotes,
history bars and fills agree with one another. Futures follow their index, options are priced with
Black-Scholes on their underlying. `set_price` pins a contract's price, e.g. to make a resting order fill.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ._universe import Contract, Session, Universe

_WAVES = ((3 * 86400.0, 0.03), (2.3 * 3600.0, 0.008), (11 * 60.0, 0.002), (47.0, 0.0006))
_YEAR = 365.0 * 86400.0


def decimals(tick: float) -> int:
    text = f"{tick:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def to_tick(value: float, tick: float) -> float:
    return round(round(value / tick) * tick, decimals(tick))


def fmt_price(value: float, tick: float) -> str:
    return f"{value:.{max(2, decimals(tick))}f}"


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass(frozen=True)
class Quote:
    last: float
    bid: float
    ask: float
    mid: float
    bid_size: int
    ask_size: int
    last_size: int


@dataclass(frozen=True)
class DayStats:
    open: float
    high: float
    low: float
    prior_close: float
    volume: float


@dataclass(frozen=True)
class Greeks:
    delta: float
    gamma: float
    theta: float
    vega: float
    iv: float


class PriceModel:
    def __init__(self, universe: Universe, seed: int) -> None:
        self._universe = universe
        self._seed = seed
        self._phases: dict[int, tuple[float, ...]] = {}
        self.overrides: dict[int, float] = {}

    def _phase(self, conid: int) -> tuple[float, ...]:
        phases = self._phases.get(conid)
        if phases is None:
            rng = random.Random(f"{self._seed}:{conid}")
            phases = tuple(rng.uniform(0.0, 2.0 * math.pi) for _ in _WAVES)
            self._phases[conid] = phases
        return phases

    def raw(self, contract: Contract, t: float) -> float:
        """The unrounded price (mid) of `contract` at time `t`."""
        pinned = self.overrides.get(contract.conid)
        if pinned is not None:
            return pinned
        if contract.sec_type == "OPT":
            return self._option_value(contract, t)
        if contract.legs:  # a combo: the net of its legs (negative for a credit)
            return sum(r * self.raw(self._universe.by_conid[c], t) for c, r in contract.legs)
        base = contract.price
        if contract.sec_type == "FUT" and contract.underlying is not None:
            under = self._universe.get(contract.underlying)
            if under is not None:
                days = max(0.0, ((contract.expiry_ts or t) - t) / 86400.0)
                return self.raw(under, t) * (1.0 + 0.0001 * days)
        phases = self._phase(contract.conid)
        wiggle = sum(a * math.sin(2.0 * math.pi * t / p + ph) for (p, a), ph in zip(_WAVES, phases, strict=True))
        return base * math.exp(wiggle)

    def _bs_inputs(self, contract: Contract, t: float) -> tuple[float, float, float, float]:
        under = self._universe.get(contract.underlying or 0)
        spot = self.raw(under, t) if under else 100.0
        strike = contract.strike or spot
        years = max(((contract.expiry_ts or t) - t) / _YEAR, 1e-6)
        return spot, strike, years, contract.volatility

    def _option_value(self, contract: Contract, t: float) -> float:
        spot, strike, years, vol = self._bs_inputs(contract, t)
        sd = vol * math.sqrt(years)
        d1 = (math.log(spot / strike) + 0.5 * sd * sd) / sd
        d2 = d1 - sd
        if contract.right == "P":
            return max(strike * _norm_cdf(-d2) - spot * _norm_cdf(-d1), contract.tick)
        return max(spot * _norm_cdf(d1) - strike * _norm_cdf(d2), contract.tick)

    def greeks(self, contract: Contract, t: float) -> Greeks:
        spot, strike, years, vol = self._bs_inputs(contract, t)
        sd = vol * math.sqrt(years)
        d1 = (math.log(spot / strike) + 0.5 * sd * sd) / sd
        pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
        delta = _norm_cdf(d1) if contract.right != "P" else _norm_cdf(d1) - 1.0
        gamma = pdf / (spot * sd)
        theta = -spot * pdf * vol / (2.0 * math.sqrt(years)) / 365.0
        vega = spot * pdf * math.sqrt(years) / 100.0
        return Greeks(delta, gamma, theta, vega, vol)

    def leg_prices(self, contract: Contract, t: float, buy: bool) -> list[tuple[Contract, int, float]]:
        """What buying (or selling) one combo trades at: each leg at its ask when bought, its bid when sold."""
        out = []
        for conid, ratio in contract.legs:
            leg = self._universe.by_conid[conid]
            q = self.quote(leg, t)
            out.append((leg, ratio, q.ask if (ratio > 0) == buy else q.bid))
        return out

    def quote(self, contract: Contract, t: float) -> Quote:
        tick = contract.tick
        if contract.legs:
            bid = round(sum(r * p for _, r, p in self.leg_prices(contract, t, buy=False)), decimals(tick))
            ask = round(sum(r * p for _, r, p in self.leg_prices(contract, t, buy=True)), decimals(tick))
            mid = to_tick((bid + ask) / 2.0, tick)
            return Quote(last=mid, bid=bid, ask=ask, mid=mid, bid_size=10, ask_size=10, last_size=1)
        mid = self.raw(contract, t)
        spread = max(1, contract.spread_ticks) * tick
        bid = max(to_tick(mid - spread / 2.0, tick), tick)
        ask = to_tick(bid + spread, tick)
        last = min(max(to_tick(mid, tick), bid), ask)
        rng = random.Random(f"{self._seed}:{contract.conid}:{int(t)}")
        lot = 100 if contract.sec_type == "STK" else 1
        return Quote(
            last=last,
            bid=bid,
            ask=ask,
            mid=to_tick((bid + ask) / 2.0, tick),
            bid_size=rng.randint(1, 40) * lot,
            ask_size=rng.randint(1, 40) * lot,
            last_size=rng.randint(1, 10) * lot,
        )

    def day_stats(self, contract: Contract, t: float) -> DayStats:
        """Open, high, low, prior close and volume of the latest regular session up to `t`."""
        session: Session = contract.session
        day = session.last_open_day(t)
        open_ts, close_ts = session.rth_bounds(day)
        end = min(t, close_ts)
        samples = [self.raw(contract, open_ts)]
        step = 300.0
        ts = open_ts + step
        while ts < end:
            samples.append(self.raw(contract, ts))
            ts += step
        samples.append(self.raw(contract, end))
        prev_close = session.rth_bounds(session.previous_day(day))[1]
        fraction = (end - open_ts) / max(close_ts - open_ts, 1.0)
        day_factor = random.Random(f"{self._seed}:{contract.conid}:{day.isoformat()}").uniform(0.7, 1.3)
        tick = contract.tick
        return DayStats(
            open=to_tick(samples[0], tick),
            high=to_tick(max(samples), tick),
            low=to_tick(min(samples), tick),
            prior_close=to_tick(self.raw(contract, prev_close), tick),
            volume=round(contract.avg_volume * fraction * day_factor),
        )

    def bar_volume(self, contract: Contract, start: float, seconds: float) -> float:
        session_seconds = (contract.session.rth[1] - contract.session.rth[0]) * 60.0 or 86400.0
        rng = random.Random(f"{self._seed}:{contract.conid}:bar:{int(start)}")
        return contract.avg_volume * min(seconds / session_seconds, 25.0) * rng.uniform(0.6, 1.4)
