"""Faults injected on demand, per route: tests use them to exercise a client's error handling."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = ("latency", "status", "reset", "stall", "malformed", "truncate")
"""What `Simulator.inject` can do to a request:

- `latency`: wait `value` seconds, then answer normally;
- `status`: answer HTTP `value` (e.g. 503) with a JSON error body (or the `body` given);
- `reset`: close the connection without answering (a reset, no HTTP response at all);
- `stall`: accept the request and never answer, until `value` seconds have passed (default: until the
  simulator stops), then close the connection;
- `malformed`: answer 200 with `Content-Type: application/json` and a body that is not valid JSON;
- `truncate`: handle the request, send the status line, the headers and half of the body, then cut the
  connection (a reset in the middle of the answer).

`status`, `reset`, `stall` and `malformed` take `after=True` to handle the request first (an order is placed, a
cancel applied) and only then lose or spoil the answer: the case where a client cannot know whether its request
took effect. A fault with a `probability` applies to each matching request with that chance (seeded draws).
"""

ANY_ROUTE = "*"


@dataclass
class Fault:
    kind: str
    value: float | None = None
    times: int | None = 1  # None: every matching request until cleared
    body: Any = None
    after: bool = False  # handle the request, then lose (or spoil) the answer
    probability: float | None = None  # chance that a matching request gets the fault; None: every one


class FaultBook:
    """Pending faults by endpoint name (or `*` for every route); each request consumes at most one."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._faults: dict[str, list[Fault]] = {}

    def add(self, route: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(route, []).append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str) -> Fault | None:
        with self._lock:
            for key in (endpoint, ANY_ROUTE):
                queue = self._faults.get(key)
                if not queue:
                    continue
                fault = next((f for f in queue if f.probability is None or self._random.random() < f.probability), None)
                if fault is None:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.remove(fault)
                return fault
        return None
