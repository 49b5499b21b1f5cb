"""`Simulator`: a real HTTP server on 127.0.0.1 that answers like IBKR's Client Portal Gateway.

Request flow: match the path against the catalogue's routes (404 for unknown paths, 405 for a known path with
another method) -> pacing (429, only with `pacing=True`) -> injected fault, if one is pending for the route ->
501 for catalogue endpoints the simulator does not model -> session checks (401 / no bridge / accounts first)
-> the endpoint's handler, under the state lock -> the configured latency -> one write of status line, headers
and body. Every request is logged in `Simulator.requests`.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from .._endpoint_table import ENDPOINTS, GLOBAL_LIMITS, PACING_BUCKETS
from .._streams import WS_PATH
from ..lib.endpoint import EndpointSpec, PacingBucket
from . import (  # noqa: F401  (register handlers)
    _account_mgmt,
    _accounts_extra,
    _alerts,
    _allocation,
    _analyst,
    _contracts,
    _forecast,
    _funds,
    _fyi,
    _gateway_extras,
    _marketdata,
    _models,
    _orders,
    _portfolio,
    _reference,
    _rules,
    _scanner,
    _session,
    _stream,
    _watchlists,
)
from ._book import SimOrder
from ._core import HANDLERS, GatewayError, SimRequest, SimResponse
from ._faults import ANY_ROUTE, FAULT_KINDS, Fault, FaultBook
from ._oauth import OAuthAuthority, OAuthRejected, OAuthSettings
from ._oauth2 import OAuth2Authority, OAuth2Refused, OAuth2Settings, problem, simulator_private_key_pem, unverified_body
from ._pacing import Pacer
from ._questions import QuestionRule, default_question_rules
from ._routes import RouteTable
from ._state import GatewayState, SessionEvent
from ._stream import WS_ROUTE, StreamSettings, WsFaultBook

logger = logging.getLogger("ibkr_sdk.simulator")

HOST = "127.0.0.1"
BASE_PATH = "/v1/api"
GW_BASE = "/gw/api/v1"  # IBKR's Account Management API, beside /v1/api on the same host
TOKEN_PATH = "/oauth2/api/v1/token"
_LOG_LIMIT = 10_000
_STALL_LIMIT = 3600.0
_HANDSHAKE_TIMEOUT = 10.0
TLS_CERT = "simulator-tls.crt"
TLS_KEY = "simulator-tls.key"
_JSON = "application/json;charset=utf-8"
ADVISOR_ACCOUNTS = ["DF1234560", "DU1234567", "DU1234568"]  # advisor=True: the advisor, then its sub-accounts


@dataclass(frozen=True)
class RequestRecord:
    """One request the simulator received."""

    method: str
    path: str  # below the base path, e.g. /iserver/accounts
    query: dict[str, str]
    body: Any  # the decoded JSON body, a SIGNED_JWT body's request members, or the raw text; None when empty
    endpoint: str | None  # catalogue endpoint name, None for unknown paths
    status: int | None  # HTTP status answered; None when the connection was closed without an answer
    fault: str | None  # the injected fault kind that applied, if any
    time: float  # simulated clock reading when it arrived
    headers: dict[str, str] = field(default_factory=dict)  # request headers, lower-case names
    received: float = 0.0  # time.monotonic() when it arrived (real time, also under a scaled clock)
    base: str = BASE_PATH  # /v1/api, /gw/api/v1, or "" for the OAuth 2.0 token endpoint


@dataclass(frozen=True)
class _Incoming:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    base: str = BASE_PATH


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = _JSON
    truncate: bool = False  # send half of the body, then cut the connection
    allow: str = ""  # the Allow header of a 405


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _phrase(status: int, default: str = "") -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return default


def _data_path(name: str) -> Path:
    return Path(__file__).resolve().parent / "data" / name


def _scaled(bucket: PacingBucket, scale: float) -> PacingBucket:
    return dataclasses.replace(bucket, per=bucket.per * scale) if bucket.per else bucket


def _error(status: int, message: str) -> _Answer:
    return _Answer(status, _json_bytes({"error": message}))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ibkr-sdk-simulator"
    sys_version = ""
    timeout = 60  # seconds an idle keep-alive connection stays open

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _serve(self) -> None:
        sim = cast(_Server, self.server).simulator
        if urlsplit(self.path).path == BASE_PATH + WS_PATH and _stream.is_upgrade(self):
            _stream.serve(self, sim)  # the WebSocket takes the connection over until it closes
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = sim._dispatch(self.command, self.path, raw, headers)
        if answer is None:
            self._abort()
            return
        phrase = _phrase(answer.status)
        head = (
            f"HTTP/1.1 {answer.status} {phrase}\r\n"
            f"Content-Type: {answer.content_type}\r\n"
            f"Content-Length: {len(answer.body)}\r\n"
            f"Server: {self.server_version}\r\n"
        )
        if answer.allow:
            head += f"Allow: {answer.allow}\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        # One write for status line, headers and body: separate writes stall ~40 ms (Nagle + delayed ACK).
        body = answer.body[: len(answer.body) // 2] if answer.truncate else answer.body
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)
        if answer.truncate:
            self.close_connection = True  # a clean close: the client reads the half body, then the end

    def _abort(self) -> None:
        """Drop the connection without an answer (reset where the platform allows it)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, OPTIONS, QUERY, ...) gets the JSON 405 of a known path (404 of an unknown one),
        # not http.server's HTML 501. HEAD keeps http.server's answer: it must not carry a body.
        if name.startswith("do_") and name != "do_HEAD":
            return self._serve
        raise AttributeError(name)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, simulator: Simulator, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.simulator = simulator
        self.tls = tls
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        super().__init__((HOST, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._work, args=(request, client_address), daemon=True, name="ibkr-simulator-conn"
        )
        with self._conn_lock:
            self._connections.add(request)
            self._workers.add(worker)
        worker.start()

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # The TLS handshake happens in the connection's own thread, so a slow client cannot stall accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                request.settimeout(_HANDSHAKE_TIMEOUT)
                try:
                    request.do_handshake()
                except (OSError, ssl.SSLError):
                    logger.debug("TLS handshake with %s failed", client_address, exc_info=True)
                    self.shutdown_request(request)
                    return
                request.settimeout(None)
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.discard(request)
                self._workers.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up, and connections cut at shutdown, are normal here; anything else is logged.
        logger.debug("connection error from %s", client_address, exc_info=True)

    def close_connections(self, deadline: float) -> None:
        with self._conn_lock:
            connections = list(self._connections)
            workers = list(self._workers)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))


class ScaledClock:
    """Simulated time running `scale` times faster than real time, from `start` (epoch seconds; default now)."""

    def __init__(self, scale: float, start: float | None = None) -> None:
        self.scale = scale
        self.start = time.time() if start is None else start
        self._origin = time.monotonic()

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self._origin) * self.scale


class NightlyReset:
    """When the nightly reset falls: `at` ("HH:MM") local time in `timezone`, every day."""

    def __init__(self, at: str, timezone: str) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            hour, minute = (int(part) for part in at.split(":"))
            self.time = dt.time(hour, minute)
        except ValueError:
            raise ValueError(f"reset_at must be 'HH:MM', got {at!r}") from None
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {timezone!r}") from None

    def next_after(self, now: float) -> float:
        """The first reset strictly after `now` (epoch seconds)."""
        local = dt.datetime.fromtimestamp(now, self.zone)
        day = local.date()
        for offset in range(3):
            candidate = dt.datetime.combine(day + dt.timedelta(days=offset), self.time, self.zone).timestamp()
            if candidate > now:
                return candidate
        raise AssertionError("unreachable")


class Simulator:
    """An embedded IBKR Client Portal Gateway for tests and offline development.

    Args:
        port: TCP port on 127.0.0.1; 0 (the default) picks a free one.
        authenticated: Start with the brokerage session open. When False, `/iserver/...` endpoints answer
            400 "no bridge" until `POST /iserver/auth/ssodh/init` (or `/iserver/reauthenticate`).
        accounts: Account ids of the simulated user; the first is selected. Default `["DU1234567"]`.
        latency: Seconds added to every answer.
        pacing: Enforce IBKR's pacing limits (global 10 requests/s and the per-endpoint buckets of the
            catalogue, e.g. 5 concurrent history requests), answering 429 beyond them.
        seed: Seed of every random choice (prices, ids), so runs are reproducible.
        clock: Simulated time in epoch seconds (default `time.time`); prices, timestamps and fills follow it.
        question_rules: Order questions to ask (default: `default_question_rules()`).
        hmds_warmup: Answer 404 to the first `/hmds/history` request of a session, as IBKR's farm does.
        oauth: `OAuthSettings` to act as IBKR's hosted API with OAuth 1.0a: live session tokens are issued and
            every other request must carry a valid signature (401 otherwise).
        oauth2: True (or `OAuth2Settings`) to act as IBKR's hosted API with OAuth 2.0: the token endpoint at
            `/oauth2/api/v1/token`, SSO sessions at `/gw/api/v1/sso-sessions`, the session token as bearer on
            /v1/api, the access token (with a fitting scope) on /gw/api/v1, SIGNED_JWT bodies verified with the
            registered key. `oauth2_config()` gives a client config that fits; `oauth2` holds the switches.
        pacing_time_scale: Multiplies every pacing period (tests scale IBKR's limits down).
        https: Serve HTTPS with the simulator's self-signed certificate (`cacert` is its path), like the real
            gateway; the certificate is a public test certificate, not a secret.
        advisor: Simulate a Financial Advisor: the first account id is the advisor's account, the others its
            sub-accounts (default `["DF1234560", "DU1234567", "DU1234568"]`), and the allocation group and model
            portfolio endpoints work. When False (a single-account user) those answer 400.
        open_delay: Seconds (real time) between `ssodh/init` (or `reauthenticate`) and an open brokerage session:
            the gateway answers before the session is open, so a client polls the status.
        time_scale: Run the simulated clock this many times faster than real time (e.g. 1440: a day in a minute),
            from `start_time` (epoch seconds; default now). Not with `clock`.
        start_time: Where a scaled clock starts.
        reset_at: Local time ("HH:MM", e.g. "01:00") of the nightly reset in `timezone`, on the simulated clock:
            the brokerage session drops and every stream ends, as `nightly_reset()` does.
        timezone: IANA name of the gateway's region for `reset_at` (New York, Zug or Hong Kong at IBKR).

    The session's life cycle, as faults on demand: `drop_brokerage_session()`, `compete()`, `nightly_reset()`,
    `restart()`, `logout()` and `login()`.

    Use as a context manager, or call `start()` and `stop()`. `url` is the base URL to give a client.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        authenticated: bool = True,
        accounts: Sequence[str] | None = None,
        latency: float = 0.0,
        pacing: bool = False,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        question_rules: Sequence[QuestionRule] | None = None,
        hmds_warmup: bool = True,
        oauth: OAuthSettings | None = None,
        oauth2: bool | OAuth2Settings = False,
        pacing_time_scale: float = 1.0,
        https: bool = False,
        advisor: bool = False,
        open_delay: float = 0.2,
        time_scale: float | None = None,
        start_time: float | None = None,
        reset_at: str | None = None,
        timezone: str = "America/New_York",
    ) -> None:
        if latency < 0:
            raise ValueError("latency must not be negative")
        if open_delay < 0:
            raise ValueError("open_delay must not be negative")
        if time_scale is not None or start_time is not None:
            if clock is not None:
                raise ValueError("give either clock or time_scale/start_time, not both")
            if time_scale is not None and not time_scale > 0:
                raise ValueError("time_scale must be above 0")
            clock = ScaledClock(time_scale or 1.0, start_time)
        self._reset_schedule = NightlyReset(reset_at, timezone) if reset_at is not None else None
        self._port = port
        self.https = https
        self.latency = latency
        self.pacing = pacing
        self._state = GatewayState(
            accounts=list(accounts) if accounts is not None else ADVISOR_ACCOUNTS if advisor else ["DU1234567"],
            authenticated=authenticated,
            seed=seed,
            clock=clock or time.time,
            question_rules=list(question_rules) if question_rules is not None else default_question_rules(),
            hmds_warmup=hmds_warmup,
            advisor=advisor,
        )
        self._routes = RouteTable({n: e for n, e in ENDPOINTS.items() if e.base is None})
        self._gw_routes = RouteTable({n: e for n, e in ENDPOINTS.items() if e.base == GW_BASE})
        self._faults = FaultBook(seed)
        self._ws_faults = WsFaultBook()  # faults of the WebSocket (route "ws"), kept apart from the REST routes'
        self.streaming = StreamSettings()
        """Timing of the WebSocket at /v1/api/ws (heartbeats, quote interval, market-data expiry)."""
        self.ws_received: deque[tuple[int, str]] = deque(maxlen=_LOG_LIMIT)
        """Text frames the WebSocket received, as (connection number from 1, text), for tests to assert on."""
        self.ws_connections = 0
        """How many WebSocket connections were accepted."""
        self.oauth: OAuthAuthority | None = OAuthAuthority(oauth) if oauth is not None else None
        """With `oauth` settings: the OAuth 1.0a authority that issues tokens and checks every signature."""
        settings2 = oauth2 if isinstance(oauth2, OAuth2Settings) else OAuth2Settings() if oauth2 else None
        if settings2 is not None and oauth is not None:
            raise ValueError("Simulator(): oauth (1.0a) and oauth2 exclude each other")
        self.oauth2: OAuth2Authority | None = OAuth2Authority(settings2) if settings2 is not None else None
        """With `oauth2`: the OAuth 2.0 authority (token endpoint, SSO sessions, bearer checks, switches such as
        `expire_access_tokens()`, `expire_sessions()`, `rotate_key()`)."""
        # pacing_time_scale shortens every pacing period (tests run IBKR's seconds and minutes scaled down).
        self._pacer = Pacer(
            _scaled(GLOBAL_LIMITS["oauth" if oauth is not None or oauth2 else "gateway"], pacing_time_scale),
            {name: _scaled(bucket, pacing_time_scale) for name, bucket in PACING_BUCKETS.items()},
        )
        self._log: deque[RequestRecord] = deque(maxlen=_LOG_LIMIT)
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._state.open_delay = open_delay
        self._reset_thread: threading.Thread | None = None
        self.resets = 0
        """How many nightly resets happened (scheduled by `reset_at` or asked for)."""
        self.restarts = 0
        """How many times `restart()` ran."""
        self._started_once = False

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind 127.0.0.1 and serve in a background thread. Returns self."""
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        self._stopping.clear()
        self._server = _Server(self, self._port, self._tls_context() if self.https else None)
        if not self._started_once:  # a new gateway, maybe on a port an earlier one used (a restart keeps them)
            self._started_once = True
            from ..lib.coordination import forget_gateway

            forget_gateway(self.port, {p for spec in ENDPOINTS.values() for p in spec.preflight})
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="ibkr-simulator"
        )
        self._thread.start()
        if self._reset_schedule is not None:
            self._reset_thread = threading.Thread(target=self._run_resets, daemon=True, name="ibkr-simulator-reset")
            self._reset_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: stalled and delayed requests end, open connections are closed. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections(deadline)
        if thread is not None:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        resets = self._reset_thread
        if resets is not None:
            resets.join(timeout=max(0.0, deadline - time.monotonic()))
        self._server = None
        self._thread = None
        self._reset_thread = None

    def __enter__(self) -> Simulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. `http://127.0.0.1:54321/v1/api/`."""
        scheme = "https" if self.https else "http"
        return f"{scheme}://{HOST}:{self.port}{BASE_PATH}/"

    @property
    def gw_url(self) -> str:
        """Base URL of the Account Management API, e.g. `http://127.0.0.1:54321/gw/api/v1/`."""
        return self.url[: -len(BASE_PATH) - 1] + GW_BASE + "/"

    @property
    def token_url(self) -> str:
        """The OAuth 2.0 token endpoint."""
        return self.url[: -len(BASE_PATH) - 1] + TOKEN_PATH

    def oauth2_config(self, **overrides: Any) -> Any:
        """An `OAuth2Config` for this simulator: its registered client id, key id and username, the simulator's
        test key, 127.0.0.1 as IP address, and its URLs. Keyword arguments replace fields."""
        from ..lib.oauth2 import OAuth2Config

        if self.oauth2 is None:
            raise RuntimeError("oauth2_config(): start the simulator with oauth2=True")
        s = self.oauth2.settings
        fields: dict[str, Any] = {
            "client_id": s.client_id,
            "client_key_id": s.kid,
            "private_key": simulator_private_key_pem(),
            "username": s.username,
            "ip_address": "127.0.0.1",
            "oauth_rest_url": self.url,
            "token_url": self.token_url,
            "sso_session_url": self.gw_url + "sso-sessions",
            "scope": " ".join(s.scopes),
        }
        fields.update(overrides)
        return OAuth2Config(**fields)

    @property
    def cacert(self) -> str:
        """Path of the simulator's self-signed certificate: give it to a client as `cacert` to verify HTTPS."""
        return str(_data_path(TLS_CERT))

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(_data_path(TLS_CERT)), str(_data_path(TLS_KEY)))
        return context

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"Simulator({where})"

    # -- inspection and control -----------------------------------------------------------------------------------

    @property
    def accounts(self) -> list[str]:
        """The simulated user's account ids; the first is the default selection."""
        return list(self._state.account_ids)

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests received so far (the latest 10,000), oldest first."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    @property
    def orders(self) -> list[SimOrder]:
        """Copies of every order of this simulator, in creation order (fills due at the current price settled)."""
        with self._state.lock:
            self._state.book.match(self._state.now())
            return [copy.deepcopy(o) for o in sorted(self._state.book.orders.values(), key=lambda o: o.order_id)]

    @property
    def question_rules(self) -> list[QuestionRule]:
        with self._state.lock:
            return list(self._state.question_rules)

    @question_rules.setter
    def question_rules(self, rules: Sequence[QuestionRule]) -> None:
        with self._state.lock:
            self._state.question_rules = list(rules)

    def set_price(self, conid: int, price: float | None) -> None:
        """Pin the price of a contract (None lets it follow the simulated path again)."""
        with self._state.lock:
            if self._state.universe.get(int(conid)) is None:
                raise KeyError(f"conid {conid} is not in the simulator's universe")
            if price is None:
                self._state.prices.overrides.pop(int(conid), None)
            else:
                self._state.prices.overrides[int(conid)] = float(price)

    def login(self, *, brokerage: bool = True) -> None:
        """Stand in for the browser login after `/logout`; with `brokerage` also open the brokerage session."""
        with self._state.lock:
            self._state.login(brokerage)

    def logout(self) -> None:
        """End the session as `POST /logout` does."""
        with self._state.lock:
            self._state.logout()

    # -- the session's life cycle (faults on demand) --------------------------------------------------------------

    def drop_brokerage_session(self, *, status: int = 401) -> None:
        """The brokerage session drops while the login stays: the auth status says `authenticated: false,
        connected: true`, `/iserver/...` requests answer `status` (401, or 400 for "no bridge"), and every socket
        gets `sts` with `authenticated: false` and loses its streams (they must be asked for again)."""
        if status not in (400, 401):
            raise ValueError("status must be 401 or 400 (no bridge)")
        with self._state.lock:
            self._state.close_brokerage(status)

    def compete(self, active: bool = True) -> None:
        """Another login takes the brokerage session (`competing: true`; `/iserver` answers 401, streams end) until
        a client sends `ssodh/init` with `compete=true`. `compete(False)`: the other login leaves; the session stays
        closed until a client re-opens it."""
        with self._state.lock:
            self._state.compete(active)

    def nightly_reset(self) -> None:
        """IBKR's nightly reset: the brokerage session drops (`/iserver` answers 400 "no bridge" until it is
        re-opened) and every stream ends; the login stays."""
        with self._state.lock:
            self._state.close_brokerage(400, "reset")
            self.resets += 1

    def restart(self, down: float = 1.0) -> None:
        """Restart the gateway: every connection is cut and connections are refused for `down` seconds; then a
        fresh gateway answers on the same port, and it needs a login (`login()`). Orders and positions remain.
        Returns once it answers again."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        port = self.port
        self.stop()
        with self._state.lock:
            self._state.restart()
            self.restarts += 1
        time.sleep(max(0.0, down))
        self._port = port
        self.start()

    @property
    def session_events(self) -> list[SessionEvent]:
        """The session's life cycle so far, oldest first: "opened", "dropped", "reset", "competing",
        "competition ended", "logged out", "logged in", "restarted"."""
        with self._state.lock:
            return list(self._state.session_log)

    @property
    def open_delay(self) -> float:
        """Seconds between `ssodh/init` (or `reauthenticate`) and an open brokerage session."""
        return self._state.open_delay

    @open_delay.setter
    def open_delay(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError("open_delay must not be negative")
        self._state.open_delay = float(seconds)

    def now(self) -> float:
        """The simulated clock, in epoch seconds."""
        return self._state.now()

    def _run_resets(self) -> None:
        schedule = self._reset_schedule
        assert schedule is not None
        due = schedule.next_after(self._state.now())
        while not self._stopping.wait(0.02):
            if self._state.now() >= due:
                self.nightly_reset()
                due = schedule.next_after(self._state.now())

    def inject(
        self,
        route: str,
        kind: str,
        value: float | None = None,
        *,
        times: int | None = 1,
        body: Any = None,
        after: bool = False,
        probability: float | None = None,
    ) -> None:
        """Make the next `times` requests to `route` fail in the way `kind` names (None: until `clear_faults`).

        `route` is a catalogue endpoint name (e.g. `"live_marketdata_snapshot"`), `"METHOD /path"` (template or
        concrete path, e.g. `"GET /iserver/marketdata/snapshot"`), or `"*"` for every route. Kinds:
        `latency` (value: seconds, then a normal answer), `status` (value: HTTP status; `body` replaces the
        default `{"error": ...}`), `reset` (close without answering), `stall` (never answer; value: give up
        after that many seconds, default when the simulator stops), `malformed` (invalid JSON, 200), `truncate`
        (handle the request, then cut the connection halfway through the answer's body).
        With `after=True`, `status`, `reset`, `stall` and `malformed` let the request take effect first and then
        lose or spoil the answer (e.g. an order that exists although the client saw no acknowledgement).
        With `probability`, each matching request draws (seeded by `seed`) whether the fault applies; `times`
        then counts the faults applied.

        `route="ws"` targets the WebSocket at /v1/api/ws: `reset` drops an open socket, `stall` stops its
        frames (value: seconds), `malformed` sends it a frame that is not JSON (each taken by one socket per
        `times`); `status` refuses the next connect with that HTTP status, `latency` delays the next handshake.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if kind == "latency" and (value is None or value < 0):
            raise ValueError("a latency fault needs value=seconds")
        if kind == "status" and (value is None or not 100 <= int(value) <= 599):
            raise ValueError("a status fault needs value=<HTTP status>, e.g. 503")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        if after and kind == "latency":
            raise ValueError("after=True applies to status, reset, stall and malformed faults")
        if probability is not None and not 0 < probability <= 1:
            raise ValueError("probability must be above 0 and at most 1")
        if route == WS_ROUTE:
            if after or probability is not None or kind == "truncate":
                raise ValueError("the socket (route 'ws') takes latency, status, reset, stall and malformed faults")
            self._ws_faults.add(WS_ROUTE, Fault(kind, value, times, body))
            return
        self._faults.add(self._resolve_route(route), Fault(kind, value, times, body, after, probability))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._ws_faults.clear()

    def _resolve_route(self, route: str) -> str:
        if route == ANY_ROUTE or route in ENDPOINTS:
            return route
        parts = route.split(None, 1)
        if len(parts) == 2:
            method, path = parts[0].upper(), parts[1].split("?")[0]
            routes = self._routes
            if path.startswith(GW_BASE + "/"):
                path, routes = path[len(GW_BASE) :], self._gw_routes
            elif path.startswith(BASE_PATH):
                path = path[len(BASE_PATH) :]
            for spec in ENDPOINTS.values():
                if spec.http == method and spec.path == path:
                    return spec.name
            found = routes.match(method, path)
            if found is not None:
                return found[0].name
        raise ValueError(f"unknown route {route!r}: give an endpoint name, 'METHOD /path' or '*'")

    # -- request handling -----------------------------------------------------------------------------------------

    def _record(self, incoming: _Incoming, endpoint: str | None, status: int | None, fault: str | None) -> None:
        record = RequestRecord(
            incoming.method,
            incoming.path,
            incoming.query,
            incoming.body,
            endpoint,
            status,
            fault,
            self._state.now(),
            incoming.headers,
            time.monotonic(),
            incoming.base,
        )
        with self._log_lock:
            self._log.append(record)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _dispatch(self, method: str, target: str, raw: bytes, headers: dict[str, str] | None = None) -> _Answer | None:
        """Answer one request; None means: close the connection without an answer."""
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body: Any = None
        body_error = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body, body_error = raw.decode("utf-8", "replace"), True
        full_path = parts.path
        headers = dict(headers or {})
        if full_path == TOKEN_PATH and self.oauth2 is not None:
            return self._token(method, raw, headers, query)
        base = GW_BASE if full_path.startswith(GW_BASE + "/") else BASE_PATH
        routes = self._gw_routes if base == GW_BASE else self._routes
        path = full_path[len(base) :] if full_path.startswith(base + "/") else None
        incoming = _Incoming(method, path or full_path, query, body, headers, base)
        found = routes.match(method, path) if path is not None else None
        if path is None or found is None:
            allowed = routes.methods_for(path) if path is not None else []
            answer = (
                dataclasses.replace(
                    _error(405, f"method {method} is not allowed here; use {', '.join(allowed)}"),
                    allow=", ".join(allowed),
                )
                if allowed
                else _error(404, f"no such endpoint: {method} {full_path}")
            )
            self._wait(self.latency)
            self._record(incoming, None, answer.status, None)
            return answer
        spec, params = found
        if spec.security is not None:
            checked, incoming, body_error = self._gw_checks(spec, incoming, raw, body_error)
            if checked is not None:
                return checked
            body = incoming.body
        elif self.oauth2 is not None:
            try:
                self.oauth2.check_session(headers.get("authorization"))
            except OAuth2Refused as exc:
                self._record(incoming, spec.name, exc.status, None)
                return _Answer(exc.status, _json_bytes(exc.body))
        if self.oauth is not None:
            checked = self._check_oauth(method, target, spec.name, incoming)
            if checked is not None:
                return checked
        if self.pacing:
            refusal = self._pacer.enter(spec)
            if refusal is not None:
                self._wait(self.latency)
                self._record(incoming, spec.name, 429, None)
                return _error(429, f"Too many requests ({refusal})")
        try:
            fault = self._faults.take(spec.name)
            request = SimRequest(method, path, spec, params, query, body, incoming.headers, target)
            if fault is not None:
                if fault.kind == "latency":
                    self._wait(float(fault.value or 0.0))
                else:
                    if fault.after:
                        self._answer(spec.name, request, body_error)
                    return self._faulty(fault, incoming, spec.name, request, body_error)
            answer = self._answer(spec.name, request, body_error)
            self._wait(self.latency)
            self._record(incoming, spec.name, answer.status, fault.kind if fault else None)
            return answer
        finally:
            if self.pacing:
                self._pacer.leave(spec)

    def _token(self, method: str, raw: bytes, headers: dict[str, str], query: dict[str, str]) -> _Answer:
        """`POST /oauth2/api/v1/token`: an access token, or IBKR's OAuth error answer."""
        assert self.oauth2 is not None
        incoming = _Incoming(method, TOKEN_PATH, query, None, headers, "")
        if method != "POST":
            answer = dataclasses.replace(_error(405, f"method {method} is not allowed here; use POST"), allow="POST")
        else:
            try:
                answer = _Answer(200, _json_bytes(self.oauth2.token(raw)))
            except OAuth2Refused as exc:
                answer = _Answer(exc.status, _json_bytes(exc.body))
        self._wait(self.latency)
        self._record(incoming, "oauth2_token", answer.status, None)
        return answer

    def _gw_checks(
        self, spec: EndpointSpec, incoming: _Incoming, raw: bytes, body_error: bool
    ) -> tuple[_Answer | None, _Incoming, bool]:
        """A /gw/api/v1 request: the bearer and scope (OAuth 2.0), the SSO session request itself, and a SIGNED_JWT
        body turned into its request members (verified with the registered key under OAuth 2.0)."""
        auth = self.oauth2
        authorization = incoming.headers.get("authorization")
        content_type = incoming.headers.get("content-type", "")
        if spec.security == "SIGNED_JWT" and raw and body_error:
            members = unverified_body(raw)  # what is recorded; under OAuth 2.0 it is verified below
            if members is not None:
                incoming = dataclasses.replace(incoming, body=members)
        try:
            if self.oauth is not None:
                raise problem(401, "Unauthorized", "the Account Management API takes OAuth 2.0 bearer tokens only")
            if auth is not None and spec.name == "create_sso_session":
                payload = auth.sso_session(authorization, content_type, raw)
                with self._state.lock:
                    if not self._state.session.logged_in:
                        self._state.login(False)  # with OAuth 2.0, a new SSO session is the login
                self._record(incoming, spec.name, 200, None)
                return _Answer(200, _json_bytes(payload)), incoming, body_error
            if auth is not None:
                auth.check_access(authorization, spec.scopes)
            if spec.security == "SIGNED_JWT" and raw:
                if auth is not None:
                    if not content_type.startswith("application/jwt"):
                        raise problem(415, "Unsupported Media Type", "this operation takes a signed JWT body")
                    incoming, body_error = dataclasses.replace(incoming, body=auth.signed_body(raw)), False
                elif body_error and isinstance(incoming.body, dict):
                    body_error = False  # without OAuth 2.0 there is no key to verify with: the members are taken
        except OAuth2Refused as exc:
            self._record(incoming, spec.name, exc.status, None)
            return _Answer(exc.status, _json_bytes(exc.body)), incoming, body_error
        return None, incoming, body_error

    def _check_oauth(self, method: str, target: str, endpoint: str, incoming: _Incoming) -> _Answer | None:
        """With OAuth on: issue a live session token, or refuse (401) a request whose signature does not verify.
        None lets a verified request through.

        The signed URL may be the one rebuilt from the Host header, as a server sees it, or the simulator's own
        address: the peer library sends IBKR's host name (`Host: api.ibkr.com`) whatever URL it signs, which is the
        same thing against IBKR but not against a stand-in at another address."""
        assert self.oauth is not None
        scheme = "https" if self.https else "http"
        url = [f"{scheme}://{incoming.headers.get('host', '')}{target}", f"{scheme}://127.0.0.1:{self.port}{target}"]
        authorization = incoming.headers.get("authorization")
        try:
            if endpoint == "oauth_live_session_token":
                payload = self.oauth.live_session_token(method, url, authorization)
                with self._state.lock:
                    if not self._state.session.logged_in:
                        self._state.login(False)  # with OAuth, a new live session token is the login
                self._record(incoming, endpoint, 200, None)
                return _Answer(200, _json_bytes(payload))
            self.oauth.verify(method, url, authorization)
        except OAuthRejected as exc:
            self._record(incoming, endpoint, 401, None)
            return _error(401, f"OAuth: {exc}")
        return None

    def _faulty(
        self, fault: Fault, incoming: _Incoming, endpoint: str, request: SimRequest, body_error: bool
    ) -> _Answer | None:
        if fault.kind == "status":
            status = int(fault.value or 503)
            payload = fault.body if fault.body is not None else {"error": _phrase(status, "Error")}
            self._wait(self.latency)
            self._record(incoming, endpoint, status, "status")
            return _Answer(status, _json_bytes(payload))
        if fault.kind == "malformed":
            self._wait(self.latency)
            self._record(incoming, endpoint, 200, "malformed")
            return _Answer(200, b'{"conid": 265598, "31": "1')
        if fault.kind == "truncate":
            answer = self._answer(endpoint, request, body_error)
            self._record(incoming, endpoint, answer.status, "truncate")
            return dataclasses.replace(answer, truncate=True)
        self._record(incoming, endpoint, None, fault.kind)
        if fault.kind == "stall":
            self._wait(float(fault.value) if fault.value is not None else _STALL_LIMIT)
        return None

    def _answer(self, name: str, request: SimRequest, body_error: bool) -> _Answer:
        handler = HANDLERS.get(name)
        spec = request.endpoint
        if handler is None:
            return _error(501, f"not modelled by the simulator: {name} ({spec.http} {spec.path})")
        state = self._state
        try:
            with state.lock:
                if spec.base is None:  # /gw/api/v1 has no gateway session to admit it
                    state.admit(spec, request)
                if body_error:
                    raise GatewayError(400, "Bad Request: the body is not valid JSON")
                state.book.match(state.now())
                result = handler(state, request)
        except GatewayError as exc:
            return _Answer(exc.status, _json_bytes(exc.body))
        except Exception as exc:  # a simulator bug: answer 500 and keep serving
            logger.exception("simulator handler %s failed", name)
            return _error(500, f"simulator error in {name}: {type(exc).__name__}: {exc}")
        if isinstance(result, SimResponse):
            payload = result.raw if result.raw is not None else _json_bytes(result.body)
            return _Answer(result.status, payload, result.content_type)
        return _Answer(200, _json_bytes(result))
