"""The part of the client every generated endpoint method calls: `_call`.

It validates and encodes the arguments (`wire.prepare`), runs the endpoint's preflight once per client, and sends
the request through the transport with the endpoint's retry policy and pacing bucket. With OAuth, it makes sure a
live session token exists before sending and renews it once after a 401. A request refused because the brokerage
session is closed waits for it to be re-opened (`recovery.py`) and is sent again when the catalogue allows.

The steps are flows (`flow.py`), written once: `ClientCore` drives them with blocking I/O, and the asyncio client's
`AsyncClientCore` (`aio/core.py`) drives the same generators with its own transport.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .endpoint import EndpointSpec
from .errors import ApiConnectionError, ClientClosedError, ExternalBrokerError, NotAuthenticatedError, name_method
from .flow import Flow, run
from .lifecycle import REOPEN_ENDPOINT, SESSION_ENDPOINTS, refused_for_session
from .policy import mask_account_ids
from .result import Result
from .transport import Transport
from .wire import PreparedCall, prepare

if TYPE_CHECKING:
    from .oauth import OAuth1aSigner
    from .oauth2 import OAuth2Session
    from .session_guard import SessionGuard

logger = logging.getLogger("ibkr_sdk")

ACCOUNTS_FIRST = "receive_brokerage_accounts"


def _asks_for_accounts(exc: ExternalBrokerError) -> bool:
    """The gateway's refusal of an /iserver request made before /iserver/accounts in this session."""
    return "/accounts first" in (exc.message or "").lower()


def call_flow(api: Any, spec: EndpointSpec, args: Mapping[str, Any], method_name: str | None) -> Flow[Result]:
    """One endpoint call: checks, preflight, the request, and the one resend IBKR's session restart calls for."""
    if api._transport.closed:
        raise ClientClosedError(f"{method_name or spec.name}(): the client is closed")
    call = prepare(spec, args, api.account_id, method_name)
    # A dry run with `requests` patched gets exactly the requests of the method called, in order: a preflight
    # would consume the stand-in's scripted answers.
    if spec.preflight and api._auto_preflight and not api._transport.stand_in:
        try:
            yield from preflight_flow(api, spec)
        except ExternalBrokerError as exc:
            # Name the call the user made: the preflight request is an implementation detail.
            exc.preflight = exc.preflight or ", ".join(spec.preflight)
            exc.args = (f"{method_name or spec.name}(): its preflight request failed: {exc}",)
            raise
    try:
        result: Result = yield from send_flow(api, spec, call)
    except ExternalBrokerError as exc:
        if not (api._auto_preflight and ACCOUNTS_FIRST in spec.preflight and _asks_for_accounts(exc)):
            name_method(exc, method_name or spec.name)  # `summary(): failed (GET ...)`: the call the user made
            raise
        # The gateway started a new session and refused the request until /iserver/accounts is called again:
        # nothing was processed, so run the preflight again and resend once.
        api._preflight_done.discard(ACCOUNTS_FIRST)
        yield from preflight_flow(api, spec)
        try:
            result = yield from send_flow(api, spec, call)
        except ExternalBrokerError as again:
            raise name_method(again, method_name or spec.name) from exc
    result.endpoint = spec.name  # lets result.parsed() find the endpoint's response model
    # A successful call also satisfies the preflight of endpoints that name this one.
    api._preflight_done.add(spec.name)
    return result


def send_flow(api: Any, spec: EndpointSpec, call: PreparedCall, headers: dict[str, str] | None = None) -> Flow[Result]:
    """Send one prepared call. Refused because the brokerage session closed, it waits for the session to be
    re-opened and is sent once more if it is safe to repeat. With `auto_recreate_session`, a connection failure drops
    the pooled connections (and cookies) so the next request starts afresh; with `log_responses`, the answer is
    logged."""
    try:
        if not api._auto_reauthenticate or spec.name in SESSION_ENDPOINTS:
            if spec.name == REOPEN_ENDPOINT:
                api._session_guard.note_asked()  # the user's own request: a re-open starting now waits for it
            result: Result = yield from signed_send_flow(api, spec, call, headers)
        else:
            seen = api._session_guard.generation  # tells the guard whether someone re-opened after this was sent
            try:
                result = yield from signed_send_flow(api, spec, call, headers)
            except NotAuthenticatedError as exc:
                if not refused_for_session(spec.name, call.path, exc.status_code, exc.message):
                    raise
                from .recovery import recover_for_flow

                # Refused, not processed: once the session is open again, a retry-safe request is sent again.
                yield from recover_for_flow(api, spec, seen, exc)
                result = yield from signed_send_flow(api, spec, call, headers)
    except ApiConnectionError:
        if api.auto_recreate_session:
            api._recreate_session()  # drop the connections the failure may have left broken
        raise
    if api.log_responses:
        text = f"{call.method} {call.path} -> {result.data!r}"
        logger.info(mask_account_ids(text) if api.mask_account_ids else text)
    return result


def signed_send_flow(
    api: Any,
    spec: EndpointSpec,
    call: PreparedCall,
    headers: dict[str, str] | None = None,
    *,
    max_retries: int | None = None,
) -> Flow[Result]:
    """The transport's send, with OAuth: a live token first, and one renewal and resend after a 401."""
    transport = api._transport
    signer = api._oauth_signer
    if spec.security is not None:
        from .oauth2_client import check_oauth2

        check_oauth2(api, spec)  # /gw/api/v1: OAuth 2.0 with a scope that admits the operation
    retry_safe, pacing = spec.retry_safe, spec.pacing
    if signer is None:
        result: Result = yield transport.send(
            call, retry_safe=retry_safe, pacing=pacing, headers=headers, max_retries=max_retries
        )
        return result
    from .oauth_client import ensure_token_flow, renew_after_401_flow

    yield from ensure_token_flow(api)
    used_expiry = signer.expires_at
    try:
        result = yield transport.send(
            call, retry_safe=retry_safe, pacing=pacing, headers=headers, max_retries=max_retries
        )
        return result
    except NotAuthenticatedError as exc:
        if exc.status_code != 401:
            raise
        refused = exc
    # A 401 means the request was refused, not processed: renew the token once and send it again.
    yield from renew_after_401_flow(api, used_expiry)
    if not (spec.retry_safe or getattr(signer, "resend_after_401", True)):
        raise refused  # OAuth 2.0 sends again only what the catalogue marks retry-safe
    result = yield transport.send(call, retry_safe=retry_safe, pacing=pacing, headers=headers, max_retries=max_retries)
    return result


def preflight_flow(api: Any, spec: EndpointSpec) -> Flow[None]:
    """Call the endpoints `spec` requires first, once per client (under the client's preflight lock)."""
    missing = [name for name in spec.preflight if name not in api._preflight_done]
    if not missing:
        return
    lock = api._preflight_lock
    yield api._acquire(lock)
    try:
        for name in missing:
            if name not in api._preflight_done:
                yield from _shared_preflight_flow(api, name)
    finally:
        lock.release()


def _shared_preflight_flow(api: Any, name: str) -> Flow[None]:
    """Run one preflight request - unless another client or process ran it in this gateway session: a marker in
    the coordination store says so. A marker this client has already relied on, whose request the gateway now asks
    for again (its session changed), is replaced."""
    from .coordination import offloop
    from .coordination.base import POLL, PREFLIGHT_TTL, PREFLIGHT_WAIT, new_token, preflight_key
    from .errors import CoordinationError

    backend = getattr(api, "_coordination", None)
    relied: dict[str, bytes] = api.__dict__.setdefault("_preflight_markers", {})
    key = preflight_key(api._transport.address, name)
    lease, token, found = None, None, None
    if backend is not None:
        try:
            # One client at a time looks for the marker and runs the request (bounded: a stuck holder only costs
            # a duplicate preflight).
            lease = backend.lease(key)
            deadline = time.monotonic() + PREFLIGHT_WAIT
            while True:
                token = yield api._coordinate(lease.try_acquire, PREFLIGHT_WAIT, undo=lease.release)
                if token is not None or time.monotonic() >= deadline:
                    break
                yield api._sleep(POLL)
            found = yield api._coordinate(backend.get, key)
        except CoordinationError:
            pass  # the preflight is sent, as without a store
    try:
        if found is not None and found[0] != relied.get(name):
            relied[name] = found[0]
            api._preflight_done.add(name)
            return
        target = api._endpoints[name]
        yield from send_flow(api, target, prepare(target, {}, api.account_id))
        api._preflight_done.add(name)
        if backend is not None:
            relied[name] = new_token().encode()
            try:
                yield api._coordinate(backend.put, key, relied[name], PREFLIGHT_TTL)
            except CoordinationError:
                pass  # the request went out; only the marker for the others is missing
    finally:
        if lease is not None and token is not None:
            offloop.release(lease, token, backend is not None and backend.io)


class ClientCore:
    """State shared by all endpoint mixins, and the blocking driver of the flows. `IbkrClient.__init__` sets it
    up."""

    account_id: str | None
    _transport: Transport
    _endpoints: Mapping[str, EndpointSpec]
    _auto_preflight: bool
    _preflight_done: set[str]
    _preflight_lock: threading.Lock
    _oauth_signer: OAuth1aSigner | OAuth2Session | None = None
    _auto_reauthenticate: bool = False
    _session_guard: SessionGuard
    mask_account_ids: bool = False
    auto_recreate_session: bool = True
    log_responses: bool = False

    def _call(self, spec: EndpointSpec, args: Mapping[str, Any], *, method_name: str | None = None) -> Result:
        return run(call_flow(self, spec, args, method_name))

    def _send(self, spec: EndpointSpec, call: PreparedCall, headers: dict[str, str] | None = None) -> Result:
        return run(send_flow(self, spec, call, headers))

    def _run_preflight(self, spec: EndpointSpec) -> None:
        run(preflight_flow(self, spec))

    def _send_signed(
        self,
        spec: EndpointSpec,
        call: PreparedCall,
        headers: dict[str, str] | None = None,
        *,
        max_retries: int | None = None,
    ) -> Result:
        return run(signed_send_flow(self, spec, call, headers, max_retries=max_retries))

    def _recreate_session(self) -> None:
        """Close the pooled connections and forget cookies (what `make_session()` does)."""
        session = self._transport.session
        session.close()
        session.cookies.clear()

    # -- what flows yield (see flow.py): done at once here --------------------------------------------------------

    @staticmethod
    def _sleep(seconds: float) -> None:
        time.sleep(seconds)

    @staticmethod
    def _acquire(lock: Any) -> None:
        lock.acquire()

    @staticmethod
    def _coordinate(fn: Callable[..., Any], *args: Any, undo: Callable[[Any], object] | None = None) -> Any:
        return fn(*args)

    def _pause(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        """Wait `seconds` unless `cancel` is set or the client closed meanwhile; True when stopped early."""
        return cancel.wait(seconds) if cancel is not None else self._transport.pause(seconds)

    @staticmethod
    def _guarded_reopen(guard: SessionGuard, seen: int, attempt: Callable[[], Flow[Any]], refusal: int | None) -> Any:
        return guard.reopen(seen, lambda: run(attempt()), refusal)

    @staticmethod
    def _gather(thunks: Sequence[Callable[[], Any]], limit: int) -> list[Any]:
        """Run the thunks on at most `limit` threads; each result or exception, in order."""

        def one(thunk: Callable[[], Any]) -> Any:
            try:
                return thunk()
            except Exception as exc:  # given back in place of the result
                return exc

        if len(thunks) <= 1 or limit <= 1:
            return [one(t) for t in thunks]
        with ThreadPoolExecutor(max_workers=limit) as pool:
            return list(pool.map(one, thunks))
