"""Market data: snapshot pre-flight and fields, deterministic moving prices, history bars and envelope, HMDS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, IBM, Clock, raw_request

FIELDS = ["31", "84", "86", "55", "7295", "70", "71", "87", "7741", "88", "85"]


def test_snapshot_preflight_then_values(api: IbkrClient) -> None:
    first = api.live_marketdata_snapshot(conids=[str(AAPL), str(IBM)], fields=FIELDS).data
    assert first == [{"conid": AAPL, "conidEx": str(AAPL)}, {"conid": IBM, "conidEx": str(IBM)}]
    second = api.live_marketdata_snapshot(conids=[str(AAPL), str(IBM)], fields=FIELDS).data
    aapl = second[0]
    assert aapl["conid"] == AAPL and aapl["55"] == "AAPL"
    for f in FIELDS:
        assert isinstance(aapl[f], str), f
    bid, last, ask = float(aapl["84"]), float(aapl["31"]), float(aapl["86"])
    assert 0 < bid <= last <= ask
    assert float(aapl["71"]) <= last <= float(aapl["70"])
    assert aapl["87"].endswith(("M", "K")) and isinstance(aapl["87_raw"], float)
    assert "_updated" in aapl and aapl["6509"].startswith("R")
    assert second[1]["55"] == "IBM"


def test_a_field_added_later_arrives_on_the_next_request(api: IbkrClient) -> None:
    api.live_marketdata_snapshot(conids=str(AAPL), fields="31")
    with_new_field = api.live_marketdata_snapshot(conids=str(AAPL), fields=["31", "84"]).data[0]
    assert "31" in with_new_field and "84" not in with_new_field
    assert "84" in api.live_marketdata_snapshot(conids=str(AAPL), fields=["31", "84"]).data[0]


def _last(client: IbkrClient) -> str:
    client.live_marketdata_snapshot(conids=str(AAPL), fields="31")
    return str(client.live_marketdata_snapshot(conids=str(AAPL), fields="31").data[0]["31"])


def test_prices_are_deterministic_and_move_with_the_clock(client_for: Callable[..., IbkrClient]) -> None:
    clock = Clock()
    with Simulator(clock=clock) as one, Simulator(clock=clock) as two, Simulator(clock=clock, seed=7) as other:
        a, b, c = client_for(one), client_for(two), client_for(other)
        assert _last(a) == _last(b)
        assert _last(a) != _last(c)
        before = _last(a)
        clock.advance(3 * 3600)
        assert _last(a) != before
        assert _last(a) == _last(b)


def test_set_price_pins_the_quote(sim: Simulator, api: IbkrClient) -> None:
    sim.set_price(AAPL, 150.0)
    api.live_marketdata_snapshot(conids=str(AAPL), fields="31")
    assert api.live_marketdata_snapshot(conids=str(AAPL), fields="31").data[0]["31"] == "150.00"
    with pytest.raises(KeyError):
        sim.set_price(1, 10.0)


def test_option_snapshot_has_greeks(sim: Simulator, api: IbkrClient) -> None:
    month = api.search_contract_by_symbol("AAPL").data[0]["sections"][1]["months"].split(";")[0]
    option = api.search_secdef_info_by_conid(
        conid=str(AAPL), sec_type="OPT", month=month, strike="230", right="C"
    ).data[0]
    fields = ["31", "7308", "7633"]
    api.live_marketdata_snapshot(conids=option["conid"], fields=fields)
    quote = api.live_marketdata_snapshot(conids=option["conid"], fields=fields).data[0]
    assert 0 < float(quote["7308"]) < 1 and quote["7633"].endswith("%") and float(quote["31"]) > 0


def test_unsubscribe_restarts_the_preflight(api: IbkrClient) -> None:
    api.live_marketdata_snapshot(conids=str(AAPL), fields="31")
    assert api._marketdata_unsubscribe(conid=AAPL).data == {"success": True}
    assert api.live_marketdata_snapshot(conids=str(AAPL), fields="31").data == [{"conid": AAPL, "conidEx": str(AAPL)}]
    with pytest.raises(ExternalBrokerError) as caught:
        api._marketdata_unsubscribe(conid=IBM)
    assert caught.value.status_code == 404
    assert api.marketdata_unsubscribe_all().data == {"unsubscribed": True}
    assert api.live_marketdata_snapshot(conids=str(AAPL), fields="31").data == [{"conid": AAPL, "conidEx": str(AAPL)}]


def _check_bars(history: dict[str, Any]) -> None:
    for bar in history["data"]:
        assert set(bar) == {"o", "c", "h", "l", "v", "t"}
        assert bar["l"] <= min(bar["o"], bar["c"]) <= max(bar["o"], bar["c"]) <= bar["h"]
    times = [b["t"] for b in history["data"]]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_history_bars_and_envelope(client_for: Callable[..., IbkrClient]) -> None:
    after_close = Clock(dt.datetime(2026, 11, 25, 22, 0, tzinfo=dt.timezone.utc).timestamp())
    with Simulator(clock=after_close) as sim:
        api = client_for(sim)
        day = api.marketdata_history_by_conid(conid=str(AAPL), bar="5min", period="1d").data
        assert len(day["data"]) == 78  # 6.5 regular hours of 5-minute bars
        _check_bars(day)
        assert day["data"][0]["t"] == int(dt.datetime(2026, 11, 25, 14, 30, tzinfo=dt.timezone.utc).timestamp() * 1000)
        assert day["symbol"] == "AAPL" and day["text"] == "APPLE INC" and day["barLength"] == 300
        assert day["startTime"] == "20261125-14:30:00" and day["timePeriod"] == "1d"
        assert day["priceFactor"] == 100 and day["points"] == 77
        high_price, _, offset = day["high"].split("/")
        assert int(high_price) == round(max(b["h"] for b in day["data"]) * 100) and int(offset) % 5 == 0
        week = api.marketdata_history_by_conid(conid=str(AAPL), bar="1d", period="1w").data
        assert len(week["data"]) == 5 and week["barLength"] == 86400
        year = api.marketdata_history_by_conid(conid=str(IBM), bar="1w", period="1y").data
        assert 50 <= len(year["data"]) <= 53
        _check_bars(year)
        longest = api.marketdata_history_by_conid(conid=str(AAPL), bar="1min", period="30d").data
        assert len(longest["data"]) == 1000  # IBKR's cap
        extended = api.marketdata_history_by_conid(conid=str(AAPL), bar="1h", period="1d", outside_rth=True).data
        regular = api.marketdata_history_by_conid(conid=str(AAPL), bar="1h", period="1d").data
        assert len(extended["data"]) > len(regular["data"]) and extended["outsideRth"] is True
        fx = api.marketdata_history_by_conid(conid="12087792", bar="1h", period="1d").data
        assert len(fx["data"]) == 24
        earlier = api.marketdata_history_by_conid(
            conid=str(AAPL), bar="1h", period="2d", start_time=dt.datetime(2026, 11, 24, 21, 0)
        ).data
        assert earlier["data"][-1]["t"] < day["data"][0]["t"]


def test_history_refuses_bad_input(sim: Simulator, api: IbkrClient) -> None:
    with pytest.raises(ExternalBrokerError) as caught:
        api.marketdata_history_by_conid(conid="999999", bar="5min")
    assert caught.value.status_code == 400
    status, body = raw_request(sim, "GET", "/v1/api/iserver/marketdata/history?conid=265598&bar=7parsecs")
    assert status == 400 and "bar" in body["error"]


def test_hmds_first_request_warms_up(api: IbkrClient) -> None:
    with pytest.raises(ExternalBrokerError) as caught:
        api.historical_marketdata_beta(conid=str(AAPL), period="1d", bar="1h")
    assert caught.value.status_code == 404
    bars = api.historical_marketdata_beta(conid=str(AAPL), period="1d", bar="1h", bar_type="Midpoint").data
    assert bars["data"] and all(b["v"] == 0 for b in bars["data"])
    _check_bars(bars)
