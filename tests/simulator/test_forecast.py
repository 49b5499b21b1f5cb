"""Event contracts: category tree, the contracts of a market, details, rules and schedules of one contract."""

from __future__ import annotations

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import raw_request

USCE = 732764706


def test_category_tree_leads_to_markets(api: IbkrClient) -> None:
    tree = api.forecast_categories()
    tree.parsed()
    categories = tree.data["categories"]
    assert categories["g5351"] == {"name": "Environmental"}
    assert categories["g7369"]["parent_id"] == "g5351"
    leaf = categories["g17490"]
    assert leaf["parent_id"] == "g7369"
    assert {m["symbol"]: m["conid"] for m in leaf["markets"]} == {"USCE": USCE, "USDR": 732764712}


def test_market_lists_both_sides_of_contracts_still_trading(api: IbkrClient) -> None:
    market = api.forecast_contract_markets(str(USCE))
    market.parsed()
    data = market.data
    assert (data["symbol"], data["exchange"], data["payout"]) == ("USCE", "FORECASTX", 1.0)
    contracts = data["contracts"]
    by_conid = {c["conid"]: c for c in contracts}
    assert by_conid[805953033]["side"] == "Y" and by_conid[805953036]["side"] == "N"
    assert by_conid[805953033]["expiration"] == "20360430" and by_conid[805953033]["strike_label"] == "Above 5,050"
    assert all(c["underlying_conid"] == USCE for c in contracts)
    assert len(contracts) % 2 == 0 and len({(c["strike"], c["expiration"]) for c in contracts}) == len(contracts) // 2
    # The 2025 contract (IBKR's example) stopped trading on 2026-04-30, before the test clock's date.
    assert 732957192 not in by_conid
    assert api.forecast_contract_markets(str(USCE), exchange="FORECASTX").data == data
    with pytest.raises(ExternalBrokerError) as caught:
        api.forecast_contract_markets(str(USCE), exchange="CBOE")
    assert caught.value.status_code == 400
    with pytest.raises(ExternalBrokerError):
        api.forecast_contract_markets("265598")


def test_details_rules_and_schedule_of_either_side(api: IbkrClient) -> None:
    yes = api.forecast_contract_details("805953033")
    yes.parsed()
    no = api.forecast_contract_details("805953036").data
    assert (yes.data["conid_yes"], yes.data["conid_no"]) == (no["conid_yes"], no["conid_no"]) == (805953033, 805953036)
    assert yes.data["side"] == "Y" and no["side"] == "N"
    assert yes.data["measured_period"] == "Dec31'35" and "5,050" in yes.data["question"]
    rules = api.forecast_contract_rules("805953033")
    rules.parsed()
    assert rules.data["last_trade_time"] == 2093202000  # IBKR's example: 2036-04-30 16:00 US/Central
    assert rules.data["payout_time"] == 2093277600 and rules.data["threshold"] == "5050.0"
    schedule = api.forecast_contract_schedules("805953033")
    schedule.parsed()
    days = schedule.data["trading_schedules"]
    assert schedule.data["timezone"] == "US/Central" and len(days) == 7
    blocks = [{"open": "12:00 AM", "close": "4:00 PM"}, {"open": "4:15 PM", "close": "11:59 PM"}]
    assert all(d["trading_times"] == blocks for d in days)
    expired = api.forecast_contract_details("732957197").data  # still described after it stopped trading
    assert expired["expiration"] == "20260430" and expired["conid_yes"] == 732957192


def test_unknown_or_missing_conids_answer_400(api: IbkrClient, sim: Simulator) -> None:
    for call in (api.forecast_contract_details, api.forecast_contract_rules, api.forecast_contract_schedules):
        with pytest.raises(ExternalBrokerError) as caught:
            call("265598")
        assert caught.value.status_code == 400
    status, body = raw_request(sim, "GET", "/v1/api/forecast/contract/details")
    assert status == 400 and "conid" in body["error"]
