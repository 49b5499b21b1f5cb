"""Client-side pacing: keep every request within IBKR's limits so the IP never lands in the penalty box.

IBKR answers 429 and blocks the IP for 10-15 minutes (every endpoint, tickle included) when a limit is exceeded.
The limits come from the catalogue (`spec/pacing.yaml` → `ibkr_sdk._endpoint_table`): a global rate for the
connection kind, and per-endpoint buckets (a rate, or a number of requests in flight). Callers wait for a slot
instead of failing. Thread-safe: one `Pacer` serves every thread using the client.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from .endpoint import PacingBucket

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class _Window:
    """At most `rate` starts in any `per`-second window (a sliding log of start times)."""

    def __init__(self, rate: int, per: float) -> None:
        self.rate = rate
        self.per = per
        self.starts: collections.deque[float] = collections.deque()

    def delay(self, now: float) -> float:
        """Seconds to wait before a start is allowed (0 when allowed now). Caller holds the pacer's lock."""
        while self.starts and now - self.starts[0] >= self.per:
            self.starts.popleft()
        if len(self.starts) < self.rate:
            return 0.0
        return self.starts[0] + self.per - now

    def record(self, now: float) -> None:
        self.starts.append(now)


class Pacer:
    """Enforces the global limit and each endpoint's bucket.

    Args:
        buckets: Per-endpoint buckets by name.
        global_limit: The global bucket (rate per period); None for no global limit.
        time_scale: Multiplies every period (tests use small values to run IBKR's minutes in milliseconds).
        safety: Seconds added to every (scaled) period, plus 1 % of it. Requests travel with some jitter, so a
            server that measures arrival times can see a window slightly shorter than the client kept; the
            margin keeps the client on the safe side of IBKR's count.
    """

    def __init__(
        self,
        buckets: Mapping[str, PacingBucket],
        global_limit: PacingBucket | None,
        *,
        time_scale: float = 1.0,
        safety: float = 0.05,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        for name, bucket in buckets.items():
            if bucket.concurrent:
                self._slots[name] = threading.BoundedSemaphore(bucket.concurrent)
            if bucket.rate and bucket.per:
                self._windows[name] = _Window(bucket.rate, self._period(bucket.per * time_scale, safety))
        self._global = (
            _Window(global_limit.rate, self._period(global_limit.per * time_scale, safety))
            if global_limit is not None and global_limit.rate and global_limit.per
            else None
        )
        self.waited = 0.0  # total seconds callers spent waiting (for tests and diagnostics)

    @staticmethod
    def _period(seconds: float, safety: float) -> float:
        return seconds * 1.01 + safety if safety else seconds

    def _wait_for_start(self, bucket: str | None) -> None:
        windows = [w for w in (self._global, self._windows.get(bucket) if bucket else None) if w is not None]
        if not windows:
            return
        while True:
            with self._lock:
                now = self._clock()
                delay = max(w.delay(now) for w in windows)
                if delay <= 0:
                    for w in windows:
                        w.record(now)
                    return
                self.waited += delay
            self._sleep(delay)

    @contextmanager
    def slot(self, bucket: str | None) -> Iterator[None]:
        """Hold a slot for one request: waits for the concurrency limit, then for the rate limits."""
        semaphore = self._slots.get(bucket) if bucket else None
        if semaphore is not None:
            semaphore.acquire()
        try:
            self._wait_for_start(bucket)
            yield
        finally:
            if semaphore is not None:
                semaphore.release()


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

    @contextmanager
    def slot(self, bucket: str | None) -> Iterator[None]:
        yield
