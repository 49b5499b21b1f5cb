"""The contract universe (data/contracts.json): the liquid US names ordinary scripts ask for, with their listings
abroad as IBKR answers them, indices with option chains (and weeklies), futures and currency pairs, under IBKR's
conids; ids that could not be confirmed are marked."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from typing import Any

import pytest

from ibkr_sdk import IbkrClient, StockQuery, StockQueryError
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import T0

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
SPY = 756733
PLACEHOLDER_IDS = 990_000_000

# Every stock, index and currency pair the universe held before the listings abroad and the weeklies were added
# (conid, symbol, type, exchange): none may go. HUBS carries IBKR's recorded conid, which replaced a placeholder.
EARLIER = [
    (265598, "AAPL", "STK", "NASDAQ"),
    (38708077, "AAPL", "STK", "MEXI"),
    (532640894, "AAPL", "STK", "AEQLIT"),
    (265768, "ADBE", "STK", "NASDAQ"),
    (4157, "ADI", "STK", "NASDAQ"),
    (4661, "ADP", "STK", "NASDAQ"),
    (4211, "AEP", "STK", "NASDAQ"),
    (4391, "AMD", "STK", "NASDAQ"),
    (3691937, "AMZN", "STK", "NASDAQ"),
    (14433401, "AUD.USD", "CASH", "IDEALPRO"),
    (313130367, "AVGO", "STK", "NASDAQ"),
    (5437, "CAT", "STK", "NYSE"),
    (481691285, "COIN", "STK", "NASDAQ"),
    (29624264, "CRM", "STK", "NYSE"),
    (73128548, "DIA", "STK", "ARCA"),
    (11004968, "ES", "IND", "CME"),
    (12087792, "EUR.USD", "CASH", "IDEALPRO"),
    (12087797, "GBP.USD", "CASH", "IDEALPRO"),
    (51529211, "GLD", "STK", "ARCA"),
    (208813720, "GOOG", "STK", "NASDAQ"),
    (208813719, "GOOGL", "STK", "NASDAQ"),
    (4627828, "GS", "STK", "NYSE"),
    (4350, "HON", "STK", "NASDAQ"),
    (169544810, "HUBS", "STK", "NYSE"),
    (43645865, "IBKR", "STK", "NASDAQ"),
    (8314, "IBM", "STK", "NYSE"),
    (270662, "INTU", "STK", "NASDAQ"),
    (8991352, "IVV", "STK", "ARCA"),
    (9579970, "IWM", "STK", "ARCA"),
    (8719, "JNJ", "STK", "NYSE"),
    (1520593, "JPM", "STK", "NYSE"),
    (9160, "LLY", "STK", "NYSE"),
    (107113386, "META", "STK", "NASDAQ"),
    (272093, "MSFT", "STK", "NASDAQ"),
    (15124833, "NFLX", "STK", "NASDAQ"),
    (10291, "NKE", "STK", "NYSE"),
    (11004958, "NQ", "IND", "CME"),
    (4815747, "NVDA", "STK", "NASDAQ"),
    (444857009, "PLTR", "STK", "NASDAQ"),
    (273544, "QCOM", "STK", "NASDAQ"),
    (320227571, "QQQ", "STK", "NASDAQ"),
    (416904, "SPX", "IND", "CBOE"),
    (756733, "SPY", "STK", "ARCA"),
    (15547841, "TLT", "STK", "NASDAQ"),
    (72539702, "TQQQ", "STK", "NASDAQ"),
    (76792991, "TSLA", "STK", "NASDAQ"),
    (6223250, "TSM", "STK", "NYSE"),
    (13096, "TXN", "STK", "NASDAQ"),
    (365207014, "UBER", "STK", "NYSE"),
    (13272, "UNH", "STK", "NYSE"),
    (15016062, "USD.CAD", "CASH", "IDEALPRO"),
    (12087820, "USD.CHF", "CASH", "IDEALPRO"),
    (15016059, "USD.JPY", "CASH", "IDEALPRO"),
    (49462172, "V", "STK", "NYSE"),
    (13455763, "VIX", "IND", "CBOE"),
    (136155102, "VOO", "STK", "ARCA"),
    (12340041, "VTI", "STK", "ARCA"),
]
EARLIER_FUTURES = {495512557: "ES", 495512563: "ES", 990000101: "NQ", 990000102: "NQ"}
# The monthly chains (conid base, strikes); conid = base + 100 * expiry index + 2 * strike index + (0 call, 1 put).
EARLIER_CHAINS = {
    265598: (790000000, [210, 220, 225, 230, 235, 240, 250]),
    SPX: (791000000, [5600, 5700, 5800, 5850, 5900, 5950, 6000, 6100, 6200]),
    SPY: (792000000, [560, 570, 580, 585, 590, 595, 600, 610, 620]),
}


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


def test_every_earlier_contract_is_kept(sim: Simulator) -> None:
    universe = sim._state.universe
    for conid, symbol, sec_type, exchange in EARLIER:
        c = universe.get(conid)
        assert c is not None and (c.symbol, c.sec_type, c.exchange) == (symbol, sec_type, exchange), conid
    for conid, symbol in EARLIER_FUTURES.items():
        future = universe.get(conid)
        assert future is not None and future.sec_type == "FUT" and future.symbol == symbol
    monthly = [dt.date(2026, 12, 18), dt.date(2027, 1, 15)]  # the next third Fridays after the test clock (T0)
    assert dt.datetime.fromtimestamp(T0, dt.timezone.utc).date() < monthly[0]
    for underlying, (base, strikes) in EARLIER_CHAINS.items():
        symbol = universe.get(underlying).symbol  # type: ignore[union-attr]
        for i, expiry in enumerate(monthly):
            for j, strike in enumerate(strikes):
                for k, right in enumerate("CP"):
                    option = universe.get(base + 100 * i + 2 * j + k)
                    assert option is not None and option.monthly and option.klass == symbol
                    assert (option.underlying, option.expiry, option.strike, option.right) == (
                        underlying,
                        expiry,
                        strike,
                        right,
                    )


def test_the_peers_stock_query_example_completes(api: IbkrClient) -> None:
    """ibind's examples/rest_03_stock_querying.py, query by query: by conditions, a plain symbol, by name."""
    assert api.stock_conid_by_symbol("AAPL").data == {"AAPL": 265598}
    mexi = StockQuery("AAPL", contract_conditions={"exchange": "MEXI"})
    assert api.stock_conid_by_symbol(mexi, default_filtering=False).data == {"AAPL": 38708077}
    mixed = [mexi, "HUBS", StockQuery("GOOG", name_match="ALPHABET INC - CDR")]
    assert api.stock_conid_by_symbol(mixed, default_filtering=False).data == {
        "AAPL": 38708077,
        "HUBS": 169544810,
        "GOOG": 532638805,  # the CDR, picked by IBKR's name for it
    }
    with pytest.raises(StockQueryError, match="AAPL: 5 listings matched"):  # the example's commented-out error
        api.stock_conid_by_symbol("AAPL", default_filtering=False)


@pytest.mark.parametrize(
    ("symbol", "us", "names", "abroad"),
    [
        ("GOOG", 208813720, ["ALPHABET INC-CL C", "LS 1X GOOG", "ALPHABET INC - CDR"], {"MEXI", "LSEETF", "AEQLIT"}),
        ("GOOGL", 208813719, ["ALPHABET INC-CL A"], {"MEXI"}),  # IBKR lists Alphabet's CDR under GOOG only
        ("MSFT", 272093, ["MICROSOFT CORP", "LS 1X MSFT", "MICROSOFT CORP-CDR"], {"MEXI", "EBS", "LSEETF", "AEQLIT"}),
        (
            "META",
            107113386,
            ["META PLATFORMS INC-CLASS A", "WT INDUS METALS ENHANCED", "META PLATFORMS INC-CDR", "METACON AB"],
            {"MEXI", "LSEETF", "BVME.ETF", "AEQLIT", "SFB"},
        ),
        ("SPY", SPY, ["SPDR S&P 500 ETF TRUST"], {"MEXI"}),
        ("VOO", 136155102, ["VANGUARD S&P 500 ETF"], {"MEXI"}),
    ],
)
def test_symbols_listed_on_several_exchanges(
    api: IbkrClient, symbol: str, us: int, names: list[str], abroad: set[str]
) -> None:
    found = api.security_stocks_by_symbol(symbol, default_filtering=False).data[symbol]
    assert [i["name"] for i in found] == names
    listings = [c for i in found for c in i["contracts"]]
    assert {c["exchange"] for c in listings if not c["isUS"]} == abroad
    assert [c["conid"] for c in listings if c["isUS"]] == [us]
    assert api.stock_conid_by_symbol(symbol).data == {symbol: us}  # default filtering: the US listing


def test_spx_chain_has_monthlies_and_spxw_weeklies(api: IbkrClient) -> None:
    search = api.search_contract_by_symbol("SPX", sec_type="IND").data
    spx = next(row for row in search if int(row["conid"]) == SPX)
    months = next(s for s in spx["sections"] if s["secType"] == "OPT")["months"].split(";")
    assert months == ["NOV26", "DEC26", "JAN27"]  # November: only weeklies are left after the test clock
    strikes = api.search_strikes_by_conid(str(SPX), "OPT", "DEC26").data
    assert 5900.0 in strikes["call"] and strikes["call"] == strikes["put"]
    info = api.search_secdef_info_by_conid(str(SPX), "OPT", "DEC26", strike="5900", right="C").data
    # One strike and month, several contracts: the monthly SPX (AM-settled) and the SPXW Fridays, the third
    # Friday in both classes; the weeklies of Christmas and New Year's Day expire on the Thursday before.
    assert [(i["tradingClass"], i["maturityDate"]) for i in info] == [
        ("SPXW", "20261204"),
        ("SPXW", "20261211"),
        ("SPX", "20261218"),
        ("SPXW", "20261218"),
        ("SPXW", "20261224"),
        ("SPXW", "20261231"),  # New Year's Day's
    ]
    assert all(i["ticker"] == "SPX" and i["right"] == "C" and i["strike"] == 5900 for i in info)
    assert len({i["conid"] for i in info}) == len(info)
    weekly = api.contract_information_by_conid(str(info[0]["conid"])).data
    assert weekly["trading_class"] == "SPXW" and weekly["local_symbol"] == "SPXW  261204C05900000"
    api.live_marketdata_snapshot(conids=[info[0]["conid"]], fields=["31", "7308"])
    quote = api.live_marketdata_snapshot(conids=[info[0]["conid"]], fields=["31", "7308"]).data[0]
    assert float(quote["31"]) > 0 and 0 < float(quote["7308"]) < 1


def test_spy_weeklies_keep_the_class_spy(api: IbkrClient) -> None:
    info = api.search_secdef_info_by_conid(str(SPY), "OPT", "DEC26", strike="590", right="P").data
    assert [(i["tradingClass"], i["maturityDate"]) for i in info] == [
        ("SPY", "20261204"),
        ("SPY", "20261211"),
        ("SPY", "20261218"),
        ("SPY", "20261224"),
        ("SPY", "20261231"),
    ]
    both = api.search_secdef_info_by_conid(str(SPY), "OPT", "DEC26", strike="590").data
    assert len(both) == 10 and {i["right"] for i in both} == {"C", "P"}
    aapl = api.search_secdef_info_by_conid("265598", "OPT", "DEC26", strike="230", right="C").data
    assert len(aapl) == 1  # AAPL: monthlies only


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
