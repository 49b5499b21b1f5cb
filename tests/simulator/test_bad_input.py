"""Inputs a fuzzer found crashing the simulator (schemathesis over docs/openapi.json) answer like the gateway.

Each case was a 500 "simulator error" (a handler exception) before; now a valid request is answered and an invalid
one gets an IBKR-style 400 `{"error": ...}`. tests/test_openapi_fuzz.py runs the fuzzer itself.
"""

from __future__ import annotations

import http.client
from typing import Any

import pytest

from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, raw_request


@pytest.mark.parametrize("bar", ["25h", "1440min", "86400S", "2880min"])
def test_history_bars_of_a_day_or_more_in_hours_minutes_or_seconds_are_daily_bars(bar: str) -> None:
    with Simulator() as sim:
        raw_request(sim, "GET", "/v1/api/iserver/accounts")
        status, body = raw_request(sim, "GET", f"/v1/api/iserver/marketdata/history?conid={AAPL}&bar={bar}&period=1m")
        assert status == 200, body
        days = {"25h": 1, "1440min": 1, "86400S": 1, "2880min": 2}[bar]
        assert body["barLength"] == days * 86400
        assert len(body["data"]) == (21 + days - 1) // days
        status, body = raw_request(sim, "GET", f"/v1/api/hmds/history?conid={AAPL}&bar={bar}&period=1w")
        while status == 404 and "connecting" in body["error"]:  # the farm connects on the first request
            status, body = raw_request(sim, "GET", f"/v1/api/hmds/history?conid={AAPL}&bar={bar}&period=1w")
        assert status == 200, body


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/api/iserver/scanner/run", {"instrument": {}, "type": "TOP_PERC_GAIN", "location": "STK.US.MAJOR"}),
        ("/v1/api/iserver/scanner/run", {"instrument": "STK", "type": [], "location": {}}),
        (
            "/v1/api/iserver/scanner/run",
            {
                "instrument": "STK",
                "type": "TOP_PERC_GAIN",
                "location": "STK.US.MAJOR",
                "filter": [{"code": {}, "value": 1}],
            },
        ),
        ("/v1/api/hmds/scanner", {"instrument": [], "scanCode": {}, "locations": {}, "filters": []}),
    ],
)
def test_scanner_with_objects_where_names_belong_is_a_400(path: str, body: Any) -> None:
    with Simulator() as sim:
        raw_request(sim, "GET", "/v1/api/iserver/accounts")
        status, answer = raw_request(sim, "POST", path, body)
        assert status == 400, answer
        assert answer["error"].startswith("Bad Request")


def test_deleting_a_device_answers_an_empty_200_that_is_not_json() -> None:
    with Simulator() as sim:
        status, _ = raw_request(
            sim,
            "POST",
            "/v1/api/fyi/deliveryoptions/device",
            {"deviceId": "dev1", "deviceName": "phone", "uiName": "ui", "enabled": True},
        )
        assert status == 200
        conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
        try:
            conn.request("DELETE", "/v1/api/fyi/deliveryoptions/dev1")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"")
            assert not resp.getheader("Content-Type", "").startswith("application/json")
        finally:
            conn.close()
