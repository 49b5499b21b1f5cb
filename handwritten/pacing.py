"""Client-side pacing: keep every request within IBKR's limits so the IP never lands in the penalty box.

IBKR answers 429 and blocks the IP for 10-15 minutes (every endpoint, tickle included) when a limit is exceeded.
The limits come from the catalogue (`spec/pacing.yaml` → `ibkr_sdk._endpoint_table`): a global rate for the
connection kind, and per-endpoint buckets (a rate, or a number of requests in flight). Callers wait for a slot
instead of failing. Thread-safe: one `Pacer` serves every thread using the client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from .endpoint import PacingBucket
from .errors import RateLimitedError
from .flow import Waiters

Clock = Callable[[], float]
Sleep = Callable[[float], None]

logger = logging.getLogger("ibkr_sdk")

LOG_WAIT = 1.0
"""A request held longer than this (seconds) for pacing is logged at INFO: what it waited for and how long."""
SEND_JITTER = 0.25
"""Seconds a request may take from its recorded start to reaching the server (thread scheduling, the GIL,
connection setup). A request counts in the windows from the moment its answer arrives (the server has surely seen
it by then) but no later than its start plus this allowance, so a stalled request does not hold a slot for long."""


@dataclass
class _Entry:
    start: float
    end: float | None = None  # None while the request is in flight

    def time(self, jitter: float) -> float:
        """The latest moment the server can have counted this request (an upper bound while it is in flight)."""
        return self.end if self.end is not None else self.start + jitter


class _Window:
    """At most `rate` requests in any `per`-second window, as the server counts them (by arrival)."""

    def __init__(self, rate: int, per: float, label: str, jitter: float) -> None:
        self.rate = rate
        self.per = per
        self.label = label
        self.jitter = jitter
        self.entries: list[_Entry] = []

    def delay(self, now: float) -> float:
        """Seconds to wait before a start is allowed (0 when allowed now). Caller holds the pacer's lock. An upper
        bound while requests are in flight: their answers may arrive earlier and shorten it."""
        self.entries = [e for e in self.entries if now - e.time(self.jitter) < self.per]
        if len(self.entries) < self.rate:
            return 0.0
        times = sorted(e.time(self.jitter) for e in self.entries)
        return times[len(times) - self.rate] + self.per - now

    def record(self, now: float) -> _Entry:
        entry = _Entry(now)
        self.entries.append(entry)
        return entry

    def finish(self, entry: _Entry, now: float) -> None:
        entry.end = min(now, entry.start + self.jitter)


class Pacer:
    """Enforces the global limit and each endpoint's bucket.

    A request counts in a rate window from its start until its answer arrives (at most `SEND_JITTER` longer):
    the server counts arrivals, and a request can reach it late when threads are scheduled unevenly, so counting
    from the start alone lets a burst slip over the limit.

    Args:
        buckets: Per-endpoint buckets by name.
        global_limit: The global bucket (rate per period); None for no global limit.
        time_scale: Multiplies every period (tests use small values to run IBKR's minutes in milliseconds).
        safety: Seconds added to every (scaled) period, plus 1 % of it, for the server's clock granularity.
        clock, sleep: Time source and sleep, replaced in tests; with the default sleep, a waiting caller wakes as
            soon as an answer arrives that frees a slot.
    """

    def __init__(
        self,
        buckets: Mapping[str, PacingBucket],
        global_limit: PacingBucket | None,
        *,
        time_scale: float = 1.0,
        safety: float = 0.05,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
        jitter: float = SEND_JITTER,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._windows: dict[str, _Window] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._slot_labels: dict[str, str] = {}
        for name, bucket in buckets.items():
            if bucket.concurrent:
                self._slots[name] = threading.BoundedSemaphore(bucket.concurrent)
                self._slot_labels[name] = f"the {name} limit of {bucket.concurrent} requests in flight"
            if bucket.rate and bucket.per:
                per = self._period(bucket.per * time_scale, safety)
                label = f"the {name} limit of {bucket.rate} per {bucket.per * time_scale:g} s"
                self._windows[name] = _Window(bucket.rate, per, label, jitter)
        self._global = (
            _Window(
                global_limit.rate,
                self._period(global_limit.per * time_scale, safety),
                f"the global limit of {global_limit.rate} per {global_limit.per * time_scale:g} s",
                jitter,
            )
            if global_limit is not None and global_limit.rate and global_limit.per
            else None
        )
        self.waited = 0.0  # total seconds callers spent waiting (for tests and diagnostics)
        self._local = threading.local()
        self.waiters = Waiters()  # asyncio callers waiting for a slot (see `ticket`)

    def last_start(self) -> float | None:
        """When this thread's latest request was let through (monotonic seconds, on the pacer's clock), if any."""
        started: float | None = getattr(self._local, "started", None)
        return started

    @staticmethod
    def _period(seconds: float, safety: float) -> float:
        return seconds * 1.01 + safety if safety else seconds

    def _too_long(self, reason: str, wait: float, max_wait: float) -> RateLimitedError:
        return RateLimitedError(
            f"pacing would hold this request {wait:.1f} s for {reason}, more than max_pacing_wait ({max_wait:g} s)",
            retry_after=wait,
            status_code=None,
            hint="Nothing was sent.",
        )

    def _wait_for_start(
        self, bucket: str | None, began: float, max_wait: float | None, reasons: list[str]
    ) -> list[tuple[_Window, _Entry]]:
        windows = [w for w in (self._global, self._windows.get(bucket) if bucket else None) if w is not None]
        if not windows:
            return []
        with self._cond:
            while True:
                now = self._clock()
                delays = [(w.delay(now), w) for w in windows]
                delay, window = max(delays, key=lambda pair: pair[0])
                if delay <= 0:
                    self._local.started = now
                    return [(w, w.record(now)) for w in windows]
                if max_wait is not None and now - began + delay > max_wait:
                    raise self._too_long(window.label, now - began + delay, max_wait)
                self.waited += delay
                if window.label not in reasons:
                    reasons.append(window.label)
                if self._sleep is None:
                    self._cond.wait(delay)  # an answer arriving early notifies
                else:
                    self._cond.release()
                    try:
                        self._sleep(delay)
                    finally:
                        self._cond.acquire()

    @contextmanager
    def slot(self, bucket: str | None, max_wait: float | None = None) -> Iterator[None]:
        """Hold a slot for one request: waits for the concurrency limit, then for the rate limits.

        Raises:
            RateLimitedError: the wait would exceed `max_wait` seconds (nothing was sent).
        """
        began = self._clock()
        reasons: list[str] = []
        semaphore = self._slots.get(bucket) if bucket else None
        if semaphore is not None and not semaphore.acquire(blocking=False):
            assert bucket is not None
            reasons.append(self._slot_labels[bucket])
            if not semaphore.acquire(timeout=-1 if max_wait is None else max_wait):
                assert max_wait is not None
                raise self._too_long(self._slot_labels[bucket], max_wait, max_wait)
        entries: list[tuple[_Window, _Entry]] = []
        self._local.started = self._clock()
        try:
            entries = self._wait_for_start(bucket, began, max_wait, reasons)
            waited = self._clock() - began
            if waited > LOG_WAIT:
                logger.info("a request waited %.1f s for pacing (%s)", waited, "; ".join(reasons) or "IBKR's limits")
            yield
        finally:
            if entries:
                with self._cond:
                    now = self._clock()
                    for window, entry in entries:
                        window.finish(entry, now)
                    self._cond.notify_all()
            if semaphore is not None:
                semaphore.release()
            self.waiters.notify_all()

    def ticket(self, bucket: str | None, max_wait: float | None = None) -> PacingTicket:
        """A slot for one request taken without blocking (for the asyncio client): see `PacingTicket`."""
        return PacingTicket(self, bucket, max_wait)


SLOT_POLL = 0.05
"""Seconds a ticket waiting for a concurrency slot sleeps at most before asking again (a freed slot wakes it)."""


class PacingTicket:
    """One request's way through a pacer without blocking: `poll()` until it returns 0 (the request may start),
    send, then `done()`; `cancel()` when giving up before the start. Between polls, wait on the pacer's `waiters`
    for at most the seconds `poll()` returned: a finished request anywhere in the process wakes the waiter early.

    The same limits, windows and counting rule as `Pacer.slot`, so sync and asyncio clients of one server share
    one budget.
    """

    def __init__(self, pacer: Pacer, bucket: str | None, max_wait: float | None) -> None:
        self._pacer = pacer
        self._bucket = bucket
        self._max_wait = max_wait
        self.began = pacer._clock()
        self.start: float | None = None  # when the request was let through
        self._semaphore = pacer._slots.get(bucket) if bucket else None
        self._holds_slot = False
        self._entries: list[tuple[_Window, _Entry]] = []
        self._reasons: list[str] = []

    def poll(self) -> float:
        """0 when the request may start now (its slot is taken); otherwise the seconds to wait at most.

        Raises:
            RateLimitedError: the wait would exceed `max_wait` seconds (nothing was sent).
        """
        pacer = self._pacer
        if self.start is not None:
            return 0.0
        now = pacer._clock()
        semaphore = self._semaphore
        if semaphore is not None and not self._holds_slot:
            if not semaphore.acquire(blocking=False):
                assert self._bucket is not None
                label = pacer._slot_labels[self._bucket]
                if label not in self._reasons:
                    self._reasons.append(label)
                if self._max_wait is not None and now - self.began >= self._max_wait:
                    raise pacer._too_long(label, self._max_wait, self._max_wait)
                return SLOT_POLL
            self._holds_slot = True
        windows = [w for w in (pacer._global, pacer._windows.get(self._bucket) if self._bucket else None) if w]
        with pacer._cond:
            now = pacer._clock()
            delay, window = max(((w.delay(now), w) for w in windows), key=lambda pair: pair[0], default=(0.0, None))
            if delay <= 0:
                self._entries = [(w, w.record(now)) for w in windows]
                self.start = now
            elif self._max_wait is not None and now - self.began + delay > self._max_wait:
                self._release_slot()
                assert window is not None
                raise pacer._too_long(window.label, now - self.began + delay, self._max_wait)
            else:
                pacer.waited += delay
                assert window is not None
                if window.label not in self._reasons:
                    self._reasons.append(window.label)
                return delay
        waited = now - self.began
        if waited > LOG_WAIT:
            logger.info("a request waited %.1f s for pacing (%s)", waited, "; ".join(self._reasons) or "IBKR's limits")
        return 0.0

    def done(self) -> None:
        """The answer arrived (or the attempt failed): the request stops counting as in flight."""
        pacer = self._pacer
        if self._entries:
            with pacer._cond:
                now = pacer._clock()
                for window, entry in self._entries:
                    window.finish(entry, now)
                pacer._cond.notify_all()
            self._entries = []
        self._release_slot()
        pacer.waiters.notify_all()

    def cancel(self) -> None:
        """Give up before the start (or after it, as `done`)."""
        self.done()

    def _release_slot(self) -> None:
        if self._holds_slot and self._semaphore is not None:
            self._holds_slot = False
            self._semaphore.release()


class PacerView(Pacer):
    """A client's view of a shared pacer with its own `max_wait` (the client option `max_pacing_wait`)."""

    def __init__(self, shared: Pacer, max_wait: float) -> None:  # noqa: D107 - shares, does not build, limits
        self.shared = shared
        self.max_wait = max_wait

    @property
    def waited(self) -> float:  # type: ignore[override]
        return self.shared.waited

    def last_start(self) -> float | None:
        return self.shared.last_start()

    @property
    def waiters(self) -> Waiters:  # type: ignore[override]
        return self.shared.waiters

    @contextmanager
    def slot(self, bucket: str | None, max_wait: float | None = None) -> Iterator[None]:
        with self.shared.slot(bucket, self.max_wait if max_wait is None else min(max_wait, self.max_wait)):
            yield

    def ticket(self, bucket: str | None, max_wait: float | None = None) -> PacingTicket:
        return self.shared.ticket(bucket, self.max_wait if max_wait is None else min(max_wait, self.max_wait))


_SHARED: dict[tuple[object, ...], Pacer] = {}
_SHARED_LOCK = threading.Lock()


def shared_pacer(key: tuple[object, ...], make: Callable[[], Pacer]) -> Pacer:
    """The one pacer of this process for `key` (e.g. the server's host and the limit kind).

    IBKR counts requests per IP, so every client in a process talking to the same server must draw from the same
    limits; separate pacers would together exceed them.
    """
    with _SHARED_LOCK:
        pacer = _SHARED.get(key)
        if pacer is None:
            pacer = _SHARED[key] = make()
        return pacer


class NoPacer(Pacer):
    """Pacing turned off: every request starts at once."""

    def __init__(self) -> None:
        super().__init__({}, None, safety=0)

    def last_start(self) -> float | None:
        return None

    @contextmanager
    def slot(self, bucket: str | None, max_wait: float | None = None) -> Iterator[None]:
        yield
