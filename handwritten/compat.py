"""What a user of the peer library ibind calls on its client beyond the catalogue: the raw request escape hatch
(`get`, `post`, `delete`, `request`), session handling (`close_session`, `make_session`), the health handlers, and
the peer's answer shape for a single order.

Why hand-written: these are client machinery, not endpoints. The escape hatch goes through the same transport,
pacing, OAuth signing and retry rules as the catalogue's methods: a path the catalogue knows gets that endpoint's
retry safety, pacing bucket and preflight; any other request is sent once unless the caller passes
`retry_safe=True`.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from .._client_base import GeneratedEndpoints
from .._endpoint_table import ENDPOINTS
from .core import preflight_flow, send_flow
from .endpoint import EndpointSpec
from .errors import ExternalBrokerError, RequestValidationError
from .flow import Flow, run
from .oauth_client import OAuthOverlay
from .orders import Answers, OrderInput, OrderRequest, OrdersOverlay
from .policy import mask_account_ids
from .result import Result
from .transport import Transport
from .wire import PreparedCall

logger = logging.getLogger("ibkr_sdk")

HEALTH_ATTEMPTS = 3
HEALTH_RETRY_INTERVAL = 1.0  # seconds between health checks in handle_auth_status / handle_health_status
ORDER_ACK = "order_submitted"  # Result.endpoint of a single order's acknowledgement (see models_access)
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
_PLACEHOLDER = re.compile(r"\\\{[A-Za-z_][A-Za-z0-9_]*\\\}")


@lru_cache(maxsize=1)
def _known_paths() -> tuple[tuple[str, re.Pattern[str], EndpointSpec], ...]:
    """Every catalogue endpoint as (HTTP method, path pattern, spec); fixed paths first, so they win over
    templates (`/iserver/account/orders` before `/iserver/account/{accountId}`)."""
    rows = []
    for spec in ENDPOINTS.values():
        pattern = _PLACEHOLDER.sub("[^/]+", re.escape(spec.path))
        rows.append((spec.path.count("{"), spec.http, re.compile(pattern), spec))
    rows.sort(key=lambda row: row[0])
    return tuple((http, pattern, spec) for _, http, pattern, spec in rows)


def known_endpoint(method: str, path: str) -> EndpointSpec | None:
    """The catalogue entry a raw `method path` (below the base URL) addresses, if any."""
    bare = path.split("?", 1)[0].rstrip("/") or "/"
    for http, pattern, spec in _known_paths():
        if http == method and pattern.fullmatch(bare):
            return spec
    return None


def _is_one_order(order_request: object) -> bool:
    return isinstance(order_request, (Mapping, OrderRequest))


def _single_order_result(result: Result) -> Result:
    """The peer's shape for one order: the acknowledgement itself, not a list of one."""
    data = result.data
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], Mapping):
        single = result.copy(data=dict(data[0]))
        single.endpoint = ORDER_ACK
        return single
    return result


def request_flow(
    api: Any,
    method: str,
    endpoint: str,
    base_url: str | None,
    extra_headers: dict[str, str] | None,
    log: bool,
    retry_safe: bool | None,
    kwargs: Mapping[str, Any],
) -> Flow[Result]:
    """The escape hatch: checks, then the catalogue's rules for a path it knows, else one unretried request."""
    name = "request"
    verb = method.upper() if isinstance(method, str) else method
    if verb not in _METHODS:
        raise RequestValidationError(name, "method", f"must be one of {', '.join(sorted(_METHODS))}, got {method!r}")
    if not isinstance(endpoint, str) or not endpoint.strip("/ "):
        raise RequestValidationError(name, "endpoint", f"must be a path below the base URL, got {endpoint!r}")
    if "://" in endpoint:
        raise RequestValidationError(name, "endpoint", "must be a path below the base URL, not a full URL")
    if base_url is not None and base_url.rstrip("/") != api._transport.base_url.rstrip("/"):
        raise RequestValidationError(
            name, "base_url", "must be None or the client's own base URL; create a client for another server"
        )
    unknown = set(kwargs) - {"params", "json"}
    if unknown:
        raise RequestValidationError(
            name, sorted(unknown)[0], "is not supported: pass the query as params= and the JSON body as json="
        )
    params = kwargs.get("params")
    if params is not None and not isinstance(params, Mapping):
        raise RequestValidationError(name, "params", f"must be a dict, got {type(params).__name__}")
    query = {str(k): _query_text(v) for k, v in (params or {}).items() if v is not None}
    body = kwargs.get("json")
    if extra_headers is not None and not isinstance(extra_headers, Mapping):
        raise RequestValidationError(name, "extra_headers", "must be a dict of header names to values")
    path = "/" + endpoint.strip().lstrip("/")
    known = known_endpoint(verb, path)
    spec = EndpointSpec(
        name=known.name if known else name,
        http=verb,
        path=path,
        retry_safe=(known.retry_safe if known else False) if retry_safe is None else bool(retry_safe),
        pacing=known.pacing if known else None,
        preflight=known.preflight if known else (),
    )
    if log:
        line = f"{verb} {path}" + (f" {query}" if query else "")
        logger.info(mask_account_ids(line) if api.mask_account_ids else line)
    if spec.preflight and api._auto_preflight:
        yield from preflight_flow(api, spec)
    call = PreparedCall(verb, path, query, body)
    result: Result = yield from send_flow(api, spec, call, dict(extra_headers) if extra_headers else None)
    result.endpoint = known.name if known else None
    return result


def health_check_flow(api: Any, check: Callable[[], Any], raise_exceptions: bool) -> Flow[bool]:
    """Up to `HEALTH_ATTEMPTS` checks a `HEALTH_RETRY_INTERVAL` apart; with OAuth, a new live session token after
    the last failed one."""
    for attempt in range(HEALTH_ATTEMPTS):
        if (yield check()):
            return True
        if attempt < HEALTH_ATTEMPTS - 1:
            logger.warning("IBKR connection is not healthy; checking again (%d/%d)", attempt + 2, HEALTH_ATTEMPTS)
            yield api._sleep(HEALTH_RETRY_INTERVAL)
    config = getattr(api, "oauth_config", None)
    if not api.use_oauth or config is None:
        logger.warning("IBKR connection is not healthy: log in to the gateway again (or let IBeam do it)")
        return False
    logger.warning("IBKR connection is not healthy; renewing the OAuth live session token")
    try:
        api.stop_tickler(15)
        yield api.oauth_init(config.maintain_oauth, config.init_brokerage_session)
    except ExternalBrokerError as exc:
        logger.error("re-authentication failed: %s", exc)
        if raise_exceptions:
            raise
    return False


class CompatOverlay(OrdersOverlay, OAuthOverlay, GeneratedEndpoints):
    """The peer client's methods that are not endpoints, and its constructor options' behaviour."""

    _transport: Transport
    mask_account_ids: bool = False
    auto_recreate_session: bool = True
    log_responses: bool = False

    # ---- the escape hatch -------------------------------------------------------------------------------------

    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        base_url: str | None = None,
        extra_headers: dict[str, str] | None = None,
        log: bool = True,
        *,
        retry_safe: bool | None = None,
    ) -> Result:
        """GET `path` (below the base URL) with `params` as the query. See `request`."""
        return self.request("GET", path, base_url, extra_headers, log, retry_safe=retry_safe, params=params)

    def post(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        base_url: str | None = None,
        extra_headers: dict[str, str] | None = None,
        log: bool = True,
        *,
        retry_safe: bool | None = None,
    ) -> Result:
        """POST `params` as the JSON body to `path` (below the base URL). See `request`."""
        return self.request("POST", path, base_url, extra_headers, log, retry_safe=retry_safe, json=params)

    def delete(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        base_url: str | None = None,
        extra_headers: dict[str, str] | None = None,
        log: bool = True,
        *,
        retry_safe: bool | None = None,
    ) -> Result:
        """DELETE `path` (below the base URL), with `params` as the JSON body when given. See `request`."""
        return self.request("DELETE", path, base_url, extra_headers, log, retry_safe=retry_safe, json=params)

    def request(
        self,
        method: str,
        endpoint: str,
        base_url: str | None = None,
        extra_headers: dict[str, str] | None = None,
        log: bool = True,
        *,
        retry_safe: bool | None = None,
        **kwargs: Any,
    ) -> Result:
        """Send a request the catalogue has no method for (or any raw request), with the client's transport.

        It gets the same pacing, OAuth signing, error types and retry rules as the catalogue's methods. When
        `method endpoint` is an endpoint of the catalogue, that endpoint's retry safety, pacing bucket and
        preflight apply and `result.parsed()` knows its model. Any other request is never re-sent after a failure
        that may have reached the server, unless `retry_safe=True` says repeating it is harmless.

        Args:
            method: GET, POST, PUT or DELETE.
            endpoint: Path below the base URL, e.g. `"iserver/account/orders"` (a leading slash is optional).
            base_url: Must be None or the client's own base URL: requests go only to the server the client is
                configured (and, with OAuth, signed) for.
            extra_headers: Further HTTP headers.
            log: Also log the request line at INFO on the `ibkr_sdk` logger.
            retry_safe: Override whether a failed request may be re-sent (default: the catalogue's rule, or never
                for an endpoint it does not know).
            **kwargs: `params` (dict: the query) and/or `json` (the JSON body). Keys whose value is None are not
                sent.

        Raises:
            ValueError: a bad argument (nothing is sent).
            ExternalBrokerError: the request failed.
        """
        return run(request_flow(self, method, endpoint, base_url, extra_headers, log, retry_safe, kwargs))

    # ---- the connection pool ----------------------------------------------------------------------------------

    def close_session(self) -> None:
        """Close the pooled connections. The client stays usable: the next request opens a new connection."""
        self._transport.session.close()

    def make_session(self) -> None:
        """Start afresh: close the pooled connections and forget cookies; settings (TLS, headers) are kept."""
        self._recreate_session()

    # ---- health handlers -------------------------------------------------------------------------------------

    def handle_auth_status(self, raise_exceptions: bool = False) -> bool:
        """Check `check_auth_status()` up to three times, a second apart; with OAuth, if it stays unhealthy, get a
        new live session token (`oauth_init` with the config's settings).

        Returns:
            True when the session is healthy; False otherwise (also after a re-authentication, which the next
            check confirms).

        Raises:
            ExternalBrokerError: only with `raise_exceptions`, when re-authenticating failed.
        """
        return self._attempt_health_check(self.check_auth_status, raise_exceptions)

    def handle_health_status(self, raise_exceptions: bool = False) -> bool:
        """As `handle_auth_status`, but checks with `tickle()` (`check_health`). Deprecated, as in the peer: IBKR
        wants /tickle at most once a minute; prefer `handle_auth_status` plus the tickler."""
        warnings.warn(
            "handle_health_status() calls tickle(), which IBKR wants at most once a minute; use handle_auth_status() "
            "and start_tickler()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._attempt_health_check(self.check_health, raise_exceptions)

    def _attempt_health_check(self, check: Callable[[], bool], raise_exceptions: bool) -> bool:
        return run(health_check_flow(self, check, raise_exceptions))

    # ---- the peer's answer shape for one order -------------------------------------------------------------------

    def place_order(
        self, order_request: OrderInput | Sequence[OrderInput], answers: Answers, account_id: str | None = None
    ) -> Result:
        """Place an order, a bracket or an OCA group, answering IBKR's confirmation questions from `answers`.

        For one order, `result.data` is its acknowledgement (`{"order_id": ..., "order_status": ...}`), as in the
        peer library; for a list of orders, the list of acknowledgements. See `OrdersOverlay.place_order` for the
        checks, the question/reply flow and what happens when the outcome is unknown.
        """
        result = super().place_order(order_request, answers, account_id)
        return _single_order_result(result) if _is_one_order(order_request) else result

    def modify_order(
        self, order_id: str, order_request: OrderInput, answers: Answers, account_id: str | None = None
    ) -> Result:
        """Change an open order (see `OrdersOverlay.modify_order`); `result.data` is the one acknowledgement."""
        return _single_order_result(super().modify_order(order_id, order_request, answers, account_id))


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_query_text(v) for v in value)
    return str(value)


__all__ = ["CompatOverlay", "known_endpoint"]
