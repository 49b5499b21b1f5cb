"""`ibkr-sdk stream`: print a stream of the gateway's WebSocket as JSON lines.

ibkr-sdk stream md 265598 AAPL --fields 31,84,86   merged quotes of contracts, by conid or stock symbol
ibkr-sdk stream orders                              live order updates, one line per changed order
ibkr-sdk stream pnl                                 profit and loss updates of the session's accounts
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import _topics

if TYPE_CHECKING:
    from ..client import IbkrClient
    from .subscriptions import Subscription

DEFAULT_FIELDS = "31,84,86"
_TOPICS = {"md": "market_data", "orders": "orders", "pnl": "pnl"}
"""Words of the command line -> streams of the catalogue; the streams' short codes (`or`, `pl`) work too."""


def _topic_names() -> dict[str, str]:
    names = dict(_TOPICS)
    for stream in set(_TOPICS.values()):
        names.setdefault(_topics.code(_topics.stream(stream)), stream)
    return names


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Stream over the gateway's WebSocket, one JSON line per update. `md CONID|SYMBOL...` subscribes to "
            "market data and prints each contract's merged current quote (the gateway sends only changed fields): "
            '{"conid", "updated", "fields": {id: value}, "names": {name: value}}; symbols (AAPL) are looked up '
            "as US stocks. `orders` prints every order change as IBKR sends it (orderId, status, filledQuantity, "
            "...); `pnl` prints the P&L of the session's accounts by account model."
        ),
        allow_abbrev=False,
    )
    names = _topic_names()
    p.add_argument(
        "topic",
        choices=sorted(names),
        metavar="{md,orders,pnl}",
        help="md: level-1 market data; orders: live order updates; pnl: profit and loss",
    )
    p.add_argument("targets", nargs="*", metavar="CONID|SYMBOL", help="for md: contract ids (265598) or symbols (AAPL)")
    p.add_argument("--fields", default=DEFAULT_FIELDS, help=f"md: comma list of field ids (default {DEFAULT_FIELDS})")
    p.add_argument("--seconds", type=float, default=10.0, help="stop after this many seconds (default 10)")
    p.add_argument("--count", type=int, default=None, help="stop after this many lines")
    p.add_argument("--ws-url", default=None, help="WebSocket URL (default: derived from the REST URL)")
    return p


def _conids(client: IbkrClient, targets: Sequence[str], prog: str) -> list[str]:
    """Conids as given; symbols looked up (US stocks), in the order given."""
    symbols = [t for t in targets if not t.isdigit()]
    found: dict[str, Any] = {}
    if symbols:
        found = client.stock_conid_by_symbol(symbols).data or {}
        unknown = [s for s in symbols if s.upper() not in {k.upper() for k in found}]
        if unknown:
            raise ValueError(f"{prog}: no US stock named {', '.join(unknown)} (give its conid instead)")
    by_symbol = {k.upper(): str(v) for k, v in found.items()}
    return [t if t.isdigit() else by_symbol[t.upper()] for t in targets]


def _lines(stream: str, event: Any) -> list[Any]:
    """What one event prints: the merged quote; each changed order; the P&L by account model."""
    if stream == "market_data":
        return [event.quote.as_json()] if event.quote is not None else []
    data = event.data if isinstance(event.data, dict) else {}
    args = data.get("args", data)
    if stream == "orders":
        return list(args) if isinstance(args, list) else [args]
    return [args]


def run(make_client: Callable[[], IbkrClient], args: Sequence[str], prog: str) -> int:
    """Stream until --seconds or --count; returns the exit status (1 when no session became ready)."""
    from . import IbkrWsClient, MarketDataSubscription, OrdersSubscription, PnlSubscription, QueueSink, events

    options = parser(prog).parse_args(list(args))
    stream = _topic_names()[options.topic]
    if options.seconds <= 0:
        raise ValueError(f"{prog}: --seconds must be positive")
    if options.count is not None and options.count < 1:
        raise ValueError(f"{prog}: --count must be at least 1")
    if stream == "market_data" and not options.targets:
        raise ValueError(f"{prog}: md needs at least one conid or symbol, e.g. `{prog} md 265598 AAPL`")
    if stream != "market_data" and options.targets:
        raise ValueError(f"{prog}: {options.topic} takes no conids or symbols (got {' '.join(options.targets)})")
    client = make_client()
    subscriptions: list[Subscription]
    if stream == "market_data":
        fields = [f.strip() for f in options.fields.split(",") if f.strip()]
        conids = _conids(client, options.targets, prog)
        subscriptions = [MarketDataSubscription(conid=conid, fields=fields) for conid in conids]
        event_type: type[Any] = events.MarketData
    elif stream == "orders":
        subscriptions, event_type = [OrdersSubscription()], events.Orders
    else:
        subscriptions, event_type = [PnlSubscription()], events.Pnl
    sink = QueueSink()
    ws = IbkrWsClient(ibkr_client=client, url=options.ws_url, sink=sink, account_id=client.account_id)
    deadline = time.monotonic() + options.seconds
    printed = 0
    try:
        if not ws.start():
            print(f"{prog}: the WebSocket session did not become ready: {ws.last_failure}", file=sys.stderr)
            return 1
        handles = [ws.subscribe(s) for s in subscriptions]
        updates = sink.new_queue_accessor(event_type)
        while (remaining := deadline - time.monotonic()) > 0:
            event: Any = updates.get(block=True, timeout=min(remaining, 0.25))
            if event is None:
                continue
            for line in _lines(stream, event):
                sys.stdout.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")
                printed += 1
                if options.count is not None and printed >= options.count:
                    break
            sys.stdout.flush()
            if options.count is not None and printed >= options.count:
                break
        failed = [h for h in handles if h.failed]
        for handle in failed:
            print(f"{prog}: subscription {handle.binding_key} was not acknowledged", file=sys.stderr)
        return 1 if failed and not printed else 0
    except queue.Empty:  # pragma: no cover - the accessor returns None instead
        return 0
    finally:
        ws.shutdown()
