"""Order placement overlay: order validation, client order ids and the question/reply loop.

Why hand-written: IBKR answers an order with confirmation questions that must be answered one at a time through
`/iserver/reply/{id}` before the order exists; a catalogue entry cannot express that loop. The raw requests are
the generated `_place_order`, `_modify_order` and `_whatif_order`.

Known questions: `QuestionType` below is the one list of the confirmation messages IBKR documents, each with its
stable message id and a phrase of its text. `answers` may name a question by `QuestionType`, by message id
(`"o354"`) or by a phrase of its text; ids are matched first, text second.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from .._client_base import GeneratedEndpoints
from .errors import (
    ApiConnectionError,
    ExternalBrokerError,
    IbkrError,
    OrderQuestionError,
    OrderStateUnknownError,
    RequestValidationError,
    ServerError,
)
from .result import Result

logger = logging.getLogger("ibkr_sdk")

MAX_REPLY_ROUNDS = 20
RESOLVE_ATTEMPTS = 3
RESOLVE_INTERVAL = 1.0
# Answers from a proxy or gateway that lost the backend's answer: the order may have been placed.
AMBIGUOUS_STATUSES = frozenset({502, 503, 504})


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


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def find_answer(question_text: str, message_ids: Sequence[str], answers: Answers) -> bool | None:
    """The caller's answer to one question: by message id first, then by a phrase of its text; None if none."""
    ids = set(message_ids)
    for key, value in answers.items():
        if isinstance(key, QuestionType):
            if key.message_id and key.message_id in ids:
                return bool(value)
        elif key in ids:
            return bool(value)
    text = _normalise(question_text)
    for key, value in answers.items():
        phrase = key.phrase if isinstance(key, QuestionType) else key
        if phrase and not (isinstance(key, str) and _ID_LIKE.fullmatch(key)) and _normalise(phrase) in text:
            return bool(value)
    return None


def _order_problem(order: Mapping[str, Any]) -> str | None:
    has_conid = order.get("conid") is not None
    has_conidex = order.get("conidex") is not None
    if has_conid == has_conidex:
        return "needs exactly one of conid or conidex"
    side = order.get("side")
    if not isinstance(side, str) or side.upper() not in SIDES:
        return f"side must be BUY or SELL, got {side!r}"
    order_type = order.get("orderType")
    if order_type not in ORDER_TYPES:
        return f"orderType must be one of {', '.join(sorted(ORDER_TYPES))}, got {order_type!r}"
    tif = order.get("tif")
    if tif not in TIFS:
        return f"tif must be one of {', '.join(sorted(TIFS))}, got {tif!r}"
    quantity = order.get("quantity")
    if order.get("cashQty") is None:
        if isinstance(quantity, bool) or not isinstance(quantity, (int, float)) or quantity <= 0:
            return f"quantity must be a number above 0, got {quantity!r}"
    if order_type in _NEEDS_PRICE and order.get("price") is None:
        return f"a {order_type} order needs a price"
    if order_type in _NEEDS_STOP and order.get("auxPrice") is None and order.get("price") is None:
        return f"a {order_type} order needs its trigger price (auxPrice, or price for a plain stop)"
    if order_type == "STOP_LIMIT" and order.get("auxPrice") is None:
        return "a STOP_LIMIT order needs auxPrice (the stop) as well as price (the limit)"
    if order_type in _NEEDS_TRAIL and (order.get("trailingAmt") is None or order.get("trailingType") is None):
        return f"a {order_type} order needs trailingAmt and trailingType"
    return None


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
        if isinstance(item, OrderRequest):
            order = item.to_wire()
        elif isinstance(item, Mapping):
            order = dict(item)
        else:
            raise RequestValidationError(method, param, f"item {index} must be an order dict or an OrderRequest")
        problem = _order_problem(order)
        if problem:
            where = f"order {index}" if len(items) > 1 else "the order"
            raise RequestValidationError(method, param, f"is invalid: {where} {problem}")
        if assign_coid and not order.get("cOID"):
            order["cOID"] = f"sdk-{uuid.uuid4().hex[:20]}"
        orders.append(order)
    return orders


def _questions(data: Any) -> list[dict[str, Any]]:
    items = data if isinstance(data, list) else [data]
    return [q for q in items if isinstance(q, dict) and "id" in q and "message" in q]


def _question_text(question: Mapping[str, Any]) -> str:
    message = question.get("message")
    if isinstance(message, list):
        return "\n".join(str(m) for m in message)
    return str(message)


class OrdersOverlay(GeneratedEndpoints):
    """Public order methods with the reference's signatures, wrapping the generated raw requests."""

    _order_locks: dict[str, threading.Lock]
    _order_locks_guard: threading.Lock
    auto_suppress: bool = False
    _suppressed_ids: set[str]

    def _suppress_preapproved(self, answers: Answers) -> None:
        """With `auto_suppress`, suppress (once per session) the questions the caller approves by id or type, so
        IBKR stops asking them; the complete list is resent whenever it grows, as IBKR replaces it each time."""
        ids = {k.message_id if isinstance(k, QuestionType) else k for k, v in answers.items() if v is True}
        ids = {i for i in ids if i and _ID_LIKE.fullmatch(i)}
        if ids - self._suppressed_ids:
            wanted = sorted(self._suppressed_ids | ids)
            self.suppress_messages(wanted)
            self._suppressed_ids.update(wanted)

    def _order_lock(self, account_id: str | None) -> threading.Lock:
        key = account_id or self.account_id or ""
        with self._order_locks_guard:
            lock = self._order_locks.get(key)
            if lock is None:
                lock = self._order_locks[key] = threading.Lock()
            return lock

    def _answer_questions(self, method: str, result: Result, answers: Answers) -> Result:
        """Answer every question IBKR asks, in turn, until the order is acknowledged (bounded)."""
        for _ in range(MAX_REPLY_ROUNDS):
            data = result.data
            if isinstance(data, dict) and data.get("error"):
                raise ExternalBrokerError(
                    str(data["error"]),
                    status_code=200,
                    method="POST",
                    path=str((result.request or {}).get("url", "")),
                    hint=f"IBKR refused the order placed by {method}().",
                )
            questions = _questions(data)
            if not questions:
                return result
            question = questions[0]
            text = _question_text(question)
            ids = [str(i) for i in question.get("messageIds") or []]
            answer = find_answer(text, ids, answers)
            if answer is not True:
                self.reply(str(question["id"]), False)
                reason = "No answer was given for IBKR's question" if answer is None else "The question was declined"
                raise OrderQuestionError(text, ids, reason, declined=True)
            result = self.reply(str(question["id"]), True)
        raise ExternalBrokerError(
            f"IBKR kept asking questions after {MAX_REPLY_ROUNDS} replies",
            method="POST",
            path="/iserver/reply",
            hint="Check the order with live_orders(); it may be pending.",
        )

    def place_order(
        self, order_request: OrderInput | Sequence[OrderInput], answers: Answers, account_id: str | None = None
    ) -> Result:
        """Place an order, a bracket or an OCA group, answering IBKR's confirmation questions from `answers`.

        Orders are checked before anything is sent (side, order type, tif, quantity, conid or conidex, prices).
        An order without `cOID` gets a unique one, so it can always be found again in `live_orders()`. One order
        exchange at a time runs per client and account; concurrent callers wait.

        Args:
            order_request: An order dict with IBKR's fields, an `OrderRequest`, or a list of them (bracket / OCA).
            answers: Approvals for confirmation questions, keyed by `QuestionType`, message id or text phrase.
            account_id: Account to trade in; the client's account when None.

        Raises:
            ValueError: an order is invalid (nothing is sent).
            OrderQuestionError: a question was not approved; it was declined on the server.
        """
        orders = prepare_orders("place_order", "order_request", order_request)
        with self._order_lock(account_id):
            if self.auto_suppress:
                self._suppress_preapproved(answers)
            try:
                result = self._place_order(orders=orders, account_id=account_id)
            except (ApiConnectionError, ServerError) as exc:
                if isinstance(exc, ApiConnectionError) and not exc.maybe_sent:
                    raise  # nothing reached the server: the order surely does not exist
                if isinstance(exc, ServerError) and exc.status_code not in AMBIGUOUS_STATUSES:
                    raise  # IBKR answered with an error of its own (e.g. 500 "query /accounts first"): refused
                return self._resolve_by_coid(str(orders[0]["cOID"]), exc)
            return self._answer_questions("place_order", result, answers)

    def _resolve_by_coid(self, coid: str, cause: ExternalBrokerError) -> Result:
        """After an ambiguous failure, look for the order among the live orders instead of sending it again."""
        logger.warning("order %s: %s; looking for it among the live orders", coid, cause)
        for attempt in range(RESOLVE_ATTEMPTS):
            if attempt:
                time.sleep(RESOLVE_INTERVAL)
            try:
                live = self.live_orders()
            except IbkrError as exc:
                logger.warning("order %s: live orders unavailable: %s", coid, exc)
                continue
            entries = live.data.get("orders") if isinstance(live.data, Mapping) else None
            for entry in entries or []:
                if isinstance(entry, Mapping) and entry.get("order_ref") == coid:
                    found = {"order_id": str(entry.get("orderId")), "order_status": entry.get("status"), "cOID": coid}
                    return live.copy(data=[found])
        raise OrderStateUnknownError(coid, str(cause)) from cause

    def modify_order(
        self, order_id: str, order_request: OrderInput, answers: Answers, account_id: str | None = None
    ) -> Result:
        """Change an open order: send the full ticket with the changed fields, answering questions from `answers`.

        Args:
            order_id: The order to change (from `live_orders()`).
            order_request: The complete order ticket as a dict or `OrderRequest`, with the new values.
            answers: Approvals for confirmation questions, as in `place_order`.
            account_id: Account of the order; the client's account when None.
        """
        if not isinstance(order_request, (Mapping, OrderRequest)):
            raise RequestValidationError("modify_order", "order_request", "must be one order dict or OrderRequest")
        order = order_request.to_wire() if isinstance(order_request, OrderRequest) else dict(order_request)
        problem = _order_problem(order)
        if problem:
            raise RequestValidationError("modify_order", "order_request", f"is invalid: the order {problem}")
        with self._order_lock(account_id):
            if self.auto_suppress:
                self._suppress_preapproved(answers)
            result = self._modify_order(order_id=order_id, order=order, account_id=account_id)
            return self._answer_questions("modify_order", result, answers)

    def whatif_order(self, order_request: OrderInput, account_id: str | None = None) -> Result:
        """Preview an order's commission and margin impact without placing it.

        Args:
            order_request: One order dict or `OrderRequest`.
            account_id: Account to preview for; None uses the client's account.
        """
        orders = prepare_orders("whatif_order", "order_request", order_request, assign_coid=False)
        return self._whatif_order(orders=orders, account_id=account_id)
