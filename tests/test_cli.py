"""The `ibkr-sdk` command line (`ibkr_sdk.lib.cli`), mostly in-process against the gateway simulator."""

from __future__ import annotations

import datetime
import inspect
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ibkr_sdk import IbkrClient
from ibkr_sdk._cli_help import HELP
from ibkr_sdk._endpoint_table import ENDPOINTS
from ibkr_sdk.lib import cli
from ibkr_sdk.lib.wire import prepare
from ibkr_sdk.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "DU1234567"
MSFT = 272093  # no snapshot requested in a fresh simulator: placing an order asks o354 (no market data)
ENV_NAMES = [f"{prefix}{name}" for prefix in ("IBKR_SDK_", "IBIND_") for name in ("REST_URL", "ACCOUNT_ID", "CACERT")]
ENV_NAMES += ["IBKR_SDK_USE_OAUTH", "IBIND_USE_OAUTH"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def call(capsys: pytest.CaptureFixture[str], sim: Simulator, *argv: str) -> tuple[int, str, str]:
    return run(capsys, "--url", sim.url, "--account", ACCOUNT, "call", *argv)


def _msft_limit_order() -> dict[str, Any]:
    # A limit far above MSFT's price (about 420 in the simulator): o163 (price far from the last) on top of o354.
    return {"conid": MSFT, "side": "BUY", "orderType": "LMT", "price": 1000.0, "quantity": 1, "tif": "DAY"}


# --- calls through the simulator -------------------------------------------------------------------------------


def test_read_endpoint_prints_compact_json_when_piped(capsys: pytest.CaptureFixture[str], sim: Simulator) -> None:
    code, out, err = call(capsys, sim, "authentication_status")
    assert (code, err) == (0, "")
    assert json.loads(out)["authenticated"] is True
    assert out.count("\n") == 1 and '": ' not in out, "compact: one line, no spaces after separators"


def test_pretty_output_on_a_terminal_or_on_request(
    capsys: pytest.CaptureFixture[str], sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = call(capsys, sim, "authentication_status", "--pretty")
    assert code == 0 and out.startswith("{\n  ") and json.loads(out)["connected"] is True
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli.main(["--url", sim.url, "call", "authentication_status"]) == 0
    assert capsys.readouterr().out.startswith("{\n  ")
    assert cli.main(["--url", sim.url, "call", "authentication_status", "--compact"]) == 0
    assert "\n  " not in capsys.readouterr().out


def test_list_arguments_as_comma_list_and_repeated_flag(capsys: pytest.CaptureFixture[str], sim: Simulator) -> None:
    code, out, err = call(capsys, sim, "live_marketdata_snapshot", "--conids", "265598,8314", "--fields", "31")
    code2, _, _ = call(capsys, sim, "live-marketdata-snapshot", "--conids", "265598", "--conids=8314", "--fields", "84")
    assert (code, code2, err) == (0, 0, "")
    assert {row["conid"] for row in json.loads(out)} == {265598, 8314}
    sent = [r.query for r in sim.requests if r.endpoint == "live_marketdata_snapshot"]
    assert sent == [{"conids": "265598,8314", "fields": "31"}, {"conids": "265598,8314", "fields": "84"}]


def test_account_fill_and_connection_from_the_environment(
    capsys: pytest.CaptureFixture[str], sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IBKR_SDK_REST_URL", sim.url)
    monkeypatch.setenv("IBKR_SDK_ACCOUNT_ID", ACCOUNT)
    code, out, _ = run(capsys, "call", "account_summary")
    assert code == 0 and "balance" in json.loads(out)
    monkeypatch.delenv("IBKR_SDK_REST_URL")
    monkeypatch.setenv("IBIND_REST_URL", sim.url)  # the peer's name is the fallback, as in the library
    code, _, _ = run(capsys, "call", "account_summary", "--account-id", ACCOUNT)
    assert code == 0
    paths = [r.path for r in sim.requests if r.endpoint == "account_summary"]
    assert paths == [f"/iserver/account/{ACCOUNT}/summary"] * 2


def test_order_with_answers_is_placed(capsys: pytest.CaptureFixture[str], sim: Simulator) -> None:
    order = json.dumps(_msft_limit_order())
    code, out, err = call(
        capsys, sim, "place_order", "--order-request", order, "--answer", "MISSING_MARKET_DATA", "--answer", "o163=yes"
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["order_id"]  # one order: its acknowledgement, as in the peer
    replies = [r.body for r in sim.requests if r.path.startswith("/iserver/reply/")]
    assert replies == [{"confirmed": True}, {"confirmed": True}]


def test_order_from_a_file_with_an_answer_phrase(
    capsys: pytest.CaptureFixture[str], sim: Simulator, tmp_path: Path
) -> None:
    ticket = tmp_path / "order.json"
    ticket.write_text(json.dumps([_msft_limit_order()]))
    code, out, _ = call(
        capsys, sim, "place_order", "--order-request", f"@{ticket}", "--answer", "without market data", "--answer=o163"
    )
    assert code == 0 and json.loads(out)[0]["order_id"]


@pytest.mark.parametrize("answers", [[], ["o354=no"], ["MISSING_MARKET_DATA=false"]])
def test_unapproved_question_fails_with_exit_1(
    capsys: pytest.CaptureFixture[str], sim: Simulator, answers: list[str]
) -> None:
    order = json.dumps({"conid": MSFT, "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"})
    flags = [arg for answer in answers for arg in ("--answer", answer)]
    code, out, err = call(capsys, sim, "place_order", "--order-request", order, *flags)
    assert (code, out) == (1, "")
    assert "OrderQuestionError" in err and "o354" in err and "Traceback" not in err
    assert [r.body for r in sim.requests if r.path.startswith("/iserver/reply/")] == [{"confirmed": False}]


def test_failed_request_exits_1_with_the_message(capsys: pytest.CaptureFixture[str], sim: Simulator) -> None:
    sim.inject("account_summary", "status", 400, body={"error": "account DU1234567 is not ready"})
    code, out, err = call(capsys, sim, "account_summary")
    assert (code, out) == (1, "")
    assert err.startswith("ibkr-sdk: ExternalBrokerError:") and "HTTP 400" in err
    assert "account DU1234567 is not ready" in err and "Traceback" not in err


def test_overlay_returning_several_results(capsys: pytest.CaptureFixture[str], sim: Simulator) -> None:
    assert call(capsys, sim, "live_marketdata_snapshot", "--conids", "265598,8314", "--fields", "31")[0] == 0
    code, out, _ = call(capsys, sim, "marketdata_unsubscribe", "--conids", "265598", "--conids", "8314")
    assert code == 0 and len(json.loads(out)) == 2


def test_stock_queries_as_symbols_and_json(capsys: pytest.CaptureFixture[str], sim: Simulator) -> None:
    query = json.dumps({"symbol": "AAPL", "contract_conditions": {"exchange": "NASDAQ"}})
    code, out, _ = call(capsys, sim, "security_stocks_by_symbol", "--queries", query, "--queries", "MSFT")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"AAPL", "MSFT"}
    assert {c["exchange"] for i in data["AAPL"] for c in i["contracts"]} == {"NASDAQ"}


# --- bad input: exit 2, the message names the parameter, nothing is sent ---------------------------------------

BAD_INPUT = [
    (["order_status"], "order_status(): parameter 'order_id' is required: pass --order-id"),
    (["large_portfolio_subaccounts", "--page", "two"], "parameter 'page' must be an integer, got 'two'"),
    (["live_orders", "--force", "maybe"], "parameter 'force' must be true or false"),
    (["live_orders", "--filters", "submitted,bogus"], "live_orders(): parameter 'filters' must be one of"),
    (["marketdata_history_by_conid", "--conid", "265598", "--bar", "1d", "--start-time", "2024-01-01"], "'start_time'"),
    (["place_order", "--order-request", "{oops"], "place_order(): parameter 'order_request' must be JSON"),
    (["place_order", "--order-request", "@/nonexistent/order.json"], "parameter 'order_request' cannot be read"),
    (
        ["place_order", "--order-request", '{"conid": 1, "side": "BUY", "orderType": "MKT", "tif": "DAY"}'],
        "parameter 'order_request' is invalid: the order quantity must be a number above 0",
    ),
    (
        [
            "place_order",
            "--order-request",
            '{"conid": 1, "side": "BUY", "orderType": "MKT", "quantity": 1}',
            "--answer",
            "o163=perhaps",
        ],
        "parameter '--answer' takes KEY or KEY=yes|no",
    ),
    (["modify_order", "--order-id", "1", "--order-request", "[]"], "parameter 'order_request' must be a JSON object"),
    (["security_stocks_by_symbol", "--queries", '{"sym": "AAPL"}'], "parameter 'queries'"),
    (["live_orders", "--nope", "1"], "unrecognized arguments: --nope"),
    (["live_order"], "unknown method 'live_order'; did you mean live_orders"),
    (["oauth_live_session_token"], "oauth_live_session_token has no command"),
    ([], "a method is required"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_exits_2_naming_the_parameter(
    capsys: pytest.CaptureFixture[str], sim: Simulator, argv: list[str], message: str
) -> None:
    code, out, err = call(capsys, sim, *argv)
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert sim.requests == [], "nothing is sent for bad input"


def test_bad_environment_setting_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IBKR_SDK_USE_OAUTH", "perhaps")
    code, _, err = run(capsys, "call", "tickle")
    assert code == 2 and "IBKR_SDK_USE_OAUTH" in err


# --- help ------------------------------------------------------------------------------------------------------


def test_call_help_lists_the_callable_methods_by_area(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "call", "--help")
    assert code == 0
    assert "Orders:" in out and "Market data:" in out
    listed = set(re.findall(r"^  ([a-z0-9_]+) ", out, re.MULTILINE))
    assert listed == {name for name in HELP if cli.cli_params(name) is not None}
    assert "oauth_live_session_token" not in listed and "place_order" in listed


def test_method_help_comes_from_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "call", "live_orders", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert HELP["live_orders"].summary in text
    assert "--filters TEXT" in text and "One of: inactive, pending_submit" in text
    assert "endpoint: GET /iserver/account/orders" in text
    assert "pacing: live_orders (1 per 5 s)" in text and "retry: safe" in text
    assert "model: ibkr_sdk.models.order.LiveOrdersResponse" in text
    code, out, _ = run(capsys, "call", "place_order", "--help")
    text = " ".join(out.split())
    assert "--order-request JSON" in text and "--answer ANSWER" in text and "(required)" in text
    assert "retry: unsafe" in text


def test_every_method_has_a_parser_and_documented_options() -> None:
    for name in ENDPOINTS:
        params = cli.cli_params(name)
        if params is None:
            continue
        for param in params:
            assert param.doc, f"{name}: --{param.name} has no help text"
        assert f"ibkr-sdk call {name}" in cli._method_parser(name, params).format_help()


def test_overlay_options_match_the_hand_written_signatures() -> None:
    for name, info in HELP.items():
        if not info.overlay:
            continue
        method = getattr(IbkrClient, name, None)
        if method is None:
            assert cli.cli_params(name) is None, f"{name} has no public method, so no command"
            continue
        assert name in cli.OVERLAY_PARAMS, f"the overlay {name} needs its options in cli.OVERLAY_PARAMS"
        wanted = [p for p in inspect.signature(method).parameters if p != "self"]
        assert [p.name for p in cli.OVERLAY_PARAMS[name]] == wanted


# --- conversion: every catalogue example, given as text, produces the example's request -------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y%m%d-%H:%M:%S")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _argv(name: str, call_args: dict[str, Any]) -> list[str]:
    argv = [name]
    params = {p.name: p for p in cli.cli_params(name) or ()}
    for key, value in call_args.items():
        param = params[key]
        if param.repeat and isinstance(value, list):
            argv += [param.flags[0], ",".join(_as_text(v) for v in value)]
        else:
            argv += [param.flags[0], _as_text(value)]
    return argv


@pytest.mark.parametrize("name", [n for n in ENDPOINTS if not HELP[n].overlay])
def test_catalogue_examples_convert_to_the_same_request(name: str, catalogue: Any) -> None:
    spec = ENDPOINTS[name]
    endpoint = next(e for e in catalogue.endpoints if e.name == name)
    defaults = {p.name: p.default for p in endpoint.params if p.default is not None}  # the method's defaults
    for example in endpoint.examples:
        parsed_name, kwargs, _ = cli.parse_call(_argv(name, example.call))
        assert parsed_name == name
        got = prepare(spec, {**defaults, **kwargs}, ACCOUNT)
        assert got == prepare(spec, {**defaults, **example.call}, ACCOUNT), example.call


# --- the installed entry points --------------------------------------------------------------------------------


def _python(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=600, env=env, check=False, **kwargs
    )


def test_module_entry_point_and_cheap_import() -> None:
    proc = _python("-m", "ibkr_sdk.lib.cli", "call", "--help")
    assert proc.returncode == 0 and "live_orders" in proc.stdout
    code = (
        "import sys, ibkr_sdk; before = set(sys.modules); import ibkr_sdk.lib.cli; "
        "print(sorted(m for m in set(sys.modules) - before if m != 'ibkr_sdk.lib.cli'))"
    )
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", "importing the CLI loads nothing beyond ibkr_sdk"


def test_simulate_serves_until_interrupted(capsys: pytest.CaptureFixture[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibkr_sdk.lib.cli", "simulate", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Ctrl-C must reach it even when this test runs under a shell that ignores SIGINT in background jobs (the
        # child would inherit that and never see the signal).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        # HTTPS by default, as the gateway: a client with the default settings (no cacert) reaches it.
        match = re.search(r"(https://127\.0\.0\.1:\d+/v1/api/)", first)
        assert match, first
        code, out, _ = run(capsys, "--url", match.group(1), "call", "receive_brokerage_accounts")
        assert code == 0 and json.loads(out)["accounts"] == [ACCOUNT]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)  # a hang bound: stopping takes well under a second, but minutes on a starved machine
    assert proc.returncode == 0


def test_simulator_command_serves_what_the_default_client_expects() -> None:
    from ibkr_sdk.simulator.__main__ import _parser

    default_client = IbkrClient()
    try:
        assert default_client.base_url == "https://127.0.0.1:5000/v1/api/"
    finally:
        default_client.close()
    options = _parser().parse_args([])
    assert options.https is True and options.port == 5000
    assert _parser().parse_args(["--http"]).https is False
    assert _parser().parse_args(["--https"]).https is True


def test_simulator_command_can_act_as_an_advisor() -> None:
    # The peer's FA allocation example assumes an advisor's login: `--advisor` gives one from the shell.
    from ibkr_sdk.simulator.__main__ import _parser, _simulator

    assert _simulator(_parser().parse_args(["--port", "0"])).accounts == [ACCOUNT]
    with _simulator(_parser().parse_args(["--advisor", "--http", "--port", "0"])) as sim:
        assert sim.accounts == ["DF1234560", ACCOUNT, "DU1234568"]
        with IbkrClient(url=sim.url) as client:
            answer = client.fa_model_list(req_id=1).data
        assert answer["masterAccount"] == "DF1234560" and answer["reqID"] == 1
        assert [r.path for r in sim.requests] == ["/fa/model/list"]
    with _simulator(_parser().parse_args(["--advisor", "--accounts", "DF7654320,DU7654321", "--port", "0"])) as sim:
        assert sim.accounts == ["DF7654320", "DU7654321"] and sim.https


def test_demo_runs_the_workflow_offline() -> None:
    proc = _python("-m", "ibkr_sdk.lib.cli", "demo")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for heading in ("Authentication status", "Conids by StockQuery", "Bracket order", "Live orders", "Logout"):
        assert f"== {heading}" in out, heading
    assert "AAPL   265598" in out
    assert "round trips (order + replies): 2" in out and "round trips with auto_suppress: 1" in out
    assert "status now: Cancelled" in out and "0 answered 429" in out
