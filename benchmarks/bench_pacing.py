"""Pacing benchmarks: how close paced workloads come to the tightest schedule IBKR's limits allow.

1. A burst of 200 snapshot requests with pacing on: bound = floor((n-1)/10) s + latency (global 10 req/s; the
   snapshot bucket is also 10/s). Target ratio <= 1.10.
2. History for 50 conids with 150 ms server latency: held by both 5 in flight and the global 10 req/s. The tightest
   bound IBKR's limits allow together is max(ceil(n/5) x latency, floor((n-1)/10) s + latency); the ratio against it
   is the figure that counts (target <= 1.15). The client counts a request in the 1 s window until its answer
   arrives (the only moment it knows the server has counted it: counting from the start lets requests that reach
   the server late, under uneven thread scheduling, exceed the limit and draw 429s, which cost a 10-15 minute
   penalty), so each window of 10 lasts up to 1 s + latency; the ratio against that rule's own bound,
   max(ceil(n/5) x latency, floor((n-1)/10) x (1 s + latency) + latency), is printed beside it to show the rest
   is overhead.
Prints wall time, bound and ratio for each. Loopback only.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._server import FixedServer  # noqa: E402
from ibkr_sdk import IbkrClient  # noqa: E402

SNAPSHOT = [{"conid": 265598, "31": "170.00", "84": "169.99", "86": "170.01"}]
HISTORY = {"symbol": "AAPL", "data": [{"o": 1.0, "c": 1.0, "h": 1.0, "l": 1.0, "v": 100, "t": 1700000000000}]}


def snapshot_burst(n: int = 200, latency: float = 0.0) -> None:
    with FixedServer(SNAPSHOT, latency=latency) as server:
        client = IbkrClient(url=f"http://127.0.0.1:{server.port}/v1/api/", account_id="DU1234567")
        client.receive_brokerage_accounts()  # the snapshot's preflight, outside the timed burst
        time.sleep(1.1)  # let the global window empty
        start = time.perf_counter()
        for _ in range(n):
            client.live_marketdata_snapshot(conids=["265598"], fields=["31", "84", "86"])
        wall = time.perf_counter() - start
        client.close()
    bound = math.floor((n - 1) / 10) + latency
    print(f"snapshot burst: {n} requests in {wall:.2f} s; bound {bound:.2f} s (10 req/s); ratio {wall / bound:.3f}")


def history_parallel(n: int = 50, latency: float = 0.150) -> None:
    with FixedServer(HISTORY, latency=latency) as server:
        client = IbkrClient(url=f"http://127.0.0.1:{server.port}/v1/api/", account_id="DU1234567")
        start = time.perf_counter()
        out = client.marketdata_history_by_conids([str(1000 + i) for i in range(n)], period="1d", bar="1h")
        wall = time.perf_counter() - start
        client.close()
    assert len(out) == n and all(isinstance(v, list) for v in out.values())
    bound = max(math.ceil(n / 5) * latency, math.floor((n - 1) / 10) + latency)
    rule = max(math.ceil(n / 5) * latency, math.floor((n - 1) / 10) * (1 + latency) + latency)
    print(
        f"history for {n} conids at {latency * 1000:.0f} ms latency: {wall:.2f} s; bound {bound:.2f} s "
        f"(max of 5 in flight and 10 req/s); ratio {wall / bound:.3f} (target <= 1.15); against the bound of "
        f"counting each request until answered ({rule:.2f} s): {wall / rule:.3f}"
    )


if __name__ == "__main__":
    history_parallel()
    snapshot_burst()
