"""What the client decides about the gateway's session life cycle, without doing any I/O.

The gateway keeps two sessions: the login (SSO, made in a browser or by OAuth) and the brokerage session
(`/iserver`) on top of it. The brokerage session drops under a running program (a nightly reset, a gateway
hiccup, another login taking it over) while the login stays. This module says:

- whether a failed request was refused because the brokerage session is closed (`refused_for_session`);
- what a status answer or a failed status request means (`Verdict`, `verdict_of_status`, `verdict_of_failure`);
- whether the request may be sent again once the session is back (`may_resend`: the catalogue's retry safety);
- the re-open sequence as data (`Reopening`): check the status, send `ssodh/init` with `compete=false` once, poll
  the status until it says authenticated or the time is up;
- the errors and log texts for each outcome.

The sync client (`recovery.py`) and the async client drive the same `Reopening` with their own I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .endpoint import EndpointSpec
from .errors import ApiConnectionError, ExternalBrokerError, NotAuthenticatedError, SessionCompetingError

STATUS_ENDPOINT = "authentication_status"
REOPEN_ENDPOINT = "initialize_brokerage_session"
REOPEN_ARGS: Mapping[str, Any] = {"compete": False}
"""How the client re-opens on its own: never `compete=true`, which would log out the user's other session."""

SESSION_ENDPOINTS = frozenset(
    {"authentication_status", "initialize_brokerage_session", "reauthenticate", "tickle", "logout", "validate"}
)
"""Requests about the session itself: their failures are answers about the session, not a reason to re-open it."""

HOLDOFF = 5.0
"""Seconds a failed re-open (competing, login gone, gateway down, not open in time) stands before the session is
checked again: callers within that time get the same outcome without a request, so a busy program does not hammer
the gateway, and there is at most one re-open attempt in any 5 s."""

POLL_FIRST = 0.1
POLL_MAX = 1.0
ASK_AGAIN_AFTER = 3.0
"""Seconds after which a re-open request that did not lead to an open session is sent once more (the session may
have dropped again while it was opening)."""


class Verdict(str, enum.Enum):
    """What the gateway's status says about the session."""

    OPEN = "open"
    """Authenticated, connected and not competing: requests work."""
    CLOSED = "closed"
    """The brokerage session is closed while the login is alive: the client can re-open it."""
    COMPETING = "competing"
    """Another login took the brokerage session: a person decides (`initialize_brokerage_session(compete=True)`)."""
    LOGIN_GONE = "login_gone"
    """The login itself is gone (logout, SSO expiry, a restarted gateway): a person must log in again."""
    UNREACHABLE = "unreachable"
    """The gateway does not answer (it is restarting, or not running)."""
    UNKNOWN = "unknown"
    """The status could not be read."""

    @property
    def needs_a_person(self) -> bool:
        return self in _NEEDS_A_PERSON

    def __str__(self) -> str:
        return self.value


_NEEDS_A_PERSON = frozenset({Verdict.COMPETING, Verdict.LOGIN_GONE, Verdict.UNREACHABLE})


def refused_for_session(endpoint: str, path: str, status_code: int | None, message: str | None) -> bool:
    """True for a refusal that means the brokerage session is closed: a 401 on `/iserver/...` or a 400 "no bridge".

    A 401 elsewhere means the login is gone (no brokerage session would help), and the session endpoints' own
    failures are answers about the session.
    """
    if endpoint in SESSION_ENDPOINTS:
        return False
    if status_code == 401:
        return path.startswith("/iserver/")
    return status_code == 400 and "no bridge" in (message or "").lower()


def still_holds(verdict: Verdict, refusal: int | None) -> bool:
    """Whether a verdict reached moments ago still explains a new refusal with HTTP status `refusal` (None: no new
    evidence), so it can be given without asking the gateway again. A gateway that answers is not unreachable, and
    one that answers 400 "no bridge" has a login."""
    if verdict is Verdict.UNREACHABLE:
        return refusal is None
    if verdict is Verdict.LOGIN_GONE:
        return refusal is None or refusal == 401
    return True


def may_resend(spec: EndpointSpec) -> bool:
    """Whether a request refused for a closed session may be sent again once it is open: only what the catalogue
    marks retry-safe. Orders, replies, cancels and other writes are never sent again without the user."""
    return spec.retry_safe


def verdict_of_status(data: Any) -> Verdict:
    """The verdict of an auth status answer (`/iserver/auth/status`, `ssodh/init`), or of a tickle answer (its
    `iserver.authStatus`)."""
    if isinstance(data, Mapping) and isinstance(data.get("iserver"), Mapping):
        data = data["iserver"].get("authStatus")
    if not isinstance(data, Mapping) or "authenticated" not in data:
        return Verdict.UNKNOWN
    if data.get("competing") is True:
        return Verdict.COMPETING
    if data.get("authenticated") is True and data.get("connected", True) is not False:
        return Verdict.OPEN
    return Verdict.CLOSED


def verdict_of_failure(exc: BaseException) -> Verdict:
    """The verdict of a status (or tickle) request that failed."""
    if isinstance(exc, ApiConnectionError) and not exc.maybe_sent:
        return Verdict.UNREACHABLE
    if isinstance(exc, ExternalBrokerError) and exc.status_code == 401:
        return Verdict.LOGIN_GONE
    return Verdict.UNKNOWN


class Action(str, enum.Enum):
    CHECK = "check"  # ask the status (POST /iserver/auth/status)
    REOPEN = "reopen"  # POST /iserver/auth/ssodh/init with compete=false
    WAIT = "wait"  # sleep `Step.delay` seconds, then `Reopening.waited()`
    DONE = "done"  # finished: `Step.verdict` says how


@dataclass(frozen=True)
class Step:
    action: Action
    delay: float = 0.0
    verdict: Verdict | None = None


class Reopening:
    """One re-open of the brokerage session, as a sequence of steps the caller performs.

    Check the status first (another thread or process may have re-opened it, or a person may be needed); when it
    is closed, ask for a new session with `compete=false`; the gateway answers before the session is open, so
    poll the status, more slowly each time, until it is open, needs a person, or `timeout` seconds have passed.
    A request still not open after `ASK_AGAIN_AFTER` seconds is sent once more; one made by someone else less than
    that long ago (`asked_at`) counts as the first. Times are the caller's monotonic clock.
    """

    def __init__(self, *, timeout: float, now: float, asked_at: float | None = None) -> None:
        self.deadline = now + timeout
        self.reopened = False
        self.requests = 0  # re-open requests sent (at most two)
        self.checks = 0
        self._delay = POLL_FIRST
        self._asked_at = now
        if asked_at is not None and now - asked_at < ASK_AGAIN_AFTER:
            # Someone (the user, another thread) asked for a session moments ago: wait for that one.
            self.reopened = True
            self.requests = 1
            self._asked_at = asked_at

    def start(self) -> Step:
        return Step(Action.CHECK)

    def status(self, verdict: Verdict, now: float) -> Step:
        """The status request answered (or failed) with `verdict`."""
        self.checks += 1
        if verdict is Verdict.OPEN or verdict.needs_a_person:
            return Step(Action.DONE, verdict=verdict)
        if verdict is Verdict.UNKNOWN and not self.reopened:
            return Step(Action.DONE, verdict=verdict)  # not a gateway we understand: do not send anything more
        if not self.reopened or (self.requests < 2 and now - self._asked_at >= ASK_AGAIN_AFTER):
            self.reopened = True
            self.requests += 1
            self._asked_at = now
            self._delay = POLL_FIRST
            return Step(Action.REOPEN)
        return self._wait(now)

    def reopen_answered(self, verdict: Verdict, now: float) -> Step:
        """The re-open request answered (its body is an auth status) or failed with `verdict`."""
        if verdict is Verdict.OPEN or verdict.needs_a_person:
            return Step(Action.DONE, verdict=verdict)
        return self._wait(now)

    def waited(self) -> Step:
        return Step(Action.CHECK)

    def _wait(self, now: float) -> Step:
        if now >= self.deadline:
            return Step(Action.DONE, verdict=Verdict.CLOSED)
        delay = min(self._delay, self.deadline - now)
        self._delay = min(self._delay * 2, POLL_MAX)
        return Step(Action.WAIT, delay=delay)


def session_error(verdict: Verdict, exc: ExternalBrokerError, timeout: float) -> ExternalBrokerError:
    """The error a caller gets when its request was refused for the session and the session did not come back."""
    if verdict is Verdict.COMPETING:
        return SessionCompetingError(
            exc.message,
            status_code=exc.status_code,
            method=exc.method,
            path=exc.path,
            hint=explain(verdict),
        )
    if verdict is Verdict.CLOSED:
        hint = (
            f"The brokerage session is closed and did not open within {timeout:g} s of asking for it "
            "(initialize_brokerage_session(compete=False)); nothing more was sent."
        )
    else:
        hint = explain(verdict)
    return NotAuthenticatedError(exc.message, status_code=exc.status_code, method=exc.method, path=exc.path, hint=hint)


def not_resent(exc: ExternalBrokerError) -> NotAuthenticatedError:
    """The error for a request that is not safe to repeat, refused because the session was closed (now open)."""
    return NotAuthenticatedError(
        exc.message,
        status_code=exc.status_code,
        method=exc.method,
        path=exc.path,
        hint=(
            "The brokerage session was closed and has been re-opened; this request was refused and is not sent "
            "again, as it is not safe to repeat."
        ),
    )


def explain(verdict: Verdict) -> str:
    """One sentence for a log line or an error: what the verdict means and what the user can do."""
    return _EXPLAIN[verdict]


_EXPLAIN = {
    Verdict.OPEN: "The brokerage session is open.",
    Verdict.CLOSED: "The brokerage session is closed while the login is alive; the client re-opens it "
    "(initialize_brokerage_session(compete=False)).",
    Verdict.COMPETING: "Another login is competing for the brokerage session and holds it. The client does not take "
    "it back on its own: end the other session, or call initialize_brokerage_session(compete=True) to take it over.",
    Verdict.LOGIN_GONE: "The gateway's login is gone (logged out, SSO expired, or the gateway restarted): log in "
    "again; the client cannot log in for you. It keeps checking at the tickler's interval.",
    Verdict.UNREACHABLE: "The gateway does not answer (restarting or not running); the client keeps checking at the "
    "tickler's interval.",
    Verdict.UNKNOWN: "The gateway's session status could not be read.",
}
