"""`IbkrWsClient`: the gateway's WebSocket with subscriptions kept as intent, merged quotes and bounded delivery.

Threads: one runs an asyncio loop that owns the socket (connect, read, heartbeat watch, `tic`, sending
subscriptions, reconnecting with backoff); a second delivers events to a sink that may block (a callback). When the
sink never blocks (`QueueSink`, `NoopSink`), or with `synchronous_output_events=True`, events are handed over from
the reader and the second thread is not started. Both end within a second of `shutdown()`.

The WebSocket library (`websockets`) is imported when the client starts, not when `ibkr_sdk` is imported.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..env import env_bool, env_str
from ..errors import SessionCompetingError
from ..lifecycle import Verdict, explain, verdict_of_status
from ..settings import resolve_verify
from . import _topics, events
from ._bindings import SubscriptionController
from ._state import WsState
from ._threads import in_thread
from .quotes import Quote
from .router import IbkrRouter, Router
from .sinks import DropCounter, EventSink, NoopSink, bounded_size
from .subscriptions import (
    BindingStatus,
    MarketHistorySubscription,
    Subscription,
    SubscriptionHandle,
    SubscriptionResolver,
    make_binding_key,
)

if TYPE_CHECKING:
    from ..client import IbkrClient

__all__ = ["IbkrWsClient", "IbkrSubscriptionResolver"]

logger = logging.getLogger("ibkr_sdk.ws")

DEFAULT_WS_ROUTE = "/v1/api/ws"
DEFAULT_OAUTH_WS_URL = "wss://api.ibkr.com/v1/api/ws"
OAUTH_USER_AGENT = "ClientPortalGW/1"
_loads: Callable[[bytes | str], Any]
try:  # the optional accelerator of the `stream` extra: three times faster than the standard library here
    _loads = importlib.import_module("orjson").loads
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _loads = json.loads
_ACTIVE = BindingStatus.ACTIVE
_STOP_BUDGET = 0.9  # seconds shutdown() may wait for the threads (the promise is one second)


class IbkrSubscriptionResolver:
    """Which binding an event acknowledges: the first frame of a stream acknowledges its subscription."""

    def __init__(self, account_id: str | None = None) -> None:
        self._account_id = account_id

    def resolve_binding_key(self, event: events.WsEvent) -> tuple[bool, str] | tuple[None, None]:
        if isinstance(event, events.Unsubscription):
            return False, make_binding_key(event.target_event_type, event.conid, self._account_id)
        if isinstance(event, events.IbkrTopicEvent):
            return True, make_binding_key(
                type(event), conid=getattr(event, "conid", None), account_id=getattr(event, "account_id", None)
            )
        return None, None


class _Dispatcher:
    """A bounded queue and one thread that hands events to a sink that may block."""

    def __init__(self, sink: EventSink, maxsize: int, drops: DropCounter) -> None:
        self._sink = sink
        self._queue: deque[events.WsEvent] = deque()
        self._maxsize = maxsize
        self._drops = drops
        self._wake = threading.Event()
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="ibkr-ws-deliver", daemon=True)
        self._thread.start()

    def put(self, event: events.WsEvent) -> None:
        queue = self._queue
        if len(queue) >= self._maxsize:
            try:
                queue.popleft()
            except IndexError:
                pass
            self._drops.drop(type(event).__name__)
        queue.append(event)
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        queue, wake, emit = self._queue, self._wake, self._sink.emit
        while self._running:
            wake.wait(0.5)
            wake.clear()
            while self._running:
                try:
                    event = queue.popleft()
                except IndexError:
                    break
                try:
                    emit(event)
                except Exception:
                    logger.exception("sink %r failed on %s", self._sink, type(event).__name__)

    def stop(self, timeout: float) -> bool:
        self._running = False
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(timeout, 0.0))
            if thread.is_alive():
                return False
        self._queue.clear()
        return True


def _ws_url_from_rest(rest_url: str) -> str:
    parts = urlsplit(rest_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


class IbkrWsClient:
    """Streams IBKR's gateway WebSocket: quotes, orders, P&L, trades, account summary and ledger.

    Drop-in for the peer library's `IbkrWsClient` (same constructor, `start`, `subscribe`, `unsubscribe`, `shutdown`,
    sinks and events), plus `quote(conid)` for the merged current quote and `stats()`.

    Args:
        account_id: Account of the session (default from `IBKR_SDK_ACCOUNT_ID`/`IBIND_ACCOUNT_ID`).
        url: WebSocket URL. Default: derived from `ibkr_client`'s REST URL, else `wss://{host}:{port}{base_route}`
            (with OAuth: `IBKR_SDK_OAUTH1A_WS_URL` or IBKR's hosted API).
        host, port, base_route: Parts of the default URL.
        ibkr_client: The REST client whose session this socket joins (its `/tickle` session cookie, certificate
            and OAuth token are used). Default: one made from `account_id`, `host`, `port`, `cacert`, `use_oauth`.
        use_oauth: Connect to IBKR's hosted API with the OAuth access token.
        access_token: OAuth access token (default: the client's OAuth config or the environment).
        cacert: CA bundle path, True (system CAs) or False (accept the gateway's self-signed certificate); default
            the REST client's setting, then as `IbkrClient` decides (off for a loopback host, on for any other).
        cycle_interval: How often (seconds) the loop checks heartbeats, acknowledgements and renewals.
        sink: Where events go (default `NoopSink`).
        router: Frame -> events (default `IbkrRouter`, which also merges quotes).
        subscription_resolver: Event -> acknowledged binding (default: first frame of a stream).
        synchronous_output_events: Call the sink from the reader thread (it must then never block).
        queue_size: Bound of the delivery queue to a blocking sink (drops beyond it are counted).
        connect_timeout: Seconds `start()` waits for a ready session, and each connect attempt may take.
        heartbeat_timeout: A connection that brings no frame for this long is dead (IBKR sends a heartbeat
            about every 10 s): it is closed and re-opened.
        tic_interval: Seconds between two `tic` keep-alives.
        ack_timeout: Seconds to wait for a subscription's acknowledgement before sending it again.
        subscription_retries: How many times an unacknowledged subscription is sent again before it FAILED.
        reconnect_delay, max_reconnect_delay: Backoff between connection attempts (doubling, with jitter).
        md_renew_after: Re-send every expiring subscription (market data) this many seconds after it was sent,
            overriding each subscription's `expiry_seconds` (tests scale IBKR's 15 minutes down with it).
        ping_interval: Seconds between WebSocket pings (a missing pong also ends the connection); None: off.
    """

    def __init__(
        self,
        account_id: str | None = None,
        url: str | None = None,
        host: str = "127.0.0.1",
        port: str = "5000",
        base_route: str = DEFAULT_WS_ROUTE,
        ibkr_client: IbkrClient | None = None,
        use_oauth: bool | None = None,
        access_token: str | None = None,
        cacert: str | bool | None = None,
        cycle_interval: float = 0.25,
        sink: EventSink | None = None,
        router: Router | None = None,
        subscription_resolver: SubscriptionResolver | None = None,
        synchronous_output_events: bool = False,
        *,
        queue_size: int = 10_000,
        connect_timeout: float = 10.0,
        heartbeat_timeout: float = 30.0,
        tic_interval: float = 50.0,
        ack_timeout: float = 5.0,
        subscription_retries: int = 2,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 10.0,
        md_renew_after: float | None = None,
        ping_interval: float | None = 10.0,
    ) -> None:
        name = "IbkrWsClient()"
        for param, value in (
            ("cycle_interval", cycle_interval),
            ("connect_timeout", connect_timeout),
            ("heartbeat_timeout", heartbeat_timeout),
            ("tic_interval", tic_interval),
            ("ack_timeout", ack_timeout),
            ("reconnect_delay", reconnect_delay),
            ("max_reconnect_delay", max_reconnect_delay),
        ):
            if not value > 0:
                raise ValueError(f"{name}: {param} must be positive, got {value!r}")
        if md_renew_after is not None and not md_renew_after > 0:
            raise ValueError(f"{name}: md_renew_after must be positive or None, got {md_renew_after!r}")
        if subscription_retries < 0:
            raise ValueError(f"{name}: subscription_retries must not be negative, got {subscription_retries!r}")
        if account_id is None:
            account_id = env_str("ACCOUNT_ID")
        oauth2 = None
        if ibkr_client is not None:
            if use_oauth is None:
                use_oauth = bool(getattr(ibkr_client, "use_oauth", False))
            if cacert is None:
                shared = ibkr_client.cacert
                cacert = shared if shared is None or isinstance(shared, (str, bool)) else os.fspath(shared)
            if access_token is None and use_oauth:
                access_token = getattr(ibkr_client.oauth_config, "access_token", None)
            oauth2 = getattr(ibkr_client, "_oauth2", None)  # OAuth 2.0: the session token is the handshake's bearer
            if oauth2 is not None and url is None:
                url = env_str("WS_URL") or _ws_url_from_rest(ibkr_client.base_url)
        if use_oauth is None:
            use_oauth = env_bool("USE_OAUTH", False)
        if cacert is None:
            from ..env import env_cacert

            cacert = env_cacert()
        if access_token is None and use_oauth:
            access_token = env_str("OAUTH1A_ACCESS_TOKEN")
        if url is None:
            url = env_str("WS_URL")
        if url is None and use_oauth:
            url = env_str("OAUTH1A_WS_URL", DEFAULT_OAUTH_WS_URL)
        if url is None and ibkr_client is not None:
            url = _ws_url_from_rest(ibkr_client.base_url)
        if url is None:
            url = f"wss://{host}:{port}{base_route}"
        if use_oauth and not access_token and oauth2 is None:
            raise ValueError(
                f"{name}: access_token is required with use_oauth (pass it, give an IbkrClient with an OAuth "
                "config, or set IBKR_SDK_OAUTH1A_ACCESS_TOKEN)"
            )
        if ibkr_client is None:
            from ..client import IbkrClient

            ibkr_client = IbkrClient(account_id=account_id, host=host, port=port, cacert=cacert, use_oauth=use_oauth)
        self._account_id = account_id
        self._url = url
        self._use_oauth = use_oauth
        self._access_token = access_token
        self._cacert = cacert
        self._verify = resolve_verify(url, cacert)  # the REST client's policy: off for loopback unless asked
        self._ibkr_client = ibkr_client
        self._cycle = cycle_interval
        self._connect_timeout = connect_timeout
        self._heartbeat_timeout = heartbeat_timeout
        self._tic_interval = tic_interval
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._ping_interval = ping_interval

        self._sink: EventSink = sink if sink is not None else NoopSink()
        self._drops = DropCounter("IbkrWsClient")
        self._direct = synchronous_output_events or bool(getattr(self._sink, "nonblocking", False))
        self._dispatcher: _Dispatcher | None = None
        self._queue_size = bounded_size(name, queue_size)
        self._router: Any = router if router is not None else IbkrRouter()
        self._fast_route: Callable[[Any], Any] | None = getattr(self._router, "route_message", None)
        self._resolver = subscription_resolver or IbkrSubscriptionResolver(account_id)
        self._default_resolver = subscription_resolver is None
        self._md_keys: dict[str, str] = {}
        self._controller = SubscriptionController(
            self._emit, self._kick, ack_timeout=ack_timeout, retries=subscription_retries, renew_after=md_renew_after
        )
        self._bindings = self._controller._bindings  # read-only here, for the per-frame acknowledgement check
        self._sink_emit = self._sink.emit
        self._history: dict[str, MarketHistorySubscription] = {}
        self._server_ids: dict[type[events.IbkrTopicEvent], dict[str, str]] = {}

        self._state = WsState.STOPPED
        self._state_lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._ws: Any = None
        self._stopping = False
        self._last_error: str | None = None  # the latest connection failure, for `last_failure`
        self._outbox: deque[str] = deque()
        self._tic_lock = threading.Condition()
        self._tic_message: dict[str, Any] = {}
        self._tic_seq = 0
        self._last_rx = 0.0
        self._last_heartbeat: float | None = None
        self._session: Verdict | None = None  # what the last sts frame said
        self._recovery: threading.Thread | None = None
        self._recover_again = False
        self._recovery_stop = threading.Event()
        self._retry_now: asyncio.Event | None = None  # set when the session is back: cut the reconnect pause
        self._frames = 0
        self._events = 0
        self._counters = {
            "malformed": 0,
            "connects": 0,
            "reconnects": 0,
            "stalls": 0,
            "sent": 0,
        }

    # -- public API -------------------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Connect in the background; True when the session became ready within `connect_timeout`.

        When it did not, the client keeps trying in the background (until `shutdown()`), `last_failure` says why
        (the gateway cannot be reached, or it answers but its session is not authenticated) and a warning is
        logged.

        Raises:
            ModuleNotFoundError: `websockets` is missing (`pip install 'ibkr-cpapi-sdk[stream]'`); nothing started.
        """
        _require_websockets()
        with self._state_lock:
            if self._thread is not None:
                return self._ready.is_set()
            self._stopping = False
            self._last_error = None
            self._thread = threading.Thread(target=self._run, name="ibkr-ws", daemon=True)
        self._set_state(WsState.STARTING)
        if not self._direct:
            self._dispatcher = _Dispatcher(self._sink, self._queue_size, self._drops)
            self._dispatcher.start()
        self._thread.start()
        if self._ready.wait(self._connect_timeout):
            return True
        logger.warning(
            "IbkrWsClient.start(): no ready session within %g s: %s", self._connect_timeout, self.last_failure
        )
        return False

    @property
    def last_failure(self) -> str | None:
        """Why the session is not ready (None when it is, or before `start()`): the gateway cannot be reached,
        or it answers but reports no authenticated session."""
        if self._ready.is_set() or self._thread is None:
            return None
        where = urlsplit(self._url).netloc
        session = self._session
        if session is not None and session is not Verdict.OPEN:
            return f"the WebSocket at {where} is open, but the gateway reports the session {session.value}: " + explain(
                session
            )
        if self._state in (WsState.OPEN, WsState.AUTHENTICATED, WsState.DEGRADED) and self._last_error is None:
            return (
                f"the WebSocket at {where} is open, but the gateway has not reported an authenticated brokerage "
                "session: log in to the gateway, or open the session with initialize_brokerage_session()"
            )
        if self._last_error is not None:
            return f"connecting to the gateway failed: {self._last_error}"
        return f"no answer from the gateway at {where} yet"

    def shutdown(self) -> bool:
        """Close the socket and stop every thread (within a second); True when all stopped."""
        deadline = time.monotonic() + _STOP_BUDGET
        with self._state_lock:
            thread = self._thread
            if thread is None:
                return True
            self._stopping = True
        self._set_state(WsState.STOPPING)
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._begin_stop)
            except RuntimeError:  # the loop already closed
                pass
        ok = True
        if thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0))
            ok = not thread.is_alive()
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            ok = dispatcher.stop(deadline - time.monotonic()) and ok
        with self._state_lock:
            self._thread = None
        self._ready.clear()
        self._set_state(WsState.STOPPED)
        if not ok:
            logger.error("IbkrWsClient: a thread did not stop within a second")
        return ok

    close = shutdown

    def __enter__(self) -> IbkrWsClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def hard_reset(self) -> bool:
        """Stop and start again; subscriptions are kept and re-sent."""
        self.shutdown()
        return self.start()

    def reset_websocket_app(self) -> None:
        """Drop the current connection; the client reconnects and re-sends its subscriptions."""
        loop, ws = self._loop, self._ws
        if loop is not None and ws is not None:
            loop.call_soon_threadsafe(self._abort, ws)

    def subscribe(self, subscription: Subscription) -> SubscriptionHandle:
        """Ask for a stream; sent when the session is ready and re-sent after every reconnect. Never blocks."""
        handle = self._controller.subscribe(subscription)
        if isinstance(subscription, MarketHistorySubscription):
            kept = handle.subscription
            assert isinstance(kept, MarketHistorySubscription)
            self._history[handle.binding_key] = kept
        return handle

    def unsubscribe(self, subscription: Subscription) -> SubscriptionHandle:
        """Stop a stream. Never blocks."""
        if isinstance(subscription, MarketHistorySubscription) and not subscription.has_server_id():
            kept = self._history.get(subscription.binding_key())
            server_id = kept.get_server_id() if kept is not None else None
            if server_id is None:
                server_id = self._server_ids.get(events.MarketHistory, {}).get(subscription.conid)
            if server_id is None:
                raise RuntimeError(
                    f"unsubscribe(): no server id is known for the history of conid {subscription.conid!r}; "
                    "wait for its first frame"
                )
            subscription.set_server_id(server_id)
        return self._controller.unsubscribe(subscription)

    def get_binding_status(self, binding_key: str) -> BindingStatus | None:
        """Status of the subscription tracked under `binding_key`."""
        return self._controller.get_status(binding_key)

    def is_subscription_active(self, binding_key: str) -> bool:
        """Whether the subscription under `binding_key` is active."""
        return self._controller.is_subscription_active(binding_key)

    def get_server_id(self, event_type: type[events.IbkrTopicEvent], conid: str) -> str:
        """The server id the gateway gave the stream of `event_type` for `conid` (historical bars)."""
        return self._server_ids[event_type][conid]

    def wait_all(
        self, subscription_handles: SubscriptionHandle | list[SubscriptionHandle], timeout_each: float | None = None
    ) -> list[SubscriptionHandle]:
        """Wait for each handle; returns those that did not reach what was asked."""
        handles = subscription_handles if isinstance(subscription_handles, list) else [subscription_handles]
        return [h for h in handles if not h.wait(timeout_each)]

    def is_running(self) -> bool:
        """Whether the client's thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def get_state(self) -> WsState:
        """The connection state."""
        return self._state

    def is_authenticated(self) -> bool:
        """Whether the session on the socket is ready."""
        return self._state is WsState.AUTHENTICATED

    is_ready = is_authenticated

    def tic(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """Send `tic` (the session keep-alive) and wait for its answer; None if not connected or no answer."""
        if not self.is_authenticated():
            return None
        with self._tic_lock:
            seq = self._tic_seq
        self._outbox.append(_topics.TIC)
        self._kick()
        with self._tic_lock:
            if not self._tic_lock.wait_for(lambda: self._tic_seq != seq, timeout):
                return None
            return dict(self._tic_message)

    def quote(self, conid: str | int) -> Quote | None:
        """The merged current quote of `conid` (None before its first market-data frame)."""
        quotes = getattr(self._router, "quotes", None)
        return None if quotes is None else quotes.get(conid)

    def quotes(self) -> dict[str, Quote]:
        """Every current quote by conid."""
        quotes = getattr(self._router, "quotes", None)
        return {} if quotes is None else quotes.all()

    def stats(self) -> dict[str, Any]:
        """Counters: frames, malformed frames, events, (re)connects, stalls, frames sent, dropped events by type
        (client queue and sink), and each subscription's status, sends and renewals."""
        out: dict[str, Any] = {"frames": self._frames, "events": self._events, **self._counters}
        dropped = self._drops.counts()
        sink_dropped = getattr(self._sink, "dropped", None)
        if callable(sink_dropped):
            for key, value in sink_dropped().items():
                dropped[key] = dropped.get(key, 0) + value
        out["dropped"] = dropped
        out["subscriptions"] = self._controller.stats()
        out["state"] = self._state.value
        return out

    def __repr__(self) -> str:
        parts = urlsplit(self._url)
        return f"{type(self).__name__}(url={urlunsplit((parts.scheme, parts.netloc, parts.path, '', ''))!r})"

    # -- state and delivery -----------------------------------------------------------------------------------------

    _LIFECYCLE: dict[WsState, type[events.LifecycleEvent]] = {
        WsState.STARTING: events.WsStarting,
        WsState.OPEN: events.WsOpen,
        WsState.DEGRADED: events.WsDegraded,
        WsState.STOPPING: events.WsStopping,
        WsState.STOPPED: events.WsStopped,
    }

    def _set_state(self, state: WsState) -> None:
        with self._state_lock:
            previous, self._state = self._state, state
        if previous is state:
            return
        logger.debug("IbkrWsClient: %s -> %s", previous.value, state.value)
        if state is WsState.AUTHENTICATED:
            self._emit(events.WsAuthenticated(previous_state=previous, current_state=state))
            self._emit(events.WsReady(previous_state=previous, current_state=state))
            return
        cls = self._LIFECYCLE.get(state)
        if cls is not None:
            self._emit(cls(previous_state=previous, current_state=state))

    def _emit(self, event: events.WsEvent) -> None:
        if self._direct:
            try:
                self._sink.emit(event)
            except Exception:
                logger.exception("sink %r failed on %s", self._sink, type(event).__name__)
            return
        dispatcher = self._dispatcher
        if dispatcher is not None:
            dispatcher.put(event)

    def _kick(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass

    # -- the loop thread --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception:
            logger.exception("IbkrWsClient: the connection loop failed")
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                self._loop = None
                loop.close()

    def _begin_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._wake is not None:
            self._wake.set()
        ws = self._ws
        if ws is not None:
            self._flush_control(ws, unsubscribes_only=True)  # an unsubscribe() just before shutdown() goes out
            ws.close()  # a close frame; the TCP connection is cut if the answer does not come soon

    def _flush_control(self, ws: Any, *, unsubscribes_only: bool = False) -> None:
        """Send now what the subscriptions need (only the unsubscribe frames, when stopping) and the queued frames
        (`tic`). On the loop's thread; nothing is sent before the session is ready."""
        if not self._ready.is_set():
            return
        out = self._controller.due(time.monotonic(), unsubscribes_only=unsubscribes_only)
        while self._outbox:
            out.append(self._outbox.popleft())
        for payload in out:
            if ws.send(payload):
                self._counters["sent"] += 1

    @staticmethod
    def _abort(ws: Any) -> None:
        ws.abort()

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._recovery_stop.clear()
        guard = getattr(self._ibkr_client, "_session_guard", None)
        if guard is not None:
            guard.add_listener(self._session_back)
        try:
            await self._reconnect_loop()
        finally:
            if guard is not None:
                guard.remove_listener(self._session_back)
            self._recovery_stop.set()
            recovery = self._recovery
            if recovery is not None:
                recovery.join(0.5)

    async def _reconnect_loop(self) -> None:
        assert self._stop is not None and self._retry_now is not None
        delay = self._reconnect_delay
        failures = 0
        while not self._stopping:
            reached_ready = False
            try:
                reached_ready = await self._connect_once()
            except Exception as exc:
                if not self._stopping:
                    self._last_error = _describe(exc)
                    failures += 1
                    level = logging.WARNING if failures == 1 or failures % 20 == 0 else logging.DEBUG
                    logger.log(level, "IbkrWsClient: connection failed (%d in a row): %s", failures, _describe(exc))
                    self._emit(events.WsError(previous_state=self._state, current_state=self._state, error=exc))
            self._ready.clear()
            self._controller.connection_lost()
            reset = getattr(self._router, "reset", None)
            if callable(reset):
                reset()
            for kept in self._history.values():
                kept.clear_server_id()
            if self._stopping:
                break
            self._set_state(WsState.DEGRADED)
            if reached_ready:
                delay = self._reconnect_delay
                failures = 0
            pause = delay * (0.5 + random.random() / 2)
            delay = min(delay * 2, self._max_reconnect_delay)
            self._retry_now.clear()
            waits = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self._retry_now.wait())]
            await asyncio.wait(waits, timeout=pause, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        self._ws = None

    def _handshake(self) -> tuple[str, dict[str, str]]:
        """The URL and headers of a connection: the session cookie from `/tickle`, the OAuth token."""
        return self._handshake_from(self._ibkr_client.tickle().data)

    async def _handshake_async(self) -> tuple[str, dict[str, str]]:
        """`_handshake` as the connection loop calls it: on a helper thread, so that `shutdown()` ends the loop
        within its second even while the gateway is slow to answer `/tickle`."""
        assert self._stop is not None
        return await in_thread(self._handshake, self._stop)

    def _handshake_from(self, answer: Any) -> tuple[str, dict[str, str]]:
        data = answer if isinstance(answer, dict) else {}
        session = data.get("session")
        headers: dict[str, str] = {}
        if session:
            headers["Cookie"] = f"api={session}" if self._use_oauth else "api=" + json.dumps({"session": session})
        url = self._url
        oauth2 = getattr(self._ibkr_client, "_oauth2", None)
        if oauth2 is not None:
            headers.update(oauth2.bearer(url.replace("ws", "http", 1)))
        elif self._use_oauth:
            headers["User-Agent"] = OAUTH_USER_AGENT
            url += ("&" if "?" in url else "?") + f"oauth_token={self._access_token}"
        return url, headers

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self._url.startswith("wss:"):
            return None
        cacert = self._verify
        if cacert is False:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if cacert is True:
            return ssl.create_default_context()
        return ssl.create_default_context(cafile=str(cacert))

    async def _connect_once(self) -> bool:
        from ._transport import open_connection  # loads `websockets` on first use: `import ibkr_sdk` stays light

        if not await self._reachable():
            return False
        url, headers = await self._handshake_async()  # a quick REST call (/tickle) before the socket opens
        if self._stopping:
            return False
        self._counters["connects"] += 1
        if self._counters["connects"] > 1:
            self._counters["reconnects"] += 1
        opening = asyncio.ensure_future(
            open_connection(
                url,
                headers,
                self._on_open,
                self._on_frame,
                ssl_context=self._ssl_context(),
                timeout=self._connect_timeout,
            )
        )
        assert self._stop is not None
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not opening.done():  # shutdown() during the handshake: give up at once
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            return False
        connection = opening.result()
        self._ws = connection
        if self._stopping:
            connection.abort()
            return False
        watchdog = asyncio.ensure_future(self._watch(connection))
        try:
            await connection.closed
        finally:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            self._ws = None
            reached = self._ready.is_set()
            self._emit(
                events.WsClose(
                    previous_state=self._state,
                    current_state=WsState.CLOSED,
                    close_status_code=connection.close_code,
                    close_msg=connection.close_reason,
                )
            )
        return reached

    async def _reachable(self) -> bool:
        """Open and close a TCP connection to the socket's server before the `/tickle` of the handshake, which
        blocks this loop and retries: a gateway that is down fails here at once, and `shutdown()` interrupts it.
        False when stopping.

        Raises:
            ConnectionError: nothing listens there (or no connection within `connect_timeout`).
        """
        parts = urlsplit(self._url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        assert self._stop is not None
        probe = asyncio.ensure_future(
            asyncio.wait_for(asyncio.open_connection(parts.hostname, port), self._connect_timeout)
        )
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({probe, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not probe.done():
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
            return False
        try:
            _, writer = probe.result()
        except asyncio.TimeoutError:
            raise ConnectionError(f"no TCP connection to {parts.netloc} within {self._connect_timeout:g} s") from None
        except OSError as exc:
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ConnectionError(f"nothing answers at {parts.netloc} ({why}): is the gateway running?") from exc
        writer.close()
        return not self._stopping

    def _on_open(self) -> None:
        self._last_rx = time.monotonic()
        self._last_heartbeat = None
        self._last_error = None  # connected: an earlier failure no longer explains anything
        self._set_state(WsState.OPEN)

    async def _watch(self, ws: Any) -> None:
        """Heartbeat and pong watch, keep-alive, and sending what the subscriptions need."""
        wake = self._wake
        assert wake is not None
        last_tic = last_ping = time.monotonic()
        seen = self._frames  # the reader only counts frames; their time is taken here, once a cycle
        while True:
            try:
                await asyncio.wait_for(wake.wait(), self._cycle)
            except asyncio.TimeoutError:
                pass
            wake.clear()
            now = time.monotonic()
            if self._frames != seen:
                seen = self._frames
                self._last_rx = now
            if now - self._last_rx > self._heartbeat_timeout:
                self._counters["stalls"] += 1
                logger.warning(
                    "IbkrWsClient: no frame for %.1fs (heartbeat timeout); reconnecting", now - self._last_rx
                )
                ws.abort()
                return
            if self._ping_interval is not None:
                if now - ws.last_pong > 2 * self._ping_interval + self._cycle:
                    self._counters["stalls"] += 1
                    logger.warning("IbkrWsClient: no pong for %.1fs; reconnecting", now - ws.last_pong)
                    ws.abort()
                    return
                if now - last_ping >= self._ping_interval:
                    ws.ping()
                    last_ping = now
            if not self._ready.is_set():
                continue
            if now - last_tic >= self._tic_interval:
                self._outbox.append(_topics.TIC)
                last_tic = now
            self._flush_control(ws)

    def _on_frame(self, frame: bytes | str) -> None:
        self._frames += 1
        route = self._fast_route
        try:
            if route is not None:
                try:
                    routed = route(_loads(frame))
                except ValueError:
                    routed = self._route_lines(frame)
            else:
                routed = self._router.route(frame if isinstance(frame, str) else frame.decode())
        except Exception as exc:
            self._counters["malformed"] += 1
            logger.warning("IbkrWsClient: skipped a frame that could not be read: %s", _describe(exc))
            return
        if routed is None:
            return
        if type(routed) is list:
            for event in routed:
                self._handle(event)
        else:
            self._handle(routed)

    def _route_lines(self, frame: bytes | str) -> list[events.WsEvent]:
        """Some gateways send several JSON documents, one per line, in one frame."""
        text = frame if isinstance(frame, str) else frame.decode()
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise ValueError("not JSON")
        out: list[events.WsEvent] = []
        assert self._fast_route is not None
        for line in lines:
            routed = self._fast_route(_loads(line))
            if isinstance(routed, list):
                out.extend(routed)
            elif routed is not None:
                out.append(routed)
        return out

    def _handle(self, event: events.WsEvent) -> None:
        self._events += 1
        cls = type(event)
        if cls is events.MarketData and self._default_resolver:  # nearly every frame: kept short
            conid = event.conid  # type: ignore[attr-defined]
            md_key = self._md_keys.get(conid)
            if md_key is None:
                md_key = self._md_keys[conid] = make_binding_key(events.MarketData, conid=conid)
            binding = self._bindings.get(md_key)
            if binding is not None and (binding.status is not _ACTIVE or binding.in_flight):
                self._controller.confirm(md_key, True)
            if self._direct:
                try:
                    self._sink_emit(event)
                except Exception:
                    logger.exception("sink %r failed on %s", self._sink, cls.__name__)
            else:
                self._emit(event)
            return
        elif cls is events.System:
            data = event.data  # type: ignore[attr-defined]
            if _topics.HEARTBEAT_FIELD in data:
                self._last_heartbeat = time.time()
            if data.get("topic") == _topics.TIC_TOPIC:
                with self._tic_lock:
                    self._tic_message = data
                    self._tic_seq += 1
                    self._tic_lock.notify_all()
        elif cls is events.AuthenticationStatus:
            self._on_session_status(event.data)  # type: ignore[attr-defined]
        elif cls is events.ServerId:
            conid, server_id = event.conid, event.server_id  # type: ignore[attr-defined]
            self._server_ids.setdefault(events.MarketHistory, {})[conid] = server_id
            kept = self._history.get(make_binding_key(events.MarketHistory, conid=conid))
            if kept is not None:
                kept.clear_server_id()
                kept.set_server_id(server_id)
        elif cls is events.Unsubscription and getattr(event, "conid", None) is None:
            # summary and ledger acknowledgements do not name the account: they settle every pending one
            target = event.target_event_type  # type: ignore[attr-defined]
            for key, info in self._controller.stats().items():
                if key.startswith(target.topic + "+") or key == target.topic:
                    if info["intent"] == BindingStatus.UNSUBSCRIBED.value:
                        self._controller.confirm(key, False)
        else:
            subscribed, bound = self._resolver.resolve_binding_key(event)
            if bound is not None:
                self._controller.confirm(bound, bool(subscribed))
        self._emit(event)

    # -- the brokerage session (sts frames) ---------------------------------------------------------------------------

    def _on_session_status(self, status: dict[str, Any]) -> None:
        """An `sts` frame. Not authenticated: the gateway ended every stream, so subscriptions are DEGRADED and the
        REST client re-opens the session (competing: nobody does without the user). Authenticated again: each
        subscription is sent once more."""
        verdict = verdict_of_status(status)
        if verdict is Verdict.UNKNOWN:
            return
        previous, self._session = self._session, verdict
        if verdict is Verdict.OPEN:
            if not self._ready.is_set():
                if previous is not None and previous is not Verdict.OPEN:
                    waiting = sum(1 for b in self._controller.stats().values() if b["intent"] == "ACTIVE")
                    logger.info("IbkrWsClient: the brokerage session is back; sending %d subscriptions again", waiting)
                    self._emit(events.SessionChanged(state=verdict.value, detail=explain(verdict)))
                self._set_state(WsState.AUTHENTICATED)
                self._ready.set()
                if self._wake is not None:
                    self._wake.set()
            return
        if self._ready.is_set():
            self._ready.clear()
            self._controller.connection_lost()  # the gateway forgot every stream: DEGRADED until sent again
            self._set_state(WsState.DEGRADED)
        if verdict is not previous:
            level = logging.WARNING if previous is Verdict.OPEN or verdict is Verdict.COMPETING else logging.INFO
            logger.log(level, "IbkrWsClient: the gateway reports the session %s. %s", verdict.value, explain(verdict))
            error = SessionCompetingError(explain(verdict)) if verdict is Verdict.COMPETING else None
            self._emit(events.SessionChanged(state=verdict.value, detail=explain(verdict), error=error))
        if verdict is Verdict.CLOSED:
            self._start_recovery()

    def _start_recovery(self) -> None:
        """Re-open the brokerage session through the REST client (once at a time per gateway), off the loop."""
        if self._stopping or not getattr(self._ibkr_client, "_auto_reauthenticate", False):
            return
        self._recover_again = True
        running = self._recovery
        if running is not None and running.is_alive():
            return  # it looks again when it is through: the session may have dropped while it was being re-opened
        self._recovery = threading.Thread(target=self._recover, name="ibkr-ws-session", daemon=True)
        self._recovery.start()

    def _recover(self) -> None:
        stop = self._recovery_stop
        while not stop.is_set():
            self._recover_again = False
            verdict = self._recover_once()
            if self._recover_again:
                continue  # another sts came meanwhile: look at the session afresh
            if verdict is Verdict.OPEN or verdict is Verdict.UNKNOWN or verdict.needs_a_person:
                return  # done, or a person is needed: the socket's next sts (or a reconnect) starts again
            # Still closed (not open in time, or held off after a failure): look again while the socket says closed.
            if self._session is not Verdict.CLOSED or stop.wait(1.0):
                return

    def _recover_once(self) -> Verdict:
        try:
            verdict: Verdict = self._ibkr_client._restore_session(cancel=self._recovery_stop)
        except Exception as exc:  # the REST client was closed, or a bug: the socket carries on either way
            logger.warning("IbkrWsClient: re-opening the brokerage session failed: %s", _describe(exc))
            return Verdict.UNKNOWN
        if verdict is Verdict.OPEN:
            # The gateway says so with sts on this socket; a new connection hears it at connect if this one does not.
            for _ in range(20):
                if self._ready.wait(0.1) or self._recovery_stop.is_set():
                    return verdict
            if self._session is not Verdict.CLOSED:
                logger.info("IbkrWsClient: the session is open but the socket did not hear it; reconnecting")
                self.reset_websocket_app()
        elif verdict in (Verdict.LOGIN_GONE, Verdict.UNREACHABLE):  # sts frames cannot say these
            self._emit(events.SessionChanged(state=verdict.value, detail=explain(verdict)))
        return verdict

    def _session_back(self, verdict: Verdict) -> None:
        """The REST side found the session open again (tickler, a request): reconnect now instead of after backoff."""
        loop, retry = self._loop, self._retry_now
        if loop is not None and retry is not None:
            try:
                loop.call_soon_threadsafe(retry.set)
            except RuntimeError:
                pass


def _require_websockets() -> None:
    """Fail at once, with the extra to install, when the WebSocket library is missing."""
    try:
        importlib.import_module("websockets")
    except ModuleNotFoundError as exc:
        if exc.name != "websockets":
            raise
        raise ModuleNotFoundError(
            "IbkrWsClient.start(): streaming needs the websockets library: pip install 'ibkr-cpapi-sdk[stream]'",
            name="websockets",
        ) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
