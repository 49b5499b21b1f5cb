"""Sync and asyncio clients in different processes share one gateway's limits and order flow (issues 20 and 22):
an `AsyncIbkrClient` in this process, `IbkrClient`s in spawned workers, the `local` backend and a real
`redis-server` (whose calls the asyncio client makes from its coordination worker thread, never on the loop)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ibkr_sdk import QuestionType
from ibkr_sdk.lib.aio.client import AsyncIbkrClient
from ibkr_sdk.lib.coordination import backend_for
from ibkr_sdk.lib.coordination.report import order_flow_key
from ibkr_sdk.lib.orders import order_lock
from ibkr_sdk.simulator import Simulator
from tests import coordination_workers as workers
from tests.redis_server import RedisServer, available
from tests.test_async_client import _Heartbeat

SCALE = 0.1  # the global 10 per second becomes 10 per 100 ms
REDIS_MISSING = available()
ANSWERS = {QuestionType.MISSING_MARKET_DATA: True}


@pytest.fixture(scope="module", autouse=True)
def redis_url() -> Iterator[str | None]:
    """Started before the first scenario: a new Redis is taken as a restarted one, and its leases wait a moment
    for holders to renew theirs; that moment passes while the `local` scenarios run."""
    if REDIS_MISSING:
        yield None
        return
    with RedisServer() as server:
        backend_for(server.url).lease("warm-up").try_acquire(1.0)
        yield server.url


def _store(kind: str, tmp_path: Path, redis_url: str | None) -> dict[str, Any]:
    """The worker's store: the session's directory (`local`), or the Redis URL and a directory of its own."""
    if kind == "local":
        return {"coordination": "local"}
    if redis_url is None:
        pytest.skip(f"Redis scenarios skipped: {REDIS_MISSING}")
    return {"coordination": redis_url, "state_dir": str(tmp_path / "host")}


def _sent(sim: Simulator, endpoint: str) -> int:
    return len([r for r in sim.requests if r.endpoint == endpoint])


def _worker_thread_ran() -> bool:
    return any(t.name.startswith("ibkr_sdk-coordination-io") for t in threading.enumerate())


async def _beating(heart: _Heartbeat, body: Any) -> Any:
    beat = asyncio.ensure_future(heart.beat())
    try:
        return await asyncio.wait_for(body, 30)
    finally:
        heart.stop()
        await beat


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_an_async_client_and_a_sync_process_pace_together(kind: str, tmp_path: Path, redis_url: str | None) -> None:
    """30 concurrent asyncio calls here and 30 calls of a sync client in another process, each pacing correctly
    on its own: together they stay within the simulator's limits, /iserver/accounts goes out once for both, and
    the loop never waits on the store."""
    store = _store(kind, tmp_path, redis_url)
    heart = _Heartbeat()
    control = threading.Thread(target=heart.control)
    with Simulator(pacing=True, pacing_time_scale=SCALE) as sim:
        job = dict(store, url=sim.url, count=30, scale=SCALE, preflight=True)
        with workers.fleet(workers.snapshots, [job]) as fleet:

            async def main() -> list[Any]:
                async with AsyncIbkrClient(
                    url=sim.url, account_id=workers.ACCOUNT, coordination=store["coordination"],
                    pacing_time_scale=SCALE, max_retries=0, timeout=5,
                ) as client:  # fmt: skip
                    fleet.start()
                    calls = (client.live_marketdata_snapshot(conids=str(workers.AAPL), fields="31") for _ in range(30))
                    return await _beating(heart, asyncio.gather(*calls, return_exceptions=True))

            control.start()
            outcomes = asyncio.run(main())
            control.join(5)
            reports = fleet.results()
        statuses = [r.status for r in sim.requests]
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert [e for r in reports.values() for e in r["errors"]] == []
    assert 429 not in statuses
    assert _sent(sim, "live_marketdata_snapshot") == 60
    assert _sent(sim, "receive_brokerage_accounts") == 1, "one preflight for both clients"
    assert heart.blocked_gaps() == [], "the loop was blocked"
    if kind == "redis":
        assert _worker_thread_ran(), "Redis is called from the coordination worker thread"


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_the_async_order_flow_and_a_sync_process_exclude_each_other(
    kind: str, tmp_path: Path, redis_url: str | None
) -> None:
    """One question/reply flow per account at a time, across processes and client kinds: (1) while another
    process holds the account's order-flow lease, an asyncio order waits without blocking its loop, and goes out
    once the holder dies; (2) while an asyncio task holds the order lock, it holds the lease, and a sync client's
    orders in another process wait for it; then both place orders together, each booked once."""
    store = _store(kind, tmp_path, redis_url)
    heart = _Heartbeat()
    control = threading.Thread(target=heart.control)
    control.start()
    with Simulator() as sim:
        address = f"127.0.0.1:{sim.port}"
        lease_job = dict(store, key=order_flow_key(address, workers.ACCOUNT), seconds=1.0)
        order_job = dict(store, url=sim.url, tag="sync", count=3)
        with (
            workers.fleet(workers.hold_lease, [lease_job]) as holder,
            workers.fleet(workers.orders, [order_job]) as sync,
        ):
            holder.start()

            async def main() -> list[Any]:
                async with AsyncIbkrClient(
                    url=sim.url, account_id=workers.ACCOUNT, coordination=store["coordination"],
                    pacing_time_scale=0.05, max_retries=0, timeout=5,
                ) as client:  # fmt: skip
                    # (1) Another process holds the order flow.
                    waiting = asyncio.ensure_future(client.place_order(dict(workers.MKT, cOID="async-0"), ANSWERS))
                    await asyncio.sleep(0.3)
                    assert not waiting.done() and _sent(sim, "place_order") == 0, "the async order waits its turn"
                    holder.procs[0].kill()
                    first = await waiting
                    # (2) This task holds the order flow: the lease names this process.
                    lock = order_lock(client, None)
                    await lock.acquire_async()
                    try:
                        holding = backend_for(store["coordination"]).lease(order_flow_key(address, workers.ACCOUNT))
                        assert (holding.holder() or {}).get("pid") == os.getpid()
                        sync.start()
                        await asyncio.sleep(0.3)
                        assert _sent(sim, "place_order") == 1, "the sync process waits for the async flow"
                    finally:
                        lock.release()
                    orders = (client.place_order(dict(workers.MKT, cOID=f"async-{i}"), ANSWERS) for i in (1, 2))
                    return [first, *await asyncio.gather(*orders, return_exceptions=True)]

            outcomes = asyncio.run(_beating(heart, main()))
            reports = sync.results()
        booked = sorted(o.coid for o in sim.orders)
    control.join(5)
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert [e for r in reports.values() for e in r["errors"]] == []
    assert booked == ["async-0", "async-1", "async-2", "sync-0", "sync-1", "sync-2"]
    assert _sent(sim, "place_order") == 6 and _sent(sim, "reply") == 6, "nothing sent twice, no reply lost"
    assert heart.blocked_gaps() == [], "the loop was blocked"
    if kind == "redis":
        assert _worker_thread_ran(), "Redis is called from the coordination worker thread"
