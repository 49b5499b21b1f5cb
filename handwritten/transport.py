"""HTTP transport: one keep-alive `requests.Session` per client.

`requests` looks up proxy and CA settings in the environment on every call; the transport resolves them once, when
the client is built, and then sends with `trust_env` off. That keeps the per-call cost below a plain
`requests.Session` while honouring the same environment variables.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import requests
import urllib3

from .errors import ApiConnectionError, ApiTimeoutError, ExternalBrokerError
from .result import Result
from .wire import PreparedCall

logger = logging.getLogger("ibkr_sdk")

_USER_AGENT = "ibkr_sdk"
_MAX_MESSAGE = 300


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


def _hint(status: int, message: str) -> str | None:
    lowered = message.lower()
    if "no bridge" in lowered:
        return "The brokerage session is not open: call initialize_brokerage_session() first."
    if status == 401:
        return "The session is not authenticated: log in to the gateway (or renew the OAuth token)."
    if status == 429:
        return "IBKR's pacing limit was exceeded: slow down; repeated violations lock the IP out for 10-15 minutes."
    return None


def _nothing_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the failure happened while connecting, so no byte of the request reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class Transport:
    """Sends prepared calls to `base_url` and turns answers into `Result`s or errors."""

    def __init__(
        self,
        base_url: str,
        *,
        verify: bool | str = True,
        timeout: float = 10,
        max_retries: int = 3,
        retry_backoff: float = 0.25,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = retry_backoff
        session = requests.Session()
        # Resolve the environment once (proxies) instead of on every request.
        session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        session.trust_env = False
        session.verify = verify
        session.headers.update({"User-Agent": _USER_AGENT, "Accept": "application/json"})
        self.session = session

    def close(self) -> None:
        self.session.close()

    def send(self, call: PreparedCall, *, retry_safe: bool) -> Result:
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
            try:
                logger.debug("%s %s %s", call.method, call.path, call.query or "")
                resp = self.session.request(call.method, url, **kwargs)
                break
            except requests.exceptions.Timeout as exc:
                failure: ExternalBrokerError = ApiTimeoutError(
                    f"no answer within {self.timeout} s", method=call.method, path=call.path
                )
                may_retry = retry_safe or isinstance(exc, requests.exceptions.ConnectTimeout)
            except requests.exceptions.ConnectionError as exc:
                failure = ApiConnectionError(
                    f"connection failed ({type(exc).__name__})", method=call.method, path=call.path
                )
                may_retry = retry_safe or _nothing_sent(exc)
            except requests.exceptions.RequestException as exc:
                raise ApiConnectionError(
                    f"request could not be sent ({type(exc).__name__})", method=call.method, path=call.path
                ) from exc
            if not may_retry or attempt >= self.max_retries:
                raise failure
            attempt += 1
            logger.debug("retrying %s %s (attempt %d of %d)", call.method, call.path, attempt, self.max_retries)
            time.sleep(self.retry_backoff * (2 ** (attempt - 1)))
        return self._result(resp, call, request_info)

    def _result(self, resp: requests.Response, call: PreparedCall, request_info: dict[str, Any]) -> Result:
        status = resp.status_code
        if not 200 <= status < 300:
            message = _server_message(resp)
            raise ExternalBrokerError(
                message, status_code=status, method=call.method, path=call.path, hint=_hint(status, message)
            )
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
