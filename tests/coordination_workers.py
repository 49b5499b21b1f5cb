"""Worker processes for the coordination tests and `benchmarks/bench_fleet.py`: each is a separate Python process
(multiprocessing's spawn start method: nothing is inherited but what is passed) with its own `IbkrClient`.

A worker reports "ready" once its client exists, waits for the common start signal, does its part, and reports
what it got. Everything it talks to is on 127.0.0.1.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

ACCOUNT = "DU1234567"
AAPL = 265598
MKT = {"conid": AAPL, "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"}

SPAWN = multiprocessing.get_context("spawn")


def _client(url: str, coordination: str, state_dir: str | None, **options: Any) -> Any:
    if state_dir:
        os.environ["IBKR_SDK_STATE_DIR"] = state_dir  # a "host" of its own: only the Redis URL is shared
    from ibkr_sdk import IbkrClient

    return IbkrClient(url=url, account_id=ACCOUNT, coordination=coordination, timeout=5, **options)


def snapshots(
    url: str,
    coordination: str,
    state_dir: str | None,
    count: int,
    scale: float,
    go: Any,
    out: Any,
    retry_store: bool = False,
) -> None:
    """`count` snapshot requests in a row; CoordinationErrors are retried after 20 ms when `retry_store`."""
    from ibkr_sdk import CoordinationError, ExternalBrokerError

    client = _client(url, coordination, state_dir, pacing_time_scale=scale, max_retries=0, auto_preflight=False)
    out.put(("ready", os.getpid()))
    go.wait(60)
    done, errors, store_errors = 0, [], 0
    started = time.monotonic()
    while done < count:
        try:
            client.live_marketdata_snapshot(conids=[str(AAPL)], fields=["31"])
            done += 1
        except CoordinationError:
            if not retry_store:
                raise
            store_errors += 1
            time.sleep(0.02)
        except ExternalBrokerError as exc:
            errors.append(str(exc))
            done += 1
    out.put(("done", os.getpid(), {"errors": errors, "store_errors": store_errors, "wall": time.monotonic() - started}))
    client.close()


def orders(url: str, coordination: str, state_dir: str | None, tag: str, count: int, go: Any, out: Any) -> None:
    """`count` market orders, each drawing IBKR's missing-market-data question, answered yes."""
    from ibkr_sdk import QuestionType

    client = _client(url, coordination, state_dir, pacing_time_scale=0.05, max_retries=0)
    out.put(("ready", os.getpid()))
    go.wait(60)
    results, errors = [], []
    for i in range(count):
        try:
            result = client.place_order(dict(MKT, cOID=f"{tag}-{i}"), {QuestionType.MISSING_MARKET_DATA: True})
            results.append(result.data)
        except Exception as exc:  # reported to the test, which asserts there are none
            errors.append(f"{type(exc).__name__}: {exc}")
    out.put(("done", os.getpid(), {"results": results, "errors": errors}))
    client.close()


@contextmanager
def fleet(target: Callable[..., None], argument_lists: Sequence[tuple[Any, ...]]) -> Iterator[Fleet]:
    """Start one process per argument tuple (each gets `go` and `out` appended); yields once all are ready."""
    go = SPAWN.Event()
    out = SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(*args, go, out), daemon=True) for args in argument_lists]
    for p in procs:
        p.start()
    group = Fleet(procs, go, out)
    try:
        group.wait_ready()
        yield group
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(5)


class Fleet:
    def __init__(self, procs: list[Any], go: Any, out: Any) -> None:
        self.procs = procs
        self.go = go
        self.out = out
        self.reports: dict[int, dict[str, Any]] = {}

    def wait_ready(self, timeout: float = 60) -> None:
        ready = 0
        deadline = time.monotonic() + timeout
        while ready < len(self.procs):
            kind, *_ = self.out.get(timeout=max(0.1, deadline - time.monotonic()))
            ready += kind == "ready"

    def start(self) -> float:
        started = time.monotonic()
        self.go.set()
        return started

    def results(self, timeout: float = 60, expected: int | None = None) -> dict[int, dict[str, Any]]:
        """Each finished worker's report, by process id (waits for `expected` reports, default all)."""
        want = len(self.procs) if expected is None else expected
        deadline = time.monotonic() + timeout
        while len(self.reports) < want:
            kind, pid, *rest = self.out.get(timeout=max(0.1, deadline - time.monotonic()))
            if kind == "done":
                self.reports[pid] = rest[0]
        return self.reports
