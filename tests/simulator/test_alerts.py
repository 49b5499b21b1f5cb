"""Alerts: the create / list / read / activate / delete lifecycle, modification, validation, triggering, id 0 for
all alerts of an account, and the MTA alert."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, IBM, Clock, raw_request


def price_condition(value: float, operator: str = ">=", conid: int = AAPL, bind: str = "n") -> dict[str, Any]:
    return {"conidex": f"{conid}@SMART", "type": 1, "operator": operator, "value": str(value), "logicBind": bind}


def alert(name: str, *conditions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"alertName": name, "alertMessage": f"{name} fired", "alertRepeatable": 0, "outsideRth": 1, "tif": "GTC"}
    return {**body, "conditions": list(conditions), **extra}


def _last(api: IbkrClient, conid: int = AAPL) -> float:
    api.live_marketdata_snapshot(conids=str(conid), fields="31")
    return float(api.live_marketdata_snapshot(conids=str(conid), fields="31").data[0]["31"])


def _listed(api: IbkrClient, **options: Any) -> dict[int, dict[str, Any]]:
    return {a["order_id"]: a for a in api.list_alerts(**options).data}


def test_alert_lifecycle(api: IbkrClient) -> None:
    assert api.list_alerts().data == []
    created = api.create_alert(alert("AAPL high", price_condition(10_000), email="me@example.com"))
    created.parsed()
    alert_id = created.data["order_id"]
    assert created.data["success"] is True and created.data["text"] == "Submitted"
    listed = api.list_alerts()
    listed.parsed()
    assert listed.data == [
        {
            "order_id": alert_id,
            "account": ACCOUNT,
            "alert_name": "AAPL high",
            "alert_active": 1,
            "order_time": "20261125-18:00:00",
            "alert_triggered": False,
            "alert_repeatable": 0,
        }
    ]
    details = api.alert_details(alert_id)
    details.parsed()
    assert details.data["alert_message"] == "AAPL high fired" and details.data["alert_email"] == "me@example.com"
    assert details.data["condition_size"] == 1 and details.data["condition_outside_rth"] == 1
    (condition,) = details.data["conditions"]
    assert condition["conidex"] == f"{AAPL}@SMART" and condition["condition_value"] == "10000.00"
    assert condition["contract_description_1"] == "AAPL" and condition["condition_operator"] == ">="
    off = api.activate_alert(alert_id, 0)
    off.parsed()
    assert off.data == {
        "request_id": None,
        "order_id": alert_id,
        "success": True,
        "text": "Request was submitted",
        "failure_list": None,
    }
    assert _listed(api)[alert_id]["alert_active"] == 0
    assert api.alert_details(alert_id).data["order_status"] == "Presubmitted"
    api.activate_alert(alert_id, 1)
    assert _listed(api)[alert_id]["alert_active"] == 1
    deleted = api.delete_alert(alert_id)
    deleted.parsed()
    assert deleted.data["order_id"] == alert_id and deleted.data["success"] is True
    assert api.list_alerts().data == []
    for gone in (lambda: api.delete_alert(alert_id), lambda: api.alert_details(alert_id)):
        with pytest.raises(ExternalBrokerError) as caught:
            gone()
        assert caught.value.status_code == 500 and str(alert_id) in str(caught.value)


def test_modifying_keeps_the_id(api: IbkrClient) -> None:
    alert_id = api.create_alert(alert("IBM", price_condition(10_000, conid=IBM))).data["order_id"]
    changed = alert("IBM low", price_condition(1, "<=", conid=IBM), orderId=alert_id, alertRepeatable=1)
    assert api.create_alert(changed).data["order_id"] == alert_id
    assert list(_listed(api)) == [alert_id]
    details = api.alert_details(alert_id).data
    assert details["alert_name"] == "IBM low" and details["alert_repeatable"] == 1
    assert (
        details["conditions"][0]["condition_operator"] == "<=" and details["conditions"][0]["conidex"] == "8314@SMART"
    )
    with pytest.raises(ExternalBrokerError) as caught:
        api.create_alert(alert("nope", price_condition(1), orderId=12345))
    assert caught.value.status_code == 500


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        (alert("bad operator", {**price_condition(1), "operator": "abc"}), 500),
        (alert("no operator", {**price_condition(1), "operator": None}), 500),
        (alert("any contract", {**price_condition(1), "conidex": "*@*"}), 500),
        (alert("unknown contract", price_condition(1, conid=999)), 500),
        (alert("no conditions"), 500),
        (alert("bad type", {**price_condition(1), "type": 42}), 500),
        (alert("gtd without expiry", price_condition(1), tif="GTD"), 500),
        (alert("bad flag", price_condition(1), alertRepeatable=7), 500),
    ],
)
def test_unprocessable_alerts_are_refused(sim: Simulator, body: dict[str, Any], status: int) -> None:
    got, answer = raw_request(sim, "POST", f"/v1/api/iserver/account/{ACCOUNT}/alert", body)
    assert got == status and answer["error"]
    got, answer = raw_request(sim, "GET", f"/v1/api/iserver/account/{ACCOUNT}/alerts")
    assert (got, answer) == (200, [])


def test_unknown_account_is_refused(api: IbkrClient) -> None:
    with pytest.raises(ExternalBrokerError) as caught:
        api.create_alert(alert("elsewhere", price_condition(1)), account_id="U7654321")
    assert caught.value.status_code == 400


def test_price_conditions_trigger_at_the_simulated_price(sim: Simulator, api: IbkrClient) -> None:
    last = _last(api)
    once = api.create_alert(alert("already above", price_condition(last - 5))).data["order_id"]
    repeating = api.create_alert(alert("again", price_condition(last - 5), alertRepeatable=1)).data["order_id"]
    waiting = api.create_alert(alert("far above", price_condition(last + 50))).data["order_id"]
    listed = _listed(api)
    assert (listed[once]["alert_triggered"], listed[once]["alert_active"]) == (True, 0)  # fired once, then off
    assert (listed[repeating]["alert_triggered"], listed[repeating]["alert_active"]) == (True, 1)
    assert (listed[waiting]["alert_triggered"], listed[waiting]["alert_active"]) == (False, 1)
    sim.set_price(AAPL, last + 60)
    assert _listed(api)[waiting]["alert_triggered"] is True
    assert api.alert_details(waiting).data["alert_triggered"] is True


def test_time_conditions_and_logic_binds(api: IbkrClient, clock: Clock) -> None:
    soon = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(clock() + 60))
    at_time = {"conidex": f"{AAPL}@SMART", "type": 3, "operator": ">=", "value": soon, "logicBind": "n"}
    timed = api.create_alert(alert("in a minute", at_time)).data["order_id"]
    last = _last(api)
    true, false = price_condition(last - 5, bind="a"), price_condition(last + 50, bind="n")
    both = api.create_alert(alert("and", true, false)).data["order_id"]
    either = api.create_alert(alert("or", {**true, "logicBind": "o"}, false)).data["order_id"]
    listed = _listed(api)
    assert [listed[i]["alert_triggered"] for i in (timed, both, either)] == [False, False, True]
    details = api.alert_details(both)
    assert details.data["conditions"][0]["condition_logic_bind"] == "a"  # IBKR's letters
    assert details.parsed().conditions[0].condition_logic_bind == "a"  # the model takes them (fixes.yaml)
    clock.advance(120)
    assert _listed(api)[timed]["alert_triggered"] is True


def test_gtd_alert_expires(api: IbkrClient, clock: Clock) -> None:
    expiry = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(clock() + 3600))
    alert_id = api.create_alert(alert("gtd", price_condition(10_000), tif="GTD", expireTime=expiry)).data["order_id"]
    assert api.alert_details(alert_id).data["expire_time"] == expiry
    clock.advance(7200)
    assert _listed(api)[alert_id]["alert_active"] == 0


def test_alert_id_zero_means_every_alert_of_the_account(clock: Clock, client_for: Callable[..., IbkrClient]) -> None:
    other = "DU7654321"
    with Simulator(clock=clock, accounts=[ACCOUNT, other]) as sim:
        api = client_for(sim)
        mine = [api.create_alert(alert(f"a{i}", price_condition(10_000))).data["order_id"] for i in range(2)]
        theirs = api.create_alert(alert("b", price_condition(10_000)), account_id=other).data["order_id"]
        assert list(_listed(api)) == mine and list(_listed(api, account_id=other)) == [theirs]
        api.activate_alert(0, 0)
        assert [a["alert_active"] for a in api.list_alerts().data] == [0, 0]
        assert _listed(api, account_id=other)[theirs]["alert_active"] == 1
        with pytest.raises(ExternalBrokerError):  # another account's alert is not this account's to change
            api.activate_alert(theirs, 0)
        assert api.delete_alert(0).data["order_id"] == 0
        assert api.list_alerts().data == [] and list(_listed(api, account_id=other)) == [theirs]


def test_mta_alert_is_modified_and_reset_never_listed(api: IbkrClient) -> None:
    result = api.mta_alert()
    result.parsed()
    mta = result.data
    assert mta["alert_name"] == "MTA (AutoAlert)" and mta["tool_id"] == 55834574848
    assert mta["alert_mta_currency"] == "USD" and mta["conditions"][0]["conidex"] == "*@*"
    assert api.list_alerts().data == []
    assert api.alert_details(mta["order_id"]).data == mta
    modified = alert("MTA (AutoAlert)", price_condition(10_000), toolId=mta["tool_id"], alertRepeatable=1)
    new_id = api.create_alert(modified).data["order_id"]
    assert new_id != mta["order_id"] and api.mta_alert().data["order_id"] == new_id
    assert api.mta_alert().data["conditions"][0]["condition_type"] == 1 and api.list_alerts().data == []
    api.delete_alert(new_id)  # resets the MTA alert to its defaults
    reset = api.mta_alert().data
    assert reset["conditions"] == mta["conditions"] and reset["order_id"] not in (new_id, mta["order_id"])
    any_trade = {"conidex": "*@*", "type": 5, "value": "*", "logicBind": "n"}  # no operator for a trade condition
    again = api.create_alert(alert("MTA (AutoAlert)", any_trade, toolId=mta["tool_id"], showPopup=1)).data
    assert api.mta_alert().data["order_id"] == again["order_id"] and api.mta_alert().data["alert_show_popup"] == 1
    assert api.mta_alert().data["conditions"][0]["contract_description_1"] == "Unknown"
