"""Arguments are judged by what they mean, not by their Python type: a value taken from one answer can be passed to
the next call (a float strike, a digit string for a day count, a status as the order shows it)."""

from __future__ import annotations

import json

import pytest

from ibkr_sdk import IbkrClient, RequestValidationError
from tests.recording_server import RecordingServer


def test_a_float_strike_is_sent_as_its_text(client: IbkrClient, recorder: RecordingServer) -> None:
    client.search_secdef_info_by_conid(conid=265598, sec_type="OPT", month="JAN27", strike=210.0, right="C")
    [sent] = recorder.sent("GET", "/iserver/secdef/info")
    assert sent.query["strike"] == "210.0" and sent.query["conid"] == "265598"


def test_a_digit_string_for_an_integer_is_sent_as_a_number(client: IbkrClient, recorder: RecordingServer) -> None:
    client.transaction_history(account_ids="DU1234567", conids="8314", currency="USD", days="30")  # type: ignore[arg-type]
    [sent] = recorder.sent("POST", "/pa/transactions")
    assert json.loads(sent.raw_body)["days"] == 30


def test_a_whole_float_for_an_integer_is_sent_as_an_integer(client: IbkrClient, recorder: RecordingServer) -> None:
    client.transaction_history(account_ids="DU1234567", conids="8314", currency="USD", days=30.0)  # type: ignore[arg-type]
    [sent] = recorder.sent("POST", "/pa/transactions")
    body = json.loads(sent.raw_body)
    assert body["days"] == 30 and isinstance(body["days"], int)


@pytest.mark.parametrize("bad", [True, "30 days", 30.5, float("inf"), ["30"], {"days": 30}])
def test_values_that_mean_no_integer_are_refused(client: IbkrClient, recorder: RecordingServer, bad: object) -> None:
    with pytest.raises(RequestValidationError, match=r"transaction_history\(\): parameter 'days'"):
        client.transaction_history(account_ids="DU1234567", conids="8314", currency="USD", days=bad)  # type: ignore[arg-type]
    assert recorder.requests == []


def test_order_states_as_the_status_field_shows_them(client: IbkrClient, recorder: RecordingServer) -> None:
    client.live_orders(filters=["Submitted", "PreSubmitted", "Filled"])
    [sent] = recorder.sent("GET", "/iserver/account/orders")
    assert sent.query["filters"] == "submitted,pre_submitted,filled"


def test_an_unknown_enum_value_is_still_refused(client: IbkrClient, recorder: RecordingServer) -> None:
    with pytest.raises(RequestValidationError, match="filters"):
        client.live_orders(filters=["Sleeping"])
    assert recorder.requests == []


@pytest.mark.parametrize("bad", [True, float("nan"), ["210"]])
def test_a_string_parameter_refuses_bools_and_containers(
    client: IbkrClient, recorder: RecordingServer, bad: object
) -> None:
    with pytest.raises(RequestValidationError, match="strike"):
        client.search_secdef_info_by_conid(conid=265598, sec_type="OPT", month="JAN27", strike=bad, right="C")  # type: ignore[arg-type]
    assert recorder.requests == []
