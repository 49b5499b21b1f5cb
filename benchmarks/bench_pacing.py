"""Pacing benchmarks: how close paced workloads come to the tightest schedule IBKR's limits allow.

1. A burst of 200 snapshot requests with pacing on: bound = floor((n-1)/10) s + latency (global 10 req/s; the
   snapshot bucket is also 10/s). Target ratio <= 1.10.
2. History for 50 conids with 150 ms server latency: held by both 5 in flight and the global 10 req/s. The bound is
   the tightest schedule IBKR's limits allow together: each request starts as early as both limits let it (at
   most 5 in flight; the 11th start at least 1 s after the 1st), which for identical requests is the earliest
   possible finish (4.30 s here). The simpler lower bound max(ceil(n/5) x latency, floor((n-1)/10) s + latency),
   which no schedule reaches, is printed beside it. Target <= 1.10.
The client counts a request from the moment its bytes went to the socket plus the one-way delay (the lowest round
trip seen, a TCP handshake included), so a window of 10 lasts its period plus the pacer's safety margin (1 % and
25 ms), not period plus latency. Each workload runs with every coordination backend (`process`, `local`, and
`redis` against a redis-server started on loopback when one is installed). Prints wall time, bound and ratio for
each. Loopback only.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._server import FixedServer  # noqa: E402
from ibkr_sdk import IbkrClient  # noqa: E402
from tests.redis_server import RedisServer, available  # noqa: E402

SNAPSHOT = [{"conid": 265598, "31": "170.00", "84": "169.99", "86": "170.01"}]
HISTORY = {"symbol": "AAPL", "data": [{"o": 1.0, "c": 1.0, "h": 1.0, "l": 1.0, "v": 100, "t": 1700000000000}]}


def _name(coordination: str) -> str:
    return "redis" if coordination.startswith("redis") else coordination


def snapshot_burst(n: int = 200, latency: float = 0.0, coordination: str = "local") -> None:
    with FixedServer(SNAPSHOT, latency=latency) as server:
        url = f"http://127.0.0.1:{server.port}/v1/api/"
        client = IbkrClient(url=url, account_id="DU1234567", coordination=coordination)
        client.receive_brokerage_accounts()  # the snapshot's preflight, outside the timed burst
        time.sleep(1.1)  # let the global window empty
        start = time.perf_counter()
        for _ in range(n):
            client.live_marketdata_snapshot(conids=["265598"], fields=["31", "84", "86"])
        wall = time.perf_counter() - start
        client.close()
    bound = math.floor((n - 1) / 10) + latency
    print(
        f"[{_name(coordination)}] snapshot burst: {n} requests in {wall:.2f} s; bound {bound:.2f} s (10 req/s); "
        f"ratio {wall / bound:.3f} (target <= 1.10)"
    )


def tightest_schedule(n: int, latency: float, in_flight: int = 5, rate: int = 10, per: float = 1.0) -> float:
    """The earliest finish of `n` requests taking `latency` each with at most `in_flight` at once and `rate` starts
    in any `per` seconds: every request starts as soon as both limits allow (optimal for identical requests)."""
    starts: list[float] = []
    for i in range(n):
        start = 0.0
        if i >= in_flight:
            start = max(start, starts[i - in_flight] + latency)  # starts only grow: the i-5th ends first
        if i >= rate:
            start = max(start, starts[i - rate] + per)
        starts.append(start)
    return starts[-1] + latency


def history_parallel(n: int = 50, latency: float = 0.150, coordination: str = "local") -> None:
    with FixedServer(HISTORY, latency=latency) as server:
        url = f"http://127.0.0.1:{server.port}/v1/api/"
        client = IbkrClient(url=url, account_id="DU1234567", coordination=coordination)
        client.receive_brokerage_accounts()  # outside the timed part: opens the store (and a connection)
        time.sleep(1.2)  # let the global window empty
        start = time.perf_counter()
        out = client.marketdata_history_by_conids([str(1000 + i) for i in range(n)], period="1d", bar="1h")
        wall = time.perf_counter() - start
        client.close()
    assert len(out) == n and all(isinstance(v, list) for v in out.values())
    bound = tightest_schedule(n, latency)
    lower = max(math.ceil(n / 5) * latency, math.floor((n - 1) / 10) + latency)
    print(
        f"[{_name(coordination)}] history for {n} conids at {latency * 1000:.0f} ms latency: {wall:.2f} s; "
        f"bound {bound:.2f} s (the tightest "
        f"schedule of 5 in flight and 10 req/s together); ratio {wall / bound:.3f} (target <= 1.10); against the "
        f"lower bound max(ceil(n/5) x latency, floor((n-1)/10) s + latency) = {lower:.2f} s: {wall / lower:.3f}"
    )


def main() -> None:
    backends = ["process", "local"]
    why = available()
    with RedisServer() if not why else nullcontext() as redis:
        if redis is not None:
            backends.append(redis.url)
        else:
            print(f"[redis] skipped: {why}")
        for coordination in backends:
            history_parallel(coordination=coordination)
            snapshot_burst(coordination=coordination)


if __name__ == "__main__":
    main()
