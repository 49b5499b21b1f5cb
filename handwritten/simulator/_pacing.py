"""IBKR's pacing limits, enforced when the simulator runs with `pacing=True`.

The limits are the catalogue's own (`ibkr_sdk._endpoint_table.PACING_BUCKETS` and the gateway's global limit):
a rate bucket admits `rate` requests per `per` seconds per endpoint (sliding window), a concurrency bucket admits
`concurrent` requests in flight at once, and every request counts against the global 10 per second. A request
over any limit is answered 429 and not counted. Pacing uses the real monotonic clock, never the simulated one:
it is about how fast the client really sends.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from ..lib.endpoint import EndpointSpec, PacingBucket

GLOBAL_KEY = "<global>"
MASTER_ACCOUNT_BUCKET = "gw_master_account"  # /gw/api/v1: also 600 a minute per master account, all endpoints


class Pacer:
    def __init__(
        self,
        global_limit: PacingBucket,
        buckets: Mapping[str, PacingBucket],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._global = global_limit
        self._buckets = dict(buckets)
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}

    def _window_full(self, key: str, rate: int, per: float, now: float) -> bool:
        window = self._windows.setdefault(key, deque())
        while window and now - window[0] >= per:
            window.popleft()
        return len(window) >= rate

    def enter(self, spec: EndpointSpec) -> str | None:
        """Admit a request (returns None) or name the limit it exceeds. Admitted requests must `leave`."""
        now = self._clock()
        bucket = self._buckets.get(spec.pacing) if spec.pacing else None
        with self._lock:
            g = self._global
            if g.rate and g.per and self._window_full(GLOBAL_KEY, g.rate, g.per, now):
                return f"global limit of {g.rate} requests per {g.per:g} s"
            if bucket is not None and bucket.rate and bucket.per:
                if self._window_full(spec.name, bucket.rate, bucket.per, now):
                    return f"{spec.name} limit of {bucket.rate} requests per {bucket.per:g} s"
            if bucket is not None and bucket.concurrent:
                if self._in_flight.get(bucket.name, 0) >= bucket.concurrent:
                    return f"{spec.name} limit of {bucket.concurrent} concurrent requests"
            master = self._buckets.get(MASTER_ACCOUNT_BUCKET) if spec.base else None
            if master is not None and master.rate and master.per:
                if self._window_full(MASTER_ACCOUNT_BUCKET, master.rate, master.per, now):
                    return f"master account limit of {master.rate} requests per {master.per:g} s"
                self._windows[MASTER_ACCOUNT_BUCKET].append(now)
            self._windows.setdefault(GLOBAL_KEY, deque()).append(now)
            if bucket is not None:
                if bucket.rate and bucket.per:
                    self._windows.setdefault(spec.name, deque()).append(now)
                if bucket.concurrent:
                    self._in_flight[bucket.name] = self._in_flight.get(bucket.name, 0) + 1
        return None

    def leave(self, spec: EndpointSpec) -> None:
        bucket = self._buckets.get(spec.pacing) if spec.pacing else None
        if bucket is None or not bucket.concurrent:
            return
        with self._lock:
            self._in_flight[bucket.name] = max(0, self._in_flight.get(bucket.name, 0) - 1)
