"""Several processes, one gateway: what coordination costs and what it saves (issue 20).

1. A snapshot burst of 100 requests shared by 1, 2, 4 and 8 processes against the simulator with IBKR's pacing
   (10 per second), per backend: wall time (from the common start to the last answer) against the bound
   floor((n-1)/10) s, and the 429s the simulator answered. `process` paces each process alone: its 429s are what
   every other client library draws (and IBKR answers them with the 10-15 minute penalty box). Target for the
   shared backends: 0 x 429, ratio <= 1.10.
2. The cost per call with pacing on and no waiting (bursts of 9 calls, under the global limit of 10 per window, with
   the window left to empty between bursts), the backends' bursts interleaved: `local` against `process` (target
   <= +10 %) and `redis` against `process` on loopback (target <= +20 %). On a busy machine the median carries the
   other load's noise; the 10th percentile of the bursts is printed beside it.
The Redis parts need `redis-server` and redis-py; they are skipped (and say so) otherwise. Loopback only.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._server import FixedServer  # noqa: E402
from ibkr_sdk import IbkrClient  # noqa: E402
from ibkr_sdk.simulator import Simulator  # noqa: E402
from tests import coordination_workers as workers  # noqa: E402
from tests.redis_server import RedisServer, available  # noqa: E402

BURST = 100
PROCESSES = (1, 2, 4, 8)
BURSTS = 150
CALLS_PER_BURST = 9
SCALE = 0.001  # the global window of 10 lasts 1 ms x 1.01 + the 25 ms safety margin: a burst of 9 never waits


def _name(coordination: str) -> str:
    return "redis" if coordination.startswith("redis") else coordination


def fleet_burst(coordination: str, processes: int) -> None:
    with Simulator(pacing=True) as sim:
        warm = IbkrClient(url=sim.url, account_id=workers.ACCOUNT, coordination=coordination)
        warm.receive_brokerage_accounts()  # the snapshot's preflight (and a new Redis's first period) before the start
        warm.close()
        share, extra = divmod(BURST, processes)
        jobs = [
            {"url": sim.url, "coordination": coordination, "count": share + (i < extra), "scale": 1.0}
            for i in range(processes)
        ]
        with workers.fleet(workers.snapshots, jobs) as fleet:
            time.sleep(1.1)  # the global window empties
            start = fleet.start()
            reports = fleet.results(timeout=120)
        statuses = [r.status for r in sim.requests if r.endpoint == "live_marketdata_snapshot"]
    wall = max(r["end"] for r in reports.values()) - start
    bound = (BURST - 1) // 10
    print(
        f"[{_name(coordination)}] {processes} process{'es' if processes > 1 else ''}, {BURST} snapshots: "
        f"{wall:.2f} s; bound {bound:.2f} s; ratio {wall / bound:.3f}; 429s: {statuses.count(429)} of {len(statuses)}"
    )


def per_call(backends: list[str]) -> None:
    with FixedServer({"accounts": [workers.ACCOUNT]}) as server:
        url = f"http://127.0.0.1:{server.port}/v1/api/"
        clients = {
            b: IbkrClient(url=url, account_id=workers.ACCOUNT, coordination=b, pacing_time_scale=SCALE, max_retries=0)
            for b in backends
        }
        for client in clients.values():
            client.receive_brokerage_accounts()
        time.sleep(2.5)  # a new Redis takes its windows as full for a moment
        waited = {b: c._transport.pacer.waited for b, c in clients.items()}
        samples: dict[str, list[float]] = {b: [] for b in backends}
        for burst in range(BURSTS):
            order = backends[burst % len(backends) :] + backends[: burst % len(backends)]
            for backend in order:
                call = clients[backend].receive_brokerage_accounts
                time.sleep(0.03)  # the window (10 per 26 ms) empties
                started = time.perf_counter()
                for _ in range(CALLS_PER_BURST):
                    call()
                samples[backend].append((time.perf_counter() - started) / CALLS_PER_BURST)
        for backend, client in clients.items():
            assert client._transport.pacer.waited == waited[backend], f"{backend}: a call waited for pacing"
            client.close()
    median = {b: statistics.median(v) for b, v in samples.items()}
    low = {b: statistics.quantiles(v, n=10)[0] for b, v in samples.items()}
    print(
        f"per-call cost with pacing on and no waiting, {BURSTS} interleaved bursts of {CALLS_PER_BURST} calls per "
        f"backend (loopback HTTP; load average {os.getloadavg()[0]:.1f}; the 10th percentile is the least disturbed "
        "by other load):"
    )
    for backend in backends:
        target = {"process": "", "local": " (target <= 1.10)"}.get(_name(backend), " (target <= 1.20)")
        print(
            f"  {_name(backend):8s} median {median[backend] * 1e6:8.1f} us {median[backend] / median['process']:.3f}x "
            f"process; 10th percentile {low[backend] * 1e6:8.1f} us {low[backend] / low['process']:.3f}x "
            f"process{target}"
        )


def main() -> None:
    why = available()
    with RedisServer() if not why else nullcontext() as redis:
        backends = ["process", "local"] + ([redis.url] if redis is not None else [])
        if redis is None:
            print(f"[redis] skipped: {why}")
        per_call(backends)
        for backend in backends:
            for n in PROCESSES:
                fleet_burst(backend, n)


if __name__ == "__main__":
    main()
