"""Session behaviour: auth status, brokerage session (no bridge until ssodh/init), tickle, logout, accounts first."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT


def test_status_tickle_validate(api: IbkrClient) -> None:
    status = api.authentication_status().data
    assert status["authenticated"] is True and status["connected"] is True and status["competing"] is False
    assert "serverInfo" in status and "MAC" in status
    tickle = api.tickle().data
    assert len(tickle["session"]) == 32
    assert tickle["iserver"]["authStatus"]["authenticated"] is True
    assert tickle["collission"] is False
    sso = api.validate().data
    assert sso["RESULT"] is True and sso["USER_NAME"]


def _opens(api: IbkrClient) -> bool:
    """The status says authenticated within a second: ssodh/init answers before the session is open."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if api.authentication_status(log=False).data["authenticated"] is True:
            return True
        time.sleep(0.02)
    return False


def test_no_bridge_until_ssodh_init(client_for: Callable[..., IbkrClient]) -> None:
    with Simulator(authenticated=False) as sim:
        api = client_for(sim, auto_reauthenticate=False)  # the gateway's own answers, without the client's recovery
        assert api.authentication_status().data["authenticated"] is False
        assert api.tickle().data["iserver"]["authStatus"]["authenticated"] is False
        with pytest.raises(ExternalBrokerError) as caught:
            api.receive_brokerage_accounts()
        assert caught.value.status_code == 400
        assert "no bridge" in str(caught.value)
        # Non-iserver endpoints work without the brokerage session.
        assert api.portfolio_accounts().data[0]["id"] == ACCOUNT
        asked = api.initialize_brokerage_session().data
        assert asked["authenticated"] is False and asked["connected"] is True  # answered before it is open
        assert _opens(api)
        assert api.initialize_brokerage_session().data["established"] is True  # already open: said at once
        assert api.receive_brokerage_accounts().data["selectedAccount"] == ACCOUNT


@pytest.mark.ibkr_simulator(authenticated=False)
def test_reauthenticate_opens_the_brokerage_session(ibkr_simulator: Simulator, ibkr_client: IbkrClient) -> None:
    assert ibkr_client.authentication_status().data["authenticated"] is False
    assert ibkr_client.reauthenticate().data == {"message": "triggered"}
    assert _opens(ibkr_client)


def test_logout_ends_the_session_until_login(sim: Simulator, api: IbkrClient) -> None:
    assert api.logout().data == {"status": True}
    with pytest.raises(ExternalBrokerError) as caught:
        api.tickle()
    assert caught.value.status_code == 401
    with pytest.raises(ExternalBrokerError):
        api.initialize_brokerage_session()
    sim.login()
    assert api.tickle().data["iserver"]["authStatus"]["authenticated"] is True


def test_orders_and_snapshots_need_accounts_first(sim: Simulator, client_for: Callable[..., IbkrClient]) -> None:
    api = client_for(sim, auto_preflight=False)
    ticket = {"conid": AAPL, "orderType": "MKT", "quantity": 1, "side": "BUY", "tif": "DAY"}
    with pytest.raises(ExternalBrokerError) as caught:
        api._place_order(orders=[ticket])
    assert caught.value.status_code == 500 and "accounts first" in str(caught.value)
    with pytest.raises(ExternalBrokerError):
        api.live_marketdata_snapshot(conids=str(AAPL), fields="31")
    assert not sim.orders
    api.receive_brokerage_accounts()
    api.live_marketdata_snapshot(conids=str(AAPL), fields="31")
    answer = api._place_order(orders=[ticket]).data
    assert answer[0]["order_status"] == "Filled"


def test_accounts_and_switching(client_for: Callable[..., IbkrClient]) -> None:
    with Simulator(accounts=["DU1111111", "DU2222222"]) as sim:
        api = client_for(sim)
        accounts = api.receive_brokerage_accounts().data
        assert accounts["accounts"] == ["DU1111111", "DU2222222"]
        assert accounts["selectedAccount"] == "DU1111111" and accounts["isPaper"] is True
        assert api.switch_account("DU2222222").data == {"set": True, "acctId": "DU2222222"}
        assert api.receive_brokerage_accounts().data["selectedAccount"] == "DU2222222"
        with pytest.raises(ExternalBrokerError) as caught:
            api.switch_account("DU9999999")
        assert caught.value.status_code == 400
