"""Financial Advisor allocation: sub-accounts, allocation groups and presets, and the refusal for non-advisors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import raw_request

SUB1, SUB2 = "DU1234567", "DU1234568"


@pytest.fixture
def fa(fa_sim: Simulator, client_for: Callable[..., IbkrClient]) -> IbkrClient:
    return client_for(fa_sim)


def _refused(call: Callable[[], Any]) -> str:
    with pytest.raises(ExternalBrokerError) as caught:
        call()
    assert caught.value.status_code == 400
    return str(caught.value)


def test_a_single_account_user_is_refused(api: IbkrClient) -> None:
    message = _refused(api.allocation_accounts)
    assert "not a Financial Advisor" in message
    _refused(api.allocation_groups)
    _refused(api.allocation_presets)
    _refused(lambda: api.create_allocation_group("g", [{"name": "DU1234567"}]))


def test_advisor_sees_its_sub_accounts(fa: IbkrClient, fa_sim: Simulator) -> None:
    assert fa_sim.accounts == ["DF1234560", SUB1, SUB2]
    result = fa.allocation_accounts()
    result.parsed()
    accounts = result.data["accounts"]
    assert [a["name"] for a in accounts] == [SUB1, SUB2]
    figures = {d["key"]: float(d["value"]) for d in accounts[0]["data"]}
    assert figures["NetLiquidation"] == pytest.approx(1_000_000.0) and figures["AvailableEquity"] > 0
    listed = fa.receive_brokerage_accounts().data
    assert listed["allowFeatures"]["allowFA"] is True and listed["acctProps"]["DF1234560"]["hasChildAccounts"]


def test_group_lifecycle(fa: IbkrClient) -> None:
    assert fa.allocation_groups().data == {"data": []}
    assert fa.create_allocation_group("NetLiq", [{"name": SUB1}, {"name": SUB2}]).data == {"success": True}
    shares = [{"name": SUB1, "amount": 4}, {"name": SUB2, "amount": 1}]
    fa.create_allocation_group("Shares", shares, default_method="S").parsed()
    listed = fa.allocation_groups()
    listed.parsed()
    assert listed.data["data"] == [
        {"allocation_method": "N", "name": "NetLiq", "size": 2},
        {"allocation_method": "S", "name": "Shares", "size": 2},
    ]
    single = fa.allocation_group("Shares")
    single.parsed()
    assert single.data == {"accounts": shares, "default_method": "S", "name": "Shares"}
    assert fa.allocation_group("NetLiq").data["accounts"] == [{"name": SUB1}, {"name": SUB2}]
    # Rename and change method: the whole definition is replaced, the group keeps its place.
    fa.modify_allocation_group("Equal", [{"name": SUB2}], "E", prev_name="NetLiq").parsed()
    assert [g["name"] for g in fa.allocation_groups().data["data"]] == ["Equal", "Shares"]
    assert fa.allocation_group("Equal").data == {"accounts": [{"name": SUB2}], "default_method": "E", "name": "Equal"}
    _refused(lambda: fa.allocation_group("NetLiq"))
    fa.modify_allocation_group("Shares", [{"name": SUB1, "amount": 60}, {"name": SUB2, "amount": 40}], "P").parsed()
    assert fa.allocation_group("Shares").data["default_method"] == "P"
    assert fa.receive_brokerage_accounts().data["groups"] == ["Equal", "Shares"]
    fa.delete_allocation_group("Equal").parsed()
    assert [g["name"] for g in fa.allocation_groups().data["data"]] == ["Shares"]
    _refused(lambda: fa.delete_allocation_group("Equal"))


def test_group_definitions_are_checked(fa: IbkrClient, fa_sim: Simulator) -> None:
    fa.create_allocation_group("G", [{"name": SUB1}])
    _refused(lambda: fa.create_allocation_group("G", [{"name": SUB2}]))  # name taken
    _refused(lambda: fa.create_allocation_group("H", [{"name": "U456789"}]))  # not a sub-account
    _refused(lambda: fa.create_allocation_group("H", [{"name": "DF1234560"}]))  # the advisor itself
    _refused(lambda: fa.create_allocation_group("H", [{"name": SUB1}, {"name": SUB1}]))
    _refused(lambda: fa.create_allocation_group("H", [{"name": SUB1}], default_method="R"))  # no amount
    _refused(lambda: fa.create_allocation_group("H", [{"name": SUB1, "amount": -1}], default_method="S"))
    percent = [{"name": SUB1, "amount": 50}, {"name": SUB2, "amount": 40}]
    _refused(lambda: fa.create_allocation_group("H", percent, default_method="P"))  # not 100 in all
    _refused(lambda: fa.modify_allocation_group("Z", [{"name": SUB1}], "E"))  # no such group
    fa.create_allocation_group("K", [{"name": SUB2}])
    _refused(lambda: fa.modify_allocation_group("K", [{"name": SUB1}], "E", prev_name="G"))  # new name taken
    status, body = raw_request(fa_sim, "POST", "/v1/api/iserver/account/allocation/group", {"accounts": []})
    assert status == 400 and "name" in body["error"]
    body_without_members = {"name": "H", "accounts": [], "default_method": "E"}  # the client refuses to send it
    status, body = raw_request(fa_sim, "POST", "/v1/api/iserver/account/allocation/group", body_without_members)
    assert status == 400 and "at least one" in body["error"]
    status, body = raw_request(
        fa_sim,
        "POST",
        "/v1/api/iserver/account/allocation/group",
        {"name": "X", "accounts": [{}], "default_method": "Q"},
    )
    assert status == 400 and "default_method" in body["error"]
    assert [g["name"] for g in fa.allocation_groups().data["data"]] == ["G", "K"]  # nothing half-made


def test_presets_change_only_what_is_given(fa: IbkrClient, fa_sim: Simulator) -> None:
    presets = fa.allocation_presets()
    presets.parsed()
    assert presets.data == {
        "default_method_for_all": "AvailableEquity",
        "group_auto_close_positions": False,
        "group_proportional_allocation": False,
        "profiles_auto_close_positions": False,
        "strict_credit_check": False,
    }
    changed = fa.set_allocation_presets(default_method_for_all="E", strict_credit_check=True)
    changed.parsed()
    assert changed.data == {"success": True}
    after = fa.allocation_presets().data
    assert after["default_method_for_all"] == "E" and after["strict_credit_check"] is True
    assert after["group_auto_close_positions"] is False
    body = {"group_proportional_allocation": "yes"}
    status, answer = raw_request(fa_sim, "POST", "/v1/api/iserver/account/allocation/presets", body)
    assert status == 400 and "group_proportional_allocation" in answer["error"]
    status, _ = raw_request(
        fa_sim, "POST", "/v1/api/iserver/account/allocation/presets", {"default_method_for_all": "A"}
    )
    assert status == 400
    assert fa.allocation_presets().data == after


def test_advisor_needs_a_sub_account() -> None:
    with pytest.raises(ValueError):
        Simulator(advisor=True, accounts=["DF1234560"])
