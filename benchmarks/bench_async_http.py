"""Why aiohttp: httpx and aiohttp as asyncio HTTP clients on the same loopback server, as the choice was measured.

For each library (httpx is optional: `pip install httpx`; skipped with a message otherwise) and each host form
(`127.0.0.1`, `localhost`): the per-call cost of sequential GETs (wall and CPU of this process), and the OS threads
the library adds (after the first request, and at the peak of 100 concurrent requests). The server is a
fixed-answer HTTP/1.1 server in its own process, so its threads are not counted. Not part of `make bench`: it
documents the README's "choice of HTTP library".
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_async import FIXED, _server, _stop  # noqa: E402

ROUNDS = 9
CALLS = 200


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


async def _measure(library: str, url: str) -> dict[str, Any]:
    before = _threads()
    if library == "aiohttp":
        import aiohttp

        session: Any = aiohttp.ClientSession()

        async def one() -> bytes:
            async with session.get(url) as resp:
                return bytes(await resp.read())

    else:
        import httpx

        session = httpx.AsyncClient()

        async def one() -> bytes:
            return bytes((await session.get(url)).content)

    await one()
    after_first = _threads() - before
    wall, cpu = [], []
    for _ in range(ROUNDS):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(CALLS):
            await one()
        wall.append((time.perf_counter() - start) / CALLS)
        cpu.append((time.process_time() - start_cpu) / CALLS)
    peak = _threads()
    calls = asyncio.gather(*(one() for _ in range(100)))
    while not calls.done():
        peak = max(peak, _threads())
        await asyncio.sleep(0.002)
    await calls
    await (session.close() if library == "aiohttp" else session.aclose())
    return {
        "wall": statistics.median(wall),
        "cpu": statistics.median(cpu),
        "first": after_first,
        "peak": peak - before,
    }


def main() -> None:
    libraries = ["aiohttp"]
    try:
        import httpx  # noqa: F401

        libraries.append("httpx")
    except ImportError:
        print("httpx is not installed: its column is skipped (pip install httpx)")
    proc, info = _server(FIXED)
    try:
        print(f"sequential GETs, median of {ROUNDS} rounds x {CALLS}; threads added by the library:")
        for host in ("127.0.0.1", "localhost"):
            url = f"http://{host}:{info['port']}/v1/api/portfolio/accounts"
            for library in libraries:
                r = asyncio.run(_measure(library, url))
                print(
                    f"  {library:8s} {host:10s} wall {r['wall'] * 1e6:7.1f} us  CPU {r['cpu'] * 1e6:7.1f} us  "
                    f"threads after the first request {r['first']}, at the peak of 100 concurrent {r['peak']}"
                )
    finally:
        _stop(proc)


if __name__ == "__main__":
    main()
