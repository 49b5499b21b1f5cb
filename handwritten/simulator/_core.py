"""What every endpoint handler of the simulator shares: the request it gets, the answers it can give, and the
registry that maps catalogue endpoint names to handlers.

A handler is a function `(state, request) -> body`; it returns the JSON body of a 200 answer, a `SimResponse`
for anything else, or raises `GatewayError` for an error answer (`{"error": message}` with a status). Handlers
run with the state lock held, so they may read and change the state freely; they must not block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..lib.endpoint import EndpointSpec

if TYPE_CHECKING:
    from ._state import GatewayState


@dataclass
class SimRequest:
    method: str
    path: str  # below /v1/api, e.g. /iserver/account/DU1234567/orders
    endpoint: EndpointSpec
    params: dict[str, str]  # path parameters by their wire name
    query: dict[str, str]
    body: Any  # decoded JSON body, or None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    target: str = ""  # the request target as received, e.g. /v1/api/iserver/accounts?x=1

    def q(self, name: str, default: str | None = None) -> str | None:
        value = self.query.get(name)
        return value if value not in (None, "") else default

    def require_q(self, name: str) -> str:
        value = self.q(name)
        if value is None:
            raise GatewayError(400, f"Bad Request: missing required parameter '{name}'")
        return value

    def field(self, name: str, default: Any = None) -> Any:
        if isinstance(self.body, dict):
            return self.body.get(name, default)
        return default


@dataclass
class SimResponse:
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json;charset=utf-8"


class GatewayError(Exception):
    """An error answer: HTTP `status` with `{"error": message}` (or `body` when given)."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body if body is not None else {"error": message}


Handler = Callable[["GatewayState", SimRequest], Any]

HANDLERS: dict[str, Handler] = {}
"""Endpoint name (as in the catalogue) -> handler. Endpoints without a handler answer 501."""


def handles(*names: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of the named catalogue endpoints."""

    def register(fn: Handler) -> Handler:
        for name in names:
            if name in HANDLERS:
                raise ValueError(f"two simulator handlers for {name}")
            HANDLERS[name] = fn
        return fn

    return register


def as_int(value: Any, what: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise GatewayError(400, f"Bad Request: {what} must be an integer, got {value!r}") from None


def as_float(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise GatewayError(400, f"Bad Request: {what} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise GatewayError(400, f"Bad Request: {what} must be a number, got {value!r}") from None


def csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
