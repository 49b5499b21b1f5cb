"""Streaming over the gateway's WebSocket: `IbkrWsClient`, subscriptions, sinks and events.

Importing this package does not import the WebSocket library; starting a client does.
"""

from __future__ import annotations

from . import events, subscriptions
from ._state import WsState
from .client import IbkrSubscriptionResolver, IbkrWsClient
from .quotes import Quote, QuoteBook, parse_number
from .router import IbkrRouter, Router
from .sinks import CallbackSink, CompositeSink, EventSink, LogSink, NoopSink, QueueAccessor, QueueSink
from .subscriptions import (
    AccountLedgerSubscription,
    AccountSummarySubscription,
    BindingStatus,
    MarketDataSubscription,
    MarketHistorySubscription,
    OrdersSubscription,
    PnlSubscription,
    PriceLadderSubscription,
    Subscription,
    SubscriptionConflictError,
    SubscriptionHandle,
    SubscriptionResolver,
    TradesSubscription,
    make_binding_key,
)

__all__ = [
    "AccountLedgerSubscription",
    "AccountSummarySubscription",
    "BindingStatus",
    "CallbackSink",
    "CompositeSink",
    "EventSink",
    "IbkrRouter",
    "IbkrSubscriptionResolver",
    "IbkrWsClient",
    "LogSink",
    "MarketDataSubscription",
    "MarketHistorySubscription",
    "NoopSink",
    "OrdersSubscription",
    "PnlSubscription",
    "PriceLadderSubscription",
    "QueueAccessor",
    "QueueSink",
    "Quote",
    "QuoteBook",
    "Router",
    "Subscription",
    "SubscriptionConflictError",
    "SubscriptionHandle",
    "SubscriptionResolver",
    "TradesSubscription",
    "WsState",
    "events",
    "make_binding_key",
    "parse_number",
    "subscriptions",
]
