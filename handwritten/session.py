"""Session helpers: health check and authentication status check.

Why hand-written: they interpret the answer of the tickle / auth status endpoints into a single verdict.
"""

from __future__ import annotations

import logging
import signal
import threading
import weakref
from collections.abc import Mapping
from types import FrameType
from typing import Any

from .._client_base import GeneratedEndpoints
from .errors import ClientClosedError, ExternalBrokerError, IbkrError
from .flow import Flow, run
from .result import Result
from .tickler import DEFAULT_INTERVAL, Tickler

logger = logging.getLogger("ibkr_sdk")


def _status_line(data: Any) -> str:
    """The status flags of a tickle / auth status answer, for a log line (no session ids or tokens)."""
    if isinstance(data, Mapping) and isinstance(data.get("iserver"), Mapping):
        data = data["iserver"].get("authStatus")
    if not isinstance(data, Mapping):
        return "no status in the answer"
    return ", ".join(f"{k}={data.get(k)!r}" for k in ("authenticated", "connected", "competing") if k in data)


def _auth_flags(status: Any) -> tuple[bool, bool, bool]:
    if not isinstance(status, Mapping) or not all(k in status for k in ("authenticated", "competing", "connected")):
        raise IbkrError(f"the gateway's status answer is malformed: {status!r}")
    return bool(status["authenticated"]), bool(status["competing"]), bool(status["connected"])


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _ShutdownHandlers:
    """The one SIGINT/SIGTERM handler of the process for every client that asked for one.

    Installed when the first client registers, with the handlers found then kept to run afterwards; removed (the
    previous handlers restored) when the last registered client is closed. Clients are held weakly, so a client
    dropped without `close()` is not kept alive. On a signal each live client shuts down once, then the previous
    handler runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakSet[SessionOverlay] = weakref.WeakSet()
        self._previous: dict[int, Any] = {}
        self._handler = self._handle  # one object, so `signal.getsignal(...) is self._handler` holds

    def add(self, client: SessionOverlay) -> None:
        """Register `client`; installs the handler if needed. Main thread only."""
        with self._lock:
            self._clients.add(client)
            for signum in _SIGNALS:
                current = signal.getsignal(signum)
                if current is not self._handler:
                    self._previous[signum] = current
                    signal.signal(signum, self._handler)

    def discard(self, client: SessionOverlay) -> None:
        """Forget `client`; once none is left, restore the previous handlers (from the main thread only: Python
        allows no other)."""
        with self._lock:
            self._clients.discard(client)
            if len(self._clients) or threading.current_thread() is not threading.main_thread():
                return
            self._restore()

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) is self._handler:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        with self._lock:
            clients = list(self._clients)
            self._clients.clear()
            previous = self._previous.get(sig, signal.SIG_DFL)
            self._restore()
        for client in clients:
            try:
                client._shutdown()
            except Exception as exc:  # the other clients and the previous handler must still run
                logger.warning("shutdown of the client failed: %s", exc)
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL and sig == signal.SIGINT:
            raise KeyboardInterrupt
        elif previous == signal.SIG_DFL:
            signal.raise_signal(sig)  # the default handler is back in place: let it end the process


SHUTDOWN_HANDLERS = _ShutdownHandlers()


def tickle_flow(api: Any, log: bool) -> Flow[Result]:
    result: Result = yield api._tickle()
    if log:
        logger.info("tickle: %s", _status_line(result.data))
    return result


def authentication_status_flow(api: Any, log: bool) -> Flow[Result]:
    result: Result = yield api._authentication_status()
    if log:
        logger.info("authentication status: %s", _status_line(result.data))
    return result


def check_health_flow(api: Any) -> Flow[bool]:
    try:
        data = (yield api.tickle()).data
    except ExternalBrokerError:
        return False
    if not isinstance(data, Mapping):
        raise IbkrError(f"the gateway's tickle answer is malformed: {data!r}")
    iserver = data.get("iserver")
    status = iserver.get("authStatus") if isinstance(iserver, Mapping) else None
    authenticated, competing, connected = _auth_flags(status)
    return authenticated and connected and not competing


def check_auth_status_flow(api: Any) -> Flow[bool]:
    try:
        data = (yield api.authentication_status(log=False)).data
    except ExternalBrokerError as exc:
        logger.info("authentication status unavailable: %s", exc)
        return False
    authenticated, competing, connected = _auth_flags(data)
    return authenticated and connected and not competing


class SessionOverlay(GeneratedEndpoints):
    """`check_health`, `check_auth_status`, the tickler and the shutdown handler."""

    _tickler: Tickler | None = None
    tickler_interval: float = DEFAULT_INTERVAL

    def tickle(self, log: bool = False) -> Result:
        """Ping the gateway so an idle session does not time out (POST /tickle).

        The answer holds the session id and the brokerage status (`iserver.authStatus`).

        Args:
            log: Also log the request and its answer's status at INFO on the `ibkr_sdk` logger (off by default, as
                the tickler calls this every minute). Not sent.
        """
        return run(tickle_flow(self, log))

    def authentication_status(self, log: bool = True) -> Result:
        """Whether the brokerage session is authenticated, connected and not competing (POST /iserver/auth/status).

        Args:
            log: Also log the answer's flags at INFO on the `ibkr_sdk` logger. Not sent.
        """
        return run(authentication_status_flow(self, log))

    def start_tickler(self, interval: float | None = None) -> None:
        """Call `tickle()` every `interval` seconds (default `tickler_interval`, 60) in a background thread until
        `stop_tickler()` or `close()`. A running tickler keeps its interval.

        Raises:
            ClientClosedError: the client is closed.
        """
        if self._transport.closed:
            raise ClientClosedError("start_tickler(): the client is closed")
        if interval is not None:
            if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
                raise ValueError(f"start_tickler(): parameter 'interval' must be a number above 0, got {interval!r}")
            self.tickler_interval = float(interval)
        if self._tickler is None or (not self._tickler.running and self._tickler.interval != self.tickler_interval):
            self._tickler = Tickler(self._keep_alive, self.tickler_interval)
        self._tickler.start()

    def _keep_alive(self) -> None:
        """One tick of the tickler (the recovery overlay also acts on what the answer says about the session)."""
        self.tickle()

    def stop_tickler(self, timeout: float | None = None) -> None:
        """Stop the keep-alive thread if it runs, waiting for it at most `timeout` seconds (None: until it ends,
        which a tick in progress bounds by the request timeout)."""
        if self._tickler is not None:
            self._tickler.stop(timeout)

    def _shutdown(self) -> None:
        """What the shutdown handler runs: stop the tickler and release the connection."""
        self.stop_tickler()

    def register_shutdown_handler(self) -> None:
        """On SIGINT or SIGTERM, stop the tickler (and with OAuth, end the session), then run the handler that was
        installed before. One handler serves every client of the process; `close()` unregisters the client and,
        with the last one, restores the previous handlers. Call from the main thread."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("register_shutdown_handler() must be called from the main thread")
        if self._transport.closed:
            raise ClientClosedError("register_shutdown_handler(): the client is closed")
        SHUTDOWN_HANDLERS.add(self)

    def check_health(self) -> bool:
        """True when the gateway answers and its brokerage session is authenticated, connected and not competing.

        Uses `tickle()`. A gateway that cannot be reached, or an unauthenticated session, gives False; an answer
        of unexpected shape raises `IbkrError`.
        """
        return run(check_health_flow(self))

    def check_auth_status(self) -> bool:
        """True when `authentication_status()` reports authenticated, connected and not competing.

        A failed request (gateway unreachable, 401 not authenticated) gives False, as in the peer library; an
        answer of unexpected shape raises `IbkrError`.
        """
        return run(check_auth_status_flow(self))
