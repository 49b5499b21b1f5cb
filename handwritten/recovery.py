"""Keeping a long-running program's session: re-open the brokerage session when it drops, say clearly (once) when a
person is needed, and let the tickler do the same ahead of time.

Why hand-written: it is the I/O of the decisions in `lifecycle.py` (status requests, `ssodh/init` with
`compete=false`, polling), run once at a time per gateway through `session_guard.py`. The async client runs the
same `lifecycle.Reopening` with its own I/O.
"""

from __future__ import annotations

import logging
import threading
import time

from .._endpoint_table import ENDPOINTS
from .endpoint import EndpointSpec
from .errors import ClientClosedError, ExternalBrokerError, NotAuthenticatedError
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


class RecoveryOverlay(SessionOverlay):
    """Re-opens the brokerage session for requests refused because it closed, and keeps the tickler informed."""

    _auto_reauthenticate: bool = False
    _auto_preflight: bool
    _session_guard: SessionGuard
    _preflight_done: set[str]
    _suppressed_ids: set[str]
    timeout: float | tuple[float, float]

    # -- for requests (called by `ClientCore._send`) ----------------------------------------------------------------

    def _recover_for(self, spec: EndpointSpec, seen: int, exc: NotAuthenticatedError) -> None:
        """`spec`'s request was refused because the brokerage session is closed. Return once the session is open
        again and the request may be sent again; raise otherwise (nothing more is sent)."""
        verdict = self._restore_session(seen, refusal=exc.status_code)
        if verdict is Verdict.UNKNOWN:
            raise exc  # the status could not be read: the refusal speaks for itself
        if verdict is not Verdict.OPEN:
            raise session_error(verdict, exc, self._reopen_timeout()) from exc
        if not may_resend(spec):
            raise not_resent(exc) from exc
        if self._auto_preflight and ACCOUNTS_FIRST in spec.preflight:
            self._run_preflight(spec)

    def _restore_session(
        self, seen: int | None = None, cancel: threading.Event | None = None, refusal: int | None = None
    ) -> Verdict:
        """Bring the brokerage session back if the client can (once at a time per gateway), and say what happened.

        `seen` is the guard's generation when the failed request was sent (None: now); `cancel` ends the polling
        early (the WebSocket client's shutdown); `refusal` is the failed request's HTTP status."""
        guard = self._session_guard
        seen = guard.generation if seen is None else seen
        verdict = guard.reopen(seen, lambda: self._reopen(cancel), refusal)
        if verdict is Verdict.OPEN:
            # A new brokerage session: /iserver/accounts is wanted again, and suppressed questions are forgotten.
            self._preflight_done.discard(ACCOUNTS_FIRST)
            self._suppressed_ids.clear()
        self._say(verdict)
        return verdict

    def _reopen(self, cancel: threading.Event | None) -> Verdict:
        if cancel is not None and cancel.is_set():
            return Verdict.UNKNOWN  # the streaming client stopped while waiting for its turn
        timeout = self._reopen_timeout()
        guard = self._session_guard
        plan = Reopening(timeout=timeout, now=time.monotonic(), asked_at=guard.asked_at)
        step = plan.start()
        while step.action is not Action.DONE:
            if step.action is Action.CHECK:
                step = plan.status(self._status_verdict(STATUS_ENDPOINT), time.monotonic())
            elif step.action is Action.REOPEN:
                self._say(Verdict.CLOSED)
                guard.note_asked()
                step = plan.reopen_answered(self._status_verdict(REOPEN_ENDPOINT), time.monotonic())
            else:
                stopped = cancel.wait(step.delay) if cancel is not None else self._transport.pause(step.delay)
                if stopped:
                    return Verdict.UNKNOWN
                step = plan.waited()
        verdict = step.verdict or Verdict.UNKNOWN
        if verdict is Verdict.CLOSED:
            logger.warning(
                "the brokerage session did not open within %g s of asking for it; trying again later", timeout
            )
        return verdict

    def _status_verdict(self, endpoint: str) -> Verdict:
        """Send the status request (or the re-open request, whose answer is a status) and read its verdict."""
        spec = ENDPOINTS[endpoint]
        args = REOPEN_ARGS if endpoint == REOPEN_ENDPOINT else {}
        try:
            result = self._send_signed(spec, prepare(spec, args, None))
        except ClientClosedError:
            raise
        except ExternalBrokerError as exc:
            return verdict_of_failure(exc)
        return verdict_of_status(result.data)

    def _reopen_timeout(self) -> float:
        timeout = self.timeout
        return float(timeout[1]) if isinstance(timeout, tuple) else float(timeout)

    # -- what the user is told --------------------------------------------------------------------------------------

    def _say(self, verdict: Verdict) -> None:
        """Log a change of the session's state once per gateway (not once per thread, request or tick)."""
        previous = self._session_guard.report(verdict)
        if previous is None:
            return
        if verdict is Verdict.OPEN:
            logger.info("the brokerage session is open again (it was %s)", previous)
        elif verdict is Verdict.CLOSED:
            logger.info("%s", explain(verdict))
        else:
            logger.warning("%s", explain(verdict))

    # -- the tickler ------------------------------------------------------------------------------------------------

    def _keep_alive(self) -> None:
        """One tick: tickle, and act on what the answer says about the session (re-open it ahead of the next
        request, or say once that a person is needed). A login that is gone costs one request per tick."""
        spec = ENDPOINTS["tickle"]
        try:
            # Not retried: a tick that fails is tried again at the next tick, so the tickler keeps its interval.
            data = self._send_signed(spec, prepare(spec, {}, None), max_retries=0).data
        except ClientClosedError:
            raise
        except ExternalBrokerError as exc:
            verdict = verdict_of_failure(exc)
            if verdict is Verdict.UNKNOWN:
                raise  # not about the session: the tickler logs it
            self._say(verdict)
            return
        verdict = verdict_of_status(data)
        self._say(verdict)
        if verdict is Verdict.CLOSED and self._auto_reauthenticate:
            self._restore_session()
