"""What a new user meets following the README literally (issue 21, item 6), each against the simulator on loopback.

The README's command-line block runs as written (only `--url` added, since the test's simulator has a free port);
errors name the method and parameter the user wrote; a TLS client meeting plain HTTP is told so; path parameters
are checked before anything is sent; streaming says why it did not start and leaves no thread behind.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ibkr_sdk import ApiConnectionError, ExternalBrokerError, IbkrClient, IbkrWsClient, RequestValidationError
from ibkr_sdk.lib import cli, pacing
from ibkr_sdk.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "DU1234567"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(https=True) as sim:  # as the command line serves it
        sim.streaming.md_interval = 0.05
        sim.streaming.pnl_interval = 0.05
        yield sim


@pytest.fixture
def client(sim: Simulator) -> Iterator[IbkrClient]:
    with IbkrClient(url=sim.url, account_id=ACCOUNT, max_retries=0, pacing=False) as c:
        yield c


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _readme_commands() -> list[list[str]]:
    """The `ibkr-sdk` lines of the README's command-line block, continuations joined, comments dropped."""
    block = re.search(r"```sh\n(.*?)```", _readme_section("Command line"), re.S)
    assert block, "the Command line section has a sh block"
    commands = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "ibkr-sdk":
            commands.append([w for w in words[1:] if w != "&"])
    return commands


# --- the README ------------------------------------------------------------------------------------------------


def test_readme_command_line_examples_run_as_written(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    commands = _readme_commands()
    names = {c[c.index("call") + 1] if "call" in c else c[0] for c in commands}
    assert {"simulate", "live_marketdata_snapshot", "place_order", "stream", "demo"} <= names
    streams = [c[c.index("stream") + 1] for c in commands if "stream" in c]
    assert {"md", "orders", "pnl"} <= set(streams), "stream knows quotes, orders and P&L"
    for args in commands:
        if args[0] in ("simulate", "demo"):
            continue  # the simulator is this test's own; the demo has its own test (test_cli.py)
        capsys.readouterr()
        status = cli.main(["--url", sim.url, *args])
        out, err = capsys.readouterr()
        assert status == 0, (args, err)
        if "--help" not in args:
            assert out.strip(), args
        if args[-2:] == ["--count", "5"]:
            quotes = [json.loads(line) for line in out.splitlines()]
            assert {q["conid"] for q in quotes} <= {"8314", "265598"}, "AAPL is looked up as conid 265598"
        if "place_order" in args:
            assert json.loads(out)["order_status"] in ("Submitted", "PreSubmitted", "Filled")
        if "orders" in args:
            assert json.loads(out.splitlines()[0])["orderId"]
    placed = [r for r in sim.requests if r.endpoint == "place_order"]
    assert len(placed) == 1 and placed[0].path == f"/iserver/account/{ACCOUNT}/orders"


def test_cli_question_error_names_the_answer_option(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    order = '{"conid": 265598, "side": "BUY", "orderType": "LMT", "price": 150, "quantity": 1, "tif": "DAY"}'
    status = cli.main(["--url", sim.url, "--account", ACCOUNT, "call", "place_order", "--order-request", order])
    err = capsys.readouterr().err
    assert status == 1
    assert "--answer o354" in err and "`answers`" not in err


def test_cli_without_an_account_says_which_option_gives_one(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    order = '{"conid": 265598, "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"}'
    status = cli.main(["--url", sim.url, "call", "place_order", "--order-request", order])
    err = capsys.readouterr().err
    assert status == 2 and "--account ID" in err and "account_id" in err
    assert not [r for r in sim.requests if r.endpoint == "place_order"]


def test_readme_first_snippet_waits_for_prices() -> None:
    start = _readme_section("Getting started")
    assert "client.snapshot_until_ready(" in start and "pre-flight" in start
    assert callable(IbkrClient.snapshot_until_ready)


# --- error texts ---------------------------------------------------------------------------------------------------


def test_plain_http_answering_tls_is_named() -> None:
    with Simulator() as plain:  # plain HTTP, the client asks for TLS
        with IbkrClient(url=plain.url.replace("http:", "https:"), max_retries=0, pacing=False) as c:
            with pytest.raises(ApiConnectionError) as info:
                c.tickle()
    text = str(info.value)
    assert "answered in plain HTTP" in text and "http://" in text
    assert "is the gateway running" not in text
    assert info.value.maybe_sent is False


def test_errors_of_generated_methods_name_the_method(client: IbkrClient) -> None:
    with pytest.raises(ExternalBrokerError) as info:
        client.portfolio_summary(account_id="DU7777777")
    assert str(info.value).startswith("portfolio_summary(): failed (GET /portfolio/DU7777777/summary, HTTP 400)")
    assert info.value.sdk_method == "portfolio_summary"


def test_argument_errors_name_the_client_and_suggest_the_parameter(client: IbkrClient) -> None:
    with pytest.raises(TypeError) as info:
        client.live_marketdata_snapshot(conid="265598", fields=["31"])  # type: ignore[call-arg]
    text = str(info.value)
    assert text.startswith("IbkrClient.live_marketdata_snapshot() got an unexpected keyword argument 'conid'")
    assert text.endswith("Did you mean 'conids'?")
    with pytest.raises(TypeError, match=r"^IbkrClient\.place_order\(\) missing 1 required positional argument"):
        client.place_order({"conid": 265598})  # type: ignore[call-arg]
    # An error raised inside a method is not touched.
    with pytest.raises(RequestValidationError, match="conids"):
        client.live_marketdata_snapshot(conids=[], fields=["31"])


def test_bad_port_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"IbkrClient\(\): parameter 'port' must be a port number"):
        IbkrClient(port="abc")
    with pytest.raises(ValueError, match="parameter 'url' has a port"):
        IbkrClient(url="https://127.0.0.1:abc/v1/api/")


@pytest.mark.parametrize(
    ("call", "param", "problem"),
    [
        (lambda c: c.order_status(order_id="../../portfolio/accounts"), "order_id", "IBKR order id"),
        (lambda c: c.order_status(order_id="12/34"), "order_id", "IBKR order id"),
        (lambda c: c.contract_information_by_conid(conid="AAPL"), "conid", "contract id"),
        (lambda c: c.portfolio_summary(account_id="DU1234567/../x"), "account_id", "IBKR account id"),
        (lambda c: c.cancel_order(order_id="..", account_id=ACCOUNT), "order_id", "-1 for every open order"),
        (lambda c: c.cancel_order(order_id="1", account_id="Group/1"), "account_id", "'/'"),
        (lambda c: c.reply(reply_id="a%2Fb", confirmed=True), "reply_id", "'%'"),
        (lambda c: c.reply(reply_id="a?b", confirmed=True), "reply_id", "'?'"),
        (lambda c: c.reply(reply_id="a#b", confirmed=True), "reply_id", "'#'"),
        (lambda c: c.reply(reply_id="..", confirmed=True), "reply_id", "change the path"),
        (lambda c: c.search_dynamic_account(search_pattern="DU\n1"), "search_pattern", "control character"),
        (lambda c: c.delete_fyi_device(device_id="apn://x/.."), "device_id", None),  # opaque: '/' allowed
    ],
)
def test_path_parameters_are_checked_before_sending(
    client: IbkrClient, sim: Simulator, call: object, param: str, problem: str | None
) -> None:
    if problem is None:
        with pytest.raises(ExternalBrokerError, match="no device"):  # sent (the simulator knows no such device)
            call(client)  # type: ignore[operator]
        assert sim.requests[-1].path == "/fyi/deliveryoptions/apn%3A%2F%2Fx%2F.."
        return
    with pytest.raises(RequestValidationError) as info:
        call(client)  # type: ignore[operator]
    assert info.value.param == param and problem in str(info.value)
    assert not sim.requests, "nothing was sent"


def test_a_long_preflight_pacing_wait_is_announced_before_it(
    sim: Simulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ibkr_sdk._endpoint_table import GLOBAL_LIMITS, PACING_BUCKETS

    # IBKR's real limits on a clock that moves only when the pacer waits: the 5 s wait is certain and instant.
    now = [1000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limit = GLOBAL_LIMITS["gateway"]
    shared = pacing.Pacer(PACING_BUCKETS, limit, clock=lambda: now[0], sleep=sleep)
    key = (urlsplit(sim.url).netloc.lower(), limit.name, 1.0, "process", "this process", None)
    monkeypatch.setitem(pacing._SHARED, key, shared)
    clients = [IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="process") for _ in range(2)]
    try:
        with caplog.at_level(logging.DEBUG, logger="ibkr_sdk"):
            # /portfolio/accounts (1 per 5 s) by one client, then as the other's preflight (the first did not run it
            # as a preflight, so no marker in the coordination store spares the second one).
            clients[0].portfolio_accounts()
            clients[1].portfolio_summary()
    finally:
        for c in clients:
            c.close()
    messages = [r.getMessage() for r in caplog.records]
    held = [i for i, m in enumerate(messages) if m.startswith("pacing holds a portfolio_accounts request")]
    assert len(held) == 1 and "the portfolio_accounts limit of 1 per 5 s" in messages[held[0]]
    sent = [i for i, m in enumerate(messages) if m.startswith("-> GET /portfolio/accounts")]
    assert len(sent) == 2 and sent[0] < held[0] < sent[1], "said before the held request was sent"
    assert len([r for r in sim.requests if r.endpoint == "portfolio_accounts"]) == 2


# --- streaming -----------------------------------------------------------------------------------------------------


def test_start_without_websockets_fails_at_once_with_the_extra() -> None:
    code = (
        "import sys, threading; sys.modules['websockets'] = None\n"
        "from ibkr_sdk import IbkrClient, IbkrWsClient\n"
        "ws = IbkrWsClient(ibkr_client=IbkrClient(url='http://127.0.0.1:9/v1/api/'))\n"
        "try:\n    ws.start()\nexcept ModuleNotFoundError as exc:\n    print(exc)\n"
        "print(threading.active_count())\n"
        "from ibkr_sdk.lib.cli import main\n"
        "print(main(['--url', 'http://127.0.0.1:9/v1/api/', 'stream', 'md', '265598']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'ibkr-cpapi-sdk[stream]'" in lines[0] and lines[0].startswith("IbkrWsClient.start()")
    assert lines[1] == "1", "no thread was started"
    assert lines[2] == "1" and "pip install 'ibkr-cpapi-sdk[stream]'" in proc.stderr


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """`check` became true within `timeout` (a busy machine may run the client's loop late)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _ws_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ibkr-ws")]


def test_start_says_the_gateway_is_down_and_shutdown_leaves_no_thread(caplog: pytest.LogCaptureFixture) -> None:
    with Simulator() as gone:
        url = gone.url  # a port nothing listens on once it stopped
    with IbkrClient(url=url, max_retries=3) as rest:
        ws = IbkrWsClient(ibkr_client=rest, connect_timeout=0.5)
        with caplog.at_level(logging.DEBUG, logger="ibkr_sdk"):
            assert ws.start() is False
            assert _eventually(lambda: "is the gateway running?" in (ws.last_failure or "")), ws.last_failure
            assert ws.shutdown() is True
            assert not _ws_threads()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert any("IbkrWsClient.start(): no ready session within 0.5 s" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if "/tickle" in r.getMessage()], "no /tickle to a port nobody listens on"


def test_start_says_the_session_is_not_authenticated() -> None:
    with Simulator() as sim, IbkrClient(url=sim.url, pacing=False) as rest:
        sim.logout()  # a person must log in again: nobody can re-open the session
        ws = IbkrWsClient(ibkr_client=rest, connect_timeout=0.5)
        try:
            assert ws.start() is False
            assert _eventually(lambda: "not authenticated" in (ws.last_failure or "")), ws.last_failure
            assert "log in" in (ws.last_failure or "")
        finally:
            assert ws.shutdown() is True
        assert ws.last_failure is None
    # Logged in, brokerage session closed, and the client told not to re-open it: the socket says so.
    with Simulator(authenticated=False) as sim, IbkrClient(url=sim.url, auto_reauthenticate=False) as rest:
        ws = IbkrWsClient(ibkr_client=rest, connect_timeout=0.5)
        try:
            assert ws.start() is False
            assert _eventually(lambda: "reports the session closed" in (ws.last_failure or "")), ws.last_failure
        finally:
            assert ws.shutdown() is True
