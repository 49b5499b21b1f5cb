"""Account summaries by segment and currency, and the partitioned P&L, against the simulated positions and cash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, IBM, Clock, answer_all

EUR_USD = 12087792


def _buy(api: IbkrClient, conid: int, quantity: float, side: str = "BUY") -> None:
    api.live_marketdata_snapshot(conids=str(conid), fields="31")
    ticket = {"conid": conid, "orderType": "MKT", "quantity": quantity, "side": side, "tif": "DAY"}
    answer, _ = answer_all(api, api._place_order(orders=[ticket]).data)
    assert answer[0]["order_status"] == "Filled"


def _usd(text: str) -> int:
    number, currency = text.split()
    assert currency == "USD"
    return int(number.replace(",", ""))


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _all_four(api: IbkrClient) -> tuple[dict[str, Any], ...]:
    results = (
        api.account_summary_available_funds(),
        api.account_summary_balances(),
        api.account_summary_margins(),
        api.account_summary_market_value(),
    )
    for result in results:
        result.parsed()
    return tuple(r.data for r in results)


def test_a_fresh_account_holds_only_cash(api: IbkrClient) -> None:
    funds, balances, margins, market = _all_four(api)
    assert set(funds) == set(balances) == set(margins) == {"Crypto at Paxos", "commodities", "securities", "total"}
    assert balances["total"]["net_liquidation"] == "1,000,000 USD" and balances["total"]["cash"] == "1,000,000 USD"
    assert funds["total"]["current_available"] == "1,000,000 USD" and funds["total"]["buying_power"] == "4,000,000 USD"
    assert funds["total"]["look_ahead_available"] == "1,000,000 USD" and funds["total"]["leverage"] == "0.00"
    assert balances["total"]["previous_day_equity_with_loan"] == "1,000,000 USD"
    assert margins["total"]["current_initial"] == "0 USD" and margins["commodities"]["current_maint"] == "0 USD"
    assert all(v == "0 USD" for v in balances["Crypto at Paxos"].values())
    assert list(market) == ["Total (in USD)", "USD"]
    assert market["USD"]["total_cash"] == market["USD"]["net_liquidation"] == "1,000,000"
    assert market["USD"]["Exchange Rate"] == "1.00" and market["USD"]["stock"] == "0"


def test_segments_add_up_to_the_account_figures(api: IbkrClient) -> None:
    _buy(api, AAPL, 10)
    _buy(api, IBM, 5)
    future = api.security_future_by_symbol("ES").data["ES"][0]["conid"]
    _buy(api, future, 1)
    funds, balances, margins, _ = _all_four(api)
    summary = api.account_summary().data
    assert _usd(balances["total"]["net_liquidation"]) == pytest.approx(summary["netLiquidationValue"], abs=1)
    assert _usd(balances["total"]["cash"]) == pytest.approx(summary["totalCashValue"], abs=1)
    assert _usd(margins["total"]["current_initial"]) == pytest.approx(summary["initialMargin"], abs=1)
    assert _usd(margins["total"]["current_maint"]) == pytest.approx(summary["maintenanceMargin"], abs=1)
    assert _usd(funds["total"]["current_available"]) == pytest.approx(summary["availableFunds"], abs=1)
    assert _usd(funds["total"]["current_excess"]) == pytest.approx(summary["excessLiquidity"], abs=1)
    assert _usd(funds["total"]["buying_power"]) == pytest.approx(summary["buyingPower"], abs=4)
    positions = {p["conid"]: p for p in api.positions().data}
    stocks = positions[AAPL]["mktValue"] + positions[IBM]["mktValue"]
    notional = abs(positions[future]["mktValue"])
    leverage = stocks / _usd(balances["securities"]["net_liquidation"])
    assert float(funds["securities"]["leverage"]) == pytest.approx(leverage, abs=0.01)
    assert _usd(margins["commodities"]["current_initial"]) == pytest.approx(0.30 * notional, abs=1)
    assert _usd(margins["securities"]["current_initial"]) == pytest.approx(0.30 * stocks, abs=1)
    assert _usd(margins["securities"]["RegT Margin"]) == pytest.approx(0.50 * stocks, abs=1)
    for key in ("net_liquidation", "cash"):  # the segments add up to the total
        parts = _usd(balances["securities"][key]) + _usd(balances["commodities"][key])
        assert parts == pytest.approx(_usd(balances["total"][key]), abs=2)
    leverage = float(funds["securities"]["leverage"])
    assert leverage == pytest.approx(stocks / _usd(balances["securities"]["net_liquidation"]), abs=0.01)


def test_market_value_by_currency(api: IbkrClient) -> None:
    _buy(api, AAPL, 10)
    _buy(api, AAPL, 4, side="SELL")
    _buy(api, EUR_USD, 10_000)
    market = api.account_summary_market_value().data
    assert list(market) == ["EUR", "Total (in USD)", "USD"]
    assert market["EUR"]["total_cash"] == "10,000" and market["EUR"]["stock"] == "0"
    rate = api.currency_exchange_rate("EUR", "USD").data["rate"]
    assert float(market["EUR"]["Exchange Rate"]) == pytest.approx(rate, rel=1e-6)
    (apple,) = api.positions().data
    assert _number(market["USD"]["stock"]) == pytest.approx(apple["mktValue"], abs=1)
    assert _number(market["USD"]["realized_pnl"]) == pytest.approx(apple["realizedPnl"], abs=1)
    total = market["Total (in USD)"]
    net_liq = api.account_summary().data["netLiquidationValue"]
    assert _number(total["net_liquidation"]) == pytest.approx(net_liq, abs=2)
    usd_cash, eur_cash = _number(market["USD"]["total_cash"]), 10_000 * rate
    assert _number(total["total_cash"]) == pytest.approx(usd_cash + eur_cash, abs=2)


def test_partitioned_pnl(sim: Simulator, api: IbkrClient, clock: Clock) -> None:
    first = api.account_profit_and_loss()
    first.parsed()
    assert first.data == {"upnl": {}}  # the first request of a session only starts the computation
    empty = api.account_profit_and_loss().data["upnl"][f"{ACCOUNT}.Core"]
    assert empty == {"rowType": 1, "dpl": 0.0, "nl": 1_000_000.0, "upl": 0.0, "el": 1_000_000.0, "mv": 0.0}
    _buy(api, AAPL, 100)
    clock.advance(1800)
    row = api.account_profit_and_loss().data["upnl"][f"{ACCOUNT}.Core"]
    summary = api.account_summary().data
    (apple,) = api.positions().data
    assert row["nl"] == pytest.approx(summary["netLiquidationValue"], abs=0.01)
    assert row["el"] == pytest.approx(summary["excessLiquidity"], abs=0.01)
    assert row["mv"] == pytest.approx(summary["securitiesGVP"], abs=0.01)
    assert row["upl"] == pytest.approx(apple["unrealizedPnl"], abs=0.01)
    assert row["dpl"] == pytest.approx(row["upl"], abs=0.01)  # bought today: the day's P&L counts from the cost
    clock.advance(86400)  # the next trading day: from the prior close
    api.live_marketdata_snapshot(conids=str(AAPL), fields=["31", "7741"])
    quote = api.live_marketdata_snapshot(conids=str(AAPL), fields=["31", "7741"]).data[0]
    row = api.account_profit_and_loss().data["upnl"][f"{ACCOUNT}.Core"]
    assert row["dpl"] == pytest.approx((float(quote["31"]) - float(quote["7741"])) * 100, abs=1.0)
    assert row["dpl"] != pytest.approx(row["upl"], abs=0.01)
    sim.logout()
    sim.login()  # a new brokerage session starts empty again
    assert api.account_profit_and_loss().data == {"upnl": {}}


def test_every_account_has_its_row(clock: Clock, client_for: Callable[..., IbkrClient]) -> None:
    with Simulator(clock=clock, accounts=[ACCOUNT, "DU7654321"]) as sim:
        api = client_for(sim)
        api.account_profit_and_loss()
        rows = api.account_profit_and_loss().data["upnl"]
        assert {k: v["rowType"] for k, v in rows.items()} == {f"{ACCOUNT}.Core": 1, "DU7654321.Core": 2}
        assert _usd(api.account_summary_balances(account_id="DU7654321").data["total"]["cash"]) == 1_000_000


def test_unknown_account_is_refused(api: IbkrClient) -> None:
    for call in (api.account_summary_balances, api.account_summary_market_value):
        with pytest.raises(ExternalBrokerError) as caught:
            call(account_id="U7654321")
        assert caught.value.status_code == 400
