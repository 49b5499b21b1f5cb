"""Portfolio and account figures after fills; watchlists."""

from __future__ import annotations

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, IBM, answer_all, raw_request


def _buy(api: IbkrClient, conid: int, quantity: float, side: str = "BUY") -> None:
    api.live_marketdata_snapshot(conids=str(conid), fields="31")
    ticket = {"conid": conid, "orderType": "MKT", "quantity": quantity, "side": side, "tif": "DAY"}
    answer, _ = answer_all(api, api._place_order(orders=[ticket]).data)
    assert answer[0]["order_status"] == "Filled"


def test_accounts_meta_and_subaccounts(api: IbkrClient) -> None:
    (account,) = api.portfolio_accounts().data
    assert account["id"] == ACCOUNT and account["accountId"] == ACCOUNT and account["currency"] == "USD"
    assert account["type"] == "DEMO"
    assert api.portfolio_subaccounts().data[0]["id"] == ACCOUNT
    assert api.portfolio_account_information().data["accountId"] == ACCOUNT


def test_positions_ledger_and_summary_after_fills(sim: Simulator, api: IbkrClient) -> None:
    start = api.portfolio_summary().data
    assert start["netliquidation"]["amount"] == pytest.approx(1_000_000.0)
    assert start["accountcode"]["value"] == ACCOUNT
    _buy(api, AAPL, 10)
    _buy(api, IBM, 5)
    _buy(api, IBM, 2, side="SELL")
    page = api.positions().data
    assert {p["conid"]: p["position"] for p in page} == {AAPL: 10.0, IBM: 3.0}
    assert all(p["pageSize"] == 100 and p["acctId"] == ACCOUNT for p in page)
    assert api.positions(page=1).data == []
    by_name = api.positions(sort="contractDesc", direction="d").data
    assert [p["contractDesc"] for p in by_name] == ["IBM", "AAPL"]
    ibm = next(p for p in page if p["conid"] == IBM)
    assert ibm["mktValue"] == pytest.approx(3 * ibm["mktPrice"], abs=0.01)
    assert ibm["realizedPnl"] != 0.0  # the partial sale realised a gain or loss
    second = api.positions2().data
    assert {p["conid"] for p in second} == {str(AAPL), str(IBM)}
    assert api.positions_by_conid(ACCOUNT, str(AAPL)).data[0]["position"] == 10.0
    assert api.position_and_contract_info(str(IBM)).data[ACCOUNT][0]["position"] == 3.0
    assert api.position_and_contract_info("756733").data == {}
    ledger = api.get_ledger().data
    assert ledger["BASE"]["netliquidationvalue"] == pytest.approx(
        ledger["BASE"]["cashbalance"] + ledger["BASE"]["stockmarketvalue"], abs=0.05
    )
    assert ledger["USD"]["cashbalance"] < 1_000_000.0
    summary = api.portfolio_summary().data
    assert summary["grosspositionvalue"]["amount"] > 0
    assert summary["initmarginreq"]["amount"] > 0
    iserver = api.account_summary().data
    assert iserver["netLiquidationValue"] == pytest.approx(summary["netliquidation"]["amount"], abs=0.05)
    assert iserver["cashBalances"][-1]["currency"] == "Total (in USD)"
    assert iserver["buyingPower"] == pytest.approx(4 * iserver["availableFunds"], rel=1e-6)


def test_fx_trade_changes_cash_not_positions(api: IbkrClient) -> None:
    _buy(api, 12087792, 10000)
    assert api.positions().data == []
    ledger = api.get_ledger().data
    assert ledger["EUR"]["cashbalance"] == 10000.0
    assert ledger["USD"]["cashbalance"] < 1_000_000.0 - 10000.0


def test_unknown_account_is_refused(api: IbkrClient) -> None:
    with pytest.raises(ExternalBrokerError) as caught:
        api.get_ledger(account_id="DU0000000")
    assert caught.value.status_code == 400


def test_watchlists(sim: Simulator, api: IbkrClient) -> None:
    created = api.create_watchlist("1234", "Tech", [{"C": str(AAPL)}, {"C": str(IBM)}]).data
    assert created["id"] == "1234" and created["instruments"] == [] and created["readOnly"] is False
    lists = api.get_all_watchlists().data["data"]["user_lists"]
    assert [(w["id"], w["name"]) for w in lists] == [("1234", "Tech")]
    detail = api.get_watchlist_information("1234").data
    assert [i["ticker"] for i in detail["instruments"]] == ["AAPL", "IBM"]
    assert detail["instruments"][0]["conid"] == AAPL
    assert api.delete_watchlist("1234").data["data"] == {"deleted": "1234"}
    assert api.get_all_watchlists().data["data"]["user_lists"] == []
    with pytest.raises(ExternalBrokerError):
        api.get_watchlist_information("1234")
    status, _ = raw_request(sim, "POST", "/v1/api/iserver/watchlist", {"id": "abc", "name": "Bad id", "rows": []})
    assert status == 400
