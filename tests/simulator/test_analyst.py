"""Portfolio Analyst: NAV series ending at the account's value, consolidated accounts, all periods, and the
transaction history built from the session's fills."""

from __future__ import annotations

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, answer_all, raw_request


def _net_liq(api: IbkrClient, account: str = ACCOUNT) -> float:
    api.portfolio_accounts()
    value: float = api.portfolio_summary(account).data["netliquidation"]["amount"]
    return value


def test_performance_ends_at_the_account_value(api: IbkrClient) -> None:
    result = api.account_performance(ACCOUNT, "1M")
    result.parsed()
    data = result.data
    assert data["included"] == [ACCOUNT] and data["pm"] == "TWR" and data["rc"] == 0
    (nav,) = data["nav"]["data"]
    assert nav["id"] == ACCOUNT and nav["baseCurrency"] == "USD"
    assert nav["navs"][-1] == pytest.approx(_net_liq(api), abs=0.01)
    assert data["nav"]["dates"][-1] == "20261125" and len(data["nav"]["dates"]) == len(nav["navs"])
    assert nav["startNAV"]["date"] < data["nav"]["dates"][0] <= "20261027"
    (cps,) = data["cps"]["data"]
    assert cps["returns"][-1] == pytest.approx(nav["navs"][-1] / nav["startNAV"]["val"] - 1, abs=1e-4)
    assert data["tpps"]["freq"] == "M" and data["tpps"]["dates"][-1] == "202611"
    ytd = api.account_performance(ACCOUNT, "YTD").data
    assert ytd["nav"]["dates"][0] == "20260101" and ytd["nav"]["data"][0]["startNAV"]["date"] == "20251231"
    assert ytd["tpps"]["dates"][0] == "202601" and len(ytd["tpps"]["dates"]) == 11
    again = api.account_performance(ACCOUNT, "1M").data
    assert again["nav"]["data"][0]["navs"] == nav["navs"]  # reproducible


def test_several_accounts_are_consolidated(client_for: object) -> None:
    with Simulator(accounts=["DU1111111", "DU2222222"]) as sim:
        api = client_for(sim)  # type: ignore[operator]
        one = api.account_performance("DU1111111", "7D").data["nav"]["data"][0]["navs"]
        two = api.account_performance("DU2222222", "7D").data["nav"]["data"][0]["navs"]
        both = api.account_performance(["DU1111111", "DU2222222"], "7D").data
        assert both["included"] == ["DU1111111", "DU2222222"] and both["nav"]["data"][0]["id"] == "consolidated"
        assert both["nav"]["data"][0]["navs"] == pytest.approx([a + b for a, b in zip(one, two, strict=True)])


def test_all_periods(api: IbkrClient) -> None:
    result = api.all_periods(ACCOUNT)
    result.parsed()
    block = result.data[ACCOUNT]
    assert block["periods"] == ["1D", "7D", "MTD", "1M", "YTD", "1Y"] and block["end"] == "20261125"
    assert block["1D"]["dates"] == ["20261125"] and block["1D"]["startNAV"]["date"] == "20261124"
    for period in block["periods"]:
        assert block[period]["nav"][-1] == pytest.approx(_net_liq(api), abs=0.01)
    assert block["MTD"]["dates"][0] == "20261102"  # the first business day of November
    single = api.account_performance(ACCOUNT, "1M").data["nav"]["data"][0]["navs"]
    assert block["1M"]["nav"] == single


def test_unknown_account_and_bad_period_answer_400(api: IbkrClient, sim: Simulator) -> None:
    with pytest.raises(ExternalBrokerError) as caught:
        api.account_performance("U0000000", "1M")
    assert caught.value.status_code == 400
    status, _ = raw_request(sim, "POST", "/v1/api/pa/performance", {"acctIds": [ACCOUNT], "period": "2W"})
    assert status == 400


def test_transactions_follow_the_fills(api: IbkrClient) -> None:
    empty = api.transaction_history(ACCOUNT, str(AAPL), "USD")
    empty.parsed()
    assert empty.data["transactions"] == [] and empty.data["nd"] == 90 and empty.data["rpnl"]["data"] == []
    api.receive_brokerage_accounts()
    for side, qty in (("BUY", 10), ("SELL", 4)):
        order = {"conid": AAPL, "side": side, "orderType": "MKT", "quantity": qty, "tif": "DAY"}
        answer_all(api, api._place_order(orders=[order]).data)
    api.trades()  # lets the market orders fill
    result = api.transaction_history(ACCOUNT, str(AAPL), "USD", days=7)
    result.parsed()
    buy, sell = result.data["transactions"]
    assert (buy["type"], buy["qty"], sell["type"], sell["qty"]) == ("Buy", 10, "Sell", -4)
    assert buy["amt"] == pytest.approx(-10 * buy["pr"], abs=0.01) and sell["amt"] > 0
    assert buy["acctid"] == ACCOUNT and buy["conid"] == AAPL and buy["fxRate"] == 1
    (pnl,) = result.data["rpnl"]["data"]
    assert float(pnl["amt"]) == pytest.approx(4 * (sell["pr"] - buy["pr"]), abs=0.01) and pnl["side"] == "L"
    in_eur = api.transaction_history(ACCOUNT, str(AAPL), "EUR")
    eur = in_eur.data["transactions"]
    assert eur[0]["cur"] == "EUR" and abs(eur[0]["amt"]) < abs(buy["amt"])
    assert 0 < eur[0]["fxRate"] < 1 and eur[0]["amt"] == pytest.approx(buy["amt"] * eur[0]["fxRate"], abs=0.02)
    assert in_eur.parsed().transactions[0].fxRate == eur[0]["fxRate"]  # a decimal rate fits the model (fixes.yaml)
    with pytest.raises(ExternalBrokerError) as caught:
        api.transaction_history(ACCOUNT, "1", "USD")
    assert caught.value.status_code == 400
