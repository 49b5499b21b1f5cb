"""A blocking call run on a helper thread while an asyncio loop stays free, for the WebSocket clients' `/tickle`
of the handshake: the loop keeps reading frames and sees a stop at once, however slow the gateway is to answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class StoppedWaiting(Exception):
    """The stop event was set before the threaded call answered (its late answer is dropped)."""


async def in_thread(call: Callable[[], T], stop: asyncio.Event | None = None, name: str = "ibkr-ws-handshake") -> T:
    """`call()` on a daemon thread, awaited without blocking the loop. With `stop`, its being set ends the wait
    at once with `StoppedWaiting`; the thread finishes on its own and its answer is dropped."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def hand_over(value: Any, error: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(_settle, future, value, error)
        except RuntimeError:  # the loop closed meanwhile: nobody waits for this answer any more
            pass

    def work() -> None:
        try:
            value = call()
        except BaseException as exc:  # handed to the waiting task
            hand_over(None, exc)
        else:
            hand_over(value, None)

    threading.Thread(target=work, name=name, daemon=True).start()
    if stop is None:
        return await future
    stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    pending: set[asyncio.Future[Any]] = {future, stopped}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not future.done():
        future.cancel()
        raise StoppedWaiting()
    return future.result()


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
