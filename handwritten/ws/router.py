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


_MD = _topics.topic("market_data")
_MH = _topics.topic("market_history")
_SD = _topics.topic("account_summary")
_LD = _topics.topic("account_ledger")
_OR = _topics.topic("orders")
_BD = _topics.topic("price_ladder")
_PL = _topics.topic("pnl")
_TR = _topics.topic("trades")
_U = _topics.UNSOLICITED


class IbkrRouter:
    """Routes frames of IBKR's gateway. `quotes` is the book market-data frames are merged into."""

    def __init__(self, quotes: QuoteBook | None = None) -> None:
        self.quotes = quotes or QuoteBook(_topics.MD_FIELD_NAMES, _topics.MD_META_KEYS, _topics.MD_UPDATED_KEY)
        self._history_conids: dict[str, str] = {}  # server id -> conid
        by_subscribe = _topics.by_subscribe()
        self._handlers = {
            _MD.subscribe: self._market_data,
            _MH.subscribe: self._history,
            _SD.subscribe: self._summary,
            _LD.subscribe: self._ledger,
            _OR.subscribe: self._orders,
            _BD.subscribe: self._ladder,
            _PL.subscribe: self._pnl,
            _TR.subscribe: self._trades,
        }
        assert set(self._handlers) == set(by_subscribe), "a stream of the catalogue has no handler"

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
        text = message.get("message")
        if isinstance(text, str):
            if text == _topics.WAITING_FOR_SESSION:
                return events.WaitingForSession()
            if text.startswith(_topics.UNSUBSCRIBED_HISTORY_PREFIX):
                server_id = text[len(_topics.UNSUBSCRIBED_HISTORY_PREFIX) :].strip()
                conid = self._history_conids.pop(server_id, None)
                if conid is not None:
                    return events.Unsubscription(target_event_type=events.MarketHistory, conid=conid)
                logger.warning("unsubscribe confirmation for an unknown history server id %r", server_id)
                return events.GenericIbkrEvent(message=message)
        result = message.get("result")
        if result == _topics.UNSUBSCRIBED_SUMMARY:
            return events.Unsubscription(target_event_type=events.AccountSummary)
        if result == _topics.UNSUBSCRIBED_LEDGER:
            return events.Unsubscription(target_event_type=events.AccountLedger)
        return events.GenericIbkrEvent(message=message)

    # -- subscribed topics ------------------------------------------------------------------------------------------

    def _market_data(self, message: dict[str, Any], rest: str) -> Routed:
        conid = message.get("conid")
        conid = rest if conid is None else str(conid)
        if not conid:
            return None
        changed, quote = self.quotes.merge(conid, message)
        return events.MarketData(conid=conid, fields=changed, quote=quote)

    def _history(self, message: dict[str, Any], rest: str) -> Routed:
        conid = rest.partition("+")[0] or str(message.get("conid", ""))
        server_id = message.get("serverId")
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
