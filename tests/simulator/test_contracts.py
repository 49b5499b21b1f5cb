"""Contracts: stocks by symbol (US and non-US listings), secdef, search, strikes, derivative info, futures."""

from __future__ import annotations

from ibkr_sdk import IbkrClient
from tests.simulator.helpers import AAPL, IBM


def test_stocks_by_symbol_in_ibkr_shape(api: IbkrClient) -> None:
    data = api._security_stocks_by_symbol(["AAPL", "MSFT", "NOPE"]).data
    assert set(data) == {"AAPL", "MSFT", "NOPE"} and data["NOPE"] == []
    apple = data["AAPL"][0]
    assert apple["name"] == "APPLE INC" and apple["assetClass"] == "STK"
    listings = {c["exchange"]: c for c in apple["contracts"]}
    assert listings["NASDAQ"] == {"conid": AAPL, "exchange": "NASDAQ", "isUS": True}
    assert any(not c["isUS"] for c in apple["contracts"])
    assert [g["name"] for g in data["AAPL"]] == ["APPLE INC", "LS 1X AAPL", "APPLE INC-CDR"]  # as IBKR answers
    assert [c["conid"] for c in apple["contracts"]] == [AAPL, 38708077, 273982664]  # by conid, as recorded
    assert data["MSFT"][0]["contracts"][0]["isUS"] is True


def test_secdef_by_conid(api: IbkrClient) -> None:
    (ibm,) = api.security_definition_by_conid(str(IBM)).data["secdef"]
    assert ibm["ticker"] == "IBM" and ibm["listingExchange"] == "NYSE" and ibm["assetClass"] == "STK"
    assert ibm["incrementRules"] == [{"lowerEdge": 0.0, "increment": 0.01}] and ibm["isUS"] is True
    spy = api.security_definition_by_conid("756733").data["secdef"][0]
    assert spy["type"] == "ETF"


def test_search_and_option_chain(api: IbkrClient) -> None:
    results = api.search_contract_by_symbol("AAPL").data
    us = next(r for r in results if r["description"] == "NASDAQ")
    assert us["conid"] == str(AAPL) and us["companyHeader"] == "APPLE INC - NASDAQ"
    option_section = next(s for s in us["sections"] if s["secType"] == "OPT")
    months = option_section["months"].split(";")
    assert len(months) == 2 and us["opt"] and len(us["opt"].split(";")) == 2
    strikes = api.search_strikes_by_conid(str(AAPL), "OPT", months[0]).data
    assert strikes["call"] == strikes["put"] and 230.0 in strikes["call"]
    calls = api.search_secdef_info_by_conid(
        conid=str(AAPL), sec_type="OPT", month=months[0], strike="230", right="C"
    ).data
    assert len(calls) == 1 and calls[0]["right"] == "C" and calls[0]["strike"] == 230.0
    both = api.search_secdef_info_by_conid(conid=str(AAPL), sec_type="OPT", month=months[0], strike="230").data
    assert {o["right"] for o in both} == {"C", "P"}
    info = api.contract_information_by_conid(str(calls[0]["conid"])).data
    assert info["instrument_type"] == "OPT" and info["right"] == "CALL" and info["multiplier"] == "100"
    assert info["underlying_con_id"] == AAPL
    by_name = api.search_contract_by_symbol("business machines", name=True).data
    assert by_name[0]["symbol"] == "IBM"


def test_futures_and_index(api: IbkrClient) -> None:
    es = api.security_future_by_symbol("ES").data["ES"]
    assert len(es) == 2 and all(f["underlyingConid"] == 11004968 for f in es)
    assert es[0]["expirationDate"] < es[1]["expirationDate"]
    search = api.search_contract_by_symbol("ES", sec_type="IND").data
    assert search[0]["conid"] == "11004968"
    assert any(s["secType"] == "FUT" for s in search[0]["sections"])
    fut = api.contract_information_by_conid(str(es[0]["conid"])).data
    assert fut["instrument_type"] == "FUT" and fut["multiplier"] == "50"


def test_stock_contract_info_and_fx_pair(api: IbkrClient) -> None:
    info = api.contract_information_by_conid(str(AAPL)).data
    assert info["con_id"] == AAPL and info["symbol"] == "AAPL" and info["instrument_type"] == "STK"
    assert info["company_name"] == "APPLE INC"
    pair = api.search_contract_by_symbol("EUR.USD").data[0]
    assert pair["conid"] == "12087792" and pair["sections"][0]["secType"] == "CASH"
