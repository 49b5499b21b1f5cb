"""`IbkrClient`: the generated endpoint methods plus the hand-written overlays, composed in one visible place."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._endpoint_table import ENDPOINTS, GLOBAL_LIMITS, PACING_BUCKETS
from .compat import CompatOverlay
from .coordination import backend_for, check_spec
from .endpoint import EndpointSpec
from .env import env_bool, env_cacert, env_str
from .marketdata import MarketdataOverlay
from .naming import present_methods
from .oauth import OAuth1aConfig, OAuth1aSigner
from .oauth2 import OAuth2Config, OAuth2Session, env_configured as oauth2_env_configured
from .oauth2_client import OAuth2Overlay
from .orders import OrdersOverlay
from .pacing import NoPacer, Pacer, PacerView, shared_pacer
from .portfolio import PortfolioOverlay
from .recovery import RecoveryOverlay
from .session import SHUTDOWN_HANDLERS
from .session_guard import shared_guard
from .settings import check_max_retries, check_port, check_timeout, check_url, resolve_verify
from .stock_query import StockQueryOverlay
from .transport import Transport, mask_account_ids

logger = logging.getLogger("ibkr_sdk")


class ClientSetup:
    """The constructor's work, shared by `IbkrClient` and `AsyncIbkrClient`: settings from arguments and the
    environment, checks, the process-wide pacer, the transport (made by `_make_transport`)."""

    _tickler: Any = None
    _endpoints: Mapping[str, EndpointSpec]
    timeout: float | tuple[float, float]

    def _make_transport(self, url: str, use_session: bool, **options: Any) -> Any:
        raise NotImplementedError

    def _make_lock(self) -> Any:
        raise NotImplementedError

    def _start_oauth(self, config: OAuth1aConfig | OAuth2Config) -> None:
        raise NotImplementedError

    if TYPE_CHECKING:

        def register_shutdown_handler(self) -> None: ...

    def _setup(
        self,
        account_id: str | None,
        url: str | None,
        host: str,
        port: str,
        base_route: str,
        cacert: str | os.PathLike[str] | bool | None,
        timeout: float,
        max_retries: int,
        use_session: bool | None,
        auto_recreate_session: bool,
        auto_register_shutdown: bool | None,
        log_responses: bool | None,
        verbose_retries: bool | None,
        use_oauth: bool | None,
        oauth_config: Any,
        *,
        auto_preflight: bool,
        pacing: bool,
        pacing_time_scale: float,
        max_pacing_wait: float | None,
        mask_account_ids: bool,
        auto_suppress: bool,
        auto_reauthenticate: bool | None,
        coordination: str | None = None,
        coordination_fallback: str | None = None,
    ) -> None:
        name = type(self).__name__
        if use_oauth is None:
            use_oauth = env_bool("USE_OAUTH", False)
        self.use_oauth = use_oauth
        signer: OAuth1aSigner | OAuth2Session | None = None
        if use_oauth:
            if oauth_config is None:
                oauth_config = OAuth2Config() if oauth2_env_configured() else OAuth1aConfig()
            if isinstance(oauth_config, OAuth2Config):
                signer = OAuth2Session(oauth_config)  # the config checked itself when it was made
            elif isinstance(oauth_config, OAuth1aConfig):
                signer = OAuth1aSigner(oauth_config)  # checks the settings: one clear error per problem
            else:
                raise TypeError(
                    f"{name}(): oauth_config must be an OAuth1aConfig or an OAuth2Config, "
                    f"got {type(oauth_config).__name__}"
                )
            url = oauth_config.oauth_rest_url or url
            if cacert is None or cacert is False:
                cacert = True  # IBKR's hosted API has a proper certificate: always verify it
        self.oauth_config = oauth_config
        self.account_id = account_id if account_id is not None else env_str("ACCOUNT_ID")
        if url is None:
            url = env_str("REST_URL")
        check_port(port)
        if url is None:
            url = f"https://{host}:{port}{base_route}"
        if cacert is None:
            cacert = env_cacert()
        check_url(url)
        check_timeout(timeout)
        check_max_retries(max_retries)
        verify = resolve_verify(url, cacert)
        self.base_url = url.rstrip("/") + "/"
        self.cacert = cacert
        self.timeout = timeout
        self.max_retries = max_retries
        spec = check_spec(coordination if coordination is not None else env_str("COORDINATION", "local"), f"{name}()")
        fallback = coordination_fallback if coordination_fallback is not None else env_str("COORDINATION_FALLBACK")
        if fallback not in (None, "process"):
            raise ValueError(f"{name}(): parameter 'coordination_fallback' must be None or 'process', got {fallback!r}")
        self._coordination = backend_for(spec)
        self._coordination_fallback = fallback
        netloc = urlsplit(url).netloc.lower()
        limit = GLOBAL_LIMITS["oauth" if use_oauth else "gateway"]
        pacer: Pacer = (
            shared_pacer(
                (netloc, limit.name, pacing_time_scale, spec, self._coordination.store, fallback),
                lambda: Pacer(
                    PACING_BUCKETS,
                    limit,
                    time_scale=pacing_time_scale,
                    coordination=self._coordination,
                    key=netloc,
                    fallback=fallback,
                ),
            )
            if pacing
            else NoPacer()
        )
        if max_pacing_wait is not None:
            if isinstance(max_pacing_wait, bool) or not max_pacing_wait >= 0:
                raise ValueError(f"{name}(): max_pacing_wait must be seconds (0 or more), got {max_pacing_wait!r}")
            pacer = PacerView(pacer, float(max_pacing_wait))
        self.max_pacing_wait = max_pacing_wait
        self.mask_account_ids = mask_account_ids
        self.use_session = env_bool("USE_SESSION", True) if use_session is None else use_session
        self._transport = self._make_transport(
            url,
            self.use_session,
            verify=verify,
            timeout=timeout,
            max_retries=max_retries,
            pacer=pacer,
            mask_accounts=mask_account_ids,
            signer=signer,
        )
        if isinstance(signer, OAuth2Session):
            self._transport.body_signer = signer.sign_body
        self._transport.verbose_retries = (
            env_bool("VERBOSE_RETRIES", True) if verbose_retries is None else verbose_retries
        )
        self.auto_recreate_session = auto_recreate_session
        self.log_responses = env_bool("LOG_RESPONSES", False) if log_responses is None else log_responses
        self._endpoints = ENDPOINTS
        self._auto_preflight = auto_preflight
        self._preflight_done: set[str] = set()
        self._preflight_lock = self._make_lock()
        self.auto_suppress = auto_suppress
        self._suppressed_ids: set[str] = set()
        self._oauth_signer = signer
        self._token_lock = self._make_lock()
        if auto_reauthenticate is None:
            auto_reauthenticate = env_bool("AUTO_REAUTHENTICATE", True)
        elif not isinstance(auto_reauthenticate, bool):
            raise TypeError(f"{name}(): auto_reauthenticate must be True or False, got {auto_reauthenticate!r}")
        self._auto_reauthenticate = auto_reauthenticate
        self._session_guard = shared_guard(self._transport.base_url.lower())
        if env_bool("AUTO_REGISTER_SHUTDOWN", False) if auto_register_shutdown is None else auto_register_shutdown:
            if threading.current_thread() is threading.main_thread():
                self.register_shutdown_handler()
            else:
                logger.warning("%s(auto_register_shutdown=True): not on the main thread; no handler registered", name)
        if signer is not None and isinstance(oauth_config, (OAuth1aConfig, OAuth2Config)) and oauth_config.init_oauth:
            self._start_oauth(oauth_config)

    def _keepalive_claim(self, seconds: float) -> bool:
        """Claim this session's keep-alive for `seconds` among every client sharing the coordination store (the
        tickler skips its tick when another one holds it)."""
        return bool(self._coordination.claim(f"{self._transport.address.lower()}:tickle", seconds))


class IbkrClient(
    ClientSetup,
    CompatOverlay,
    OrdersOverlay,
    MarketdataOverlay,
    StockQueryOverlay,
    PortfolioOverlay,
    OAuth2Overlay,
    RecoveryOverlay,
):
    """Client for the IBKR Client Portal Web API (through the gateway, or IBKR's hosted API with OAuth).

    Every endpoint of the catalogue is a method returning a `Result`. Arguments are checked before anything is
    sent; a bad one raises `ValueError` naming the method and the parameter.

    Args:
        account_id: Default account for endpoints that take one. From `IBKR_SDK_ACCOUNT_ID` (or `IBIND_ACCOUNT_ID`)
            when not given.
        url: Base URL of the REST API, e.g. `https://localhost:5000/v1/api/`. From `IBKR_SDK_REST_URL` (or
            `IBIND_REST_URL`) when not given; otherwise built from `host`, `port` and `base_route`.
        host: Gateway host, used when no `url` is known.
        port: Gateway port, used when no `url` is known.
        base_route: Path prefix of the API, used when no `url` is known.
        cacert: Path of a CA bundle to verify the server with, `True` for the system store (or the bundle named by
            `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE`), or `False` to skip verification. From `IBKR_SDK_CACERT` when
            not given; by default off for a loopback host (the gateway's self-signed certificate) and on for any
            other host.
        timeout: Seconds to wait for each answer (above 0), or a `(connect, read)` pair.
        max_retries: How often a failed request that is safe to repeat is retried (0 or more).
        use_session: Keep connections open between requests (one pooled HTTP session). False sends every request on
            a new connection. From `IBKR_SDK_USE_SESSION` when not given; default True.
        auto_recreate_session: After a connection failure, drop the pooled connections and cookies
            (`make_session()`), so the next request starts afresh.
        auto_register_shutdown: Register the SIGINT/SIGTERM handler (`register_shutdown_handler()`) now; only from
            the main thread. From `IBKR_SDK_AUTO_REGISTER_SHUTDOWN` when not given; default False (the library
            installs no signal handler unless asked).
        log_responses: Log every answer's body at INFO on the `ibkr_sdk` logger (account ids masked with
            `mask_account_ids`). From `IBKR_SDK_LOG_RESPONSES` when not given; default False.
        verbose_retries: Log each retry at INFO instead of DEBUG. From `IBKR_SDK_VERBOSE_RETRIES` when not given;
            default True.
        use_oauth: Connect to IBKR's hosted API with OAuth. From `IBKR_SDK_USE_OAUTH` when not given.
        oauth_config: `OAuth1aConfig` or `OAuth2Config` (used with `use_oauth`; when None, an `OAuth2Config` from
            `IBKR_SDK_OAUTH2_*` if any of them is set, else an `OAuth1aConfig` from `IBKR_SDK_OAUTH1A_*` /
            `IBIND_OAUTH1A_*`). Unless its `init_oauth` is False, the client obtains its tokens and opens the
            brokerage session while it is constructed.
        auto_preflight: Call the endpoints IBKR requires before others (e.g. `/iserver/accounts` before orders)
            automatically, once per client.
        pacing: Keep requests within IBKR's global and per-endpoint limits (callers wait for a slot). On by
            default; False turns it off. All clients of a process that talk to the same server share one set of
            limits, since IBKR counts per IP.
        pacing_time_scale: Multiplies every pacing period (tests use small values; keep 1 against IBKR).
        max_pacing_wait: Seconds a request may wait for pacing; when the limits would hold it longer,
            `RateLimitedError` is raised before anything is sent. None (the default) waits as long as needed.
            Waits over one second are logged at INFO either way (what the request waited for, how long).
        mask_account_ids: Hide account id digits in debug logs.
        auto_suppress: Before placing an order, suppress (for the rest of the brokerage session) the questions
            its `answers` approve by `QuestionType` or message id, so later orders need fewer round trips.
        auto_reauthenticate: When a request finds the brokerage session closed while the login is alive (a 401 on
            `/iserver/...` or 400 "no bridge"), re-open it with `compete=false` (once at a time for every client
            of the process talking to this gateway), wait until the status says authenticated (within `timeout`),
            then send the request again if it is safe to repeat; orders and other writes are never sent again.
            A competing login raises `SessionCompetingError`; the client never takes the session over on its own.
            The tickler re-opens ahead of time. From `IBKR_SDK_AUTO_REAUTHENTICATE` when not given; default True.
        coordination: What the processes talking to the same server share (the pacing limits, a 429 pause, per
            account the order flow, the preflight, the tickler's keep-alive and live-order snapshots): "local"
            (the default: every process of this machine, through files in `IBKR_SDK_STATE_DIR`), "process" (this
            process only) or a `redis://` / `rediss://` URL (processes on several hosts; needs the `redis` extra).
            From `IBKR_SDK_COORDINATION` when not given.
        coordination_fallback: None (the default): when the shared store is unreachable, corrupt or not
            permitted, requests raise `CoordinationError` before anything is sent. "process": requests other than
            orders go ahead paced within this process, with a WARNING; orders always raise. From
            `IBKR_SDK_COORDINATION_FALLBACK` when not given.
    """

    def __init__(
        self,
        account_id: str | None = None,
        url: str | None = None,
        host: str = "127.0.0.1",
        port: str = "5000",
        base_route: str = "/v1/api/",
        cacert: str | os.PathLike[str] | bool | None = None,
        timeout: float = 10,
        max_retries: int = 3,
        use_session: bool | None = None,
        auto_recreate_session: bool = True,
        auto_register_shutdown: bool | None = None,
        log_responses: bool | None = None,
        verbose_retries: bool | None = None,
        use_oauth: bool | None = None,
        oauth_config: Any = None,
        *,
        auto_preflight: bool = True,
        pacing: bool = True,
        pacing_time_scale: float = 1.0,
        max_pacing_wait: float | None = None,
        mask_account_ids: bool = False,
        auto_suppress: bool = False,
        auto_reauthenticate: bool | None = None,
        coordination: str | None = None,
        coordination_fallback: str | None = None,
    ) -> None:
        self._setup(
            account_id,
            url,
            host,
            port,
            base_route,
            cacert,
            timeout,
            max_retries,
            use_session,
            auto_recreate_session,
            auto_register_shutdown,
            log_responses,
            verbose_retries,
            use_oauth,
            oauth_config,
            auto_preflight=auto_preflight,
            pacing=pacing,
            pacing_time_scale=pacing_time_scale,
            max_pacing_wait=max_pacing_wait,
            mask_account_ids=mask_account_ids,
            auto_suppress=auto_suppress,
            auto_reauthenticate=auto_reauthenticate,
            coordination=coordination,
            coordination_fallback=coordination_fallback,
        )

    def _make_transport(self, url: str, use_session: bool, **options: Any) -> Any:
        transport = Transport(url, **options)
        if not use_session:
            transport.session.headers["Connection"] = "close"
        return transport

    def _make_lock(self) -> Any:
        return threading.Lock()

    def _start_oauth(self, config: OAuth1aConfig | OAuth2Config) -> None:
        self.oauth_init(config.maintain_oauth, config.init_brokerage_session, shutdown_oauth=config.shutdown_oauth)

    def __repr__(self) -> str:
        account = self.account_id
        if account is not None and self.mask_account_ids:
            account = mask_account_ids(account)
        return f"{type(self).__name__}(url={self.base_url!r}, account_id={account!r})"

    def close(self) -> None:
        """Stop the tickler, cut any request in flight, release the connections and unregister the shutdown
        handler. Every later call raises `ClientClosedError`. Idempotent."""
        tickler = self._tickler
        if tickler is not None:
            tickler.close()
        self._transport.close()
        if tickler is not None:
            tickler.join(1.0)
        SHUTDOWN_HANDLERS.discard(self)

    def __enter__(self) -> IbkrClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


present_methods(IbkrClient)  # argument errors name IbkrClient, not the mixin a method comes from
