"""OAuth 2.0 (private_key_jwt) for IBKR's hosted API: the settings, the JWTs and the token state, without any I/O.

IBKR's flow, as this module implements it:

1. Access token: `POST https://api.ibkr.com/oauth2/api/v1/token`, form-encoded `grant_type=client_credentials`,
   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, `client_assertion=<JWT>`, `scope`.
   The assertion is an RS256 JWT (header `kid`), claims `iss` = `sub` = client id, `aud` = "/token", a short `exp`,
   `iat` backdated a little for clock skew and a fresh `jti`. The answer holds `access_token` and `expires_in`.
2. SSO session: `POST https://api.ibkr.com/gw/api/v1/sso-sessions` with the access token as bearer and
   `Content-Type: application/jwt`; the body is a second RS256 JWT with `ip`, `credential` (the username), `iss`,
   `iat` and `exp`. The answer's `access_token` is the session token: the bearer of every `/v1/api` request.
3. Account Management (`/gw/api/v1`): the access token is the bearer; an operation with IBKR's `SIGNED_JWT` policy
   takes its body as an RS256 JWT whose claims are the request's members plus `iss`, `iat` and `exp`.

Everything here is pure (time is passed in) so that the sync client and an asyncio client share it: building the
assertion, the token form, the session JWT and signed bodies, reading the answers, and deciding when to renew.
`OAuth2Config` gathers and checks the settings; `OAuth2Session` holds the tokens and is the transport's signer.
Signing uses pycryptodome (the `oauth` extra), imported when a key is loaded.

Secrets (the private key, the access and session tokens, assertions and signed JWTs) never appear in a `repr`, a log
record or an exception message of this module.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .env import PREFIX
from .oauth import OAuthConfigError, OAuthError, _crypto_missing

if TYPE_CHECKING:
    from Crypto.PublicKey.RSA import RsaKey

__all__ = [
    "ACCOUNT_MANAGEMENT_BASE",
    "CLIENT_ASSERTION_TYPE",
    "DEFAULT_REST_URL",
    "DEFAULT_SCOPE",
    "DEFAULT_SSO_SESSION_URL",
    "DEFAULT_TOKEN_URL",
    "AccessToken",
    "OAuth2Config",
    "OAuth2Error",
    "OAuth2Session",
    "SessionToken",
    "client_assertion",
    "decode_jwt",
    "parse_session_answer",
    "parse_token_answer",
    "refusal",
    "renewal_margin",
    "session_claims",
    "sign_jwt",
    "signed_body_claims",
    "token_form",
]

logger = logging.getLogger("ibkr_sdk")

DEFAULT_REST_URL = "https://api.ibkr.com/v1/api/"
DEFAULT_TOKEN_URL = "https://api.ibkr.com/oauth2/api/v1/token"
DEFAULT_SSO_SESSION_URL = "https://api.ibkr.com/gw/api/v1/sso-sessions"
DEFAULT_SCOPE = "sso-sessions.write"
ACCOUNT_MANAGEMENT_BASE = "/gw/api/v1"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S = 60
"""`exp - iat` of a client assertion (IBKR accepts at most 300 s; the skew allowance is inside it)."""
CLOCK_SKEW_S = 10
"""Seconds `iat` is backdated, so a server clock slightly behind ours still accepts the JWT."""
SESSION_JWT_LIFETIME_S = 86400
SIGNED_BODY_LIFETIME_S = 60
MIN_KEY_BITS = 2048
RECOMMENDED_KEY_BITS = 3072
MAX_RENEWAL_MARGIN_S = 60.0
_DEFAULT_TOKEN_LIFETIME_S = 3600.0
_MASK = "***"


class OAuth2Error(OAuthError, RuntimeError):
    """An OAuth 2.0 step failed: the token or session request was refused or got no answer, or there is no token.

    `step` names the step (`access token`, `SSO session`, ...), `status_code` the HTTP status when there was an
    answer. The message quotes IBKR's error code and description, never a secret.
    """

    def __init__(self, message: str, *, step: str = "", status_code: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.status_code = status_code


# --------------------------------------------------------------------------------------------------------------------
# JWT


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS compact serialisation uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_jwt(claims: Mapping[str, Any], key: RsaKey, kid: str | None = None) -> str:
    """A compact RS256 JWS of `claims` (header `alg`, `typ` and, when given, `kid`), signed with RSASSA-PKCS1-v1_5
    over SHA-256."""
    try:
        from Crypto.Hash import SHA256
        from Crypto.Signature import pkcs1_15
    except ImportError as exc:
        raise _crypto_missing(exc) from None
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = b64url(_json(header)) + "." + b64url(_json(claims))
    signature = pkcs1_15.new(key).sign(SHA256.new(signing_input.encode("ascii")))
    return signing_input + "." + b64url(signature)


def decode_jwt(token: str, public_key: RsaKey | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS; with `public_key`, the RS256 signature is verified first.

    Raises:
        ValueError: not a JWS, not RS256, or the signature does not verify.
    """
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS (three dot-separated parts)")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise ValueError("the JWS header or claims are not base64url JSON") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("the JWS header and claims must be JSON objects")
    if public_key is not None:
        from Crypto.Hash import SHA256
        from Crypto.Signature import pkcs1_15

        if header.get("alg") != "RS256":
            raise ValueError("the JWS is not signed with RS256")
        try:
            pkcs1_15.new(public_key).verify(
                SHA256.new((parts[0] + "." + parts[1]).encode("ascii")), b64url_decode(parts[2])
            )
        except (ValueError, TypeError):
            raise ValueError("the JWS signature does not verify with the registered key") from None
    return header, claims


def client_assertion(
    client_id: str,
    kid: str,
    key: RsaKey,
    now: float,
    *,
    audience: str = "/token",
    lifetime: int = ASSERTION_LIFETIME_S,
    skew: int = CLOCK_SKEW_S,
) -> str:
    """The signed client assertion of one token request: a fresh `jti` every time, `iat` backdated by `skew`."""
    iat = int(now) - skew
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": iat,
        "exp": iat + lifetime,
        "jti": secrets.token_urlsafe(18),
    }
    return sign_jwt(claims, key, kid)


def token_form(assertion: str, scope: str, client_id: str) -> dict[str, str]:
    """The form of the access token request."""
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": scope,
        "client_id": client_id,
    }


def session_claims(
    ip: str, credential: str, client_id: str, now: float, *, lifetime: int = SESSION_JWT_LIFETIME_S
) -> dict[str, Any]:
    """Claims of the SSO session request's JWT."""
    iat = int(now) - CLOCK_SKEW_S
    return {"ip": ip, "credential": credential, "iss": client_id, "iat": iat, "exp": iat + lifetime}


def signed_body_claims(
    payload: Mapping[str, Any], client_id: str, now: float, *, lifetime: int = SIGNED_BODY_LIFETIME_S
) -> dict[str, Any]:
    """Claims of a SIGNED_JWT request body: the request's members, then `iss`, `iat` and `exp` (unless the request
    sets them itself)."""
    iat = int(now) - CLOCK_SKEW_S
    claims: dict[str, Any] = {"iss": client_id, "iat": iat, "exp": iat + lifetime}
    claims.update(payload)
    return claims


# --------------------------------------------------------------------------------------------------------------------
# Answers


def refusal(status: int, data: Any, text: str = "") -> str:
    """`HTTP 401 invalid_client: <description>` from an OAuth error answer (RFC 6749) or a problem detail (RFC 9457)."""
    code = description = ""
    if isinstance(data, Mapping):
        code = str(data.get("error") or data.get("title") or data.get("code") or "")
        description = str(data.get("error_description") or data.get("detail") or data.get("message") or "")
    elif text:
        description = text.strip()[:200]
    out = f"HTTP {status}"
    if code:
        out += f" {code}"
    if description:
        out += f": {description}"
    return out


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float
    lifetime: float
    scope: tuple[str, ...] = ()

    def needs_renewal(self, now: float) -> bool:
        """True within the renewal margin before expiry (a quarter of the lifetime, at most a minute)."""
        return now >= self.expires_at - renewal_margin(self.lifetime)


@dataclass(frozen=True)
class SessionToken:
    value: str = field(repr=False)
    opened_at: float


def renewal_margin(lifetime: float) -> float:
    """Seconds before expiry at which a token is renewed: however short the lifetime, a token serves for three
    quarters of it, so a short `expires_in` never turns into a refresh loop."""
    return min(MAX_RENEWAL_MARGIN_S, max(0.0, lifetime) / 4)


def parse_token_answer(status: int, data: Any, now: float, text: str = "") -> AccessToken:
    """The access token of the token endpoint's answer.

    Raises:
        OAuth2Error: a refusal (naming IBKR's error code), or an answer without `access_token`.
    """
    if not 200 <= status < 300:
        raise OAuth2Error(
            f"OAuth 2.0 access token request refused: {refusal(status, data, text)}",
            step="access token",
            status_code=status,
        )
    token = data.get("access_token") if isinstance(data, Mapping) else None
    if not isinstance(token, str) or not token:
        raise OAuth2Error("OAuth 2.0 access token answer lacks access_token", step="access token", status_code=status)
    assert isinstance(data, Mapping)
    raw_expiry = data.get("expires_in")
    lifetime = _DEFAULT_TOKEN_LIFETIME_S
    if raw_expiry is not None:
        try:
            lifetime = float(raw_expiry)
        except (TypeError, ValueError):
            raise OAuth2Error(
                "OAuth 2.0 access token answer: expires_in is not a number", step="access token", status_code=status
            ) from None
    scope = data.get("scope")
    scopes = tuple(str(scope).split()) if scope else ()
    return AccessToken(token, now + lifetime, lifetime, scopes)


def parse_session_answer(status: int, data: Any, now: float, text: str = "") -> SessionToken:
    """The session token of the SSO session answer.

    Raises:
        OAuth2Error: a refusal, or an answer without `access_token` (or one saying the session is not active).
    """
    if not 200 <= status < 300:
        raise OAuth2Error(
            f"OAuth 2.0 SSO session request refused: {refusal(status, data, text)}",
            step="SSO session",
            status_code=status,
        )
    token = data.get("access_token") if isinstance(data, Mapping) else None
    if not isinstance(token, str) or not token:
        raise OAuth2Error("OAuth 2.0 SSO session answer lacks access_token", step="SSO session", status_code=status)
    assert isinstance(data, Mapping)
    if data.get("active") is False:
        raise OAuth2Error("OAuth 2.0 SSO session answer: the session is not active", step="SSO session")
    return SessionToken(token, now)


# --------------------------------------------------------------------------------------------------------------------
# Configuration

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
_SWITCH_ALIASES = ("init_oauth", "maintain_oauth", "shutdown_oauth", "init_brokerage_session")


def env_name(field_name: str) -> str:
    """The environment variable of a field: `IBKR_SDK_OAUTH2_<FIELD>`."""
    return f"{PREFIX}OAUTH2_{field_name.upper()}"


def _env(field_name: str) -> str | None:
    value = os.environ.get(env_name(field_name))
    if value is None and field_name in _SWITCH_ALIASES:
        value = os.environ.get(PREFIX + field_name.upper())
    return value if value is not None and value.strip() else None


def _env_text(field_name: str) -> Callable[[], str | None]:
    return lambda: _env(field_name)


def _env_text_or(field_name: str, default: str) -> Callable[[], str]:
    def factory() -> str:
        value = _env(field_name)
        return default if value is None else value.strip()

    return factory


def _env_flag(field_name: str, default: bool) -> Callable[[], bool]:
    def factory() -> bool:
        value = _env(field_name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise OAuthConfigError(f"environment variable {env_name(field_name)} must be true or false, got {value!r}")

    return factory


def env_configured() -> bool:
    """True when any `IBKR_SDK_OAUTH2_*` variable is set: a client with `use_oauth` then uses OAuth 2.0."""
    prefix = f"{PREFIX}OAUTH2_"
    return any(k.startswith(prefix) and v.strip() for k, v in os.environ.items())


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


@dataclass(repr=False)
class OAuth2Config:
    """Settings of OAuth 2.0 (private_key_jwt) against IBKR's hosted API, checked when the config is created.

    A field that is not passed is read from `IBKR_SDK_OAUTH2_<FIELD>` (e.g. `IBKR_SDK_OAUTH2_CLIENT_ID`); the four
    switches also read `IBKR_SDK_<FIELD>`. Empty variables count as unset; a value passed explicitly always wins.

    Attributes:
        client_id: The client id IBKR registered.
        client_key_id: The key id (`kid`) IBKR registered with the public key.
        private_key_path: Path of the RSA private key (PEM, PKCS#8 or PKCS#1).
        private_key: The private key itself (PEM text); wins over `private_key_path`.
        username: The IBKR username the session acts for (the session's `credential`).
        ip_address: The public IP address to put in the session request (it must be in the whitelist registered
            with IBKR). Never looked up behind your back: `OAuth2Config.discover_ip_address()` asks a public echo
            service only when you call it.
        oauth_rest_url: Base URL of the trading API.
        token_url: The token endpoint.
        sso_session_url: The SSO session endpoint.
        scope: Space-separated scopes to request (add e.g. `accounts.read` for Account Management operations).
        init_oauth: Get the access token and open the session when the client starts.
        init_brokerage_session: Then open the brokerage session (`ssodh/init`).
        maintain_oauth: Then start the tickler, which keeps the session alive (and opens a new one when it is gone).
        shutdown_oauth: Register the SIGINT/SIGTERM handler that logs out (main thread only).

    Raises:
        OAuthConfigError: a missing id, an unreadable key, a key that is not an RSA private key or is shorter than
            2048 bits, a malformed URL; the message names the field and its environment variable.
    """

    client_id: str | None = field(default_factory=_env_text("client_id"))
    client_key_id: str | None = field(default_factory=_env_text("client_key_id"))
    private_key_path: str | None = field(default_factory=_env_text("private_key_path"))
    private_key: str | None = field(default_factory=_env_text("private_key"))
    username: str | None = field(default_factory=_env_text("username"))
    ip_address: str | None = field(default_factory=_env_text("ip_address"))
    oauth_rest_url: str = field(default_factory=_env_text_or("rest_url", DEFAULT_REST_URL))
    token_url: str = field(default_factory=_env_text_or("token_url", DEFAULT_TOKEN_URL))
    sso_session_url: str = field(default_factory=_env_text_or("sso_session_url", DEFAULT_SSO_SESSION_URL))
    scope: str = field(default_factory=_env_text_or("scope", DEFAULT_SCOPE))
    init_oauth: bool = field(default_factory=_env_flag("init_oauth", True))
    init_brokerage_session: bool = field(default_factory=_env_flag("init_brokerage_session", True))
    maintain_oauth: bool = field(default_factory=_env_flag("maintain_oauth", True))
    shutdown_oauth: bool = field(default_factory=_env_flag("shutdown_oauth", True))
    _key: RsaKey | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        missing = [
            f"{name} ({env_name(name)})"
            for name in ("client_id", "client_key_id", "username")
            if _blank(getattr(self, name))
        ]
        if _blank(self.private_key) and _blank(self.private_key_path):
            missing.append(f"private_key_path ({env_name('private_key_path')}) or private_key")
        if missing:
            raise OAuthConfigError(f"OAuth2Config: settings are missing: {'; '.join(missing)}")
        for name in ("oauth_rest_url", "token_url", "sso_session_url"):
            value = getattr(self, name)
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise OAuthConfigError(f"OAuth2Config: {name} must be an http(s) URL, got {value!r}")
        if _blank(self.scope):
            raise OAuthConfigError(f"OAuth2Config: scope must not be empty ({env_name('scope')})")
        if self.ip_address is not None and _blank(self.ip_address):
            self.ip_address = None
        self._key = self._load_key()

    def __repr__(self) -> str:
        shown = [
            f"client_id={self.client_id!r}",
            f"client_key_id={self.client_key_id!r}",
            f"private_key_path={self.private_key_path!r}",
            f"private_key={'None' if self.private_key is None else repr(_MASK)}",
            f"username={self.username!r}",
            f"ip_address={self.ip_address!r}",
            f"oauth_rest_url={self.oauth_rest_url!r}",
            f"token_url={self.token_url!r}",
            f"sso_session_url={self.sso_session_url!r}",
            f"scope={self.scope!r}",
            f"init_oauth={self.init_oauth!r}",
            f"init_brokerage_session={self.init_brokerage_session!r}",
            f"maintain_oauth={self.maintain_oauth!r}",
            f"shutdown_oauth={self.shutdown_oauth!r}",
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def key(self) -> RsaKey:
        assert self._key is not None  # loaded by __post_init__
        return self._key

    @staticmethod
    def discover_ip_address(url: str = "https://api.ipify.org", timeout: float = 5.0) -> str:
        """Ask a public echo service for this machine's public IP address. Only ever called by you."""
        import requests

        answer = requests.get(url, timeout=timeout)
        answer.raise_for_status()
        return answer.text.strip()

    def _load_key(self) -> RsaKey:
        try:
            from Crypto.PublicKey import RSA
        except ImportError as exc:
            raise _crypto_missing(exc) from None
        data: str | bytes
        if not _blank(self.private_key):
            assert self.private_key is not None
            data, source = self.private_key, "the key given as text (private_key)"
        else:
            assert self.private_key_path is not None
            path = Path(self.private_key_path.strip()).expanduser()
            try:
                data = path.read_bytes()
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise OAuthConfigError(
                    f"OAuth2Config: cannot read private_key_path {str(path)!r} ({env_name('private_key_path')}): "
                    f"{reason}"
                ) from None
            source = f"private_key_path {str(path)!r}"
        try:
            key = RSA.import_key(data)
        except (ValueError, IndexError, TypeError):
            raise OAuthConfigError(
                f"OAuth2Config: {source} does not hold an RSA private key in PEM (PKCS#8 or PKCS#1) form "
                "(passphrase-protected keys are not supported)"
            ) from None
        if not key.has_private():
            raise OAuthConfigError(f"OAuth2Config: {source} holds a public key; the private key is needed")
        bits = key.size_in_bits()
        if bits < MIN_KEY_BITS:
            raise OAuthConfigError(f"OAuth2Config: {source} is a {bits}-bit key; at least {MIN_KEY_BITS} bits needed")
        if bits < RECOMMENDED_KEY_BITS:
            warnings.warn(
                f"OAuth2Config: the private key has {bits} bits; IBKR asks for {RECOMMENDED_KEY_BITS} or 4096",
                UserWarning,
                stacklevel=4,
            )
        return key


# --------------------------------------------------------------------------------------------------------------------
# Token state


class OAuth2Session:
    """The tokens of one client and the bearer of each request; the transport's signer (`session(method, url, q)`).

    Requests below `/gw/api/v1` (and the token and session URLs) carry the access token; every other request the
    session token. Tokens are swapped in as whole objects, so other threads may sign while one renews. Without a
    session, a `/v1/api` request raises `OAuth2Error` before anything is sent.
    """

    oauth2 = True
    resend_after_401 = False  # after a 401 and a new session, only retry-safe requests are sent again

    def __init__(self, config: OAuth2Config, clock: Callable[[], float] = time.time) -> None:
        assert config.client_id and config.client_key_id and config.username  # checked by OAuth2Config
        self.client_id = config.client_id.strip()
        self.kid = config.client_key_id.strip()
        self.username = config.username.strip()
        self.scope = " ".join(config.scope.split())
        self.token_url = config.token_url
        self.sso_session_url = config.sso_session_url
        self.ip_address = config.ip_address
        self._key = config.key
        self._clock = clock
        self._access: AccessToken | None = None
        self._session: SessionToken | None = None
        self._local = threading.local()

    def __repr__(self) -> str:
        access = "None" if self._access is None else f"{_MASK!r}, expires_at={self._access.expires_at:.0f}"
        session = "None" if self._session is None else repr(_MASK)
        return (
            f"{type(self).__name__}(client_id={self.client_id!r}, kid={self.kid!r}, access_token={access}, "
            f"session_token={session})"
        )

    def now(self) -> float:
        return self._clock()

    # -- building requests (pure) --------------------------------------------------------------------------------

    def token_request(self) -> dict[str, str]:
        """The form of a token request, with a new assertion (a fresh `jti` for every request, retries included)."""
        assertion = client_assertion(self.client_id, self.kid, self._key, self.now())
        return token_form(assertion, self.scope, self.client_id)

    def session_request(self) -> tuple[dict[str, str], str]:
        """Headers and body (a signed JWT) of an SSO session request. Needs the access token."""
        access = self._require_access("SSO session")
        if self.ip_address is None:
            raise OAuth2Error(
                "OAuth 2.0 SSO session: ip_address is not set (IBKR checks it against the registered whitelist); set "
                f"it in OAuth2Config or {env_name('ip_address')}, e.g. from OAuth2Config.discover_ip_address()",
                step="SSO session",
            )
        claims = session_claims(self.ip_address, self.username, self.client_id, self.now())
        headers = {"Authorization": f"Bearer {access.value}", "Content-Type": "application/jwt"}
        return headers, sign_jwt(claims, self._key, self.kid)

    def sign_body(self, payload: Any) -> str:
        """A SIGNED_JWT request body: the request's members as claims of a JWT signed with the client's key."""
        if not isinstance(payload, Mapping):
            raise OAuth2Error("a SIGNED_JWT request body must be a JSON object", step="signed request")
        return sign_jwt(signed_body_claims(payload, self.client_id, self.now()), self._key, self.kid)

    # -- answers ---------------------------------------------------------------------------------------------------

    def accept_token(self, status: int, data: Any, text: str = "") -> AccessToken:
        token = parse_token_answer(status, data, self.now(), text)
        self._access = token
        logger.debug("OAuth 2.0 access token obtained, valid for %.0f s", token.lifetime)
        return token

    def accept_session(self, status: int, data: Any, text: str = "") -> SessionToken:
        token = parse_session_answer(status, data, self.now(), text)
        self._session = token
        logger.debug("OAuth 2.0 SSO session opened")
        return token

    # -- state -----------------------------------------------------------------------------------------------------

    @property
    def has_access_token(self) -> bool:
        return self._access is not None

    @property
    def has_session(self) -> bool:
        return self._session is not None

    def access_needs_renewal(self) -> bool:
        access = self._access
        return access is None or access.needs_renewal(self.now())

    @property
    def granted_scopes(self) -> tuple[str, ...]:
        """The scopes of the access token (those requested when the answer names none)."""
        access = self._access
        if access is not None and access.scope:
            return access.scope
        return tuple(self.scope.split())

    @property
    def expires_at(self) -> tuple[float | None, float | None]:
        """Marks the tokens in use (access token expiry, session opening): a renewal after a 401 is skipped when
        another thread already renewed since the failed request was sent."""
        access, session = self._access, self._session
        return (access.expires_at if access else None, session.opened_at if session else None)

    def last_bearer(self) -> str | None:
        """Which token this thread's latest request carried: "access", "session" or None."""
        kind: str | None = getattr(self._local, "bearer", None)
        return kind

    def drop_session(self) -> None:
        self._session = None

    def forget(self) -> None:
        self._access = None
        self._session = None

    def _require_access(self, step: str) -> AccessToken:
        access = self._access
        if access is None:
            raise OAuth2Error(
                "no OAuth 2.0 access token yet: call oauth_init(...) or oauth2_access_token() first", step=step
            )
        return access

    def bearer(self, url: str) -> dict[str, str]:
        """The Authorization header of a request to `url`."""
        if _is_account_management(url):
            self._local.bearer = "access"
            return {"Authorization": f"Bearer {self._require_access('Account Management request').value}"}
        session = self._session
        if session is None:
            raise OAuth2Error(
                "no OAuth 2.0 SSO session yet, so nothing is sent to /v1/api: call oauth_init(...) or "
                "create_sso_session() first",
                step="SSO session",
            )
        self._local.bearer = "session"
        return {"Authorization": f"Bearer {session.value}"}

    def __call__(self, method: str, url: str, query: Mapping[str, str] | None = None) -> dict[str, str]:
        return self.bearer(url)


def _is_account_management(url: str) -> bool:
    return urlsplit(url).path.startswith(ACCOUNT_MANAGEMENT_BASE + "/")
