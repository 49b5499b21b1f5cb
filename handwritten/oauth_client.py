"""OAuth 1.0a on the client: live session token life cycle and the reference's OAuth methods.

Why hand-written: the token request is signed with RSA and a Diffie-Hellman challenge, every later request with an
HMAC of the token, and the token must be renewed before it expires (and once after a 401). The cryptography is in
`oauth.py`; this overlay drives it through the transport.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .._client_base import GeneratedEndpoints
from .._endpoint_table import ENDPOINTS
from .flow import Flow, run
from .oauth import LiveSessionTokenError, OAuth1aConfig, OAuth1aSigner
from .session import SessionOverlay
from .wire import prepare

logger = logging.getLogger("ibkr_sdk")

RENEWAL_MARGIN_S = 60.0


def require_signer(api: Any) -> OAuth1aSigner:
    signer = api._oauth_signer
    if not isinstance(signer, OAuth1aSigner):
        raise LiveSessionTokenError("this client does not use OAuth: create it with use_oauth=True")
    return signer


def live_session_token_flow(api: Any) -> Flow[None]:
    """The Diffie-Hellman exchange for a new live session token (RSA-signed, never paced twice or retried)."""
    signer = require_signer(api)
    spec = ENDPOINTS["oauth_live_session_token"]
    url = api._transport.base_url + spec.path
    headers, a_int = signer.lst_request_headers(url)
    result = yield api._transport.send(
        prepare(spec, {}, None), retry_safe=False, pacing=spec.pacing, headers=headers, sign=False
    )
    if not isinstance(result.data, dict):
        raise LiveSessionTokenError("the live session token answer is not a JSON object")
    signer.complete_lst(result.data, a_int)


def ensure_token_flow(api: Any) -> Flow[None]:
    """Before a signed request: refuse without a token, renew one that is about to expire (once, under the
    client's token lock, whoever else is waiting)."""
    if not isinstance(api._oauth_signer, OAuth1aSigner):
        from .oauth2_client import oauth2_ensure_token_flow

        yield from oauth2_ensure_token_flow(api)
        return
    signer = require_signer(api)
    if not signer.has_live_session_token:
        raise LiveSessionTokenError(
            "no OAuth live session token yet: call oauth_init(...) or generate_live_session_token() first"
        )
    if signer.needs_renewal(RENEWAL_MARGIN_S):
        lock = api._token_lock
        yield api._acquire(lock)
        try:
            if signer.needs_renewal(RENEWAL_MARGIN_S):
                logger.debug("renewing the OAuth live session token before it expires")
                yield from live_session_token_flow(api)
        finally:
            lock.release()


def renew_after_401_flow(api: Any, used_expiry: Any) -> Flow[None]:
    """Renew once after a 401, unless another caller already did since the failed request was signed."""
    if not isinstance(api._oauth_signer, OAuth1aSigner):
        from .oauth2_client import oauth2_reopen_flow

        yield from oauth2_reopen_flow(api, used_expiry, api._oauth_signer.last_bearer())
        return
    signer = require_signer(api)
    lock = api._token_lock
    yield api._acquire(lock)
    try:
        if signer.expires_at == used_expiry:
            logger.debug("renewing the OAuth live session token after a 401")
            yield from live_session_token_flow(api)
    finally:
        lock.release()


def oauth_init_flow(api: Any, maintain_oauth: bool, init_brokerage_session: bool, shutdown_oauth: bool) -> Flow[None]:
    yield from live_session_token_flow(api)
    if maintain_oauth:
        api.start_tickler()
    if shutdown_oauth:
        api._register_shutdown("oauth_init()")
    if init_brokerage_session:
        yield api.initialize_brokerage_session()


def oauth_shutdown_flow(api: Any) -> Flow[None]:
    api.stop_tickler()
    signer = api._oauth_signer
    if isinstance(signer, OAuth1aSigner) and signer.has_live_session_token:
        try:
            yield api.logout()
        except Exception as exc:  # shutting down: report, do not raise
            logger.warning("logout during OAuth shutdown failed: %s", exc)
        signer.forget_live_session_token()


class OAuthOverlay(SessionOverlay, GeneratedEndpoints):
    """`generate_live_session_token`, `oauth_init`, `oauth_shutdown` and automatic token renewal."""

    use_oauth: bool = False
    oauth_config: OAuth1aConfig | None = None
    _token_lock: threading.Lock

    def generate_live_session_token(self) -> None:
        """Obtain a new live session token through the Diffie-Hellman exchange and keep it for signing.

        Raises:
            LiveSessionTokenError: the answer is incomplete or its token signature does not verify (a
                `RuntimeError`); no token is kept then.
            ExternalBrokerError: the request failed (e.g. 401 for an invalid access token).
        """
        run(live_session_token_flow(self))

    def oauth_init(self, maintain_oauth: bool, init_brokerage_session: bool, *, shutdown_oauth: bool = False) -> None:
        """Get a live session token, then optionally keep the session alive, open the brokerage session and handle
        shutdown signals. The positional order is the peer library's.

        Args:
            maintain_oauth: Start the tickler (a `tickle()` every `tickler_interval` seconds).
            init_brokerage_session: Call `initialize_brokerage_session()` once the token exists.
            shutdown_oauth: Register the SIGINT/SIGTERM handler that ends the session (main thread only).
        """
        run(oauth_init_flow(self, maintain_oauth, init_brokerage_session, shutdown_oauth))

    def oauth_shutdown(self) -> None:
        """Stop the tickler and log out; the live session token is dropped."""
        run(oauth_shutdown_flow(self))

    def _register_shutdown(self, caller: str) -> None:
        if threading.current_thread() is threading.main_thread():
            self.register_shutdown_handler()
        else:
            logger.warning("%s: not on the main thread, so no shutdown handler was registered", caller)

    def _shutdown(self) -> None:
        if self.use_oauth:
            self.oauth_shutdown()
        else:
            super()._shutdown()
