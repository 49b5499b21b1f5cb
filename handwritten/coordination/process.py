"""`process`: state in this process's memory. Every client and thread of the process shares it; other processes
do not (the behaviour before coordination existed, and the fallback where no shared store is usable)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .base import (
    Backend,
    Grant,
    Lease,
    Limits,
    PacingStore,
    Wait,
    WindowSpec,
    WindowState,
    holder_info,
    new_id,
    new_token,
    settled_time,
)


class ProcessPacingStore(PacingStore):
    """The pacing state in memory. Waiters sleep on a condition, so a release wakes them at once."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._state = WindowState()
        self._in_flight = {s.name: 0 for s in limits.slots}
        self._specs: dict[tuple[str, ...], tuple[WindowSpec, ...]] = {}
        self._generation = 0  # bumped by every release: a waiter that saw an older one tries again at once

    def try_acquire(self, windows: tuple[str, ...], slot: str | None, owd: float) -> Grant | Wait:
        specs = self._specs.get(windows)
        if specs is None:
            specs = self._specs[windows] = tuple(w for w in self.limits.windows if w.name in windows)
        with self._cond:
            limit = self.limits.slot(slot) if slot else None
            if limit is not None and self._in_flight[limit.name] >= limit.limit:
                return Wait(1.0, limit.name, False, self._generation, self)
            now = self.clock()
            grant_id = new_id()
            wait, reason, exact = self._state.acquire(specs, now, self.limits.cap, grant_id, owd)
            if wait > 0:
                return Wait(wait, reason, exact, self._generation, self)
            if limit is not None:
                self._in_flight[limit.name] += 1
            return Grant(grant_id, tuple(w.name for w in specs), limit.name if limit else None, now, self)

    def release(self, grant: Grant, sent_ago: float | None, answered_ago: float, owd: float) -> None:
        with self._cond:
            now = self.clock()
            cap = self.limits.cap
            self._state.settle(
                grant.id, grant.windows, lambda g: settled_time(now, g, sent_ago, answered_ago, owd, cap)
            )
            if grant.slot is not None:
                self._in_flight[grant.slot] -= 1
            self._generation += 1
            self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        with self._cond:
            self._state.extend_pause(self.clock() + seconds)
            self._generation += 1

    def wait(self, wait: Wait) -> None:
        with self._cond:
            if self._generation == wait.generation:
                self._cond.wait(float(wait))

    def wake(self) -> None:
        """Wake every waiter at once (each polls again): a closing client cuts its own waits short."""
        with self._cond:
            self._cond.notify_all()

    def describe(self) -> dict[str, Any]:
        with self._cond:
            now = self.clock()
            return {
                "windows": self._state.describe(self.limits, now),
                "in_flight": dict(self._in_flight),
                "pause_left": round(max(0.0, self._state.pause - now), 3),
            }


class ProcessLease(Lease):
    """A lock of this process; the token tells holders apart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._holder: dict[str, Any] | None = None

    def try_acquire(self, seconds: float) -> str | None:
        if not self._lock.acquire(blocking=False):
            return None
        token = new_token()
        self._token, self._holder = token, holder_info(token)
        return token

    def renew(self, token: str, seconds: float) -> bool:
        return self._token == token

    def release(self, token: str) -> None:
        if self._token == token:
            self._token = self._holder = None
            self._lock.release()

    def holder(self) -> dict[str, Any] | None:
        return dict(self._holder) if self._holder else None


class ProcessBackend(Backend):
    name = "process"
    store = "this process"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, ProcessLease] = {}
        self._values: dict[str, tuple[bytes, float, float]] = {}  # data, dated, expires (monotonic)

    def pacing(self, key: str, limits: Limits) -> PacingStore:
        return ProcessPacingStore(limits)

    def lease(self, key: str) -> Lease:
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                lease = self._leases[key] = ProcessLease()
            return lease

    def get(self, key: str) -> tuple[bytes, float] | None:
        now = time.monotonic()
        with self._lock:
            item = self._values.get(key)
            if item is None or item[2] <= now:
                return None
            return item[0], now - item[1]

    def put(self, key: str, data: bytes, ttl: float, age: float = 0.0) -> None:
        now = time.monotonic()
        with self._lock:
            self._values[key] = (data, now - age, now + ttl)

    def claim(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._lock:
            item = self._values.get(key)
            if item is not None and item[2] > now:
                return False
            self._values[key] = (b"", now, now + ttl)
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)
