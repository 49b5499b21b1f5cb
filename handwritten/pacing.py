"""Client-side pacing: keep every request within IBKR's limits so the IP never lands in the penalty box.

IBKR answers 429 and blocks the IP for 10-15 minutes (every endpoint, tickle included) when a limit is exceeded.
The limits come from the catalogue (`spec/pacing.yaml` → `ibkr_sdk._endpoint_table`): a global rate for the
connection kind, and per-endpoint buckets (a rate, or a number of requests in flight). Callers wait for a slot
instead of failing.

The state lives in a coordination store (`.coordination`): the process's memory, a file every process of the
machine shares (the default), or Redis for several hosts. IBKR counts per IP, so every process talking to the same
server draws from the same limits. A 429 seen by any of them pauses them all.

Counting rule: the server counts a request when it arrives. A request counts in the windows from the moment its
bytes went to the socket (`note_sent`, called by the transport's connection) plus an estimate of the one-way delay:
the lowest round trip seen (a TCP handshake included), plus whatever its round trip took beyond the usual one of
its kind (method and path): a server that picks a request up late (a busy machine, a new connection waiting to be
accepted) answers it late by as much, and we cannot tell that from slow processing. While its answer is pending it
counts as arriving now (at most `SEND_JITTER` after it was let through). A request whose departure is unknown, or
the first of its kind, counts until its answer arrived.

The core operations never block: `try_acquire(bucket) -> Grant | Wait` and `release(grant, sent_at=...)`. A
`PacingTicket` adds what a waiting caller decides (`max_pacing_wait`, what is logged) in steps that never block:
`slot()` runs them with blocking sleeps for threads; the asyncio transport awaits between them (on `waiters`, which
every release of this process notifies), so sync and asyncio clients of one server share one pacer and one rule.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .coordination import Backend, Grant, Limits, PacingStore, SlotSpec, Wait, WindowSpec
from .coordination.base import POLL, SEND_CAP, Once
from .coordination.process import ProcessPacingStore
from .endpoint import PacingBucket
from .errors import CoordinationError, RateLimitedError
from .flow import Waiters

Clock = Callable[[], float]
Sleep = Callable[[float], None]

logger = logging.getLogger("ibkr_sdk")

LOG_WAIT = 1.0
"""A request held longer than this (seconds) for pacing is logged at INFO, when the wait begins (what it waits for
and how long it expects to) and when it ends."""
SEND_JITTER = SEND_CAP
"""Seconds a request may take from being let through to reaching the server (thread scheduling, the GIL,
connection set-up): while its answer is pending it counts as arriving no later than that."""
SAFETY = 0.025
"""Seconds added to every period (with 1 % of it): the server's clock granularity and what the counting rule cannot
see. The rule itself never counts a request earlier than the server can have: its departure, plus the lowest
round trip, plus any delay beyond the usual round trip of its kind."""
GLOBAL = "<global>"
RETRY_STORE = 5.0
"""Seconds a pacer that fell back to per-process pacing (`coordination_fallback="process"`) waits before trying
the shared store again."""
MAX_PAUSE = 900.0
"""The longest pause a 429's Retry-After imposes on every process (IBKR's penalty box lasts 10-15 minutes)."""
SLOT_POLL = 0.05
"""Seconds an asyncio caller waits at most, when only a request of this process can shorten its wait (whose end
wakes it), before asking again: the bound covers an end between its try and its wait."""

_SENT = threading.local()
_STRICT: contextvars.ContextVar[bool] = contextvars.ContextVar("ibkr_sdk_strict_pacing", default=False)


def note_sent() -> None:
    """The request of this thread has just been written to its socket (called by the transport's connections)."""
    _SENT.at = time.monotonic()


def note_connected(seconds: float) -> None:
    """This thread's connection took `seconds` to open: a network round trip without the server's processing
    time, the best estimate of the one-way delay when every endpoint answers slowly."""
    _SENT.connect = seconds


class _RoundTrips:
    """The lowest round trip among the recent ones (an upper bound of the one-way delay to the server), and the
    lowest per kind of request (its usual processing time)."""

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=64)
        self._lock = threading.Lock()
        self.lowest = 0.0
        self._usual: dict[str, float] = {}

    def delay(self, kind: str | None, round_trip: float) -> float | None:
        """How long after its departure the server counted a request at the latest, as far as we can tell: the
        one-way delay plus what its round trip took beyond the usual one of its kind; None when nothing tells
        (the first of its kind: count it until its answer)."""
        lowest = self.add(round_trip)
        if kind is None:
            return None
        usual = self._usual.get(kind)
        if usual is None or round_trip < usual:
            if len(self._usual) >= 1024:
                self._usual.clear()  # bounded: paths carry ids
            self._usual[kind] = round_trip
        if usual is None:
            return None
        return lowest + max(0.0, round_trip - usual)

    def add(self, seconds: float) -> float:
        seconds = max(0.0, seconds)
        with self._lock:
            full = len(self._samples) == self._samples.maxlen
            dropped = self._samples[0] if full else None
            self._samples.append(seconds)
            if not full and len(self._samples) == 1:
                self.lowest = seconds
            elif dropped is not None and dropped <= self.lowest:
                self.lowest = min(self._samples)  # the lowest left the window: look again
            elif seconds < self.lowest:
                self.lowest = seconds
            return self.lowest


def build_limits(
    buckets: Mapping[str, PacingBucket],
    global_limit: PacingBucket | None,
    time_scale: float,
    safety: float,
    jitter: float,
) -> Limits:
    """The windows and slots of the catalogue's buckets, periods scaled and with the safety margin."""

    def period(seconds: float) -> float:
        return seconds * 1.01 + safety if safety else seconds

    windows: list[WindowSpec] = []
    slots: list[SlotSpec] = []
    if global_limit is not None and global_limit.rate and global_limit.per:
        label = f"the global limit of {global_limit.rate} per {global_limit.per * time_scale:g} s"
        windows.append(WindowSpec(GLOBAL, global_limit.rate, period(global_limit.per * time_scale), label))
    for name in sorted(buckets):
        bucket = buckets[name]
        if bucket.rate and bucket.per:
            label = f"the {name} limit of {bucket.rate} per {bucket.per * time_scale:g} s"
            windows.append(WindowSpec(name, bucket.rate, period(bucket.per * time_scale), label))
        if bucket.concurrent:
            label = f"the {name} limit of {bucket.concurrent} requests in flight"
            slots.append(SlotSpec(name, bucket.concurrent, label))
    return Limits(tuple(windows), tuple(slots), jitter)


class PacingStopped(Exception):
    """A request's wait for pacing ended because its client closed (nothing was sent)."""


class Pacer:
    """Enforces the global limit and each endpoint's bucket, in the coordination store.

    Args:
        buckets: Per-endpoint buckets by name.
        global_limit: The global bucket (rate per period); None for no global limit.
        time_scale: Multiplies every period (tests use small values to run IBKR's minutes in milliseconds).
        safety: Seconds added to every (scaled) period, plus 1 % of it (`SAFETY`).
        clock, sleep: Time source and sleep, replaced in tests (with the process store only).
        jitter: `SEND_JITTER`.
        coordination: The backend holding the state (None: this process's memory); `key` names the server in it.
        fallback: "process" to go on with per-process pacing (with a warning) while the store is unusable; None
            to raise `CoordinationError`.
    """

    def __init__(
        self,
        buckets: Mapping[str, PacingBucket],
        global_limit: PacingBucket | None,
        *,
        time_scale: float = 1.0,
        safety: float = SAFETY,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
        jitter: float = SEND_JITTER,
        coordination: Backend | None = None,
        key: str = "",
        fallback: str | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.limits = build_limits(buckets, global_limit, time_scale, safety, jitter)
        self._windows_of: dict[str | None, tuple[str, ...]] = {None: self._names(None)}
        self._backend = coordination
        self._key = key
        self.fallback = fallback
        self._local_store = ProcessPacingStore(self.limits, clock)
        in_memory = coordination is None or coordination.name == "process"
        self._store: PacingStore | None = self._local_store if in_memory else None
        self._store_lock = threading.Lock()
        self._fell_back_at: float | None = None
        self._warned = Once()
        self._trips = _RoundTrips()
        self._released = threading.Condition()  # notified when a request of this process ends
        self.waited = 0.0  # total seconds callers spent waiting (for tests and diagnostics)
        self._local = threading.local()
        self.waiters = Waiters()  # asyncio callers waiting for a slot: woken when a request of this process ends

    @contextmanager
    def strict(self) -> Iterator[None]:
        """Within this block (this thread, or this asyncio task), requests never fall back to per-process pacing:
        an order raises `CoordinationError` when the shared store is unusable, whatever `coordination_fallback`
        says."""
        token = _STRICT.set(True)
        try:
            yield
        finally:
            _STRICT.reset(token)

    @property
    def backend(self) -> str:
        """The backend's name: "process", "local" or "redis"."""
        return self._backend.name if self._backend is not None else "process"

    @property
    def blocking_io(self) -> bool:
        """True when the store's calls do network I/O (an asyncio caller runs them in a thread)."""
        return bool(self._backend is not None and self._backend.io and self._fell_back_at is None)

    def _names(self, bucket: str | None) -> tuple[str, ...]:
        names = [w.name for w in self.limits.windows if w.name == GLOBAL or w.name == bucket]
        return tuple(names)

    def last_start(self) -> float | None:
        """When this thread's latest request was let through (monotonic seconds, on the pacer's clock), if any."""
        started: float | None = getattr(self._local, "started", None)
        return started

    def _shared_store(self) -> PacingStore:
        store = self._store
        if store is None:
            with self._store_lock:
                if self._store is None:
                    assert self._backend is not None
                    self._store = self._backend.pacing(self._key, self.limits)
                store = self._store
        return store

    def _unusable(self, exc: CoordinationError) -> PacingStore:
        """The store failed: raise, or (with the fallback) pace within this process for a while."""
        if self.fallback != "process" or _STRICT.get():
            raise exc
        if self._warned.first():
            logger.warning(
                "coordination store unusable, pacing within this process only (coordination_fallback='process'): %s",
                exc,
            )
        self._fell_back_at = time.monotonic()
        return self._local_store

    def try_acquire(self, bucket: str | None) -> Grant | Wait:
        """Let one request through now (a `Grant`, to `release` when its answer is in) or say how long to wait.

        Raises:
            CoordinationError: the shared store is unusable and there is no fallback (nothing was sent).
        """
        windows = self._windows_of.get(bucket)
        if windows is None:
            windows = self._windows_of[bucket] = self._names(bucket)
        slot = bucket if bucket is not None and self.limits.slot(bucket) is not None else None
        owd = self._trips.lowest
        fell = self._fell_back_at
        if fell is not None and time.monotonic() - fell < RETRY_STORE and not _STRICT.get():
            return self._local_store.try_acquire(windows, slot, owd)
        try:
            got = self._shared_store().try_acquire(windows, slot, owd)
        except CoordinationError as exc:
            return self._unusable(exc).try_acquire(windows, slot, owd)
        if fell is not None:
            self._fell_back_at = None
            if self._warned.reset():
                logger.warning("coordination store usable again: pacing is shared again")
        return got

    def release(
        self,
        grant: Grant,
        sent_at: float | None = None,
        answered_at: float | None = None,
        kind: str | None = None,
    ) -> None:
        """The request is over. `sent_at`: when its bytes went to the socket (None: unknown, it counts until its
        answer); `answered_at`: when its answer (or failure) came, default now; both on the pacer's clock. `kind`
        (e.g. "GET /iserver/accounts") lets a slow answer be compared with the usual one of its kind; without it
        the request counts until its answer. Never raises: a store failure is logged."""
        if grant.released:
            return
        grant.released = True
        now = self._clock()
        answered = now if answered_at is None else answered_at
        sent = grant.sent_at if sent_at is None else sent_at
        delay = self._trips.delay(kind, answered - sent) if sent is not None else None
        if delay is None:
            sent = None
        try:
            grant.store.release(grant, None if sent is None else now - sent, now - answered, delay or 0.0)
        except CoordinationError as exc:
            logger.warning("coordination: releasing a pacing slot failed: %s", exc)
        with self._released:
            self._released.notify_all()
        self.waiters.notify_all()

    def pause(self, seconds: float | None = None) -> None:
        """A 429 was answered: every process waits `seconds` (default: one period of the global limit)."""
        if seconds is None:
            seconds = max((w.per for w in self.limits.windows if w.name == GLOBAL), default=1.0)
        seconds = min(max(0.0, seconds), MAX_PAUSE)
        fell = self._fell_back_at
        stores: list[PacingStore] = [self._local_store]
        if self._store is not self._local_store and not (fell is not None and time.monotonic() - fell < RETRY_STORE):
            stores.insert(0, self._shared_store())
        for store in stores:
            try:
                store.pause(seconds)
                return
            except CoordinationError as exc:
                logger.warning("coordination: sharing a 429 pause failed: %s", exc)

    def describe(self) -> dict[str, Any]:
        """The backend, the store and the state of every window (for `ibkr-sdk coordination`)."""
        store = self._shared_store() if self._backend is not None else self._local_store
        return {
            "backend": self.backend,
            "store": self._backend.store if self._backend is not None else "this process",
            **store.describe(),
        }

    def _too_long(self, reason: str, wait: float, max_wait: float) -> RateLimitedError:
        return RateLimitedError(
            f"pacing would hold this request {wait:.1f} s for {reason}, more than max_pacing_wait ({max_wait:g} s)",
            retry_after=wait,
            status_code=None,
            hint="Nothing was sent.",
        )

    def wake(self) -> None:
        """Wake every thread and task of this process waiting in this pacer; each polls again (and goes back to
        sleep unless its own client closed meanwhile)."""
        self._local_store.wake()
        with self._released:
            self._released.notify_all()
        self.waiters.notify_all()

    def _sleep_for(self, wait: Wait, limit: float | None, stop: threading.Event | None = None) -> float:
        """Sleep before the next try: an in-memory store wakes its waiters when a request ends; other stores are
        polled while the wait depends on requests in flight. `stop` (a client's "closed" flag) ends an exact
        sleep at once; `wake()` ends the others."""
        in_memory = isinstance(wait.store, ProcessPacingStore) and self._sleep is None
        seconds = float(wait) if wait.exact or in_memory else min(float(wait), POLL)
        if limit is not None:
            seconds = max(0.0, min(seconds, limit))
        if self._sleep is not None:
            self._sleep(seconds)
        elif in_memory:
            wait.store.wait(Wait(seconds, wait.reason, wait.exact, wait.generation))
        elif not wait.exact:
            with self._released:  # a request of this process ending wakes us; other processes' are polled
                self._released.wait(seconds)
        elif stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)
        return seconds

    def ticket(self, bucket: str | None, max_wait: float | None = None, kind: str | None = None) -> PacingTicket:
        """One request's way through the pacer in steps that never block (see `PacingTicket`)."""
        return PacingTicket(self, bucket, max_wait, kind)

    def async_wait(self, wait: Wait, limit: float | None) -> float:
        """Seconds an asyncio caller waits on `waiters` before trying again: the whole wait when it is exact; when
        only this process's requests can shorten it (the in-memory store), until one of them ends (`SLOT_POLL` at
        most); otherwise (another process's request may end it) a short poll."""
        if wait.exact:
            seconds = float(wait)
        elif isinstance(wait.store, ProcessPacingStore):
            seconds = min(float(wait), SLOT_POLL)
        else:
            seconds = min(float(wait), POLL)
        return seconds if limit is None else max(0.0, min(seconds, limit))

    @contextmanager
    def slot(
        self,
        bucket: str | None,
        max_wait: float | None = None,
        kind: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Grant]:
        """Hold a slot for one request: waits for the in-flight limit and the rate limits, then yields the grant.
        The request's send time is taken from the connection (`note_sent`) unless the caller sets `grant.sent_at`;
        `kind` names the request for the counting rule (see `release`). `stop` set (and `wake()` called) ends the
        wait with `PacingStopped`.

        Raises:
            RateLimitedError: the wait would exceed `max_wait` seconds (nothing was sent).
            CoordinationError: the shared store is unusable and there is no fallback (nothing was sent).
            PacingStopped: `stop` was set while the request waited (nothing was sent).
        """
        ticket = self.ticket(bucket, max_wait, kind)
        while (wait := ticket.poll()) is not None:
            if stop is not None and stop.is_set():
                raise PacingStopped()
            self.waited += self._sleep_for(wait, ticket.left(), stop)
        got = ticket.grant
        assert got is not None
        self._local.started = self._clock()
        real_clock = self._clock is time.monotonic
        _SENT.at = _SENT.connect = None
        try:
            yield got
        finally:
            sent = getattr(_SENT, "at", None) if real_clock else None
            connect = getattr(_SENT, "connect", None)
            _SENT.at = _SENT.connect = None
            if connect is not None:
                self._trips.add(connect)  # a handshake: one network round trip without any processing
            self.release(got, sent_at=got.sent_at if got.sent_at is not None else sent, kind=kind)


class PacingTicket:
    """One request's way through a pacer in steps that never block: `poll()` until it returns None (then `grant`
    is set and the request may start), waiting between polls (threads: `Pacer.slot`; asyncio tasks: on the
    pacer's `waiters` for `async_wait(wait, left())` seconds); send; then `done(sent_at)`. The limits, the store,
    the counting rule, `max_wait` and the log lines are the pacer's, whichever kind of caller waits.
    """

    def __init__(self, pacer: Pacer, bucket: str | None, max_wait: float | None, kind: str | None) -> None:
        self.pacer = pacer
        self.bucket = bucket
        self.max_wait = max_wait
        self.kind = kind
        self.began = pacer._clock()
        self.grant: Grant | None = None
        self._reasons: list[str] = []

    def poll(self) -> Wait | None:
        """None when the request may start now (`grant` holds its place), else how long to wait and why.

        Raises:
            RateLimitedError: the wait would exceed `max_wait` seconds (nothing was sent).
            CoordinationError: the shared store is unusable and there is no fallback (nothing was sent).
        """
        pacer = self.pacer
        got = pacer.try_acquire(self.bucket)
        elapsed = pacer._clock() - self.began
        if isinstance(got, Grant):
            self.grant = got
            if elapsed > LOG_WAIT:
                reasons = "; ".join(self._reasons) or "IBKR's limits"
                logger.info("a request waited %.1f s for pacing (%s)", elapsed, reasons)
            return None
        label = pacer.limits.label(got.reason)
        if self.max_wait is not None:
            if got.exact and elapsed + got > self.max_wait:
                raise pacer._too_long(label, elapsed + got, self.max_wait)
            if elapsed >= self.max_wait:
                raise pacer._too_long(label, self.max_wait, self.max_wait)
        if label not in self._reasons:
            self._reasons.append(label)
            if elapsed + got > LOG_WAIT and pacer.limits.slot(got.reason) is None:
                # Said before the wait, so a long one is not a silent hang.
                logger.info("pacing holds a %s request for %.1f s: %s", self.bucket or "REST", elapsed + got, label)
        return got

    def left(self) -> float | None:
        """Seconds left of `max_wait` (None: no limit)."""
        return None if self.max_wait is None else self.max_wait - (self.pacer._clock() - self.began)

    def done(
        self, sent_at: float | None = None, connect: float | None = None, answered_at: float | None = None
    ) -> None:
        """The request is over (or was never sent): its place is settled by the counting rule (`Pacer.release`).
        `sent_at`: when its bytes went to the socket, `answered_at`: when its answer (or failure) came (default
        now), both `time.monotonic()`; `sent_at` None: unknown, it counts until its answer. `connect`: seconds its
        connection took to open, if it opened one (a network round trip without any processing)."""
        grant, self.grant = self.grant, None
        if grant is None:
            return
        pacer = self.pacer
        if connect is not None:
            pacer._trips.add(connect)
        if pacer._clock is not time.monotonic:
            sent_at = answered_at = None  # a test's clock: readings of the real one do not compare
        pacer.release(grant, sent_at, answered_at, self.kind)


class PacerView(Pacer):
    """A client's view of a shared pacer with its own `max_wait` (the client option `max_pacing_wait`)."""

    def __init__(self, shared: Pacer, max_wait: float) -> None:  # noqa: D107 - shares, does not build, limits
        self.shared = shared
        self.max_wait = max_wait
        self.limits = shared.limits
        self.fallback = shared.fallback

    @property
    def waited(self) -> float:  # type: ignore[override]
        return self.shared.waited

    @property
    def backend(self) -> str:
        return self.shared.backend

    @property
    def blocking_io(self) -> bool:
        return self.shared.blocking_io

    def last_start(self) -> float | None:
        return self.shared.last_start()

    @property
    def waiters(self) -> Waiters:  # type: ignore[override]
        return self.shared.waiters

    def try_acquire(self, bucket: str | None) -> Grant | Wait:
        return self.shared.try_acquire(bucket)

    def ticket(self, bucket: str | None, max_wait: float | None = None, kind: str | None = None) -> PacingTicket:
        limit = self.max_wait if max_wait is None else min(max_wait, self.max_wait)
        return self.shared.ticket(bucket, limit, kind)

    def async_wait(self, wait: Wait, limit: float | None) -> float:
        return self.shared.async_wait(wait, limit)

    @contextmanager
    def strict(self) -> Iterator[None]:
        with self.shared.strict():
            yield

    def release(
        self,
        grant: Grant,
        sent_at: float | None = None,
        answered_at: float | None = None,
        kind: str | None = None,
    ) -> None:
        self.shared.release(grant, sent_at, answered_at, kind)

    def pause(self, seconds: float | None = None) -> None:
        self.shared.pause(seconds)

    def describe(self) -> dict[str, Any]:
        return self.shared.describe()

    def wake(self) -> None:
        self.shared.wake()

    @contextmanager
    def slot(
        self,
        bucket: str | None,
        max_wait: float | None = None,
        kind: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Grant]:
        limit = self.max_wait if max_wait is None else min(max_wait, self.max_wait)
        with self.shared.slot(bucket, limit, kind, stop) as grant:
            yield grant


_SHARED: dict[tuple[object, ...], Pacer] = {}
_SHARED_LOCK = threading.Lock()


def shared_pacer(key: tuple[object, ...], make: Callable[[], Pacer]) -> Pacer:
    """The one pacer of this process for `key` (e.g. the server's host, the limit kind and the coordination store).

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

    def try_acquire(self, bucket: str | None) -> Grant | Wait:
        return Grant(0, (), None, 0.0, self._local_store)

    def release(
        self,
        grant: Grant,
        sent_at: float | None = None,
        answered_at: float | None = None,
        kind: str | None = None,
    ) -> None:
        pass

    def pause(self, seconds: float | None = None) -> None:
        pass

    @contextmanager
    def slot(
        self,
        bucket: str | None,
        max_wait: float | None = None,
        kind: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Grant]:
        yield Grant(0, (), None, 0.0, self._local_store)
