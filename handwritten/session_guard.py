"""One re-open of the brokerage session at a time, and one voice about the session, per gateway in this process.

Every client of the process talking to the same gateway shares one `SessionGuard` (as they share one pacer): when
eight threads find the session closed at once, one of them re-opens it and the others wait and use its outcome;
when the login is gone, it is said once, not by every thread and tick. A coordination backend shared across
processes can take this over: callers only use `generation`, `reopen`, `report` and the listeners.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable

from .flow import SharedLock
from .lifecycle import HOLDOFF, Verdict, still_holds

logger = logging.getLogger("ibkr_sdk")

Listener = Callable[[Verdict], None]


class SessionGuard:
    """Serialises re-opens of one gateway's brokerage session and remembers what was last said about it."""

    def __init__(self, *, holdoff: float = HOLDOFF, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = SharedLock()  # held while a re-open runs (by a thread, or by an asyncio task without blocking)
        self._state = threading.Lock()  # guards the fields below, never held during I/O
        self._holdoff = holdoff
        self._clock = clock
        self._generation = 0
        self._last: Verdict | None = None
        self._last_at = -math.inf
        self._reported = Verdict.OPEN
        self._listeners: list[Listener] = []
        self.attempts = 0
        """Re-opens run (each one checks the status first; diagnostics and benchmarks)."""
        self.asked_at = -math.inf
        """When a brokerage session was last asked for (`ssodh/init`), by the client or its user."""

    @property
    def generation(self) -> int:
        """Read before sending a request; `reopen` uses it to see whether someone re-opened since."""
        return self._generation

    def reopen(self, seen: int, attempt: Callable[[], Verdict], refusal: int | None = None) -> Verdict:
        """Run `attempt` (one re-open, I/O included) unless another caller did since generation `seen`, or the last
        attempt failed less than `holdoff` seconds ago (competing, login gone, not opened in time) and still explains
        the caller's `refusal` (its HTTP status; None for a caller without one); either way return the outcome."""
        with self._lock:
            settled = self._settled(seen, refusal)
            if settled is not None:
                return settled
            return self._record(attempt())

    async def reopen_async(
        self, seen: int, attempt: Callable[[], Awaitable[Verdict]], refusal: int | None = None
    ) -> Verdict:
        """`reopen` for an asyncio task: the same rule, waiting for the lock without blocking the loop."""
        await self._lock.acquire_async()
        try:
            settled = self._settled(seen, refusal)
            if settled is not None:
                return settled
            return self._record(await attempt())
        finally:
            self._lock.release()

    def _settled(self, seen: int, refusal: int | None) -> Verdict | None:
        """The outcome a caller takes without re-opening (someone did since `seen`, or a failure still holds)."""
        with self._state:
            last, last_at = self._last, self._last_at
            if last is not None and (
                self._generation != seen
                or (last is not Verdict.OPEN and self._clock() - last_at < self._holdoff and still_holds(last, refusal))
            ):
                return last
        return None

    def _record(self, verdict: Verdict) -> Verdict:
        with self._state:
            self._last, self._last_at = verdict, self._clock()
            self._generation += 1
            self.attempts += 1
        return verdict

    def report(self, verdict: Verdict) -> Verdict | None:
        """Note what the session is now. Returns the verdict reported before when this one differs (the caller says
        so, once), else None. A verdict other than the last re-open's ends its hold-off; OPEN wakes the listeners."""
        if verdict is Verdict.UNKNOWN:
            return None
        with self._state:
            previous = self._reported
            if self._last is not None and verdict is not self._last:
                self._last = None  # news (a person logged in, the other login left): no hold-off on old news
            if verdict is previous:
                return None
            self._reported = verdict
            listeners = list(self._listeners) if verdict is Verdict.OPEN else []
        for listener in listeners:
            try:
                listener(verdict)
            except Exception:  # a listener must not break the caller's request
                logger.exception("session listener %r failed", listener)
        return previous

    def note_asked(self) -> None:
        """A brokerage session was just asked for: a re-open starting soon after polls for it instead of asking."""
        self.asked_at = self._clock()

    @property
    def reported(self) -> Verdict:
        return self._reported

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(Verdict.OPEN)` whenever the session is found open again after a problem."""
        with self._state:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._state:
            if listener in self._listeners:
                self._listeners.remove(listener)


_SHARED: dict[str, SessionGuard] = {}
_SHARED_LOCK = threading.Lock()


def shared_guard(key: str) -> SessionGuard:
    """The one guard of this process for the gateway at `key` (its base URL)."""
    with _SHARED_LOCK:
        guard = _SHARED.get(key)
        if guard is None:
            guard = _SHARED[key] = SessionGuard()
        return guard
