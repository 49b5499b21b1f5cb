"""FYI notifications: unread number, listing and paging, marking read, subscriptions, disclaimers, delivery options."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import Clock, raw_request


def _unread(api: IbkrClient) -> int:
    result = api.fyi_unread_count()
    result.parsed()
    count: int = result.data["BN"]
    return count


def test_marking_a_notification_read_lowers_the_unread_number(api: IbkrClient, clock: Clock) -> None:
    assert _unread(api) == 4
    listed = api.fyi_notifications(10)
    listed.parsed()
    notes = listed.data
    assert len(notes) == 6 and sum(1 for n in notes if n["R"] == 0) == 4
    stamps = [float(n["D"]) for n in notes]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] < clock()  # newest first, all in the past
    first = notes[0]
    assert len(first["ID"]) == 16 and first["ID"].startswith(time.strftime("%Y%m%d", time.gmtime(stamps[0])))
    assert first["R"] == 0 and first["FC"] == "EA" and first["MS"] and first["MD"].startswith("<html>")
    acknowledged = api.mark_fyi_notification_read(first["ID"])
    acknowledged.parsed()
    assert acknowledged.data["V"] == 1 and acknowledged.data["P"] == {"ID": first["ID"], "R": 1}
    assert _unread(api) == 3
    assert api.fyi_notifications(1).data[0]["R"] == 1
    api.mark_fyi_notification_read(first["ID"])  # again: still read, the number does not drop twice
    assert _unread(api) == 3
    with pytest.raises(ExternalBrokerError) as caught:
        api.mark_fyi_notification_read("1697040000123")
    assert caught.value.status_code == 400


def test_paging_and_type_filters(api: IbkrClient) -> None:
    everything = [n["ID"] for n in api.fyi_notifications(10).data]
    first = [n["ID"] for n in api.fyi_notifications(2).data]
    second = [n["ID"] for n in api.fyi_notifications(2, last_id=first[-1]).data]
    rest = [n["ID"] for n in api.fyi_notifications(10, last_id=second[-1]).data]
    assert first + second + rest == everything and len(rest) == 2
    assert api.fyi_notifications(5, last_id=everything[-1]).data == []
    assert {n["FC"] for n in api.fyi_notifications(10, include=["EA", "OE"]).data} == {"EA", "OE"}
    without = api.fyi_notifications(10, exclude="SM").data
    assert len(without) == 5 and all(n["FC"] != "SM" for n in without)
    assert len(api.fyi_notifications(50).data) == 6  # IBKR sends at most 10 at a time; there are 6
    with pytest.raises(ExternalBrokerError):
        api.fyi_notifications(10, last_id="1697040000123")


def test_switching_a_type_off_hides_its_notifications(api: IbkrClient, sim: Simulator) -> None:
    settings = api.fyi_settings()
    settings.parsed()
    by_code = {s["FC"]: s for s in settings.data}
    assert len(by_code) == 23 and by_code["EA"]["A"] == 1 and by_code["EA"]["FN"] == "Upcoming Earnings"
    assert "A" not in by_code["SM"]  # system messages cannot be switched off
    edited = api.modify_fyi_setting("EA", False)
    edited.parsed()
    assert edited.data == {"V": 1, "T": 10}
    assert {s["FC"]: s for s in api.fyi_settings().data}["EA"]["A"] == 0
    assert _unread(api) == 3 and all(n["FC"] != "EA" for n in api.fyi_notifications(10).data)
    api.modify_fyi_setting("EA", True)
    assert _unread(api) == 4 and api.fyi_notifications(10).data[0]["FC"] == "EA"
    with pytest.raises(ExternalBrokerError) as caught:
        api.modify_fyi_setting("SM", False)
    assert caught.value.status_code == 400
    status, body = raw_request(sim, "POST", "/v1/api/fyi/settings/ZZ", {"enabled": True})
    assert status == 400 and "ZZ" in body["error"]


def test_disclaimers_are_read_once(api: IbkrClient) -> None:
    ba = api.fyi_disclaimer("BA")
    ba.parsed()
    assert ba.data["FC"] == "BA" and "borrow" in ba.data["DT"]
    assert api.fyi_disclaimer("M8").data["DT"] != ba.data["DT"]
    assert {s["FC"]: s for s in api.fyi_settings().data}["BA"]["H"] == 0
    marked = api.mark_fyi_disclaimer_read("BA")
    marked.parsed()
    assert marked.data["V"] == 1
    assert {s["FC"]: s["H"] for s in api.fyi_settings().data}["BA"] == 1


def test_delivery_options_email_and_devices(api: IbkrClient) -> None:
    options = api.fyi_delivery_options()
    options.parsed()
    assert options.data == {"E": [], "M": 1}
    assert api.set_fyi_email_delivery(False).data == {"V": 1, "T": 10}
    assert api.fyi_delivery_options().data["M"] == 0
    device = "apn://mtws@SDFSDFDSFS123123DSFSDF"
    api.set_fyi_device_delivery(device, True, device_name="iPhone")
    assert api.fyi_delivery_options().data["E"] == [{"NM": "iPhone", "I": device, "UI": device, "A": 1}]
    api.set_fyi_device_delivery(device, False)
    assert api.fyi_delivery_options().data["E"] == [{"NM": "iPhone", "I": device, "UI": device, "A": 0}]
    assert api.delete_fyi_device(device).data is None  # an empty 200
    assert api.fyi_delivery_options().data == {"E": [], "M": 0}
    with pytest.raises(ExternalBrokerError) as caught:
        api.delete_fyi_device(device)
    assert caught.value.status_code == 400


def test_each_simulator_has_its_own_notifications(clock: Clock, client_for: Callable[..., IbkrClient]) -> None:
    with Simulator(clock=clock) as one, Simulator(clock=clock) as two:
        first, second = client_for(one), client_for(two)
        for note in first.fyi_notifications(10).data:
            first.mark_fyi_notification_read(note["ID"])
        assert _unread(first) == 0 and _unread(second) == 4
        assert [n["ID"] for n in first.fyi_notifications(10).data] == [
            n["ID"] for n in second.fyi_notifications(10).data
        ]
