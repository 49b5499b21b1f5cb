"""`AsyncIbkrClient`: the generated coroutine endpoint methods plus the overlays, for asyncio programs.

Every method of `IbkrClient` that sends requests is here as a coroutine with the same signature and the same
docstring (a test keeps them in step), except the connection-pool and signal-handler helpers (`close` becomes
`aclose`). The overlays run the very flows `IbkrClient` runs (`flow.py`): question/reply, reconciliation by cOID,
StockQuery, history by symbols, snapshots, health checks, OAuth token renewal; only the I/O differs. Pacing is the
process-wide pacer sync clients of the same server use, the order lock the same per-account lock, and through the
coordination store (`coordination=`) both are shared with other processes, as are the preflight, the keep-alive
and the live-orders snapshot; a store doing network I/O (Redis) is called from one worker thread, never the loop.

Cancellation: `place_order` and `modify_order` run their flow in a task of their own, shielded from the caller's
cancellation. A caller cancelled before the order request went out ends the flow with nothing sent; after that,
the flow runs to its end (bounded by the client's timeouts: questions answered or declined, the order reconciled),
its outcome is logged with the cOID, the order lock is released, and then `CancelledError` is raised.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import inspect
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Hashable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from ..._async_client_base import AsyncGeneratedEndpoints
from ..client import ClientSetup, IbkrClient
from ..compat import _is_one_order, _single_order_result, health_check_flow, request_flow
from ..coordination import offloop
from ..endpoint import EndpointSpec
from ..errors import ClientClosedError, OrderStateUnknownError
from ..flow import Flow, arun
from ..lifecycle import Verdict
from ..marketdata import (
    SNAPSHOT_ATTEMPTS,
    SNAPSHOT_INTERVAL,
    history_by_conids_flow,
    history_by_symbol_flow,
    history_by_symbols_flow,
    snapshot_by_symbol_flow,
    snapshot_until_ready_flow,
    unsubscribe_flow,
)
from ..naming import present_methods
from ..oauth import OAuth1aConfig
from ..oauth2 import OAuth2Config, OAuth2Error
from ..oauth2_client import (
    create_sso_session_flow,
    oauth2_access_token_flow,
    oauth2_after_tickle_flow,
    oauth2_init_flow,
    oauth2_of,
    oauth2_shutdown_flow,
    read_post_answer,
)
from ..oauth_client import live_session_token_flow, oauth_init_flow, oauth_shutdown_flow
from ..orders import (
    Answers,
    OrderAbandoned,
    OrderInput,
    _LiveOrdersFeed,
    cancel_order_flow,
    check_answers,
    checked_modification,
    feeds_reconciliation,
    modify_order_flow,
    offer_live_orders,
    place_order_flow,
    prepare_orders,
)
from ..policy import mask_account_ids
from ..portfolio import positions_all_flow
from ..recovery import keep_alive_flow, restore_session_flow
from ..result import Result
from ..session import authentication_status_flow, check_auth_status_flow, check_health_flow, tickle_flow
from ..stock_query import StockQueries, StockQuery, security_stocks_flow, stock_conid_flow
from ..tickler import DEFAULT_INTERVAL
from ..types import OneOrMany
from .transport import AsyncTransport

logger = logging.getLogger("ibkr_sdk")

F = TypeVar("F", bound=Callable[..., Any])
ORDER_FLOW_DRAIN = 60.0
"""Seconds `aclose()` waits at most for order flows still running (each is bounded by the client's timeouts)."""


def _mirror(sync: Callable[..., Any]) -> Callable[[F], F]:
    """Give a coroutine method the docstring of its `IbkrClient` twin: one text for both."""

    def apply(method: F) -> F:
        method.__doc__ = inspect.getdoc(sync)
        return method

    return apply


def _report(method: str, subject: str, task: asyncio.Future[Result]) -> None:
    """The outcome of an order flow whose caller was cancelled: nobody else will see it."""
    if task.cancelled():
        logger.warning(
            "%s(): the order flow for %s was cut off after its caller was cancelled; its state is unknown: check "
            "live_orders() for it before sending it again",
            method,
            subject,
        )
        return
    error = task.exception()
    if error is None:
        logger.warning(
            "%s(): the caller was cancelled, but the order flow for %s completed: %s",
            method,
            subject,
            task.result().data,
        )
    elif isinstance(error, OrderAbandoned):
        logger.info("%s(): the caller was cancelled before %s was sent; nothing was sent", method, subject)
    elif isinstance(error, OrderStateUnknownError):
        logger.warning("%s(): the caller was cancelled; %s", method, error)
    else:
        logger.warning("%s(): the caller was cancelled; %s did not go through: %s", method, subject, error)


class AsyncIbkrClient(ClientSetup, AsyncGeneratedEndpoints):
    """Client for the IBKR Client Portal Web API for asyncio programs: `IbkrClient`'s methods as coroutines.

    Use it as `async with AsyncIbkrClient(...) as client:` (or call `await client.aclose()`); it can be built
    inside or outside a running loop, and serves one loop. It takes the same arguments as `IbkrClient` and keeps
    the same guarantees: arguments checked before sending, pacing shared with every client of the same server in
    the process (sync ones included) and, through `coordination`, in every other process, one order exchange at a
    time per account, no order request ever sent twice, a lost answer resolved by cOID. No thread is started per
    request. Needs `pip install ibkr-cpapi-sdk[async]` (aiohttp).

    With OAuth, the live session token is obtained when the client is entered (`async with`) or on its first
    request, since a constructor cannot wait. `auto_register_shutdown` is not supported here (a library must not
    take over the loop's signal handling): leave the `async with` block instead.
    """

    _transport: AsyncTransport
    default_filtering: bool = True
    """What `default_filtering=None` means in `security_stocks_by_symbol` / `stock_conid_by_symbol`."""
    tickler_interval: float = DEFAULT_INTERVAL

    def __init__(
        self,
        account_id: str | None = None,
        url: str | None = None,
        host: str = "127.0.0.1",
        port: str = "5000",
        base_route: str = "/v1/api/",
        cacert: str | os.PathLike[str] | bool | None = None,
        timeout: float = 10,
        max_retries: int = 3,
        use_session: bool | None = None,
        auto_recreate_session: bool = True,
        auto_register_shutdown: bool | None = None,
        log_responses: bool | None = None,
        verbose_retries: bool | None = None,
        use_oauth: bool | None = None,
        oauth_config: Any = None,
        *,
        auto_preflight: bool = True,
        pacing: bool = True,
        pacing_time_scale: float = 1.0,
        max_pacing_wait: float | None = None,
        mask_account_ids: bool = False,
        auto_suppress: bool = False,
        auto_reauthenticate: bool | None = None,
        coordination: str | None = None,
        coordination_fallback: str | None = None,
    ) -> None:
        self._oauth_pending: OAuth1aConfig | OAuth2Config | None = None
        self._oauth_task: asyncio.Task[None] | None = None
        self._order_tasks: set[asyncio.Future[Result]] = set()
        self._setup(
            account_id,
            url,
            host,
            port,
            base_route,
            cacert,
            timeout,
            max_retries,
            use_session,
            auto_recreate_session,
            auto_register_shutdown,
            log_responses,
            verbose_retries,
            use_oauth,
            oauth_config,
            auto_preflight=auto_preflight,
            pacing=pacing,
            pacing_time_scale=pacing_time_scale,
            max_pacing_wait=max_pacing_wait,
            mask_account_ids=mask_account_ids,
            auto_suppress=auto_suppress,
            auto_reauthenticate=auto_reauthenticate,
            coordination=coordination,
            coordination_fallback=coordination_fallback,
        )

    # -- construction hooks (ClientSetup) -------------------------------------------------------------------------

    def _make_transport(self, url: str, use_session: bool, **options: Any) -> AsyncTransport:
        return AsyncTransport(url, keep_alive=use_session, **options)

    def _make_lock(self) -> asyncio.Lock:
        return asyncio.Lock()

    def _start_oauth(self, config: OAuth1aConfig | OAuth2Config) -> None:
        self._oauth_pending = config  # obtained on entering the client or on its first request

    def register_shutdown_handler(self) -> None:
        logger.warning(
            "%s: auto_register_shutdown is not supported; leave the `async with` block (or await aclose())",
            type(self).__name__,
        )

    def _register_shutdown(self, caller: str) -> None:
        self.register_shutdown_handler()

    # -- life cycle -----------------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        account = self.account_id
        if account is not None and self.mask_account_ids:
            account = mask_account_ids(account)
        return f"{type(self).__name__}(url={self.base_url!r}, account_id={account!r})"

    async def aclose(self) -> None:
        """Stop the tickler, let order flows still running end (bounded by the client's timeouts), cut any other
        request in flight and release the connections. Every later call raises `ClientClosedError`. Idempotent."""
        self.stop_tickler()
        pending = [t for t in self._order_tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=ORDER_FLOW_DRAIN)
        await self._transport.aclose()
        tickler = self._tickler
        if tickler is not None:
            await asyncio.gather(tickler, return_exceptions=True)

    async def __aenter__(self) -> AsyncIbkrClient:
        if self._oauth_pending is not None:
            await self._oauth_started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _oauth_started(self) -> None:
        """Run the deferred `oauth_init` once, whichever task gets here first; the others wait for it."""
        if self._oauth_task is None:
            config = self._oauth_pending
            assert config is not None
            self._oauth_task = asyncio.ensure_future(
                self.oauth_init(
                    config.maintain_oauth, config.init_brokerage_session, shutdown_oauth=config.shutdown_oauth
                )
            )
        task = self._oauth_task
        if task is asyncio.current_task():
            return
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                if task.cancelled() or task.exception() is not None:
                    self._oauth_task = None  # it raised to its callers: the next request tries again
                else:
                    self._oauth_pending = None

    # -- the core, with what the overlays add to it ---------------------------------------------------------------

    async def _call(self, spec: EndpointSpec, args: Mapping[str, Any], *, method_name: str | None = None) -> Result:
        if self._oauth_pending is not None and self._oauth_task is not asyncio.current_task():
            await self._oauth_started()
        if not feeds_reconciliation(spec, args):
            return await super()._call(spec, args, method_name=method_name)
        before = time.monotonic()
        result = await super()._call(spec, args, method_name=method_name)
        offer_live_orders(self, args, before, result)
        return result

    def _live_snapshot(
        self, feed: _LiveOrdersFeed, not_before: float, account_id: str | None
    ) -> Coroutine[Any, Any, tuple[Result | None, str]]:
        return feed.snapshot_async(not_before, lambda: self.live_orders(account_id=account_id))

    async def _restore_session(
        self, seen: int | None = None, cancel: threading.Event | None = None, refusal: int | None = None
    ) -> Verdict:
        """Re-open the brokerage session if it can (once at a time per gateway, with every client of the process);
        the streaming client calls it when the socket reports the session closed."""
        return await arun(restore_session_flow(self, seen, cancel, refusal))

    # -- the tickler: an asyncio task -----------------------------------------------------------------------------

    def start_tickler(self, interval: float | None = None) -> None:
        """Call `tickle()` every `interval` seconds (default `tickler_interval`, 60) in a task of the running loop
        until `stop_tickler()` or `aclose()`.

        Raises:
            ClientClosedError: the client is closed.
        """
        if self._transport.closed:
            raise ClientClosedError("start_tickler(): the client is closed")
        if interval is not None:
            if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
                raise ValueError(f"start_tickler(): parameter 'interval' must be a number above 0, got {interval!r}")
            self.tickler_interval = float(interval)
        if self._tickler is None or self._tickler.done():
            self._tickler = asyncio.get_running_loop().create_task(self._tickle_forever(self.tickler_interval))

    def stop_tickler(self, timeout: float | None = None) -> None:
        """Stop the keep-alive task if it runs (a tick in progress is cut). `timeout` is accepted for
        `IbkrClient`'s signature; nothing waits here."""
        tickler = self._tickler
        if tickler is not None and not tickler.done():
            tickler.cancel()

    async def _tickle_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if not await self._keepalive_claimed(interval):
                continue  # another client or process keeps the session alive this interval
            try:
                await arun(keep_alive_flow(self))  # a tickle that also re-opens a dropped brokerage session
            except ClientClosedError:
                return  # the client was closed during the tick: nothing more to keep alive
            except Exception as exc:  # keep ticking: the next tick may succeed
                logger.warning("tickle failed: %s", exc)

    async def _keepalive_claimed(self, interval: float) -> bool:
        """One keep-alive per session: claim this interval's tick in the coordination store (as the sync tickler
        does); when the store is unusable, tick anyway (a keep-alive too many does no harm)."""
        try:
            return bool(await offloop.call(self._coordination.io, self._keepalive_claim, interval * 0.9))
        except Exception as exc:
            logger.debug("tickle: coordination unavailable (%s); ticking", exc)
            return True

    # -- session --------------------------------------------------------------------------------------------------

    @_mirror(IbkrClient.tickle)
    async def tickle(self, log: bool = False) -> Result:
        result = await arun(tickle_flow(self, log))
        return await arun(oauth2_after_tickle_flow(self, result))

    @_mirror(IbkrClient.authentication_status)
    async def authentication_status(self, log: bool = True) -> Result:
        return await arun(authentication_status_flow(self, log))

    @_mirror(IbkrClient.check_health)
    async def check_health(self) -> bool:
        return await arun(check_health_flow(self))

    @_mirror(IbkrClient.check_auth_status)
    async def check_auth_status(self) -> bool:
        return await arun(check_auth_status_flow(self))

    @_mirror(IbkrClient.handle_auth_status)
    async def handle_auth_status(self, raise_exceptions: bool = False) -> bool:
        return await arun(health_check_flow(self, self.check_auth_status, raise_exceptions))

    @_mirror(IbkrClient.handle_health_status)
    async def handle_health_status(self, raise_exceptions: bool = False) -> bool:
        warnings.warn(
            "handle_health_status() calls tickle(), which IBKR wants at most once a minute; use handle_auth_status() "
            "and start_tickler()",
            DeprecationWarning,
            stacklevel=2,
        )
        return await arun(health_check_flow(self, self.check_health, raise_exceptions))

    # -- OAuth ----------------------------------------------------------------------------------------------------

    _oauth2_brokerage = False  # OAuth 2.0: the brokerage session was opened: re-open it with every new SSO session

    @property
    def _oauth2(self) -> Any:
        """The OAuth 2.0 session (tokens and bearer), or None: the streaming client reads its bearer."""
        return oauth2_of(self)

    @_mirror(IbkrClient.generate_live_session_token)
    async def generate_live_session_token(self) -> None:
        if oauth2_of(self) is not None:
            raise OAuth2Error(
                "generate_live_session_token() is OAuth 1.0a; with OAuth 2.0 use oauth_init() or create_sso_session()"
            )
        await arun(live_session_token_flow(self))

    @_mirror(IbkrClient.oauth_init)
    async def oauth_init(
        self, maintain_oauth: bool, init_brokerage_session: bool, *, shutdown_oauth: bool = False
    ) -> None:
        if oauth2_of(self) is not None:
            await arun(oauth2_init_flow(self, maintain_oauth, init_brokerage_session, shutdown_oauth))
        else:
            await arun(oauth_init_flow(self, maintain_oauth, init_brokerage_session, shutdown_oauth))

    @_mirror(IbkrClient.oauth_shutdown)
    async def oauth_shutdown(self) -> None:
        session = oauth2_of(self)
        if session is not None:
            await arun(oauth2_shutdown_flow(self, session))
        else:
            await arun(oauth_shutdown_flow(self))

    @_mirror(IbkrClient.oauth2_access_token)
    async def oauth2_access_token(self) -> None:
        await arun(oauth2_access_token_flow(self))

    @_mirror(IbkrClient.create_sso_session)
    async def create_sso_session(self) -> Result:
        return await arun(create_sso_session_flow(self))

    async def _oauth2_post(self, step: str, url: str, headers: Mapping[str, str], **body: Any) -> tuple[int, Any, str]:
        """As `IbkrClient._oauth2_post`: the form and the JWT are credentials, so nothing of them is logged."""
        if self._transport.closed:
            raise ClientClosedError(f"OAuth 2.0 {step}: the client is closed")
        where = urlsplit(url)
        logger.debug("-> POST %s (OAuth 2.0 %s; body not logged)", where.path, step)
        try:
            status, content, text = await self._transport.post_outside(url, headers, body.get("data"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise OAuth2Error(
                f"OAuth 2.0 {step} request to {where.netloc} got no answer ({type(exc).__name__})", step=step
            ) from None
        logger.debug("<- POST %s %d", where.path, status)
        return read_post_answer(status, content, text)

    # -- the escape hatch -----------------------------------------------------------------------------------------

    @_mirror(IbkrClient.get)
    async def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        base_url: str | None = None,
        extra_headers: dict[str, str] | None = None,
        log: bool = True,
        *,
        retry_safe: bool | None = None,
    ) -> Result:
        return await self.request("GET", path, base_url, extra_headers, log, retry_safe=retry_safe, params=params)

    @_mirror(IbkrClient.post)
    async def post(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        base_url: str | None = None,
        extra_headers: dict[str, str] | None = None,
        log: bool = True,
        *,
        retry_safe: bool | None = None,
    ) -> Result:
        return await self.request("POST", path, base_url, extra_headers, log, retry_safe=retry_safe, json=params)

    @_mirror(IbkrClient.delete)
    async def delete(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        base_url: str | None = None,
        extra_headers: dict[str, str] | None = None,
        log: bool = True,
        *,
        retry_safe: bool | None = None,
    ) -> Result:
        return await self.request("DELETE", path, base_url, extra_headers, log, retry_safe=retry_safe, json=params)

    @_mirror(IbkrClient.request)
    async def request(
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
        return await arun(request_flow(self, method, endpoint, base_url, extra_headers, log, retry_safe, kwargs))

    # -- orders ---------------------------------------------------------------------------------------------------

    async def _shielded_order(
        self, method: str, subject: str, make: Callable[[Callable[[], bool]], Flow[Result]]
    ) -> Result:
        """Run an order flow in its own task, shielded from the caller's cancellation (see the module docstring)."""
        abandoned = threading.Event()
        task: asyncio.Future[Result] = asyncio.ensure_future(arun(make(abandoned.is_set)))
        self._order_tasks.add(task)
        task.add_done_callback(self._order_tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and task.cancelled():
                raise  # the flow itself was cancelled (the loop is shutting down)
            abandoned.set()
            task.add_done_callback(functools.partial(_report, method, subject))
            if not task.done():
                try:
                    await asyncio.shield(task)  # bounded by the client's timeouts
                except asyncio.CancelledError:
                    raise  # cancelled again: the flow goes on in the background and reports when done
                except BaseException:  # noqa: S110 - its outcome is reported by _report
                    pass
            raise

    @_mirror(IbkrClient.place_order)
    async def place_order(
        self, order_request: OrderInput | Sequence[OrderInput], answers: Answers, account_id: str | None = None
    ) -> Result:
        checked = check_answers("place_order", answers)
        orders = prepare_orders("place_order", "order_request", order_request)
        subject = "the order with cOID " + ", ".join(repr(o["cOID"]) for o in orders)
        result = await self._shielded_order(
            "place_order", subject, lambda abandoned: place_order_flow(self, orders, checked, account_id, abandoned)
        )
        return _single_order_result(result) if _is_one_order(order_request) else result

    @_mirror(IbkrClient.modify_order)
    async def modify_order(
        self, order_id: str, order_request: OrderInput, answers: Answers, account_id: str | None = None
    ) -> Result:
        checked = check_answers("modify_order", answers)
        order = checked_modification(order_request)
        subject = f"the modification of order {order_id}"
        result = await self._shielded_order(
            "modify_order",
            subject,
            lambda abandoned: modify_order_flow(self, order_id, order, checked, account_id, abandoned),
        )
        return _single_order_result(result)

    @_mirror(IbkrClient.cancel_order)
    async def cancel_order(self, order_id: str, account_id: str | None = None) -> Result:
        return await arun(cancel_order_flow(self, order_id, account_id))

    @_mirror(IbkrClient.whatif_order)
    async def whatif_order(self, order_request: OrderInput, account_id: str | None = None) -> Result:
        orders = prepare_orders("whatif_order", "order_request", order_request, assign_coid=False)
        return await self._whatif_order(orders=orders, account_id=account_id)

    # -- stocks and market data -----------------------------------------------------------------------------------

    @_mirror(IbkrClient.security_stocks_by_symbol)
    async def security_stocks_by_symbol(self, queries: StockQueries, default_filtering: bool | None = None) -> Result:
        return await arun(security_stocks_flow(self, queries, default_filtering))

    @_mirror(IbkrClient.stock_conid_by_symbol)
    async def stock_conid_by_symbol(
        self, queries: StockQueries, default_filtering: bool | None = None, return_type: str = "dict"
    ) -> Result:
        return await arun(stock_conid_flow(self, queries, default_filtering, return_type))

    @_mirror(IbkrClient.snapshot_until_ready)
    async def snapshot_until_ready(
        self,
        conids: OneOrMany[str],
        fields: OneOrMany[str],
        attempts: int = SNAPSHOT_ATTEMPTS,
        interval: float = SNAPSHOT_INTERVAL,
    ) -> Result:
        return await arun(snapshot_until_ready_flow(self, conids, fields, attempts, interval))

    @_mirror(IbkrClient.live_marketdata_snapshot_by_symbol)
    async def live_marketdata_snapshot_by_symbol(self, queries: StockQueries, fields: OneOrMany[str]) -> dict[str, Any]:
        return await arun(snapshot_by_symbol_flow(self, queries, fields))

    @_mirror(IbkrClient.marketdata_history_by_symbol)
    async def marketdata_history_by_symbol(
        self,
        symbol: str | StockQuery,
        bar: str,
        exchange: str | None = None,
        period: str | None = None,
        outside_rth: bool | None = None,
        start_time: datetime.datetime | None = None,
    ) -> Result:
        return await arun(history_by_symbol_flow(self, symbol, bar, exchange, period, outside_rth, start_time))

    @_mirror(IbkrClient.marketdata_history_by_conids)
    async def marketdata_history_by_conids(
        self,
        conids: Sequence[str] | Mapping[Hashable, str],
        period: str = "1min",
        bar: str = "1min",
        outside_rth: bool = True,
        start_time: datetime.datetime | None = None,
        raise_on_error: bool = False,
        run_in_parallel: bool = True,
    ) -> dict[Any, Any]:
        return await arun(
            history_by_conids_flow(self, conids, period, bar, outside_rth, start_time, raise_on_error, run_in_parallel)
        )

    @_mirror(IbkrClient.marketdata_history_by_symbols)
    async def marketdata_history_by_symbols(
        self,
        queries: StockQueries,
        period: str = "1min",
        bar: str = "1min",
        outside_rth: bool = True,
        start_time: datetime.datetime | None = None,
        raise_on_error: bool = False,
        run_in_parallel: bool = True,
    ) -> dict[Any, Any]:
        return await arun(
            history_by_symbols_flow(
                self, queries, period, bar, outside_rth, start_time, raise_on_error, run_in_parallel
            )
        )

    @_mirror(IbkrClient.marketdata_unsubscribe)
    async def marketdata_unsubscribe(self, conids: OneOrMany[str]) -> list[Result]:
        return await arun(unsubscribe_flow(self, conids))

    # -- portfolio ------------------------------------------------------------------------------------------------

    @_mirror(IbkrClient.positions_all)
    async def positions_all(
        self,
        account_id: str | None = None,
        model: str | None = None,
        sort: str | None = None,
        direction: str | None = None,
        period: str | None = None,
        max_pages: int = 100,
    ) -> Result:
        return await arun(positions_all_flow(self, account_id, model, sort, direction, period, max_pages))


# Argument errors name AsyncIbkrClient; the coroutine methods stay coroutine functions (Python 3.13 suggests the
# parameter itself).
present_methods(AsyncIbkrClient, suggest=False)

__all__ = ["AsyncIbkrClient"]
