"""Faults on demand: latency, status, reset, stall, malformed; and the request log that records them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from ibkr_sdk import ApiConnectionError, ApiTimeoutError, ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL


def test_latency(sim: Simulator, api: IbkrClient) -> None:
    sim.inject("tickle", "latency", 0.3)
    started = time.monotonic()
    api.tickle()
    assert time.monotonic() - started >= 0.3
    api.tickle()  # the fault was used up: this answer comes without the added latency
    assert [r.fault for r in sim.requests] == ["latency", None]


def test_configured_latency_applies_to_every_answer(client_for: Callable[..., IbkrClient]) -> None:
    with Simulator(latency=0.15) as sim:
        api = client_for(sim)
        started = time.monotonic()
        api.tickle()
        api.authentication_status()
        assert time.monotonic() - started >= 0.3


def test_status(sim: Simulator, api: IbkrClient) -> None:
    sim.inject("GET /iserver/marketdata/snapshot", "status", 503, times=2)
    for _ in range(2):
        with pytest.raises(ExternalBrokerError) as caught:
            api.live_marketdata_snapshot(conids=str(AAPL), fields="31")
        assert caught.value.status_code == 503
    api.live_marketdata_snapshot(conids=str(AAPL), fields="31")
    sim.inject("tickle", "status", 500, body={"error": "custom failure"})
    with pytest.raises(ExternalBrokerError, match="custom failure"):
        api.tickle()


def test_reset(sim: Simulator, api: IbkrClient, client_for: Callable[..., IbkrClient]) -> None:
    sim.inject("authentication_status", "reset")
    with pytest.raises(ApiConnectionError):
        api.authentication_status()
    assert api.authentication_status().data["authenticated"] is True
    # A request that is safe to repeat gets through when the client retries.
    patient = client_for(sim, max_retries=1)
    sim.inject("authentication_status", "reset")
    assert patient.authentication_status().data["authenticated"] is True
    statuses = [r.status for r in sim.requests if r.endpoint == "authentication_status"]
    assert statuses == [None, 200, None, 200]


def test_reset_after_the_order_was_placed(sim: Simulator, api: IbkrClient) -> None:
    api.live_marketdata_snapshot(conids=str(AAPL), fields="31")
    sim.inject("place_order", "reset", after=True)
    with pytest.raises(ApiConnectionError):
        api._place_order(orders=[{"conid": AAPL, "orderType": "MKT", "quantity": 1, "side": "BUY", "tif": "DAY"}])
    assert [o.status for o in sim.orders] == ["Filled"]  # it happened, though the client never heard
    assert len([r for r in sim.requests if r.endpoint == "place_order"]) == 1  # and it was not re-sent


def test_stall_times_out_and_ends_when_the_simulator_stops(client_for: Callable[..., IbkrClient]) -> None:
    sim = Simulator().start()
    try:
        api = client_for(sim, timeout=0.3)
        sim.inject("tickle", "stall")
        with pytest.raises(ApiTimeoutError):
            api.tickle()
        assert client_for(sim, timeout=10).authentication_status().data["authenticated"] is True
        handlers = [t for t in threading.enumerate() if t.name == "ibkr-simulator-conn"]
        assert handlers  # the stalled request's among them
    finally:
        sim.stop(timeout=30)
    assert not sim.running
    # The stalled request did not hold the shutdown: every connection thread ended (a held one would still be
    # running once stop() gave up after its bound).
    assert not [t for t in handlers if t.is_alive()]


def test_stall_with_a_limit(sim: Simulator, client_for: Callable[..., IbkrClient]) -> None:
    api = client_for(sim, timeout=2)
    sim.inject("tickle", "stall", 0.2)
    with pytest.raises(ApiConnectionError):  # closed without an answer after 0.2 s
        api.tickle()


def test_malformed(sim: Simulator, api: IbkrClient) -> None:
    sim.inject("portfolio_accounts", "malformed")
    with pytest.raises(ExternalBrokerError, match="not valid JSON"):
        api.portfolio_accounts()
    assert api.portfolio_accounts().data


def test_fault_on_every_route_until_cleared(sim: Simulator, api: IbkrClient) -> None:
    sim.inject("*", "status", 503, times=None)
    for call in (api.tickle, api.authentication_status, api.portfolio_accounts):
        with pytest.raises(ExternalBrokerError):
            call()
    sim.clear_faults()
    api.tickle()


def test_inject_refuses_bad_arguments(sim: Simulator) -> None:
    with pytest.raises(ValueError):
        sim.inject("no_such_endpoint", "reset")
    with pytest.raises(ValueError):
        sim.inject("tickle", "explode")
    with pytest.raises(ValueError):
        sim.inject("tickle", "status")
    with pytest.raises(ValueError):
        sim.inject("tickle", "latency", 0.1, after=True)
    with pytest.raises(ValueError):
        sim.inject("tickle", "reset", probability=0)
    sim.inject("POST /v1/api/iserver/account/DU1234567/orders", "reset")  # a concrete path resolves too


def test_request_log(sim: Simulator, api: IbkrClient) -> None:
    api.live_marketdata_snapshot(conids=[str(AAPL), "8314"], fields=["31", "84"])
    # The client ran its preflight (/iserver/accounts) first.
    assert [r.endpoint for r in sim.requests] == ["receive_brokerage_accounts", "live_marketdata_snapshot"]
    record = sim.requests[-1]
    assert record.method == "GET" and record.path == "/iserver/marketdata/snapshot"
    assert record.query == {"conids": "265598,8314", "fields": "31,84"}
    assert record.endpoint == "live_marketdata_snapshot" and record.status == 200 and record.fault is None
    assert "user-agent" in record.headers
    api.switch_account("DU1234567")
    assert sim.requests[-1].body == {"acctId": "DU1234567"} and sim.requests[-1].method == "POST"
    sim.clear_requests()
    assert sim.requests == []
