"""The server side of IBKR's OAuth 2.0, for the simulator: the token endpoint, SSO sessions and bearer checks.

What it checks is what the hosted API documents: a client assertion signed (RS256) by the key registered under its
`kid`, with `iss` = `sub` = the client id, `aud` "/token", a lifetime of at most 300 s, a time window around the
server's clock and a `jti` never seen before; requested scopes within those registered; an SSO session request with
a valid access token holding `sso-sessions.write`, a JWT body signed by the same key naming the registered username
and a whitelisted IP. Afterwards the session token is the bearer on /v1/api and the access token on /gw/api/v1
(whose operations also need one of their scopes); SIGNED_JWT bodies are verified with the registered key.

Error answers follow the documents: RFC 6749 `{"error", "error_description"}` from the token endpoint, RFC 9457
problem details (`type`, `title`, `status`, `detail`) from /gw/api/v1. Switches let tests expire the access tokens,
the sessions or both, and rotate the registered key.

The key pair in `data/simulator-oauth2.key` is a public test key of this simulator, not a secret.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..lib.oauth2 import CLIENT_ASSERTION_TYPE, decode_jwt

MAX_ASSERTION_LIFETIME_S = 300
CLOCK_TOLERANCE_S = 60
ENVELOPE_CLAIMS = ("iss", "iat", "exp", "jti")
ALL_SCOPES = (
    "accounts.read accounts.write balances.read bank-instructions.read bank-instructions.write echo.read echo.write "
    "enumerations.read forms.read instructions.read instructions.write reports.read reports.write "
    "restrictions.write sso-browser-sessions.write sso-sessions.write statements.read statements.write "
    "transfers.read transfers.write validations.read"
).split()


def _data(name: str) -> Path:
    return Path(__file__).resolve().parent / "data" / name


def simulator_private_key_pem() -> str:
    """PEM of the simulator's public test key pair (3072-bit RSA): give it to `OAuth2Config(private_key=...)`."""
    return _data("simulator-oauth2.key").read_text("ascii")


@dataclass
class OAuth2Settings:
    """What IBKR knows about one OAuth 2.0 client.

    Attributes:
        client_id: The registered client id.
        kid: The key id of the registered public key.
        public_key_pem: The registered public key (default: the simulator's test key).
        username: The IBKR username sessions may be opened for.
        ip_whitelist: Addresses a session request may name.
        scopes: Scopes the client may be granted.
        access_token_lifetime_s: `expires_in` of issued access tokens.
    """

    client_id: str = "sim-client"
    kid: str = "sim-key-1"
    public_key_pem: str | None = None
    username: str = "simuser1"
    ip_whitelist: Sequence[str] = ("127.0.0.1", "203.0.113.7")
    scopes: Sequence[str] = tuple(ALL_SCOPES)
    access_token_lifetime_s: float = 86399.0
    clock: Callable[[], float] = field(default=time.time, repr=False)


class OAuth2Refused(Exception):
    """A refused OAuth 2.0 request: HTTP `status` and the JSON `body` to answer with."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error_description") or body.get("detail") or "refused")
        self.status = status
        self.body = body


def _oauth_error(status: int, code: str, description: str) -> OAuth2Refused:
    return OAuth2Refused(status, {"error": code, "error_description": description})


def problem(status: int, title: str, detail: str) -> OAuth2Refused:
    return OAuth2Refused(status, {"type": "about:blank", "title": title, "status": status, "detail": detail})


@dataclass
class _Token:
    expires_at: float
    scopes: frozenset[str]


class OAuth2Authority:
    """Issues access tokens and SSO sessions and checks bearers and signed bodies (thread-safe)."""

    def __init__(self, settings: OAuth2Settings) -> None:
        from Crypto.PublicKey import RSA

        self.settings = settings
        pem = settings.public_key_pem or RSA.import_key(simulator_private_key_pem()).public_key().export_key().decode()
        self._keys: dict[str, Any] = {settings.kid: RSA.import_key(pem)}
        self._lock = threading.Lock()
        self._jtis: set[str] = set()
        self._access: dict[str, _Token] = {}
        self._sessions: dict[str, float] = {}  # session token -> when it was opened
        self.tokens_issued = 0
        self.sessions_opened = 0
        self.signed_bodies = 0
        # For tests: what was received and handed out (secret-leak checks look for these in logs and errors).
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (header, claims) of each assertion
        self.session_claims: list[dict[str, Any]] = []
        self.received_jwts: list[str] = []
        self.issued: list[str] = []

    # -- switches --------------------------------------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (401), as at the end of its lifetime."""
        with self._lock:
            self._access.clear()

    def expire_sessions(self) -> None:
        """Every SSO session ends: its token gets 401 on /v1/api."""
        with self._lock:
            self._sessions.clear()

    def expire_all(self) -> None:
        self.expire_access_tokens()
        self.expire_sessions()

    def rotate_key(self, public_key_pem: str, kid: str | None = None) -> None:
        """Register another public key (under `kid`, default the current one) in place of the old one: assertions
        signed with the old key are refused from now on."""
        from Crypto.PublicKey import RSA

        with self._lock:
            self._keys = {kid or self.settings.kid: RSA.import_key(public_key_pem)}

    # -- the token endpoint ----------------------------------------------------------------------------------------

    def token(self, raw: bytes) -> dict[str, Any]:
        """Answer `POST /oauth2/api/v1/token` (form-encoded), or raise `OAuth2Refused`."""
        s = self.settings
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            raise _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise _oauth_error(400, "invalid_request", "client_assertion_type must be jwt-bearer")
        assertion = form.get("client_assertion")
        if not assertion:
            raise _oauth_error(400, "invalid_request", "client_assertion is missing")
        self._note(assertion, self.assertions)
        claims = self._verified(assertion, lambda d: _oauth_error(401, "invalid_client", d))
        if claims.get("iss") != s.client_id or claims.get("sub") != s.client_id:
            raise _oauth_error(401, "invalid_client", "iss and sub must be the registered client id")
        if claims.get("aud") != "/token":
            raise _oauth_error(401, "invalid_client", "aud must be /token")
        self._check_times(claims, MAX_ASSERTION_LIFETIME_S, lambda d: _oauth_error(401, "invalid_client", d))
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _oauth_error(401, "invalid_client", "jti is missing")
        requested = (form.get("scope") or "").split()
        unknown = [x for x in requested if x not in s.scopes]
        if not requested or unknown:
            raise _oauth_error(400, "invalid_scope", f"scope not allowed for this client: {' '.join(unknown) or '-'}")
        token = "sim-at-" + secrets.token_urlsafe(24)
        with self._lock:
            if jti in self._jtis:
                raise _oauth_error(401, "invalid_client", "jti was used before")
            self._jtis.add(jti)
            self._access[token] = _Token(s.clock() + s.access_token_lifetime_s, frozenset(requested))
            self.tokens_issued += 1
            self.issued.append(token)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(s.access_token_lifetime_s),
            "scope": " ".join(requested),
        }

    # -- SSO sessions ----------------------------------------------------------------------------------------------

    def sso_session(self, authorization: str | None, content_type: str, raw: bytes) -> dict[str, Any]:
        """Answer `POST /gw/api/v1/sso-sessions`, or raise `OAuth2Refused`."""
        s = self.settings
        self.check_access(authorization, ("sso-sessions.write",))
        if not content_type.startswith("application/jwt"):
            raise problem(415, "Unsupported Media Type", "the session request must be application/jwt")
        self._note(raw.decode("ascii", "replace"), None)
        claims = self._verified(raw.decode("ascii", "replace"), lambda d: problem(401, "Unauthorized", d))
        self.session_claims.append(claims)
        if claims.get("iss") != s.client_id:
            raise problem(401, "Unauthorized", "iss must be the registered client id")
        if claims.get("credential") != s.username:
            raise problem(403, "Forbidden", "credential is not a username this client may act for")
        if claims.get("ip") not in s.ip_whitelist:
            raise problem(403, "Forbidden", "ip is not in the registered whitelist")
        self._check_times(claims, None, lambda d: problem(401, "Unauthorized", d))
        token = "sim-st-" + secrets.token_urlsafe(24)
        with self._lock:
            self._sessions = {token: s.clock()}  # one session per user: a new one replaces the old
            self.sessions_opened += 1
            self.issued.append(token)
        return {"access_token": token, "active": True, "token_type": "Bearer"}

    # -- bearers and signed bodies -----------------------------------------------------------------------------------

    @staticmethod
    def _bearer(authorization: str | None) -> str | None:
        if authorization and authorization[:7].lower() == "bearer ":
            return authorization[7:].strip()
        return None

    def check_access(self, authorization: str | None, scopes: Sequence[str]) -> None:
        """A /gw/api/v1 request: a live access token with one of `scopes`."""
        token = self._bearer(authorization)
        with self._lock:
            found = self._access.get(token or "")
        if found is None or found.expires_at <= self.settings.clock():
            raise problem(401, "Unauthorized", "missing, unknown or expired access token")
        if scopes and not found.scopes & set(scopes):
            raise problem(403, "Forbidden", f"insufficient scope: needs {' or '.join(scopes)}")

    def session_valid(self, authorization: str | None) -> bool:
        token = self._bearer(authorization)
        with self._lock:
            return token is not None and token in self._sessions

    def check_session(self, authorization: str | None) -> None:
        """A /v1/api request: the bearer must be the current SSO session's token."""
        if not self.session_valid(authorization):
            raise _oauth_error(401, "invalid_token", "missing, unknown or expired session token")

    def signed_body(self, raw: bytes) -> dict[str, Any]:
        """The request members of a SIGNED_JWT body, after its signature, issuer and times are checked."""
        self._note(raw.decode("ascii", "replace"), None)
        claims = self._verified(raw.decode("ascii", "replace"), lambda d: problem(401, "Unauthorized", d))
        if claims.get("iss") != self.settings.client_id:
            raise problem(401, "Unauthorized", "iss of the signed body must be the registered client id")
        self._check_times(claims, MAX_ASSERTION_LIFETIME_S, lambda d: problem(401, "Unauthorized", d))
        with self._lock:
            self.signed_bodies += 1
        return {k: v for k, v in claims.items() if k not in ENVELOPE_CLAIMS}

    def _note(self, jwt: str, decoded: list[tuple[dict[str, Any], dict[str, Any]]] | None) -> None:
        with self._lock:
            self.received_jwts.append(jwt)
        if decoded is not None:
            try:
                decoded.append(decode_jwt(jwt))
            except ValueError:
                pass

    def _verified(self, token: str, refuse: Callable[[str], OAuth2Refused]) -> dict[str, Any]:
        try:
            header, _ = decode_jwt(token)
        except ValueError as exc:
            raise refuse(str(exc)) from None
        with self._lock:
            key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise refuse("unknown kid")
        try:
            _, claims = decode_jwt(token, key)
        except ValueError as exc:
            raise refuse(str(exc)) from None
        return claims

    def _check_times(
        self, claims: dict[str, Any], max_lifetime: int | None, refuse: Callable[[str], OAuth2Refused]
    ) -> None:
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or isinstance(iat, bool) or isinstance(exp, bool):
            raise refuse("iat and exp must be whole seconds")
        if max_lifetime is not None and not 0 < exp - iat <= max_lifetime:
            raise refuse(f"exp - iat must be between 1 and {max_lifetime} s")
        now = self.settings.clock()
        if iat > now + CLOCK_TOLERANCE_S:
            raise refuse("iat is in the future")
        if exp <= now:
            raise refuse("the JWT has expired")


def unverified_body(raw: bytes) -> dict[str, Any] | None:
    """The request members of a SIGNED_JWT body, unverified (a simulator without OAuth 2.0 has no key to check)."""
    try:
        _, claims = decode_jwt(raw.decode("ascii", "replace"))
    except ValueError:
        return None
    return {k: v for k, v in claims.items() if k not in ENVELOPE_CLAIMS}
