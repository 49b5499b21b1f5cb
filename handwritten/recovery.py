"""Keeping a long-running program's session: re-open the brokerage session when it drops, say clearly (once) when a
person is needed, and let the tickler do the same ahead of time.

Why hand-written: it is the I/O of the decisions in `lifecycle.py` (status requests, `ssodh/init` with
`compete=false`, polling), run once at a time per gateway through `session_guard.py`. The steps are flows
(`flow.py`): the sync client drives them here, the asyncio client with `await`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .._endpoint_table import ENDPOINTS
from .core import preflight_flow, signed_send_flow
from .endpoint import EndpointSpec
from .errors import ClientClosedError, ExternalBrokerError, NotAuthenticatedError
from .flow import Flow, run
from .lifecycle import (
    REOPEN_ARGS,
    REOPEN_ENDPOINT,
    STATUS_ENDPOINT,
    Action,
    Reopening,
    Verdict,
    explain,
    may_resend,
    not_resent,
    session_error,
    verdict_of_failure,
    verdict_of_status,
)
from .session import SessionOverlay
from .session_guard import SessionGuard
from .wire import prepare

logger = logging.getLogger("ibkr_sdk")

ACCOUNTS_FIRST = "receive_brokerage_accounts"


def reopen_timeout(api: Any) -> float:
    timeout = api.timeout
    return float(timeout[1]) if isinstance(timeout, tuple) else float(timeout)


def recover_for_flow(api: Any, spec: EndpointSpec, seen: int, exc: NotAuthenticatedError) -> Flow[None]:
    """`spec`'s request was refused because the brokerage session is closed. End once the session is open again
    and the request may be sent again; raise otherwise (nothing more is sent)."""
    verdict = yield from restore_session_flow(api, seen, refusal=exc.status_code)
    if verdict is Verdict.UNKNOWN:
        raise exc  # the status could not be read: the refusal speaks for itself
    if verdict is not Verdict.OPEN:
        raise session_error(verdict, exc, reopen_timeout(api)) from exc
    if not may_resend(spec):
        raise not_resent(exc) from exc
    if api._auto_preflight and ACCOUNTS_FIRST in spec.preflight:
        yield from preflight_flow(api, spec)


def restore_session_flow(
    api: Any, seen: int | None = None, cancel: threading.Event | None = None, refusal: int | None = None
) -> Flow[Verdict]:
    """Bring the brokerage session back if the client can (once at a time per gateway), and say what happened.

    `seen` is the guard's generation when the failed request was sent (None: now); `cancel` ends the polling early
    (the WebSocket client's shutdown); `refusal` is the failed request's HTTP status."""
    guard = api._session_guard
    seen = guard.generation if seen is None else seen
    verdict: Verdict = yield api._guarded_reopen(guard, seen, lambda: reopen_flow(api, cancel), refusal)
    if verdict is Verdict.OPEN:
        # A new brokerage session: /iserver/accounts is wanted again, and suppressed questions are forgotten.
        api._preflight_done.discard(ACCOUNTS_FIRST)
        api._suppressed_ids.clear()
    say(api, verdict)
    return verdict


def reopen_flow(api: Any, cancel: threading.Event | None) -> Flow[Verdict]:
    if cancel is not None and cancel.is_set():
        return Verdict.UNKNOWN  # the streaming client stopped while waiting for its turn
    timeout = reopen_timeout(api)
    guard = api._session_guard
    plan = Reopening(timeout=timeout, now=time.monotonic(), asked_at=guard.asked_at)
    step = plan.start()
    while step.action is not Action.DONE:
        if step.action is Action.CHECK:
            verdict = yield from status_verdict_flow(api, STATUS_ENDPOINT)
            step = plan.status(verdict, time.monotonic())
        elif step.action is Action.REOPEN:
            say(api, Verdict.CLOSED)
            guard.note_asked()
            verdict = yield from status_verdict_flow(api, REOPEN_ENDPOINT)
            step = plan.reopen_answered(verdict, time.monotonic())
        else:
            if (yield api._pause(step.delay, cancel)):
                return Verdict.UNKNOWN
            step = plan.waited()
    outcome = step.verdict or Verdict.UNKNOWN
    if outcome is Verdict.CLOSED:
        logger.warning("the brokerage session did not open within %g s of asking for it; trying again later", timeout)
    return outcome


def status_verdict_flow(api: Any, endpoint: str) -> Flow[Verdict]:
    """Send the status request (or the re-open request, whose answer is a status) and read its verdict."""
    spec = ENDPOINTS[endpoint]
    args = REOPEN_ARGS if endpoint == REOPEN_ENDPOINT else {}
    try:
        result = yield from signed_send_flow(api, spec, prepare(spec, args, None))
    except ClientClosedError:
        raise
    except ExternalBrokerError as exc:
        return verdict_of_failure(exc)
    return verdict_of_status(result.data)


def say(api: Any, verdict: Verdict) -> None:
    """Log a change of the session's state once per gateway (not once per thread, request or tick)."""
    previous = api._session_guard.report(verdict)
    if previous is None:
        return
    if verdict is Verdict.OPEN:
        logger.info("the brokerage session is open again (it was %s)", previous)
    elif verdict is Verdict.CLOSED:
        logger.info("%s", explain(verdict))
    else:
        logger.warning("%s", explain(verdict))


def keep_alive_flow(api: Any) -> Flow[None]:
    """One tick: tickle, and act on what the answer says about the session (re-open it ahead of the next request,
    or say once that a person is needed). A login that is gone costs one request per tick."""
    spec = ENDPOINTS["tickle"]
    try:
        # Not retried: a tick that fails is tried again at the next tick, so the tickler keeps its interval.
        result = yield from signed_send_flow(api, spec, prepare(spec, {}, None), max_retries=0)
    except ClientClosedError:
        raise
    except ExternalBrokerError as exc:
        verdict = verdict_of_failure(exc)
        if verdict is Verdict.UNKNOWN:
            raise  # not about the session: the tickler logs it
        say(api, verdict)
        return
    verdict = verdict_of_status(result.data)
    say(api, verdict)
    if verdict is Verdict.CLOSED and api._auto_reauthenticate:
        yield from restore_session_flow(api)


class RecoveryOverlay(SessionOverlay):
    """Re-opens the brokerage session for requests refused because it closed, and keeps the tickler informed."""

    _auto_reauthenticate: bool = False
    _auto_preflight: bool
    _session_guard: SessionGuard
    _preflight_done: set[str]
    _suppressed_ids: set[str]
    timeout: float | tuple[float, float]

    def _recover_for(self, spec: EndpointSpec, seen: int, exc: NotAuthenticatedError) -> None:
        run(recover_for_flow(self, spec, seen, exc))

    def _restore_session(
        self, seen: int | None = None, cancel: threading.Event | None = None, refusal: int | None = None
    ) -> Verdict:
        return run(restore_session_flow(self, seen, cancel, refusal))

    def _reopen(self, cancel: threading.Event | None) -> Verdict:
        return run(reopen_flow(self, cancel))

    def _status_verdict(self, endpoint: str) -> Verdict:
        return run(status_verdict_flow(self, endpoint))

    def _reopen_timeout(self) -> float:
        return reopen_timeout(self)

    def _say(self, verdict: Verdict) -> None:
        say(self, verdict)

    def _keep_alive(self) -> None:
        run(keep_alive_flow(self))
