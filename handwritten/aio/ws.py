"""`AsyncIbkrWsClient`: the gateway's WebSocket for asyncio programs, on the caller's event loop.

The machinery is `IbkrWsClient`'s own (the same connection code, router and quote merging, subscriptions kept as
intent, heartbeat and pong watch, reconnect with backoff, re-subscription, market-data renewal, bounded queues),
run as a task of the running loop instead of in a thread of its own: no thread is started (with a sync
`IbkrClient` for the session, its `/tickle` runs in a short-lived thread, since it blocks). Events go to one bounded
queue read with `async for event in ws.events()`; a full queue drops its oldest event and counts it (`stats()`).

    async with AsyncIbkrWsClient(ibkr_client=client) as ws:
        aapl = await ws.subscribe(MarketDataSubscription(conid="265598", fields=["31", "84", "86"]))
        async for event in ws.events(events.MarketData):
            print(ws.quote(265598)["last_price"])
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..client import IbkrClient
from ..flow import Waiters
from ..lifecycle import Verdict, explain
from ..ws import _topics, events
from ..ws._state import WsState
from ..ws._threads import in_thread
from ..ws.client import IbkrWsClient
from ..ws.quotes import Quote
from ..ws.router import Router
from ..ws.sinks import DropCounter, EventSink, bounded_size
from ..ws.subscriptions import BindingStatus, Subscription, SubscriptionHandle, SubscriptionResolver, SubscriptionView
from .client import AsyncIbkrClient

logger = logging.getLogger("ibkr_sdk.ws")

__all__ = ["AsyncIbkrWsClient", "AsyncSubscriptionHandle"]

_STOP_BUDGET = 0.9  # seconds leaving the context may take (the promise is one second)
_POLL = 0.02  # seconds between looks at a state that has no notification of its own (readiness, a handle)


class _EventQueue:
    """The sink of `AsyncIbkrWsClient`: one bounded FIFO, fed on the loop's thread, read by `events()`."""

    nonblocking = True

    def __init__(self, maxsize: int) -> None:
        self._items: deque[events.WsEvent] = deque()
        self._maxsize = maxsize
        self._drops = DropCounter("AsyncIbkrWsClient")
        self.waiters = Waiters()

    def emit(self, event: events.WsEvent) -> None:
        items = self._items
        if len(items) >= self._maxsize:
            items.popleft()
            self._drops.drop(type(event).__name__)
        items.append(event)
        self.waiters.notify_all()

    def dropped(self) -> dict[str, int]:
        return self._drops.counts()


class _Engine(IbkrWsClient):
    """`IbkrWsClient` whose connection loop is a task of the caller's loop, with a non-blocking handshake and
    session recovery."""

    _task: asyncio.Task[None] | None = None
    _recovery_task: asyncio.Task[None] | None = None

    def _start_recovery(self) -> None:
        """As `IbkrWsClient._start_recovery`, as a task of the loop instead of a thread."""
        if self._stopping or not getattr(self._ibkr_client, "_auto_reauthenticate", False):
            return
        self._recover_again = True
        running = self._recovery_task
        if running is not None and not running.done():
            return  # it looks again when it is through
        self._recovery_task = asyncio.ensure_future(self._recover_async())

    async def _recover_async(self) -> None:
        stop = self._recovery_stop
        while not stop.is_set():
            self._recover_again = False
            verdict = await self._recover_once_async()
            if self._recover_again:
                continue  # another sts came meanwhile: look at the session afresh
            if verdict is Verdict.OPEN or verdict is Verdict.UNKNOWN or verdict.needs_a_person:
                return
            if self._session is not Verdict.CLOSED:
                return
            await asyncio.sleep(1.0)

    async def _recover_once_async(self) -> Verdict:
        client: Any = self._ibkr_client
        try:
            if isinstance(client, AsyncIbkrClient):
                verdict: Verdict = await client._restore_session(cancel=self._recovery_stop)
            else:  # a sync client blocks: its re-open runs in a thread that ends with it
                verdict = await in_thread(lambda: client._restore_session(cancel=self._recovery_stop))
        except Exception as exc:  # the REST client was closed, or a bug: the socket carries on either way
            logger.warning("AsyncIbkrWsClient: re-opening the brokerage session failed: %s", exc)
            return Verdict.UNKNOWN
        if verdict is Verdict.OPEN:
            for _ in range(20):  # the gateway says so with sts on this socket
                if self._ready.is_set() or self._recovery_stop.is_set():
                    return verdict
                await asyncio.sleep(0.1)
            if self._session is not Verdict.CLOSED:
                logger.info("AsyncIbkrWsClient: the session is open but the socket did not hear it; reconnecting")
                self.reset_websocket_app()
        elif verdict in (Verdict.LOGIN_GONE, Verdict.UNREACHABLE):  # sts frames cannot say these
            self._emit(events.SessionChanged(state=verdict.value, detail=explain(verdict)))
        return verdict

    async def _handshake_async(self) -> tuple[str, dict[str, str]]:
        client: Any = self._ibkr_client
        if isinstance(client, AsyncIbkrClient):
            answer = (await client.tickle()).data
        else:  # a sync client blocks: its one request runs in a thread that ends with it
            answer = (await in_thread(client.tickle, self._stop)).data
        return self._handshake_from(answer)


class AsyncSubscriptionHandle(SubscriptionView):
    """What `AsyncIbkrWsClient.subscribe()`/`unsubscribe()` return: the live status of one subscription, with
    `await handle.wait()` (which yields to the loop; the sync handle's blocking `wait()` would stall it) and
    `await handle.unsubscribe()`."""

    def __init__(self, client: AsyncIbkrWsClient, handle: SubscriptionHandle) -> None:
        super().__init__(handle._controller, handle.subscription)
        self._client = client

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until it reaches what was asked; False on timeout or failure."""
        return await self._client.wait(self, timeout=timeout)

    async def unsubscribe(self) -> AsyncSubscriptionHandle:
        """Stop the stream (returns once the unsubscribe frame is on the wire); returns this handle."""
        await self._client.unsubscribe(self.subscription)
        return self


class AsyncIbkrWsClient:
    """Streams IBKR's gateway WebSocket on the running asyncio loop: quotes, orders, P&L, trades, account summary
    and ledger, with the subscriptions, events and merged quotes of `IbkrWsClient`.

    Use `async with AsyncIbkrWsClient(ibkr_client=client) as ws:`; leaving the block stops everything within a
    second. `await ws.subscribe(...)` returns an `AsyncSubscriptionHandle` (a subscription made before the session is
    ready is kept and sent once it is); `await ws.unsubscribe(...)` returns once the unsubscribe frame is on the
    wire; `async for event in ws.events()` yields the events (`ibkr_sdk.events`); `ws.quote(conid)` is the merged
    current quote.

    Args:
        ibkr_client: The REST client whose session this socket joins (`AsyncIbkrClient` or `IbkrClient`): its
            `/tickle` session cookie, certificate and OAuth token are used. Default: an `AsyncIbkrClient` made from
            `account_id`, `host` and `port`, closed with this client.
        queue_size: Bound of the event queue read by `events()` (drops beyond it are counted in `stats()`).
        sink: Send events to this sink instead of the queue (it must never block: it is called on the loop).
        The other arguments are `IbkrWsClient`'s.
    """

    def __init__(
        self,
        account_id: str | None = None,
        url: str | None = None,
        host: str = "127.0.0.1",
        port: str = "5000",
        base_route: str = "/v1/api/ws",
        ibkr_client: AsyncIbkrClient | IbkrClient | None = None,
        use_oauth: bool | None = None,
        access_token: str | None = None,
        cacert: str | bool | None = None,
        cycle_interval: float = 0.25,
        sink: EventSink | None = None,
        router: Router | None = None,
        subscription_resolver: SubscriptionResolver | None = None,
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
        self._own_client: AsyncIbkrClient | None = None
        if ibkr_client is None:
            ibkr_client = self._own_client = AsyncIbkrClient(
                account_id=account_id, host=host, port=port, cacert=cacert, use_oauth=use_oauth
            )
        self._queue = _EventQueue(bounded_size("AsyncIbkrWsClient()", queue_size)) if sink is None else None
        self._engine = _Engine(
            account_id,
            url,
            host,
            port,
            base_route,
            ibkr_client,  # type: ignore[arg-type]  # the engine only calls tickle() and reads settings
            use_oauth,
            access_token,
            cacert,
            cycle_interval,
            self._queue if sink is None else sink,
            router,
            subscription_resolver,
            True,  # events are handed over on the loop, never from another thread
            queue_size=queue_size,
            connect_timeout=connect_timeout,
            heartbeat_timeout=heartbeat_timeout,
            tic_interval=tic_interval,
            ack_timeout=ack_timeout,
            subscription_retries=subscription_retries,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            md_renew_after=md_renew_after,
            ping_interval=ping_interval,
        )
        self._stopped = asyncio.Event()

    # -- life cycle -----------------------------------------------------------------------------------------------

    async def start(self) -> bool:
        """Connect in the background (a task of the running loop); True when the session became ready within
        `connect_timeout`. Subscriptions made before then are kept and sent once it is."""
        engine = self._engine
        if engine._task is None:
            engine._stopping = False
            engine._loop = asyncio.get_running_loop()
            self._stopped.clear()
            engine._set_state(WsState.STARTING)
            engine._task = asyncio.ensure_future(engine._main())
        deadline = time.monotonic() + engine._connect_timeout
        while not engine._ready.is_set() and time.monotonic() < deadline and not engine._task.done():
            await asyncio.sleep(_POLL)
        return engine._ready.is_set()

    async def shutdown(self) -> bool:
        """Send pending unsubscribe frames, close the socket and end the connection task (within a second); True
        when it ended in time (otherwise it is cancelled)."""
        engine = self._engine
        task = engine._task
        if task is None:
            return True
        engine._stopping = True
        engine._set_state(WsState.STOPPING)
        engine._begin_stop()
        done, _ = await asyncio.wait({task}, timeout=_STOP_BUDGET)
        ok = bool(done)
        if not ok:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            logger.error("AsyncIbkrWsClient: the connection task did not stop within a second; it was cancelled")
        recovery = engine._recovery_task
        if recovery is not None and not recovery.done():
            recovery.cancel()
            await asyncio.gather(recovery, return_exceptions=True)
        engine._task = None
        engine._loop = None
        engine._ready.clear()
        engine._set_state(WsState.STOPPED)
        self._stopped.set()
        if self._queue is not None:
            self._queue.waiters.notify_all()
        if self._own_client is not None:
            await self._own_client.aclose()
        return ok

    async def __aenter__(self) -> AsyncIbkrWsClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- subscriptions --------------------------------------------------------------------------------------------

    async def subscribe(self, subscription: Subscription) -> AsyncSubscriptionHandle:
        """Ask for a stream: sent at once on a ready session (else once it is ready), re-sent after every
        reconnect. Returns its handle (`await handle.wait()` waits for the acknowledgement)."""
        handle = self._engine.subscribe(subscription)
        self._flush()
        return AsyncSubscriptionHandle(self, handle)

    async def unsubscribe(self, subscription: Subscription) -> AsyncSubscriptionHandle:
        """Stop a stream; returns once the unsubscribe frame is on the wire (at once when nothing needs sending)."""
        handle = self._engine.unsubscribe(subscription)
        self._flush()
        return AsyncSubscriptionHandle(self, handle)

    def _flush(self) -> None:
        engine = self._engine
        ws = engine._ws
        if ws is not None and engine._loop is asyncio.get_running_loop():
            engine._flush_control(ws)

    async def wait(self, handles: SubscriptionView | Sequence[SubscriptionView], timeout: float | None = None) -> bool:
        """Wait until each handle reached what was asked (subscribed or unsubscribed); False on timeout or when
        one FAILED."""
        items = [handles] if isinstance(handles, SubscriptionView) else list(handles)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if any(h.status is BindingStatus.FAILED for h in items):
                return False
            if all(h.done for h in items):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL)

    # -- events and quotes ----------------------------------------------------------------------------------------

    async def events(self, *types: type[events.WsEvent]) -> AsyncIterator[events.WsEvent]:
        """The events as they arrive (only those of `types` when given; others are skipped), until the client
        stops. One queue: with several readers, each event goes to one of them."""
        queue = self._queue
        if queue is None:
            raise RuntimeError("events(): this client sends its events to the sink it was given")
        items = queue._items
        while True:
            while items:  # drain what arrived before waiting again (most wake-ups bring many events)
                event = items.popleft()
                if not types or isinstance(event, types):
                    yield event
            if self._stopped.is_set() or self._engine._task is None:
                return
            await queue.waiters.wait(1.0)

    def quote(self, conid: str | int) -> Quote | None:
        """The merged current quote of `conid` (None before its first market-data frame)."""
        return self._engine.quote(conid)

    def quotes(self) -> dict[str, Quote]:
        """Every current quote by conid."""
        return self._engine.quotes()

    async def tic(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """Send `tic` (the session keep-alive) and wait for its answer; None if not connected or no answer."""
        engine = self._engine
        if not engine.is_authenticated():
            return None
        seq = engine._tic_seq
        engine._outbox.append(_topics.TIC)
        self._flush()
        deadline = time.monotonic() + timeout
        while engine._tic_seq == seq:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(_POLL)
        return dict(engine._tic_message)

    def get_state(self) -> WsState:
        """The connection state."""
        return self._engine.get_state()

    def is_ready(self) -> bool:
        """Whether the session on the socket is ready."""
        return self._engine.is_authenticated()

    def get_binding_status(self, binding_key: str) -> BindingStatus | None:
        """Status of the subscription tracked under `binding_key`."""
        return self._engine.get_binding_status(binding_key)

    def stats(self) -> dict[str, Any]:
        """Counters as `IbkrWsClient.stats()`; `dropped` counts the events the full queue dropped."""
        return self._engine.stats()  # the engine adds its sink's drops: this client's queue

    def __repr__(self) -> str:
        return repr(self._engine).replace("IbkrWsClient", "AsyncIbkrWsClient", 1)
