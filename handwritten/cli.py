"""`ibkr-sdk`: the command line of ibkr_sdk (`python -m ibkr_sdk.lib.cli` until the console script is installed).

    ibkr-sdk call METHOD [--param VALUE ...]   call one endpoint of the catalogue and print its answer as JSON
    ibkr-sdk call --help                       list the methods; `ibkr-sdk call METHOD --help` documents one
    ibkr-sdk simulate [--port 5000 ...]        serve the embedded gateway simulator until Ctrl-C
    ibkr-sdk demo [--url URL --account ID]     run the example trading workflow (offline against the simulator)

`call` is driven by the generated tables: parameters, types and wire rules come from `ibkr_sdk._endpoint_table`, help
texts from `ibkr_sdk._cli_help`. Methods whose public form is hand-written (`place_order`, `modify_order`, ...) take
the hand-written signature described in `OVERLAY_PARAMS` below. Text arguments are converted to the parameter's type
(numbers, `true`/`false`/`yes`/`no`/`1`/`0`, `YYYYMMDD-HH:MM:SS`, JSON for objects and arrays, `@FILE` to read JSON
from a file); one-or-many parameters take a comma list and may be repeated.

Connection settings come from `--url`, `--account`, `--cacert` and `--timeout`, or else from the same environment
variables as `IbkrClient` (`IBKR_SDK_REST_URL`, `IBKR_SDK_ACCOUNT_ID`, `IBKR_SDK_CACERT`, `IBKR_SDK_USE_OAUTH`, with
the `IBIND_*` names as a fallback): the client reads them itself.

Exit status: 0 success; 2 bad arguments (argparse's errors and `RequestValidationError`, which names the method and
the parameter); 1 the request failed (the error's message on stderr, no traceback).

Importing this module loads nothing beyond `ibkr_sdk` itself: parsers and help texts are built, and argparse, the
simulator and the overlays' helpers imported, only when a command runs.
"""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import IbkrError, RequestValidationError

if TYPE_CHECKING:
    import argparse

    from .client import IbkrClient
    from .endpoint import EndpointSpec

PROG = "ibkr-sdk"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_SEPARATORS = {"comma": ",", "semicolon": ";"}
_METAVARS = {
    "str": "TEXT",
    "int": "INT",
    "float": "NUMBER",
    "bool": "BOOL",
    "datetime": "YYYYMMDD-HH:MM:SS",
    "object": "JSON",
    "array": "JSON",
    "any": "JSON",
    "json": "JSON",
    "answers": "ANSWER",
    "queries": "QUERY",
}


@dataclass(frozen=True)
class CliParam:
    """One command-line option of a method: `--<name>` (dashes or underscores) unless `flag` says otherwise.

    `type` is a catalogue type, or `json` (any JSON value), `answers` (order question answers) or `queries`
    (stock queries) for the hand-written methods. `repeat` lets the option be given several times, each value a
    list split at `separator`. `absent` makes the value passed when the option is not given (else the keyword is
    left out and the method's default applies).
    """

    name: str
    type: str
    required: bool
    doc: str
    repeat: bool = False
    separator: str = ","
    items: str | None = None
    flag: str | None = None
    absent: Callable[[], Any] | None = None

    @property
    def flags(self) -> list[str]:
        if self.flag:
            return [f"--{self.flag}"]
        dashed = "--" + self.name.replace("_", "-")
        return [dashed] if "_" not in self.name else [dashed, f"--{self.name}"]


_ANSWERS_DOC = (
    "Approve (or decline) one of IBKR's confirmation questions: KEY or KEY=yes|no, where KEY is a QuestionType name "
    "(MISSING_MARKET_DATA), a message id (o163) or a phrase of the question text. Repeat for several questions; a "
    "question nobody approved is declined and the command fails."
)
_ACCOUNT_DOC = "Account to use; the default account (--account, IBKR_SDK_ACCOUNT_ID) when omitted."

# The public methods that are hand-written around a generated raw request take their own arguments. Every catalogue
# entry marked `overlay: true` that has a public method must appear here (a test checks this against the signatures).
OVERLAY_PARAMS: dict[str, tuple[CliParam, ...]] = {
    # The public methods add only the peer's `log` flag: client-side logging, nothing is sent.
    "authentication_status": (
        CliParam("log", "bool", False, "Also log the status flags at INFO on the ibkr_sdk logger (default true)."),
    ),
    "tickle": (CliParam("log", "bool", False, "Also log the status flags at INFO on the ibkr_sdk logger."),),
    "create_sso_session": (),  # OAuth 2.0: the session JWT is signed from the client's OAuth2Config
    "place_order": (
        CliParam(
            "order_request",
            "json",
            True,
            "The order as JSON with IBKR's fields (conid, side, orderType, quantity, price, tif, ...), or a JSON "
            "list of orders for a bracket or OCA group; @FILE reads it from a file, @- from standard input. An "
            "order without cOID gets a unique one.",
        ),
        CliParam("answers", "answers", False, _ANSWERS_DOC, repeat=True, flag="answer", absent=dict),
        CliParam("account_id", "str", False, _ACCOUNT_DOC),
    ),
    "modify_order": (
        CliParam("order_id", "str", True, "The order to change, as listed by live_orders."),
        CliParam(
            "order_request",
            "object",
            True,
            "The complete order ticket as a JSON object with the changed values; @FILE reads it from a file.",
        ),
        CliParam("answers", "answers", False, _ANSWERS_DOC, repeat=True, flag="answer", absent=dict),
        CliParam("account_id", "str", False, _ACCOUNT_DOC),
    ),
    "cancel_order": (
        CliParam("order_id", "str", True, "IBKR order id to cancel, or -1 for all open orders."),
        CliParam("account_id", "str", False, _ACCOUNT_DOC),
    ),
    "whatif_order": (
        CliParam("order_request", "json", True, "The order to preview, as a JSON object; @FILE reads it from a file."),
        CliParam("account_id", "str", False, _ACCOUNT_DOC, absent=lambda: None),
    ),
    "security_stocks_by_symbol": (
        CliParam(
            "queries",
            "queries",
            True,
            "Symbols (a comma list, repeatable), or a JSON StockQuery object such as "
            '{"symbol": "AAPL", "contract_conditions": {"exchange": "NASDAQ"}}, or a JSON list of either.',
            repeat=True,
        ),
        CliParam(
            "default_filtering",
            "bool",
            False,
            "Keep only US listings unless a query sets its own contract_conditions (default true).",
        ),
    ),
    "marketdata_unsubscribe": (
        CliParam(
            "conids", "str", True, "Contracts whose market data stream to close (a comma list, repeatable).", True
        ),
    ),
}

_OVERLAY_DOCS = {
    "place_order": "Checks the order, then answers IBKR's confirmation questions from --answer until it is placed.",
    "modify_order": "Sends the full changed ticket and answers IBKR's confirmation questions from --answer.",
    "whatif_order": "Checks the order and previews its commission and margin impact; nothing is placed.",
    "security_stocks_by_symbol": "Looks the symbols up and keeps the instruments and listings each query asks for.",
    "marketdata_unsubscribe": "Sends one unsubscribe request per conid and prints the answers as a list.",
}


# --- conversion of argument text -----------------------------------------------------------------------------------


def _invalid(method: str, param: CliParam, problem: str) -> RequestValidationError:
    # An option spelled unlike its parameter (--answer for answers) is named as typed.
    return RequestValidationError(method, f"--{param.flag}" if param.flag else param.name, problem)


def _read_json(method: str, param: CliParam, text: str) -> Any:
    source = "the argument"
    if text.startswith("@"):
        path = text[1:]
        source = "standard input" if path == "-" else f"file {path!r}"
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
        except OSError as exc:
            raise _invalid(method, param, f"cannot be read from {source}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(
            method, param, f"must be JSON ({source}: {exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None


def _scalar(method: str, param: CliParam, kind: str, text: str) -> Any:
    """Convert one argument text to `kind`; refuse it with the library's error naming method and parameter."""
    if kind in ("str", "datetime"):
        return text  # the library checks patterns, enums and the datetime format
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise _invalid(method, param, f"must be an integer, got {text!r}") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise _invalid(method, param, f"must be a number, got {text!r}") from None
    if kind == "bool":
        value = _BOOLEANS.get(text.strip().lower())
        if value is None:
            raise _invalid(method, param, f"must be true or false (yes/no, 1/0), got {text!r}")
        return value
    if kind == "object":
        value = _read_json(method, param, text)
        if not isinstance(value, dict):
            raise _invalid(method, param, f"must be a JSON object, got {type(value).__name__}")
        return value
    if kind == "array":
        if not text.lstrip().startswith(("[", "@")) and param.items in ("str", "int", "float"):
            return [_scalar(method, param, param.items, item) for item in _split(text, ",")]
        value = _read_json(method, param, text)
        if not isinstance(value, list):
            raise _invalid(method, param, f"must be a JSON array, got {type(value).__name__}")
        return value
    if kind == "json":
        return _read_json(method, param, text)
    if kind == "any":
        try:
            return _read_json(method, param, text)
        except RequestValidationError:
            if text.startswith("@"):
                raise
            return text  # not JSON: send the text as it is
    raise AssertionError(f"no conversion for type {kind!r}")


def _split(text: str, separator: str) -> list[str]:
    return [item.strip() for item in text.split(separator) if item.strip()]


def _answers(method: str, param: CliParam, texts: Sequence[str]) -> dict[Any, bool]:
    from .orders import QuestionType

    answers: dict[Any, bool] = {}
    for text in texts:
        key, sep, word = text.rpartition("=")
        if not sep:
            key, accept = text, True
        else:
            value = _BOOLEANS.get(word.strip().lower())
            if value is None:
                raise _invalid(method, param, f"takes KEY or KEY=yes|no, got {text!r}")
            accept = value
        key = key.strip()
        if not key:
            raise _invalid(method, param, f"needs a question type, message id or phrase, got {text!r}")
        member = QuestionType.__members__.get(key.upper())
        answers[member if member is not None else key] = accept
    return answers


def _queries(method: str, param: CliParam, texts: Sequence[str]) -> list[Any]:
    from .stock_query import StockQuery

    def one(item: Any) -> Any:
        if isinstance(item, str) and item.strip():
            return item.strip()
        if isinstance(item, dict):
            try:
                return StockQuery(**item)
            except TypeError as exc:
                raise _invalid(method, param, f"has a query with a field StockQuery does not know: {exc}") from None
        raise _invalid(method, param, f"must hold symbols or JSON query objects, got {item!r}")

    queries: list[Any] = []
    for text in texts:
        if text.lstrip().startswith(("{", "[", "@")):
            value = _read_json(method, param, text)
            queries.extend(one(v) for v in (value if isinstance(value, list) else [value]))
        else:
            queries.extend(_split(text, ","))
    return queries


def convert(method: str, param: CliParam, raw: Any) -> Any:
    """The value of one parsed option (a string, or a list of strings for repeatable options) for the method."""
    if param.type == "answers":
        return _answers(method, param, raw)
    if param.type == "queries":
        return _queries(method, param, raw)
    if param.repeat:
        # A comma list always works; semicolon-joined parameters also take their own separator.
        texts = [part for text in raw for part in text.split(param.separator)]
        return [_scalar(method, param, param.type, item) for text in texts for item in _split(text, ",")]
    return _scalar(method, param, param.type, raw)


# --- the method table -------------------------------------------------------------------------------------------


def cli_params(name: str) -> tuple[CliParam, ...] | None:
    """The options of `ibkr-sdk call <name>`; None when the endpoint has no public method (the client sends it)."""
    from .._cli_help import HELP
    from .._endpoint_table import ENDPOINTS

    if name in OVERLAY_PARAMS:
        return OVERLAY_PARAMS[name]
    if HELP[name].overlay:
        return None
    docs = HELP[name].params
    return tuple(
        CliParam(
            p.name,
            p.type,
            p.required,
            docs.get(p.name, ""),
            repeat=p.many is not None,
            separator=_SEPARATORS.get(p.many or "", ","),
            items=p.items,
        )
        for p in ENDPOINTS[name].params
    )


def _resolve_method(name: str) -> str:
    from .._endpoint_table import ENDPOINTS

    candidate = name.strip().replace("-", "_")
    if candidate in ENDPOINTS:
        return candidate
    import difflib

    close = difflib.get_close_matches(candidate, list(ENDPOINTS), n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise _UsageError(f"unknown method {name!r}{hint} (`{PROG} call --help` lists them)")


class _UsageError(Exception):
    """Bad command-line usage outside one parameter (exit status 2)."""


# --- parsers ------------------------------------------------------------------------------------------------------


def _width() -> int:
    import shutil

    return max(40, min(shutil.get_terminal_size().columns, 100) - 2)


def _fill(text: str, width: int, indent: str = "") -> str:
    """Wrap prose paragraphs to `width`; list items keep their own lines with a hanging indent."""
    out = []
    for para in text.strip().split("\n\n"):
        lines = []
        for line in para.splitlines() if "\n" in para else [para]:
            bullet = line.lstrip().startswith(("- ", "* "))
            lines.append(
                textwrap.fill(
                    " ".join(line.split()),
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent + ("  " if bullet else ""),
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _add_connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """Connection and output options: before `call` (defaults None) and after the method (absent unless given)."""
    group = parser.add_argument_group("connection (else from the environment, as IbkrClient does)")
    group.add_argument(
        "--url",
        default=default,
        help="base URL of the API, e.g. https://localhost:5000/v1/api/ (IBKR_SDK_REST_URL or IBIND_REST_URL)",
    )
    group.add_argument(
        "--account", default=default, help="default account id (IBKR_SDK_ACCOUNT_ID or IBIND_ACCOUNT_ID)"
    )
    group.add_argument(
        "--cacert",
        default=default,
        metavar="PATH",
        help="CA bundle to verify the server with, or true/false (IBKR_SDK_CACERT; default false: self-signed)",
    )
    group.add_argument("--timeout", type=float, default=default, metavar="SECONDS", help="seconds per answer (10)")
    output = parser.add_argument_group("output")
    mode = output.add_mutually_exclusive_group()
    mode.add_argument(
        "--pretty", dest="pretty", action="store_const", const=True, default=default, help="indented JSON"
    )
    mode.add_argument(
        "--compact",
        dest="pretty",
        action="store_const",
        const=False,
        default=default,
        help="JSON on one line (the default when the output is not a terminal)",
    )
    output.add_argument(
        "-v", "--verbose", action="store_const", const=True, default=default, help="log the requests to stderr"
    )


def _top_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Command line of ibkr_sdk, the SDK for the IBKR Client Portal Web API.",
        epilog=(
            "commands:\n"
            "  call METHOD [--param VALUE ...]  call one endpoint and print its answer as JSON\n"
            "                                   (`call --help` lists the methods, `call METHOD --help` explains one)\n"
            "  simulate [--port 5000 ...]       serve the embedded gateway simulator until Ctrl-C\n"
            "  demo [--url URL --account ID]    run the example trading workflow (offline unless --url is given)\n"
            "  stream md CONID|SYMBOL... [--fields 31,84,86 --seconds 10 --count N]\n"
            "  stream orders | stream pnl       stream quotes, order updates or P&L over the WebSocket (JSON lines)\n"
            "  coordination [--coordination local|process|redis://... --pacing-time-scale 1]\n"
            "                                   show the shared pacing windows and who holds the order flow\n"
            "\n"
            "exit status: 0 success, 2 bad arguments, 1 the request failed"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _add_connection_options(parser, None)
    parser.add_argument(
        "command",
        choices=("call", "simulate", "demo", "stream", "coordination"),
        metavar="COMMAND",
        help="call, simulate, demo, stream, coordination",
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _call_listing() -> str:
    from .._cli_help import AREAS, HELP

    width = _width()
    callable_names = [name for name in HELP if cli_params(name) is not None]
    column = max(len(name) for name in callable_names) + 4
    lines = [
        f"usage: {PROG} call METHOD [--param VALUE ...] [connection and output options]",
        "",
        "Call one endpoint of the catalogue and print its answer as JSON.",
        f"`{PROG} call METHOD --help` documents a method: its parameters, endpoint, pacing and retry safety.",
    ]
    for area, title in AREAS.items():
        names = [name for name in callable_names if HELP[name].area == area]
        if not names:
            continue
        lines += ["", f"{title}:"]
        for name in names:
            summary = textwrap.wrap(HELP[name].summary, max(30, width - column)) or [""]
            lines.append(f"  {name.ljust(column - 2)}{summary[0]}")
            lines += [" " * column + more for more in summary[1:]]
    return "\n".join(lines) + "\n"


def _pacing_text(spec: EndpointSpec) -> str:
    from .._endpoint_table import PACING_BUCKETS

    if spec.pacing is None:
        return "global limit only"
    bucket = PACING_BUCKETS[spec.pacing]
    limits = []
    if bucket.rate is not None and bucket.per is not None:
        limits.append(f"{bucket.rate} per {bucket.per:g} s")
    if bucket.concurrent is not None:
        limits.append(f"{bucket.concurrent} in flight")
    return f"{spec.pacing} ({', '.join(limits) or 'no limit'})"


def _method_parser(name: str, params: Sequence[CliParam]) -> argparse.ArgumentParser:
    import argparse

    from .._cli_help import HELP
    from .._endpoint_table import ENDPOINTS

    info = HELP[name]
    spec = ENDPOINTS[name]
    width = _width()
    description = [info.summary]
    if name in _OVERLAY_DOCS:
        description.append(_OVERLAY_DOCS[name])
    if info.doc:
        description.append(info.doc)
    facts = [
        f"endpoint:   {spec.http} {spec.path}",
        f"retry:      {'safe (retried after failures)' if spec.retry_safe else 'unsafe (never re-sent)'}",
        f"pacing:     {_pacing_text(spec)}",
    ]
    if spec.preflight:
        facts.append(f"preflight:  {', '.join(spec.preflight)} (called first, once)")
    if info.response_model:
        facts.append(f"model:      ibkr_sdk.models.{info.response_model}")
    facts.append(f"spec:       {spec.spec_file}")
    epilog = "\n".join(facts)
    if info.notes:
        epilog += "\n\nnotes:\n" + "\n".join(_fill(f"- {n}", width - 2, "  ") for n in info.notes)
    parser = argparse.ArgumentParser(
        prog=f"{PROG} call {name}",
        description="\n\n".join(_fill(text, width) for text in description),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    group = parser.add_argument_group(f"parameters of {name}")
    for param in params:
        help_text = param.doc + (" (required)" if param.required else "")
        kwargs: dict[str, Any] = {
            "dest": param.name,
            "default": None,
            "metavar": _METAVARS[param.type],
            "help": help_text.replace("%", "%%"),
        }
        if param.repeat:
            kwargs["action"] = "append"
        elif param.type == "bool":
            kwargs.update(nargs="?", const="true")  # a bare `--force` means true
        group.add_argument(*param.flags, **kwargs)
    _add_connection_options(parser, argparse.SUPPRESS)
    return parser


# --- running -------------------------------------------------------------------------------------------------------


def _parse_cacert(text: str | None) -> str | bool | None:
    if text is None:
        return None
    word = _BOOLEANS.get(text.strip().lower())
    return word if word is not None else text


def _client(options: argparse.Namespace) -> IbkrClient:
    from .client import IbkrClient

    kwargs: dict[str, Any] = {}
    if options.timeout is not None:
        kwargs["timeout"] = options.timeout
    return IbkrClient(account_id=options.account, url=options.url, cacert=_parse_cacert(options.cacert), **kwargs)


def _print_json(data: Any, pretty: bool | None) -> None:
    if pretty is None:
        pretty = sys.stdout.isatty()
    if pretty:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    else:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _verbose_logging() -> logging.Logger:
    log = logging.getLogger("ibkr_sdk")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    return log


def _merge(top: argparse.Namespace, method: argparse.Namespace) -> argparse.Namespace:
    """Connection and output options given after the method win over those given before `call`."""
    merged = type(top)(**vars(top))
    for key in ("url", "account", "cacert", "timeout", "pretty", "verbose"):
        if hasattr(method, key):
            setattr(merged, key, getattr(method, key))
    return merged


def parse_call(args: Sequence[str]) -> tuple[str, dict[str, Any], argparse.Namespace]:
    """`METHOD --param VALUE ...` -> the method name, its keyword arguments and the parsed options.

    Raises:
        RequestValidationError: an argument cannot be converted, or a required one is missing.
        SystemExit: argparse's exit after `--help` or a usage error (it printed the message).
    """
    if not args or args[0].startswith("-"):
        raise _UsageError(f"`call` takes the method first (`{PROG} call --help` lists the methods)")
    name = _resolve_method(args[0])
    params = cli_params(name)
    if params is None:
        raise _UsageError(
            f"{name} has no command: the client sends it itself (it is the raw request of a hand-written step, "
            "such as the OAuth handshake of IBKR_SDK_USE_OAUTH)"
        )
    parsed = _method_parser(name, params).parse_args(list(args[1:]))
    kwargs: dict[str, Any] = {}
    for param in params:
        raw = getattr(parsed, param.name)
        if raw is not None:
            kwargs[param.name] = convert(name, param, raw)
        elif param.required:
            raise RequestValidationError(name, param.name, f"is required: pass {param.flags[0]}")
        elif param.absent is not None:
            kwargs[param.name] = param.absent()
    return name, kwargs, parsed


def _call(top: argparse.Namespace, args: list[str]) -> int:
    if not args:
        sys.stderr.write(_call_listing())
        return _fail(f"{PROG} call: error: a method is required", EXIT_USAGE)
    if args[0] in ("-h", "--help"):
        sys.stdout.write(_call_listing())
        return EXIT_OK
    name, kwargs, parsed = parse_call(args)
    options = _merge(top, parsed)
    if options.verbose:
        _verbose_logging()
    with _client(options) as client:
        result = getattr(client, name)(**kwargs)
    data = [r.data for r in result] if isinstance(result, list) else result.data
    _print_json(data, options.pretty)
    return EXIT_OK


def _simulate(args: list[str]) -> int:
    from ..simulator.__main__ import main as simulator_main

    simulator_main(args)
    return EXIT_OK


def _demo(args: list[str]) -> int:
    from .workflow import main as workflow_main

    return workflow_main(args, prog=f"{PROG} demo")


def _stream(top: argparse.Namespace, args: list[str]) -> int:
    from .ws.cli import run

    if top.verbose:
        _verbose_logging()
    try:
        return run(lambda: _client(top), args, prog=f"{PROG} stream")
    except ModuleNotFoundError as exc:
        if exc.name != "websockets":
            raise
        return _fail(f"{PROG} stream: {exc}", EXIT_FAILED)


def _coordination(top: argparse.Namespace, args: list[str]) -> int:
    """Show the coordination backend, the pacing windows of the server and who holds the account's order flow."""
    import argparse

    from .coordination.report import describe
    from .env import env_bool, env_str

    parser = argparse.ArgumentParser(prog=f"{PROG} coordination", description=_coordination.__doc__)
    parser.add_argument(
        "--coordination",
        default=env_str("COORDINATION", "local"),
        help="local, process or a redis:// URL (IBKR_SDK_COORDINATION; default local)",
    )
    parser.add_argument(
        "--pacing-time-scale", type=float, default=1.0, metavar="SCALE", help="as the clients use it (default 1)"
    )
    options = parser.parse_args(args)
    url = top.url or env_str("REST_URL") or "https://127.0.0.1:5000/v1/api/"
    account = top.account or env_str("ACCOUNT_ID")
    report = describe(url, account, options.coordination, options.pacing_time_scale, env_bool("USE_OAUTH", False))
    _print_json(report, top.pretty)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 the request failed, 2 bad arguments)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        top = _top_parser().parse_args(args)
        commands: dict[str, Callable[[list[str]], int]] = {
            "call": lambda rest: _call(top, rest),
            "simulate": _simulate,
            "demo": _demo,
            "stream": lambda rest: _stream(top, rest),
            "coordination": lambda rest: _coordination(top, rest),
        }
        return commands[top.command](list(top.args))
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2, message printed); the simulator's failures
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        return _fail(exc.code, EXIT_FAILED)
    except _UsageError as exc:
        return _fail(f"{PROG} call: error: {exc}", EXIT_USAGE)
    except RequestValidationError as exc:
        return _fail(f"{PROG}: {_cli_wording(exc)}", EXIT_USAGE)
    except IbkrError as exc:
        return _fail(f"{PROG}: {type(exc).__name__}: {_cli_wording(exc)}", EXIT_FAILED)
    except ValueError as exc:  # settings from the environment, e.g. IBKR_SDK_USE_OAUTH=maybe
        return _fail(f"{PROG}: {exc}", EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail(f"{PROG}: interrupted", 130)


def _cli_wording(exc: IbkrError) -> str:
    """The library's message, with the command line's options where it names Python arguments."""
    from .errors import OrderQuestionError

    text = str(exc)
    if isinstance(exc, OrderQuestionError):
        key = exc.message_ids[0] if exc.message_ids else "PHRASE"
        return text.replace(exc.ACCEPT_HINT, f"To accept it, add `--answer {key}` (or its QuestionType name).")
    if isinstance(exc, RequestValidationError) and exc.param == "account_id" and "default account_id" in text:
        return text.replace(
            "pass it, or give the client a default account_id",
            "pass --account ID (the default account, before `call`) or set IBKR_SDK_ACCOUNT_ID",
        )
    return text


def _fail(message: object, status: int = EXIT_USAGE) -> int:
    print(message, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
