"""Coordination calls from asyncio code, without blocking the loop.

A backend whose calls do network I/O (`Backend.io`: Redis) is called in one worker thread shared by the whole
process, so no loop waits on the network and a hundred waiting tasks add one thread, not a hundred. The other
backends (`process`, `local`: a few microseconds under a lock) are called in place, on the loop.

The worker runs each call in a copy of the caller's context, so context variables such as the strict pacing of an
order flow (`Pacer.strict`) hold there too. `asyncio` and `concurrent.futures` are imported on first use.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import CoordinationError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from .base import Lease

T = TypeVar("T")

logger = logging.getLogger("ibkr_sdk")

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_PID = 0


def _worker() -> ThreadPoolExecutor:
    global _POOL, _PID
    with _LOCK:
        if _POOL is None or _PID != os.getpid():  # a forked child has no thread of its parent's pool
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ibkr_sdk-coordination-io")
            _PID = os.getpid()
        return _POOL


def submit(fn: Callable[..., T], *args: Any) -> Future[T]:
    """Run `fn(*args)` in the worker thread, in a copy of the caller's context; nobody needs to wait for it."""
    context = contextvars.copy_context()
    return _worker().submit(context.run, fn, *args)


def on_loop() -> bool:
    """True when an asyncio loop runs in this thread (the caller must not block)."""
    import sys

    if "asyncio" not in sys.modules:
        return False
    import asyncio

    return asyncio._get_running_loop() is not None


async def call(blocking: bool, fn: Callable[..., T], *args: Any, undo: Callable[[T], object] | None = None) -> T:
    """`fn(*args)` for a task: in place, or in the worker thread when `blocking`. A task cancelled while the worker
    runs it loses nothing it obtained: `undo(result)` runs when the call ends with a result other than None (a lease
    or a slot is given back)."""
    if not blocking:
        return fn(*args)
    import asyncio

    future = submit(fn, *args)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        if undo is not None:
            future.add_done_callback(lambda done: _undo(done, undo))
        raise


def _undo(done: Future[Any], undo: Callable[[Any], object]) -> None:
    if done.cancelled() or done.exception() is not None or done.result() is None:
        return  # it never ran, or obtained nothing
    try:
        undo(done.result())
    except Exception as exc:  # what it held lapses with its TTL
        logger.warning("coordination: giving back what a cancelled task obtained failed: %s", exc)


def release(lease: Lease, token: str, blocking: bool) -> None:
    """Give a lease back without waiting on the loop for it; a failure is logged (the lease lapses with its TTL)."""

    def give_back() -> None:
        try:
            lease.release(token)
        except CoordinationError as exc:
            logger.warning("coordination: releasing a lease failed: %s", exc)

    if blocking and on_loop():
        submit(give_back)
    else:
        give_back()
