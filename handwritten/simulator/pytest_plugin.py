"""pytest fixtures for testing code against the gateway simulator (auto-loaded through the `pytest11` entry point).

- `ibkr_simulator`: a started `Simulator`, stopped after the test.
- `ibkr_client`: an `IbkrClient` pointed at it, with the simulator's first account as default (DU1234567).
  Its client-side pacing follows the simulator's `pacing` option (off by default), so tests do not wait out
  IBKR's per-endpoint intervals unless they ask the simulator to enforce them.
- `ibkr_async_client`: the same as an `AsyncIbkrClient` (needs the `async` extra). Use it in the test's loop, e.g.
  `asyncio.run(main(ibkr_async_client))` (or an async test under pytest-asyncio); it may serve several loops one
  after the other, and it is closed after the test.

Options for the simulator of one test: `@pytest.mark.ibkr_simulator(authenticated=False, latency=0.1, ...)`
(any keyword argument of `Simulator`). This module is imported by every pytest run, so it imports nothing
heavy at module level; the simulator and the client are imported inside the fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ibkr_sdk import AsyncIbkrClient, IbkrClient
    from ibkr_sdk.simulator import Simulator

MARKER = "ibkr_simulator"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(**options): keyword arguments for the ibkr_simulator fixture")


@pytest.fixture
def ibkr_simulator(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    from ibkr_sdk.simulator import Simulator

    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        options.update(marker.kwargs)
    sim = Simulator(**options).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def ibkr_client(ibkr_simulator: Simulator) -> Iterator[IbkrClient]:
    import inspect

    from ibkr_sdk import IbkrClient

    options: dict[str, Any] = {"url": ibkr_simulator.url, "account_id": ibkr_simulator.accounts[0], "timeout": 10}
    if "pacing" in inspect.signature(IbkrClient).parameters:
        options["pacing"] = ibkr_simulator.pacing
    client = IbkrClient(**options)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def ibkr_async_client(ibkr_simulator: Simulator) -> Iterator[AsyncIbkrClient]:
    from ibkr_sdk import AsyncIbkrClient

    client = AsyncIbkrClient(
        url=ibkr_simulator.url, account_id=ibkr_simulator.accounts[0], timeout=10, pacing=ibkr_simulator.pacing
    )
    try:
        yield client
    finally:
        client.stop_tickler()
        client._transport.close_outside_loop()
