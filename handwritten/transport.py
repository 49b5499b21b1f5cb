"""HTTP transport: one keep-alive `requests.Session` per client, pacing, and the retry policy.

`requests` looks up proxy and CA settings in the environment on every call; the transport resolves them once, when
the client is built, and then sends with `trust_env` off. That keeps the per-call cost below a plain
`requests.Session` while honouring the same environment variables.

Retry policy (from the catalogue's `retry:`): a request marked safe is retried after connection errors, resets,
timeouts, 5xx and 429 answers, with exponential backoff and jitter (or the server's Retry-After), at most
`max_retries` times. A request marked unsafe (orders, replies, cancels, writes) is re-sent only when the failure
happened while connecting, i.e. before any byte reached the server.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from .errors import (
    ApiConnectionError,
    ApiTimeoutError,
    ExternalBrokerError,
    NotAuthenticatedError,
    RateLimitedError,
    ServerError,
)
from .pacing import NoPacer, Pacer
from .result import Result
from .wire import PreparedCall

logger = logging.getLogger("ibkr_sdk")

_USER_AGENT = "ibkr_sdk"
_MAX_MESSAGE = 300
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ACCOUNT_ID = re.compile(r"\b(DU|DF|U|F)(\d{2,})(\d{3})\b")

Signer = Callable[[str, str, Mapping[str, str]], Mapping[str, str]]
"""Adds per-attempt headers (e.g. an OAuth signature): (method, url, query) → headers."""


def mask_account_ids(text: str) -> str:
    """Hide the digits of account ids in `text` except the last three (`DU1234567` → `DU****567`)."""
    return _ACCOUNT_ID.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


def _server_message(resp: requests.Response) -> str:
    try:
        payload = resp.json()
    except ValueError:
        text = resp.text.strip()
        return (text[:_MAX_MESSAGE] + "...") if len(text) > _MAX_MESSAGE else (text or resp.reason or "no message")
    if isinstance(payload, Mapping):
        for key in ("error", "message", "msg"):
            if payload.get(key):
                return str(payload[key])
    return json.dumps(payload)[:_MAX_MESSAGE]


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(resp: requests.Response, call: PreparedCall) -> ExternalBrokerError:
    """The error for a non-2xx answer, with a hint on what to do next."""
    status = resp.status_code
    message = _server_message(resp)
    if status == 401 or "no bridge" in message.lower():
        hint = (
            "The brokerage session is not open: call initialize_brokerage_session() first."
            if "no bridge" in message.lower()
            else "The session is not authenticated: log in to the gateway (or renew the OAuth token)."
        )
        return NotAuthenticatedError(message, status_code=status, hint=hint, method=call.method, path=call.path)
    if status == 429:
        return RateLimitedError(
            message,
            retry_after=_retry_after(resp),
            hint="IBKR's pacing limit was exceeded: slow down; repeated violations lock the IP out for 10-15 minutes.",
            method=call.method,
            path=call.path,
        )
    if status >= 500:
        return ServerError(message, status_code=status, method=call.method, path=call.path)
    return ExternalBrokerError(message, status_code=status, method=call.method, path=call.path)


def _nothing_sent(exc: requests.exceptions.RequestException) -> bool:
    """True when the failure happened while connecting, so no byte of the request reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class Transport:
    """Sends prepared calls to `base_url` and turns answers into `Result`s or errors."""

    verbose_retries = False  # log each retry at INFO instead of DEBUG (the client's `verbose_retries`)

    def __init__(
        self,
        base_url: str,
        *,
        verify: bool | str = True,
        timeout: float = 10,
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
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.pacer: Pacer = pacer if pacer is not None else NoPacer()
        self.mask_accounts = mask_accounts
        self.signer = signer
        session = requests.Session()
        # Resolve the environment once (proxies) instead of on every request.
        session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        session.trust_env = False
        session.verify = verify
        if verify is False and self.base_url.startswith("https://"):
            self._quiet_unverified_warnings()
        session.headers.update({"User-Agent": _USER_AGENT, "Accept": "application/json"})
        self.session = session

    def _quiet_unverified_warnings(self) -> None:
        """Verification was turned off on purpose (the gateway's self-signed certificate): say so once in the log
        instead of a warning on every request, and only for this host."""
        host = urlsplit(self.base_url).hostname or ""
        logger.warning("TLS certificate verification is off for %s (cacert=False)", host)
        warnings.filterwarnings(
            "ignore",
            message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'",
            category=urllib3.exceptions.InsecureRequestWarning,
        )

    def close(self) -> None:
        self.session.close()

    def _log(self, text: str, *args: object) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            message = text % args if args else text
            logger.debug(mask_account_ids(message) if self.mask_accounts else message)

    def _log_info(self, text: str, *args: object) -> None:
        if logger.isEnabledFor(logging.INFO):
            message = text % args if args else text
            logger.info(mask_account_ids(message) if self.mask_accounts else message)

    def _backoff(self, attempt: int) -> float:
        base: float = min(self.max_backoff, self.retry_backoff * (2 ** (attempt - 1)))
        return base * (0.5 + random.random() / 2)  # jitter: spread retries of many threads

    def send(
        self,
        call: PreparedCall,
        *,
        retry_safe: bool,
        pacing: str | None = None,
        headers: Mapping[str, str] | None = None,
        sign: bool = True,
    ) -> Result:
        url = self.base_url + call.path
        kwargs: dict[str, Any] = {"timeout": self.timeout}
        if call.query:
            kwargs["params"] = call.query
        if call.body is not None:
            kwargs["json"] = call.body
        request_info: dict[str, Any] = {"method": call.method, "url": url}
        if call.query:
            request_info["params"] = dict(call.query)
        if call.body is not None:
            request_info["json"] = call.body
        attempt = 0
        while True:
            failure: ExternalBrokerError
            resp: requests.Response | None = None
            with self.pacer.slot(pacing):
                extra = dict(headers or {})
                if sign and self.signer is not None:
                    # Fresh signature (nonce, timestamp) on every attempt.
                    extra.update(self.signer(call.method, url, call.query))
                if extra:
                    kwargs["headers"] = extra
                started = time.perf_counter()
                self._log("-> %s %s %s", call.method, call.path, call.query or "")
                try:
                    resp = self.session.request(call.method, url, **kwargs)
                except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
                    timed_out = isinstance(exc, requests.exceptions.Timeout)
                    failure = (ApiTimeoutError if timed_out else ApiConnectionError)(
                        f"no answer within {self.timeout} s"
                        if timed_out
                        else f"connection failed ({type(exc).__name__})",
                        maybe_sent=not _nothing_sent(exc),
                        method=call.method,
                        path=call.path,
                    )
                except requests.exceptions.RequestException as exc:
                    raise ApiConnectionError(
                        f"request could not be sent ({type(exc).__name__})", method=call.method, path=call.path
                    ) from exc
            wait: float | None = None
            if resp is not None:
                elapsed_ms = (time.perf_counter() - started) * 1000
                self._log(
                    "<- %s %s %d (%d bytes, %.1f ms)",
                    call.method,
                    call.path,
                    resp.status_code,
                    len(resp.content),
                    elapsed_ms,
                )
                if resp.status_code not in _RETRY_STATUSES:
                    return self._result(resp, call, request_info)
                failure = _status_error(resp, call)
                may_retry = retry_safe
                if isinstance(failure, RateLimitedError) and failure.retry_after is not None:
                    if failure.retry_after > self.max_retry_after:
                        raise failure
                    wait = failure.retry_after
            else:
                assert isinstance(failure, ApiConnectionError)
                may_retry = retry_safe or not failure.maybe_sent
            if not may_retry or attempt >= self.max_retries:
                raise failure
            attempt += 1
            delay = wait if wait is not None else self._backoff(attempt)
            (self._log_info if self.verbose_retries else self._log)(
                "retrying %s %s in %.2f s (attempt %d of %d): %s",
                call.method,
                call.path,
                delay,
                attempt,
                self.max_retries,
                failure,
            )
            time.sleep(delay)

    def _result(self, resp: requests.Response, call: PreparedCall, request_info: dict[str, Any]) -> Result:
        status = resp.status_code
        if not 200 <= status < 300:
            raise _status_error(resp, call)
        content = resp.content
        if not content:
            return Result(data=None, request=request_info)
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            if "json" in resp.headers.get("Content-Type", ""):
                raise ExternalBrokerError(
                    f"the answer is not valid JSON ({exc.msg} at position {exc.pos})",
                    status_code=status,
                    method=call.method,
                    path=call.path,
                ) from exc
            data = resp.text
        return Result(data=data, request=request_info)
