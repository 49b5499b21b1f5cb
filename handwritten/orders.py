"""Order placement overlay: order validation, client order ids and the question/reply loop.

Why hand-written: IBKR answers an order with confirmation questions that must be answered one at a time through
`/iserver/reply/{id}` before the order exists; a catalogue entry cannot express that loop. The raw requests are
the generated `_place_order`, `_modify_order` and `_whatif_order`.

Never twice: no order request (the order, a reply, a modification) is ever re-sent. A failure after which the order
may exist (timeout, broken connection, HTTP 5xx, an unreadable or unexpected 200) ends the flow; the account's order
lock is released, and the order is looked up by cOID in `live_orders()` snapshots shared by every thread (and,
through the coordination store, every process) reconciling on that server and account. It is returned when found;
otherwise `OrderStateUnknownError` carries the cOID. A failure before anything was sent, or a refusal by IBKR, says
the order was not placed.

Known questions: `QuestionType` below is the one list of the confirmation messages IBKR documents, each with its
stable message id and a phrase of its text. `answers` may name a question by `QuestionType`, by message id
(`"o354"`) or by a phrase of its text; ids are matched first, text second.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from .._client_base import GeneratedEndpoints
from .coordination import Backend, Lease
from .coordination.report import order_flow_key
from .endpoint import EndpointSpec
from .errors import (
    ApiConnectionError,
    ApiTimeoutError,
    CoordinationError,
    ExternalBrokerError,
    IbkrError,
    NotAuthenticatedError,
    OrderQuestionError,
    OrderRejectedError,
    OrderStateUnknownError,
    RateLimitedError,
    RequestValidationError,
    ServerError,
)
from .flow import Flow, SharedLock, Waiters, run
from .result import Result

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger("ibkr_sdk")

MAX_REPLY_ROUNDS = 20
RESOLVE_ATTEMPTS = 2  # looks at the live orders after an ambiguous failure, RESOLVE_INTERVAL apart (and paced)
RESOLVE_INTERVAL = 1.0


class QuestionType(str, Enum):
    """Confirmation questions IBKR may ask when an order is placed or modified.

    A member is a `str` whose value is a fragment of the question's text, the same value the peer library ibind
    gives it (so code reading `.value` or `str(member)` keeps working). Each member also carries IBKR's message id
    (`message_id`, empty when IBKR publishes none), the phrase this SDK matches the text on (`phrase`, empty when
    the text is not known well enough to match on) and what it is about (`description`). The README's "Order
    questions" table lists them all; a test keeps the two in step.
    """

    message_id: str
    phrase: str
    description: str

    def __new__(cls, text: str, message_id: str, phrase: str, description: str) -> QuestionType:
        member = str.__new__(cls, text)
        member._value_ = text
        member.message_id = message_id
        member.phrase = phrase
        member.description = description
        return member

    def __str__(self) -> str:
        return str(self.value)

    PRICE_PERCENTAGE_CONSTRAINT = (
        "price exceeds the Percentage constraint of 3%",
        "o163",
        "price exceeds the percentage constraint",
        "limit price far (more than a few percent) from the last price",
    )
    MISSING_MARKET_DATA = (
        "You are submitting an order without market data. We strongly recommend against this as it may result in "
        "erroneous and unexpected trades.",
        "o354",
        "without market data",
        "no market data subscription or snapshot for the contract",
    )
    TICK_SIZE_LIMIT = (
        "exceeds the Tick Size Limit of",
        "o382",
        "tick size limit",
        "a price that is not a multiple of the contract's tick size",
    )
    ORDER_SIZE_LIMIT = (
        "size exceeds the Size Limit of",
        "o383",
        "exceeds the size limit",
        "quantity above the account's order size limit",
    )
    TRIGGER_AND_FILL = (
        "This order will most likely trigger and fill immediately.",
        "o403",
        "trigger and fill immediately",
        "a stop or limit likely to execute immediately",
    )
    ORDER_VALUE_LIMIT = (
        "exceeds the Total Value Limit of",
        "o451",
        "total value limit",
        "order value above the account's total value limit",
    )
    MIXED_ALLOCATION = ("mixed allocation", "o2136", "mixed allocation", "an allocation mixing buy and sell sides")
    CROSS_SIDE_ORDER = ("cross side", "o2137", "cross side", "an order crossing one of your own opposite-side orders")
    FRACTIONS_OUTSIDE_RTH = (
        "fractional quantity outside regular trading hours",
        "o2165",
        "",
        "fractional quantity outside regular trading hours",
    )
    CALLED_BOND = ("called bond", "o10082", "called bond", "the bond has been called")
    SIZE_MODIFICATION_LIMIT = (
        "size modification exceeds the size modification limit",
        "o10138",
        "size modification exceeds the size modification limit",
        "a modification changing the size by more than allowed",
    )
    MARKET_ORDER_CONFIRMATION = (
        "A Market Order is an instruction to trade your order at any available price",
        "o10151",
        "",
        "risks of market orders",
    )
    STOP_VARIANT_ORDER_CONFIRMATION = (
        "A Stop Order - i.e. a Stop (Market) Order - is an instruction to buy or sell at the market price once your "
        'trigger ("stop") price is reached',
        "o10152",
        "",
        "risks of stop orders once they trigger",
    )
    MANDATORY_CAP_PRICE = (
        "To avoid trading at a price that is not consistent with a fair and orderly market",
        "o10153",
        "mandatory cap price",
        "IBKR may cap the price of a marketable order",
    )
    CASH_QUANTITY = (
        "Traders are responsible for understanding cash quantity details, which are provided on a best efforts "
        "basis only.",
        "o10164",
        "cash quantity details",
        "cash-quantity orders are filled on a best-efforts basis",
    )
    CASH_QUANTITY_ORDER = (
        "Orders that express size using a monetary value (cash quantity) are provided on a non-guaranteed basis.",
        "o10223",
        "cash quantity order confirmation",
        "confirmation of an order sized by cash amount",
    )
    CRYPTO_MARKET_ORDER = ("risks of market orders for crypto", "o10288", "", "risks of market orders for crypto")
    STOP_ORDER_RISKS = (
        "You are about to submit a stop order. Please be aware of the various stop order types available and the "
        "risks associated with each one.",
        "o10331",
        "about to submit a stop order",
        "general risks of stop order types",
    )
    OSL_CRYPTO_ORDER = (
        "crypto order routed through OSL Digital Securities",
        "o10332",
        "",
        "crypto order routed through OSL Digital Securities",
    )
    OPTION_EXERCISE_AT_THE_MONEY = (
        "exercising an option that is at the money",
        "o10333",
        "",
        "exercising an option that is at the money",
    )
    OMNIBUS_ACCOUNT = (
        "omnibus account",
        "o10334",
        "omnibus account",
        "order placed into the omnibus account, not the selected one",
    )
    RAPID_ENTRY_WINDOW = ("internal rapid order entry window", "o10335", "", "internal rapid order entry window")
    LIMITED_LIQUIDITY = (
        "limited liquidity",
        "o10336",
        "limited liquidity",
        "the security trades with limited liquidity",
    )
    MULTIPLE_ACCOUNTS = (
        "This order will be distributed over multiple accounts. We strongly suggest you familiarize yourself with "
        "our allocation facilities before submitting orders.",
        "p6",
        "distributed over multiple accounts",
        "an order allocated over several accounts",
    )
    DISRUPTIVE_ORDERS = (
        "If your order is not immediately executable, our systems may, depending on market conditions, reject your "
        "order",
        "p12",
        "price management algo",
        "offer of the price management algo for a possibly rejected limit price",
    )
    CLOSE_POSITION = (
        "Would you like to cancel all open orders and then place new closing order?",
        "",
        "cancel all open orders and then place new closing order",
        "cancel open orders before a closing order",
    )
    # Earlier names of the two questions above, kept as aliases (same member).
    MARKET_ORDER_RISKS = MARKET_ORDER_CONFIRMATION
    STOP_ORDER_ACTIVE_RISKS = STOP_VARIANT_ORDER_CONFIRMATION


def question_type_to_message_id(question_type: QuestionType) -> str:
    """IBKR's message id of a question (e.g. `"o354"`), as `suppress_messages` takes it.

    Raises:
        ValueError: IBKR publishes no id for this question (e.g. `CLOSE_POSITION`).
    """
    if not isinstance(question_type, QuestionType):
        raise ValueError(f"question_type_to_message_id(): expected a QuestionType, got {question_type!r}")
    if not question_type.message_id:
        raise ValueError(f"QuestionType.{question_type.name} has no message id IBKR publishes")
    return question_type.message_id


Answers = Mapping[QuestionType | str, bool]
"""Answers to confirmation questions: `QuestionType`, message id or text phrase → accept (True) or decline."""

ORDER_TYPES = frozenset(
    {"LMT", "MKT", "STP", "STOP_LIMIT", "MIDPRICE", "TRAIL", "TRAILLMT", "MOC", "LOC", "MIT", "LIT"}
)
SIDES = frozenset({"BUY", "SELL"})
TIFS = frozenset({"DAY", "IOC", "GTC", "OPG", "PAX", "OVT", "OND", "GTD"})
_NEEDS_PRICE = frozenset({"LMT", "STOP_LIMIT", "TRAILLMT", "LOC", "LIT"})
_NEEDS_STOP = frozenset({"STP", "STOP_LIMIT", "MIT", "LIT"})
_NEEDS_TRAIL = frozenset({"TRAIL", "TRAILLMT"})
_ID_LIKE = re.compile(r"[op][0-9]+")


@dataclass
class OrderRequest:
    """An order ticket with Python names; `to_wire()` gives IBKR's JSON fields. Unset (None) fields are not sent.

    Fields, their positional order and their defaults are those of the peer library's `OrderRequest`, so
    `OrderRequest(conid, side, quantity, order_type, acct_id, ...)` means the same in both. `tif` defaults to
    `"GTC"` as there: an order written for the peer keeps its time in force. The first five may be left out here
    (the order check names a missing one before anything is sent; no `acct_id` means the account the order is
    placed in). `custom_fields` holds further wire fields as IBKR spells them (`extra` is an older name for it).
    """

    conid: int | str | None = None
    side: str | None = None
    quantity: float | None = None
    order_type: str | None = None
    acct_id: str | None = None
    price: float | None = None
    conidex: str | None = None
    manual_indicator: bool | None = None
    ext_operator: str | None = None
    sec_type: str | None = None
    coid: str | None = None
    parent_id: str | None = None
    listing_exchange: str | None = None
    is_single_group: bool | None = None
    outside_rth: bool | None = None
    aux_price: float | None = None
    ticker: str | None = None
    tif: str | None = "GTC"
    trailing_amt: float | None = None
    trailing_type: str | None = None
    customer_account: str | None = None
    is_pro_customer: bool | None = None
    referrer: str | None = None
    cash_qty: float | None = None
    fx_qty: float | None = None
    use_adaptive: bool | None = None
    is_ccy_conv: bool | None = None
    allocation_method: str | None = None
    manual_order_time: int | None = None
    deactivated: bool | None = None
    strategy: str | None = None
    strategy_parameters: dict[str, Any] | None = None
    is_close: bool | None = None
    custom_fields: dict[str, Any] | None = None
    all_or_none: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _WIRE = {
        "order_type": "orderType",
        "acct_id": "acctId",
        "manual_indicator": "manualIndicator",
        "ext_operator": "extOperator",
        "sec_type": "secType",
        "coid": "cOID",
        "parent_id": "parentId",
        "listing_exchange": "listingExchange",
        "is_single_group": "isSingleGroup",
        "outside_rth": "outsideRTH",
        "aux_price": "auxPrice",
        "trailing_amt": "trailingAmt",
        "trailing_type": "trailingType",
        "customer_account": "customerAccount",
        "is_pro_customer": "isProCustomer",
        "cash_qty": "cashQty",
        "fx_qty": "fxQty",
        "use_adaptive": "useAdaptive",
        "is_ccy_conv": "isCcyConv",
        "allocation_method": "allocationMethod",
        "manual_order_time": "manualOrderTime",
        "strategy_parameters": "strategyParameters",
        "is_close": "isClose",
        "all_or_none": "allOrNone",
    }

    def to_dict(self) -> dict[str, Any]:
        """The set fields by their Python names (None left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, {})}

    def to_wire(self) -> dict[str, Any]:
        """The order as IBKR's JSON fields; `custom_fields` (and `extra`) are added as given."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("custom_fields", "extra"):
                continue
            value = getattr(self, f.name)
            if value is not None:
                out[self._WIRE.get(f.name, f.name)] = value
        out.update(self.custom_fields or {})
        out.update(self.extra)
        return out


OrderInput = Mapping[str, Any] | OrderRequest

# Every field of IBKR's order ticket (the official and legacy documents, plus `isClose`, which the gateway accepts):
# a key outside this set is refused, with the closest known field suggested (a typo like `pricee` is never sent).
KNOWN_ORDER_FIELDS = frozenset(
    {
        "acctId", "allOrNone", "allocationMethod", "auxPrice", "cOID", "cashQty", "conid", "conidex", "deactivated",
        "extOperator", "fxQty", "isCcyConv", "isClose", "isSingleGroup", "jsonPayload", "listingExchange",
        "manualIndicator", "orderType", "outsideRTH", "parentId", "price", "quantity", "referrer", "secType", "side",
        "strategy", "strategyParameters", "taxOptimizerId", "ticker", "tif", "trailingAmt", "trailingType",
        "useAdaptive",
    }
)  # fmt: skip
_PYTHON_NAMES = {python: wire for python, wire in OrderRequest._WIRE.items()}
_PRICE_FIELDS = ("price", "auxPrice")
_AMOUNT_FIELDS = ("quantity", "cashQty", "fxQty", "trailingAmt")
_COMBO = ";;;"  # conidex of a combo (spread) order: its net price may be zero or negative


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def find_answer(question_text: str, message_ids: Sequence[str], answers: Answers) -> bool | None:
    """The caller's answer to one question: by message id first, then by a phrase of its text; None if none."""
    ids = set(message_ids)
    for key, value in answers.items():
        if isinstance(key, QuestionType):
            if key.message_id and key.message_id in ids:
                return value is True
        elif key in ids:
            return value is True
    text = _normalise(question_text)
    for key, value in answers.items():
        phrase = key.phrase if isinstance(key, QuestionType) else key
        if phrase and not (isinstance(key, str) and _ID_LIKE.fullmatch(key)) and _normalise(phrase) in text:
            return value is True
    return None


def check_answers(method: str, answers: Any) -> dict[QuestionType | str, bool]:
    """`answers` as a dict, or a `RequestValidationError` before anything is sent.

    Keys are `QuestionType` members, message ids (`"o163"`) or phrases of a question's text; values are `True`
    (accept) or `False` (decline) and nothing else: a string such as `"no"` would read as an approval.
    """
    if not isinstance(answers, Mapping):
        if answers is None:
            hint = "; pass {} when no question should be approved"
        else:
            hint = ", e.g. {QuestionType.MISSING_MARKET_DATA: True} or {'o163': True}"
        raise RequestValidationError(
            method, "answers", f"must map questions to True or False, got {type(answers).__name__} {answers!r}{hint}"
        )
    checked: dict[QuestionType | str, bool] = {}
    for key, value in answers.items():
        if isinstance(key, str):
            if not key.strip():
                raise RequestValidationError(method, "answers", "has an empty key; name a question by id or phrase")
        elif isinstance(key, int) and not isinstance(key, bool):
            raise RequestValidationError(
                method, "answers", f"has the key {key!r}: give the message id as a string, e.g. 'o{key}'"
            )
        elif not isinstance(key, QuestionType):
            raise RequestValidationError(
                method,
                "answers",
                f"has the key {key!r}: keys must be QuestionType members, message ids or phrases of a question",
            )
        if not isinstance(value, bool):
            raise RequestValidationError(
                method, "answers", f"must map each question to True or False; {key!r} maps to {value!r}"
            )
        checked[key] = value
    return checked


def _number_problem(name: str, value: Any, *, positive: bool = True) -> str | None:
    wanted = "a number above 0" if positive else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return f"{name} must be {wanted}, got {type(value).__name__} {value!r}"
    if not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
    if positive and value <= 0:
        return f"{name} must be {wanted}, got {value!r}"
    return None


def _unknown_field(key: Any) -> str:
    if not isinstance(key, str):
        return f"has a field name that is not a string: {key!r}"
    if key in _PYTHON_NAMES:
        return f"has the field {key!r}: IBKR spells it {_PYTHON_NAMES[key]!r}"
    candidates = sorted(KNOWN_ORDER_FIELDS)
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    suggestion = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
    return f"has an unknown field {key!r}{suggestion}"


def _normalise_order(order: dict[str, Any]) -> None:
    """Normalise what has one unambiguous meaning: `side`, `orderType` and `tif` in upper case, decimals as floats."""
    for key in ("side", "orderType", "tif"):
        if isinstance(order.get(key), str):
            order[key] = order[key].strip().upper()
    for key, value in order.items():
        if isinstance(value, Decimal):
            order[key] = float(value)


def _order_problem(order: Mapping[str, Any]) -> str | None:
    for key in order:
        if key not in KNOWN_ORDER_FIELDS:
            return _unknown_field(key)
    has_conid = order.get("conid") is not None
    has_conidex = order.get("conidex") is not None
    if has_conid == has_conidex:
        return "needs exactly one of conid or conidex"
    side = order.get("side")
    if side not in SIDES:
        return f"side must be BUY or SELL, got {side!r}"
    order_type = order.get("orderType")
    if order_type not in ORDER_TYPES:
        return f"orderType must be one of {', '.join(sorted(ORDER_TYPES))}, got {order_type!r}"
    tif = order.get("tif")
    if tif not in TIFS:
        return f"tif must be one of {', '.join(sorted(TIFS))}, got {tif!r}"
    if tif == "GTD":
        return "tif GTD needs an expiry, and IBKR's order ticket has no field for one: use GTC (and cancel) or DAY"
    if order.get("cashQty") is None or order.get("quantity") is not None:
        problem = _number_problem("quantity", order.get("quantity"))
        if problem:
            return problem
    for key in _AMOUNT_FIELDS[1:]:
        if order.get(key) is not None:
            problem = _number_problem(key, order[key])
            if problem:
                return problem
    combo = _COMBO in str(order.get("conidex") or "")
    for key in _PRICE_FIELDS:
        if order.get(key) is not None:
            problem = _number_problem(key, order[key], positive=not combo)
            if problem:
                return problem
    if order_type in _NEEDS_PRICE and order.get("price") is None:
        return f"a {order_type} order needs a price"
    if order_type in _NEEDS_STOP and order.get("auxPrice") is None and order.get("price") is None:
        return f"a {order_type} order needs its trigger price (auxPrice, or price for a plain stop)"
    if order_type == "STOP_LIMIT" and order.get("auxPrice") is None:
        return "a STOP_LIMIT order needs auxPrice (the stop) as well as price (the limit)"
    if order_type in _NEEDS_TRAIL and (order.get("trailingAmt") is None or order.get("trailingType") is None):
        return f"a {order_type} order needs trailingAmt and trailingType"
    return None


def _checked_order(method: str, param: str, item: Any, where: str) -> dict[str, Any]:
    if isinstance(item, OrderRequest):
        order = item.to_wire()
    elif isinstance(item, Mapping):
        order = dict(item)
    else:
        raise RequestValidationError(method, param, f"{where} must be an order dict or an OrderRequest")
    _normalise_order(order)
    problem = _order_problem(order)
    if problem:
        raise RequestValidationError(method, param, f"is invalid: {where} {problem}")
    return order


def prepare_orders(
    method: str, param: str, order_request: OrderInput | Sequence[OrderInput], *, assign_coid: bool = True
) -> list[dict[str, Any]]:
    """Validate one order or a list (bracket / OCA group); with `assign_coid`, give each a client order id when it
    has none."""
    items: list[OrderInput]
    if isinstance(order_request, (Mapping, OrderRequest)):
        items = [order_request]
    elif isinstance(order_request, Sequence) and not isinstance(order_request, (str, bytes)):
        items = list(order_request)
    else:
        raise RequestValidationError(method, param, "must be an order dict, an OrderRequest or a list of them")
    if not items:
        raise RequestValidationError(method, param, "must not be an empty list")
    orders: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        order = _checked_order(method, param, item, f"order {index}" if len(items) > 1 else "the order")
        if assign_coid and not order.get("cOID"):
            order["cOID"] = f"sdk-{uuid.uuid4().hex[:20]}"
        orders.append(order)
    return orders


def _questions(data: Any) -> list[dict[str, Any]]:
    items = data if isinstance(data, list) else [data]
    return [q for q in items if isinstance(q, dict) and "id" in q and "message" in q]


def _question_text(question: Mapping[str, Any]) -> str:
    message = question.get("message")
    parts = message if isinstance(message, list) else [message]
    return " ".join(" ".join(str(m).split()) for m in parts if m is not None)


def _is_ack(data: Any) -> bool:
    items = data if isinstance(data, list) else [data]
    return bool(items) and all(isinstance(i, Mapping) and "order_id" in i for i in items)


def _lost_answer(exc: ExternalBrokerError) -> str | None:
    """Why the order may exist although the request failed; None when it surely does not (refused, or never sent)."""
    where = f"{exc.method} {exc.path}" if exc.method and exc.path else "the request"
    if exc.preflight:
        return None  # the preflight failed: the order request itself was not sent
    if isinstance(exc, ApiConnectionError):
        if not exc.maybe_sent:
            return None
        if isinstance(exc, ApiTimeoutError):
            return f"no answer to {where} within the timeout"
        return f"the connection broke during {where} ({exc.message})"
    if isinstance(exc, (RateLimitedError, NotAuthenticatedError)):
        return None  # refused before IBKR looked at the order
    if isinstance(exc, ServerError):
        return f"{where} answered HTTP {exc.status_code} ({exc.message})"
    if exc.status_code is None or 200 <= exc.status_code < 300:
        return f"the answer to {where} could not be read ({exc.message})"
    return None  # a 4xx: IBKR refused the request


def _name_method(exc: ExternalBrokerError, method: str, what: str) -> ExternalBrokerError:
    """Let an error say which SDK call failed and that nothing was placed."""
    text = str(exc)
    if not text.startswith(f"{method}()"):
        text = f"{method}(): {text}"
    if what not in text:
        text = f"{text} {what}"
    exc.args = (text,)
    return exc


@dataclass
class _Lost:
    """An order flow ended without knowing whether the order exists: it must be looked up, not sent again."""

    cause: str
    error: ExternalBrokerError
    when: float


# IBKR runs one question/reply flow at a time per brokerage session: every client talking to the same server and
# account takes the same lock: the threads and tasks of a process through `_ORDER_LOCKS`, the processes (and hosts)
# through a lease in the coordination store.
_ORDER_LOCKS: dict[tuple[str, str, str], _OrderLock] = {}
_LIVE_FEEDS: dict[tuple[str, str, str], _LiveOrdersFeed] = {}
_REGISTRY_LOCK = threading.Lock()
LEASE_SECONDS = 6.0
"""TTL of the order-flow lease where the store needs one (Redis): it is renewed while held, so a holder that dies
loses it within this many seconds (a local lock is freed by the kernel at once)."""
SNAPSHOT_TTL = 60.0
"""Seconds a live-orders snapshot stays in the coordination store for other processes' reconciliations."""
SNAPSHOT_MARGIN = 0.02
"""A snapshot from the store counts as taken this much later than it says (the store's clock is not ours)."""


def _lease_poll() -> float:
    """Seconds between tries for a lease another process holds: polled, and spread out."""
    return 0.005 + random.random() * 0.005


class _OrderLock(SharedLock):
    """One order flow at a time per server and account. The threads and tasks of this process queue on a local
    `SharedLock`; the one at its head takes the account's lease in the coordination store, waiting while another
    process holds it. An asyncio task waits without blocking its loop, and calls a store doing network I/O (`io`:
    Redis) from the coordination worker thread (`coordination.offloop`).

    Raises (on entry):
        CoordinationError: the store is unusable: nothing was sent.
    """

    def __init__(self, lease: Lease, io: bool = False) -> None:
        super().__init__()
        self._lease = lease
        self._io = io
        self._token: str | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        super().acquire()
        try:
            while (token := self._lease.try_acquire(LEASE_SECONDS)) is None:
                time.sleep(_lease_poll())  # another process's flow
        except BaseException:
            super().release()
            raise
        self._token = token
        return True

    async def acquire_async(self) -> bool:
        import asyncio

        from .coordination import offloop

        await super().acquire_async()
        try:
            try_lease = self._lease.try_acquire
            while (token := await offloop.call(self._io, try_lease, LEASE_SECONDS, undo=self._give_back)) is None:
                await asyncio.sleep(_lease_poll())  # another process's flow
        except BaseException:
            super().release()
            raise
        self._token = token
        return True

    def _give_back(self, token: str | None) -> None:
        if token is not None:
            self._lease.release(token)

    def _release_lease(self, token: str) -> None:
        try:
            self._lease.release(token)
        except CoordinationError as error:  # a lease that cannot be released lapses after its TTL
            logger.warning("releasing the order-flow lock failed: %s", error)

    def release(self) -> None:
        token, self._token = self._token, None
        if token is not None and self._io:
            from .coordination import offloop

            if offloop.on_loop():  # a task ending its flow: the store is called from the worker, not the loop
                done = offloop.submit(self._release_lease, token)
                done.add_done_callback(lambda _: SharedLock.release(self))
                return
        try:
            if token is not None:
                self._release_lease(token)
        finally:
            super().release()


class _StoredSnapshots:
    """The live-orders snapshot in the coordination store, for the reconciliations of other processes, and a lease
    so that one process at a time fetches a new one. `io`: the store's calls do network I/O (an asyncio caller
    makes them from the coordination worker thread)."""

    def __init__(self, backend: Backend, key: str) -> None:
        self._backend = backend
        self._key = key
        self.io = backend.io
        self.fetch_lease = backend.lease(key + ":fetch")

    def put(self, value: Result, dated: float) -> None:
        if self.io:
            from .coordination import offloop

            if offloop.on_loop():
                offloop.submit(self._put, value, dated)  # nobody waits for it
                return
        self._put(value, dated)

    def _put(self, value: Result, dated: float) -> None:
        try:
            data = json.dumps({"data": value.data, "request": value.request, "endpoint": value.endpoint}).encode()
            self._backend.put(self._key, data, SNAPSHOT_TTL, max(0.0, time.monotonic() - dated))
        except (CoordinationError, TypeError, ValueError) as exc:
            logger.debug("live orders snapshot not shared: %s", exc)

    def get(self) -> tuple[Result, float] | None:
        try:
            found = self._backend.get(self._key)
        except CoordinationError as exc:
            logger.debug("shared live orders snapshot unavailable: %s", exc)
            return None
        if found is None:
            return None
        raw, age = found
        try:
            item = json.loads(raw)
            value = Result(data=item["data"], request=item.get("request"), endpoint=item.get("endpoint"))
        except (ValueError, KeyError, TypeError):
            return None
        return value, time.monotonic() - age - SNAPSHOT_MARGIN

    def take_fetch_lease(self) -> str | None:
        """A token when this process may fetch a snapshot now; None while another process fetches one; "" when
        the store cannot tell (fetch anyway)."""
        try:
            return self.fetch_lease.try_acquire(30.0)
        except CoordinationError as exc:
            logger.debug("live orders fetch lease unavailable: %s", exc)
            return ""

    def give_back(self, token: str | None) -> None:
        if token:
            try:
                self.fetch_lease.release(token)
            except CoordinationError:
                pass  # it lapses


class _LiveOrdersFeed:
    """The latest full `live_orders` snapshot of one server and account, shared by every thread and task
    reconciling an order (the endpoint is paced at 1 per 5 s), and through the coordination store by other
    processes.

    A snapshot is dated when its request left the pacer (it reached the server later, so it shows every order
    booked before that moment). A caller gets the first snapshot dated after `not_before`: one taken by another
    reconciliation (of this process or another), or by the application's own `live_orders()` call, or else one it
    requests itself; while a request is under way, the others wait for it instead of sending their own.
    """

    def __init__(self, stored: _StoredSnapshots | None = None) -> None:
        self._cond = threading.Condition()
        self._waiters = Waiters()
        self._busy = False
        self._dated = -math.inf
        self._value: Result | None = None
        self._failed_at = -math.inf
        self._failure = ""
        self._stored = stored
        self._tasks: set[asyncio.Future[None]] = set()
        self.fetches = 0  # live_orders requests made for reconciliations (diagnostics and benchmarks)

    def offer(self, value: Result, dated: float, share: bool = True) -> None:
        """A full live orders snapshot whose request left the client at `dated` (monotonic seconds)."""
        with self._cond:
            newer = dated > self._dated
            if newer:
                self._dated, self._value = dated, value
            self._cond.notify_all()
        self._waiters.notify_all()
        if newer and share and self._stored is not None:
            self._stored.put(value, dated)

    def _poll(self, not_before: float) -> tuple[bool, Result | None, str, bool]:
        """Under the lock: (answered, snapshot, failure, this caller starts a fetch)."""
        if self._dated >= not_before:
            return True, self._value, "", False
        if self._failed_at >= not_before:
            return True, None, self._failure, False
        start = not self._busy
        self._busy = True
        return False, None, "", start

    def _took_stored(self, found: tuple[Result, float] | None, not_before: float, start: bool) -> bool:
        """A snapshot from the store (another process's) that fits was taken."""
        if found is None or found[1] < not_before:
            return False
        self.offer(found[0], found[1], share=False)
        if start:
            with self._cond:
                self._busy = False
        return True

    def snapshot(self, not_before: float, fetch: Callable[[], object]) -> tuple[Result | None, str]:
        """The first snapshot dated after `not_before`, and "" - or None and why there is none.

        When no request is on its way, `fetch` runs in a helper thread (its answer reaches `offer`); the caller
        returns with the first fitting snapshot, whoever's request brought it.
        """
        while True:
            with self._cond:
                answered, value, failure, start = self._poll(not_before)
            if answered:
                return value, failure
            if self._stored is not None and self._took_stored(self._stored.get(), not_before, start):
                continue
            if start:
                threading.Thread(target=self._fetch, args=(fetch,), name="ibkr-sdk-live-orders", daemon=True).start()
            with self._cond:
                if self._dated < not_before and self._failed_at < not_before:
                    self._cond.wait(timeout=1.0 if self._stored is None else 0.05)

    async def snapshot_async(
        self, not_before: float, fetch: Callable[[], Awaitable[object]]
    ) -> tuple[Result | None, str]:
        """`snapshot` for an asyncio task: the fetch is a task of the running loop, and the wait does not block."""
        import asyncio

        from .coordination import offloop

        while True:
            with self._cond:
                answered, value, failure, start = self._poll(not_before)
            if answered:
                return value, failure
            stored = self._stored
            if stored is not None and self._took_stored(await offloop.call(stored.io, stored.get), not_before, start):
                continue
            if start:
                task = asyncio.ensure_future(self._fetch_async(fetch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await self._waiters.wait(1.0 if stored is None else 0.05)

    def _fetch(self, fetch: Callable[[], object]) -> None:
        asked = time.monotonic()
        failure = "the request did not finish"
        token: str | None = None
        fetched = False
        try:
            if self._stored is not None:
                token = self._stored.take_fetch_lease()
                if token is None:  # another process is fetching one: its snapshot will reach the store
                    failure = ""
                    return
            fetched = True
            fetch()
            failure = ""
        except Exception as exc:  # reported to the waiting callers, who raise OrderStateUnknownError
            failure = str(exc)
        finally:
            if token and self._stored is not None:
                self._stored.give_back(token)
            self._fetched(asked, failure, fetched)

    async def _fetch_async(self, fetch: Callable[[], Awaitable[object]]) -> None:
        from .coordination import offloop

        asked = time.monotonic()
        failure = "the request did not finish"
        token: str | None = None
        fetched = False
        stored = self._stored
        try:
            if stored is not None:
                token = await offloop.call(stored.io, stored.take_fetch_lease, undo=stored.give_back)
                if token is None:  # another process is fetching one: its snapshot will reach the store
                    failure = ""
                    return
            fetched = True
            await fetch()
            failure = ""
        except Exception as exc:  # reported to the waiting callers, who raise OrderStateUnknownError
            failure = str(exc)
        finally:
            if token and stored is not None:
                if stored.io:
                    offloop.submit(stored.give_back, token)
                else:
                    stored.give_back(token)
            self._fetched(asked, failure, fetched)

    def _fetched(self, asked: float, failure: str, fetched: bool) -> None:
        with self._cond:
            self._busy = False
            if fetched:
                self.fetches += 1
            if failure:
                self._failed_at, self._failure = asked, failure
            self._cond.notify_all()
        self._waiters.notify_all()


def _shared(registry: dict[tuple[str, str, str], Any], key: tuple[str, str, str], make: Callable[[], Any]) -> Any:
    with _REGISTRY_LOCK:
        item = registry.get(key)
        if item is None:
            item = registry[key] = make()
        return item


def _live_entries(live: Result | None) -> list[Mapping[str, Any]]:
    entries = live.data.get("orders") if live is not None and isinstance(live.data, Mapping) else None
    return [e for e in entries or [] if isinstance(e, Mapping)]


def _same_number(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(str(a).replace(",", "")), float(b), rel_tol=1e-9, abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


def _shows_modification(entry: Mapping[str, Any], order: Mapping[str, Any]) -> bool:
    """True when a live order entry carries every price and size the modification asked for."""
    pairs = (("quantity", "totalSize"), ("price", "price"), ("auxPrice", "auxPrice"))
    compared = False
    for ticket_key, entry_key in pairs:
        if order.get(ticket_key) is None:
            continue
        if not _same_number(entry.get(entry_key), order[ticket_key]):
            return False
        compared = True
    return compared


def order_key(api: Any, account_id: str | None) -> tuple[str, str, str]:
    backend: Backend = api._coordination
    return (api._transport.base_url.lower(), account_id or api.account_id or "", f"{backend.name}:{backend.store}")


def store_key(api: Any, account_id: str | None, what: str) -> str:
    """The key of this server and account in the coordination store (host:port, then the account)."""
    account = account_id or api.account_id or ""
    if what == "orders":
        return order_flow_key(api._transport.address, account)
    return f"{api._transport.address.lower()}:{what}:{account}"


def order_lock(api: Any, account_id: str | None) -> _OrderLock:
    """IBKR runs one question/reply flow per brokerage session: one lock per server and account for the threads
    and asyncio tasks of the process, holding the account's lease in the coordination store for the others.

    Raises:
        CoordinationError: the store cannot be used.
    """
    backend: Backend = api._coordination
    key = order_key(api, account_id)
    lock: _OrderLock = _shared(
        _ORDER_LOCKS, key, lambda: _OrderLock(backend.lease(store_key(api, account_id, "orders")), backend.io)
    )
    return lock


def live_feed(api: Any, account_id: str | None) -> _LiveOrdersFeed:
    backend: Backend = api._coordination

    def make() -> _LiveOrdersFeed:
        shared = backend.name != "process"
        return _LiveOrdersFeed(_StoredSnapshots(backend, store_key(api, account_id, "live_orders")) if shared else None)

    feed: _LiveOrdersFeed = _shared(_LIVE_FEEDS, order_key(api, account_id), make)
    return feed


def feeds_reconciliation(spec: EndpointSpec, args: Mapping[str, Any]) -> bool:
    """A full `live_orders()` answer (the application's own included) also serves reconciliations."""
    return spec.name == "live_orders" and not args.get("filters") and not args.get("force")


def offer_live_orders(api: Any, args: Mapping[str, Any], before: float, result: Result) -> None:
    granted = api._transport.last_start()
    dated = granted if granted is not None and granted >= before else before
    live_feed(api, args.get("account_id")).offer(result, dated)


def suppress_flow(api: Any, answers: Answers) -> Flow[None]:
    """With `auto_suppress`, suppress (once per session) the questions the caller approves by id or type, so IBKR
    stops asking them; the complete list is resent whenever it grows, as IBKR replaces it each time."""
    ids = {k.message_id if isinstance(k, QuestionType) else k for k, v in answers.items() if v is True}
    ids = {i for i in ids if i and _ID_LIKE.fullmatch(i)}
    if ids - api._suppressed_ids:
        wanted = sorted(api._suppressed_ids | ids)
        yield api.suppress_messages(wanted)
        api._suppressed_ids.update(wanted)


def _send_order_request_flow(method: str, send: Callable[[], Any]) -> Flow[Result | _Lost]:
    try:
        result: Result = yield send()
        return result
    except CoordinationError as exc:  # raised by the pacer before the request went out
        raise CoordinationError(
            f"{method}(): {exc}. The request was not sent; the order was not placed.", store=exc.store
        ) from exc
    except ExternalBrokerError as exc:
        cause = _lost_answer(exc)
        if cause is None:
            raise _name_method(exc, method, "The order was not placed.") from None
        return _Lost(cause, exc, time.monotonic())


def _answer_questions_flow(api: Any, method: str, result: Result, answers: Answers) -> Flow[Result | _Lost]:
    """Answer every question IBKR asks, in turn, until the order is acknowledged (bounded)."""
    for _ in range(MAX_REPLY_ROUNDS):
        data = result.data
        if isinstance(data, Mapping) and data.get("error"):
            raise OrderRejectedError(method, str(data["error"]))
        if _is_ack(data):
            return result
        questions = _questions(data)
        if not questions and api._transport.stand_in:
            # A dry run against a patched `requests`: nothing reached IBKR, so there is nothing to look up;
            # the scripted final answer is the outcome, as with the peer.
            return result
        if not questions:
            shown = repr(data)
            shown = shown if len(shown) <= 200 else shown[:197] + "..."
            error = ExternalBrokerError(f"unexpected answer {shown}", status_code=200)
            return _Lost(f"IBKR's answer was neither a question nor an acknowledgement: {shown}", error, 0.0)
        question = questions[0]
        text = _question_text(question)
        ids = [str(i) for i in question.get("messageIds") or []]
        answer = find_answer(text, ids, answers)
        if answer is not True:
            declined = True
            try:
                yield api.reply(str(question["id"]), False)
            except IbkrError as exc:  # the question stays open; the next order invalidates it
                logger.warning("%s(): declining question %s failed: %s", method, ids, exc)
                declined = False
            reason = "No answer was given for IBKR's question" if answer is None else "The question was declined"
            raise OrderQuestionError(text, ids, reason, declined=declined)
        reply_id = str(question["id"])
        sent = yield from _send_order_request_flow(method, functools.partial(api.reply, reply_id, True))
        if isinstance(sent, _Lost):
            return sent
        result = sent
    raise OrderRejectedError(method, f"IBKR kept asking questions after {MAX_REPLY_ROUNDS} replies")


class OrderAbandoned(Exception):
    """The caller went away (its asyncio task was cancelled) before the order request was sent: nothing is sent."""


def order_flow(
    api: Any,
    method: str,
    account_id: str | None,
    answers: Answers,
    send: Callable[[], Any],
    abandoned: Callable[[], bool] | None = None,
) -> Flow[Result | _Lost]:
    """The order request and its questions, under the account's order lock (shared with every process of the
    coordination store); reconciliation happens after it."""
    try:
        lock = order_lock(api, account_id)
        yield api._acquire(lock)
    except CoordinationError as exc:
        raise CoordinationError(
            f"{method}(): the order flow cannot be coordinated with other processes: {exc}. Nothing was sent.",
            store=exc.store,
        ) from exc
    try:
        with api._transport.pacer.strict():  # an order is never paced by this process alone
            if api.auto_suppress:
                yield from suppress_flow(api, answers)
            if abandoned is not None and abandoned():
                raise OrderAbandoned(
                    f"{method}(): the caller was cancelled before the order was sent; nothing was sent"
                )
            sent = yield from _send_order_request_flow(method, send)
            if isinstance(sent, _Lost):
                return sent
            outcome = yield from _answer_questions_flow(api, method, sent, answers)
    finally:
        lock.release()
    if isinstance(outcome, _Lost) and not outcome.when:
        outcome.when = time.monotonic()
    return outcome


def _snapshot_flow(api: Any, lost: _Lost, account_id: str | None, attempt: int) -> Flow[Result | None]:
    """The live orders, dated after the failure (attempt 0) or after a further `RESOLVE_INTERVAL`."""
    not_before = lost.when
    if attempt:
        yield api._sleep(RESOLVE_INTERVAL)
        not_before = time.monotonic()
    live, error = yield api._live_snapshot(live_feed(api, account_id), not_before, account_id)
    if live is None:
        logger.warning("live orders unavailable: %s", error)
    result: Result | None = live
    return result


def resolve_by_coid_flow(api: Any, coids: list[str], lost: _Lost, account_id: str | None) -> Flow[Result]:
    """After an ambiguous failure, look for the order among the live orders instead of sending it again."""
    logger.warning("order %s: %s; looking for it among the live orders", coids[0], lost.cause)
    for attempt in range(RESOLVE_ATTEMPTS):
        live = yield from _snapshot_flow(api, lost, account_id, attempt)
        if live is None:
            continue
        by_coid = {str(e.get("order_ref")): e for e in _live_entries(live) if e.get("order_ref") is not None}
        if coids[0] in by_coid:
            found = [
                {"order_id": str(by_coid[c].get("orderId")), "order_status": by_coid[c].get("status"), "cOID": c}
                for c in coids
                if c in by_coid
            ]
            logger.info("order %s found: order id %s", coids[0], found[0]["order_id"])
            return live.copy(data=found)
    raise OrderStateUnknownError(coids[0], lost.cause) from lost.error


def resolve_modification_flow(
    api: Any, order_id: str, order: Mapping[str, Any], lost: _Lost, account_id: str | None
) -> Flow[Result]:
    logger.warning("modification of order %s: %s; looking at the live orders", order_id, lost.cause)
    coid: str | None = str(order["cOID"]) if order.get("cOID") else None
    for attempt in range(RESOLVE_ATTEMPTS):
        live = yield from _snapshot_flow(api, lost, account_id, attempt)
        if live is None:
            continue
        for entry in _live_entries(live):
            if str(entry.get("orderId")) != order_id:
                continue
            if entry.get("order_ref") is not None:
                coid = str(entry["order_ref"])
            if _shows_modification(entry, order):
                found = {"order_id": order_id, "order_status": entry.get("status"), "cOID": coid}
                return live.copy(data=[found])
    raise OrderStateUnknownError(coid, lost.cause, order_id=order_id) from lost.error


def place_order_flow(
    api: Any,
    orders: list[dict[str, Any]],
    answers: Answers,
    account_id: str | None,
    abandoned: Callable[[], bool] | None = None,
) -> Flow[Result]:
    """Orders already checked (`prepare_orders`): send, answer, and reconcile by cOID when the answer is lost."""
    outcome = yield from order_flow(
        api,
        "place_order",
        account_id,
        answers,
        lambda: api._place_order(orders=orders, account_id=account_id),
        abandoned,
    )
    if isinstance(outcome, _Lost):
        found: Result = yield from resolve_by_coid_flow(api, [str(o["cOID"]) for o in orders], outcome, account_id)
        return found
    return outcome


def checked_modification(order_request: Any) -> dict[str, Any]:
    if not isinstance(order_request, (Mapping, OrderRequest)):
        raise RequestValidationError("modify_order", "order_request", "must be one order dict or OrderRequest")
    return _checked_order("modify_order", "order_request", order_request, "the order")


def modify_order_flow(
    api: Any,
    order_id: str,
    order: dict[str, Any],
    answers: Answers,
    account_id: str | None,
    abandoned: Callable[[], bool] | None = None,
) -> Flow[Result]:
    outcome = yield from order_flow(
        api,
        "modify_order",
        account_id,
        answers,
        lambda: api._modify_order(order_id=order_id, order=order, account_id=account_id),
        abandoned,
    )
    if isinstance(outcome, _Lost):
        found: Result = yield from resolve_modification_flow(api, str(order_id), order, outcome, account_id)
        return found
    return outcome


def cancel_order_flow(api: Any, order_id: str, account_id: str | None) -> Flow[Result]:
    result: Result = yield api._cancel_order(order_id=order_id, account_id=account_id)
    if isinstance(result.data, Mapping) and result.data.get("error"):
        raise OrderRejectedError("cancel_order", str(result.data["error"]), subject=f"order {order_id}")
    return result


class OrdersOverlay(GeneratedEndpoints):
    """Public order methods with the reference's signatures, wrapping the generated raw requests."""

    auto_suppress: bool = False
    _suppressed_ids: set[str]
    _coordination: Backend

    def _order_lock(self, account_id: str | None) -> _OrderLock:
        return order_lock(self, account_id)

    def _live_feed(self, account_id: str | None) -> _LiveOrdersFeed:
        return live_feed(self, account_id)

    def _call(self, spec: EndpointSpec, args: Mapping[str, Any], *, method_name: str | None = None) -> Result:
        """Every full `live_orders()` answer, the application's own included, also serves reconciliations."""
        if not feeds_reconciliation(spec, args):
            return super()._call(spec, args, method_name=method_name)
        before = time.monotonic()
        result = super()._call(spec, args, method_name=method_name)
        offer_live_orders(self, args, before, result)
        return result

    def _live_snapshot(
        self, feed: _LiveOrdersFeed, not_before: float, account_id: str | None
    ) -> tuple[Result | None, str]:
        return feed.snapshot(not_before, lambda: self.live_orders(account_id=account_id))

    def place_order(
        self, order_request: OrderInput | Sequence[OrderInput], answers: Answers, account_id: str | None = None
    ) -> Result:
        """Place an order, a bracket or an OCA group, answering IBKR's confirmation questions from `answers`.

        Orders are checked before anything is sent: known fields only (a typo is refused with the close field
        suggested), side, order type, tif, conid or conidex, and every quantity and price a finite number above 0
        (a combo's price may be zero or negative). `side`, `orderType` and `tif` are upper-cased, the only
        normalisation. An order without `cOID` gets a unique one, so it can always be found again in
        `live_orders()`. One order exchange at a time runs per server and account among every thread and process
        sharing the coordination store (IBKR allows one question/reply flow per session); the others wait.

        Never sent twice: when an answer is lost (timeout, broken connection, HTTP 5xx, unreadable answer) on the
        order request or any reply, the order is looked up by cOID in `live_orders()` and returned if found;
        otherwise `OrderStateUnknownError` carries the cOID.

        Args:
            order_request: An order dict with IBKR's fields, an `OrderRequest`, or a list of them (bracket / OCA).
            answers: Approvals for confirmation questions: `QuestionType`, message id or text phrase → True or
                False (`{}` approves none).
            account_id: Account to trade in; the client's account when None.

        Raises:
            ValueError: an order or `answers` is invalid (nothing is sent).
            OrderQuestionError: a question was not approved; it was declined on the server.
            OrderRejectedError: IBKR refused the order; it was not placed.
            OrderStateUnknownError: the order may exist and was not found; check its cOID before sending again.
            ApiConnectionError: the gateway could not be reached; nothing was sent (`maybe_sent` is False).
            CoordinationError: the coordination store shared with other processes is unusable; nothing was sent
                (orders never fall back to per-process coordination).
        """
        checked = check_answers("place_order", answers)
        orders = prepare_orders("place_order", "order_request", order_request)
        return run(place_order_flow(self, orders, checked, account_id))

    def modify_order(
        self, order_id: str, order_request: OrderInput, answers: Answers, account_id: str | None = None
    ) -> Result:
        """Change an open order: send the full ticket with the changed fields, answering questions from `answers`.

        The ticket is checked as in `place_order`. When an answer is lost, the modification is not sent again:
        the order is looked up in `live_orders()` and returned when it shows the new size and prices; otherwise
        `OrderStateUnknownError` names the order.

        Args:
            order_id: The order to change (from `live_orders()`).
            order_request: The complete order ticket as a dict or `OrderRequest`, with the new values.
            answers: Approvals for confirmation questions, as in `place_order`.
            account_id: Account of the order; the client's account when None.
        """
        checked = check_answers("modify_order", answers)
        order = checked_modification(order_request)
        return run(modify_order_flow(self, order_id, order, checked, account_id))

    def cancel_order(self, order_id: str, account_id: str | None = None) -> Result:
        """Request the cancellation of an open order; order id -1 cancels all open orders.

        The answer only confirms that the request was accepted; check `live_orders` or `order_status` to see the
        order actually cancelled.

        Args:
            order_id: IBKR order id to cancel, or -1 for all open orders.
            account_id: Account (or FA group) holding the order; the client's default account when None.

        Raises:
            OrderRejectedError: IBKR refused the cancellation (e.g. an unknown or finished order).
        """
        return run(cancel_order_flow(self, order_id, account_id))

    def whatif_order(self, order_request: OrderInput, account_id: str | None = None) -> Result:
        """Preview an order's commission and margin impact without placing it.

        Args:
            order_request: One order dict or `OrderRequest`.
            account_id: Account to preview for; None uses the client's account.
        """
        orders = prepare_orders("whatif_order", "order_request", order_request, assign_coid=False)
        return self._whatif_order(orders=orders, account_id=account_id)
