"""`execute_in_parallel`: call one function with many argument sets on a thread pool, at a bounded start rate.

Each call's exception is returned in place of its result, so one failure does not lose the others. The client's
own pacing still applies to every request the calls make; `max_per_second` only bounds how fast calls start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class _StartRate:
    """Lets at most `per_second` callers through in any one-second window (callers sleep, never spin)."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._starts: list[float] = []
        self._lock = threading.Lock()

    def wait(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._starts = [t for t in self._starts if now - t < 1.0]
                if len(self._starts) < self.per_second:
                    self._starts.append(now)
                    return
                delay = 1.0 - (now - self._starts[0])
            time.sleep(max(delay, 0.001))


def _one_request(request: Any) -> tuple[Sequence[Any], Mapping[str, Any]]:
    if not isinstance(request, Mapping):
        raise ValueError(
            f"execute_in_parallel(): parameter 'requests' must hold dicts with 'args' and/or 'kwargs', got {request!r}"
        )
    args = request.get("args", ())
    kwargs = request.get("kwargs", {})
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence) or not isinstance(kwargs, Mapping):
        raise ValueError("execute_in_parallel(): each request's 'args' must be a list and 'kwargs' a dict")
    return args, kwargs


def execute_in_parallel(
    func: Callable[..., Any],
    requests: Sequence[Mapping[str, Any]] | Mapping[Hashable, Mapping[str, Any]],
    max_workers: int | None = None,
    max_per_second: int = 20,
) -> Any:
    """Run `func(*args, **kwargs)` for every request on a thread pool.

    Args:
        func: The function to call, e.g. a client method.
        requests: `{key: {"args": [...], "kwargs": {...}}}` or a list of such dicts.
        max_workers: Threads in the pool (Python's default when None).
        max_per_second: At most this many calls start in any one second.

    Returns:
        `{key: result or exception}` for a dict of requests, or the list of results in request order.
    """
    if isinstance(max_per_second, bool) or not isinstance(max_per_second, int) or max_per_second < 1:
        raise ValueError(
            f"execute_in_parallel(): parameter 'max_per_second' must be an int >= 1, got {max_per_second!r}"
        )
    if isinstance(requests, Mapping):
        keyed: dict[Any, Mapping[str, Any]] = dict(requests)
    elif isinstance(requests, Sequence) and not isinstance(requests, (str, bytes)):
        keyed = dict(enumerate(requests))
    else:
        raise ValueError("execute_in_parallel(): parameter 'requests' must be a dict or a list of requests")
    calls = {key: _one_request(request) for key, request in keyed.items()}
    rate = _StartRate(max_per_second)

    def run(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # returned in place of the result
            return exc

    name = getattr(func, "__name__", "call")
    futures: dict[Any, Future[Any]] = {}
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"ibkr_sdk-{name}") as pool:
        for key, (args, kwargs) in calls.items():
            rate.wait()
            futures[key] = pool.submit(run, args, kwargs)
    results = {key: future.result() for key, future in futures.items()}
    if isinstance(requests, Mapping):
        return results
    return [results[i] for i in range(len(keyed))]
