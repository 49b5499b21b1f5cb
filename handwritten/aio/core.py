"""`AsyncClientCore`: what every generated coroutine endpoint method calls, `await self._call(...)`.

The same flows as `core.ClientCore` (`call_flow`, `send_flow`, `preflight_flow`), driven by `flow.arun`: a yielded
request is awaited on the asyncio transport, a sleep is `asyncio.sleep`, a lock is taken without blocking the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core import call_flow, preflight_flow, send_flow
from ..endpoint import EndpointSpec
from ..flow import SharedLock, arun, gather_limited
from ..result import Result
from ..wire import PreparedCall

if TYPE_CHECKING:
    from ..oauth import OAuth1aSigner
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
    _oauth_signer: OAuth1aSigner | None = None
    mask_account_ids: bool = False
    auto_recreate_session: bool = True
    log_responses: bool = False

    async def _call(self, spec: EndpointSpec, args: Mapping[str, Any], *, method_name: str | None = None) -> Result:
        return await arun(call_flow(self, spec, args, method_name))

    async def _send(self, spec: EndpointSpec, call: PreparedCall, headers: dict[str, str] | None = None) -> Result:
        return await arun(send_flow(self, spec, call, headers))

    async def _run_preflight(self, spec: EndpointSpec) -> None:
        await arun(preflight_flow(self, spec))

    def _recreate_session(self) -> None:
        self._transport.reset()

    # -- what flows yield (see flow.py): awaitables here ------------------------------------------------------------

    @staticmethod
    def _sleep(seconds: float) -> Awaitable[None]:
        return asyncio.sleep(seconds)

    @staticmethod
    def _acquire(lock: Any) -> Awaitable[Any]:
        if isinstance(lock, SharedLock):
            return lock.acquire_async()
        acquired: Awaitable[Any] = lock.acquire()  # an asyncio.Lock of this client
        return acquired

    @staticmethod
    def _gather(thunks: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> Awaitable[list[Any]]:
        return gather_limited(list(thunks), limit)
