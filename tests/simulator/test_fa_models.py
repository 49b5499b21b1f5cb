"""Financial Advisor model portfolios: save targets, invest and divest in two steps, read the model, presets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, IBM, Clock, raw_request

SUB1, SUB2 = "DU1234567", "DU1234568"
CASH = [{"ccy": "USD", "target": 0.1}]
NO_CASH = [{"ccy": "USD", "target": 0.0}]
STOCKS = [{"conid": AAPL, "target": 0.5}, {"conid": IBM, "target": 0.4}]


@pytest.fixture
def fa(fa_sim: Simulator, client_for: Callable[..., IbkrClient]) -> IbkrClient:
    client = client_for(fa_sim)
    client.fa_model_save(1, "Tech", "Tech tilt", False, CASH, STOCKS).parsed()
    return client


def _status(call: Callable[[], Any]) -> int:
    with pytest.raises(ExternalBrokerError) as caught:
        call()
    return caught.value.status_code


def _invest(fa: IbkrClient, accounts: list[dict[str, Any]], model: str = "Tech") -> None:
    draft = fa.fa_model_invest_divest(2, model, accounts)
    draft.parsed()
    assert draft.data["reqID"] == "2" and draft.data["subscriptionStatus"] == 0
    fa.fa_model_submit_transfers(3, draft.data["transfersInstructionId"]).parsed()


def test_single_account_user_is_refused(api: IbkrClient) -> None:
    assert _status(lambda: api.fa_model_list(1)) == 400
    assert _status(lambda: api.fa_preset_get(1)) == 400


def test_saved_model_is_listed_empty_until_invested(fa: IbkrClient, fa_sim: Simulator) -> None:
    listed = fa.fa_model_list(540608)
    listed.parsed()
    assert listed.data["reqID"] == 540608 and listed.data["masterAccount"] == fa_sim.accounts[0]
    (model,) = listed.data["models"]
    assert (model["model"], model["desc"], model["isStatic"], model["numAccounts"], model["nlv"]) == (
        "Tech",
        "Tech tilt",
        False,
        0,
        0.0,
    )
    positions = fa.fa_model_positions(5, "Tech").data
    assert [p["conid"] for p in positions["positionList"]] == [AAPL, IBM] and positions["nlv"] == 0.0
    assert all(p["position"] == 0 and p["actual"] == 0 for p in positions["positionList"])
    # An unknown (or wrongly cased) model is not an error, just empty.
    assert fa.fa_model_positions(5, "tech").data["positionList"] == []
    assert fa.fa_model_accounts_details(6, "tech").data["accountInfoList"] == []


def test_investing_takes_a_submit_and_follows_the_targets(fa: IbkrClient) -> None:
    draft = fa.fa_model_invest_divest(2, "Tech", [{"account": SUB1, "amtToInvest": 10000}]).data
    assert fa.fa_model_summary(4, "Tech").data["numAccounts"] == 0  # only drafted so far
    fa.fa_model_submit_transfers(3, draft["transfersInstructionId"]).parsed()
    assert _status(lambda: fa.fa_model_submit_transfers(3, draft["transfersInstructionId"])) == 500  # sent already
    summary = fa.fa_model_summary(4, "Tech")
    summary.parsed()
    assert summary.data["numAccounts"] == 1 and summary.data["nlv"] == pytest.approx(10000, abs=0.05)
    positions = fa.fa_model_positions(5, "Tech", sort_field="mv", sort_direction="ASC")
    positions.parsed()
    rows = positions.data["positionList"]
    assert [r["conid"] for r in rows] == [IBM, AAPL]  # 4,000 then 5,000
    assert [r["actual"] for r in rows] == pytest.approx([0.4, 0.5], abs=1e-3)
    assert positions.data["cash"][0]["mv"] == pytest.approx(1000) and positions.data["stkOnly"] is True
    assert len(fa.fa_model_positions(5, "Tech", limit=1).data["positionList"]) == 1
    details = fa.fa_model_accounts_details(6, "Tech", calc_pnls=True)
    details.parsed()
    accounts = [row["account"] for row in details.data["accountInfoList"]]
    assert accounts == [SUB1, "TOTAL"]
    invested = fa.fa_model_invest_divest_positions(7, "Tech")
    invested.parsed()
    by_account = {row["account"]: row for row in invested.data["accountList"]}
    assert float(by_account[SUB1]["accountModelNlv"]) == pytest.approx(10000, abs=0.05)
    assert float(by_account[SUB2]["accountModelNlv"]) == 0


def test_divesting_sells_a_share_of_everything(fa: IbkrClient, clock: Clock) -> None:
    _invest(fa, [{"account": SUB1, "amtToInvest": 10000}, {"account": SUB2, "amtToInvest": 4000}])
    clock.advance(3600)  # prices drift; the holdings follow them
    before = {r["conid"]: r["position"] for r in fa.fa_model_positions(5, "Tech").data["positionList"]}
    held = float(
        {r["account"]: r for r in fa.fa_model_invest_divest_positions(7, "Tech").data["accountList"]}[SUB2][
            "accountModelNlv"
        ]
    )
    too_much = fa.fa_model_invest_divest(2, "Tech", [{"account": SUB2, "amtToInvest": -(held + 100)}]).data
    assert _status(lambda: fa.fa_model_submit_transfers(3, too_much["transfersInstructionId"])) == 500
    _invest(fa, [{"account": SUB2, "amtToInvest": -held}])  # all of it: the account leaves the model
    assert fa.fa_model_summary(4, "Tech").data["numAccounts"] == 1
    after = {r["conid"]: r["position"] for r in fa.fa_model_positions(5, "Tech").data["positionList"]}
    assert all(after[c] < before[c] for c in before)


def test_bad_requests(fa: IbkrClient, fa_sim: Simulator) -> None:
    assert _status(lambda: fa.fa_model_invest_divest(2, "Tech", [{"account": SUB1, "amtToInvest": 0}])) == 500
    assert _status(lambda: fa.fa_model_invest_divest(2, "Tech", [{"account": "U7654321", "amtToInvest": 5}])) == 400
    assert _status(lambda: fa.fa_model_invest_divest(2, "Nope", [{"account": SUB1, "amtToInvest": 5}])) == 400
    assert _status(lambda: fa.fa_model_submit_transfers(3, -1)) == 500
    percent = [{"conid": AAPL, "target": 50}, {"conid": IBM, "target": 50}]  # 0-100 values are refused
    assert _status(lambda: fa.fa_model_save(1, "P", "p", True, NO_CASH, percent)) == 400
    assert _status(lambda: fa.fa_model_save(1, "P", "p", True, NO_CASH, [{"conid": AAPL, "target": 0.6}])) == 400
    assert _status(lambda: fa.fa_model_save(1, "P", "p", True, NO_CASH, [{"conid": 1, "target": 1.0}])) == 400
    _invest(fa, [{"account": SUB1, "amtToInvest": 1000}])
    assert _status(lambda: fa.fa_model_save(1, "Tech", "now static", True, CASH, STOCKS)) == 400
    fa.fa_model_save(
        1, "Tech", "rebalanced", False, [{"ccy": "USD", "target": 0.2}], STOCKS[:1] + [{"conid": IBM, "target": 0.3}]
    )
    assert fa.fa_model_summary(4, "Tech").data["desc"] == "rebalanced"
    status, body = raw_request(fa_sim, "POST", "/v1/api/fa/model/list", {})
    assert status == 400 and "reqID" in body["error"]


def test_presets(fa: IbkrClient, fa_sim: Simulator) -> None:
    presets = fa.fa_preset_get(127)
    presets.parsed()
    assert presets.data["reqID"] == 127 and presets.data["closeDivestIndependentPosition"] is True
    saved = fa.fa_preset_save(51, keep_model_open=True, use_tolerance_range=True)
    saved.parsed()
    assert saved.data["success"] is True and saved.data["reqID"] == 51
    after = fa.fa_preset_get(1).data
    assert after["keepModelOpen"] is True and after["useToleranceRange"] is True
    assert after["preferTransferFromIndependent"] is True
    status, _ = raw_request(fa_sim, "POST", "/v1/api/fa/fa-preset/save", {"reqID": 1, "keepModelOpen": "yes"})
    assert status == 400
