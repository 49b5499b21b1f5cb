"""Contract rules, algos, currency pairs and rates, trading schedules and the conids of an exchange."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, IBM, Clock, answer_all

ES_INDEX = 11004968
EUR_USD = 12087792


def _quote(api: IbkrClient, conid: int) -> dict[str, Any]:
    api.live_marketdata_snapshot(conids=str(conid), fields=["31", "84", "86"])
    data: dict[str, Any] = api.live_marketdata_snapshot(conids=str(conid), fields=["31", "84", "86"]).data[0]
    return data


def _option_conid(api: IbkrClient) -> int:
    month = api.search_contract_by_symbol("AAPL").data[0]["sections"][1]["months"].split(";")[0]
    found = api.search_secdef_info_by_conid(conid=str(AAPL), sec_type="OPT", month=month, strike="230", right="C")
    return int(found.data[0]["conid"])


def test_info_and_rules_follow_the_side_and_the_quote(api: IbkrClient) -> None:
    quote = _quote(api, AAPL)
    buy = api.info_and_rules_by_conid(str(AAPL), True)
    sell = api.info_and_rules_by_conid(str(AAPL), False).data
    buy.parsed()
    assert buy.data["con_id"] == AAPL and buy.data["company_name"] == "APPLE INC"
    rules = buy.data["rules"]
    assert rules["limitPrice"] == float(quote["86"]) and sell["rules"]["limitPrice"] == float(quote["84"])
    assert rules["orderDefaults"] == {"LMT": {"LP": quote["86"]}}
    assert rules["canTradeAcctIds"] == [ACCOUNT] and rules["error"] is None
    assert rules["defaultSize"] == 100 and rules["fraqInt"] == 4 and "midprice" in rules["orderTypes"]
    assert rules["increment"] == 0.01 and rules["incrementDigits"] == 2
    assert rules["tifDefaults"] == {"SIZE": "100.00", "TIF": "DAY"}


def test_rules_by_kind_of_contract(api: IbkrClient) -> None:
    option = api.info_and_rules_by_conid(str(_option_conid(api)), True).data
    assert option["instrument_type"] == "OPT" and option["rules"]["defaultSize"] == 1
    assert option["rules"]["limitPrice"] is None and option["rules"]["orderDefaults"] == {"LMT": {"LP": "empty"}}
    mexico = api.search_contract_rules("38708077").data
    assert mexico["fraqTypes"] == [] and mexico["overnightEligible"] is False and mexico["cashCcy"] == "MXN"
    index = api.info_and_rules_by_conid(str(ES_INDEX), True).data["rules"]
    assert index["orderTypes"] == [] and index["canTradeAcctIds"] == [] and index["error"]
    with pytest.raises(ExternalBrokerError) as caught:
        api.search_contract_rules(str(AAPL), exchange="CME")
    assert caught.value.status_code == 400
    with pytest.raises(ExternalBrokerError):
        api.info_and_rules_by_conid("999", True)


def test_rules_for_modifying_an_order(clock: Clock, client_for: Callable[..., IbkrClient]) -> None:
    accounts = [ACCOUNT, "DU7654321"]
    with Simulator(clock=clock, accounts=accounts) as sim:
        api = client_for(sim)
        bid = float(_quote(api, IBM)["84"])
        ticket = {"conid": IBM, "orderType": "LMT", "price": round(2 * bid, 2), "quantity": 5, "side": "SELL"}
        placed, _ = answer_all(api, api._place_order(orders=[{**ticket, "tif": "GTC"}]).data)  # rests above the bid
        order_id = int(placed[0]["order_id"])
        rules = api.search_contract_rules(str(IBM), is_buy=True, modify_order=True, order_id=order_id)
        rules.parsed()
        assert rules.data["limitPrice"] == bid  # the order's side (a sell) decides: the bid
        assert rules.data["modTypes"] == rules.data["orderTypes"]
        assert rules.data["tifDefaults"]["DEFAULT_ACCT"] == ACCOUNT and rules.data["canTradeAcctIds"] == accounts
        unknown = api.search_contract_rules(str(IBM), modify_order=True, order_id=1).data
        assert unknown == {"error": "OrderID 1 doesn't exist"}
        api.cancel_order(str(order_id))
        api.live_orders()  # the cancel settles
        done = api.search_contract_rules(str(IBM), modify_order=True, order_id=order_id).data
        assert "Cancelled" in done["error"]


def test_algos_by_contract_and_filters(api: IbkrClient) -> None:
    plain = api.algo_params_by_conid(str(AAPL))
    plain.parsed()
    ids = [a["id"] for a in plain.data["algos"]]
    assert ids[0] == "Adaptive" and "Vwap" in ids and len(ids) == 10
    assert all(set(a) == {"id", "name"} for a in plain.data["algos"])
    detailed = api.algo_params_by_conid(str(AAPL), algos=["Adaptive", "Vwap"], add_description="1", add_params="1")
    adaptive, vwap = detailed.data["algos"]
    assert adaptive["id"] == "Adaptive" and adaptive["description"]
    assert adaptive["parameters"][0]["id"] == "adaptivePriority"
    assert adaptive["parameters"][0]["legalStrings"] == ["Urgent", "Normal", "Patient"]
    assert vwap["id"] == "Vwap" and any(p["id"] == "maxPctVol" for p in vwap["parameters"])
    no_params = api.algo_params_by_conid(str(IBM), algos="Adaptive", add_params=0).data
    assert no_params == {"algos": [{"id": "Adaptive", "name": "Adaptive"}]}
    assert [a["id"] for a in api.algo_params_by_conid(str(_option_conid(api))).data["algos"]] == ["Adaptive"]
    assert api.algo_params_by_conid(str(ES_INDEX)).data == {"algos": []}


AUD_USD = 14433401


def test_currency_pairs_and_exchange_rates(api: IbkrClient) -> None:
    usd = api.currency_pairs("USD")
    usd.parsed()
    pairs = {p["symbol"]: p for p in usd.data["USD"]}
    assert pairs["EUR.USD"] == {"symbol": "EUR.USD", "conid": EUR_USD, "ccyPair": "EUR"}
    assert pairs["USD.JPY"]["ccyPair"] == "JPY" and "EUR.JPY" not in pairs
    assert {p["ccyPair"] for p in api.currency_pairs("EUR").data["EUR"]} == {"USD", "JPY", "CHF"}
    assert api.currency_pairs("XYZ").data == {"XYZ": []}
    assert api.currency_exchange_rate("NZD", "USD").data == {"rate": 0.6}  # no NZD pair traded: the fixture rate
    aud_usd = api.currency_exchange_rate("AUD", "USD").data["rate"]
    assert aud_usd == pytest.approx(float(_quote(api, AUD_USD)["31"]), abs=1e-4)  # AUD.USD is traded: live
    eur_usd = api.currency_exchange_rate("EUR", "USD").data["rate"]
    mid = float(_quote(api, EUR_USD)["31"])
    assert eur_usd == pytest.approx(mid, abs=1e-4)  # live: follows the EUR.USD price
    usd_eur = api.currency_exchange_rate("USD", "EUR").data["rate"]
    assert eur_usd * usd_eur == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ExternalBrokerError) as caught:
        api.currency_exchange_rate("XYZ", "USD")
    assert caught.value.status_code == 400


def test_trading_schedule_by_conid_lists_six_trading_days(api: IbkrClient) -> None:
    result = api.trading_schedule_by_conid(str(AAPL))
    result.parsed()
    data = result.data
    assert data["exchange_time_zone"] == "US/Eastern"
    days = list(data["schedules"])
    assert days == ["20261125", "20261126", "20261127", "20261130", "20261201", "20261202"]  # from Wed 25 Nov
    today = data["schedules"]["20261125"]
    opening = dt.datetime(2026, 11, 25, 14, 30, tzinfo=dt.timezone.utc).timestamp()
    assert today["liquid_hours"] == [{"closing": opening + 6.5 * 3600, "opening": opening}]
    assert today["extended_hours"][0]["opening"] == opening - 5.5 * 3600  # 04:00 New York
    future = api.security_future_by_symbol("ES").data["ES"][0]["conid"]
    cme = api.trading_schedule_by_conid(str(future), exchange="CME").data
    monday = cme["schedules"]["20261130"]["extended_hours"][0]
    sunday_evening = dt.datetime(2026, 11, 29, 23, 0, tzinfo=dt.timezone.utc).timestamp()  # 17:00 Chicago
    assert cme["exchange_time_zone"] == "US/Central" and monday["opening"] == sunday_evening
    with pytest.raises(ExternalBrokerError):
        api.trading_schedule_by_conid(str(AAPL), exchange="CME")


def test_trading_schedule_by_symbol_in_local_time(api: IbkrClient) -> None:
    result = api.trading_schedule_by_symbol(
        "STK", "AAPL", exchange="NASDAQ", exchange_filter=["AMEX", "NASDAQ", "NYSE"]
    )
    result.parsed()
    venues = {v["exchange"]: v for v in result.data}
    assert set(venues) == {"AMEX", "NASDAQ", "NYSE"}
    nyse = venues["NYSE"]
    assert nyse["description"] == "New York Stock Exchange" and nyse["timezone"] == "America/New_York"
    by_date = {s["tradingScheduleDate"]: s for s in nyse["schedules"]}
    assert sorted(by_date) == [f"2000010{i}" for i in range(1, 8)]
    assert by_date["20000101"]["tradingtimes"] == [] and by_date["20000102"]["tradingtimes"] == []
    monday = by_date["20000103"]
    assert monday["tradingtimes"] == [{"cancelDayOrders": "Y", "closingTime": "2000", "openingTime": "0400"}]
    assert monday["sessions"] == [{"closingTime": "1600", "openingTime": "0930", "prop": "LIQUID"}]
    plain = api.trading_schedule_by_symbol("STK", "AAPL").data
    assert [v["exchange"] for v in plain] == ["NASDAQ", "MEXI", "EBS", "LSEETF", "AEQLIT"]  # each listing, its exchange
    es = api.trading_schedule_by_symbol("FUT", "ES", exchange_filter="CME").data
    assert [v["exchange"] for v in es] == ["CME"] and es[0]["timezone"] == "America/Chicago"
    assert es[0]["schedules"][2]["tradingtimes"][0]["openingTime"] == "1700"  # from the evening before
    assert api.trading_schedule_by_symbol("STK", "NOPE").data == []


def test_all_conids_of_an_exchange(sim: Simulator, api: IbkrClient) -> None:
    result = api.all_conids_by_exchange("NASDAQ")
    result.parsed()
    listed = sorted(c.symbol for c in sim._state.universe.all() if c.sec_type == "STK" and c.exchange == "NASDAQ")
    assert [(e["ticker"], e["exchange"]) for e in result.data] == [(symbol, "NASDAQ") for symbol in listed]
    assert {"AAPL", "AMZN", "MSFT", "NVDA", "GOOG", "TSLA", "QQQ"} <= set(listed)
    assert result.data[0]["conid"] == AAPL
    nyse = api.all_conids_by_exchange("NYSE").data
    assert {"conid": IBM, "exchange": "NYSE", "ticker": "IBM"} in nyse
    assert {e["ticker"] for e in nyse} >= {"JPM", "V", "HUBS"} and all(e["exchange"] == "NYSE" for e in nyse)
    assert api.all_conids_by_exchange("AMEX").data == []
