"""The asyncio client: per-call overhead, concurrent paced calls, and WebSocket throughput against the sync client.

1. Per-call cost of `await AsyncIbkrClient.portfolio_accounts()` against a bare `aiohttp.ClientSession` on the same
   loopback server (a fixed-answer server in its own process), sequential calls, interleaved rounds. The bare
   session is set up as the client's (same headers, timeouts, keep-alive, an encoded URL object), so the ratio is
   our own overhead: argument checks, the flow driver, the request record, retry bookkeeping (pacing off), the `Result`.
   Target <= 1.20.
2. 100 and 1,000 concurrent `live_marketdata_snapshot` calls (one `asyncio.gather`) against the simulator with
   IBKR's pacing enforced (it answers 429 beyond the limits), in its own process. The tightest bound IBKR's limits
   allow (global 10/s, snapshot 10/s) is floor((n-1)/10) s plus one call's latency. Prints wall / bound (target
   <= 1.10), the 429s (target 0), the OS threads added during the calls, and the process's peak RSS.
3. WebSocket throughput: a 20,000-frame market-data burst from the loopback source of `bench_stream.py`, read with
   `async for event in ws.events(...)` (AsyncIbkrWsClient) and with a QueueSink consumer thread (IbkrWsClient), each
   client in its own process, interleaved rounds. Target async / sync >= 1.0.

Run on a loaded machine, the absolute numbers move; the ratios are measured within the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 21
CALLS = 200
WS_ROUNDS = 5
WS_FRAMES = 20_000


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _server(code: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT)
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    proc.wait(10)


FIXED = (
    "import json, sys\nfrom benchmarks._server import FixedServer\n"
    "with FixedServer() as s:\n    print(json.dumps({'port': s.port}), flush=True); sys.stdin.read()\n"
)
PACED = (
    "import json, sys\nfrom ibkr_sdk.simulator import Simulator\n"
    "with Simulator(pacing=True) as s:\n    print(json.dumps({'url': s.url}), flush=True); sys.stdin.read()\n"
)


# -- 1. per-call overhead ---------------------------------------------------------------------------------------------


async def _per_call(port: int) -> tuple[dict[str, float], dict[str, float]]:
    import aiohttp
    from yarl import URL

    from ibkr_sdk import AsyncIbkrClient

    base = f"http://127.0.0.1:{port}/v1/api"
    client = AsyncIbkrClient(url=base + "/", account_id="DU1234567", max_retries=0, pacing=False)
    # As the client's session: the same headers, and the same timeouts (a connect and a per-read timeout).
    session = aiohttp.ClientSession(
        headers={"User-Agent": "ibkr_sdk", "Accept": "application/json"},
        timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=10, sock_read=10),
    )

    async def ours() -> object:
        return (await client.portfolio_accounts()).data

    async def bare() -> object:
        # An encoded URL object, as the client passes: a plain string costs yarl a parse and a requote.
        async with session.get(URL(base + "/portfolio/accounts", encoded=True)) as resp:
            return json.loads(await resp.read())

    contenders = {"aiohttp.ClientSession": bare, "AsyncIbkrClient": ours}
    expected = await bare()
    for fn in contenders.values():
        assert await fn() == expected
    wall: dict[str, list[float]] = {k: [] for k in contenders}
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for round_no in range(ROUNDS):
        for name in names[round_no % 2 :] + names[: round_no % 2]:
            fn = contenders[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(CALLS):
                await fn()
            wall[name].append((time.perf_counter() - start) / CALLS)
            cpu[name].append((time.process_time() - start_cpu) / CALLS)
    await client.aclose()
    await session.close()
    return {k: statistics.median(v) for k, v in wall.items()}, {k: statistics.median(v) for k, v in cpu.items()}


def per_call() -> None:
    proc, info = _server(FIXED)
    try:
        wall, cpu = asyncio.run(_per_call(info["port"]))
    finally:
        _stop(proc)
    print(f"1. per-call cost, median of {ROUNDS} interleaved rounds x {CALLS} sequential calls (loopback HTTP):")
    for name in wall:
        print(f"  {name:22s} wall {wall[name] * 1e6:7.1f} us   CPU (this process) {cpu[name] * 1e6:7.1f} us")
    ratio = wall["AsyncIbkrClient"] / wall["aiohttp.ClientSession"]
    ratio_cpu = cpu["AsyncIbkrClient"] / cpu["aiohttp.ClientSession"]
    print(f"  AsyncIbkrClient / aiohttp.ClientSession: wall {ratio:.3f}, CPU {ratio_cpu:.3f} (target <= 1.20)")


# -- 2. concurrent paced calls ------------------------------------------------------------------------------------


async def _concurrent(url: str, n: int) -> dict[str, Any]:
    from ibkr_sdk import AsyncIbkrClient, RateLimitedError

    async with AsyncIbkrClient(url=url, account_id="DU1234567", max_retries=0) as client:
        await client.receive_brokerage_accounts()  # the snapshot's preflight, outside the timed burst
        latencies = []
        for _ in range(3):
            started = time.perf_counter()
            await client.live_marketdata_snapshot(conids=["265598"], fields=["31", "84", "86"])
            latencies.append(time.perf_counter() - started)
        latency = statistics.median(latencies)
        await asyncio.sleep(1.2)  # let the windows empty
        before = peak = _threads()
        start = time.perf_counter()
        calls = asyncio.gather(
            *(client.live_marketdata_snapshot(conids=["265598"], fields=["31", "84", "86"]) for _ in range(n)),
            return_exceptions=True,
        )
        while not calls.done():
            peak = max(peak, _threads())
            await asyncio.sleep(0.01)
        outcomes = await calls
        wall = time.perf_counter() - start
    limited = sum(1 for o in outcomes if isinstance(o, RateLimitedError) and o.status_code == 429)
    failed = sum(1 for o in outcomes if isinstance(o, BaseException))
    return {"wall": wall, "latency": latency, "429": limited, "failed": failed, "threads": peak - before}


def concurrent() -> None:
    proc, info = _server(PACED)
    print("2. concurrent live_marketdata_snapshot calls against the simulator enforcing IBKR's pacing (own process):")
    try:
        for n in (100, 1000):
            result = asyncio.run(_concurrent(info["url"], n))
            bound = math.floor((n - 1) / 10) + result["latency"]
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"  {n:5d} calls: {result['wall']:.2f} s; bound {bound:.2f} s (10 req/s); ratio "
                f"{result['wall'] / bound:.3f} (target <= 1.10); 429s {result['429']} (target 0); other failures "
                f"{result['failed'] - result['429']}; threads added {result['threads']}; peak RSS {rss:.1f} MB"
            )
            time.sleep(1.2)
    finally:
        _stop(proc)


# -- 3. WebSocket throughput ------------------------------------------------------------------------------------------


def _async_ws_run(ws_url: str, rest_url: str, count: int) -> dict[str, Any]:
    from benchmarks.bench_stream import CONID, FIELDS, _stamp
    from ibkr_sdk import AsyncIbkrClient, AsyncIbkrWsClient, events
    from ibkr_sdk.subscriptions import MarketDataSubscription

    async def main() -> dict[str, Any]:
        url = f"{ws_url}?mode=burst&n={count}&rate=0"
        async with AsyncIbkrClient(url=rest_url, account_id="DU1234567", pacing=False) as rest:
            async with AsyncIbkrWsClient(url=url, ibkr_client=rest, account_id="DU1234567") as ws:
                await ws.subscribe(MarketDataSubscription(conid=CONID, fields=FIELDS))
                received, first_sent, last_seen = 0, 0, 0
                stream = ws.events(events.MarketData)
                async for event in stream:
                    now = time.monotonic_ns()
                    if not first_sent:
                        first_sent = int(_stamp(event.data))
                    received += 1
                    last_seen = now
                    if received >= count:
                        break
                await stream.aclose()
        elapsed = (last_seen - first_sent) / 1e9
        return {"received": received, "frames_per_s": received / elapsed if elapsed > 0 else 0.0}

    return asyncio.run(asyncio.wait_for(main(), 120))


def _ws_client(which: str, urls: dict[str, str]) -> float | None:
    args = [sys.executable, __file__, "--ws-client", which, "--ws", urls["ws"], "--rest", urls["rest"]]
    done = subprocess.run(args, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        print(f"  note: the {which} run failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    value = json.loads(done.stdout.strip().splitlines()[-1]).get("frames_per_s")
    return float(value) if value else None


def websocket() -> None:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "bench_stream.py"), "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        urls = json.loads(server.stdout.readline())
        runs: dict[str, list[float]] = {"async": [], "sync": []}
        ratios = []
        for _ in range(WS_ROUNDS):
            pair = {who: _ws_client(who, urls) for who in ("sync", "async")}
            for who, value in pair.items():
                if value:
                    runs[who].append(value)
            if pair["async"] and pair["sync"]:
                ratios.append(pair["async"] / pair["sync"])
    finally:
        _stop(server)  # type: ignore[arg-type]
    print(f"3. WebSocket market-data throughput, {WS_FRAMES:,}-frame burst, median of {WS_ROUNDS} interleaved runs:")
    for who, values in runs.items():
        shown = f"{statistics.median(values):,.0f} frames/s" if values else "n/a"
        print(f"  {'AsyncIbkrWsClient (async for)' if who == 'async' else 'IbkrWsClient (QueueSink)':30s} {shown}")
    if runs["async"] and runs["sync"]:
        ratio = statistics.median(runs["async"]) / statistics.median(runs["sync"])
        each = ", ".join(f"{r:.2f}x" for r in sorted(ratios))
        print(f"  throughput ratio async / sync: {ratio:.2f}x (target >= 1.0); within each round: {each}")


def main() -> None:
    per_call()
    concurrent()
    websocket()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ws-client", choices=["async", "sync"])
    parser.add_argument("--ws")
    parser.add_argument("--rest")
    parser.add_argument("--part", choices=["call", "concurrent", "ws"])
    options = parser.parse_args()
    if options.ws_client == "async":
        print(json.dumps(_async_ws_run(options.ws, options.rest, WS_FRAMES)))
    elif options.ws_client == "sync":
        from benchmarks.bench_stream import client_run

        print(json.dumps(client_run("ours", options.ws, options.rest, "burst", WS_FRAMES, 0)))
    elif options.part:
        {"call": per_call, "concurrent": concurrent, "ws": websocket}[options.part]()
    else:
        main()
