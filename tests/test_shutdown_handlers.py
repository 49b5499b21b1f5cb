"""The SIGINT/SIGTERM handler that OAuth clients install at construction: one for the process, removed by close(),
holding clients weakly, logging each live client out once. Against the simulator's OAuth authority on loopback."""

from __future__ import annotations

import gc
import signal
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from ibkr_sdk import IbkrClient
from ibkr_sdk.simulator import OAuthSettings, Simulator
from tests.test_oauth import PRIME
from tests.test_oauth_e2e import ACCESS_TOKEN, CONSUMER, _config, keys, sim  # noqa: F401  (fixtures)


@pytest.fixture
def previous() -> Iterator[list[int]]:
    """A handler of the application's own for SIGINT and SIGTERM; restored afterwards."""
    calls: list[int] = []

    def handler(sig: int, frame: Any) -> None:
        calls.append(sig)

    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield calls
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def _oauth_client(sim: Simulator, keys: dict[str, Any]) -> IbkrClient:  # noqa: F811
    config = _config(sim, keys, shutdown_oauth=True)
    return IbkrClient(use_oauth=True, oauth_config=config, account_id="DU1234567", max_retries=0, pacing=False)


def _oauth_simulator(keys: dict[str, Any]) -> Simulator:  # noqa: F811
    settings = OAuthSettings(
        consumer_key=CONSUMER,
        access_token=ACCESS_TOKEN,
        access_token_secret_hex=keys["secret"].hex(),
        signature_public_key=keys["signature"].publickey().export_key().decode(),
        dh_prime=PRIME,
    )
    return Simulator(oauth=settings).start()


def _logouts(sim: Simulator) -> int:  # noqa: F811
    return len([r for r in sim.requests if r.path == "/logout"])


def test_close_restores_the_previous_handlers_and_frees_the_client(
    sim: Simulator,  # noqa: F811
    keys: dict[str, Any],  # noqa: F811
    previous: list[int],
) -> None:
    app_handler = signal.getsignal(signal.SIGINT)
    client = _oauth_client(sim, keys)
    assert signal.getsignal(signal.SIGINT) is not app_handler, "construction installs the shutdown handler"
    client.close()
    assert signal.getsignal(signal.SIGINT) is app_handler
    assert signal.getsignal(signal.SIGTERM) is app_handler
    ref = weakref.ref(client)
    del client
    gc.collect()
    assert ref() is None, "a closed client is not kept alive by a signal handler"
    signal.raise_signal(signal.SIGTERM)
    assert previous == [signal.SIGTERM]
    assert _logouts(sim) == 0


def test_one_signal_logs_out_each_live_client_once(keys: dict[str, Any], previous: list[int]) -> None:  # noqa: F811
    sims = [_oauth_simulator(keys) for _ in range(3)]  # one per client: each log shows that client's requests
    try:
        first, second, closed = (_oauth_client(s, keys) for s in sims)
        closed.close()
        signal.raise_signal(signal.SIGINT)
        assert previous == [signal.SIGINT], "the application's handler runs once, after the clients"
        assert [_logouts(s) for s in sims] == [1, 1, 0], "each live client logs out once; the closed one not"
        signal.raise_signal(signal.SIGINT)
        assert previous == [signal.SIGINT, signal.SIGINT]
        assert [_logouts(s) for s in sims] == [1, 1, 0], "the handler is gone after it ran"
        first.close()
        second.close()
    finally:
        for s in sims:
            s.stop()
