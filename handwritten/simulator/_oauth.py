"""The server side of IBKR's OAuth 1.0a, for the simulator: verifies signatures and issues live session tokens.

It checks exactly what the hosted API checks: the realm, consumer key and access token; a signature method that fits
the request (RSA-SHA256 for the token request, HMAC-SHA256 afterwards); a timestamp within five minutes; a nonce never
seen before; and the signature itself over the RFC 5849 base string (query parameters included). The live session
token comes from a Diffie-Hellman exchange with the client's challenge. Anything that does not verify gets a 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ..lib import oauth

TIMESTAMP_WINDOW_S = 300


@dataclass
class OAuthSettings:
    """What IBKR knows about one OAuth consumer.

    Attributes:
        consumer_key: The consumer's key.
        access_token: The access token handed to the user.
        access_token_secret_hex: The decrypted secret ("prepend"), as hex.
        signature_public_key: PEM of the consumer's public signature key (verifies RSA-SHA256 requests).
        dh_prime: The Diffie-Hellman prime the consumer registered.
        dh_generator: Its generator.
        realm: Expected realm.
        token_lifetime_s: How long an issued live session token stays valid.
    """

    consumer_key: str
    access_token: str
    access_token_secret_hex: str
    signature_public_key: str
    dh_prime: int
    dh_generator: int = 2
    realm: str = "limited_poa"
    token_lifetime_s: float = 24 * 3600.0
    clock: Any = field(default=time.time, repr=False)


class OAuthRejected(Exception):
    """A request that does not verify; the message says why (it never contains a secret)."""


def parse_authorization(header: str | None) -> dict[str, str]:
    """`OAuth realm="x", k="v", ...` → {k: v} with values percent-decoded."""
    if not header or not header.startswith("OAuth "):
        raise OAuthRejected("missing OAuth Authorization header")
    out: dict[str, str] = {}
    for part in header[len("OAuth ") :].split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
            raise OAuthRejected("malformed Authorization header")
        out[unquote(name)] = unquote(value[1:-1])
    return out


def _urls(url: str | Sequence[str]) -> list[str]:
    return [url] if isinstance(url, str) else list(url)


class OAuthAuthority:
    """Verifies OAuth requests and issues live session tokens (thread-safe)."""

    def __init__(self, settings: OAuthSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._nonces: set[str] = set()
        self._tokens: dict[str, float] = {}  # live session token → expiry (seconds)
        self.issued = 0

    def _common_checks(self, params: dict[str, str], method: str) -> None:
        s = self.settings
        if params.get("realm") != s.realm:
            raise OAuthRejected("wrong realm")
        if params.get("oauth_consumer_key") != s.consumer_key:
            raise OAuthRejected("unknown consumer key")
        if params.get("oauth_token") != s.access_token:
            raise OAuthRejected("unknown access token")
        if params.get("oauth_signature_method") != method:
            raise OAuthRejected(f"signature method must be {method}")
        try:
            stamp = int(params.get("oauth_timestamp", ""))
        except ValueError:
            raise OAuthRejected("timestamp is not a number") from None
        if abs(s.clock() - stamp) > TIMESTAMP_WINDOW_S:
            raise OAuthRejected("timestamp outside the accepted window")
        nonce = params.get("oauth_nonce", "")
        if len(nonce) < 8:
            raise OAuthRejected("nonce missing or too short")
        with self._lock:
            if nonce in self._nonces:
                raise OAuthRejected("nonce already used")
            self._nonces.add(nonce)

    def live_session_token(self, method: str, url: str | Sequence[str], authorization: str | None) -> dict[str, Any]:
        """Handle `POST /oauth/live_session_token`; returns the JSON answer or raises `OAuthRejected`.

        `url` is the request URL, or the URLs the client may have signed for this request (any one verifies)."""
        from Crypto.Hash import SHA256
        from Crypto.PublicKey import RSA
        from Crypto.Signature import pkcs1_15

        params = parse_authorization(authorization)
        self._common_checks(params, "RSA-SHA256")
        challenge = params.get("diffie_hellman_challenge", "")
        s = self.settings
        try:
            a_public = int(challenge, 16)
        except ValueError:
            raise OAuthRejected("diffie_hellman_challenge is not hexadecimal") from None
        if not 1 < a_public < s.dh_prime - 1:
            raise OAuthRejected("diffie_hellman_challenge out of range")
        try:
            signature = base64.b64decode(params.get("oauth_signature", ""), validate=True)
            verifier = pkcs1_15.new(RSA.import_key(s.signature_public_key))
        except (ValueError, TypeError):
            raise OAuthRejected("RSA-SHA256 signature does not verify") from None
        for candidate in _urls(url):
            base = oauth.base_string(method, candidate, params, prepend=s.access_token_secret_hex)
            try:
                verifier.verify(SHA256.new(base.encode()), signature)
                break
            except (ValueError, TypeError):
                continue
        else:
            raise OAuthRejected("RSA-SHA256 signature does not verify")
        b_secret = secrets.randbits(256)
        b_public = pow(s.dh_generator, b_secret, s.dh_prime)
        shared = oauth.java_big_integer_bytes(pow(a_public, b_secret, s.dh_prime))
        lst_raw = hmac.new(shared, bytes.fromhex(s.access_token_secret_hex), hashlib.sha1).digest()
        lst = base64.b64encode(lst_raw).decode()
        token_signature = hmac.new(lst_raw, s.consumer_key.encode(), hashlib.sha1).hexdigest()
        expires = s.clock() + s.token_lifetime_s
        with self._lock:
            self._tokens[lst] = expires
            self.issued += 1
        return {
            "diffie_hellman_response": format(b_public, "x"),
            "live_session_token_expiration": int(expires * 1000),
            "live_session_token_signature": token_signature,
        }

    def verify(self, method: str, url: str | Sequence[str], authorization: str | None) -> None:
        """Check a protected request signed with HMAC-SHA256; raises `OAuthRejected` when it does not verify.

        `url` is the request URL, or the URLs the client may have signed for this request (any one verifies)."""
        params = parse_authorization(authorization)
        self._common_checks(params, "HMAC-SHA256")
        bases = [oauth.base_string(method, candidate, params) for candidate in _urls(url)]
        now = self.settings.clock()
        with self._lock:
            tokens = [lst for lst, expiry in self._tokens.items() if expiry > now]
        given = params.get("oauth_signature", "")
        for lst in tokens:
            for base in bases:
                if hmac.compare_digest(oauth.hmac_sha256_signature(base, lst), given):
                    return
        raise OAuthRejected("HMAC-SHA256 signature does not verify (or the live session token expired)")

    def expire_tokens(self) -> None:
        """Make every issued live session token expire now (to test renewal)."""
        with self._lock:
            for lst in self._tokens:
                self._tokens[lst] = 0.0
