"""`ibkr-sdk stream md CONID... --fields 31,84,86`: print the merged quote of each contract as JSON lines."""

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

DEFAULT_FIELDS = "31,84,86"


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Stream over the gateway's WebSocket. `md CONID...` subscribes to market data and prints, for every "
            "update, the contract's merged current quote (the gateway sends only changed fields) as one JSON line: "
            '{"conid", "updated", "fields": {id: value}, "names": {name: value}}.'
        ),
        allow_abbrev=False,
    )
    md = _topics.code(_topics.stream("market_data"))
    p.add_argument("topic", choices=(md,), help=f"{md}: level-1 market data")
    p.add_argument("conids", nargs="+", help="contract ids, e.g. 265598 (AAPL)")
    p.add_argument("--fields", default=DEFAULT_FIELDS, help=f"comma list of field ids (default {DEFAULT_FIELDS})")
    p.add_argument("--seconds", type=float, default=10.0, help="stop after this many seconds (default 10)")
    p.add_argument("--count", type=int, default=None, help="stop after this many lines")
    p.add_argument("--ws-url", default=None, help="WebSocket URL (default: derived from the REST URL)")
    return p


def run(make_client: Callable[[], IbkrClient], args: Sequence[str], prog: str) -> int:
    """Stream until --seconds or --count; returns the exit status (1 when no session became ready)."""
    from . import IbkrWsClient, MarketDataSubscription, QueueSink, events

    options = parser(prog).parse_args(list(args))
    client = make_client()
    if options.seconds <= 0:
        raise ValueError(f"{prog}: --seconds must be positive")
    if options.count is not None and options.count < 1:
        raise ValueError(f"{prog}: --count must be at least 1")
    fields = [f.strip() for f in options.fields.split(",") if f.strip()]
    subscriptions = [MarketDataSubscription(conid=conid, fields=fields) for conid in options.conids]
    sink = QueueSink()
    ws = IbkrWsClient(ibkr_client=client, url=options.ws_url, sink=sink, account_id=client.account_id)
    deadline = time.monotonic() + options.seconds
    printed = 0
    try:
        if not ws.start():
            print(f"{prog}: the WebSocket session did not become ready", file=sys.stderr)
            return 1
        handles = [ws.subscribe(s) for s in subscriptions]
        updates = sink.new_queue_accessor(events.MarketData)
        while (remaining := deadline - time.monotonic()) > 0:
            event: Any = updates.get(block=True, timeout=min(remaining, 0.25))
            if event is None or event.quote is None:
                continue
            sys.stdout.write(json.dumps(event.quote.as_json(), separators=(",", ":")) + "\n")
            sys.stdout.flush()
            printed += 1
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
