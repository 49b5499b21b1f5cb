"""asyncio HTTP transport on `aiohttp`: the same policy as the sync transport, with non-blocking I/O.

Everything that is decided (what an answer or a failure means, whether and when to retry, how a `Result` is
decoded) comes from `policy.py`, shared with `transport.Transport`; pacing takes the very pacer sync clients of the
same server use, through its non-blocking tickets (`pacing.PacingTicket`), and with it the coordination store
every process shares (called from one worker thread when it does network I/O: `coordination.offloop`). What
differs is I/O only:

- one `aiohttp.ClientSession` per client, created on first use inside the running loop (so a client can be built
  inside or outside a loop); with an IP literal as host no resolver thread is ever started;
- the query string and the JSON body are encoded here exactly as `requests` encodes them, so both clients put the
  same bytes on the wire;
- aiohttp's own resend of an idempotent request after a dropped keep-alive connection is turned off: only the
  catalogue's retry rule decides what is sent again (a GET such as the paid regulatory snapshot is not safe);
- `aclose()` cuts requests in flight; they fail with `ClientClosedError`;
- the pacer's counting rule needs the moment a request's bytes went to the socket and how long a new connection
  took to open (the sync transport's connection notes them): aiohttp's request tracing gives both (the hooks for
  headers and body chunks run right before the write, with nothing awaited in between), on paced sessions only.

This module imports `aiohttp`: it is loaded with `AsyncIbkrClient` only (the `async` extra).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import os
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import requests
from yarl import URL

from .. import policy
from ..coordination import offloop
from ..errors import ApiConnectionError, ExternalBrokerError
from ..pacing import PacingStopped, PacingTicket
from ..policy import RETRY_STATUSES
from ..result import Result
from ..transport import _USER_AGENT, TransportBase
from ..wire import PreparedCall

logger = logging.getLogger("ibkr_sdk")

_LAST_START: contextvars.ContextVar[float | None] = contextvars.ContextVar("ibkr_sdk_last_start", default=None)

_Answer = tuple[int, Mapping[str, str], bytes, str | None]  # status, headers, body, reason


def _text(content: bytes, headers: Mapping[str, str]) -> str:
    """The body as text, in the charset its Content-Type names (UTF-8 when none): read only when needed."""
    charset = "utf-8"
    for part in headers.get("Content-Type", "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        return content.decode(charset, "replace")
    except LookupError:
        return content.decode("utf-8", "replace")


class _Departure:
    """When a paced request's bytes went to the socket, and how long its connection took to open if it opened one
    (`time.monotonic()` readings), noted by the tracing hooks below for the pacer's counting rule."""

    __slots__ = ("connect", "sent")

    def __init__(self) -> None:
        self.sent: float | None = None
        self.connect: float | None = None


async def _connection_opening(session: Any, context: Any, params: Any) -> None:
    context.opening = time.monotonic()


async def _connection_opened(session: Any, context: Any, params: Any) -> None:
    departure, opening = context.trace_request_ctx, getattr(context, "opening", None)
    if isinstance(departure, _Departure) and opening is not None:
        departure.connect = time.monotonic() - opening  # TCP (and TLS) handshakes: at least one round trip


async def _bytes_sent(session: Any, context: Any, params: Any) -> None:
    departure = context.trace_request_ctx
    if isinstance(departure, _Departure):
        departure.sent = time.monotonic()  # the last of the headers and body chunks: the request is out


def _tracing() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_connection_create_start.append(_connection_opening)
    config.on_connection_create_end.append(_connection_opened)
    config.on_request_headers_sent.append(_bytes_sent)
    config.on_request_chunk_sent.append(_bytes_sent)
    config.freeze()
    return config


class AsyncTransport(TransportBase):
    """Sends prepared calls to `base_url` with one `aiohttp.ClientSession` and turns answers into `Result`s or
    errors, as `Transport` does."""

    def __init__(self, base_url: str, *, keep_alive: bool = True, **options: Any) -> None:
        super().__init__(base_url, **options)
        proxies = requests.utils.get_environ_proxies(self.base_url)  # the environment, read once (as requests)
        self._proxy: str | None = proxies.get(self.scheme) or proxies.get("all")
        self.keep_alive = keep_alive
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout, self.timeout)
        self._timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=connect, sock_read=read)
        self._session: aiohttp.ClientSession | None = None
        # Loading the CA store takes tens of milliseconds: done here, not on the loop at the first request.
        self._ssl_setting = self._ssl()
        self._keepers: weakref.WeakKeyDictionary[aiohttp.ClientSession, tuple[Any, Any]] = weakref.WeakKeyDictionary()
        self._old_sessions: list[aiohttp.ClientSession] = []
        self._turns: dict[str | None, asyncio.Lock] = {}

    # -- the session ------------------------------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.scheme != "https":
            return False
        verify = self.verify
        if verify is False:
            return False
        if verify is True:
            return ssl.create_default_context()
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)

    def session(self) -> aiohttp.ClientSession:
        """The client's session, created in the running loop on first use."""
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl_setting, limit=100, force_close=not self.keep_alive)
            session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
                cookie_jar=aiohttp.CookieJar(unsafe=True),  # the gateway's cookies come from 127.0.0.1 / localhost
                timeout=self._timeout,
                trust_env=False,
                raise_for_status=False,
                trace_configs=[_tracing()] if self._paced else None,
            )
            # Only the catalogue's retry rule may send a request again (see the module docstring).
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            self._session = session
            self._watch_loop_end(session)
        return session

    def _watch_loop_end(self, session: aiohttp.ClientSession) -> None:
        """Close `session` when its loop shuts down (`asyncio.run` finalises async generators before closing the
        loop), so a client not closed in time releases its connections, and can be used again in a later loop."""

        async def keeper() -> AsyncIterator[None]:
            try:
                yield
            finally:
                if not session.closed:
                    await session.close()

        loop = asyncio.get_running_loop()
        watcher = keeper()
        self._keepers[session] = (loop, watcher)

        async def start() -> None:
            await watcher.__anext__()  # runs it to its `yield`: from then on the loop finalises it

        loop.create_task(start())

    def close_outside_loop(self) -> None:
        """Close from synchronous code, with no loop running (e.g. a test fixture's teardown): each session is
        closed on its own loop if that loop is idle; one whose loop is already closed was closed with it."""
        self._closed.set()
        self.pacer.wake()  # requests of this client waiting for pacing give up (nothing was sent)
        sessions = [s for s in [self._session, *self._old_sessions] if s is not None]
        self._session, self._old_sessions = None, []
        for session in sessions:
            loop = self._keepers.get(session, (None, None))[0]
            if session.closed or loop is None or loop.is_closed():
                continue
            if loop.is_running():
                loop.call_soon_threadsafe(lambda s=session: asyncio.ensure_future(s.close()))
            else:
                loop.run_until_complete(session.close())

    def reset(self) -> None:
        """Drop the pooled connections and cookies; the next request opens a new session (`make_session`)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            self._old_sessions.append(session)  # closed by aclose(); requests in flight on it finish

    async def aclose(self) -> None:
        """Refuse further requests, cut requests in flight (closing the session closes their connections: they
        fail at once, without a retry) and release the connections. Idempotent."""
        self._closed.set()
        self.pacer.wake()  # requests of this client waiting for pacing give up (nothing was sent)
        sessions = [s for s in [self._session, *self._old_sessions] if s is not None]
        self._session, self._old_sessions = None, []
        running = asyncio.get_running_loop()
        for session in sessions:
            loop = self._keepers.get(session, (running, None))[0]
            if session.closed or loop.is_closed():
                continue  # closed with its loop (see `_watch_loop_end`)
            if loop is running:
                await session.close()
            else:
                loop.call_soon_threadsafe(lambda s=session: asyncio.ensure_future(s.close()))

    def last_start(self) -> float | None:
        """When this task's latest request left the pacer (monotonic seconds), if it was paced."""
        return _LAST_START.get()

    # -- sending ----------------------------------------------------------------------------------------------------

    async def _pace(self, bucket: str | None, kind: str) -> PacingTicket:
        """Take a pacing slot without blocking the loop. One task per bucket waits at the pacer at a time (in
        arrival order), so a freed slot wakes one waiter, not hundreds. A store doing network I/O (Redis) is asked
        from the coordination worker thread; a task cancelled meanwhile gives back a slot the worker obtained (the
        worker runs one call at a time, in order, so the give-back runs after the try)."""
        turn = self._turns.get(bucket)
        if turn is None:
            turn = self._turns[bucket] = asyncio.Lock()
        pacer = self.pacer
        async with turn:
            ticket = pacer.ticket(bucket, None, kind)
            blocking = pacer.blocking_io
            try:
                while True:
                    wait = await offloop.call(blocking, ticket.poll)
                    if wait is None:
                        break
                    if self._closed.is_set():
                        raise PacingStopped()  # the client closed while this request waited (nothing was sent)
                    seconds = pacer.async_wait(wait, ticket.left())
                    ticket.pacer.waited += seconds
                    await pacer.waiters.wait(seconds)
            except BaseException:
                if blocking:
                    offloop.submit(ticket.done)
                else:
                    ticket.done()
                raise
        _LAST_START.set(time.monotonic())
        return ticket

    def _settle(self, ticket: PacingTicket, departure: _Departure | None) -> None:
        """The request is over: the pacer counts it by its departure (from the worker thread, without waiting,
        when the store does network I/O)."""
        sent, connect = (departure.sent, departure.connect) if departure is not None else (None, None)
        if self.pacer.blocking_io:
            offloop.submit(ticket.done, sent, connect, time.monotonic())
        else:
            ticket.done(sent, connect)

    async def send(
        self,
        call: PreparedCall,
        *,
        retry_safe: bool,
        pacing: str | None = None,
        headers: Mapping[str, str] | None = None,
        sign: bool = True,
        max_retries: int | None = None,
    ) -> Result:
        if self._closed.is_set():
            raise self._closed_error(call, maybe_sent=False)
        url = self.url_of(call)
        target = url + "?" + urlencode(call.query) if call.query else url
        request_headers: dict[str, str] | None = dict(headers) if headers else None
        body: bytes | None = None
        self.check_signed_body(call)
        if call.body is not None and not call.signed_body:
            try:
                body = json.dumps(call.body, allow_nan=False).encode()  # what requests sends for json=
            except (TypeError, ValueError) as exc:
                raise policy.connection_failure(
                    policy.UNBUILDABLE,
                    call,
                    address=self.address,
                    timeout=self.timeout,
                    detail="InvalidJSONError",
                    cause=str(exc),
                    mask=self.mask_accounts,
                ) from exc
            request_headers = {**(request_headers or {}), "Content-Type": "application/json"}
        signer = self.signer if sign else None
        attempt = 0
        while True:
            if signer is not None:
                # Fresh signature (nonce, timestamp) on every attempt.
                request_headers = {**(request_headers or {}), **signer(call.method, url, call.query)}
            if call.signed_body and self.body_signer is not None:
                # A new JWT on every attempt (its own iat/exp); it is a credential, so it is never logged.
                body = self.body_signer(call.body).encode("ascii")
                request_headers = {**(request_headers or {}), "Content-Type": "application/jwt"}
            try:
                ticket = await self._pace(pacing, f"{call.method} {call.path}") if self._paced else None
            except PacingStopped:
                raise self._closed_error(call, maybe_sent=False) from None
            departure = _Departure() if ticket is not None else None
            try:
                answer, failure = await self._attempt(call, target, body, request_headers, departure)
            finally:
                if ticket is not None:
                    self._settle(ticket, departure)
            if answer is not None:
                status, answer_headers, content, reason = answer

                text = functools.partial(_text, content, answer_headers)

                if status not in RETRY_STATUSES:
                    if not 200 <= status < 300:
                        raise policy.status_error(
                            status, answer_headers, content, text, reason, call, mask=self.mask_accounts
                        )
                    return policy.decode_result(
                        status,
                        answer_headers,
                        content,
                        text,
                        call,
                        policy.request_info(call, url),
                        mask=self.mask_accounts,
                    )
                failure = policy.status_error(
                    status, answer_headers, content, text, reason, call, mask=self.mask_accounts
                )
                if status == 429 and self._paced:  # every process of the coordination store waits
                    await offloop.call(self.pacer.blocking_io, self.pacer.pause, getattr(failure, "retry_after", None))
            assert failure is not None
            delay = self.policy.delay(failure, retry_safe=retry_safe, attempt=attempt, max_retries=max_retries)
            if delay is None:
                raise failure
            attempt += 1
            self._log_retry(call, delay, attempt, failure, max_retries)
            await asyncio.sleep(delay)
            if self._closed.is_set():
                raise self._closed_error(call, maybe_sent=False) from failure

    async def _attempt(
        self,
        call: PreparedCall,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        departure: _Departure | None = None,
    ) -> tuple[_Answer | None, ExternalBrokerError | None]:
        """One try: the answer, or None and the error."""
        if self._closed.is_set():
            return None, self._closed_error(call, maybe_sent=False)
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            started = time.perf_counter()
            self._log_request(call)
        try:
            async with self.session().request(
                call.method,
                URL(target, encoded=True),
                data=body,
                headers=headers,
                proxy=self._proxy,
                trace_request_ctx=departure,
            ) as resp:
                content = await resp.read()
                answer: _Answer = (resp.status, resp.headers, content, resp.reason)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            if self._closed.is_set():
                return None, self._closed_error(call, maybe_sent=not isinstance(exc, aiohttp.ClientConnectorError))
            failure = self._failure(exc, call)
            failure.__cause__ = exc
            return None, failure
        if debug:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._log("<- %s %s %d (%d bytes, %.1f ms)", call.method, call.path, answer[0], len(content), elapsed_ms)
        return answer, None

    async def post_outside(self, url: str, headers: Mapping[str, str], data: Any) -> tuple[int, bytes, Any]:
        """A POST outside the catalogue's path (OAuth 2.0 token and session requests): status, body, and a
        callable giving the body as text. Unpaced and never retried; raises the library's errors."""
        async with self.session().post(URL(url), headers=dict(headers), data=data, proxy=self._proxy) as resp:
            content = await resp.read()
            return resp.status, content, functools.partial(_text, content, resp.headers)

    def _failure(self, exc: BaseException, call: PreparedCall) -> ApiConnectionError:
        """What an aiohttp failure means: nothing sent (connect, TLS, connect timeout, unbuildable) or maybe sent."""
        cause: BaseException = exc
        if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error is not None:
            cause = exc.os_error
        if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientConnectorSSLError)):
            kind = policy.TLS
        elif isinstance(exc, aiohttp.ConnectionTimeoutError):
            kind = policy.CONNECT_TIMEOUT
        elif isinstance(exc, aiohttp.ClientConnectorError):
            kind = policy.CONNECT
        elif isinstance(exc, (aiohttp.InvalidURL, ValueError)):
            kind = policy.UNBUILDABLE
        elif isinstance(exc, (aiohttp.SocketTimeoutError, asyncio.TimeoutError)):
            kind = policy.READ_TIMEOUT
        else:
            kind = policy.BROKEN
        return policy.connection_failure(
            kind,
            call,
            address=self.address,
            timeout=self.timeout,
            detail=type(cause).__name__,
            cause=str(cause),
            mask=self.mask_accounts,
        )
