"""One logic, two I/O styles: multi-request flows written once, driven by the sync or the asyncio client.

A flow is a generator. Wherever it needs I/O it yields what a client method returns, e.g.
`result = yield api.live_orders()` or `yield api._sleep(1.0)`, and carries on with the value sent back. On
`IbkrClient` those methods do the I/O at once and return the value (a `Result`, None), which `run` sends straight
back; on `AsyncIbkrClient` they return awaitables, which `arun` awaits, sending back the value or throwing the
exception in at the `yield`. Either way the flow sees a value or an exception at the same line, so the question/
reply loop, reconciliation, preflight, token renewal and the helpers that combine requests exist once.

The client side of the contract (both clients have these, sync or coroutine):
- every endpoint and overlay method, and `_transport.send(...)`;
- `_sleep(seconds)`, `_acquire(lock)` (a lock of the client's kind; released with `lock.release()`),
  `_gather(thunks, limit)` (run zero-argument callables concurrently, at most `limit` at once, and give back each
  one's result or exception, in order), `_live_snapshot(feed, not_before, fetch)` (see `orders.py`) and
  `_coordinate(fn, *args, undo=None)` (a call into the coordination store: at once, or for the asyncio client from
  the coordination worker thread when the store does network I/O; see `coordination/offloop.py`).

Waiters: `Waiters` lets asyncio tasks wait for a notification sent from any thread (a pacer slot freed, an order
lock released, a live-orders snapshot offered), so the asyncio client shares these objects with sync clients
without blocking its loop.
"""

from __future__ import annotations

import inspect
import threading
import types
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # asyncio is imported where it is used: `import ibkr_sdk` does not load it
    import asyncio

T = TypeVar("T")
_COROUTINE = types.CoroutineType

Flow = Generator[Any, Any, T]
"""A flow returning T: yields what the client's methods return, receives their values."""


def run(flow: Flow[T]) -> T:
    """Drive a flow with a sync client: every yielded value is already the answer."""
    try:
        value = next(flow)
        while True:
            value = flow.send(value)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def arun(flow: Flow[T]) -> T:
    """Drive a flow with the asyncio client: await what it yields, send back the value or throw in the error."""
    send = flow.send
    try:
        step = next(flow)
        while True:
            if type(step) is _COROUTINE or inspect.isawaitable(step):
                try:
                    value = await step
                except BaseException as exc:  # CancelledError included: the flow's finally blocks run
                    step = flow.throw(exc)
                    continue
                step = send(value)
            else:
                step = send(step)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def gather_limited(thunks: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Await every thunk's awaitable, at most `limit` at once; each result or exception, in order."""
    import asyncio

    semaphore = asyncio.Semaphore(max(1, limit))

    async def one(thunk: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            try:
                return await thunk()
            except Exception as exc:  # given back in place of the result
                return exc

    return list(await asyncio.gather(*(one(t) for t in thunks)))


class Waiters:
    """asyncio futures waiting for a notification that may come from any thread. `notify_all()` wakes them all
    (and is cheap with none); a waiter always bounds its wait, so a missed notification costs a short delay only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    async def wait(self, timeout: float) -> None:
        """Wait for the next notification, at most `timeout` seconds."""
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            self._futures.append(entry)
        try:
            await asyncio.wait_for(future, max(0.0, timeout))
        except asyncio.TimeoutError:
            pass
        finally:
            with self._lock:
                try:
                    self._futures.remove(entry)
                except ValueError:
                    pass

    def notify_all(self) -> None:
        if not self._futures:
            return
        import asyncio

        with self._lock:
            waiting, self._futures = self._futures, []
        here = asyncio._get_running_loop()
        for loop, future in waiting:
            if loop is here:
                _wake(future)  # on that loop's own thread: no need to wake its selector
                continue
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that loop is closed
                pass


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SharedLock:
    """A lock for threads and asyncio tasks alike: `acquire()`/`release()`/`with` for threads, `await
    acquire_async()` for tasks, which waits without blocking the loop. The order lock of one server and account is
    one of these, whichever kind of client takes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters = Waiters()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    async def acquire_async(self) -> bool:
        while not self._lock.acquire(blocking=False):
            await self._waiters.wait(0.05)  # woken by release(); the bound covers a release between the two
        return True

    def release(self) -> None:
        self._lock.release()
        self._waiters.notify_all()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
