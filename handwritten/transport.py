"""HTTP transport: one keep-alive `requests.Session` per client, pacing, and the retry policy.

`requests` looks up proxy and CA settings in the environment on every call; the transport resolves them once, when
the client is built (proxies; `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE` when verification uses the default store),
and then sends with `trust_env` off. That keeps the per-call cost close to a bare `requests.Session` while
honouring the same environment variables.

What reached the server decides what a failure means: a failure while building the request, connecting or during
the TLS handshake is `maybe_sent=False` (the connection classes tag it); a reset or timeout after that is
`maybe_sent=True`. `close()` cuts requests in flight by shutting down their sockets.

Retry policy (from the catalogue's `retry:`): a request marked safe is retried after connection errors, resets,
timeouts, 5xx and 429 answers, with exponential backoff and jitter (or the server's Retry-After), at most
`max_retries` times. A request marked unsafe (orders, replies, cancels, writes) is re-sent only when the failure
happened while connecting, i.e. before any byte reached the server.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests import exceptions as _errors

from . import policy
from .errors import ApiConnectionError, ClientClosedError, ExternalBrokerError
from .pacing import NoPacer, Pacer, PacingStopped, note_connected, note_sent
from .policy import RETRY_STATUSES, RetryPolicy, mask_account_ids
from .result import Result
from .wire import PreparedCall

logger = logging.getLogger("ibkr_sdk")

_REAL_REQUEST = requests.request
"""`requests.request` as imported. When `requests.request` on this module is anything else at call time (a test
patched `ibkr_sdk.lib.transport.requests` or `requests.request`, as the peer's dry-run examples patch
`ibind.base.rest_client.requests`), every request goes to that stand-in instead of the network."""
_RESPONSE = requests.Response

_USER_AGENT = "ibkr_sdk"
_MAX_LOGGED_BODY = 2000

Signer = Callable[[str, str, Mapping[str, str]], Mapping[str, str]]
"""Adds per-attempt headers (e.g. an OAuth signature): (method, url, query) → headers."""


_UNSENT = "_ibkr_sdk_nothing_sent"
"""Attribute set on an exception raised while a connection was being opened (TCP connect, proxy tunnel, TLS
handshake): no byte of the request had left the client then."""

_NOT_SENDABLE = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidJSONError,
)
"""Raised by `requests` while building the request, before any connection is used."""


def _nothing_sent(exc: BaseException) -> bool:
    """True when the failure happened before any byte of the request reached the server: while building the
    request, while connecting, or during the TLS handshake."""
    if isinstance(exc, (_errors.ConnectTimeout, *_NOT_SENDABLE)):
        return True
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        if getattr(current, _UNSENT, False) or isinstance(current, urllib3.exceptions.NewConnectionError):
            return True
        reason = getattr(current, "reason", None)
        pending.extend(
            [
                current.__cause__,
                current.__context__,
                reason if isinstance(reason, BaseException) else None,
                *(arg for arg in current.args if isinstance(arg, BaseException)),
            ]
        )
    return False


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause of a `requests` error (e.g. the `ConnectionRefusedError` under three wrappers)."""
    current = exc
    for _ in range(10):
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        elif current.__cause__ is not None or current.__context__ is not None:
            current = current.__cause__ or current.__context__  # type: ignore[assignment]
        else:
            break
    return current


class _ConnectTagging:
    """Marks every exception raised while connecting (TCP, proxy tunnel, TLS handshake) as "nothing sent"."""

    def connect(self) -> None:
        try:
            super().connect()  # type: ignore[misc]
        except BaseException as exc:
            try:
                setattr(exc, _UNSENT, True)
            except AttributeError:
                pass
            raise

    def _new_conn(self) -> Any:
        started = time.monotonic()
        sock = super()._new_conn()  # type: ignore[misc]
        note_connected(time.monotonic() - started)  # a TCP handshake: one network round trip, for pacing
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)  # type: ignore[misc]
        note_sent()  # the request's bytes are on their way: pacing counts it from now


class _HTTPConnection(_ConnectTagging, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_ConnectTagging, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    """Keeps a weak list of its connections so the owner can cut requests in flight on `close()`."""

    ConnectionCls = _HTTPConnection

    def __init__(self, *args: Any, registry: weakref.WeakSet[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registry = registry

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        self._registry.add(conn)
        return conn


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    """As `_HTTPPool`; with `quiet`, no `InsecureRequestWarning` for unverified connections: the owner turned
    verification off on purpose and said so once in the log. No warning filter is touched."""

    ConnectionCls = _HTTPSConnection

    def __init__(self, *args: Any, registry: weakref.WeakSet[Any], quiet: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registry = registry
        self._quiet = quiet

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        self._registry.add(conn)
        return conn

    def _validate_conn(self, conn: Any) -> None:
        if not self._quiet:
            super()._validate_conn(conn)
            return
        urllib3.HTTPConnectionPool._validate_conn(self, conn)
        if getattr(conn, "sock", None) is None:
            conn.connect()


class _Adapter(requests.adapters.HTTPAdapter):
    """`HTTPAdapter` whose pools tag connect-time failures, may skip the unverified-TLS warning, and can cut every
    connection at once (`abort`)."""

    def __init__(self, quiet: bool) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._pool_classes: dict[str, Any] = {
            "http": functools.partial(_HTTPPool, registry=self._connections),
            "https": functools.partial(_HTTPSPool, registry=self._connections, quiet=quiet),
        }
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.ProxyManager:
        manager: urllib3.ProxyManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._pool_classes
        return manager

    def abort(self) -> None:
        """Shut down every socket of this adapter, idle or in the middle of a request (which then fails at once)."""
        for conn in list(self._connections):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _environment_ca_bundle() -> str | None:
    """The CA bundle named by the environment: `REQUESTS_CA_BUNDLE`, else `CURL_CA_BUNDLE` (as `requests` reads
    them), else OpenSSL's `SSL_CERT_FILE`."""
    return (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or os.environ.get("SSL_CERT_FILE")
        or None
    )


class TransportBase:
    """What both transports share: the server, the timeout, the retry policy, pacing, masking and logging.

    `verify` is the resolved TLS setting: False (no verification), True (the system store, or the CA bundle named
    by `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE`, read once here) or the path of a CA bundle.
    """

    verbose_retries = False  # log each retry at INFO instead of DEBUG (the client's `verbose_retries`)

    def __init__(
        self,
        base_url: str,
        *,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = 10,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        pacer: Pacer | None = None,
        mask_accounts: bool = False,
        signer: Signer | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.policy = RetryPolicy(max(0, int(max_retries)), retry_backoff, max_backoff, max_retry_after)
        self.pacer: Pacer = pacer if pacer is not None else NoPacer()
        self._paced = not isinstance(self.pacer, NoPacer)
        self.mask_accounts = mask_accounts
        self.signer = signer
        self.body_signer: Callable[[Any], str] | None = None
        """Turns a SIGNED_JWT request's body into its JWT (OAuth 2.0); None: such requests are refused."""
        split = urlsplit(self.base_url)
        self.root = f"{split.scheme}://{split.netloc}"
        """Scheme and host of the server: other base paths (`/gw/api/v1`) hang below it."""
        self.scheme = split.scheme
        self.address = split.netloc or self.base_url
        """`host:port` of the server, for error messages."""
        if verify is True:
            verify = _environment_ca_bundle() or True
        self.verify: bool | str = verify
        self._closed = threading.Event()

    # The retry numbers live in the policy; these keep them readable and settable on the transport.
    @property
    def max_retries(self) -> int:
        return self.policy.max_retries

    @max_retries.setter
    def max_retries(self, value: int) -> None:
        self.policy.max_retries = value

    @property
    def retry_backoff(self) -> float:
        return self.policy.retry_backoff

    @retry_backoff.setter
    def retry_backoff(self, value: float) -> None:
        self.policy.retry_backoff = value

    @property
    def max_backoff(self) -> float:
        return self.policy.max_backoff

    @max_backoff.setter
    def max_backoff(self, value: float) -> None:
        self.policy.max_backoff = value

    @property
    def max_retry_after(self) -> float:
        return self.policy.max_retry_after

    @max_retry_after.setter
    def max_retry_after(self, value: float) -> None:
        self.policy.max_retry_after = value

    @property
    def stand_in(self) -> bool:
        """True while requests go to a stand-in for `requests` (a dry run): see `Transport.stand_in`."""
        return False

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def pause(self, seconds: float) -> bool:
        """Wait `seconds` unless the transport is closed meanwhile; True when it is closed (blocking: the sync
        client's; the asyncio client waits with `AsyncClientCore._pause`)."""
        return self._closed.wait(seconds)

    def _closed_error(self, call: PreparedCall, *, maybe_sent: bool) -> ClientClosedError:
        return policy.closed_error(call, maybe_sent=maybe_sent, mask=self.mask_accounts)

    def _mask(self, text: str) -> str:
        return mask_account_ids(text) if self.mask_accounts else text

    def _log(self, text: str, *args: object) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(self._mask(text % args if args else text))

    def _log_info(self, text: str, *args: object) -> None:
        if logger.isEnabledFor(logging.INFO):
            message = text % args if args else text
            logger.info(mask_account_ids(message) if self.mask_accounts else message)

    def _backoff(self, attempt: int) -> float:
        return self.policy.backoff(attempt)

    def url_of(self, call: PreparedCall) -> str:
        """The request's URL: below the base URL, or below another base path of the same host (`/gw/api/v1`)."""
        return self.base_url + call.path if call.base is None else self.root + call.base + call.path

    def check_signed_body(self, call: PreparedCall) -> None:
        """A SIGNED_JWT body needs the OAuth 2.0 key: refused before sending without one."""
        if call.signed_body and call.body is not None and self.body_signer is None:
            from .oauth2 import OAuth2Error

            raise OAuth2Error(f"{call.method} {call.path}: a SIGNED_JWT body needs OAuth 2.0; nothing was sent")

    def _log_request(self, call: PreparedCall) -> None:
        body = "" if call.body is None else " " + json.dumps(call.body, default=str)[:_MAX_LOGGED_BODY]
        self._log("-> %s %s %s%s", call.method, call.path, call.query or "", body)

    def _log_retry(
        self,
        call: PreparedCall,
        delay: float,
        attempt: int,
        failure: ExternalBrokerError,
        max_retries: int | None = None,
    ) -> None:
        (self._log_info if self.verbose_retries else self._log)(
            "retrying %s %s in %.2f s (attempt %d of %d): %s",
            call.method,
            call.path,
            delay,
            attempt,
            self.max_retries if max_retries is None else max_retries,
            failure,
        )


class Transport(TransportBase):
    """Sends prepared calls to `base_url` with one keep-alive `requests.Session` and turns answers into `Result`s
    or errors."""

    def __init__(self, base_url: str, **options: Any) -> None:
        super().__init__(base_url, **options)
        session = requests.Session()
        # Resolve the environment once (proxies, CA bundle) instead of on every request, as requests would.
        session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        session.trust_env = False
        session.verify = self.verify
        quiet = self.verify is False and self.scheme == "https"
        self._adapter = _Adapter(quiet)
        session.mount("https://", self._adapter)
        session.mount("http://", self._adapter)
        session.headers.update({"User-Agent": _USER_AGENT, "Accept": "application/json"})
        self.session = session

    @property
    def stand_in(self) -> bool:
        """True while `requests.request` is replaced (e.g. by `unittest.mock.patch`): requests go to the stand-in,
        not to the network, and the client sends only what the called method itself sends (no preflight)."""
        return requests.request is not _REAL_REQUEST

    def last_start(self) -> float | None:
        """When this thread's latest request left the pacer (monotonic seconds), if it was paced."""
        return self.pacer.last_start()

    def post_outside(self, url: str, headers: Mapping[str, str], data: Any) -> tuple[int, bytes, Callable[[], str]]:
        """A POST outside the catalogue (the OAuth 2.0 token and SSO session requests): not paced, never retried,
        and through the same seam as `send()`. With `requests.request` replaced (a dry run), the stand-in gets it
        and nothing reaches the network; its answer is read as the peer read answers (`json()`).

        Returns (status, body, text of the body)."""
        request = requests.request  # looked up at call time, as in send()
        if request is _REAL_REQUEST:
            resp = self.session.post(url, headers=dict(headers), timeout=self.timeout, data=data)
            return resp.status_code, resp.content, lambda: resp.text
        answer = request(
            "POST", url, verify=self.session.verify, headers=dict(headers), timeout=self.timeout, data=data
        )
        status = getattr(answer, "status_code", 200)
        try:
            body = json.dumps(answer.json()).encode()
        except (TypeError, ValueError, AttributeError):
            body = b""  # a bare mock: read as an empty answer (the caller names what is missing)
        return status if isinstance(status, int) else 200, body, lambda: ""

    def close(self) -> None:
        """Refuse further requests, cut requests in flight (they fail at once, without a retry) and release the
        connections. Idempotent."""
        self._closed.set()
        self.pacer.wake()  # a request of this client waiting for pacing gives up at once (nothing was sent)
        self._adapter.abort()
        self.session.close()

    def _transport_failure(self, exc: requests.exceptions.RequestException, call: PreparedCall) -> ApiConnectionError:
        """The error for a request that got no usable answer, saying whether it may have reached the server."""
        cause = _root_cause(exc)
        if isinstance(exc, _NOT_SENDABLE):
            kind, detail, text = policy.UNBUILDABLE, type(exc).__name__, str(exc)
        elif _nothing_sent(exc):
            if isinstance(exc, _errors.Timeout):
                kind = policy.CONNECT_TIMEOUT
            elif isinstance(exc, _errors.SSLError):
                kind = policy.TLS
            else:
                kind = policy.CONNECT
            detail, text = type(cause).__name__, str(cause)
        else:
            kind = policy.READ_TIMEOUT if isinstance(exc, _errors.Timeout) else policy.BROKEN
            detail, text = type(cause).__name__, str(cause)
        return policy.connection_failure(
            kind,
            call,
            address=self.address,
            timeout=self.timeout,
            detail=detail,
            cause=text,
            mask=self.mask_accounts,
            scheme=urlsplit(self.base_url).scheme,
        )

    def send(
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
        kwargs: dict[str, Any] = {"timeout": self.timeout}
        if call.query:
            kwargs["params"] = call.query
        if call.body is not None and not call.signed_body:
            kwargs["json"] = call.body
        self.check_signed_body(call)
        if headers:
            kwargs["headers"] = headers
        signer = self.signer if sign else None
        debug = logger.isEnabledFor(logging.DEBUG)
        attempt = 0
        while True:
            failure: ExternalBrokerError
            resp: requests.Response | None = None
            if self._paced:
                try:
                    with self.pacer.slot(pacing, kind=f"{call.method} {call.path}", stop=self._closed):
                        resp, failure = self._attempt(call, url, kwargs, headers, signer, debug)
                except PacingStopped:
                    raise self._closed_error(call, maybe_sent=False) from None
            else:
                resp, failure = self._attempt(call, url, kwargs, headers, signer, debug)
            if resp is not None:
                if not isinstance(resp, _RESPONSE):
                    return self._stand_in_result(resp, call, policy.request_info(call, url))
                if resp.status_code not in RETRY_STATUSES:
                    return self._result(resp, call, policy.request_info(call, url))
                failure = self._status_error(resp, call)
                if resp.status_code == 429 and self._paced:
                    self.pacer.pause(getattr(failure, "retry_after", None))  # every process of the store waits
            delay = self.policy.delay(failure, retry_safe=retry_safe, attempt=attempt, max_retries=max_retries)
            if delay is None:
                raise failure
            attempt += 1
            self._log_retry(call, delay, attempt, failure, max_retries)
            if self._closed.wait(delay):
                raise self._closed_error(call, maybe_sent=False) from failure

    def _attempt(
        self,
        call: PreparedCall,
        url: str,
        kwargs: dict[str, Any],
        headers: Mapping[str, str] | None,
        signer: Signer | None,
        debug: bool,
    ) -> tuple[requests.Response | None, Any]:
        """One try: the response, or None and the error."""
        if self._closed.is_set():
            return None, self._closed_error(call, maybe_sent=False)
        if signer is not None:
            # Fresh signature (nonce, timestamp) on every attempt.
            kwargs["headers"] = {**(headers or {}), **signer(call.method, url, call.query)}
        if call.signed_body and self.body_signer is not None:
            # A new JWT on every attempt (its own iat/exp); it is a credential, so it is never logged.
            kwargs["data"] = self.body_signer(call.body).encode("ascii")
            kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/jwt"}
        if debug:
            started = time.perf_counter()
            self._log_request(call)
        request = requests.request  # looked up at call time: a patched `requests` intercepts every request
        try:
            if request is _REAL_REQUEST:
                resp = self.session.request(call.method, url, **kwargs)
            else:
                resp = request(call.method, url, verify=self.session.verify, **kwargs)
        except _errors.RequestException as exc:
            if self._closed.is_set():
                return None, self._closed_error(call, maybe_sent=not _nothing_sent(exc))
            failure = self._transport_failure(exc, call)
            failure.__cause__ = exc
            return None, failure
        if debug and isinstance(resp, _RESPONSE):
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._log(
                "<- %s %s %d (%d bytes, %.1f ms)",
                call.method,
                call.path,
                resp.status_code,
                len(resp.content),
                elapsed_ms,
            )
        return resp, None

    def _stand_in_result(self, resp: Any, call: PreparedCall, request_info: dict[str, Any]) -> Result:
        """The answer of a stand-in for `requests` (a mock in a dry run), read as the peer read answers:
        `raise_for_status()`, then `json()`."""
        try:
            resp.raise_for_status()
        except _errors.HTTPError as exc:
            status = getattr(resp, "status_code", None)
            raise ExternalBrokerError(
                f"the stand-in for requests answered with an error ({exc})",
                status_code=status if isinstance(status, int) else None,
                method=call.method,
                path=self._mask(call.path),
            ) from exc
        return Result(data=resp.json(), request=request_info)

    def _status_error(self, resp: requests.Response, call: PreparedCall) -> ExternalBrokerError:
        return policy.status_error(
            resp.status_code,
            resp.headers,
            resp.content,
            lambda: resp.text,
            resp.reason,
            call,
            mask=self.mask_accounts,
        )

    def _result(self, resp: requests.Response, call: PreparedCall, request_info: dict[str, Any]) -> Result:
        if not 200 <= resp.status_code < 300:
            raise self._status_error(resp, call)
        return policy.decode_result(
            resp.status_code,
            resp.headers,
            resp.content,
            lambda: resp.text,
            call,
            request_info,
            mask=self.mask_accounts,
        )


__all__ = ["Signer", "Transport", "TransportBase", "is_loopback", "mask_account_ids"]
