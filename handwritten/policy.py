"""What an answer (or its absence) means, and whether to try again: pure functions shared by both transports.

The sync transport (`transport.py`, `requests`) and the asyncio one (`aio/transport.py`, `aiohttp`) differ only in
how bytes move. Everything they decide is here and works on plain values (status, headers, body bytes, the kind
of connection failure), never on a library's response object: the error for a non-2xx answer and its hint, the
`Retry-After` reading, decoding a 2xx body into a `Result`, the message of a connection failure and whether the
request may have reached the server, and the retry decision with its backoff.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import (
    ApiConnectionError,
    ApiTimeoutError,
    ClientClosedError,
    ExternalBrokerError,
    NotAuthenticatedError,
    RateLimitedError,
    ServerError,
)
from .result import Result
from .wire import PreparedCall

MAX_MESSAGE = 300
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ACCOUNT_ID = re.compile(r"\b(DU|DF|U|F)(\d{2,})(\d{3})\b")


def mask_account_ids(text: str) -> str:
    """Hide the digits of account ids in `text` except the last three (`DU1234567` → `DU****567`)."""
    return _ACCOUNT_ID.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


def mask_error(error: ExternalBrokerError) -> None:
    """Hide account ids in an error's text and attributes."""
    error.message = mask_account_ids(error.message)
    if error.path:
        error.path = mask_account_ids(error.path)
    error.args = tuple(mask_account_ids(a) if isinstance(a, str) else a for a in error.args)


def server_message(content: bytes, text: Callable[[], str], reason: str | None) -> str:
    """The server's own words for a failed request: the `error`/`message`/`msg` of a JSON body, else its text."""
    try:
        payload = json.loads(content)
    except ValueError:
        body = text().strip()
        return (body[:MAX_MESSAGE] + "...") if len(body) > MAX_MESSAGE else (body or reason or "no message")
    if isinstance(payload, Mapping):
        for key in ("error", "message", "msg", "detail"):  # detail: an RFC 9457 problem (/gw/api/v1)
            if payload.get(key):
                return str(payload[key])
    return json.dumps(payload)[:MAX_MESSAGE]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a `Retry-After` header asks to wait (a number or an HTTP date), None when absent or unreadable."""
    value = headers.get("Retry-After")
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


def status_error(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    text: Callable[[], str],
    reason: str | None,
    call: PreparedCall,
    *,
    mask: bool = False,
) -> ExternalBrokerError:
    """The error for a non-2xx answer, with a hint on what to do next."""
    message = server_message(content, text, reason)
    error: ExternalBrokerError
    if status == 401 or "no bridge" in message.lower():
        hint = (
            "The brokerage session is not open: call initialize_brokerage_session() first."
            if "no bridge" in message.lower()
            else "The session is not authenticated: log in to the gateway (or renew the OAuth token)."
        )
        error = NotAuthenticatedError(message, status_code=status, hint=hint, method=call.method, path=call.path)
    elif status == 429:
        error = RateLimitedError(
            message,
            retry_after=retry_after(headers),
            hint="IBKR's pacing limit was exceeded: slow down; repeated violations lock the IP out for 10-15 minutes.",
            method=call.method,
            path=call.path,
        )
    elif status >= 500:
        error = ServerError(message, status_code=status, method=call.method, path=call.path)
    else:
        error = ExternalBrokerError(message, status_code=status, method=call.method, path=call.path)
    if mask:
        mask_error(error)
    return error


def request_info(call: PreparedCall, url: str) -> dict[str, Any]:
    """`Result.request`: what was sent."""
    info: dict[str, Any] = {"method": call.method, "url": url}
    if call.query:
        info["params"] = dict(call.query)
    if call.body is not None:
        info["json"] = call.body
    return info


def decode_result(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    text: Callable[[], str],
    call: PreparedCall,
    info: dict[str, Any],
    *,
    mask: bool = False,
) -> Result:
    """A 2xx answer as a `Result` (JSON decoded; a non-JSON body kept as text). Raises for a JSON content type
    whose body does not parse: the answer cannot be used."""
    if not content:
        return Result(data=None, request=info)
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        if "json" in headers.get("Content-Type", ""):
            raise ExternalBrokerError(
                f"the answer is not valid JSON ({exc.msg} at position {exc.pos})",
                status_code=status,
                method=call.method,
                path=mask_account_ids(call.path) if mask else call.path,
            ) from exc
        data = text()
    return Result(data=data, request=info)


# Kinds of connection failure, as each transport classifies its library's exceptions.
UNBUILDABLE = "unbuildable"  # the request could not be built: nothing was sent
CONNECT_TIMEOUT = "connect-timeout"  # no connection within the timeout: nothing was sent
TLS = "tls"  # the TLS handshake failed: nothing was sent
CONNECT = "connect"  # connecting failed (refused, DNS, unreachable): nothing was sent
READ_TIMEOUT = "read-timeout"  # sent, no answer within the timeout
BROKEN = "broken"  # the connection broke after the request was sent


def connection_failure(
    kind: str,
    call: PreparedCall,
    *,
    address: str,
    timeout: object,
    detail: str,
    cause: str = "",
    mask: bool = False,
) -> ApiConnectionError:
    """The error for a request that got no usable answer, saying whether it may have reached the server."""

    def masked(text: str) -> str:
        return mask_account_ids(text) if mask else text

    path = masked(call.path)
    if kind == UNBUILDABLE:
        return ApiConnectionError(
            masked(f"request could not be built ({detail}: {cause})"),
            maybe_sent=False,
            method=call.method,
            path=path,
            hint="Nothing was sent.",
        )
    if kind == CONNECT_TIMEOUT:
        text = f"no connection to {address} within the timeout ({detail})"
    elif kind == TLS:
        text = f"TLS handshake with {address} failed ({detail}: {cause})"
    elif kind == CONNECT:
        text = f"connection to {address} failed ({detail})"
    elif kind == READ_TIMEOUT:
        return ApiTimeoutError(masked(f"no answer from {address} within {timeout} s"), method=call.method, path=path)
    else:
        return ApiConnectionError(
            masked(f"the connection to {address} broke after the request was sent ({detail})"),
            method=call.method,
            path=path,
        )
    return ApiConnectionError(masked(text), maybe_sent=False, method=call.method, path=path)


def closed_error(call: PreparedCall, *, maybe_sent: bool, mask: bool = False) -> ClientClosedError:
    """The error for a request refused, or cut off, because the client was closed."""
    return ClientClosedError(
        "the client is closed" + (" (the request was cut off)" if maybe_sent else ""),
        maybe_sent=maybe_sent,
        method=call.method,
        path=mask_account_ids(call.path) if mask else call.path,
    )


@dataclass
class RetryPolicy:
    """The catalogue's retry rule with its numbers: a request marked safe is retried after connection errors,
    resets, timeouts, 5xx and 429, with exponential backoff and jitter (or the server's Retry-After), at most
    `max_retries` times; one marked unsafe only when nothing reached the server."""

    max_retries: int = 3
    retry_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        base: float = min(self.max_backoff, self.retry_backoff * (2 ** (attempt - 1)))
        return base * (0.5 + random.random() / 2)  # jitter: spread retries of many callers

    def delay(
        self, failure: ExternalBrokerError, *, retry_safe: bool, attempt: int, max_retries: int | None = None
    ) -> float | None:
        """Seconds to wait before attempt number `attempt + 1`, or None: give up and raise `failure`.

        `failure` is the error of attempt number `attempt` (0 for the first try): a connection failure, or the
        error of an answer whose status is in `RETRY_STATUSES`. `max_retries` overrides the policy's for one call.
        """
        if isinstance(failure, ClientClosedError):
            return None
        wait: float | None = None
        if isinstance(failure, ApiConnectionError):
            may_retry = retry_safe or not failure.maybe_sent
        else:
            # A new brokerage session refuses with 500 until /iserver/accounts is called: waiting does not help
            # (the client calls it and sends again, see core.py).
            may_retry = retry_safe and "/accounts first" not in failure.message.lower()
            if isinstance(failure, RateLimitedError) and failure.retry_after is not None:
                if failure.retry_after > self.max_retry_after:
                    return None
                wait = failure.retry_after
        if not may_retry or attempt >= (self.max_retries if max_retries is None else max_retries):
            return None
        return wait if wait is not None else self.backoff(attempt + 1)
