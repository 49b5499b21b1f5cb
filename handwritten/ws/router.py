"""Turns gateway frames into events, and market-data frames into merged quotes.

`IbkrRouter.route(raw)` keeps the peer library's `Router` protocol (a text frame in, one or more events out);
`route_message(message)` takes an already decoded frame. Which topic a frame belongs to, and what the
acknowledgement messages say, comes from the stream catalogue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol, Union

from . import _topics, events
from .events import WsEvent
from .quotes import QuoteBook

logger = logging.getLogger("ibkr_sdk.ws")

__all__ = ["IbkrRouter", "Router"]

Routed = Union[WsEvent, list[WsEvent], None]  # noqa: UP007 (Python 3.10 aliases)


class Router(Protocol):
    """Text frame -> event(s)."""

    def route(self, raw_message: str) -> Routed: ...


_STREAM = _topics.stream
_U = _topics.UNSOLICITED_TOPICS
_market_data = events.market_data_from_frame
_MESSAGE_ACKED = [s for s in _topics.STREAMS.values() if s.unsubscribe_ack.kind == "message"]


class IbkrRouter:
    """Routes frames of IBKR's gateway. `quotes` is the book market-data frames are merged into."""

    def __init__(self, quotes: QuoteBook | None = None) -> None:
        self.quotes = quotes or QuoteBook(_topics.MD_FIELD_NAMES, _topics.MD_META_KEYS, _topics.MD_UPDATED_KEY)
        self._history_conids: dict[str, str] = {}  # server id -> conid
        head = _topics.frame_head
        self._handlers = {
            head(_STREAM("market_data")): self._market_data,
            head(_STREAM("market_history")): self._history,
            head(_STREAM("account_summary")): self._summary,
            head(_STREAM("account_ledger")): self._ledger,
            head(_STREAM("orders")): self._orders,
            head(_STREAM("price_ladder")): self._ladder,
            head(_STREAM("pnl")): self._pnl,
            head(_STREAM("trades")): self._trades,
        }
        assert len(self._handlers) == len(_topics.STREAMS), "a stream of the catalogue has no handler"
        self._unsubscribed: dict[str, type[events.IbkrTopicEvent]] = {
            "market_history": events.MarketHistory,
            "account_summary": events.AccountSummary,
            "account_ledger": events.AccountLedger,
        }
        self._server_id_field = _STREAM("market_history").server_id_field or ""

    def route(self, raw_message: str) -> Routed:
        return self.route_message(json.loads(raw_message))

    def reset(self) -> None:
        """A new connection: server ids of the old one are void."""
        self._history_conids.clear()

    def route_message(self, message: Any) -> Routed:
        if not isinstance(message, dict):
            return events.GenericIbkrEvent(message={"frame": message})
        topic = message.get("topic")
        if topic is None:
            if "error" in message:
                return events.IbkrError(data=message)
            return self._without_topic(message)
        if not isinstance(topic, str):
            return events.GenericIbkrEvent(message=message)
        head, _, rest = topic.partition("+")
        handler = self._handlers.get(head)
        if handler is not None:
            return handler(message, rest)
        if "error" in message or head == _U["error"]:
            return events.IbkrError(data=message)
        args = message.get("args")
        if head == _U["system"] or head == _U["tic"]:
            return events.System(data=message)
        if head == _U["sts"]:
            if isinstance(args, dict) and ("authenticated" in args or "competing" in args):
                return events.AuthenticationStatus(
                    data=args, authenticated=args.get("authenticated"), competing=args.get("competing")
                )
            return None
        if head == _U["act"]:
            return events.AccountUpdate(data=args if isinstance(args, dict) else {"args": args})
        if head == _U["blt"]:
            return events.Bulletin(data=message)
        if head == _U["ntf"]:
            items = args if isinstance(args, list) else [args]
            return [events.Notification(data=item) for item in items if isinstance(item, dict)]
        return events.GenericIbkrEvent(message=message, topic=topic, data=args)

    # -- frames without a topic -------------------------------------------------------------------------------------

    def _without_topic(self, message: dict[str, Any]) -> Routed:
        if message.get("message") == _topics.WAITING_FOR_SESSION:
            return events.WaitingForSession()
        for spec in _MESSAGE_ACKED:
            found = spec.unsubscribe_ack.matches(message)
            if found is None:
                continue
            target = self._unsubscribed.get(spec.name)
            if target is None:
                break
            server_id = found.get("server_id")
            if server_id is None:
                return events.Unsubscription(target_event_type=target)
            conid = self._history_conids.pop(server_id, None)
            if conid is not None:
                return events.Unsubscription(target_event_type=target, conid=conid)
            logger.warning("unsubscribe confirmation for an unknown server id %r", server_id)
            break
        return events.GenericIbkrEvent(message=message)

    # -- subscribed topics ------------------------------------------------------------------------------------------

    def _market_data(self, message: dict[str, Any], rest: str) -> Routed:
        conid = message.get("conid")
        conid = rest if conid is None else str(conid)
        if not conid:
            return None
        return _market_data(conid, message, self.quotes.fold(conid, message))

    def _history(self, message: dict[str, Any], rest: str) -> Routed:
        conid = rest.partition("+")[0] or str(message.get("conid", ""))
        server_id = message.get(self._server_id_field)
        out: list[WsEvent] = []
        if server_id is not None and str(server_id) not in self._history_conids:
            self._history_conids[str(server_id)] = conid
            out.append(events.ServerId(target_event_type=events.MarketHistory, conid=conid, server_id=str(server_id)))
        out.append(events.MarketHistory(conid=conid, data=message))
        return out

    def _summary(self, message: dict[str, Any], rest: str) -> Routed:
        rows = message.get("result", message.get("args"))
        summary: dict[str, Any] = {}
        if isinstance(rows, list):
            for row in rows:
                if isinstance(row, Mapping) and "key" in row:
                    summary[str(row["key"])] = {k: v for k, v in row.items() if k != "key"}
        elif isinstance(rows, Mapping):
            summary = dict(rows)
        account = rest or str(message.get("acctCode", ""))
        return events.AccountSummary(account_id=account, data=summary)

    def _ledger(self, message: dict[str, Any], rest: str) -> Routed:
        rows = message.get("result", message.get("args"))
        out: list[WsEvent] = []
        if isinstance(rows, list):
            for row in rows:
                if isinstance(row, Mapping):
                    out.append(events.AccountLedger(account_id=str(row.get("acctCode", rest)), data=dict(row)))
        return out

    def _orders(self, message: dict[str, Any], rest: str) -> Routed:
        return events.Orders(data=message)

    def _ladder(self, message: dict[str, Any], rest: str) -> Routed:
        parts = rest.split("+")
        rows = message.get("data")
        if len(parts) < 2 or not isinstance(rows, list):
            return events.GenericIbkrEvent(message=message, topic=message.get("topic"))
        exchange = parts[2] if len(parts) > 2 and parts[2] else None
        return events.PriceLadder(account_id=parts[0], conid=parts[1], exchange=exchange, data=rows)

    def _pnl(self, message: dict[str, Any], rest: str) -> Routed:
        return events.Pnl(data=message)

    def _trades(self, message: dict[str, Any], rest: str) -> Routed:
        return events.Trades(data=message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
