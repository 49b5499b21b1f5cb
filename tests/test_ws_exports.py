"""The streaming API is exported from `ibkr_sdk` under the peer's names, and loads only when used."""

from __future__ import annotations

import subprocess
import sys

PEER_NAMES = [
    "IbkrWsClient",
    "WsState",
    "BindingStatus",
    "EventSink",
    "NoopSink",
    "LogSink",
    "CallbackSink",
    "QueueSink",
    "CompositeSink",
    "QueueAccessor",
    "SubscriptionHandle",
    "SubscriptionConflictError",
    "make_binding_key",
    "events",
    "subscriptions",
]


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return done.stdout.strip()


def test_import_ibkr_sdk_loads_neither_streaming_nor_the_websocket_library() -> None:
    out = _run(
        "import sys, ibkr_sdk\n"
        "print(sorted(m for m in sys.modules if m.startswith(('websockets', 'ibkr_sdk.lib.ws', 'asyncio'))))\n"
        "ibkr_sdk.IbkrWsClient\n"
        "print('ibkr_sdk.lib.ws.client' in sys.modules, 'websockets' in sys.modules)\n"
    )
    first, second = out.splitlines()
    assert first == "[]"
    assert second == "True False"  # the client class loads; the socket library waits for start()


def test_peer_names_are_exported_and_peer_style_imports_work() -> None:
    import ibkr_sdk

    for name in PEER_NAMES:
        assert name in ibkr_sdk.__all__
        assert getattr(ibkr_sdk, name) is not None
    from ibkr_sdk.events import MarketData, Orders, SubscriptionUpdated, WsReady
    from ibkr_sdk.subscriptions import MarketDataSubscription, PnlSubscription, Subscription

    assert issubclass(PnlSubscription, Subscription) and issubclass(MarketDataSubscription, Subscription)
    assert ibkr_sdk.events.MarketData is MarketData
    from ibkr_sdk.lib.ws.events import TOPIC_EVENTS, WsEvent as events_base

    assert TOPIC_EVENTS[MarketData.topic] is MarketData and TOPIC_EVENTS[Orders.topic] is Orders
    assert issubclass(SubscriptionUpdated, events_base) and issubclass(WsReady, events_base)
