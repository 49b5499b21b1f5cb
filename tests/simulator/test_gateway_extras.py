"""The last modelled endpoints: allocation, dynamic accounts, bond filters, regulatory snapshot, the server-prompt
acknowledgement and the OAuth token requests of a gateway (non-OAuth) session."""

from __future__ import annotations

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, IBM, answer_all, make_client, raw_request


def _buy(api: IbkrClient, conid: int, quantity: float, side: str = "BUY") -> int:
    api.live_marketdata_snapshot(conids=[conid], fields=["31"])
    order = {"acctId": ACCOUNT, "conid": conid, "orderType": "MKT", "side": side, "tif": "DAY", "quantity": quantity}
    ack, _ = answer_all(api, api._place_order(orders=[order]).data)
    return int(ack[0]["order_id"])


def test_allocation_splits_the_positions_and_cash(api: IbkrClient) -> None:
    assert api.portfolio_account_allocation().data == {
        "assetClass": {"long": {"CASH": 1_000_000.0}, "short": {}},
        "sector": {"long": {}, "short": {}},
        "group": {"long": {}, "short": {}},
    }
    _buy(api, AAPL, 10)
    _buy(api, IBM, 5, side="SELL")
    positions = {p["conid"]: p for p in api.positions().data}
    cash = api.portfolio_summary().data["totalcashvalue"]["amount"]
    allocation = api.portfolio_account_allocation().data
    assert allocation["assetClass"]["long"]["STK"] == pytest.approx(positions[AAPL]["mktValue"], abs=0.01)
    assert allocation["assetClass"]["short"]["STK"] == pytest.approx(positions[IBM]["mktValue"], abs=0.01)
    assert allocation["assetClass"]["short"]["STK"] < 0
    assert allocation["assetClass"]["long"]["CASH"] == pytest.approx(cash, abs=0.01)
    assert allocation["sector"]["long"] == {"Technology": pytest.approx(positions[AAPL]["mktValue"], abs=0.01)}
    assert api.portfolio_account_allocations([ACCOUNT]).data == allocation


def test_consolidated_allocation_adds_the_accounts(fa_sim: Simulator) -> None:
    with make_client(fa_sim) as api:
        api.receive_brokerage_accounts()
        one, two = fa_sim.accounts[1:3]
        both = api.portfolio_account_allocations([one, two]).data
        single = api.portfolio_account_allocation(one).data
        assert both["assetClass"]["long"]["CASH"] == pytest.approx(2 * single["assetClass"]["long"]["CASH"])
        with pytest.raises(ExternalBrokerError) as caught:
            api.portfolio_account_allocations(["DU0000000"])
        assert caught.value.status_code in (400, 401, 403, 404, 500)


def test_dynamic_account_search_and_selection(fa_sim: Simulator) -> None:
    with make_client(fa_sim) as api:
        api.receive_brokerage_accounts()
        found = api.search_dynamic_account("du").data
        assert found["pattern"] == "du"
        assert [m["accountId"] for m in found["matchedAccounts"]] == ["DU1234567", "DU1234568"]
        assert api.search_dynamic_account("zz").data == {"matchedAccounts": [], "pattern": "zz"}
        assert api.set_dynamic_account("DU1234568").data == {"set": True, "acctId": "DU1234568"}
        assert api.portfolio_accounts().data is not None
        status, body = raw_request(fa_sim, "POST", "/v1/api/iserver/dynaccount", {"acctId": "DU9999999"})
        assert status == 400 and "DU9999999" in body["error"]
    assert fa_sim._state.session.selected_account == "DU1234568"


def test_bond_filters(api: IbkrClient) -> None:
    filters = api.search_bond_filter_information("BOND", "e1400715").data["bondFilters"]
    by_name = {f["displayText"]: f for f in filters}
    assert by_name["Maturity Date"]["columnId"] == 27
    assert {"text": "Dec 2028", "value": "202812"} in by_name["Maturity Date"]["options"]
    assert [o["value"] for o in by_name["Currency"]["options"]] == ["EUR", "USD"]
    with pytest.raises(ExternalBrokerError) as caught:
        api.search_bond_filter_information("BOND", "e0000000")
    assert caught.value.status_code == 400


def test_regulatory_snapshot_quotes_at_once_and_is_counted(sim: Simulator, api: IbkrClient) -> None:
    sim.set_price(AAPL, 200.0)
    quote = api.regulatory_snapshot(str(AAPL)).data
    assert quote["conid"] == AAPL and float(quote["31"]) == 200.0
    assert float(quote["84"]) <= 200.0 <= float(quote["86"])
    assert sim._state.regulatory_snapshots == [AAPL]  # one billed request, no automatic retry


def test_server_prompt_acknowledgement_answers_plain_success(sim: Simulator, api: IbkrClient) -> None:
    order_id = _buy(api, AAPL, 1)
    result = api.acknowledge_server_prompt(order_id=order_id, req_id="22170", text="Use on this order")
    assert result.data == "Success"
    assert sim.requests[-1].body == {"orderId": order_id, "reqId": "22170", "text": "Use on this order"}
    with pytest.raises(ExternalBrokerError) as caught:
        api.acknowledge_server_prompt(order_id=42, req_id="1", text="Do not use")
    assert caught.value.status_code == 400


@pytest.mark.parametrize("path", ["/oauth/request_token", "/oauth/access_token", "/oauth/live_session_token"])
def test_oauth_token_requests_outside_oauth_mode_answer_401(sim: Simulator, path: str) -> None:
    status, body = raw_request(sim, "POST", "/v1/api" + path, {})
    assert status == 401 and "not an OAuth consumer" in body["error"]
