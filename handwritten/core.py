"""The part of the client every generated endpoint method calls: `_call`.

It validates and encodes the arguments (`wire.prepare`), runs the endpoint's preflight once per client, and sends
the request through the transport with the endpoint's retry policy and pacing bucket. With OAuth, it makes sure a
live session token exists before sending and renews it once after a 401. A request refused because the brokerage
session is closed waits for it to be re-opened (`recovery.py`) and is sent again when the catalogue allows.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .endpoint import EndpointSpec
from .errors import ClientClosedError, ExternalBrokerError, NotAuthenticatedError
from .lifecycle import REOPEN_ENDPOINT, SESSION_ENDPOINTS, refused_for_session
from .result import Result
from .transport import Transport
from .wire import PreparedCall, prepare

if TYPE_CHECKING:
    from .oauth import OAuth1aSigner
    from .oauth2 import OAuth2Session
    from .session_guard import SessionGuard

ACCOUNTS_FIRST = "receive_brokerage_accounts"


def _asks_for_accounts(exc: ExternalBrokerError) -> bool:
    """The gateway's refusal of an /iserver request made before /iserver/accounts in this session."""
    return "/accounts first" in (exc.message or "").lower()


class ClientCore:
    """State shared by all endpoint mixins. `IbkrClient.__init__` sets it up."""

    account_id: str | None
    _transport: Transport
    _endpoints: Mapping[str, EndpointSpec]
    _auto_preflight: bool
    _preflight_done: set[str]
    _preflight_lock: threading.Lock
    _oauth_signer: OAuth1aSigner | OAuth2Session | None = None
    _auto_reauthenticate: bool = False
    _session_guard: SessionGuard

    def _call(self, spec: EndpointSpec, args: Mapping[str, Any], *, method_name: str | None = None) -> Result:
        if self._transport.closed:
            raise ClientClosedError(f"{method_name or spec.name}(): the client is closed")
        call = prepare(spec, args, self.account_id, method_name)
        # A dry run with `requests` patched gets exactly the requests of the method called, in order: a preflight
        # would consume the stand-in's scripted answers.
        if spec.preflight and self._auto_preflight and not self._transport.stand_in:
            try:
                self._run_preflight(spec)
            except ExternalBrokerError as exc:
                # Name the call the user made: the preflight request is an implementation detail.
                exc.preflight = exc.preflight or ", ".join(spec.preflight)
                exc.args = (f"{method_name or spec.name}(): its preflight request failed: {exc}",)
                raise
        try:
            result = self._send(spec, call)
        except ExternalBrokerError as exc:
            if not (self._auto_preflight and ACCOUNTS_FIRST in spec.preflight and _asks_for_accounts(exc)):
                raise
            # The gateway started a new session and refused the request until /iserver/accounts is called again:
            # nothing was processed, so run the preflight again and resend once.
            self._preflight_done.discard(ACCOUNTS_FIRST)
            self._run_preflight(spec)
            result = self._send(spec, call)
        result.endpoint = spec.name  # lets result.parsed() find the endpoint's response model
        # A successful call also satisfies the preflight of endpoints that name this one.
        self._preflight_done.add(spec.name)
        return result

    def _send(self, spec: EndpointSpec, call: PreparedCall, headers: dict[str, str] | None = None) -> Result:
        if not self._auto_reauthenticate or spec.name in SESSION_ENDPOINTS:
            if spec.name == REOPEN_ENDPOINT:
                self._session_guard.note_asked()  # the user's own request: a re-open starting now waits for it
            return self._send_signed(spec, call, headers)
        seen = self._session_guard.generation  # tells the guard whether someone re-opened after this was sent
        try:
            return self._send_signed(spec, call, headers)
        except NotAuthenticatedError as exc:
            if not refused_for_session(spec.name, call.path, exc.status_code, exc.message):
                raise
            # Refused, not processed: once the session is open again, a retry-safe request is sent again.
            self._recover_for(spec, seen, exc)
            return self._send_signed(spec, call, headers)

    def _send_signed(
        self,
        spec: EndpointSpec,
        call: PreparedCall,
        headers: dict[str, str] | None = None,
        *,
        max_retries: int | None = None,
    ) -> Result:
        signer = self._oauth_signer
        if spec.security is not None:
            self._check_oauth2(spec)  # /gw/api/v1: OAuth 2.0 with a scope that admits the operation
        send = self._transport.send
        if signer is None:
            return send(call, retry_safe=spec.retry_safe, pacing=spec.pacing, headers=headers, max_retries=max_retries)
        self._ensure_token()
        used_expiry = signer.expires_at
        try:
            return send(call, retry_safe=spec.retry_safe, pacing=spec.pacing, headers=headers, max_retries=max_retries)
        except NotAuthenticatedError as exc:
            if exc.status_code != 401:
                raise
            # A 401 means the request was refused, not processed: renew the token once and send it again.
            self._renew_after_401(used_expiry)
            if not (spec.retry_safe or getattr(signer, "resend_after_401", True)):
                raise  # OAuth 2.0 sends again only what the catalogue marks retry-safe
            return send(call, retry_safe=spec.retry_safe, pacing=spec.pacing, headers=headers, max_retries=max_retries)

    def _recover_for(self, spec: EndpointSpec, seen: int, exc: NotAuthenticatedError) -> None:
        raise NotImplementedError  # provided by the recovery overlay

    def _ensure_token(self) -> None:
        raise NotImplementedError  # provided by the OAuth overlay

    def _check_oauth2(self, spec: EndpointSpec) -> None:
        raise NotImplementedError  # provided by the OAuth 2.0 overlay

    def _renew_after_401(self, used_expiry: Any) -> None:
        raise NotImplementedError  # provided by the OAuth overlay

    def _run_preflight(self, spec: EndpointSpec) -> None:
        missing = [name for name in spec.preflight if name not in self._preflight_done]
        if not missing:
            return
        with self._preflight_lock:
            for name in missing:
                if name in self._preflight_done:
                    continue
                target = self._endpoints[name]
                self._send(target, prepare(target, {}, self.account_id))
                self._preflight_done.add(name)
