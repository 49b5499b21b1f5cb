"""Market scanners: parameters, rankings that agree with the snapshot fields, instruments, locations, filters, HMDS."""

from __future__ import annotations

from typing import Any

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import Clock

# The US stocks and ETFs of the simulator's universe (data/contracts.json), by conid.
_UNIVERSE = Simulator()._state.universe.all()
US_STOCKS = {c.conid: c.symbol for c in _UNIVERSE if c.sec_type == "STK" and c.is_us}
US_ETFS = {c.symbol for c in _UNIVERSE if c.sec_type == "STK" and c.is_us and c.stock_type == "ETF"}
NYSE = {c.conid for c in _UNIVERSE if c.sec_type == "STK" and c.exchange == "NYSE"}
CDRS = {c.conid for c in _UNIVERSE if c.sec_type == "STK" and c.exchange == "AEQLIT"}  # the Canadian CDR listings


def _snapshots(api: IbkrClient) -> dict[int, dict[str, Any]]:
    conids = [str(c) for c in US_STOCKS]
    fields = ["31", "83", "7762"]
    api.live_marketdata_snapshot(conids=conids, fields=fields)
    return {row["conid"]: row for row in api.live_marketdata_snapshot(conids=conids, fields=fields).data}


def _change(row: dict[str, Any]) -> float:
    return float(row["83"].rstrip("%"))


def _symbols(result: dict[str, Any]) -> list[str]:
    return [c["symbol"] for c in result["contracts"]]


def test_parameters_list_what_the_scanner_accepts(api: IbkrClient) -> None:
    result = api.scanner_parameters()
    result.parsed()
    params = result.data
    assert {i["type"] for i in params["instrument_list"]} == {"STK", "ETF.EQ.US", "STOCK.NA"}
    codes = {s["code"] for s in params["scan_type_list"]}
    assert {"TOP_PERC_GAIN", "TOP_PERC_LOSE", "MOST_ACTIVE", "TOP_TRADE_COUNT"} <= codes
    us = next(node for node in params["location_tree"] if node["type"] == "STK")
    assert us["locations"][0]["type"] == "STK.US.MAJOR"
    assert {"priceAbove", "priceBelow", "volumeAbove"} <= {f["code"] for f in params["filter_list"]}
    assert api.hmds_scanner_parameters().data == params


def test_gainers_and_losers_follow_the_simulated_prices(api: IbkrClient, clock: Clock) -> None:
    for _ in range(2):  # now, and again once the prices have moved
        changes = {US_STOCKS[c]: _change(row) for c, row in _snapshots(api).items()}
        gainers = api.market_scanner("STK", "TOP_PERC_GAIN", "STK.US.MAJOR")
        gainers.parsed()
        expected = sorted((s for s, v in changes.items() if v > 0), key=lambda s: -changes[s])
        assert _symbols(gainers.data) == expected
        losers = api.market_scanner("STK", "TOP_PERC_LOSE", "STK.US.MAJOR").data
        assert _symbols(losers) == sorted((s for s, v in changes.items() if v < 0), key=lambda s: changes[s])
        assert len(expected) + len(_symbols(losers)) >= 5  # every stock moved one way or the other
        if gainers.data["contracts"]:
            first = gainers.data["contracts"][0]
            assert first["column_name"] == "Chg%" and first["scan_data"] == f"+{changes[first['symbol']]:.2f}%"
            assert first["server_id"] == "0" and first["con_id"] == int(first["conidex"])
        clock.advance(3 * 3600)


def test_most_active_and_trade_count_rank_by_volume(api: IbkrClient) -> None:
    volumes = {US_STOCKS[c]: int(row["7762"]) for c, row in _snapshots(api).items()}
    ranked = sorted(volumes, key=lambda s: -volumes[s])
    active = api.market_scanner("STK", "MOST_ACTIVE", "STK.US.MAJOR", filter=[]).data
    assert _symbols(active) == ranked and active["scan_data_column_name"] == "Volume"
    trades = api.market_scanner("STK", "TOP_TRADE_COUNT", "STK.US.MAJOR").data
    assert _symbols(trades) == ranked and trades["scan_data_column_name"] == "Trades"
    hot = api.market_scanner("STK", "HOT_BY_VOLUME", "STK.US.MAJOR").data
    assert sorted(_symbols(hot)) == sorted(US_STOCKS.values())


def test_filters_narrow_the_results(api: IbkrClient) -> None:
    prices = {US_STOCKS[c]: float(row["31"]) for c, row in _snapshots(api).items()}
    above = api.market_scanner("STK", "MOST_ACTIVE", "STK.US.MAJOR", filter=[{"code": "priceAbove", "value": 300}])
    assert set(_symbols(above.data)) == {s for s, p in prices.items() if p > 300}
    window = [{"code": "priceAbove", "value": "200"}, {"code": "priceBelow", "value": 500}]
    both = api.market_scanner("STK", "MOST_ACTIVE", "STK.US.MAJOR", filter=window).data
    assert set(_symbols(both)) == {s for s, p in prices.items() if 200 < p < 500}
    busy = api.market_scanner("STK", "MOST_ACTIVE", "STK.US.MAJOR", filter=[{"code": "avgVolumeAbove", "value": 1e8}])
    assert _symbols(busy.data) == ["NVDA"]  # the only stock trading over 100M shares a day on average
    with pytest.raises(ExternalBrokerError) as caught:
        api.market_scanner("STK", "MOST_ACTIVE", "STK.US.MAJOR", filter=[{"code": "marketCapAbove1e6", "value": 1}])
    assert caught.value.status_code == 400 and "marketCapAbove1e6" in str(caught.value)


def test_instruments_and_locations_choose_the_stocks(api: IbkrClient) -> None:
    etfs = api.market_scanner("ETF.EQ.US", "MOST_ACTIVE", "ETF.EQ.US.MAJOR").data
    assert set(_symbols(etfs)) == US_ETFS and "SPY" in US_ETFS
    nyse = api.market_scanner("STK", "MOST_ACTIVE", "STK.NYSE").data
    assert {c["con_id"] for c in nyse["contracts"]} == NYSE and 8314 in NYSE
    canada = api.market_scanner("STOCK.NA", "MOST_ACTIVE", "STK.NA.CANADA").data["contracts"]
    assert {c["con_id"] for c in canada} == CDRS and {c["listing_exchange"] for c in canada} == {"AEQLIT"}
    assert {532640894, 532638805} <= CDRS  # AAPL's and GOOG's CDRs
    assert api.market_scanner("STK", "MOST_ACTIVE", "STK.US.MINOR").data["contracts"] == []
    for instrument, code, location in [
        ("STK", "MOST_ACTIVE", "STK.NA.CANADA"),  # a location of another instrument
        ("BOND", "MOST_ACTIVE", "BOND.US"),
        ("STK", "NO_SUCH_SCAN", "STK.US.MAJOR"),
    ]:
        with pytest.raises(ExternalBrokerError) as caught:
            api.market_scanner(instrument, code, location)
        assert caught.value.status_code == 400


def test_hmds_scanner_answers_in_its_own_shape(api: IbkrClient) -> None:
    ranked = [c["con_id"] for c in api.market_scanner("STK", "MOST_ACTIVE", "STK.US.MAJOR").data["contracts"]]
    result = api.hmds_market_scanner("STK", "STK.US.MAJOR", "MOST_ACTIVE", "STK", [], max_items=3).data
    rows = result["Contracts"]["Contract"]
    assert [r["contractID"] for r in rows] == ranked[:3] and [r["distance"] for r in rows] == [0, 1, 2]
    assert result["total"] == result["size"] == 3 and result["offset"] == 0
    assert result["scanTime"] == "20261125-18:00:00" and rows[0]["inScanTime"] == result["scanTime"]
    everything = api.hmds_market_scanner("STK", "STK.US.MAJOR", "MOST_ACTIVE", "STK", []).data
    assert everything["size"] == len(ranked) and everything["id"] != result["id"]
    with pytest.raises(ExternalBrokerError) as caught:
        api.hmds_market_scanner("BOND.GOVT", "BOND.GOVT.US", "FAR_MATURITY_DATE", "BOND", [])
    assert caught.value.status_code == 400
