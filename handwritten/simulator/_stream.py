"""The simulator's WebSocket at `/v1/api/ws`, on the same port (and TLS) as its REST routes, as the gateway serves it.

An HTTP request with `Upgrade: websocket` to that path is handed here by the REST handler; the `websockets` library
(its sans-I/O protocol, imported only now) does the handshake and the framing, and this module plays the gateway:

- authentication: the session cookie (`api={"session":"<id from /tickle>"}`, or `api=<id>`) and, when the
  simulator acts as IBKR's OAuth API, `?oauth_token=<access token>`. A socket without a valid session gets
  {"message": "waiting for session"} and may send {"session": "<id>"}. An authenticated socket gets `system`,
  `act` and `sts` first, then heartbeats;
- every topic of `ibkr_sdk._streams` (the generated table: frames are parsed, acknowledged and routed by it), fed by
  the same state as the REST side: quotes from the price model of the snapshots (only changed fields), `sor` when
  REST orders are placed, filled, modified or cancelled, `str` on fills, `spl` P&L, `ssd` summary, `sld` ledger,
  `smh` bars with server ids (at most five at once), `sbd` ladder rows; `sts` whenever the session changes;
- faults, injected with `Simulator.inject("ws", kind, ..., times=N)`: `reset` drops an open socket (no close
  frame), `stall` stops its frames for `value` seconds, `malformed` sends it one frame that is not JSON (each
  taken by the first socket that looks, N times); `status` refuses the next connect with that HTTP status,
  `latency` delays the next handshake; and `Simulator.streaming.md_expiry`
  ends market-data streams after that many seconds, as IBKR's do after 15 minutes.

One thread per socket (the connection's own server thread); timers use the monotonic clock, prices the
simulator's clock.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from .._streams import (
    ECHO,
    HEARTBEAT_FIELD,
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TOPIC,
    OAUTH_QUERY,
    SESSION_COOKIE,
    SESSION_FRAME_KEY,
    STREAMS,
    TIC,
    TIC_TOPIC,
    UNKNOWN_TOPIC_CODE,
    UNSOLICITED,
    WAITING_FOR_SESSION,
    ClientFrame,
    parse_client_frame,
)
from ._core import GatewayError, SimRequest
from ._faults import Fault, FaultBook

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

    from ._server import Simulator
    from ._state import GatewayState

logger = logging.getLogger("ibkr_sdk.simulator")

WS_ROUTE = "ws"
"""The route name of the socket for `Simulator.inject` (its faults are kept apart from the REST routes')."""

MD = STREAMS["market_data"]
HISTORY = STREAMS["market_history"]
LADDER = STREAMS["price_ladder"]
SUMMARY = STREAMS["account_summary"]
LEDGER = STREAMS["account_ledger"]
ORDERS = STREAMS["orders"]
PNL = STREAMS["pnl"]
TRADES = STREAMS["trades"]
_STATUS_TOPIC = "sts"
_ACCOUNTS_TOPIC = "act"
_ERROR_TOPIC = "error"
_LADDER_ROWS = 5
_READ_SIZE = 65536


@dataclass
class StreamSettings:
    """Timing (seconds of real time) and unsolicited frames of the simulated socket: `Simulator.streaming`.

    Change the timing at any time; `bulletin`, `notify` and `send_unsolicited` push `blt`/`ntf`/... frames.
    """

    heartbeat: float = float(HEARTBEAT_INTERVAL)
    """Interval of `system` heartbeats."""
    md_interval: float = 0.5
    """How often quotes are re-read for `smd` streams (IBKR derives ticks from 500 ms snapshots)."""
    md_expiry: float = float(MD.expires_after or 900)
    """A market-data stream ends this long after its (last) `smd`, silently, as IBKR's do after 15 minutes."""
    pnl_interval: float = 1.0
    """Interval of `spl` frames."""
    account_interval: float = 10.0
    """Interval of `ssd` and `sld` frames."""
    poll: float = 0.02
    """How often each socket looks for order changes, fills, faults and session changes."""
    _outbox: list[Any] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _sockets: int = field(default=0, repr=False)

    @property
    def open_sockets(self) -> int:
        """How many sockets are open now."""
        with self._lock:
            return self._sockets

    def bulletin(self, message: str, id: str = "1") -> None:
        """Send a `blt` bulletin to every authenticated socket open now."""
        self.send_unsolicited("bulletin", {"id": id, "message": message})

    def notify(self, text: str, *, title: str = "", url: str = "", id: str = "1") -> None:
        """Send an `ntf` notification to every authenticated socket open now."""
        self.send_unsolicited("notification", [{"id": id, "text": text, "title": title, "url": url}])

    def send_unsolicited(self, name: str, args: Any) -> None:
        """Send `{"topic": <topic of name>, "args": args}` (a topic of `ibkr_sdk._streams.UNSOLICITED`) to every
        authenticated socket open now."""
        topics = {u.name: u.topic for u in UNSOLICITED.values()}
        if name not in topics:
            raise ValueError(f"unknown unsolicited topic {name!r}; one of {', '.join(sorted(topics))}")
        with self._lock:
            self._outbox.append({"topic": topics[name], "args": args})

    def burst(self, conid: int | str, count: int, *, rate: float | None = None) -> Burst:
        """Push `count` market-data frames for `conid` to every socket subscribed to it, as fast as possible or at
        `rate` frames per second (for benchmarks). Each frame carries changed 31/84/86 prices and its sequence
        number 0..count-1 as field 7059 (last size); `Burst.sent_ns[i]` is when frame i was written
        (`time.perf_counter_ns`, first socket only) and `Burst.done` is set when every socket is through."""
        if count < 1:
            raise ValueError("count must be at least 1")
        handle = Burst(str(conid), count, rate)
        with self._lock:
            self._outbox.append(handle)
        return handle

    def _opened(self) -> int:
        with self._lock:
            self._sockets += 1
            return len(self._outbox)

    def _closed(self) -> None:
        with self._lock:
            self._sockets -= 1

    def _since(self, seen: int) -> list[Any]:
        with self._lock:
            return list(self._outbox[seen:])


@dataclass
class Burst:
    """A burst of market-data frames requested with `StreamSettings.burst`."""

    conid: str
    count: int
    rate: float | None
    sent_ns: list[int] = field(default_factory=list, repr=False)
    done: threading.Event = field(default_factory=threading.Event, repr=False)


@dataclass
class _Md:
    fields: list[str]
    since: float  # monotonic time of the last smd
    last: dict[str, str] = field(default_factory=dict)
    due: float = 0.0


@dataclass
class _Socket:
    """What one connection is subscribed to and what it has already been told."""

    authenticated: bool = False
    md: dict[str, _Md] = field(default_factory=dict)  # by conid text as subscribed (may carry @EXCHANGE)
    history: dict[str, str] = field(default_factory=dict)  # server id -> conid
    ladders: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # account -> (conid, exchange)
    ladder_last: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summaries: set[str] = field(default_factory=set)
    ledgers: set[str] = field(default_factory=set)
    orders: list[str] | None = None  # status filters ([] = all) while subscribed
    order_seen: dict[int, dict[str, Any]] = field(default_factory=dict)
    pnl: bool = False
    trades: bool = False
    trades_seen: int = 0
    auth_seen: tuple[bool, bool, bool] | None = None  # (logged in, authenticated, competing) last told by sts
    closed_serial: int = 0  # the brokerage session's closings seen: each one ends every stream
    stalled_until: float = 0.0
    next_heartbeat: float = 0.0
    next_pnl: float = 0.0
    next_account: float = 0.0


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def session_from_cookie(header: str | None) -> str | None:
    """The session id in a Cookie header: `api={"session":"<id>"}` (gateway) or `api=<id>` (OAuth)."""
    if not header:
        return None
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if not sep or name != SESSION_COOKIE:
            continue
        value = value.strip().strip('"') if not value.strip().startswith("{") else value.strip()
        if value.startswith("{"):
            try:
                decoded = json.loads(value)
            except ValueError:
                return None
            found = decoded.get(SESSION_FRAME_KEY) if isinstance(decoded, dict) else None
            return found if isinstance(found, str) else None
        return value or None
    return None


class _Connection:
    def __init__(self, sim: Simulator, sock: socket.socket, protocol: Any, authenticated: bool) -> None:
        self.sim = sim
        self.state: GatewayState = sim._state
        self.sock = sock
        self.protocol = protocol
        self.me = _Socket()
        self.partial: list[bytes] = []
        self.open = True
        self._authenticated_at_connect = authenticated
        self.outbox_seen = sim.streaming._opened()
        sim.ws_connections += 1
        self.number = sim.ws_connections

    # -- output ---------------------------------------------------------------------------------------------------

    def flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.sock.sendall(chunk)
            else:
                self.open = False  # the protocol asks for the end of the TCP stream

    def send(self, frame: Any) -> None:
        """Queue one JSON frame; `flush` writes it outside the state lock. A stalled socket sends nothing."""
        if time.monotonic() < self.me.stalled_until:
            return
        self.protocol.send_text(_json(frame).encode("utf-8"))

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def run(self) -> None:
        if self._authenticated_at_connect:
            self.authenticate()
        else:
            self.send({"message": WAITING_FOR_SESSION})
        self.flush()
        while self.open and not self.sim._stopping.is_set():
            self.read(self.sim.streaming.poll)
            if not self.open:
                break
            self.apply_faults()
            if self.open and self.me.authenticated:
                self.push()
                for frame in self.sim.streaming._since(self.outbox_seen):
                    self.outbox_seen += 1
                    if isinstance(frame, Burst):
                        self.flush()
                        self.burst(frame)
                    else:
                        self.send(frame)
            if self.open:
                self.flush()

    def read(self, timeout: float) -> None:
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
        if not pending:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return
        try:
            data = self.sock.recv(_READ_SIZE)
        except (OSError, ssl.SSLError):
            self.open = False
            return
        if not data:
            self.protocol.receive_eof()
            self.open = False
            return
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            self.on_frame(event)
        self.flush()  # pongs and the close handshake
        if self.protocol.close_expected() or self.protocol.state.name in ("CLOSING", "CLOSED"):
            self.open = False

    def on_frame(self, frame: Any) -> None:
        from websockets.frames import Opcode

        if frame.opcode is Opcode.TEXT or (frame.opcode is Opcode.CONT and self.partial):
            self.partial.append(frame.data)
            if not frame.fin:
                return
            text = b"".join(self.partial).decode("utf-8", "replace")
            self.partial = []
            with self.state.lock:
                self.sim.ws_received.append((self.number, text.strip()))
                self.on_text(text.strip())

    # -- client frames --------------------------------------------------------------------------------------------

    def authenticate(self) -> None:
        with self.state.lock:
            fixture = self.state.fixtures["session"]
            user = str(fixture.get("username", "user1234"))
            accounts = list(self.state.account_ids)
            selected = self.state.session.selected_account
            token = self.state.session.token
            from ._session import auth_status

            status = auth_status(self.state)
        self.me.authenticated = True
        self.send({"topic": HEARTBEAT_TOPIC, "success": user, "isFT": False, "isPaper": True})
        self.send(
            {
                "topic": _ACCOUNTS_TOPIC,
                "args": {
                    "accounts": accounts,
                    "acctProps": {a: {"hasChildAccounts": False, "supportsCashQty": True} for a in accounts},
                    "aliases": {a: a for a in accounts},
                    "allowFeatures": {"showGFIS": True, "allowCrypto": False},
                    "groups": [],
                    "profiles": [],
                    "selectedAccount": selected,
                    "serverInfo": status.get("serverInfo", {}),
                    "sessionId": token,
                    "isFT": False,
                    "isPaper": True,
                },
            }
        )
        self.send_status(status)
        self.me.next_heartbeat = time.monotonic() + self.sim.streaming.heartbeat

    def send_status(self, status: dict[str, Any]) -> None:
        keys = ("authenticated", "competing", "connected", "established", "message", "fail")
        session = self.state.session
        self.me.auth_seen = (bool(session.logged_in), bool(status.get("authenticated")), bool(session.competing))
        self.me.closed_serial = session.closed_serial
        self.send({"topic": _STATUS_TOPIC, "args": {k: status.get(k) for k in keys}})

    def end_streams(self) -> None:
        """The brokerage session closed: the gateway forgets every subscription of the socket, silently."""
        me = self.me
        me.md.clear()
        me.history.clear()
        me.ladders.clear()
        me.ladder_last.clear()
        me.summaries.clear()
        me.ledgers.clear()
        me.orders = None
        me.order_seen = {}
        me.pnl = False
        me.trades = False

    def error(self, text: str) -> None:
        self.send({"error": text, "code": UNKNOWN_TOPIC_CODE})

    def on_text(self, text: str) -> None:
        if text.startswith("{"):  # {"session": "<id>"}
            try:
                decoded = json.loads(text)
            except ValueError:
                self.error(f"Bad frame: {text[:40]!r}")
                return
            given = decoded.get(SESSION_FRAME_KEY) if isinstance(decoded, dict) else None
            if given == self.state.session.token and self.state.session.logged_in:
                if not self.me.authenticated:
                    self.authenticate()
            else:
                self.send({"message": WAITING_FOR_SESSION})
            return
        if not self.me.authenticated:
            self.send({"message": WAITING_FOR_SESSION})
            return
        if text == TIC:
            self.send(
                {"topic": TIC_TOPIC, "alive": True, "id": self.state.session.token, "lastAccessed": self.now_ms()}
            )
            return
        if text == ECHO:
            self.protocol.send_text(text.encode("utf-8"))
            return
        try:
            request = parse_client_frame(text)
        except ValueError as exc:
            self.error(str(exc))
            return
        if not (self.state.session.logged_in and self.state.session.brokerage):
            self.error(f"{request.stream.topic}: no brokerage session (see the sts frames)")
            return
        try:
            self.handle(request)
        except GatewayError as exc:
            self.error(str(exc))

    def handle(self, r: ClientFrame) -> None:
        s, me = r.stream, self.me
        if s is MD:
            conid = r.targets.get("conid", "")
            if r.subscribe:
                self.state.contract(conid)  # unknown contracts are refused
                known = me.md.get(conid)
                fields = list(dict.fromkeys((known.fields if known else []) + [str(f) for f in r.args["fields"]]))
                me.md[conid] = _Md(fields, time.monotonic(), known.last if known else {})
                me.md[conid].due = 0.0
            else:
                me.md.pop(conid, None)
        elif s is HISTORY:
            if r.subscribe:
                self.history(r)
            else:
                server_id = r.server_id or ""
                if me.history.pop(server_id, None) is not None:
                    self.send(HISTORY.unsubscribe_ack.ack_frame(server_id=server_id))
        elif s is LADDER:
            if r.subscribe:
                self.state.contract(r.targets["conid"])
                me.ladders[r.targets["account_id"]] = (r.targets["conid"], r.targets.get("exchange"))
                me.ladder_last.pop(r.targets["account_id"], None)
            else:
                me.ladders.pop(r.targets.get("account_id", ""), None)
        elif s is SUMMARY or s is LEDGER:
            subscribed = me.summaries if s is SUMMARY else me.ledgers
            account = self.state.account(r.targets.get("account_id"))
            if r.subscribe:
                subscribed.add(account)
                self.account_frame(s, account)
                me.next_account = time.monotonic() + self.sim.streaming.account_interval
            elif account in subscribed:
                subscribed.discard(account)
                self.send(s.unsubscribe_ack.ack_frame())
        elif s is ORDERS:
            if r.subscribe:
                filters = r.args.get("filters")
                me.orders = [str(f) for f in filters] if isinstance(filters, list) else []
                me.order_seen = {}
                self.push_orders()
            else:
                me.orders = None
        elif s is PNL:
            me.pnl = r.subscribe
            me.next_pnl = 0.0
        elif s is TRADES:
            me.trades = r.subscribe
            if r.subscribe:
                self.first_trades(r.args)

    # -- pushed frames --------------------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.state.now() * 1000)

    def apply_faults(self) -> None:
        fault: Fault | None = self.sim._ws_faults.take_open()
        if fault is None:
            return
        if fault.kind == "reset":
            self.drop()
        elif fault.kind == "stall":
            seconds = float(fault.value) if fault.value is not None else 3600.0
            self.me.stalled_until = time.monotonic() + seconds
        elif fault.kind == "malformed":
            self.protocol.send_text(b'{"topic":"smd+265598","31":"1')

    def drop(self) -> None:
        """End the TCP connection without a close frame (a reset where the platform allows it)."""
        self.open = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def push(self) -> None:
        now = time.monotonic()
        me = self.me
        with self.state.lock:
            state = self.state
            state.settle()
            state.book.match(state.now())
            session = state.session
            missed = session.closed_serial != me.closed_serial  # closed since the last look (maybe open again)
            closed = missed or not (session.logged_in and session.brokerage)
            auth = (bool(session.logged_in), bool(session.brokerage), bool(session.competing))
            if me.auth_seen is not None and (auth != me.auth_seen or missed):
                from ._session import auth_status

                status = auth_status(state)
                if missed and status["authenticated"]:
                    self.send_status({**status, "authenticated": False, "established": False})  # the drop itself
                self.send_status(status)
            if closed:
                self.end_streams()  # no data without a brokerage session; streams must be asked for again
            if now >= me.next_heartbeat:
                me.next_heartbeat = now + self.sim.streaming.heartbeat
                self.send({"topic": HEARTBEAT_TOPIC, HEARTBEAT_FIELD: self.now_ms()})
            self.push_quotes(now)
            self.push_ladders()
            if me.orders is not None:
                self.push_orders()
            if me.trades:
                self.push_trades()
            if me.pnl and now >= me.next_pnl:
                me.next_pnl = now + self.sim.streaming.pnl_interval
                self.push_pnl()
            if (me.summaries or me.ledgers) and now >= me.next_account:
                me.next_account = now + self.sim.streaming.account_interval
                for account in sorted(me.summaries):
                    self.account_frame(SUMMARY, account)
                for account in sorted(me.ledgers):
                    self.account_frame(LEDGER, account)

    def push_quotes(self, now: float) -> None:
        from ._marketdata import _FieldSource

        settings = self.sim.streaming
        markers = self.state.fixtures["marketdata"]["snapshot_markers"]
        for conid, md in list(self.me.md.items()):
            if now - md.since >= settings.md_expiry:
                del self.me.md[conid]  # the stream ends without a word, as IBKR's do
                continue
            if now < md.due:
                continue
            md.due = now + settings.md_interval
            contract = self.state.universe.get(int(conid.split("@")[0]))
            if contract is None:
                continue
            source = _FieldSource(self.state, contract, self.state.now())
            changed: dict[str, str] = {}
            for f in md.fields:
                value = source.value(f)
                if value is not None and md.last.get(f) != value:
                    changed[f] = value
            if not changed:
                continue
            md.last.update(changed)
            frame: dict[str, Any] = {"server_id": markers.get("server_id", "q0"), "conidEx": conid}
            frame["conid"] = contract.conid
            frame["_updated"] = self.now_ms()
            frame.update({k: v for k, v in markers.items() if k != "server_id"})
            frame.update(changed)
            frame["topic"] = MD.route_topic(conid=conid)
            self.send(frame)

    def push_ladders(self) -> None:
        from ._prices import fmt_price

        for account, (conid, exchange) in list(self.me.ladders.items()):
            contract = self.state.universe.get(int(conid))
            if contract is None:
                continue
            q = self.state.quote(contract)
            tick = contract.tick
            rows = []
            for i in range(-_LADDER_ROWS, _LADDER_ROWS + 1):
                price = q.last + i * tick
                rows.append(
                    {
                        "row": i + _LADDER_ROWS,
                        "focus": 1 if i == 0 else 0,
                        "price": fmt_price(price, tick),
                        "ask": str(q.ask_size * (1 + abs(i))) if price >= q.ask else "",
                        "bid": str(q.bid_size * (1 + abs(i))) if price <= q.bid else "",
                    }
                )
            if self.me.ladder_last.get(account) == rows:
                continue
            self.me.ladder_last[account] = rows
            topic = LADDER.route_topic(account_id=account, conid=conid, exchange=exchange)
            self.send({"topic": topic, "data": rows})

    def push_orders(self) -> None:
        from ._orders import live_order_entry

        filters = self.me.orders or []
        changes = []
        for order in sorted(self.state.book.orders.values(), key=lambda o: o.order_id):
            contract = self.state.universe.get(order.conid)
            if contract is None:
                continue
            entry = live_order_entry(order, contract)
            seen = self.me.order_seen.get(order.order_id)
            if seen == entry:
                continue
            self.me.order_seen[order.order_id] = entry
            if filters and entry["status"] not in filters:
                continue
            if seen is None:
                changes.append(entry)
            else:
                delta = {k: v for k, v in entry.items() if seen.get(k) != v}
                delta.update({"acct": entry["acct"], "orderId": entry["orderId"], "conid": entry["conid"]})
                changes.append(delta)
        if changes:
            self.send({"topic": ORDERS.route_topic(), "args": changes})

    def first_trades(self, args: dict[str, Any]) -> None:
        trades = self.state.book.trades
        self.me.trades_seen = len(trades)
        if args.get("realtimeUpdatesOnly") is True:
            return
        days = args.get("days", 1)
        days = days if isinstance(days, int) and not isinstance(days, bool) else 1
        since = (self.state.now() // 86400 - (days - 1)) * 86400 * 1000
        self.send({"topic": TRADES.route_topic(), "args": [dict(t) for t in trades if t["trade_time_r"] >= since]})

    def push_trades(self) -> None:
        trades = self.state.book.trades
        if len(trades) > self.me.trades_seen:
            new = [dict(t) for t in trades[self.me.trades_seen :]]
            self.me.trades_seen = len(trades)
            self.send({"topic": TRADES.route_topic(), "args": new})

    def push_pnl(self) -> None:
        state, book = self.state, self.state.book
        now = state.now()
        out: dict[str, Any] = {}
        for account in state.account_ids:
            t = book.totals(account, now)
            daily = 0.0
            for pos, contract in book.open_positions(account):
                prior = state.prices.day_stats(contract, now).prior_close
                daily += (book.mark(contract, now) - prior) * pos.quantity * contract.multiplier
            out[f"{account}.Core"] = {
                "rowType": 1,
                "dpl": round(daily, 2),
                "nl": round(t["net_liq"], 2),
                "upl": round(t["unrealized"], 2),
                "uel": round(t["excess"], 2),
                "mv": round(t["stock"] + t["option"] + t["future"], 2),
            }
        self.send({"topic": PNL.route_topic(), "args": out})

    def account_frame(self, stream: Any, account: str) -> None:
        from . import _portfolio

        now = self.state.now()
        fake = SimRequest("GET", "", None, {"accountId": account}, {}, None)  # type: ignore[arg-type]
        rows: list[dict[str, Any]] = []
        if stream is SUMMARY:
            summary = _portfolio._summary(self.state, fake)
            for key, item in summary.items():
                row: dict[str, Any] = {"key": key, "timestamp": int(now * 1000), "severity": item["severity"]}
                if item.get("value") is not None:
                    row["value"] = item["value"]
                else:
                    row["monetaryValue"] = item["amount"]
                    row["currency"] = item["currency"]
                rows.append(row)
            rows.append({"key": "AccountCode", "value": account, "timestamp": int(now * 1000)})
        else:
            ledger = _portfolio._ledger(self.state, fake)
            for currency, item in ledger.items():
                row = {k: v for k, v in item.items() if k not in ("acctcode", "key", "secondkey")}
                row.update({"acctCode": account, "key": f"LedgerList{currency}", "secondKey": currency})
                row["timestamp"] = int(now)
                rows.append(row)
        self.send({"topic": stream.route_topic(account_id=account), "result": rows})

    def burst(self, b: Burst) -> None:
        """Write the frames of a burst straight to the socket (no state lock held: REST goes on meanwhile)."""
        md = self.me.md.get(b.conid)
        if md is None:
            b.done.set()
            return
        markers = self.state.fixtures["marketdata"]["snapshot_markers"]
        base = float(md.last.get("31", "100") or 100)
        record = not b.sent_ns
        start = time.perf_counter()
        topic = MD.route_topic(conid=b.conid)
        conid = int(b.conid.split("@")[0])
        for i in range(b.count):
            if b.rate:
                delay = start + i / b.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            last = base + (i % 50) * 0.01
            frame = {
                "server_id": markers.get("server_id", "q0"),
                "conidEx": b.conid,
                "conid": conid,
                "_updated": int(time.time() * 1000),
                "31": f"{last:.2f}",
                "84": f"{last - 0.01:.2f}",
                "86": f"{last + 0.01:.2f}",
                "7059": str(i),
                "topic": topic,
            }
            self.protocol.send_text(_json(frame).encode("utf-8"))
            self.flush()
            if record:
                b.sent_ns.append(time.perf_counter_ns())
        b.done.set()

    def history(self, r: ClientFrame) -> None:
        from ._marketdata import _history

        conid = r.targets["conid"]
        limit = HISTORY.max_concurrent or 5
        if len(self.me.history) >= limit:
            self.error(f"Too many historical data subscriptions: at most {limit} at once")
            return
        query = {"conid": conid, "bar": str(r.args["bar"]), "period": str(r.args["period"])}
        if r.args.get("outsideRth") is True:
            query["outsideRth"] = "true"
        body = _history(self.state, SimRequest("GET", "", None, {}, query, None), series="Last")  # type: ignore[arg-type]
        server_id = self.state.next_server_id()
        self.me.history[server_id] = conid
        frame = dict(body)
        frame[HISTORY.server_id_field or "serverId"] = server_id
        frame["topic"] = HISTORY.route_topic(conid=conid)
        self.send(frame)


class WsFaultBook(FaultBook):
    """Faults of the socket: `status`/`latency` apply to the next connect, the others to every open socket."""

    _CONNECT = ("status", "latency")

    def take_connect(self) -> Fault | None:
        return self._take(lambda f: f.kind in self._CONNECT)

    def take_open(self) -> Fault | None:
        return self._take(lambda f: f.kind not in self._CONNECT)

    def _take(self, wanted: Any) -> Fault | None:
        with self._lock:
            queue = self._faults.get(WS_ROUTE) or []
            for fault in queue:
                if wanted(fault):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            queue.remove(fault)
                    return fault
        return None


def is_upgrade(handler: BaseHTTPRequestHandler) -> bool:
    """Whether this request asks for the socket (a GET with `Upgrade: websocket`; the caller checks the path)."""
    return handler.command == "GET" and (handler.headers.get("Upgrade") or "").lower() == "websocket"


def serve(handler: BaseHTTPRequestHandler, sim: Simulator) -> None:
    """Take over the connection of `handler`: handshake, then play the gateway until either side closes."""
    handler.close_connection = True
    sock: socket.socket = handler.connection
    try:
        from websockets.http11 import Request
        from websockets.server import ServerProtocol
    except ImportError:  # the optional [stream] extra is missing: say so instead of dropping the connection
        body = (
            b'{"error":"the simulator\'s WebSocket needs the websockets package: pip install ibkr-cpapi-sdk[stream]"}'
        )
        head = f"HTTP/1.1 501 Not Implemented\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode("latin-1") + b"Connection: close\r\n\r\n" + body)
        return
    fault = sim._ws_faults.take_connect()
    if fault is not None and fault.kind == "latency":
        sim._wait(float(fault.value or 0.0))
        fault = None
    target = handler.path
    protocol = ServerProtocol(max_size=1 << 20)
    # The REST server has read the request already: hand the protocol the same bytes, so that its parser moves on
    # to WebSocket frames, and answer the handshake from what it parsed.
    head = handler.requestline + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in handler.headers.items()) + "\r\n"
    protocol.receive_data(head.encode("latin-1"))
    requests = [event for event in protocol.events_received() if isinstance(event, Request)]
    if not requests:
        return
    response = protocol.accept(requests[0])
    query = dict(parse_qsl(urlsplit(target).query))
    with sim._state.lock:
        state = sim._state
        session = session_from_cookie(handler.headers.get("Cookie"))
        authenticated = bool(state.session.logged_in) and session == state.session.token
        refused: tuple[int, str] | None = None
        if fault is not None:
            refused = (int(fault.value or 503), "refused by an injected fault")
        elif sim.oauth is not None and query.get(OAUTH_QUERY) != sim.oauth.settings.access_token:
            refused = (401, "OAuth: missing or unknown oauth_token")
        elif sim.oauth2 is not None and not sim.oauth2.session_valid(handler.headers.get("Authorization")):
            refused = (401, "OAuth 2.0: missing or unknown session bearer token")
    if refused is not None and response.status_code == 101:
        response = protocol.reject(refused[0], refused[1] + "\n")
    protocol.send_response(response)
    for chunk in protocol.data_to_send():
        sock.sendall(chunk)
    from ._server import _Incoming

    incoming = _Incoming("GET", urlsplit(target).path, query, None, {k.lower(): v for k, v in handler.headers.items()})
    sim._record(incoming, WS_ROUTE, response.status_code, fault.kind if fault else None)
    if response.status_code != 101:
        return
    sock.settimeout(None)
    connection = _Connection(sim, sock, protocol, authenticated)
    try:
        connection.run()
    except (OSError, ssl.SSLError):
        logger.debug("websocket connection ended", exc_info=True)
    finally:
        sim.streaming._closed()
        if connection.open:
            try:
                protocol.send_close()
                connection.flush()
            except (OSError, ssl.SSLError):
                pass
