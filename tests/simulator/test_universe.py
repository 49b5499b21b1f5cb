"""The contract universe (data/contracts.json): the liquid US names ordinary scripts ask for, indices with option
chains, futures and currency pairs, under IBKR's conids; ids that could not be confirmed are marked."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from ibkr_sdk import IbkrClient
from ibkr_sdk.simulator import Simulator

# IBKR's conids and primary listings of the names the peer's examples use (facts, see data/contracts.json).
KNOWN = {
    "AAPL": (265598, "NASDAQ"),
    "MSFT": (272093, "NASDAQ"),
    "NVDA": (4815747, "NASDAQ"),
    "AMZN": (3691937, "NASDAQ"),
    "GOOG": (208813720, "NASDAQ"),
    "GOOGL": (208813719, "NASDAQ"),
    "META": (107113386, "NASDAQ"),
    "NFLX": (15124833, "NASDAQ"),
    "TSLA": (76792991, "NASDAQ"),
    "IBM": (8314, "NYSE"),
    "JPM": (1520593, "NYSE"),
    "SPY": (756733, "ARCA"),
    "QQQ": (320227571, "NASDAQ"),
    "IWM": (9579970, "ARCA"),
}
SPX = 416904
PLACEHOLDER_IDS = 990_000_000


def _data() -> dict[str, Any]:
    text = resources.files("ibkr_sdk.simulator").joinpath("data", "contracts.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def test_the_universe_holds_the_most_traded_us_names(sim: Simulator) -> None:
    stocks = [c for c in sim._state.universe.all() if c.sec_type == "STK" and c.is_us]
    assert len(stocks) >= 30
    assert {"HUBS", "DIA", "GLD", "TLT", "V", "AVGO", "AMD"} <= {c.symbol for c in stocks}


@pytest.mark.parametrize("symbol", sorted(KNOWN))
def test_stocks_resolve_to_ibkrs_conids(api: IbkrClient, symbol: str) -> None:
    conid, exchange = KNOWN[symbol]
    found = api.security_stocks_by_symbol(symbol).data[symbol]
    contracts = [c for entry in found for c in entry["contracts"] if c["isUS"]]
    assert contracts == [{"conid": conid, "exchange": exchange, "isUS": True}]


def test_spx_has_an_option_chain(api: IbkrClient) -> None:
    search = api.search_contract_by_symbol("SPX", sec_type="IND").data
    spx = next(row for row in search if int(row["conid"]) == SPX)
    months = next(s for s in spx["sections"] if s["secType"] == "OPT")["months"].split(";")
    strikes = api.search_strikes_by_conid(str(SPX), "OPT", months[0]).data
    assert 5900.0 in strikes["call"] and strikes["call"] == strikes["put"]
    info = api.search_secdef_info_by_conid(str(SPX), "OPT", months[0], strike="5900", right="C").data
    assert len(info) == 1 and info[0]["ticker"] == "SPX" and info[0]["right"] == "C" and info[0]["strike"] == 5900
    api.live_marketdata_snapshot(conids=[info[0]["conid"]], fields=["31", "7308"])
    quote = api.live_marketdata_snapshot(conids=[info[0]["conid"]], fields=["31", "7308"]).data[0]
    assert float(quote["31"]) > 0 and 0 < float(quote["7308"]) < 1


def test_futures_and_currency_pairs(api: IbkrClient) -> None:
    futures = api.security_future_by_symbol(["ES", "NQ"]).data
    assert [f["underlyingConid"] for f in futures["NQ"]] == [11004958, 11004958]
    assert len(futures["ES"]) == 2
    for conid in (12087797, 15016059):  # GBP.USD, USD.JPY
        api.live_marketdata_snapshot(conids=[conid], fields=["31"])
        assert float(api.live_marketdata_snapshot(conids=[conid], fields=["31"]).data[0]["31"]) > 0


def test_unconfirmed_ids_are_marked_in_the_data_file() -> None:
    data = _data()
    entries = data["contracts"] + data["futures"]
    for entry in entries:
        ids = entry.get("conids", [entry.get("conid")])
        if any(i >= PLACEHOLDER_IDS for i in ids):
            assert "could not be confirmed" in entry.get("comment", ""), entry["symbol"]
    conids = [c["conid"] for c in data["contracts"]]
    assert len(conids) == len(set(conids))
