"""Where events go: sinks with the peer library's names (`EventSink`, `NoopSink`, `LogSink`, `CallbackSink`,
`QueueSink`, `CompositeSink`, `QueueAccessor`).

Every queue here is bounded. A full queue drops its oldest event (or, with `drop_oldest=False`, the new one), counts
the drop and logs a warning at most once every few seconds; `dropped()` reports the counts. Sinks that never block
(`NoopSink`, `QueueSink`, a `CompositeSink` of such) declare `nonblocking = True`, and the client then hands them
events straight from its reader thread; other sinks get their own delivery thread so a slow callback never holds
up the socket.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from ..env import env_bool, env_str
from .events import WsEvent

__all__ = [
    "CallbackSink",
    "CompositeSink",
    "EventSink",
    "LogSink",
    "NoopSink",
    "QueueAccessor",
    "QueueSink",
]

logger = logging.getLogger("ibkr_sdk.ws")

DEFAULT_QUEUE_SIZE = 10_000
_WARN_EVERY = 5.0  # seconds between two warnings about drops of one queue

Q = TypeVar("Q")
E = TypeVar("E", bound=WsEvent)


def _default_queue_size() -> int:
    text = env_str("WS_MAX_QUEUE_SIZE")
    if text is None:
        return DEFAULT_QUEUE_SIZE
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable WS_MAX_QUEUE_SIZE must be an integer, got {text!r}") from None


def bounded_size(where: str, maxsize: int) -> int:
    """`maxsize`, or the default bound for 0 or less (the peer's "unbounded"): no queue here grows without limit."""
    if maxsize > 0:
        return maxsize
    logger.warning("%s: maxsize=%s would be unbounded; using the bound %s instead", where, maxsize, DEFAULT_QUEUE_SIZE)
    return DEFAULT_QUEUE_SIZE


class DropCounter:
    """Counts dropped events by key and rate-limits the warning about them."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._counts: dict[str, int] = {}
        self._warned: dict[str, float] = {}
        self._lock = threading.Lock()

    def drop(self, key: str) -> None:
        with self._lock:
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
            now = time.monotonic()
            if now - self._warned.get(key, -_WARN_EVERY) < _WARN_EVERY:
                return
            self._warned[key] = now
        logger.warning("%s: queue for %s is full; %d events dropped so far", self._owner, key, count)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class BoundedQueue:
    """A bounded FIFO with the `queue.Queue` reading interface (`get`, `get_nowait`, `empty`, `qsize`), whose
    producer never blocks: `offer()` on a full queue drops the oldest item (or the new one) and says so. Cheaper
    than `queue.Queue` on the producer side, which is the socket reader: an offer takes no lock unless a reader
    sleeps, and wakes a sleeping reader once (not on every offer until that reader gets to run)."""

    def __init__(self, maxsize: int, drop_oldest: bool = True) -> None:
        self.maxsize = maxsize
        self._drop_oldest = drop_oldest
        self._items: deque[Any] = deque(maxlen=maxsize if drop_oldest else None)
        self._lock = threading.Lock()
        self._sleepers: deque[Any] = deque()  # a held lock per sleeping reader, released (and removed) to wake it

    def offer(self, item: Any) -> bool:
        """Append `item`; False when the queue was full and an item (the oldest, or this one) was dropped.

        No lock on this path unless a reader sleeps: deque appends and pops are atomic, and a reader registers as a
        sleeper before it looks at the queue a last time, so no wake-up is lost."""
        items = self._items
        full = len(items) >= self.maxsize
        if not full or self._drop_oldest:
            items.append(item)  # a deque with maxlen drops the oldest by itself
        if self._sleepers:
            self._wake_one()
        return not full

    def _wake_one(self) -> None:
        with self._lock:
            if self._sleepers:
                self._sleepers.popleft().release()

    def put_nowait(self, item: Any) -> None:
        if not self.offer(item) and not self._drop_oldest:
            raise queue.Full

    put = put_nowait

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        items = self._items
        try:
            return items.popleft()
        except IndexError:
            if not block:
                raise queue.Empty from None
        deadline = None if timeout is None else time.monotonic() + timeout
        lock, sleepers = self._lock, self._sleepers
        while True:
            waiter = threading.Lock()
            waiter.acquire()
            with lock:
                sleepers.append(waiter)
            if not items:  # the last look, after registering: an item offered from now on wakes a sleeper
                if deadline is None:
                    waiter.acquire()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining > 0:
                        waiter.acquire(timeout=min(remaining, threading.TIMEOUT_MAX))
            with lock:
                try:
                    sleepers.remove(waiter)
                    woken = False
                except ValueError:  # an offer released it
                    woken = True
            try:
                item = items.popleft()
            except IndexError:
                if deadline is not None and deadline - time.monotonic() <= 0:
                    raise queue.Empty from None
                continue
            if woken and items and sleepers:
                self._wake_one()  # the wake-up may have been meant for another reader: pass it on
            return item

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def qsize(self) -> int:
        return len(self._items)


@runtime_checkable
class EventSink(Protocol):
    """Anything with `emit(event)`. Set `nonblocking = True` on a sink whose `emit` never waits."""

    def emit(self, event: WsEvent) -> None: ...


class NoopSink:
    """Discards every event."""

    nonblocking = True

    def emit(self, event: WsEvent) -> None:
        pass


class LogSink:
    """Logs every event at INFO on the `ibkr_sdk.ws` logger."""

    nonblocking = False

    def emit(self, event: WsEvent) -> None:
        logger.info("%s", event)


class CallbackSink:
    """Calls the callbacks registered for an event's exact type; an exception in one callback is logged."""

    nonblocking = False

    def __init__(self) -> None:
        self._callbacks: dict[type[WsEvent], list[Callable[[Any], None]]] = {}
        self._lock = threading.Lock()

    def on(self, event_type: type[E], callback: Callable[[E], None]) -> None:
        """Call `callback(event)` for every event of type `event_type` (registering a callback twice: no-op)."""
        with self._lock:
            callbacks = list(self._callbacks.get(event_type, ()))
            if callback not in callbacks:
                callbacks.append(callback)
            self._callbacks[event_type] = callbacks  # replaced, never mutated: emit reads without the lock

    def has_callback(self, event_type: type[E], callback: Callable[[E], None]) -> bool:
        """Whether `callback` is registered for `event_type`."""
        return callback in self._callbacks.get(event_type, ())

    def emit(self, event: WsEvent) -> None:
        for callback in self._callbacks.get(type(event), ()):
            try:
                callback(event)
            except Exception:
                logger.exception("CallbackSink: callback %r failed on %s", callback, type(event).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class QueueAccessor(Generic[Q]):
    """One queue of a `QueueSink`, with the key (event type) it holds."""

    def __init__(self, queue: BoundedQueue | queue.Queue[Any], key: Q) -> None:
        self.__queue__ = queue
        self._key = key

    def get(self, block: bool = False, timeout: float | None = None) -> Any:
        """The next event, or None when there is none (after waiting up to `timeout` with `block=True`)."""
        try:
            return self.__queue__.get(block=block, timeout=timeout)
        except queue.Empty:
            return None

    def empty(self) -> bool:
        """Whether the queue is empty now."""
        return self.__queue__.empty()

    @property
    def key(self) -> Q:
        """The key of this queue (the event type)."""
        return self._key

    def __repr__(self) -> str:
        return f"QueueAccessor(key={self._key!r}, size={self.__queue__.qsize()})"


class QueueSink:
    """One bounded queue per event type; read them with `get(event_type)` or a `new_queue_accessor(event_type)`.

    Args:
        maxsize: Bound of each queue (default 10,000 or `IBKR_SDK_WS_MAX_QUEUE_SIZE`/`IBIND_WS_MAX_QUEUE_SIZE`);
            0 or less, the peer's "unbounded", gets the default bound.
        drop_oldest: When a queue is full, drop its oldest event (default) or the new one. Drops are counted in
            `dropped()` and logged.
    """

    nonblocking = True

    def __init__(self, maxsize: int | None = None, drop_oldest: bool | None = None) -> None:
        self._maxsize = bounded_size("QueueSink", _default_queue_size() if maxsize is None else maxsize)
        self._drop_oldest = env_bool("WS_DROP_OLDEST", True) if drop_oldest is None else drop_oldest
        self._queues: dict[type[WsEvent], BoundedQueue] = {}
        self._lock = threading.Lock()
        self._drops = DropCounter("QueueSink")

    @property
    def maxsize(self) -> int:
        """The bound of each queue."""
        return self._maxsize

    def _queue(self, event_type: type[WsEvent]) -> BoundedQueue:
        found = self._queues.get(event_type)
        if found is None:
            with self._lock:
                found = self._queues.setdefault(event_type, BoundedQueue(self._maxsize, self._drop_oldest))
        return found

    def new_queue_accessor(self, event_type: type[E]) -> QueueAccessor[type[E]]:
        """An accessor of the queue of `event_type`."""
        return QueueAccessor(self._queue(event_type), event_type)

    def get(self, event_type: type[E], block: bool = False, timeout: float | None = None) -> E | None:
        """The next event of `event_type`, or None when there is none (after waiting up to `timeout` if `block`)."""
        try:
            event: E = self._queue(event_type).get(block=block, timeout=timeout)
            return event
        except queue.Empty:
            return None

    def empty(self, event_type: type[WsEvent]) -> bool:
        """Whether the queue of `event_type` is empty now."""
        return self._queue(event_type).empty()

    def qsize(self, event_type: type[WsEvent]) -> int:
        """How many events of `event_type` wait now."""
        return self._queue(event_type).qsize()

    def dropped(self) -> dict[str, int]:
        """Events dropped because a queue was full, by event type name."""
        return self._drops.counts()

    def emit(self, event: WsEvent) -> None:
        cls = type(event)
        q = self._queues.get(cls) or self._queue(cls)
        if not q.offer(event):
            self._drops.drop(cls.__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(maxsize={self._maxsize})"


class CompositeSink:
    """Passes every event to each of several sinks; an exception in one is logged and the others still get it."""

    def __init__(self, *sinks: EventSink) -> None:
        self._sinks = sinks
        self.nonblocking = all(getattr(s, "nonblocking", False) for s in sinks)

    def emit(self, event: WsEvent) -> None:
        for sink in self._sinks:
            try:
                sink.emit(event)
            except Exception:
                logger.exception("CompositeSink: sink %r failed on %s", sink, type(event).__name__)

    def dropped(self) -> dict[str, int]:
        """Drops reported by the sinks that count them, summed by event type name."""
        total: dict[str, int] = {}
        for sink in self._sinks:
            counts = getattr(sink, "dropped", None)
            if callable(counts):
                for key, value in counts().items():
                    total[key] = total.get(key, 0) + value
        return total

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._sinks)} sinks)"
