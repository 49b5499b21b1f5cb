"""OAuth 2.0 on the client: the token and SSO session requests, renewal, and the checks of `/gw/api/v1` calls.

Why hand-written: the access token and the session are obtained outside the catalogue's request path (a form post
with a signed assertion, a signed JWT body), renewed when they expire or on a 401, and every request is routed to
the right bearer. The JWTs, the forms and the decisions live in `oauth2.py` (no I/O, shared with an asyncio client);
this overlay only sends and receives. With an `OAuth1aConfig` every method falls back to the OAuth 1.0a overlay.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from .._endpoint_table import ENDPOINTS
from .endpoint import EndpointSpec
from .errors import ClientClosedError, ServerError
from .oauth2 import OAuth2Error, OAuth2Session
from .oauth_client import OAuthOverlay
from .result import Result
from .wire import prepare

logger = logging.getLogger("ibkr_sdk")

_DH_TOKEN_FAILURE = "failed to generate sso dh token"


class OAuth2Overlay(OAuthOverlay):
    """`oauth2_access_token`, `create_sso_session` and the OAuth 2.0 side of `oauth_init` / `oauth_shutdown`."""

    _oauth2_brokerage = False  # the brokerage session was opened: open it again with every new SSO session
    _oauth2_reopening = threading.local()

    @property
    def _oauth2(self) -> OAuth2Session | None:
        signer = self._oauth_signer
        return signer if isinstance(signer, OAuth2Session) else None

    def _require_oauth2(self, what: str) -> OAuth2Session:
        session = self._oauth2
        if session is None:
            raise OAuth2Error(f"{what}: this client does not use OAuth 2.0 (give it an OAuth2Config)")
        return session

    # -- the two OAuth 2.0 requests ------------------------------------------------------------------------------

    def _oauth2_post(self, step: str, url: str, headers: Mapping[str, str], **body: Any) -> tuple[int, Any, str]:
        """POST outside the catalogue's path: the form and the JWT are credentials, so nothing of them is logged."""
        if self._transport.closed:
            raise ClientClosedError(f"OAuth 2.0 {step}: the client is closed")
        logger.debug("-> POST %s (OAuth 2.0 %s; body not logged)", urlsplit(url).path, step)
        try:
            resp = self._transport.session.post(url, headers=dict(headers), timeout=self._transport.timeout, **body)
        except requests.exceptions.RequestException as exc:
            raise OAuth2Error(
                f"OAuth 2.0 {step} request to {urlsplit(url).netloc} got no answer ({type(exc).__name__})", step=step
            ) from None
        logger.debug("<- POST %s %d", urlsplit(url).path, resp.status_code)
        try:
            data: Any = json.loads(resp.content) if resp.content else None
        except ValueError:
            data = None
        return resp.status_code, data, resp.text if data is None else ""

    def oauth2_access_token(self) -> None:
        """Get a new access token with a freshly signed client assertion and keep it.

        Raises:
            OAuth2Error: the token endpoint refused (the message quotes its answer, e.g. `HTTP 401 invalid_client`)
                or did not answer within the timeout.
        """
        session = self._require_oauth2("oauth2_access_token()")
        status, data, text = self._oauth2_post(
            "access token",
            session.token_url,
            {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
            data=session.token_request(),
        )
        session.accept_token(status, data, text)

    def create_sso_session(self) -> Result:
        """Open a new SSO session (POST /gw/api/v1/sso-sessions) and keep its token as the bearer on /v1/api.

        The access token is renewed first when it is about to expire. Returns the answer with the token masked.

        Raises:
            OAuth2Error: the session request was refused (e.g. an IP address outside the whitelist) or not answered.
        """
        session = self._require_oauth2("create_sso_session()")
        fresh = session.access_needs_renewal()
        if fresh:
            self.oauth2_access_token()
        headers, body = session.session_request()
        status, data, text = self._oauth2_post("SSO session", session.sso_session_url, headers, data=body)
        if status == 401 and not fresh:
            # The access token was refused (revoked or expired early on IBKR's side): a new one, then once more.
            self.oauth2_access_token()
            headers, body = session.session_request()
            status, data, text = self._oauth2_post("SSO session", session.sso_session_url, headers, data=body)
        session.accept_session(status, data, text)
        shown = {**data, "access_token": "***"} if isinstance(data, dict) else data
        return Result(data=shown, request={"method": "POST", "url": session.sso_session_url})

    # -- life cycle ------------------------------------------------------------------------------------------------

    def oauth_init(self, maintain_oauth: bool, init_brokerage_session: bool, *, shutdown_oauth: bool = False) -> None:
        """With OAuth 2.0: get the access token, open the SSO session, then optionally start the tickler, register
        the shutdown handler and open the brokerage session (`ssodh/init`, again with `compete=false` when IBKR
        answers that it failed to generate the SSO DH token). With OAuth 1.0a: see the OAuth 1.0a overlay."""
        if self._oauth2 is None:
            super().oauth_init(maintain_oauth, init_brokerage_session, shutdown_oauth=shutdown_oauth)
            return
        self.oauth2_access_token()
        self.create_sso_session()
        if maintain_oauth:
            self.start_tickler()
        if shutdown_oauth:
            if threading.current_thread() is threading.main_thread():
                self.register_shutdown_handler()
            else:
                logger.warning("oauth_init(): not on the main thread, so no shutdown handler was registered")
        if init_brokerage_session:
            self._oauth2_open_brokerage()

    def _oauth2_open_brokerage(self) -> None:
        try:
            self.initialize_brokerage_session()
        except ServerError as exc:
            if _DH_TOKEN_FAILURE not in (exc.message or "").lower():
                raise
            logger.info("ssodh/init failed to generate the SSO DH token; trying again with compete=false")
            self.initialize_brokerage_session(compete=False)
        self._oauth2_brokerage = True

    def oauth_shutdown(self) -> None:
        """Stop the tickler and log out; with OAuth 2.0 the tokens are dropped."""
        session = self._oauth2
        if session is None:
            super().oauth_shutdown()
            return
        self.stop_tickler()
        if session.has_session:
            try:
                self.logout()
            except Exception as exc:  # shutting down: report, do not raise
                logger.warning("logout during OAuth 2.0 shutdown failed: %s", exc)
        session.forget()

    def generate_live_session_token(self) -> None:
        if self._oauth2 is not None:
            raise OAuth2Error(
                "generate_live_session_token() is OAuth 1.0a; with OAuth 2.0 use oauth_init() or create_sso_session()"
            )
        super().generate_live_session_token()

    def tickle(self, log: bool = False) -> Result:
        """Ping the session (POST /tickle). With OAuth 2.0, an answer without a session opens a new SSO session (a
        401 does so on the way); the brokerage session's own life cycle is the recovery overlay's."""
        result = super().tickle(log)
        session = self._oauth2
        if session is not None and isinstance(result.data, Mapping) and not result.data.get("session"):
            logger.info("the tickle reports no SSO session: opening a new one")
            self._oauth2_reopen(session.expires_at, "session")
        return result

    # -- hooks of ClientCore._send ---------------------------------------------------------------------------------

    def _check_oauth2(self, spec: EndpointSpec) -> None:
        session = self._oauth2
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

    def _ensure_token(self) -> None:
        session = self._oauth2
        if session is None:
            super()._ensure_token()
            return
        if not session.has_access_token:
            raise OAuth2Error(
                "no OAuth 2.0 access token yet: call oauth_init(...) first (or create the client with init_oauth on)",
                step="access token",
            )
        if session.access_needs_renewal():
            with self._token_lock:
                if session.access_needs_renewal():
                    logger.debug("renewing the OAuth 2.0 access token before it expires")
                    self.oauth2_access_token()

    def _renew_after_401(self, used_expiry: Any) -> None:
        session = self._oauth2
        if session is None:
            super()._renew_after_401(used_expiry)
            return
        self._oauth2_reopen(used_expiry, session.last_bearer())

    def _oauth2_reopen(self, used: Any, bearer: str | None) -> None:
        """After a 401: a new access token (for /gw/api/v1) or a new SSO session (for /v1/api), unless another thread
        already renewed since the failed request; then the brokerage session again, if it was open."""
        session = self._require_oauth2("renewal")
        if getattr(self._oauth2_reopening, "active", False):
            return  # the brokerage request of a renewal got a 401 itself: do not recurse
        reopened = False
        with self._token_lock:
            if session.expires_at == used:
                if bearer == "access":
                    logger.debug("renewing the OAuth 2.0 access token after a 401")
                    self.oauth2_access_token()
                else:
                    logger.debug("opening a new OAuth 2.0 SSO session after a 401")
                    session.drop_session()
                    self.create_sso_session()
                    reopened = True
        if reopened and self._oauth2_brokerage:
            self._oauth2_reopening.active = True
            try:
                spec = ENDPOINTS["initialize_brokerage_session"]
                self._transport.send(prepare(spec, {}, None), retry_safe=spec.retry_safe, pacing=spec.pacing)
            finally:
                self._oauth2_reopening.active = False
