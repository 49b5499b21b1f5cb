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
from .oauth import LiveSessionTokenError, OAuth1aConfig, OAuth1aSigner
from .session import SessionOverlay
from .wire import prepare

logger = logging.getLogger("ibkr_sdk")

RENEWAL_MARGIN_S = 60.0


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
        signer = self._require_signer()
        spec = ENDPOINTS["oauth_live_session_token"]
        url = self._transport.base_url + spec.path
        headers, a_int = signer.lst_request_headers(url)
        result = self._transport.send(
            prepare(spec, {}, None), retry_safe=False, pacing=spec.pacing, headers=headers, sign=False
        )
        if not isinstance(result.data, dict):
            raise LiveSessionTokenError("the live session token answer is not a JSON object")
        signer.complete_lst(result.data, a_int)

    def oauth_init(self, maintain_oauth: bool, init_brokerage_session: bool, *, shutdown_oauth: bool = False) -> None:
        """Get a live session token, then optionally keep the session alive, open the brokerage session and handle
        shutdown signals. The positional order is the peer library's.

        Args:
            maintain_oauth: Start the tickler (a `tickle()` every `tickler_interval` seconds).
            init_brokerage_session: Call `initialize_brokerage_session()` once the token exists.
            shutdown_oauth: Register the SIGINT/SIGTERM handler that ends the session (main thread only).
        """
        self.generate_live_session_token()
        if maintain_oauth:
            self.start_tickler()
        if shutdown_oauth:
            if threading.current_thread() is threading.main_thread():
                self.register_shutdown_handler()
            else:
                logger.warning("oauth_init(): not on the main thread, so no shutdown handler was registered")
        if init_brokerage_session:
            self.initialize_brokerage_session()

    def oauth_shutdown(self) -> None:
        """Stop the tickler and log out; the live session token is dropped."""
        self.stop_tickler()
        signer = self._oauth_signer
        if isinstance(signer, OAuth1aSigner) and signer.has_live_session_token:
            try:
                self.logout()
            except Exception as exc:  # shutting down: report, do not raise
                logger.warning("logout during OAuth shutdown failed: %s", exc)
            signer.forget_live_session_token()

    def _shutdown(self) -> None:
        if self.use_oauth:
            self.oauth_shutdown()
        else:
            super()._shutdown()

    def _require_signer(self) -> OAuth1aSigner:
        if not isinstance(self._oauth_signer, OAuth1aSigner):
            raise LiveSessionTokenError("this client does not use OAuth: create it with use_oauth=True")
        return self._oauth_signer

    def _ensure_token(self) -> None:
        """Before a signed request: refuse without a token, renew one that is about to expire."""
        signer = self._require_signer()
        if not signer.has_live_session_token:
            raise LiveSessionTokenError(
                "no OAuth live session token yet: call oauth_init(...) or generate_live_session_token() first"
            )
        if signer.needs_renewal(RENEWAL_MARGIN_S):
            with self._token_lock:
                if signer.needs_renewal(RENEWAL_MARGIN_S):
                    logger.debug("renewing the OAuth live session token before it expires")
                    self.generate_live_session_token()

    def _renew_after_401(self, used_expiry: Any) -> None:
        """Renew once after a 401, unless another thread already did since the failed request was signed."""
        signer = self._require_signer()
        with self._token_lock:
            if signer.expires_at == used_expiry:
                logger.debug("renewing the OAuth live session token after a 401")
                self.generate_live_session_token()
