"""Events the streaming client delivers to its sink: connection lifecycle, subscription status and gateway frames.

Names, fields and constructors follow the peer library's `ibind.events`, so code that matches on event types or
reads their fields runs unchanged. The classes are slotted dataclasses rather than validated models: one event is
built per frame, and at thousands of frames per second the construction cost matters.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from ._state import WsState

if TYPE_CHECKING:
    from .quotes import Quote
    from .subscriptions import BindingStatus, Subscription

_now = time.time

__all__ = [
    "AccountLedger",
    "AccountSummary",
    "AccountUpdate",
    "AuthenticationStatus",
    "Bulletin",
    "GenericIbkrEvent",
    "IbkrError",
    "IbkrTopicEvent",
    "LifecycleEvent",
    "MarketData",
    "MarketHistory",
    "Notification",
    "Orders",
    "Pnl",
    "PriceLadder",
    "ServerId",
    "SessionChanged",
    "SubscriptionUpdated",
    "System",
    "Trades",
    "Unsubscription",
    "WaitingForSession",
    "WsAuthenticated",
    "WsClose",
    "WsDegraded",
    "WsError",
    "WsEvent",
    "WsOpen",
    "WsReady",
    "WsStarting",
    "WsStopped",
    "WsStopping",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class WsEvent:
    """Base of every event: `received_at` is the local time the frame (or the state change) was seen."""

    received_at: datetime = field(default_factory=datetime.now, compare=False)

    def model_dump(self) -> dict[str, Any]:
        """The event's fields as a dict (the peer's events are pydantic models; this keeps `model_dump()` working)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# -- lifecycle ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleEvent(WsEvent):
    """A change of the connection state."""

    previous_state: WsState
    current_state: WsState


@dataclass(frozen=True, slots=True, kw_only=True)
class WsStarting(LifecycleEvent):
    """`start()` was called: the client begins connecting."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WsStopping(LifecycleEvent):
    """`shutdown()` was called."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WsStopped(LifecycleEvent):
    """Every thread of the client has ended."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WsOpen(LifecycleEvent):
    """The socket is open; the gateway has not yet said the session is ready."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WsAuthenticated(LifecycleEvent):
    """The gateway reported an authenticated session on this socket."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WsDegraded(LifecycleEvent):
    """The connection was lost or stalled, or the gateway closed the brokerage session (`sts` not authenticated);
    the client reconnects (or waits for the session) and will re-send its subscriptions."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WsReady(LifecycleEvent):
    """The session is ready: subscriptions are (re-)sent from now on."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WsClose(LifecycleEvent):
    """The socket closed."""

    close_status_code: int | None = None
    close_msg: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WsError(LifecycleEvent):
    """Connecting or reading failed; the client retries with backoff unless it is stopping."""

    error: BaseException


# -- subscriptions --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionUpdated(WsEvent):
    """The status of a subscription changed (e.g. NEW -> ACTIVE on its acknowledgement, or -> FAILED)."""

    subscription: Subscription
    binding_key: str
    status: BindingStatus
    previous_status: BindingStatus


# -- unsolicited frames ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericIbkrEvent(WsEvent):
    """A frame no other event type describes (kept, so nothing the gateway says is lost)."""

    message: dict[str, Any] | None
    topic: str | None = None
    data: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IbkrError(WsEvent):
    """An error frame from the gateway."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitingForSession(WsEvent):
    """The gateway has no brokerage session yet; subscriptions wait until it reports one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification(WsEvent):
    """One notification (`ntf`), e.g. a server prompt about an order."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bulletin(WsEvent):
    """An exchange or system bulletin (`blt`)."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountUpdate(WsEvent):
    """Account details pushed on connect (`act`)."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class System(WsEvent):
    """A system frame: the connect greeting, a heartbeat (`hb`), or the answer to `tic`."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticationStatus(WsEvent):
    """The session's authentication status (`sts`)."""

    data: dict[str, Any]
    authenticated: bool | None = None
    competing: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionChanged(WsEvent):
    """The brokerage session changed state, as the client understands it.

    `state` is one of "open" (subscriptions are sent again), "closed" (the gateway ended every stream; the client
    re-opens the session), "competing" (another login holds it: `error` is a `SessionCompetingError`; nothing is
    re-opened without you), "login_gone" (log in again; the client cannot) or "unreachable". `detail` says it in
    words.
    """

    state: str
    detail: str = ""
    error: BaseException | None = None


# -- subscribed topics ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class IbkrTopicEvent(WsEvent):
    """Base of the events of subscribed topics; `topic` is the topic code frames are routed by (e.g. `md`)."""

    topic: ClassVar[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSummary(IbkrTopicEvent):
    """Account summary values of one account, by key."""

    topic: ClassVar[str]
    account_id: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountLedger(IbkrTopicEvent):
    """One currency row of an account's ledger."""

    topic: ClassVar[str]
    account_id: str
    data: dict[str, Any]


class MarketData(IbkrTopicEvent):
    """A market-data update of one contract.

    `fields` holds the fields this frame changed, by field id as sent (the gateway sends only changed fields);
    `data` the same by field name; `quote` is the merged current quote of the contract after this frame. Written by
    hand rather than as a dataclass: one is built per frame, so construction is kept cheap, and `fields`, `data` and
    `received_at` are made from the decoded frame only when read.
    """

    __slots__ = ("_data", "_fields", "_frame", "_ts", "conid", "quote")
    topic: ClassVar[str]
    conid: str
    quote: Quote | None
    _data: dict[str, Any] | None
    _fields: dict[str, Any] | None
    _frame: dict[str, Any] | None
    _ts: float | datetime

    def __init__(
        self,
        *,
        conid: str,
        data: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        quote: Quote | None = None,
        received_at: datetime | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "_ts", received_at or _now())  # a datetime is made only if someone reads received_at
        setattr_(self, "conid", conid)
        setattr_(self, "_fields", fields if fields is not None else {})
        setattr_(self, "_frame", None)
        setattr_(self, "quote", quote)
        setattr_(self, "_data", data)

    @property
    def received_at(self) -> datetime:
        """The local time the frame was read."""
        ts = self._ts
        if isinstance(ts, datetime):
            return ts
        when = datetime.fromtimestamp(ts)
        object.__setattr__(self, "_ts", when)
        return when

    @property
    def fields(self) -> dict[str, Any]:
        """The changed fields by id."""
        found = self._fields
        if found is None:
            frame, quote = self._frame, self.quote
            assert frame is not None and quote is not None
            found = quote._names.fields(frame)
            object.__setattr__(self, "_fields", found)
        return found

    @property
    def data(self) -> dict[str, Any]:
        """The changed fields by name (ids without a known name are kept as ids)."""
        named = self._data
        if named is None:
            frame, quote = self._frame, self.quote
            if frame is not None and quote is not None:
                book = quote._names
                meta, by_id = book.meta, book.by_id
                named = {by_id.get(k, k): v for k, v in frame.items() if k not in meta}
            else:
                names = quote.field_names if quote is not None else {}
                named = {names.get(k, k): v for k, v in self.fields.items()}
            object.__setattr__(self, "_data", named)
        return named

    def model_dump(self) -> dict[str, Any]:
        return {"received_at": self.received_at, "conid": self.conid, "data": self.data, "fields": self.fields}

    def __eq__(self, other: object) -> bool:
        if type(other) is not MarketData:
            return NotImplemented
        return self.conid == other.conid and self.data == other.data

    __hash__ = None  # type: ignore[assignment]


_md_new = object.__new__
_md_set = tuple(MarketData.__dict__[name].__set__ for name in ("_ts", "conid", "_frame", "quote", "_fields", "_data"))


def market_data_from_frame(conid: str, frame: dict[str, Any], quote: Quote) -> MarketData:
    """The event of a decoded market-data frame (owned by the event and `quote` from now on), built without the
    keyword constructor: this runs once per frame on the socket reader."""
    event: MarketData = _md_new(MarketData)
    set_ts, set_conid, set_frame, set_quote, set_fields, set_data = _md_set
    set_ts(event, _now())
    set_conid(event, conid)
    set_frame(event, frame)
    set_quote(event, quote)
    set_fields(event, None)
    set_data(event, None)
    return event

    def __repr__(self) -> str:
        return f"MarketData(conid={self.conid!r}, data={self.data!r}, received_at={self.received_at!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketHistory(IbkrTopicEvent):
    """Historical bars of one contract; the frame carries the server id used to unsubscribe."""

    topic: ClassVar[str]
    conid: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Orders(IbkrTopicEvent):
    """Live order updates (`args` is a list of orders, each with only the fields that changed)."""

    topic: ClassVar[str]
    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceLadder(IbkrTopicEvent):
    """BookTrader price ladder rows."""

    topic: ClassVar[str]
    account_id: str
    conid: str
    exchange: str | None = None
    data: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pnl(IbkrTopicEvent):
    """Profit and loss by account model."""

    topic: ClassVar[str]
    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Trades(IbkrTopicEvent):
    """Executions."""

    topic: ClassVar[str]
    data: dict[str, Any]


# -- derived --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerId(WsEvent):
    """The server id the gateway gave a subscription (historical bars are unsubscribed by it)."""

    target_event_type: type[IbkrTopicEvent]
    conid: str
    server_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsubscription(WsEvent):
    """The gateway confirmed an unsubscribe."""

    target_event_type: type[IbkrTopicEvent]
    conid: str | None = None


def _bind_topics() -> None:
    from . import _topics

    for stream, cls in (
        ("account_summary", AccountSummary),
        ("account_ledger", AccountLedger),
        ("market_data", MarketData),
        ("market_history", MarketHistory),
        ("orders", Orders),
        ("price_ladder", PriceLadder),
        ("pnl", Pnl),
        ("trades", Trades),
    ):
        cls.topic = _topics.code(_topics.stream(stream))


_bind_topics()

TOPIC_EVENTS: dict[str, type[IbkrTopicEvent]] = {
    cls.topic: cls
    for cls in (AccountSummary, AccountLedger, MarketData, MarketHistory, Orders, PriceLadder, Pnl, Trades)
}
"""Event type by topic code."""
