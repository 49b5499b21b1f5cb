"""`AsyncClientCore`: what every generated coroutine endpoint method calls, `await self._call(...)`.

The same flows as `core.ClientCore` (`call_flow`, `send_flow`, `preflight_flow`), driven by `flow.arun`: a yielded
request is awaited on the asyncio transport, a sleep is `asyncio.sleep`, a lock is taken without blocking the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..coordination import offloop
from ..core import call_flow, preflight_flow, send_flow, signed_send_flow
from ..endpoint import EndpointSpec
from ..flow import SharedLock, arun, gather_limited
from ..result import Result
from ..wire import PreparedCall

if TYPE_CHECKING:
    import threading

    from ..coordination import Backend
    from ..flow import Flow
    from ..oauth import OAuth1aSigner
    from ..oauth2 import OAuth2Session
    from ..session_guard import SessionGuard
    from .transport import AsyncTransport


class AsyncClientCore:
    """State shared by all coroutine endpoint mixins, and the asyncio driver of the flows. `AsyncIbkrClient`
    sets it up."""

    account_id: str | None
    _transport: AsyncTransport
    _endpoints: Mapping[str, EndpointSpec]
    _auto_preflight: bool
    _preflight_done: set[str]
    _preflight_lock: asyncio.Lock
    _oauth_signer: OAuth1aSigner | OAuth2Session | None = None
    _auto_reauthenticate: bool = False
    _session_guard: SessionGuard
    _coordination: Backend
    mask_account_ids: bool = False
    auto_recreate_session: bool = True
    log_responses: bool = False

    async def _call(self, spec: EndpointSpec, args: Mapping[str, Any], *, method_name: str | None = None) -> Result:
        return await arun(call_flow(self, spec, args, method_name))

    async def _send(self, spec: EndpointSpec, call: PreparedCall, headers: dict[str, str] | None = None) -> Result:
        return await arun(send_flow(self, spec, call, headers))

    async def _run_preflight(self, spec: EndpointSpec) -> None:
        await arun(preflight_flow(self, spec))

    async def _send_signed(
        self,
        spec: EndpointSpec,
        call: PreparedCall,
        headers: dict[str, str] | None = None,
        *,
        max_retries: int | None = None,
    ) -> Result:
        return await arun(signed_send_flow(self, spec, call, headers, max_retries=max_retries))

    def _recreate_session(self) -> None:
        self._transport.reset()

    # -- what flows yield (see flow.py): awaitables here ------------------------------------------------------------

    @staticmethod
    def _sleep(seconds: float) -> Awaitable[None]:
        return asyncio.sleep(seconds)

    def _coordinate(self, fn: Callable[..., Any], *args: Any, undo: Callable[[Any], object] | None = None) -> Any:
        """A call into the coordination store: in place, or from its worker thread when the store does network
        I/O (Redis), so the loop never waits on it."""
        if not self._coordination.io:
            return fn(*args)
        return offloop.call(True, fn, *args, undo=undo)

    @staticmethod
    def _acquire(lock: Any) -> Awaitable[Any]:
        if isinstance(lock, SharedLock):
            return lock.acquire_async()
        acquired: Awaitable[Any] = lock.acquire()  # an asyncio.Lock of this client
        return acquired

    async def _pause(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        """Wait `seconds` unless `cancel` is set or the client closed meanwhile (looked at every 50 ms, since
        neither can wake a task); True when stopped early."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            if (cancel is not None and cancel.is_set()) or self._transport.closed:
                return True
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, 0.05))

    @staticmethod
    def _guarded_reopen(
        guard: SessionGuard, seen: int, attempt: Callable[[], Flow[Any]], refusal: int | None
    ) -> Awaitable[Any]:
        return guard.reopen_async(seen, lambda: arun(attempt()), refusal)

    @staticmethod
    def _gather(thunks: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> Awaitable[list[Any]]:
        return gather_limited(list(thunks), limit)
