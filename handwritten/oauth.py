"""Client-side cryptography of OAuth 1.0a for IBKR's hosted Web API (`https://api.ibkr.com/v1/api`).

IBKR's first-party OAuth flow, as this module implements it:

1. The self-service portal hands out an access token and an *encrypted* access token secret. The secret is decrypted
   with the private encryption key (RSA, PKCS#1 v1.5); the hex of the plaintext is the "prepend".
2. `POST oauth/live_session_token` carries a Diffie-Hellman challenge `A = g^a mod p` and is signed with RSA-SHA256
   (private signature key) over `prepend + base string`. The answer holds the server's `B`, a signature of the token
   and its expiry.
3. Both sides derive `K = B^a mod p`; the live session token (LST) is `base64(HMAC-SHA1(K, prepend bytes))`. It is
   accepted only when `hex(HMAC-SHA1(LST, consumer_key))` equals the server's signature.
4. Every other request is signed with HMAC-SHA256 keyed by the decoded LST.

The pure functions (`percent_encode`, `base_string`, the signatures, the Diffie-Hellman steps) need only the standard
library, except the RSA ones, which import pycryptodome when called (install `ibkr-cpapi-sdk[oauth]`).
`OAuth1aConfig` gathers the settings, `OAuth1aSigner` keeps the live session token and signs requests.

Secrets (access token secret, private keys, prepend, live session token) never appear in a `repr`, a log record or an
exception message of this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from .env import FALLBACK_PREFIX, PREFIX
from .errors import IbkrError

if TYPE_CHECKING:
    from Crypto.PublicKey.RSA import RsaKey

__all__ = [
    "DEFAULT_LIVE_SESSION_TOKEN_ENDPOINT",
    "DEFAULT_REALM",
    "DEFAULT_REST_URL",
    "MIN_DH_PRIME_BITS",
    "LiveSessionTokenError",
    "OAuth1aConfig",
    "OAuth1aSigner",
    "OAuthConfigError",
    "OAuthError",
    "authorization_header",
    "base_string",
    "decrypt_access_token_secret",
    "dh_challenge",
    "generate_dh_secret",
    "generate_nonce",
    "generate_timestamp",
    "hmac_sha256_signature",
    "java_big_integer_bytes",
    "live_session_token",
    "parse_dh_prime",
    "percent_encode",
    "rsa_sha256_signature",
    "validate_live_session_token",
]

logger = logging.getLogger("ibkr_sdk")

DEFAULT_REST_URL = "https://api.ibkr.com/v1/api/"
DEFAULT_LIVE_SESSION_TOKEN_ENDPOINT = "oauth/live_session_token"
DEFAULT_REALM = "limited_poa"
MIN_DH_PRIME_BITS = 2048
"""IBKR's Diffie-Hellman parameters are 2048-bit; a shorter prime is almost surely a truncated copy."""

_INSTALL_HINT = "pip install ibkr-cpapi-sdk[oauth]"
_MASK = "***"
_NONCE_ALPHABET = string.ascii_letters + string.digits
_MIN_NONCE_LENGTH = 16
_DEFAULT_LST_LIFETIME_S = 24 * 3600.0
_DEFAULT_PORTS = {"http": 80, "https": 443}

Params = Mapping[str, str] | Sequence[tuple[str, str]]
"""Request parameters: a mapping, or (name, value) pairs when a name repeats."""


# --------------------------------------------------------------------------------------------------------------------
# Errors


class OAuthError(IbkrError):
    """Base of the OAuth 1.0a errors."""


class OAuthConfigError(OAuthError, ValueError):
    """The OAuth 1.0a settings are incomplete or unusable (or pycryptodome is not installed)."""


class LiveSessionTokenError(OAuthError, RuntimeError):
    """No usable live session token: none obtained yet, or the server's answer could not be turned into one."""


def _crypto_missing(exc: ImportError) -> OAuthConfigError:
    return OAuthConfigError(
        f"OAuth 1.0a needs the pycryptodome package, which could not be imported ({exc.name or 'Crypto'}). "
        f"Install it with: {_INSTALL_HINT}"
    )


def _require_crypto() -> None:
    """Raise `OAuthConfigError` with the install hint when pycryptodome is missing."""
    try:
        import Crypto.Cipher.PKCS1_v1_5  # noqa: F401
        import Crypto.Hash.SHA256  # noqa: F401
        import Crypto.PublicKey.RSA  # noqa: F401
        import Crypto.Signature.pkcs1_15  # noqa: F401
    except ImportError as exc:
        raise _crypto_missing(exc) from None


# --------------------------------------------------------------------------------------------------------------------
# Pure functions: encoding and base string


def percent_encode(value: str) -> str:
    """Percent-encode `value` as RFC 5849 §3.6 asks.

    The text is taken as UTF-8; the unreserved characters `A-Z a-z 0-9 - . _ ~` stay as they are and every other
    byte becomes `%XX` with upper-case hex (so a space is `%20`, never `+`, and `/` is `%2F`).
    """
    # `quote` always keeps exactly the RFC 3986 unreserved set; `safe=""` stops it from keeping "/".
    return quote(value, safe="")


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    items: Iterable[tuple[str, str]] = params.items() if isinstance(params, Mapping) else params
    return [(str(name), str(value)) for name, value in items]


def _base_uri(url: str) -> str:
    """The base string URI of RFC 5849 §3.4.1.2: no query or fragment, lower-case scheme and host, no default port."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{_host(url)}{parts.path or '/'}"


def base_string(
    method: str,
    url: str,
    params: Params,
    prepend: str = "",
    *,
    query: Params | None = None,
    form: Params | None = None,
) -> str:
    """The signature base string of RFC 5849 §3.4.1, with IBKR's optional prepend in front.

    Args:
        method: HTTP method (upper-cased here).
        url: Request URL. A query string in it counts as query parameters; scheme and host are lower-cased and a
            default port is dropped.
        params: The OAuth protocol parameters. `oauth_signature` and `realm` are left out if present.
        prepend: Text put before the base string (IBKR's decrypted access token secret, only for the live session
            token request).
        query: Query parameters not written into `url`.
        form: `application/x-www-form-urlencoded` body parameters. A JSON body is never part of the base string.

    Every name and value is percent-encoded, the pairs are sorted by name then value, joined as `name=value` with
    `&`, and that text is percent-encoded once more as the third part of `METHOD&URI&PARAMETERS`.
    """
    pairs = [(k, v) for k, v in _pairs(params) if k not in ("oauth_signature", "realm")]
    pairs += parse_qsl(urlsplit(url).query, keep_blank_values=True)
    pairs += _pairs(query)
    pairs += _pairs(form)
    normalised = "&".join(f"{k}={v}" for k, v in sorted((percent_encode(k), percent_encode(v)) for k, v in pairs))
    return prepend + "&".join((method.upper(), percent_encode(_base_uri(url)), percent_encode(normalised)))


def authorization_header(params: Mapping[str, str], realm: str) -> str:
    """The `Authorization` header value: `OAuth realm="…", k="v", …`.

    `realm` comes first; the other parameters follow sorted by name, each name and value percent-encoded (so a
    base64 signature's `+` and `=` appear as `%2B` and `%3D`) and the value in double quotes.
    """
    quoted_realm = realm.replace("\\", "\\\\").replace('"', '\\"')
    fields = [f'realm="{quoted_realm}"']
    fields += [f'{percent_encode(k)}="{percent_encode(params[k])}"' for k in sorted(params) if k != "realm"]
    return "OAuth " + ", ".join(fields)


# --------------------------------------------------------------------------------------------------------------------
# Pure functions: signatures


def _import_key(key: RsaKey | str | bytes) -> RsaKey:
    try:
        from Crypto.PublicKey import RSA
    except ImportError as exc:
        raise _crypto_missing(exc) from None
    if isinstance(key, RSA.RsaKey):
        return key
    try:
        return RSA.import_key(key)
    except (ValueError, IndexError, TypeError):
        raise OAuthConfigError("the given key is not an RSA key in PEM or DER format") from None


def rsa_sha256_signature(base: str, private_key: RsaKey | str | bytes) -> str:
    """Sign `base` (UTF-8) with RSA PKCS#1 v1.5 over SHA-256; returns the signature in base64 (not percent-encoded).

    `private_key` is a pycryptodome `RsaKey` or its PEM/DER text.
    """
    try:
        from Crypto.Hash import SHA256
        from Crypto.Signature import pkcs1_15
    except ImportError as exc:
        raise _crypto_missing(exc) from None
    key = _import_key(private_key)
    if not key.has_private():
        raise OAuthConfigError("signing needs the private signature key, but a public key was given")
    signature = pkcs1_15.new(key).sign(SHA256.new(base.encode("utf-8")))
    return base64.b64encode(signature).decode("ascii")


def hmac_sha256_signature(base: str, lst_b64: str) -> str:
    """Sign `base` (UTF-8) with HMAC-SHA256 keyed by the decoded live session token; returns base64."""
    key = _b64decode(lst_b64, "the live session token")
    return base64.b64encode(hmac.new(key, base.encode("utf-8"), hashlib.sha256).digest()).decode("ascii")


def decrypt_access_token_secret(secret_b64: str, encryption_key: RsaKey | str | bytes) -> str:
    """Decrypt the access token secret (base64 of an RSA PKCS#1 v1.5 ciphertext) with the private encryption key.

    Returns the plaintext as lower-case hex: the prepend of the live session token request.
    """
    try:
        from Crypto.Cipher import PKCS1_v1_5
    except ImportError as exc:
        raise _crypto_missing(exc) from None
    key = _import_key(encryption_key)
    if not key.has_private():
        raise OAuthConfigError("decrypting the access token secret needs the private encryption key, not a public key")
    ciphertext = _b64decode(secret_b64, "access_token_secret", OAuthConfigError)
    failed = object()
    try:
        plaintext = PKCS1_v1_5.new(key).decrypt(ciphertext, failed)
    except ValueError:  # wrong ciphertext length for this key
        plaintext = failed
    if plaintext is failed or not isinstance(plaintext, bytes):
        raise OAuthConfigError(
            "access_token_secret could not be decrypted with the encryption key: check that both belong to the same "
            "OAuth consumer (the secret from the portal is encrypted with the public half of this key)"
        )
    return plaintext.hex()


def _b64decode(text: str, what: str, error: type[OAuthError] = LiveSessionTokenError) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise error(f"{what} is not valid base64") from None


# --------------------------------------------------------------------------------------------------------------------
# Pure functions: Diffie-Hellman and the live session token


def parse_dh_prime(text: str) -> int:
    """The Diffie-Hellman prime from its hex text.

    White space, `:` separators (as `openssl dhparam -text` prints them) and a `0x` prefix are ignored. Raises
    `OAuthConfigError` when the text is not hex, shorter than `MIN_DH_PRIME_BITS` bits or even.
    """
    cleaned = re.sub(r"[\s:]", "", text)
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned:
        raise OAuthConfigError("dh_prime is empty: give the prime of your Diffie-Hellman parameters in hex")
    bad = re.search(r"[^0-9a-fA-F]", cleaned)
    if bad is not None:
        raise OAuthConfigError(
            f"dh_prime is not a hexadecimal number (character {bad.start() + 1} is not a hex digit); give the prime "
            "as printed by `openssl asn1parse -in dhparam.pem`"
        )
    prime = int(cleaned, 16)
    if prime.bit_length() < MIN_DH_PRIME_BITS:
        raise OAuthConfigError(
            f"dh_prime is too small ({prime.bit_length()} bits, at least {MIN_DH_PRIME_BITS} expected): "
            "was the hex text cut short?"
        )
    if prime % 2 == 0:
        raise OAuthConfigError("dh_prime is even, so it is not a prime: was the hex text altered?")
    return prime


def generate_dh_secret(bits: int = 256) -> int:
    """A fresh random Diffie-Hellman exponent `a` (from `secrets`)."""
    value = 0
    while value < 2:
        value = secrets.randbits(bits)
    return value


def dh_challenge(a_int: int, prime: int, generator: int = 2) -> str:
    """`A = generator^a mod prime` as lower-case hex without `0x`: the `diffie_hellman_challenge`."""
    return format(pow(generator, a_int, prime), "x")


def java_big_integer_bytes(value: int) -> bytes:
    """`value` as big-endian bytes the way Java's `BigInteger.toByteArray()` writes a non-negative number.

    Java keeps a sign bit, so when the bit length is a multiple of 8 a leading zero byte is added
    (`0xff` → `00 ff`, `0x7f` → `7f`, `0` → `00`).
    """
    if value < 0:
        raise ValueError("only non-negative integers are supported")
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def live_session_token(dh_response_hex: str, a_int: int, prime: int, prepend_hex: str) -> str:
    """Derive the live session token: `base64(HMAC-SHA1(K, bytes.fromhex(prepend)))` with `K = B^a mod prime`.

    `dh_response_hex` is the server's `diffie_hellman_response` (`B`); `K` enters the HMAC as Java-style bytes (see
    `java_big_integer_bytes`).
    """
    try:
        server_public = int(dh_response_hex.strip(), 16)
    except (ValueError, AttributeError):
        raise LiveSessionTokenError("the server's diffie_hellman_response is not a hexadecimal number") from None
    if not 1 < server_public < prime - 1:
        raise LiveSessionTokenError("the server's diffie_hellman_response is outside the Diffie-Hellman group")
    try:
        prepend = bytes.fromhex(prepend_hex)
    except ValueError:
        raise LiveSessionTokenError("the prepend (decrypted access token secret) is not hex") from None
    shared = java_big_integer_bytes(pow(server_public, a_int, prime))
    return base64.b64encode(hmac.new(shared, prepend, hashlib.sha1).digest()).decode("ascii")


def validate_live_session_token(lst: str, signature_hex: str, consumer_key: str) -> bool:
    """True when `hex(HMAC-SHA1(base64decode(lst), consumer_key))` equals the server's `signature_hex`.

    The comparison runs in constant time; hex case does not matter.
    """
    try:
        key = base64.b64decode(lst.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    expected = hmac.new(key, consumer_key.encode("utf-8"), hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), signature_hex.strip().lower().encode("utf-8"))


def generate_nonce(length: int = _MIN_NONCE_LENGTH) -> str:
    """A random alphanumeric nonce of `length` (at least 16) characters, drawn with `secrets`."""
    if length < _MIN_NONCE_LENGTH:
        raise ValueError(f"a nonce needs at least {_MIN_NONCE_LENGTH} characters")
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def generate_timestamp() -> int:
    """The current time in whole seconds since the epoch (`oauth_timestamp`)."""
    return int(time.time())


# --------------------------------------------------------------------------------------------------------------------
# Configuration

# Environment names besides `<prefix>OAUTH1A_<FIELD>`: the peer reads these under other names.
_ENV_ALIASES = {
    "oauth_rest_url": "OAUTH1A_REST_URL",
    "init_oauth": "INIT_OAUTH",
    "maintain_oauth": "MAINTAIN_OAUTH",
    "shutdown_oauth": "SHUTDOWN_OAUTH",
    "init_brokerage_session": "INIT_BROKERAGE_SESSION",
}
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def _env_names(field_name: str) -> list[str]:
    """Environment variables for a field, in lookup order: all of ours first, then the peer's."""
    names = []
    for prefix in (PREFIX, FALLBACK_PREFIX):
        names.append(f"{prefix}OAUTH1A_{field_name.upper()}")
        alias = _ENV_ALIASES.get(field_name)
        if alias is not None:
            names.append(prefix + alias)
    return names


def _env_lookup(field_name: str) -> tuple[str, str] | None:
    """(variable, value) of the first non-empty variable for the field, or None."""
    for name in _env_names(field_name):
        value = os.environ.get(name)
        if value is not None and value.strip():
            return name, value
    return None


def _env_text(field_name: str) -> Callable[[], str | None]:
    def factory() -> str | None:
        found = _env_lookup(field_name)
        return None if found is None else found[1]

    return factory


def _env_text_or(field_name: str, default: str) -> Callable[[], str]:
    def factory() -> str:
        found = _env_lookup(field_name)
        return default if found is None else found[1].strip()

    return factory


def _env_int(field_name: str, default: int) -> Callable[[], int]:
    def factory() -> int:
        found = _env_lookup(field_name)
        if found is None:
            return default
        name, value = found
        try:
            return int(value.strip(), 0)
        except ValueError:
            raise OAuthConfigError(f"environment variable {name} must be an integer, got {value!r}") from None

    return factory


def _env_flag(field_name: str, default: bool) -> Callable[[], bool]:
    def factory() -> bool:
        found = _env_lookup(field_name)
        if found is None:
            return default
        name, value = found
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise OAuthConfigError(f"environment variable {name} must be true or false, got {value!r}")

    return factory


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _mask(value: str | None) -> str:
    return "None" if value is None else repr(_MASK)


def _shorten(value: str | None, keep: int = 8) -> str:
    if value is None:
        return "None"
    return repr(value if len(value) <= keep else value[:keep] + "...")


@dataclass(frozen=True)
class _Material:
    """Everything the signer needs, checked. Never printed."""

    signature_key: RsaKey = field(repr=False)
    prepend: str = field(repr=False)
    prime: int = field(repr=False)


@dataclass(repr=False)
class OAuth1aConfig:
    """Settings of OAuth 1.0a against IBKR's hosted API (field names as in the peer library, IBind).

    A field that is not passed is read from the environment when the config is created: first
    `IBKR_SDK_OAUTH1A_<FIELD>` (e.g. `IBKR_SDK_OAUTH1A_ACCESS_TOKEN`), then the peer's `IBIND_OAUTH1A_<FIELD>`.
    `oauth_rest_url` also reads `IBKR_SDK_OAUTH1A_REST_URL` / `IBIND_OAUTH1A_REST_URL`, and the four switches also
    read `IBKR_SDK_<FIELD>` / `IBIND_<FIELD>` (e.g. `IBIND_INIT_OAUTH`), the names the peer uses. Empty variables
    count as unset. A value passed explicitly always wins, `None` included.

    Creating a config does not check it; call `validate()` (the signer does) for a clear error per problem.

    Attributes:
        oauth_rest_url: Base URL of the hosted API.
        live_session_token_endpoint: Path of the live session token request, below `oauth_rest_url`.
        access_token: Access token from the self-service portal.
        access_token_secret: Encrypted access token secret from the portal (base64).
        consumer_key: The consumer key chosen at registration (`TESTCONS` for IBKR's test consumer).
        dh_prime: The Diffie-Hellman prime in hex.
        dh_generator: The Diffie-Hellman generator.
        encryption_key_fp: Path of the private encryption key (PEM).
        encryption_key: The private encryption key itself (PEM text); wins over `encryption_key_fp`.
        signature_key_fp: Path of the private signature key (PEM).
        signature_key: The private signature key itself (PEM text); wins over `signature_key_fp`.
        realm: `limited_poa`, or `test_realm` with the `TESTCONS` consumer.
        init_oauth: Obtain a live session token when the client starts.
        maintain_oauth: Renew the live session token before it expires.
        shutdown_oauth: Log out when the client closes.
        init_brokerage_session: Open the brokerage session when the client starts.
    """

    oauth_rest_url: str = field(default_factory=_env_text_or("oauth_rest_url", DEFAULT_REST_URL))
    live_session_token_endpoint: str = field(
        default_factory=_env_text_or("live_session_token_endpoint", DEFAULT_LIVE_SESSION_TOKEN_ENDPOINT)
    )
    access_token: str | None = field(default_factory=_env_text("access_token"))
    access_token_secret: str | None = field(default_factory=_env_text("access_token_secret"))
    consumer_key: str | None = field(default_factory=_env_text("consumer_key"))
    dh_prime: str | None = field(default_factory=_env_text("dh_prime"))
    dh_generator: int = field(default_factory=_env_int("dh_generator", 2))
    encryption_key_fp: str | None = field(default_factory=_env_text("encryption_key_fp"))
    encryption_key: str | None = field(default_factory=_env_text("encryption_key"))
    signature_key_fp: str | None = field(default_factory=_env_text("signature_key_fp"))
    signature_key: str | None = field(default_factory=_env_text("signature_key"))
    realm: str = field(default_factory=_env_text_or("realm", DEFAULT_REALM))
    init_oauth: bool = field(default_factory=_env_flag("init_oauth", True))
    maintain_oauth: bool = field(default_factory=_env_flag("maintain_oauth", True))
    shutdown_oauth: bool = field(default_factory=_env_flag("shutdown_oauth", True))
    init_brokerage_session: bool = field(default_factory=_env_flag("init_brokerage_session", True))

    def __repr__(self) -> str:
        shown = [
            f"oauth_rest_url={self.oauth_rest_url!r}",
            f"live_session_token_endpoint={self.live_session_token_endpoint!r}",
            f"access_token={_shorten(self.access_token, 4)}",
            f"access_token_secret={_mask(self.access_token_secret)}",
            f"consumer_key={self.consumer_key!r}",
            f"dh_prime={_shorten(self.dh_prime)}",
            f"dh_generator={self.dh_generator!r}",
            f"encryption_key_fp={self.encryption_key_fp!r}",
            f"encryption_key={_mask(self.encryption_key)}",
            f"signature_key_fp={self.signature_key_fp!r}",
            f"signature_key={_mask(self.signature_key)}",
            f"realm={self.realm!r}",
            f"init_oauth={self.init_oauth!r}",
            f"maintain_oauth={self.maintain_oauth!r}",
            f"shutdown_oauth={self.shutdown_oauth!r}",
            f"init_brokerage_session={self.init_brokerage_session!r}",
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def live_session_token_url(self) -> str:
        """Full URL of the live session token request."""
        return self.oauth_rest_url.rstrip("/") + "/" + self.live_session_token_endpoint.lstrip("/")

    def missing_fields(self) -> list[str]:
        """Names of the required settings that are not set (a key counts as set by its path or its text)."""
        missing = [
            name
            for name in ("access_token", "access_token_secret", "consumer_key", "dh_prime")
            if _blank(getattr(self, name))
        ]
        for kind in ("encryption", "signature"):
            if _blank(getattr(self, f"{kind}_key")) and _blank(getattr(self, f"{kind}_key_fp")):
                missing.append(f"{kind}_key_fp (or {kind}_key)")
        if _blank(self.realm):
            missing.append("realm")
        return missing

    def validate(self) -> None:
        """Check the settings; raise one `OAuthConfigError` describing the first problem found.

        In order: missing settings (all listed, with their environment variables), pycryptodome not installed, a
        malformed base URL, a malformed `dh_prime` or `dh_generator`, a key file that cannot be read (its path is
        named), a key that is not an RSA private key, and an access token secret the encryption key cannot decrypt.
        """
        self._material()

    def load_encryption_key(self) -> RsaKey:
        """The private encryption key (from `encryption_key`, else the file `encryption_key_fp`)."""
        return self._load_key("encryption")

    def load_signature_key(self) -> RsaKey:
        """The private signature key (from `signature_key`, else the file `signature_key_fp`)."""
        return self._load_key("signature")

    def _material(self) -> _Material:
        missing = self.missing_fields()
        if missing:
            details = "; ".join(f"{name} ({_env_names(name.split(' ')[0])[0]})" for name in missing)
            raise OAuthConfigError(
                f"OAuth 1.0a settings are missing: {details}. Pass them to OAuth1aConfig or set the environment "
                "variables (the IBIND_OAUTH1A_* names work too)."
            )
        _require_crypto()
        if urlsplit(self.oauth_rest_url).scheme not in ("http", "https"):
            raise OAuthConfigError(f"oauth_rest_url must be an http(s) URL, got {self.oauth_rest_url!r}")
        assert self.dh_prime is not None and self.access_token_secret is not None  # checked by missing_fields()
        prime = parse_dh_prime(self.dh_prime)
        if not 1 < self.dh_generator < prime - 1:
            raise OAuthConfigError(f"dh_generator must be between 2 and dh_prime - 2, got {self.dh_generator}")
        signature_key = self.load_signature_key()
        encryption_key = self.load_encryption_key()
        prepend = decrypt_access_token_secret(self.access_token_secret.strip(), encryption_key)
        return _Material(signature_key=signature_key, prepend=prepend, prime=prime)

    def _load_key(self, kind: str) -> RsaKey:
        try:
            from Crypto.PublicKey import RSA
        except ImportError as exc:
            raise _crypto_missing(exc) from None
        text: str | None = getattr(self, f"{kind}_key")
        path: str | None = getattr(self, f"{kind}_key_fp")
        data: str | bytes
        if not _blank(text):
            assert text is not None
            data, source = text, f"the {kind} key given as text ({kind}_key)"
        elif not _blank(path):
            assert path is not None
            file = Path(path.strip()).expanduser()
            try:
                data = file.read_bytes()
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise OAuthConfigError(
                    f"cannot read the {kind} key file {str(file)!r} ({kind}_key_fp): {reason}"
                ) from None
            source = f"the {kind} key file {str(file)!r} ({kind}_key_fp)"
        else:
            raise OAuthConfigError(f"no {kind} key configured: set {kind}_key_fp or {kind}_key")
        try:
            key = RSA.import_key(data)
        except (ValueError, IndexError, TypeError):
            raise OAuthConfigError(
                f"{source} does not hold an RSA key in PEM or DER format (passphrase-protected keys are not supported)"
            ) from None
        if not key.has_private():
            raise OAuthConfigError(f"{source} holds a public key; the private key is needed")
        return key


# --------------------------------------------------------------------------------------------------------------------
# Signer


@dataclass(frozen=True)
class _Token:
    lst: str = field(repr=False)
    expires_at: float


class OAuth1aSigner:
    """Keeps the live session token and signs requests for IBKR's hosted API.

    The settings are checked (`OAuth1aConfig.validate`) and read once, when the signer is made; later changes to the
    config are not seen. The token is swapped in as one object, so `sign()` may run on other threads while a renewal
    completes. An instance is callable as `signer(method, url, query)`, the transport's signer hook.

    Usage::

        signer = OAuth1aSigner(config)
        headers, a = signer.lst_request_headers()
        answer = requests.post(signer.live_session_token_url, headers=headers).json()
        signer.complete_lst(answer, a)
        headers = signer.sign("GET", "https://api.ibkr.com/v1/api/iserver/accounts", {})
    """

    def __init__(self, config: OAuth1aConfig) -> None:
        material = config._material()
        assert config.consumer_key is not None and config.access_token is not None  # checked by _material()
        self.consumer_key = config.consumer_key.strip()
        self.access_token = config.access_token.strip()
        self.realm = config.realm.strip()
        self.live_session_token_url = config.live_session_token_url
        self._generator = config.dh_generator
        self._prime = material.prime
        self._signature_key = material.signature_key
        self._prepend = material.prepend
        self._token: _Token | None = None

    def __repr__(self) -> str:
        token = self._token
        state = "None" if token is None else f"{_MASK!r}, expires_at={token.expires_at:.0f}"
        return (
            f"{type(self).__name__}(consumer_key={self.consumer_key!r}, access_token={_shorten(self.access_token, 4)}, "
            f"realm={self.realm!r}, live_session_token={state})"
        )

    # -- live session token ------------------------------------------------------------------------------------------

    def lst_request_headers(
        self, url: str | None = None, *, nonce: str | None = None, timestamp: int | str | None = None
    ) -> tuple[dict[str, str], int]:
        """Headers of `POST oauth/live_session_token`, and the secret exponent `a` to pass to `complete_lst`.

        The request carries `diffie_hellman_challenge = g^a mod p` and is signed with RSA-SHA256 over the prepend
        followed by the base string. `url` defaults to `live_session_token_url`; `nonce` and `timestamp` default to
        fresh values.
        """
        target = url or self.live_session_token_url
        a_int = generate_dh_secret()
        params = {
            "diffie_hellman_challenge": dh_challenge(a_int, self._prime, self._generator),
            "oauth_consumer_key": self.consumer_key,
            "oauth_nonce": nonce if nonce is not None else generate_nonce(),
            "oauth_signature_method": "RSA-SHA256",
            "oauth_timestamp": str(timestamp if timestamp is not None else generate_timestamp()),
            "oauth_token": self.access_token,
        }
        base = base_string("POST", target, params, prepend=self._prepend)
        params["oauth_signature"] = rsa_sha256_signature(base, self._signature_key)
        return {"Authorization": authorization_header(params, self.realm), "Host": _host(target)}, a_int

    def complete_lst(self, response_json: Mapping[str, Any], a_int: int) -> None:
        """Derive the live session token from the server's answer, check its signature and keep it.

        `response_json` holds `diffie_hellman_response`, `live_session_token_signature` and
        `live_session_token_expiration` (ms since the epoch; when absent, 24 hours from now is assumed). Raises
        `LiveSessionTokenError` (naming no secret) when a field is missing or the signature does not match; the
        previous token, if any, is then kept.
        """
        if not isinstance(response_json, Mapping):
            raise LiveSessionTokenError("the live session token answer is not a JSON object")
        response = response_json.get("diffie_hellman_response")
        signature = response_json.get("live_session_token_signature")
        absent = [
            name
            for name, value in (("diffie_hellman_response", response), ("live_session_token_signature", signature))
            if not isinstance(value, str) or not value.strip()
        ]
        if absent:
            raise LiveSessionTokenError(f"the live session token answer lacks {', '.join(absent)}")
        assert isinstance(response, str) and isinstance(signature, str)
        lst = live_session_token(response, a_int, self._prime, self._prepend)
        if not validate_live_session_token(lst, signature, self.consumer_key):
            raise LiveSessionTokenError(
                "the live session token does not match the server's signature, so it was refused: check that the "
                "consumer key, access token secret, encryption key and dh_prime belong together"
            )
        expires_at = _expiry_seconds(response_json.get("live_session_token_expiration"))
        self._token = _Token(lst=lst, expires_at=expires_at)
        logger.debug(
            "OAuth live session token obtained, valid until %s",
            time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(expires_at)),
        )

    @property
    def has_live_session_token(self) -> bool:
        """True once `complete_lst` has succeeded (and `forget_live_session_token` was not called since)."""
        return self._token is not None

    @property
    def expires_at(self) -> float | None:
        """Expiry of the live session token in seconds since the epoch, or None without a token."""
        token = self._token
        return None if token is None else token.expires_at

    def needs_renewal(self, margin_s: float = 60.0) -> bool:
        """True when there is no token or it expires within `margin_s` seconds."""
        token = self._token
        return token is None or time.time() + margin_s >= token.expires_at

    def forget_live_session_token(self) -> None:
        """Drop the live session token (e.g. after logging out)."""
        self._token = None

    # -- protected requests ------------------------------------------------------------------------------------------

    def sign(
        self,
        method: str,
        url: str,
        query: Mapping[str, str] | None = None,
        *,
        nonce: str | None = None,
        timestamp: int | str | None = None,
    ) -> dict[str, str]:
        """`Authorization` (HMAC-SHA256 with the live session token) and `Host` headers for one request.

        Each call uses a fresh nonce and timestamp unless given. Query parameters, whether in `url` or in `query`,
        are part of the base string; a JSON body is not. Raises `LiveSessionTokenError` when no live session token
        was obtained yet. An expired token is still used (the server answers 401); see `needs_renewal`.
        """
        token = self._token
        if token is None:
            raise LiveSessionTokenError(
                "no OAuth live session token yet: request one (lst_request_headers, then complete_lst) before "
                "signing requests"
            )
        params = {
            "oauth_consumer_key": self.consumer_key,
            "oauth_nonce": nonce if nonce is not None else generate_nonce(),
            "oauth_signature_method": "HMAC-SHA256",
            "oauth_timestamp": str(timestamp if timestamp is not None else generate_timestamp()),
            "oauth_token": self.access_token,
        }
        base = base_string(method, url, params, query=query)
        params["oauth_signature"] = hmac_sha256_signature(base, token.lst)
        return {"Authorization": authorization_header(params, self.realm), "Host": _host(url)}

    def __call__(self, method: str, url: str, query: Mapping[str, str] | None = None) -> dict[str, str]:
        return self.sign(method, url, query)


def _host(url: str) -> str:
    """The host of `url` in lower case, with the port when it is not the scheme's default (also the `Host` header)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{parts.port}"
    return host


def _expiry_seconds(value: object) -> float:
    if value is None:
        return time.time() + _DEFAULT_LST_LIFETIME_S
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise LiveSessionTokenError("live_session_token_expiration is not a number of milliseconds")
    try:
        return float(value) / 1000.0
    except ValueError:
        raise LiveSessionTokenError("live_session_token_expiration is not a number of milliseconds") from None
