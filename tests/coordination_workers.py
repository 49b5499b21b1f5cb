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


def snapshots(job: dict[str, Any], go: Any, out: Any) -> None:
    """`job["count"]` snapshot requests in a row (job: url, coordination, state_dir, count, scale; preflight: run
    /iserver/accounts as needed; retry_store: retry a CoordinationError after 20 ms, counting it)."""
    from ibkr_sdk import CoordinationError, ExternalBrokerError

    client = _client(
        job["url"],
        job["coordination"],
        job.get("state_dir"),
        pacing_time_scale=job["scale"],
        max_retries=0,
        auto_preflight=job.get("preflight", False),
    )
    out.put(("ready", os.getpid()))
    go.wait(60)
    done, errors, store_errors = 0, [], 0
    started = time.monotonic()
    while done < job["count"]:
        try:
            client.live_marketdata_snapshot(conids=[str(AAPL)], fields=["31"])
            done += 1
        except CoordinationError:
            if not job.get("retry_store"):
                raise
            store_errors += 1
            time.sleep(0.02)
        except ExternalBrokerError as exc:
            errors.append(str(exc))
            done += 1
    wall = time.monotonic() - started
    out.put(
        ("done", os.getpid(), {"errors": errors, "store_errors": store_errors, "wall": wall, "end": time.monotonic()})
    )
    client.close()


def orders(job: dict[str, Any], go: Any, out: Any) -> None:
    """`job["count"]` market orders with cOIDs `<tag>-<n>`, each drawing IBKR's missing-market-data question,
    answered yes (job: url, coordination, state_dir, tag, count)."""
    from ibkr_sdk import QuestionType

    client = _client(job["url"], job["coordination"], job.get("state_dir"), pacing_time_scale=0.05, max_retries=0)
    client._transport.timeout = job.get("timeout", 5)
    out.put(("ready", os.getpid()))
    go.wait(60)
    results, errors = [], []
    for i in range(job["count"]):
        try:
            answer = client.place_order(dict(MKT, cOID=f"{job['tag']}-{i}"), {QuestionType.MISSING_MARKET_DATA: True})
            results.append(answer.data)
        except Exception as exc:  # reported to the test, which asserts there are none
            errors.append(f"{type(exc).__name__}: {exc}")
    out.put(("done", os.getpid(), {"results": results, "errors": errors}))
    client.close()


def hold_lease(job: dict[str, Any], go: Any, out: Any) -> None:
    """Take a lease (job: coordination, state_dir, key, seconds) and hold it until killed."""
    if job.get("state_dir"):
        os.environ["IBKR_SDK_STATE_DIR"] = job["state_dir"]
    from ibkr_sdk.lib.coordination import backend_for

    lease = backend_for(job["coordination"]).lease(job["key"])
    while lease.try_acquire(job["seconds"]) is None:
        time.sleep(0.005)
    out.put(("ready", os.getpid()))
    go.wait(60)
    time.sleep(60)


@contextmanager
def fleet(target: Callable[..., None], jobs: Sequence[dict[str, Any]]) -> Iterator[Fleet]:
    """Start one process per job (`target(job, go, out)`); yields once all are ready."""
    go = SPAWN.Event()
    out = SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(job, go, out), daemon=True) for job in jobs]
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
