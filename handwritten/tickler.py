"""Keep-alive thread: calls `tickle()` at an interval so an idle session is not closed by the gateway.

Why hand-written: a background thread with a prompt, bounded stop is client machinery, not an endpoint.

One keep-alive per session, not one per process: when `tick` is a client's method, each tick first claims the
session's keep-alive in the client's coordination store for most of an interval; when another client or process
has claimed it, this tick is skipped (`skipped`). A process that stops ticking lets another take over within an
interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .errors import ClientClosedError

logger = logging.getLogger("ibkr_sdk")

DEFAULT_INTERVAL = 60.0


class Tickler:
    """Runs `tick` every `interval` seconds in a daemon thread until `stop()`; failures are logged, not raised.

    `claim(seconds) -> bool` decides whether this tick is the session's keep-alive (see the module docstring);
    by default it is taken from the client `tick` belongs to.
    """

    def __init__(
        self,
        tick: Callable[[], object],
        interval: float = DEFAULT_INTERVAL,
        claim: Callable[[float], bool] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"Tickler(): parameter 'interval' must be above 0, got {interval!r}")
        self._tick = tick
        self._claim = claim if claim is not None else getattr(getattr(tick, "__self__", None), "_keepalive_claim", None)
        self.skipped = 0
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.ticks = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._stop.is_set() and self._closed:
            raise ClientClosedError("start_tickler(): the client is closed")
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ibkr_sdk-tickler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._claimed():
                self.skipped += 1
                continue
            try:
                self._tick()
                self.ticks += 1
            except ClientClosedError:
                return  # the client was closed during the tick: nothing more to keep alive
            except Exception as exc:  # keep ticking: the next tick may succeed
                self.failures += 1
                logger.warning("tickle failed: %s", exc)

    def _claimed(self) -> bool:
        """True unless another client or process keeps the session alive this interval."""
        if self._claim is None:
            return True
        try:
            return bool(self._claim(self.interval * 0.9))
        except Exception as exc:  # the store is unusable: tick anyway, a keep-alive too many does no harm
            logger.debug("tickle: coordination unavailable (%s); ticking", exc)
            return True

    def close(self) -> None:
        """Stop for good (without waiting): `start()` raises `ClientClosedError` from now on."""
        self._closed = True
        self._stop.set()

    def join(self, timeout: float) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop and wait for the thread (at most `timeout` seconds, None for no limit; a tick in progress is bounded
        by the client's request timeout)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
