"""Subscriptions: what to stream, with the peer library's names (`ibind.subscriptions`).

A subscription is an immutable value (`MarketDataSubscription(conid="265598", fields=["31", "84"])`); the client
keeps it as intent and (re-)sends it whenever a connection becomes ready. Arguments are checked when the
subscription is created, so a bad conid or field list fails before anything is sent. Topic codes, frame formats
and acknowledgement rules come from the stream catalogue (`spec/streams.yaml`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from . import _topics, events
from .events import IbkrTopicEvent, WsEvent

if TYPE_CHECKING:
    from ._bindings import SubscriptionController

__all__ = [
    "AccountLedgerSubscription",
    "AccountSummarySubscription",
    "BindingStatus",
    "MarketDataSubscription",
    "MarketHistorySubscription",
    "OrdersSubscription",
    "PnlSubscription",
    "PriceLadderSubscription",
    "Subscription",
    "SubscriptionConflictError",
    "SubscriptionHandle",
    "SubscriptionResolver",
    "SubscriptionView",
    "TradesSubscription",
    "make_binding_key",
]


class SubscriptionConflictError(ValueError):
    """A different subscription already holds this binding key and must be unsubscribed first."""


class BindingStatus(Enum):
    """Where a subscription stands: NEW (not yet acknowledged), ACTIVE, FAILED (never acknowledged, or refused),
    DEGRADED (connection lost; re-sent once the next connection is ready), UNSUBSCRIBED, EXPIRED."""

    NEW = "NEW"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    DEGRADED = "DEGRADED"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    EXPIRED = "EXPIRED"


def _normal(values: Any) -> Any:
    """Contract ids and field ids may be given as ints; they are kept as the strings the gateway uses."""
    if isinstance(values, int) and not isinstance(values, bool):
        return str(values)
    if isinstance(values, (list, tuple)):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values]
    return values


def make_binding_key(
    event_type: type[IbkrTopicEvent],
    conid: str | None = None,
    account_id: str | None = None,
    exchange: str | None = None,
) -> str:
    """The key a subscription and its frames share: the topic code, plus the conid or account the stream is keyed
    by (e.g. `md+265598`, `sd+DU1234567`, `or`)."""
    code = getattr(event_type, "topic", "")
    spec = _topics.by_code().get(code)
    if spec is None:
        raise ValueError(f"make_binding_key(): unsupported event type {event_type!r}")
    if spec.key == "conid":
        return f"{code}+{conid}"
    if spec.key == "account_id":
        return f"{code}+{account_id}"
    return str(code)


@dataclass(frozen=True, kw_only=True)
class Subscription:
    """Base of every subscription. `expiry_seconds`: re-send the subscription this long after it was sent (streams
    the gateway ends after a while, e.g. market data after 15 minutes); None for streams that do not expire."""

    expiry_seconds: float | None = None

    @property
    def topic(self) -> str:
        """The topic code of this subscription's frames."""
        raise NotImplementedError

    def subscribe_payload(self) -> str:
        """The text frame that subscribes."""
        raise NotImplementedError

    def unsubscribe_payload(self) -> str:
        """The text frame that unsubscribes."""
        raise NotImplementedError

    @property
    def confirms_subscribe(self) -> bool:
        """Whether the gateway acknowledges the subscribe (otherwise it counts as active once sent)."""
        return True

    @property
    def confirms_unsubscribe(self) -> bool:
        """Whether the gateway acknowledges the unsubscribe."""
        return False

    def binding_key(self) -> str:
        """The key this subscription is tracked by."""
        return self.subscribe_payload()

    def __str__(self) -> str:
        return f"{type(self).__qualname__}({self.binding_key()})"


@dataclass(frozen=True, kw_only=True)
class IbkrSubscription(Subscription):
    """A subscription to one of the gateway's streams, described by the catalogue entry `stream`: its frames are
    built, and its arguments checked (at creation, so nothing bad is ever sent), by the stream table."""

    stream: ClassVar[str] = ""
    event_type: ClassVar[type[IbkrTopicEvent]]
    _normalised: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self._normalised:
            object.__setattr__(self, name, _normal(getattr(self, name)))
        self.subscribe_payload()  # checks every argument against the catalogue; raises RequestValidationError

    @classmethod
    def _spec(cls) -> _topics.StreamSpec:
        return _topics.stream(cls.stream)

    def _values(self) -> dict[str, Any]:
        """The catalogue's targets and arguments of this subscription, by their Python names."""
        return {}

    @property
    def topic(self) -> str:
        return _topics.code(self._spec())

    @property
    def confirms_subscribe(self) -> bool:
        return _topics.acked(self._spec())

    @property
    def confirms_unsubscribe(self) -> bool:
        return _topics.unsubscribe_acked(self._spec())

    def subscribe_payload(self) -> str:
        return self._spec().subscribe_message(method=type(self).__name__, **self._values())

    def unsubscribe_payload(self) -> str:
        spec = self._spec()
        values = {t.name: v for t in spec.targets if (v := self._values().get(t.name)) is not None}
        return spec.unsubscribe_message(method=type(self).__name__, **values)

    def binding_key(self) -> str:
        return make_binding_key(
            self.event_type, conid=getattr(self, "conid", None), account_id=getattr(self, "account_id", None)
        )


def _renewal(stream: str) -> float | None:
    return _topics.stream(stream).renew_after


@dataclass(frozen=True, kw_only=True)
class AccountSummarySubscription(IbkrSubscription):
    """Account summary of `account_id`, optionally only some `keys` and `fields`."""

    stream: ClassVar[str] = "account_summary"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.AccountSummary
    account_id: str
    keys: list[str] | None = None
    fields: list[str] | None = None

    def _values(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "keys": self.keys, "fields": self.fields}


@dataclass(frozen=True, kw_only=True)
class AccountLedgerSubscription(AccountSummarySubscription):
    """Ledger of `account_id` by currency, optionally only some currency `keys` and `fields`."""

    stream: ClassVar[str] = "account_ledger"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.AccountLedger


@dataclass(frozen=True, kw_only=True)
class MarketDataSubscription(IbkrSubscription):
    """Level-1 market data of one contract: `fields` are field ids such as "31" (last), "84" (bid), "86" (ask).

    The gateway ends a market-data stream after 15 minutes; the client re-sends it `expiry_seconds` after it was
    sent (the catalogue's renewal time by default).
    """

    stream: ClassVar[str] = "market_data"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.MarketData
    _normalised: ClassVar[tuple[str, ...]] = ("conid", "fields")
    conid: str
    fields: list[str]
    expiry_seconds: float | None = field(default_factory=lambda: _renewal("market_data"))

    def _values(self) -> dict[str, Any]:
        return {"conid": self.conid, "fields": self.fields}


@dataclass(frozen=True, kw_only=True)
class MarketHistorySubscription(IbkrSubscription):
    """Historical bars of one contract. The gateway answers with a server id; unsubscribing needs that id, which the
    client records from the first frame."""

    stream: ClassVar[str] = "market_history"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.MarketHistory
    _normalised: ClassVar[tuple[str, ...]] = ("conid",)
    conid: str
    exchange: str | None = None
    period: str | None = None
    bar: str | None = None
    outside_rth: bool | None = None
    source: str | None = None
    format: str | None = None
    server_id: list[str] = field(default_factory=list, compare=False)

    def _values(self) -> dict[str, Any]:
        return {
            "conid": self.conid,
            "exchange": self.exchange,
            "period": self.period,
            "bar": self.bar,
            "outside_rth": self.outside_rth,
            "source": self.source,
            "format": self.format,
        }

    def unsubscribe_payload(self) -> str:
        server_id = self.get_server_id()
        if server_id is None:
            raise RuntimeError(
                f"{type(self).__name__}: cannot unsubscribe conid {self.conid} before the gateway gave it a server id"
            )
        return self._spec().unsubscribe_message(method=type(self).__name__, server_id=server_id)

    def set_server_id(self, server_id: str) -> None:
        """Record the server id the gateway gave this subscription."""
        if self.server_id:
            raise ValueError("Server ID already set")
        self.server_id.append(server_id)

    def clear_server_id(self) -> None:
        """Forget the server id (a new connection gives a new one)."""
        self.server_id.clear()

    def has_server_id(self) -> bool:
        """Whether the server id is known."""
        return bool(self.server_id)

    def get_server_id(self) -> str | None:
        """The server id, or None."""
        return self.server_id[0] if self.server_id else None


@dataclass(frozen=True, kw_only=True)
class OrdersSubscription(IbkrSubscription):
    """Live order updates, optionally only orders with status `filter` (e.g. "Submitted")."""

    stream: ClassVar[str] = "orders"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.Orders
    filter: str | None = None

    def _values(self) -> dict[str, Any]:
        return {"filters": None if self.filter is None else [self.filter]}


@dataclass(frozen=True, kw_only=True)
class PriceLadderSubscription(IbkrSubscription):
    """BookTrader price ladder of `conid` for `account_id`, optionally on one `exchange`."""

    stream: ClassVar[str] = "price_ladder"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.PriceLadder
    _normalised: ClassVar[tuple[str, ...]] = ("conid",)
    conid: str
    account_id: str
    exchange: str | None = None

    def _values(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "conid": self.conid, "exchange": self.exchange}


@dataclass(frozen=True, kw_only=True)
class PnlSubscription(IbkrSubscription):
    """Profit and loss of the session's accounts."""

    stream: ClassVar[str] = "pnl"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.Pnl


@dataclass(frozen=True, kw_only=True)
class TradesSubscription(IbkrSubscription):
    """Executions: `days` of earlier ones first (1 to 7), or only new ones with `realtime_updates_only`."""

    stream: ClassVar[str] = "trades"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.Trades
    realtime_updates_only: bool | None = None
    days: int | None = None

    def _values(self) -> dict[str, Any]:
        return {"realtime_updates_only": self.realtime_updates_only, "days": self.days}


class SubscriptionResolver(Protocol):
    """Maps an event to the binding it acknowledges: `(True, key)` subscribed, `(False, key)` unsubscribed,
    `(None, None)` unrelated."""

    def resolve_binding_key(self, event: WsEvent) -> tuple[bool, str] | tuple[None, None]: ...


class SubscriptionView:
    """The live status of one subscription, read from its client's bookkeeping: what `SubscriptionHandle` (sync
    client) and `AsyncSubscriptionHandle` (asyncio client) share. They differ only in how `wait()` waits."""

    def __init__(self, controller: SubscriptionController, subscription: Subscription) -> None:
        self._controller = controller
        self._subscription = subscription

    @property
    def subscription(self) -> Subscription:
        """The subscription this handle tracks."""
        return self._subscription

    @property
    def binding_key(self) -> str:
        """The key the subscription is tracked by."""
        return self._subscription.binding_key()

    @property
    def status(self) -> BindingStatus | None:
        """Its status now."""
        return self._controller.get_status(self.binding_key)

    @property
    def active(self) -> bool:
        """Whether the gateway acknowledged it (or, for unacknowledged topics, it was sent)."""
        return self.status is BindingStatus.ACTIVE

    @property
    def unsubscribed(self) -> bool:
        """Whether it is unsubscribed."""
        return self.status is BindingStatus.UNSUBSCRIBED

    @property
    def failed(self) -> bool:
        """Whether it failed: not acknowledged after every attempt."""
        return self.status is BindingStatus.FAILED

    @property
    def done(self) -> bool | None:
        """Whether it reached what was asked (subscribed or unsubscribed)."""
        return self._controller.is_done(self.binding_key)

    def __repr__(self) -> str:
        status = self.status
        return f"{type(self).__name__}({self.binding_key}, {status.value if status else None})"


class SubscriptionHandle(SubscriptionView):
    """What `IbkrWsClient.subscribe()`/`unsubscribe()` return: the live status of one subscription, and a blocking
    `wait()`."""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until it reaches what was asked; False on timeout or failure."""
        return self._controller.wait_for(self.binding_key, timeout=timeout)

    def unsubscribe(self) -> SubscriptionHandle:
        """Ask to unsubscribe; returns this handle."""
        self._controller.unsubscribe(self._subscription)
        return self
