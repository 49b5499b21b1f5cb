"""Fixtures of the simulator tests: a simulator on a fixed clock and a client that fails fast."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ibkr_sdk import IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import Clock, make_client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> Iterator[Simulator]:
    with Simulator(clock=clock) as s:
        yield s


@pytest.fixture
def fa_sim(clock: Clock) -> Iterator[Simulator]:
    """A simulator for a financial advisor with two sub-accounts."""
    with Simulator(clock=clock, advisor=True) as s:
        yield s


@pytest.fixture
def api(sim: Simulator) -> Iterator[IbkrClient]:
    client = make_client(sim)
    yield client
    client.close()


@pytest.fixture
def client_for() -> Iterator[Callable[..., IbkrClient]]:
    """Build extra clients (closed after the test): `client_for(sim, timeout=0.5)`."""
    made: list[IbkrClient] = []

    def build(simulator: Simulator, **options: Any) -> IbkrClient:
        c = make_client(simulator, **options)
        made.append(c)
        return c

    yield build
    for c in made:
        c.close()
