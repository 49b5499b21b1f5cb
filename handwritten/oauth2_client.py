"""OAuth 2.0 on the client: the token and SSO session requests, renewal, and the checks of `/gw/api/v1` calls.

Why hand-written: the access token and the session are obtained outside the catalogue's request path (a form post
with a signed assertion, a signed JWT body), renewed when they expire or on a 401, and every request is routed to
the right bearer. The JWTs, the forms and the decisions live in `oauth2.py` (no I/O, shared with an asyncio client);
this overlay only sends and receives. With an `OAuth1aConfig` every method falls back to the OAuth 1.0a overlay.
The steps are flows (`flow.py`), driven here with blocking I/O and by `AsyncIbkrClient` with `await`.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from .._endpoint_table import ENDPOINTS
from .endpoint import EndpointSpec
from .errors import ClientClosedError, ServerError
from .flow import Flow, run
from .oauth2 import OAuth2Error, OAuth2Session
from .oauth_client import OAuthOverlay
from .result import Result
from .wire import prepare

logger = logging.getLogger("ibkr_sdk")

_DH_TOKEN_FAILURE = "failed to generate sso dh token"


_REOPENING: contextvars.ContextVar[bool] = contextvars.ContextVar("ibkr_sdk_oauth2_reopening", default=False)
"""Set while a renewal re-opens the brokerage session (per thread, and per asyncio task): a 401 on that request
must not start another renewal."""


def oauth2_of(api: Any) -> OAuth2Session | None:
    signer = api._oauth_signer
    return signer if isinstance(signer, OAuth2Session) else None


def require_oauth2(api: Any, what: str) -> OAuth2Session:
    session = oauth2_of(api)
    if session is None:
        raise OAuth2Error(f"{what}: this client does not use OAuth 2.0 (give it an OAuth2Config)")
    return session


def read_post_answer(status: int, content: bytes, text: Any) -> tuple[int, Any, str]:
    """(status, decoded JSON or None, the text when the body is not JSON) of a token or session answer."""
    try:
        data: Any = json.loads(content) if content else None
    except ValueError:
        data = None
    return status, data, text() if data is None else ""


def oauth2_access_token_flow(api: Any) -> Flow[None]:
    session = require_oauth2(api, "oauth2_access_token()")
    status, data, text = yield api._oauth2_post(
        "access token",
        session.token_url,
        {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
        data=session.token_request(),
    )
    session.accept_token(status, data, text)


def create_sso_session_flow(api: Any) -> Flow[Result]:
    session = require_oauth2(api, "create_sso_session()")
    fresh = session.access_needs_renewal()
    if fresh:
        yield from oauth2_access_token_flow(api)
    headers, body = session.session_request()
    status, data, text = yield api._oauth2_post("SSO session", session.sso_session_url, headers, data=body)
    if status == 401 and not fresh:
        # The access token was refused (revoked or expired early on IBKR's side): a new one, then once more.
        yield from oauth2_access_token_flow(api)
        headers, body = session.session_request()
        status, data, text = yield api._oauth2_post("SSO session", session.sso_session_url, headers, data=body)
    session.accept_session(status, data, text)
    shown = {**data, "access_token": "***"} if isinstance(data, dict) else data
    return Result(data=shown, request={"method": "POST", "url": session.sso_session_url})


def oauth2_init_flow(api: Any, maintain_oauth: bool, init_brokerage_session: bool, shutdown_oauth: bool) -> Flow[None]:
    yield from oauth2_access_token_flow(api)
    yield from create_sso_session_flow(api)
    if maintain_oauth:
        api.start_tickler()
    if shutdown_oauth:
        api._register_shutdown("oauth_init()")
    if init_brokerage_session:
        yield from oauth2_open_brokerage_flow(api)


def oauth2_open_brokerage_flow(api: Any) -> Flow[None]:
    try:
        yield api.initialize_brokerage_session()
    except ServerError as exc:
        if _DH_TOKEN_FAILURE not in (exc.message or "").lower():
            raise
        logger.info("ssodh/init failed to generate the SSO DH token; trying again with compete=false")
        yield api.initialize_brokerage_session(compete=False)
    api._oauth2_brokerage = True


def oauth2_shutdown_flow(api: Any, session: OAuth2Session) -> Flow[None]:
    api.stop_tickler()
    if session.has_session:
        try:
            yield api.logout()
        except Exception as exc:  # shutting down: report, do not raise
            logger.warning("logout during OAuth 2.0 shutdown failed: %s", exc)
    session.forget()


def oauth2_after_tickle_flow(api: Any, result: Result) -> Flow[Result]:
    """With OAuth 2.0, a tickle answer without a session opens a new SSO session."""
    session = oauth2_of(api)
    if session is not None and isinstance(result.data, Mapping) and not result.data.get("session"):
        logger.info("the tickle reports no SSO session: opening a new one")
        yield from oauth2_reopen_flow(api, session.expires_at, "session")
    return result


def check_oauth2(api: Any, spec: EndpointSpec) -> None:
    """A /gw/api/v1 operation needs OAuth 2.0 and a granted scope that admits it: refused before sending."""
    session = oauth2_of(api)
    if session is None:
        raise OAuth2Error(
            f"{spec.name}(): IBKR serves {spec.base or ''} only with OAuth 2.0: create the client with "
            "use_oauth=True and oauth_config=OAuth2Config(...); nothing was sent",
            step="Account Management request",
        )
    granted = session.granted_scopes
    if spec.scopes and not set(spec.scopes) & set(granted):
        raise OAuth2Error(
            f"{spec.name}(): needs the OAuth 2.0 scope {' or '.join(spec.scopes)}, but the access token has "
            f"{' '.join(granted) or 'none'}: add it to OAuth2Config.scope; nothing was sent",
            step="Account Management request",
        )


def oauth2_ensure_token_flow(api: Any) -> Flow[None]:
    session = require_oauth2(api, "request")
    if not session.has_access_token:
        raise OAuth2Error(
            "no OAuth 2.0 access token yet: call oauth_init(...) first (or create the client with init_oauth on)",
            step="access token",
        )
    if session.access_needs_renewal():
        lock = api._token_lock
        yield api._acquire(lock)
        try:
            if session.access_needs_renewal():
                logger.debug("renewing the OAuth 2.0 access token before it expires")
                yield from oauth2_access_token_flow(api)
        finally:
            lock.release()


def oauth2_reopen_flow(api: Any, used: Any, bearer: str | None) -> Flow[None]:
    """After a 401: a new access token (for /gw/api/v1) or a new SSO session (for /v1/api), unless another caller
    already renewed since the failed request; then the brokerage session again, if it was open."""
    session = require_oauth2(api, "renewal")
    if _REOPENING.get():
        return  # the brokerage request of a renewal got a 401 itself: do not recurse
    reopened = False
    lock = api._token_lock
    yield api._acquire(lock)
    try:
        if session.expires_at == used:
            if bearer == "access":
                logger.debug("renewing the OAuth 2.0 access token after a 401")
                yield from oauth2_access_token_flow(api)
            else:
                logger.debug("opening a new OAuth 2.0 SSO session after a 401")
                session.drop_session()
                yield from create_sso_session_flow(api)
                reopened = True
    finally:
        lock.release()
    if reopened and api._oauth2_brokerage:
        token = _REOPENING.set(True)
        try:
            spec = ENDPOINTS["initialize_brokerage_session"]
            yield api._transport.send(prepare(spec, {}, None), retry_safe=spec.retry_safe, pacing=spec.pacing)
        finally:
            _REOPENING.reset(token)


class OAuth2Overlay(OAuthOverlay):
    """`oauth2_access_token`, `create_sso_session` and the OAuth 2.0 side of `oauth_init` / `oauth_shutdown`."""

    _oauth2_brokerage = False  # the brokerage session was opened: open it again with every new SSO session

    @property
    def _oauth2(self) -> OAuth2Session | None:
        return oauth2_of(self)

    def _require_oauth2(self, what: str) -> OAuth2Session:
        return require_oauth2(self, what)

    # -- the two OAuth 2.0 requests ------------------------------------------------------------------------------

    def _oauth2_post(self, step: str, url: str, headers: Mapping[str, str], **body: Any) -> tuple[int, Any, str]:
        """POST outside the catalogue's path: the form and the JWT are credentials, so nothing of them is logged."""
        if self._transport.closed:
            raise ClientClosedError(f"OAuth 2.0 {step}: the client is closed")
        logger.debug("-> POST %s (OAuth 2.0 %s; body not logged)", urlsplit(url).path, step)
        try:
            status, content, text = self._transport.post_outside(url, headers, body.get("data"))
        except requests.exceptions.RequestException as exc:
            raise OAuth2Error(
                f"OAuth 2.0 {step} request to {urlsplit(url).netloc} got no answer ({type(exc).__name__})", step=step
            ) from None
        logger.debug("<- POST %s %d", urlsplit(url).path, status)
        return read_post_answer(status, content, text)

    def oauth2_access_token(self) -> None:
        """Get a new access token with a freshly signed client assertion and keep it.

        Raises:
            OAuth2Error: the token endpoint refused (the message quotes its answer, e.g. `HTTP 401 invalid_client`)
                or did not answer within the timeout.
        """
        run(oauth2_access_token_flow(self))

    def create_sso_session(self) -> Result:
        """Open a new SSO session (POST /gw/api/v1/sso-sessions) and keep its token as the bearer on /v1/api.

        The access token is renewed first when it is about to expire. Returns the answer with the token masked.

        Raises:
            OAuth2Error: the session request was refused (e.g. an IP address outside the whitelist) or not answered.
        """
        return run(create_sso_session_flow(self))

    # -- life cycle ------------------------------------------------------------------------------------------------

    def oauth_init(self, maintain_oauth: bool, init_brokerage_session: bool, *, shutdown_oauth: bool = False) -> None:
        """With OAuth 2.0: get the access token, open the SSO session, then optionally start the tickler, register
        the shutdown handler and open the brokerage session (`ssodh/init`, again with `compete=false` when IBKR
        answers that it failed to generate the SSO DH token). With OAuth 1.0a: see the OAuth 1.0a overlay."""
        if self._oauth2 is None:
            super().oauth_init(maintain_oauth, init_brokerage_session, shutdown_oauth=shutdown_oauth)
            return
        run(oauth2_init_flow(self, maintain_oauth, init_brokerage_session, shutdown_oauth))

    def _oauth2_open_brokerage(self) -> None:
        run(oauth2_open_brokerage_flow(self))

    def oauth_shutdown(self) -> None:
        """Stop the tickler and log out; with OAuth 2.0 the tokens are dropped."""
        session = self._oauth2
        if session is None:
            super().oauth_shutdown()
            return
        run(oauth2_shutdown_flow(self, session))

    def generate_live_session_token(self) -> None:
        if self._oauth2 is not None:
            raise OAuth2Error(
                "generate_live_session_token() is OAuth 1.0a; with OAuth 2.0 use oauth_init() or create_sso_session()"
            )
        super().generate_live_session_token()

    def tickle(self, log: bool = False) -> Result:
        """Ping the session (POST /tickle). With OAuth 2.0, an answer without a session opens a new SSO session (a
        401 does so on the way); the brokerage session's own life cycle is the recovery overlay's."""
        return run(oauth2_after_tickle_flow(self, super().tickle(log)))

    # -- hooks of the core -----------------------------------------------------------------------------------------

    def _check_oauth2(self, spec: EndpointSpec) -> None:
        check_oauth2(self, spec)

    def _oauth2_reopen(self, used: Any, bearer: str | None) -> None:
        run(oauth2_reopen_flow(self, used, bearer))
