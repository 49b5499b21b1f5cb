"""Order questions ("order reply messages"): the confirmations IBKR asks for before it accepts an order.

A `QuestionRule` pairs a message id (o354, o163, ...) and its text with a predicate over an `OrderCheck`. When an
order is placed or modified, every rule whose predicate holds and whose id is not suppressed raises a question;
they are asked one at a time, each answered with `POST /iserver/reply/{id}`. The defaults come from
`data/questions.json`:

- o354: no market data stream for the contract in this session (no snapshot requested yet);
- o163: limit price more than 3 % away from the last price;
- o383: quantity above 500;
- o451: order value above 100,000 (in the contract's currency).

Pass `question_rules=[...]` to `Simulator` (or change `Simulator.question_rules`) to use others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _data
from ._universe import Contract


@dataclass(frozen=True)
class OrderCheck:
    """What a question rule may look at."""

    ticket: Mapping[str, Any]  # the order ticket as sent
    contract: Contract
    side: str  # BUY | SELL
    order_type: str
    quantity: float
    price: float | None  # limit (or stop) price, when the order has one
    last: float  # the contract's last price now
    has_market_data: bool  # a snapshot was requested for the contract in this session

    @property
    def description(self) -> str:
        """IBKR's wording of the order, e.g. `BUY 100 AAPL NASDAQ.NMS @ 165.0`."""
        text = f"{self.side} {self.quantity:g} {self.contract.description} {self.contract.listing_label}"
        return text + (f" @ {self.price}" if self.price is not None else "")

    @property
    def value(self) -> float:
        return self.quantity * (self.price if self.price is not None else self.last) * self.contract.multiplier


@dataclass(frozen=True)
class QuestionRule:
    message_id: str
    text: str  # may use {order} (the description) and {value} (the order value)
    applies: Callable[[OrderCheck], bool]

    def message(self, check: OrderCheck) -> str:
        return self.text.replace("{order}", check.description).replace("{value}", f"{check.value:,.2f}")


def _predicate(kind: str, threshold: float) -> Callable[[OrderCheck], bool]:
    if kind == "no_market_data":
        return lambda c: not c.has_market_data
    if kind == "price_deviation":
        return lambda c: c.price is not None and c.last > 0 and abs(c.price - c.last) / c.last > threshold
    if kind == "size_above":
        return lambda c: c.quantity > threshold
    if kind == "value_above":
        return lambda c: c.value > threshold
    raise ValueError(f"unknown question condition {kind!r} in data/questions.json")


def default_question_rules() -> list[QuestionRule]:
    """The default rules (o354, o163, o383, o451), read from `data/questions.json`."""
    rules = []
    for raw in _data.load("questions")["rules"]:
        rules.append(QuestionRule(raw["id"], raw["text"], _predicate(raw["when"], float(raw.get("threshold", 0)))))
    return rules
