"""Transport, TLS and session hygiene (issue 13): CA bundles from the environment, resets after sending, TLS
defaults without process-wide warning filters, settings checked at construction, dot segments in paths, close(),
and logging. Every request goes to a simulator (or a closed port) on 127.0.0.1."""

from __future__ import annotations

import logging
import math
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import urllib3

from ibkr_sdk import (
    ApiConnectionError,
    ClientClosedError,
    ExternalBrokerError,
    IbkrClient,
    IbkrError,
    RequestValidationError,
)
from ibkr_sdk._endpoint_table import ENDPOINTS
from ibkr_sdk.lib.transport import Transport
from ibkr_sdk.lib.wire import PreparedCall
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, IBM

ORDER = {"conid": AAPL, "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture
def https_sim() -> Iterator[Simulator]:
    with Simulator(https=True) as s:
        yield s


@pytest.fixture
def clients() -> Iterator[Callable[..., IbkrClient]]:
    made: list[IbkrClient] = []

    def build(simulator: Simulator, **options: Any) -> IbkrClient:
        settings: dict[str, Any] = {"url": simulator.url, "account_id": ACCOUNT, "timeout": 5, "max_retries": 0}
        settings["pacing"] = False
        settings.update(options)
        client = IbkrClient(**settings)
        client._transport.retry_backoff = 0.01  # retries in tests: no need to wait half a second
        made.append(client)
        return client

    yield build
    for c in made:
        c.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- 1. CA bundle from the environment --------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_ca_bundle_from_the_environment_is_used(
    variable: str, https_sim: Simulator, clients: Callable[..., IbkrClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv(variable, https_sim.cacert)
    client = clients(https_sim, cacert=True)
    assert client.portfolio_accounts().data[0]["id"] == ACCOUNT
    assert [r.path for r in https_sim.requests] == ["/portfolio/accounts"]


def test_an_explicit_cacert_path_beats_the_environment(
    https_sim: Simulator, clients: Callable[..., IbkrClient], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(empty))
    assert clients(https_sim, cacert=https_sim.cacert).portfolio_accounts().data[0]["id"] == ACCOUNT


# -- 2. What reached the server ---------------------------------------------------------------------------------


def test_a_reset_mid_answer_is_retried_for_a_safe_request(sim: Simulator, clients: Callable[..., IbkrClient]) -> None:
    sim.inject("portfolio_accounts", "truncate")
    client = clients(sim, max_retries=1)
    assert client.portfolio_accounts().data[0]["id"] == ACCOUNT
    assert [(r.path, r.fault) for r in sim.requests] == [
        ("/portfolio/accounts", "truncate"),
        ("/portfolio/accounts", None),
    ]


def test_a_reset_mid_answer_of_an_unsafe_request_is_maybe_sent(
    sim: Simulator, clients: Callable[..., IbkrClient]
) -> None:
    client = clients(sim, max_retries=3)
    sim.inject("logout", "truncate")
    with pytest.raises(ApiConnectionError) as caught:
        client.logout()
    assert caught.value.maybe_sent is True
    assert "after the request was sent" in str(caught.value) and "could not be sent" not in str(caught.value)
    assert [r.path for r in sim.requests] == ["/logout"], "an unsafe request is never re-sent"


def test_a_dropped_connection_without_answer_is_maybe_sent(sim: Simulator, clients: Callable[..., IbkrClient]) -> None:
    client = clients(sim)
    sim.inject("logout", "reset", after=True)
    with pytest.raises(ApiConnectionError) as caught:
        client.logout()
    assert caught.value.maybe_sent is True
    assert len(sim.requests) == 1


@pytest.mark.parametrize("url", ["127.0.0.1:5000/v1/api", "ftp://127.0.0.1/v1/api"])
def test_a_url_without_http_scheme_fails_as_not_sent(url: str) -> None:
    transport = Transport(url, max_retries=0)
    try:
        with pytest.raises(ApiConnectionError) as caught:
            transport.send(PreparedCall("POST", "/iserver/account/DU1/orders", {}, {"orders": []}), retry_safe=False)
    finally:
        transport.close()
    assert caught.value.maybe_sent is False
    assert "Nothing was sent" in str(caught.value)


def test_a_body_that_is_not_json_fails_as_not_sent(sim: Simulator) -> None:
    transport = Transport(sim.url, max_retries=0)
    try:
        with pytest.raises(ApiConnectionError) as caught:
            transport.send(
                PreparedCall("POST", "/iserver/account/DU1/orders", {}, {"price": math.nan}), retry_safe=False
            )
    finally:
        transport.close()
    assert caught.value.maybe_sent is False
    assert sim.requests == []


def test_a_nan_in_a_request_body_fails_as_not_sent(sim: Simulator, clients: Callable[..., IbkrClient]) -> None:
    client = clients(sim)
    with pytest.raises(ApiConnectionError) as caught:
        client.create_alert({"alertName": "x", "conditions": [{"value": math.nan}]})
    assert caught.value.maybe_sent is False and "InvalidJSONError" in str(caught.value)
    assert sim.requests == []


def test_a_failed_tls_handshake_is_not_sent_and_no_order_is_looked_for(
    https_sim: Simulator,
    clients: Callable[..., IbkrClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = clients(https_sim, cacert=True, auto_preflight=False)  # the system store does not know the simulator
    with caplog.at_level(logging.DEBUG, logger="ibkr_sdk"), pytest.raises(ApiConnectionError) as caught:
        client.place_order(dict(ORDER), answers={})
    assert caught.value.maybe_sent is False
    assert f"TLS handshake with 127.0.0.1:{https_sim.port} failed" in str(caught.value)
    tried = [r.getMessage() for r in caplog.records if r.getMessage().startswith("-> ")]
    assert not [t for t in tried if "/iserver/account/orders" in t], "no polling for an order that cannot exist"
    assert https_sim.requests == [] and https_sim.orders == []


def test_connection_refused_names_the_address() -> None:
    port = _free_port()
    with IbkrClient(url=f"http://127.0.0.1:{port}/v1/api/", max_retries=0, pacing=False) as client:
        with pytest.raises(ApiConnectionError) as caught:
            client.tickle()
    assert caught.value.maybe_sent is False
    assert f"127.0.0.1:{port}" in str(caught.value)


# -- 3. TLS defaults and warnings -------------------------------------------------------------------------------


def test_default_tls_is_off_for_loopback_on_for_other_hosts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="ibkr_sdk"):
        local = IbkrClient(url="https://localhost:5000/v1/api/", pacing=False)
        remote = IbkrClient(url="https://gateway.example.com:5000/v1/api/", pacing=False)
    try:
        assert local._transport.session.verify is False
        assert remote._transport.session.verify not in (False, None)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        local.close()
        remote.close()


def test_explicit_false_for_a_remote_host_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ibkr_sdk"):
        client = IbkrClient(url="https://gateway.example.com:5000/v1/api/", cacert=False, pacing=False)
        client.close()
    assert client._transport.session.verify is False
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "verification is off for gateway.example.com" in warned[0]


def test_plain_http_to_a_remote_host_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ibkr_sdk"):
        IbkrClient(url="http://gateway.example.com:5000/v1/api/", pacing=False).close()
        IbkrClient(url="http://127.0.0.1:5000/v1/api/", pacing=False).close()
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "unencrypted" in warned[0] and "gateway.example.com" in warned[0]


def test_unverified_tls_warning_is_silenced_for_this_client_only(
    https_sim: Simulator, clients: Callable[..., IbkrClient]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", urllib3.exceptions.InsecureRequestWarning)
        filters = list(warnings.filters)
        client = clients(https_sim, cacert=False)
        assert client.portfolio_accounts().data[0]["id"] == ACCOUNT  # no warning raised as an error
        client.close()
        assert warnings.filters == filters, "the process's warning filters are untouched"
        with pytest.raises(urllib3.exceptions.InsecureRequestWarning):
            requests.get(https_sim.url + "portfolio/accounts", verify=False, timeout=5)


# -- 4. Settings checked at construction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"cacert": "/nonexistent/ca.pem"}, ValueError, "'cacert'"),
        ({"cacert": 123}, TypeError, "'cacert'"),
        ({"timeout": -1}, ValueError, "'timeout'"),
        ({"timeout": 0}, ValueError, "'timeout'"),
        ({"timeout": "10"}, TypeError, "'timeout'"),
        ({"timeout": math.nan}, ValueError, "'timeout'"),
        ({"max_retries": -1}, ValueError, "'max_retries'"),
        ({"max_retries": 1.5}, TypeError, "'max_retries'"),
        ({"url": "localhost:5000/v1/api/"}, ValueError, "'url'"),
        ({"url": "ftp://localhost/v1/api/"}, ValueError, "'url'"),
    ],
)
def test_bad_settings_fail_at_construction(options: dict[str, Any], error: type[Exception], words: str) -> None:
    settings: dict[str, Any] = {"url": "https://localhost:5000/v1/api/", "pacing": False}
    settings.update(options)
    with pytest.raises(error, match=words):
        IbkrClient(**settings)


def test_good_settings_are_accepted(https_sim: Simulator) -> None:
    with IbkrClient(url=https_sim.url, cacert=https_sim.cacert, timeout=(2, 5), max_retries=0, pacing=False) as c:
        assert c.portfolio_accounts().data[0]["id"] == ACCOUNT


# -- 5. Path parameters -----------------------------------------------------------------------------------------


def _path_cases() -> list[tuple[str, str, str]]:
    cases = []
    for spec in ENDPOINTS.values():
        for p in spec.params:
            if p.location == "path" and p.type == "str":
                cases += [(spec.name, p.name, "."), (spec.name, p.name, "..")]
    return cases


def _dummy(p: Any) -> Any:
    """A value the parameter accepts, so the refusal can only come from the parameter under test."""
    if p.enum:
        return p.enum[0]
    if p.pattern:  # an id form (conid, account id, ...)
        return next(v for v in ("1", "DU1234567") if re.fullmatch(p.pattern, v))
    if p.type == "array" and p.items == "object":
        return [{}]
    return {"int": 1, "bool": True, "object": {}, "array": ["1"], "datetime": "20260101-00:00:00"}.get(p.type, "1")


def test_the_fuzz_covers_every_string_path_parameter() -> None:
    assert len(_path_cases()) >= 66


@pytest.mark.parametrize(("endpoint", "param", "value"), _path_cases())
def test_dot_segments_in_path_parameters_are_refused(
    endpoint: str, param: str, value: str, sim: Simulator, clients: Callable[..., IbkrClient]
) -> None:
    spec = ENDPOINTS[endpoint]
    client = clients(sim, auto_preflight=False)
    args = {p.name: _dummy(p) for p in spec.params if p.location == "path" or p.required}
    args[param] = value
    with pytest.raises(RequestValidationError) as caught:
        client._call(spec, args)
    assert caught.value.param == param
    checked = next(p for p in spec.params if p.name == param)
    if checked.enum is None and checked.pattern is None:  # otherwise the enum or the pattern refuses it first
        assert "change the path" in str(caught.value)
    assert sim.requests == []


def test_other_path_values_stay_in_their_segment(sim: Simulator, clients: Callable[..., IbkrClient]) -> None:
    client = clients(sim, auto_preflight=False)
    for value in ["../..", "a/b", ".%2e", "?x=1", "#f", "a\tb"]:  # refused: they could leave their segment
        with pytest.raises(RequestValidationError) as caught:
            client.search_dynamic_account(search_pattern=value)
        assert caught.value.param == "search_pattern"
    assert sim.requests == []
    for value in ["..;", "a b", "...", "DU 1"]:  # free text that cannot: sent percent-encoded in its segment
        client.search_dynamic_account(search_pattern=value)
    for record in sim.requests:
        assert record.path.startswith("/iserver/account/search/") and "/" not in record.path[24:], record.path
    assert len(sim.requests) == 4


def test_a_separator_inside_one_list_element_is_refused(sim: Simulator, clients: Callable[..., IbkrClient]) -> None:
    client = clients(sim)
    with pytest.raises(RequestValidationError) as caught:
        client.live_marketdata_snapshot(conids=[f"{AAPL},{IBM}"], fields=["31"])
    assert caught.value.param == "conids"
    assert sim.requests == []
    assert client.live_marketdata_snapshot(conids=[AAPL, IBM], fields=["31"]).data is not None


# -- 7. close() -------------------------------------------------------------------------------------------------


def test_a_closed_client_sends_nothing(sim: Simulator, clients: Callable[..., IbkrClient]) -> None:
    client = clients(sim)
    client.tickle()
    client.close()
    client.close()  # idempotent
    for call in (client.tickle, client.portfolio_accounts, client.start_tickler, lambda: client.account_summary()):
        with pytest.raises(ClientClosedError, match="closed"):
            call()
    assert len(sim.requests) == 1


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("ibkr_sdk")}


def test_close_cuts_a_tickle_in_flight_and_ends_the_tickler(sim: Simulator, clients: Callable[..., IbkrClient]) -> None:
    before = _threads()
    client = clients(sim, timeout=10, max_retries=3)
    client.tickler_interval = 0.05
    sim.inject("tickle", "stall", times=None)
    client.start_tickler()
    deadline = time.monotonic() + 5
    while not sim.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.fault for r in sim.requests] == ["stall"]
    closed_at = time.monotonic()
    client.close()
    while _threads() - before and time.monotonic() < closed_at + 1:
        time.sleep(0.01)
    assert not _threads() - before, "no thread of the client outlives close() by more than a second"
    time.sleep(0.3)
    assert len(sim.requests) == 1, "the tickle in flight is not retried after close()"
    with pytest.raises(ClientClosedError):
        client.start_tickler()


def test_close_cuts_a_request_in_flight_in_another_thread(sim: Simulator, clients: Callable[..., IbkrClient]) -> None:
    client = clients(sim, timeout=10, max_retries=3)
    sim.inject("portfolio_accounts", "stall", times=None)
    caught: list[BaseException] = []

    def call() -> None:
        try:
            client.portfolio_accounts()
        except BaseException as exc:
            caught.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while not sim.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    client.close()
    worker.join(1.0)
    assert not worker.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], ClientClosedError) and caught[0].maybe_sent is True
    assert len(sim.requests) == 1


# -- 8. Logging -------------------------------------------------------------------------------------------------


def test_no_log_output_without_logging_configured() -> None:
    code = (
        "from ibkr_sdk import IbkrClient\n"
        "IbkrClient(url='https://gateway.example.com:5000/v1/api/', cacert=False, pacing=False).close()\n"
        "IbkrClient(url='http://gateway.example.com:5000/v1/api/', pacing=False).close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_masked_accounts_in_errors_and_reconciliation_warnings(
    sim: Simulator, clients: Callable[..., IbkrClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = clients(sim, mask_account_ids=True)
    sim.inject("account_summary", "status", 500, body={"error": f"account {ACCOUNT} is unavailable"})
    with pytest.raises(ExternalBrokerError) as caught:
        client.account_summary()
    assert ACCOUNT not in str(caught.value) and "DU****567" in str(caught.value)
    sim.inject("place_order", "reset", after=True)
    with caplog.at_level(logging.DEBUG, logger="ibkr_sdk"):
        try:
            client.place_order(dict(ORDER), answers=_approve_all())
        except IbkrError as exc:  # found or not, the text must be masked
            assert ACCOUNT not in str(exc)
    assert "looking for it among the live orders" in caplog.text
    assert ACCOUNT not in caplog.text


def _approve_all() -> Any:
    from ibkr_sdk import QuestionType

    return {q: True for q in QuestionType}


def test_debug_lines_show_request_bodies_masked(
    sim: Simulator, clients: Callable[..., IbkrClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = clients(sim, mask_account_ids=True)
    with caplog.at_level(logging.DEBUG, logger="ibkr_sdk"):
        client.switch_account(ACCOUNT)
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("-> POST")]
    assert sent and '"acctId": "DU****567"' in sent[0], sent
    assert ACCOUNT not in caplog.text


def test_the_cli_reports_a_bad_cacert_without_a_traceback(
    sim: Simulator, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from ibkr_sdk.lib import cli

    missing = str(tmp_path / "missing.pem")
    assert cli.main(["--url", sim.url, "--cacert", missing, "call", "tickle"]) == 2
    err = capsys.readouterr().err
    assert "'cacert'" in err and missing in err and "Traceback" not in err
    assert sim.requests == []
