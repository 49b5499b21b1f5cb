"""Subscriptions: what to stream, with the peer library's names (`ibind.subscriptions`).

A subscription is an immutable value (`MarketDataSubscription(conid="265598", fields=["31", "84"])`); the client
keeps it as intent and (re-)sends it whenever a connection becomes ready. Arguments are checked when the
subscription is created, so a bad conid or field list fails before anything is sent. Topic codes, frame formats
and acknowledgement rules come from the stream catalogue (`spec/streams.yaml`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
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
    "TradesSubscription",
    "make_binding_key",
]

_CONID = re.compile(r"^[0-9]+(@[A-Za-z0-9_.]+)?$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9_.\-]+$")
_FIELD = re.compile(r"^[0-9]+$")
_compact = json.JSONEncoder(separators=(",", ":")).encode


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


def _bad(cls: str, param: str, problem: str) -> ValueError:
    return ValueError(f"{cls}(): {param} {problem}")


def _conid(cls: str, value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _CONID.match(text):
        raise _bad(cls, "conid", f"must be a contract id (digits, optionally '@EXCHANGE'), got {value!r}")
    return text


def _account(cls: str, value: Any) -> str:
    if not isinstance(value, str) or not _ACCOUNT.match(value):
        raise _bad(cls, "account_id", f"must be an account id such as 'DU1234567', got {value!r}")
    return value


def _strings(cls: str, param: str, value: Any, pattern: re.Pattern[str] | None = None) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(items, Sequence) or isinstance(items, (bytes, bytearray)):
        raise _bad(cls, param, f"must be a list of strings, got {value!r}")
    out = []
    for item in items:
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(text, str) or not text or (pattern is not None and not pattern.match(text)):
            raise _bad(cls, param, f"has an invalid item {item!r}")
        out.append(text)
    return out


def make_binding_key(
    event_type: type[IbkrTopicEvent],
    conid: str | None = None,
    account_id: str | None = None,
    exchange: str | None = None,
) -> str:
    """The key a subscription and its frames share: the topic code, plus the conid or account the stream is keyed
    by (e.g. `md+265598`, `sd+DU1234567`, `or`)."""
    spec = _topics.by_code().get(getattr(event_type, "topic", ""))
    if spec is None:
        raise ValueError(f"make_binding_key(): unsupported event type {event_type!r}")
    if spec.key == "conid":
        return f"{spec.code}+{conid}"
    if spec.key == "account_id":
        return f"{spec.code}+{account_id}"
    return spec.code


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
    """A subscription to one of the gateway's topics, described by the stream catalogue entry `stream`."""

    stream: ClassVar[str] = ""
    event_type: ClassVar[type[IbkrTopicEvent]]

    @classmethod
    def _spec(cls) -> _topics.Topic:
        return _topics.topic(cls.stream)

    @property
    def topic(self) -> str:
        return self._spec().code

    @property
    def confirms_subscribe(self) -> bool:
        return self._spec().acked

    @property
    def confirms_unsubscribe(self) -> bool:
        return self._spec().unsubscribe_acked

    def _sub(self, **values: Any) -> str:
        spec = self._spec()
        return _topics.render(spec.subscribe_format, spec, **values)

    def _unsub(self, **values: Any) -> str:
        spec = self._spec()
        return _topics.render(spec.unsubscribe_format, spec, **values)

    def binding_key(self) -> str:
        return make_binding_key(
            self.event_type, conid=getattr(self, "conid", None), account_id=getattr(self, "account_id", None)
        )


def _lifetime_renewal(stream: str) -> float | None:
    lifetime = _topics.topic(stream).lifetime
    return None if lifetime is None else lifetime * 0.6  # IBKR: re-request after 10 of 15 minutes; we renew at 9


@dataclass(frozen=True, kw_only=True)
class AccountSummarySubscription(IbkrSubscription):
    """Account summary of `account_id`, optionally only some `keys` and `fields`."""

    stream: ClassVar[str] = "account_summary"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.AccountSummary
    account_id: str
    keys: list[str] | None = None
    fields: list[str] | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "account_id", _account(name, self.account_id))
        object.__setattr__(self, "keys", _strings(name, "keys", self.keys))
        object.__setattr__(self, "fields", _strings(name, "fields", self.fields))

    def subscribe_payload(self) -> str:
        args = {k: v for k, v in (("keys", self.keys), ("fields", self.fields)) if v is not None}
        return self._sub(account_id=self.account_id, args=_compact(args))

    def unsubscribe_payload(self) -> str:
        return self._unsub(account_id=self.account_id)


@dataclass(frozen=True, kw_only=True)
class AccountLedgerSubscription(AccountSummarySubscription):
    """Ledger of `account_id` by currency, optionally only some currency `keys` and `fields`."""

    stream: ClassVar[str] = "account_ledger"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.AccountLedger


@dataclass(frozen=True, kw_only=True)
class MarketDataSubscription(IbkrSubscription):
    """Level-1 market data of one contract: `fields` are field ids such as "31" (last), "84" (bid), "86" (ask).

    The gateway ends a market-data stream after 15 minutes; the client re-sends it after `expiry_seconds`.
    """

    stream: ClassVar[str] = "market_data"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.MarketData
    conid: str
    fields: list[str]
    expiry_seconds: float | None = field(default_factory=lambda: _lifetime_renewal("market_data"))

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "conid", _conid(name, self.conid))
        fields = _strings(name, "fields", self.fields, _FIELD)
        if not fields:
            raise _bad(name, "fields", "must name at least one field id, e.g. ['31', '84', '86']")
        object.__setattr__(self, "fields", fields)
        if self.expiry_seconds is not None and not self.expiry_seconds > 0:
            raise _bad(name, "expiry_seconds", f"must be positive or None, got {self.expiry_seconds!r}")

    def subscribe_payload(self) -> str:
        return self._sub(conid=self.conid, args=_compact({"fields": self.fields}))

    def unsubscribe_payload(self) -> str:
        return self._unsub(conid=self.conid)


_BAR = re.compile(r"^[0-9]+(min|h|d|w|m|y)$")


@dataclass(frozen=True, kw_only=True)
class MarketHistorySubscription(IbkrSubscription):
    """Historical bars of one contract. The gateway answers once with a server id; unsubscribing needs that id,
    which the client records from the first frame."""

    stream: ClassVar[str] = "market_history"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.MarketHistory
    conid: str
    exchange: str | None = None
    period: str | None = None
    bar: str | None = None
    outside_rth: bool | None = None
    source: str | None = None
    format: str | None = None
    server_id: list[str] = field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "conid", _conid(name, self.conid))
        for param in ("period", "bar"):
            value = getattr(self, param)
            if value is not None and (not isinstance(value, str) or not _BAR.match(value)):
                raise _bad(name, param, f"must look like '1d', '5min' or '1h', got {value!r}")
        if self.outside_rth is not None and not isinstance(self.outside_rth, bool):
            raise _bad(name, "outside_rth", f"must be True or False, got {self.outside_rth!r}")

    def subscribe_payload(self) -> str:
        args = {
            "exchange": self.exchange,
            "period": self.period,
            "bar": self.bar,
            "outsideRth": self.outside_rth,
            "source": self.source,
            "format": self.format,
        }
        return self._sub(conid=self.conid, args=_compact({k: v for k, v in args.items() if v is not None}))

    def unsubscribe_payload(self) -> str:
        server_id = self.get_server_id()
        if server_id is None:
            raise RuntimeError(
                f"{type(self).__name__}: cannot unsubscribe conid {self.conid} before the gateway gave it a server id"
            )
        return self._unsub(server_id=server_id)

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

    def __post_init__(self) -> None:
        if self.filter is not None and (not isinstance(self.filter, str) or not self.filter.isalpha()):
            raise _bad(
                type(self).__name__, "filter", f"must be an order status such as 'Submitted', got {self.filter!r}"
            )

    def subscribe_payload(self) -> str:
        return self._sub(args=_compact({"filters": [self.filter]} if self.filter is not None else {}))

    def unsubscribe_payload(self) -> str:
        return self._unsub()


@dataclass(frozen=True, kw_only=True)
class PriceLadderSubscription(IbkrSubscription):
    """BookTrader price ladder of `conid` for `account_id`, optionally on one `exchange`."""

    stream: ClassVar[str] = "price_ladder"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.PriceLadder
    conid: str
    account_id: str
    exchange: str | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "conid", _conid(name, self.conid))
        object.__setattr__(self, "account_id", _account(name, self.account_id))
        if self.exchange is not None and (not isinstance(self.exchange, str) or not _ACCOUNT.match(self.exchange)):
            raise _bad(name, "exchange", f"must be an exchange code such as 'NASDAQ', got {self.exchange!r}")

    def subscribe_payload(self) -> str:
        exchange = "" if self.exchange is None else f"+{self.exchange}"
        return self._sub(account_id=self.account_id, conid=self.conid, exchange=exchange)

    def unsubscribe_payload(self) -> str:
        return self._unsub(account_id=self.account_id)


@dataclass(frozen=True, kw_only=True)
class PnlSubscription(IbkrSubscription):
    """Profit and loss of the session's accounts."""

    stream: ClassVar[str] = "pnl"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.Pnl

    def subscribe_payload(self) -> str:
        return self._sub()

    def unsubscribe_payload(self) -> str:
        return self._unsub()


@dataclass(frozen=True, kw_only=True)
class TradesSubscription(IbkrSubscription):
    """Executions: `days` of history (default the gateway's, 1), or only new ones with `realtime_updates_only`."""

    stream: ClassVar[str] = "trades"
    event_type: ClassVar[type[IbkrTopicEvent]] = events.Trades
    realtime_updates_only: bool | None = None
    days: int | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.realtime_updates_only is not None and not isinstance(self.realtime_updates_only, bool):
            raise _bad(name, "realtime_updates_only", f"must be True or False, got {self.realtime_updates_only!r}")
        if self.days is not None and (isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 1):
            raise _bad(name, "days", f"must be a positive integer, got {self.days!r}")

    def subscribe_payload(self) -> str:
        args: dict[str, Any] = {}
        if self.realtime_updates_only is not None:
            args["realtimeUpdatesOnly"] = self.realtime_updates_only
        if self.days is not None:
            args["days"] = self.days
        return self._sub(args=_compact(args))

    def unsubscribe_payload(self) -> str:
        return self._unsub()


class SubscriptionResolver(Protocol):
    """Maps an event to the binding it acknowledges: `(True, key)` subscribed, `(False, key)` unsubscribed,
    `(None, None)` unrelated."""

    def resolve_binding_key(self, event: WsEvent) -> tuple[bool, str] | tuple[None, None]: ...


class SubscriptionHandle:
    """What `subscribe()`/`unsubscribe()` return: the live status of one subscription."""

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

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until it reaches what was asked; False on timeout or failure."""
        return self._controller.wait_for(self.binding_key, timeout=timeout)

    def unsubscribe(self) -> SubscriptionHandle:
        """Ask to unsubscribe; returns this handle."""
        self._controller.unsubscribe(self._subscription)
        return self

    def __repr__(self) -> str:
        status = self.status
        return f"SubscriptionHandle({self.binding_key}, {status.value if status else None})"
