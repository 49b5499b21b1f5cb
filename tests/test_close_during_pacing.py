"""Closing a client ends its requests' waits for pacing at once, with "nothing was sent", and leaves the other
clients sharing the pacer waiting.

`/iserver/scanner/params` is paced at one request per 15 minutes: a second call waits for the rest of that window,
so a wait that close() did not end would hold the caller for minutes, far beyond every bound below.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ibkr_sdk import ClientClosedError, IbkrClient
from ibkr_sdk.lib.aio.client import AsyncIbkrClient
from ibkr_sdk.simulator import Simulator

ACCOUNT = "DU1234567"
WAIT_FUNCTIONS = {"_sleep_for", "wait"}  # where a thread waiting for pacing sits


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def _scanner_calls(sim: Simulator) -> int:
    return len([r for r in sim.requests if r.endpoint == "scanner_parameters"])


def _in_pacing_wait(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or -1)
    names = set()
    while frame is not None:
        names.add(frame.f_code.co_name)
        frame = frame.f_back
    return "slot" in names and bool(names & WAIT_FUNCTIONS)


def _wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("coordination", ["process", "local"])
def test_close_ends_a_threads_pacing_wait_and_says_nothing_was_sent(sim: Simulator, coordination: str) -> None:
    client = IbkrClient(url=sim.url, account_id=ACCOUNT, max_pacing_wait=None, coordination=coordination)
    client.scanner_parameters()
    outcome: list[BaseException] = []

    def second() -> None:
        try:
            client.scanner_parameters()
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            outcome.append(exc)

    waiter = threading.Thread(target=second, daemon=True)
    waiter.start()
    try:
        assert _wait_for(lambda: _in_pacing_wait(waiter)), "the second call never waited for pacing"
        client.close()
        waiter.join(10)  # the pacing wait is the rest of 15 minutes
        assert not waiter.is_alive(), "close() did not end the pacing wait"
    finally:
        client.close()
    assert len(outcome) == 1 and isinstance(outcome[0], ClientClosedError), outcome
    assert outcome[0].maybe_sent is False and "/iserver/scanner/params" in str(outcome[0]), str(outcome[0])
    assert _scanner_calls(sim) == 1


def test_closing_one_client_leaves_another_waiting_on_the_same_pacer(sim: Simulator) -> None:
    kept = IbkrClient(url=sim.url, account_id=ACCOUNT, max_pacing_wait=None, coordination="process")
    closed = IbkrClient(url=sim.url, account_id=ACCOUNT, max_pacing_wait=None, coordination="process")
    kept.scanner_parameters()
    threads = [threading.Thread(target=lambda c=c: _swallow(c), daemon=True) for c in (kept, closed)]
    for t in threads:
        t.start()
    try:
        assert _wait_for(lambda: all(_in_pacing_wait(t) for t in threads))
        closed.close()
        threads[1].join(10)
        assert not threads[1].is_alive()
        time.sleep(0.2)
        assert threads[0].is_alive() and _in_pacing_wait(threads[0]), "the other client's wait ended too"
    finally:
        kept.close()
        threads[0].join(10)
    assert not threads[0].is_alive() and _scanner_calls(sim) == 1


def _swallow(client: IbkrClient) -> None:
    try:
        client.scanner_parameters()
    except ClientClosedError:
        pass


def test_aclose_ends_a_tasks_pacing_wait_and_says_nothing_was_sent(sim: Simulator) -> None:
    async def main() -> BaseException | None:
        client = AsyncIbkrClient(url=sim.url, account_id=ACCOUNT, max_pacing_wait=None, coordination="process")
        await client.scanner_parameters()
        second = asyncio.ensure_future(client.scanner_parameters())
        await asyncio.sleep(0.3)
        assert not second.done()
        await client.aclose()
        done, _ = await asyncio.wait({second}, timeout=10)  # the pacing wait is the rest of 15 minutes
        if not done:
            second.cancel()
            return None
        return second.exception()

    error = asyncio.run(main())
    assert isinstance(error, ClientClosedError) and error.maybe_sent is False, error
    assert _scanner_calls(sim) == 1
