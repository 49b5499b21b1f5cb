"""The simulated broker: orders, fills, positions and cash of each account.

Rules (deliberately simple and documented, so tests can rely on them):
- the market is always open for fills (trading hours only shape history bars and day statistics);
- market orders fill at once at the ask (buy) or bid (sell); limit orders fill when marketable (buy: ask <= limit,
  sell: bid >= limit) at that ask or bid; MIDPRICE fills at the midpoint when within its cap;
- stop orders wait as PreSubmitted until the last price reaches the stop, then fill like a market order (a stop
  limit becomes a working limit order);
- orders fill completely, never partially; IOC orders that do not fill at once are cancelled;
- a combo (conidex `{spread};;;{leg}/{ratio},...`) is priced as the net of its legs (bid: selling it, ask: buying
  it) and fills leg by leg at each leg's ask or bid, booking a position and a trade per leg;
- bracket children are held until their parent fills and then form an OCA group (one fill cancels the others),
  as do tickets sent with `isSingleGroup`; cancelling a parent cancels its children;
- a cancel is accepted as PendingCancel and becomes Cancelled on the next request;
- working orders are re-checked against the current price on every request (prices move with the clock, and
  `Simulator.set_price` pins one).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._prices import PriceModel, to_tick
from ._universe import Contract, Universe

WORKING = ("PreSubmitted", "Submitted")
_STOPS = ("STP", "STOP_LIMIT", "TRAIL")  # PreSubmitted until their stop is touched
FINAL = ("Filled", "Cancelled", "Inactive")


@dataclass
class SimOrder:
    """One order as the simulator tracks it (`Simulator.orders` returns copies)."""

    order_id: int
    account: str
    conid: int
    side: str  # BUY | SELL
    order_type: str  # MKT | LMT | STP | STOP_LIMIT | MIDPRICE | TRAIL
    quantity: float
    tif: str
    price: float | None = None  # limit price (cap for MIDPRICE)
    stop_price: float | None = None  # TRAIL: the stop as it has trailed so far
    trail_amount: float | None = None
    trail_type: str | None = None  # "amt" or "%"
    status: str = "PreSubmitted"
    coid: str | None = None
    parent_coid: str | None = None
    parent_order_id: int | None = None
    oca_group: str | None = None
    held: bool = False  # a bracket child waiting for its parent's fill
    triggered: bool = False
    outside_rth: bool = False
    filled: float = 0.0
    avg_fill_price: float | None = None
    created: float = 0.0
    last_execution: float | None = None
    ticket: dict[str, Any] = field(default_factory=dict)

    @property
    def remaining(self) -> float:
        return max(self.quantity - self.filled, 0.0)

    @property
    def working(self) -> bool:
        return self.status in WORKING


@dataclass
class Position:
    conid: int
    quantity: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0


@dataclass
class AccountBook:
    account_id: str
    cash: dict[str, float]
    positions: dict[int, Position] = field(default_factory=dict)


class Book:
    def __init__(
        self,
        universe: Universe,
        prices: PriceModel,
        account_ids: list[str],
        fixtures: Mapping[str, Any],
        rng: random.Random,
    ) -> None:
        self.universe = universe
        self.prices = prices
        self.fixtures = fixtures
        self.rng = rng
        self.base_currency = str(fixtures.get("base_currency", "USD"))
        self.accounts = {
            a: AccountBook(a, {k: float(v) for k, v in fixtures["starting_cash"].items()}) for a in account_ids
        }
        self.orders: dict[int, SimOrder] = {}
        self.trades: list[dict[str, Any]] = []
        self._next_id = rng.randrange(1_000_000_000, 1_900_000_000)

    # -- identifiers ----------------------------------------------------------------------------------------------

    def next_order_id(self) -> int:
        self._next_id += 1 + self.rng.randrange(3)
        return self._next_id

    # -- orders ---------------------------------------------------------------------------------------------------

    def add(self, order: SimOrder) -> None:
        self.orders[order.order_id] = order

    def children(self, order: SimOrder) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.parent_order_id == order.order_id]

    def cancel(self, order: SimOrder) -> None:
        if order.working:
            order.status = "PendingCancel"
        for child in self.children(order):
            if child.working:
                child.status = "PendingCancel"

    def match(self, now: float) -> None:
        """Settle pending cancels and fill whatever the current prices make fillable."""
        for order in self.orders.values():
            if order.status == "PendingCancel":
                order.status = "Cancelled"
        for _ in range(10):  # a fill can release bracket children; a few rounds settle everything
            changed = False
            for order in sorted(self.orders.values(), key=lambda o: o.order_id):
                if order.working and not order.held and self._try_fill(order, now):
                    changed = True
            if not changed:
                break

    def _try_fill(self, order: SimOrder, now: float) -> bool:
        contract = self.universe.get(order.conid)
        if contract is None:
            return False
        q = self.prices.quote(contract, now)
        buy = order.side == "BUY"
        price: float | None = None
        kind = order.order_type
        if kind == "TRAIL" and not order.triggered:
            order.stop_price = _trailed_stop(order, q.last)
        if kind in _STOPS and not order.triggered:
            stop = order.stop_price if order.stop_price is not None else order.price
            if stop is not None and ((buy and q.last >= stop) or (not buy and q.last <= stop)):
                order.triggered = True
                order.status = "Submitted"
        if kind == "MKT" or (kind in ("STP", "TRAIL") and order.triggered):
            price = q.ask if buy else q.bid
        elif kind == "LMT" or (kind == "STOP_LIMIT" and order.triggered):
            limit = order.price
            if limit is not None and ((buy and q.ask <= limit) or (not buy and q.bid >= limit)):
                price = q.ask if buy else q.bid
        elif kind == "MIDPRICE":
            cap = order.price
            if cap is None or (buy and q.mid <= cap) or (not buy and q.mid >= cap):
                price = q.mid
        if price is None:
            if order.tif == "IOC":
                order.status = "Cancelled"
                return True
            if order.status == "PreSubmitted" and kind not in _STOPS:
                order.status = "Submitted"
            return False
        self.fill(order, contract, price, now)
        return True

    def fill(self, order: SimOrder, contract: Contract, price: float, now: float) -> None:
        qty = order.remaining
        order.filled = order.quantity
        order.avg_fill_price = price
        order.status = "Filled"
        order.last_execution = now
        buy = order.side == "BUY"
        # A combo fills leg by leg, each at its own side of the market; positions and trades are per leg.
        legs = self.prices.leg_prices(contract, now, buy) if contract.legs else [(contract, 1, price)]
        for leg, ratio, leg_price in legs:
            leg_qty = qty * abs(ratio)
            commission = self.commission(leg, leg_qty, leg_price)
            signed = leg_qty if (ratio > 0) == buy else -leg_qty
            self._book_fill(order.account, leg, signed, leg_price, commission)
            record = self._trade_record(order, leg, leg_qty, leg_price, commission, now)
            if contract.legs:
                record["side"] = "B" if signed > 0 else "S"
            self.trades.append(record)
        for child in self.children(order):
            if child.held:
                child.held = False
                child.status = "PreSubmitted" if child.order_type in _STOPS else "Submitted"
        if order.oca_group:
            for other in self.orders.values():
                if other is not order and other.oca_group == order.oca_group and other.working:
                    other.status = "Cancelled"

    def commission(self, contract: Contract, qty: float, price: float) -> float:
        rules = self.fixtures["commission"].get(contract.sec_type) or self.fixtures["commission"]["STK"]
        value = qty * price * contract.multiplier
        amount = max(float(rules["minimum"]), float(rules["per_unit"]) * qty)
        if contract.sec_type == "CASH":
            amount = max(float(rules["minimum"]), float(rules["per_unit"]) * value)
        return round(min(amount, max(float(rules["max_fraction"]) * value, float(rules["minimum"]))), 2)

    def _book_fill(self, account_id: str, contract: Contract, signed: float, price: float, commission: float) -> None:
        book = self.accounts[account_id]
        ccy = contract.currency
        book.cash[ccy] = book.cash.get(ccy, 0.0) - commission
        if contract.sec_type == "CASH":
            base = contract.base_currency or contract.symbol.split(".")[0]
            book.cash[base] = book.cash.get(base, 0.0) + signed
            book.cash[ccy] -= signed * price
            return
        pos = book.positions.setdefault(contract.conid, Position(contract.conid))
        mult = contract.multiplier
        realized = 0.0
        if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
            total = abs(pos.quantity) + abs(signed)
            pos.avg_price = (abs(pos.quantity) * pos.avg_price + abs(signed) * price) / total
            pos.quantity += signed
        else:
            closed = min(abs(signed), abs(pos.quantity))
            direction = 1.0 if pos.quantity > 0 else -1.0
            realized = closed * (price - pos.avg_price) * direction * mult
            pos.realized += realized
            pos.quantity += signed
            if abs(pos.quantity) < 1e-12:
                pos.quantity = 0.0
            elif (pos.quantity > 0) != (direction > 0):  # flipped through zero
                pos.avg_price = price
        if contract.sec_type == "FUT":
            book.cash[ccy] += realized
        else:
            book.cash[ccy] -= signed * price * mult

    def _trade_record(
        self, order: SimOrder, contract: Contract, qty: float, price: float, commission: float, now: float
    ) -> dict[str, Any]:
        stamp = time.gmtime(now)
        side = "B" if order.side == "BUY" else "S"
        verb = "Bought" if side == "B" else "Sold"
        price_text = f"{price:g}"
        value = qty * price * contract.multiplier
        return {
            "execution_id": f"{self.rng.getrandbits(32):08x}.{int(now) & 0xFFFFFFFF:08x}.01.01",
            "symbol": contract.symbol,
            "supports_tax_opt": "1",
            "side": side,
            "order_description": f"{verb} {qty:g} @ {price_text} on {contract.execution_exchange}",
            "trade_time": time.strftime("%Y%m%d-%H:%M:%S", stamp),
            "trade_time_r": int(now * 1000),
            "size": qty,
            "price": price_text,
            "order_ref": order.coid,
            "submitter": "user1234",
            "exchange": contract.execution_exchange,
            "commission": f"{commission:.2f}",
            "net_amount": round(value if side == "S" else -value, 2) if contract.sec_type != "FUT" else 0.0,
            "account": order.account,
            "accountCode": order.account,
            "account_allocation_name": order.account,
            "company_name": contract.name,
            "contract_description_1": contract.description,
            "sec_type": contract.sec_type,
            "listing_exchange": contract.listing_label,
            "conid": contract.conid,
            "conidEx": str(contract.conid),
            "clearing_id": "IB",
            "clearing_name": "IB",
            "liquidation_trade": "0",
            "is_event_trading": "0",
            "order_id": order.order_id,
            "position": f"{self._held(order.account, contract.conid):g}",  # the position after this fill
        }

    def _held(self, account_id: str, conid: int) -> float:
        pos = self.accounts[account_id].positions.get(conid)
        return pos.quantity if pos is not None else 0.0

    # -- valuation ------------------------------------------------------------------------------------------------

    def fx(self, currency: str, now: float) -> float:
        """Value of one unit of `currency` in the base currency (live for pairs in the universe)."""
        if currency == self.base_currency:
            return 1.0
        for c in self.universe.all():
            if c.sec_type == "CASH" and c.base_currency == currency and c.currency == self.base_currency:
                return self.prices.raw(c, now)
        return float(self.fixtures["fx_to_base"].get(currency, 1.0))

    def mark(self, contract: Contract, now: float) -> float:
        return to_tick(self.prices.raw(contract, now), contract.tick)

    def open_positions(self, account_id: str) -> list[tuple[Position, Contract]]:
        book = self.accounts[account_id]
        out = []
        for pos in book.positions.values():
            contract = self.universe.get(pos.conid)
            if contract is not None and pos.quantity != 0:
                out.append((pos, contract))
        return out

    def totals(self, account_id: str, now: float) -> dict[str, float]:
        """Account figures in the base currency: cash, market values by kind, P&L, margins and net liquidation."""
        book = self.accounts[account_id]
        cash = sum(v * self.fx(k, now) for k, v in book.cash.items())
        stock = option = future = unrealized = gross = 0.0
        realized = sum(p.realized * self.fx(self._ccy(p.conid), now) for p in book.positions.values())
        for pos, contract in self.open_positions(account_id):
            rate = self.fx(contract.currency, now)
            mark = self.mark(contract, now)
            value = pos.quantity * mark * contract.multiplier * rate
            upnl = (mark - pos.avg_price) * pos.quantity * contract.multiplier * rate
            unrealized += upnl
            gross += abs(value)
            if contract.sec_type == "OPT":
                option += value
            elif contract.sec_type == "FUT":
                future += upnl
            else:
                stock += value
        margin = self.fixtures["margin"]
        net_liq = cash + stock + option + future
        initial = gross * float(margin["initial"])
        maintenance = gross * float(margin["maintenance"])
        available = net_liq - initial
        return {
            "cash": cash,
            "stock": stock,
            "option": option,
            "future": future,
            "unrealized": unrealized,
            "realized": realized,
            "gross": gross,
            "net_liq": net_liq,
            "initial": initial,
            "maintenance": maintenance,
            "available": available,
            "excess": net_liq - maintenance,
            "buying_power": max(available, 0.0) * float(margin["buying_power_factor"]),
        }

    def _ccy(self, conid: int) -> str:
        contract = self.universe.get(conid)
        return contract.currency if contract else self.base_currency


def _trailed_stop(order: SimOrder, last: float) -> float:
    """A trailing stop after seeing `last`: it keeps its distance below the best price since placement for a sell
    (above it for a buy) and never moves back. The simulator sees prices when it handles requests, so the best
    price is the best one it has seen."""
    assert order.trail_amount is not None
    offset = order.trail_amount if order.trail_type != "%" else last * order.trail_amount / 100
    if order.side == "BUY":
        return min(order.stop_price, last + offset) if order.stop_price is not None else last + offset
    return max(order.stop_price, last - offset) if order.stop_price is not None else last - offset
