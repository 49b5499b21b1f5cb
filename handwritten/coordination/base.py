"""The coordination interface: what the processes (and hosts) sharing one gateway share, and how.

IBKR counts its limits per session and IP, and runs one order question/reply flow per brokerage session, however
many processes share them. A backend is the store those processes share. The pacer (`..pacing`), the order lock
and the live-orders snapshot (`..orders`), the preflight marker (`..core`) and the tickler (`..tickler`) use it
through this interface only; none of them knows which backend is active.

`Backend` (one per process and store; `backend_for` in the package builds and caches them):
- `pacing(key, limits) -> PacingStore`: the rate windows, the in-flight slots and the 429 pause of one server.
  - `try_acquire(windows, slot, owd) -> Grant | Wait`: never blocks; a `Wait` (a float) says how many seconds to
    wait before trying again, and why. Sync callers sleep (`wait()`), async callers `await asyncio.sleep`.
  - `release(grant, sent_ago, answered_ago, owd)`: the request is over. It counts in the windows from when its
    bytes went out plus the one-way delay `owd` (`sent_ago` None: unknown, it counts until its answer).
  - `pause(seconds)`: a 429 was answered: every process waits. `describe()`: the state, for `ibkr-sdk coordination`.
- `lease(key) -> Lease`: mutual exclusion (the order flow): `try_acquire(seconds) -> token | None`,
  `renew(token, seconds) -> bool`, `release(token)`, `holder() -> dict | None`. The backend renews a held lease
  until it is released; a holder that dies loses it at once where the OS holds it (`local`), after its TTL elsewhere.
- Small shared values with a TTL: `get(key) -> (bytes, age) | None`, `put(key, data, ttl, age)`,
  `claim(key, ttl) -> bool` (set if absent), `delete(key)`.

Times cross the interface as ages (seconds before now), never as clock readings: each backend counts on its own
clock (`process` and `local`: the machine's monotonic clock; `redis`: the server's TIME), so hosts need no
synchronised clocks. A store that is unreachable, corrupt or not permitted raises `CoordinationError` naming it.
`io` tells whether the calls do network I/O (async callers run those in a thread).

The counting rule lives here once (`WindowState`), used by `process` and `local`; the Redis backend runs the same
rule in a Lua script (`redis.py`), checked against the same scenarios by the tests.
"""

from __future__ import annotations

import math
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAN = math.nan

SEND_CAP = 0.25
"""Seconds a request may take from being let through to reaching the server (thread scheduling, connection set-up).
While its answer is pending it counts as arriving no later than that; a request that stalls longer is assumed to
have arrived then, so a stalled request does not hold a slot for long."""

POLL = 0.005
"""Seconds between tries while waiting on something only another process can end (an in-flight slot, a lease)."""

SETTLE_DELAY = 0.01
"""Seconds a finished request's release may wait for this process's next request to carry it to a shared store
(one write per request instead of two); until then it counts as in flight, which is the safe side."""

PREFLIGHT_TTL = 3600.0
"""Seconds a preflight request run by one client (e.g. `/iserver/accounts`) serves the others sharing the store."""

PREFLIGHT_WAIT = 10.0
"""Seconds a client waits for another one running the same preflight before it runs its own."""


def preflight_key(address: str, name: str) -> str:
    """The key of the marker saying that endpoint `name` (a preflight) ran in the session of the gateway at
    `address` (host:port)."""
    return f"{address.lower()}:preflight:{name}"


PAUSE = "<pause>"
RESTART = "<restart>"


@dataclass(frozen=True)
class WindowSpec:
    """At most `rate` requests in any `per` seconds (the period already scaled and with the safety margin)."""

    name: str
    rate: int
    per: float
    label: str


@dataclass(frozen=True)
class SlotSpec:
    """At most `limit` requests in flight at once."""

    name: str
    limit: int
    label: str


@dataclass(frozen=True)
class Limits:
    """Every window and slot of one server, and the rule's constants. Processes share state only when their limits
    are the same (`fingerprint`): the same SDK version, limit kind and time scale."""

    windows: tuple[WindowSpec, ...]
    slots: tuple[SlotSpec, ...]
    cap: float = SEND_CAP

    def fingerprint(self) -> str:
        import hashlib  # on first use: `import ibkr_sdk` stays light

        text = repr((self.windows, self.slots, self.cap))
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]

    def window(self, name: str) -> WindowSpec | None:
        for w in self.windows:
            if w.name == name:
                return w
        return None

    def slot(self, name: str) -> SlotSpec | None:
        for s in self.slots:
            if s.name == name:
                return s
        return None

    def label(self, reason: str) -> str:
        """What a wait's reason means, for logs and errors."""
        if reason == PAUSE:
            return "a 429 answer from the server (every process waits)"
        if reason == RESTART:
            return "the coordination store's restart (its windows are taken as full until they have elapsed)"
        spec = self.window(reason) or self.slot(reason)
        return spec.label if spec is not None else reason


class Wait(float):
    """Seconds to wait before trying again. `reason` names the window or slot; `exact` is False when the wait
    depends on something that may end sooner (a request in flight, another process's slot), so it is polled."""

    reason: str
    exact: bool
    generation: int
    store: Any

    def __new__(cls, seconds: float, reason: str, exact: bool = True, generation: int = 0, store: Any = None) -> Wait:
        wait = super().__new__(cls, seconds)
        wait.reason = reason
        wait.exact = exact
        wait.generation = generation
        wait.store = store
        return wait


@dataclass
class Grant:
    """A request let through: it holds an entry in each window and possibly an in-flight slot until released."""

    id: int
    windows: tuple[str, ...]
    slot: str | None
    granted_at: float  # the pacer's clock
    store: PacingStore
    handle: Any = None  # the backend's hold on the slot
    sent_at: float | None = None  # the pacer's clock: when the request's bytes went to the socket
    released: bool = False


def new_id() -> int:
    """A grant id unique among processes and hosts (52 bits: exact in a double)."""
    return random.getrandbits(52)


def counted_at(entry: list[float], now: float, cap: float) -> float:
    """When the server counted (at the latest, as far as we know) the request of an entry [granted, counted or NaN
    while in flight, owd, id]: in flight, it counts as arriving now (no later than `cap` after it was let through)."""
    t = entry[1]
    return t if t == t else min(now, entry[0] + cap) + entry[2]


def settled_time(
    now: float, granted: float, sent_ago: float | None, answered_ago: float, owd: float, cap: float
) -> float:
    """The counting time of a finished request: its bytes' departure plus `owd` (the pacer's estimate of how long
    it took to be counted), never later than its answer; when the departure is unknown, its answer (the server has
    surely counted it by then)."""
    answered = now - answered_ago
    if sent_ago is None:
        return answered
    return min(now - sent_ago + owd, answered)


@dataclass
class WindowState:
    """The shared pacing state: per window its entries [granted, counted (NaN in flight), owd, id], and the end of
    a 429 pause. `process` keeps it in memory, `local` in a file; the Redis script holds the same rule."""

    pause: float = 0.0
    windows: dict[str, list[list[float]]] = field(default_factory=dict)

    def wait_for(self, name: str, rate: int, per: float, now: float, cap: float) -> tuple[float, bool]:
        """Seconds until a request may start in this window, and whether that is exact (no entry in flight)."""
        entries = self.windows.get(name)
        if not entries:
            return 0.0, True
        kept: list[list[float]] = []
        times: list[float] = []
        exact = True
        for entry in entries:
            t = counted_at(entry, now, cap)
            if now - t < per:
                kept.append(entry)
                times.append(t)
                exact = exact and entry[1] == entry[1]
        if len(kept) != len(entries):
            self.windows[name] = kept
        if len(kept) < rate:
            return 0.0, True
        times.sort()
        return times[len(times) - rate] + per - now, exact

    def acquire(
        self, windows: tuple[WindowSpec, ...], now: float, cap: float, grant_id: int, owd: float
    ) -> tuple[float, str, bool]:
        """Let a request through (records it in every window; returns 0) or say how long to wait and why."""
        wait, reason, exact = self.pause - now, PAUSE, True
        for w in windows:
            delay, delay_exact = self.wait_for(w.name, w.rate, w.per, now, cap)
            if delay > wait:
                wait, reason, exact = delay, w.name, delay_exact
        if wait > 0:
            return wait, reason, exact
        entry = [now, NAN, owd, float(grant_id)]
        for w in windows:
            self.windows.setdefault(w.name, []).append(list(entry))
        return 0.0, "", True

    def settle(self, grant_id: int, names: tuple[str, ...], counted: Callable[[float], float]) -> bool:
        """Fix the counting time of a finished request: `counted(granted)`. False when its entries are gone."""
        key = float(grant_id)
        found = False
        for name in names:
            for entry in self.windows.get(name, ()):
                if entry[3] == key:
                    entry[1] = counted(entry[0])
                    found = True
                    break
        return found

    def extend_pause(self, until: float) -> None:
        self.pause = max(self.pause, until)

    def describe(self, limits: Limits, now: float) -> dict[str, Any]:
        """Per window: how many requests count now, and seconds until the next may start."""
        out: dict[str, Any] = {}
        for w in limits.windows:
            delay, _ = self.wait_for(w.name, w.rate, w.per, now, limits.cap)
            entries = self.windows.get(w.name, [])
            out[w.name] = {
                "limit": w.label,
                "counted": len(entries),
                "in_flight": sum(1 for e in entries if e[1] != e[1]),
                "next_in": round(max(0.0, delay), 3),
            }
        return out


class PacingStore(ABC):
    """The shared pacing state of one server (see the module docstring)."""

    limits: Limits
    clock: Any = staticmethod(time.monotonic)

    @abstractmethod
    def try_acquire(self, windows: tuple[str, ...], slot: str | None, owd: float) -> Grant | Wait: ...

    @abstractmethod
    def release(self, grant: Grant, sent_ago: float | None, answered_ago: float, owd: float) -> None: ...

    @abstractmethod
    def pause(self, seconds: float) -> None: ...

    @abstractmethod
    def describe(self) -> dict[str, Any]: ...

    def wait(self, wait: Wait) -> None:
        """Sleep before the next try: the whole wait when it is exact, else a short poll."""
        time.sleep(float(wait) if wait.exact else min(float(wait), POLL))

    def close(self) -> None:  # noqa: B027 - optional: most stores hold nothing to release
        """Release what this process holds (files, connections); the shared state stays."""


class Lease(ABC):
    """Mutual exclusion among every process of the store (see the module docstring)."""

    @abstractmethod
    def try_acquire(self, seconds: float) -> str | None: ...

    @abstractmethod
    def renew(self, token: str, seconds: float) -> bool: ...

    @abstractmethod
    def release(self, token: str) -> None: ...

    @abstractmethod
    def holder(self) -> dict[str, Any] | None: ...


class Backend(ABC):
    """A coordination store (see the module docstring)."""

    name: str
    store: str
    """Where the state lives, for messages: "this process", a directory, a Redis URL without its password."""
    io: bool = False

    @abstractmethod
    def pacing(self, key: str, limits: Limits) -> PacingStore: ...

    @abstractmethod
    def lease(self, key: str) -> Lease: ...

    @abstractmethod
    def get(self, key: str) -> tuple[bytes, float] | None: ...

    @abstractmethod
    def put(self, key: str, data: bytes, ttl: float, age: float = 0.0) -> None: ...

    @abstractmethod
    def claim(self, key: str, ttl: float) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...


def holder_info(token: str) -> dict[str, Any]:
    """Who holds a lease, for `ibkr-sdk coordination`: host, process id, since when (wall clock), the token."""
    import os
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "token": token}


def new_token() -> str:
    return f"{random.getrandbits(64):016x}"


class Once:
    """Logs a message once until `reset()` (e.g. one warning per outage of the store, not one per request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False

    def first(self) -> bool:
        with self._lock:
            done, self._done = self._done, True
            return not done

    def reset(self) -> bool:
        with self._lock:
            done, self._done = self._done, False
            return done
