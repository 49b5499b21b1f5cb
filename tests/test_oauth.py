"""OAuth 1.0a cryptography (`ibkr_sdk.lib.oauth`): the worked vector of the reference notes §3.4, encoding and base
string rules, RSA signing and decryption, configuration checks and the signer's token handling. No network."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from Crypto.Cipher import PKCS1_v1_5
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15

from ibkr_sdk.lib import oauth
from ibkr_sdk.lib.errors import IbkrError
from ibkr_sdk.lib.oauth import (
    LiveSessionTokenError,
    OAuth1aConfig,
    OAuth1aSigner,
    OAuthConfigError,
)

# ---------------------------------------------------------------------------------------------------------------------
# The worked vector (reference notes §3.4): IBKR's public TESTCONS prime, g = 2.

PRIME_HEX = (
    "f51d7ab737a452668fd8b5eec12fcdc3c01a0744d93db2e9b1dc335bd2551ec67e11becc60c33a73497a0f7c086d87e45781ada35b7af72708f3"
    "1ae221347a1c6517575a347df83a321d05450547ee13a8182280ed81423002aa6337b48a251d840bfdabe8d41b8109284933a6c33bc6652ea9c7"
    "a5fd6b4945b7b39f1d951ae19b9192061e2f9de84768b67c425258724cdb96975917cabdea87e7e0bc72b01a331d06f2f34229a5ec742b399fcf"
    "fa510bf6b8f9b5bf9858f058371a49aa4f950f7fbfb3f47710af34baa83fff1b467d38d0e6b1b0a2d117f178cf930d7dfdcc8f6755a2229d4849"
    "2a967f493041121e382b9e87ca1368c09f54e6352d909f2b"
)
PRIME = int(PRIME_HEX, 16)
A_INT = int("1f" * 32, 16)
B_INT = int("2e" * 32, 16)
A_HEX = (
    "d55ad77617df9595bb9bc85ed90d1ec4e059e4e63e605badc206c64500bcad699c12e52847f51f823b98c43a403fcab1cd39f93104d79a0e7eed"
    "cdf3f149a51ddd2468515f00535a2326b2bd2c1ed09c6ca2f04df0f703c92e8bf29f771cb4119f460371b115ca8e57e410c3805d92d908d01462"
    "0db3fa23ec491c1b77274a0a37550c9fe454f2348fc4a163edaf602696abbc74441a0d469a4d8ae2e3ee7845cc6e79d4b7ceaab89b3ecc15271c"
    "9082cd3657c7cc496595a4fb091d0163fafdbb300d7be0397a7d145a96773f6afded77b03941ca68482bd23e2a70d8445a299f929e0fc4fe1a96"
    "bee00ef1b7f926e945efaf3803718045c668b3c442bf8c4a"
)
B_HEX = (
    "5e9c7e6ed9b83303d1a67459c2acfb08428d7e93aad6633e252a8079cc2778c27ed641a9028280175e0669bc417c0d1ab089979f80dfbf62a76c"
    "695f38a9dcc91985d75198e9fdcb0aea7e8cd99a47780c26ad44ce7a73d30f8017e1ddfdfab9bd48d9fdb8cd3824877c386ec125cbc20706a622"
    "c629bf274ab8e223b505a17053a31f8985f65ccb55d1c81ad31cb195f9f2d87cc63fb5989294e1579cb4116c2239a326271778e0cd5769d6762a"
    "9ced0cd63bf0029fbaf9fdfc21eee85d2ce3c3a5597d22fca35379ad0849bddf189e200ca58cc5f781a8da61bed823024ee16863fc18665be07b"
    "4ffb4364c9cf419593cde2dd5239d97a3340555e5677cd8a"
)
PREPEND = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
LST = "aiO0qaT5AL+CCJEUYXnLnkdvlzc="
LST_SIGNATURE = "833c0624919f73ac5904157b99c4f369dcef7bc4"
CONSUMER_KEY = "TESTCONS"
ACCESS_TOKEN = "a1b2c3d4e5f6a7b8c9d0"
GET_URL = "https://api.ibkr.com/v1/api/iserver/accounts"
NONCE = "abcdefghijklmnop"
TIMESTAMP = 1714489460
GET_BASE = (
    "GET&https%3A%2F%2Fapi.ibkr.com%2Fv1%2Fapi%2Fiserver%2Faccounts&oauth_consumer_key%3DTESTCONS%26oauth_nonce%3D"
    "abcdefghijklmnop%26oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D1714489460%26oauth_token%3D"
    "a1b2c3d4e5f6a7b8c9d0"
)
GET_SIGNATURE_ENCODED = "CgOU0qhnDvdoxTLkVOC8CPb4egH%2ByHBlxFxIBV43VDY%3D"
GET_AUTHORIZATION = (
    'OAuth realm="limited_poa", oauth_consumer_key="TESTCONS", oauth_nonce="abcdefghijklmnop", '
    'oauth_signature="CgOU0qhnDvdoxTLkVOC8CPb4egH%2ByHBlxFxIBV43VDY%3D", oauth_signature_method="HMAC-SHA256", '
    'oauth_timestamp="1714489460", oauth_token="a1b2c3d4e5f6a7b8c9d0"'
)
EXPIRATION_MS = 1714669716258
LST_ANSWER = {
    "diffie_hellman_response": B_HEX,
    "live_session_token_signature": LST_SIGNATURE,
    "live_session_token_expiration": EXPIRATION_MS,
}

_FIELDS = [
    "oauth_rest_url",
    "live_session_token_endpoint",
    "access_token",
    "access_token_secret",
    "consumer_key",
    "dh_prime",
    "dh_generator",
    "encryption_key_fp",
    "encryption_key",
    "signature_key_fp",
    "signature_key",
    "realm",
    "init_oauth",
    "maintain_oauth",
    "shutdown_oauth",
    "init_brokerage_session",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OAuth variable of the developer's shell may leak into a test."""
    for name in _FIELDS:
        for variable in oauth._env_names(name):
            monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="session")
def rsa_key() -> RSA.RsaKey:
    return RSA.generate(2048)


@pytest.fixture(scope="session")
def other_key() -> RSA.RsaKey:
    return RSA.generate(1024)


def _pem(key: RSA.RsaKey) -> str:
    return key.export_key().decode("ascii")


def _encrypt(plaintext: bytes, key: RSA.RsaKey) -> str:
    return base64.b64encode(PKCS1_v1_5.new(key.public_key()).encrypt(plaintext)).decode("ascii")


@pytest.fixture
def config(rsa_key: RSA.RsaKey) -> OAuth1aConfig:
    """The vector's settings; one generated key serves as both signature and encryption key."""
    return OAuth1aConfig(
        access_token=ACCESS_TOKEN,
        access_token_secret=_encrypt(bytes.fromhex(PREPEND), rsa_key),
        consumer_key=CONSUMER_KEY,
        dh_prime=PRIME_HEX,
        encryption_key=_pem(rsa_key),
        signature_key=_pem(rsa_key),
    )


@pytest.fixture
def signer(config: OAuth1aConfig) -> OAuth1aSigner:
    return OAuth1aSigner(config)


@pytest.fixture
def ready_signer(signer: OAuth1aSigner) -> OAuth1aSigner:
    signer.complete_lst(LST_ANSWER, A_INT)
    return signer


def _header_params(header: str) -> dict[str, str]:
    assert header.startswith("OAuth ")
    fields = {}
    for item in header[len("OAuth ") :].split(", "):
        name, _, value = item.partition("=")
        assert value.startswith('"') and value.endswith('"'), item
        fields[name] = value[1:-1]
    return fields


# ---------------------------------------------------------------------------------------------------------------------
# Worked vector


def test_vector_challenge_from_a() -> None:
    assert oauth.dh_challenge(A_INT, PRIME, 2) == A_HEX
    assert oauth.dh_challenge(B_INT, PRIME, 2) == B_HEX  # the "server" side of the same vector


def test_vector_shared_secret_gets_the_sign_byte() -> None:
    shared = pow(B_INT, A_INT, PRIME)
    assert shared.bit_length() % 8 == 0
    encoded = oauth.java_big_integer_bytes(shared)
    assert len(encoded) == 257 and encoded[0] == 0


def test_vector_live_session_token_and_signature() -> None:
    lst = oauth.live_session_token(B_HEX, A_INT, PRIME, PREPEND)
    assert lst == LST
    assert oauth.validate_live_session_token(lst, LST_SIGNATURE, CONSUMER_KEY)
    assert oauth.validate_live_session_token(lst, LST_SIGNATURE.upper(), CONSUMER_KEY)


def test_vector_protected_get_base_string_and_signature() -> None:
    params = {
        "oauth_consumer_key": CONSUMER_KEY,
        "oauth_nonce": NONCE,
        "oauth_signature_method": "HMAC-SHA256",
        "oauth_timestamp": str(TIMESTAMP),
        "oauth_token": ACCESS_TOKEN,
    }
    base = oauth.base_string("GET", GET_URL, params)
    assert base == GET_BASE
    signature = oauth.hmac_sha256_signature(base, LST)
    assert oauth.percent_encode(signature) == GET_SIGNATURE_ENCODED
    assert oauth.authorization_header({**params, "oauth_signature": signature}, "limited_poa") == GET_AUTHORIZATION


def test_vector_through_the_signer(signer: OAuth1aSigner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oauth, "generate_dh_secret", lambda bits=256: A_INT)
    headers, a_int = signer.lst_request_headers()
    assert a_int == A_INT
    assert _header_params(headers["Authorization"])["diffie_hellman_challenge"] == A_HEX

    signer.complete_lst(LST_ANSWER, a_int)
    assert signer._token is not None and signer._token.lst == LST
    assert signer.expires_at == pytest.approx(EXPIRATION_MS / 1000)

    monkeypatch.setattr(oauth, "generate_nonce", lambda length=16: NONCE)
    monkeypatch.setattr(oauth, "generate_timestamp", lambda: TIMESTAMP)
    assert signer.sign("GET", GET_URL, {}) == {"Authorization": GET_AUTHORIZATION, "Host": "api.ibkr.com"}
    # The same through explicit arguments and through the transport's call form.
    assert signer.sign("get", GET_URL, nonce=NONCE, timestamp=TIMESTAMP)["Authorization"] == GET_AUTHORIZATION
    assert signer("GET", GET_URL, {})["Authorization"] == GET_AUTHORIZATION


# ---------------------------------------------------------------------------------------------------------------------
# Java sign byte, encoding, base string


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0xFF, b"\x00\xff"),
        (0x7F, b"\x7f"),
        (0x80, b"\x00\x80"),
        (0x0100, b"\x01\x00"),
        (0xFFFF, b"\x00\xff\xff"),
        (0, b"\x00"),
    ],
)
def test_java_sign_byte(value: int, expected: bytes) -> None:
    assert oauth.java_big_integer_bytes(value) == expected


def test_java_bytes_refuse_negative() -> None:
    with pytest.raises(ValueError):
        oauth.java_big_integer_bytes(-1)


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("a b", "a%20b"),
        ("~-._", "~-._"),
        ("AZaz09", "AZaz09"),
        ("a/b", "a%2Fb"),
        ("a+b=c&d", "a%2Bb%3Dc%26d"),
        ("*!'()", "%2A%21%27%28%29"),
        ("é", "%C3%A9"),
        ("%", "%25"),
        ("", ""),
    ],
)
def test_percent_encoding(raw: str, encoded: str) -> None:
    assert oauth.percent_encode(raw) == encoded


def test_percent_encoding_hex_is_upper_case() -> None:
    assert oauth.percent_encode("\n?") == "%0A%3F"


def test_base_string_includes_sorted_query_parameters() -> None:
    params = {"oauth_nonce": "n", "oauth_consumer_key": "ck"}
    base = oauth.base_string(
        "get", "https://api.ibkr.com/v1/api/md?zeta=1&alpha=x%20y", params, query={"conids": "1,2"}
    )
    method, uri, normalised = base.split("&")
    assert method == "GET"
    assert uri == "https%3A%2F%2Fapi.ibkr.com%2Fv1%2Fapi%2Fmd"
    # Values are encoded first (space → %20, comma → %2C), then the whole list once more.
    assert normalised == oauth.percent_encode("alpha=x%20y&conids=1%2C2&oauth_consumer_key=ck&oauth_nonce=n&zeta=1")


def test_base_string_sorts_repeated_names_by_value() -> None:
    base = oauth.base_string("GET", "http://h/p", [("b", "2"), ("a", "z"), ("a", "y")])
    assert base == "GET&http%3A%2F%2Fh%2Fp&" + oauth.percent_encode("a=y&a=z&b=2")


def test_base_string_leaves_out_signature_and_realm() -> None:
    params = {"oauth_signature": "sig", "realm": "limited_poa", "oauth_token": "t"}
    assert oauth.base_string("GET", "https://x/y", params) == "GET&https%3A%2F%2Fx%2Fy&oauth_token%3Dt"


def test_base_string_form_parameters_and_prepend() -> None:
    base = oauth.base_string("POST", "https://x/y", {"oauth_token": "t"}, "abcd", form={"publish": "true"})
    assert base == "abcdPOST&https%3A%2F%2Fx%2Fy&" + oauth.percent_encode("oauth_token=t&publish=true")


@pytest.mark.parametrize(
    ("url", "uri"),
    [
        ("HTTPS://API.IBKR.com:443/v1/Api?x=1#frag", "https://api.ibkr.com/v1/Api"),
        ("http://Example.com:80/", "http://example.com/"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com", "https://example.com/"),
    ],
)
def test_base_string_uri_normalisation(url: str, uri: str) -> None:
    assert oauth.base_string("GET", url, {}).split("&")[1] == oauth.percent_encode(uri)


def test_authorization_header_layout() -> None:
    header = oauth.authorization_header({"oauth_z": "a b", "oauth_a": "1+1"}, "test_realm")
    assert header == 'OAuth realm="test_realm", oauth_a="1%2B1", oauth_z="a%20b"'


# ---------------------------------------------------------------------------------------------------------------------
# RSA


def test_rsa_sha256_signature_verifies_with_public_key(rsa_key: RSA.RsaKey) -> None:
    base = "POST&https%3A%2F%2Fapi.ibkr.com%2Fv1%2Fapi%2Foauth%2Flive_session_token&x%3D1"
    signature = oauth.rsa_sha256_signature(base, rsa_key)
    pkcs1_15.new(rsa_key.public_key()).verify(SHA256.new(base.encode()), base64.b64decode(signature))
    assert oauth.rsa_sha256_signature(base, _pem(rsa_key)) == signature  # PEM text works too


def test_rsa_signature_refuses_public_key(rsa_key: RSA.RsaKey) -> None:
    with pytest.raises(OAuthConfigError, match="private"):
        oauth.rsa_sha256_signature("x", rsa_key.public_key())


def test_decrypt_access_token_secret_round_trip(rsa_key: RSA.RsaKey) -> None:
    secret = bytes(range(32))
    assert oauth.decrypt_access_token_secret(_encrypt(secret, rsa_key), rsa_key) == secret.hex()


def test_decrypt_with_wrong_key_is_refused_without_secret(rsa_key: RSA.RsaKey, other_key: RSA.RsaKey) -> None:
    secret_b64 = _encrypt(bytes.fromhex(PREPEND), rsa_key)
    with pytest.raises(OAuthConfigError, match="could not be decrypted") as info:
        oauth.decrypt_access_token_secret(secret_b64, other_key)
    assert secret_b64 not in str(info.value) and PREPEND not in str(info.value)
    with pytest.raises(OAuthConfigError, match="not valid base64"):
        oauth.decrypt_access_token_secret("not base64!", rsa_key)


def test_lst_request_is_rsa_signed_over_prepend_and_base_string(
    signer: OAuth1aSigner, rsa_key: RSA.RsaKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oauth, "generate_dh_secret", lambda bits=256: A_INT)
    headers, _ = signer.lst_request_headers(nonce=NONCE, timestamp=TIMESTAMP)
    fields = _header_params(headers["Authorization"])
    assert list(fields) == [
        "realm",
        "diffie_hellman_challenge",
        "oauth_consumer_key",
        "oauth_nonce",
        "oauth_signature",
        "oauth_signature_method",
        "oauth_timestamp",
        "oauth_token",
    ]
    assert fields["realm"] == "limited_poa"
    assert fields["oauth_signature_method"] == "RSA-SHA256"
    assert fields["oauth_token"] == ACCESS_TOKEN
    assert headers["Host"] == "api.ibkr.com"
    url = "https://api.ibkr.com/v1/api/oauth/live_session_token"
    assert signer.live_session_token_url == url
    params = {k: v for k, v in fields.items() if k not in ("realm", "oauth_signature")}
    base = PREPEND + oauth.base_string("POST", url, params)
    signature = base64.b64decode(unquote(fields["oauth_signature"]))
    pkcs1_15.new(rsa_key.public_key()).verify(SHA256.new(base.encode()), signature)


def test_lst_requests_use_fresh_secrets(signer: OAuth1aSigner) -> None:
    first, a1 = signer.lst_request_headers()
    second, a2 = signer.lst_request_headers()
    assert a1 != a2
    assert (
        _header_params(first["Authorization"])["oauth_nonce"] != _header_params(second["Authorization"])["oauth_nonce"]
    )


# ---------------------------------------------------------------------------------------------------------------------
# Live session token handling


def test_tampered_lst_signature_is_refused(signer: OAuth1aSigner) -> None:
    tampered = LST_SIGNATURE[:-1] + ("5" if LST_SIGNATURE[-1] != "5" else "6")
    assert not oauth.validate_live_session_token(LST, tampered, CONSUMER_KEY)
    assert not oauth.validate_live_session_token(LST, LST_SIGNATURE, "OTHERCONS")
    with pytest.raises(LiveSessionTokenError, match="refused") as info:
        signer.complete_lst({**LST_ANSWER, "live_session_token_signature": tampered}, A_INT)
    message = str(info.value)
    for secret in (LST, PREPEND, tampered, B_HEX):
        assert secret not in message
    assert not signer.has_live_session_token


def test_lst_answer_missing_fields(signer: OAuth1aSigner) -> None:
    with pytest.raises(LiveSessionTokenError, match="diffie_hellman_response"):
        signer.complete_lst({"live_session_token_signature": LST_SIGNATURE}, A_INT)
    with pytest.raises(LiveSessionTokenError, match="outside"):
        signer.complete_lst({**LST_ANSWER, "diffie_hellman_response": "1"}, A_INT)


def test_sign_without_token_is_a_clear_error(signer: OAuth1aSigner) -> None:
    with pytest.raises(LiveSessionTokenError, match="no OAuth live session token yet"):
        signer.sign("GET", GET_URL, {})
    assert signer.needs_renewal()


def test_every_sign_call_gets_a_fresh_nonce(ready_signer: OAuth1aSigner) -> None:
    nonces = set()
    for _ in range(50):
        fields = _header_params(ready_signer.sign("GET", GET_URL, {"a": "1"})["Authorization"])
        assert len(fields["oauth_nonce"]) >= 16 and fields["oauth_nonce"].isalnum()
        assert fields["oauth_timestamp"].isdigit() and len(fields["oauth_timestamp"]) == 10
        nonces.add(fields["oauth_nonce"])
    assert len(nonces) == 50


def test_sign_includes_query_in_the_signature(ready_signer: OAuth1aSigner) -> None:
    kwargs: dict[str, Any] = {"nonce": NONCE, "timestamp": TIMESTAMP}
    plain = ready_signer.sign("GET", GET_URL, {}, **kwargs)["Authorization"]
    with_query = ready_signer.sign("GET", GET_URL, {"conids": "265598"}, **kwargs)["Authorization"]
    in_url = ready_signer.sign("GET", GET_URL + "?conids=265598", {}, **kwargs)["Authorization"]
    assert plain != with_query == in_url
    params = {k: v for k, v in _header_params(with_query).items() if k not in ("realm", "oauth_signature")}
    base = oauth.base_string("GET", GET_URL, params, query={"conids": "265598"})
    expected = oauth.percent_encode(oauth.hmac_sha256_signature(base, LST))
    assert _header_params(with_query)["oauth_signature"] == expected


def test_sign_host_header(ready_signer: OAuth1aSigner) -> None:
    assert ready_signer.sign("GET", "http://127.0.0.1:5000/v1/api/tickle")["Host"] == "127.0.0.1:5000"
    assert ready_signer.sign("POST", "https://API.ibkr.com:443/v1/api/tickle")["Host"] == "api.ibkr.com"


def test_needs_renewal_and_expiry(signer: OAuth1aSigner) -> None:
    now = time.time()
    signer.complete_lst({**LST_ANSWER, "live_session_token_expiration": int((now + 3600) * 1000)}, A_INT)
    assert signer.expires_at == pytest.approx(now + 3600, abs=0.01)
    assert not signer.needs_renewal()
    assert signer.needs_renewal(margin_s=4000)
    signer.complete_lst({**LST_ANSWER, "live_session_token_expiration": int((now + 30) * 1000)}, A_INT)
    assert signer.needs_renewal()
    assert not signer.needs_renewal(margin_s=0)
    signer.forget_live_session_token()
    assert signer.needs_renewal(margin_s=0) and signer.expires_at is None


def test_nonce_and_timestamp_helpers() -> None:
    nonce = oauth.generate_nonce()
    assert len(nonce) == 16 and nonce.isalnum() and nonce.isascii()
    assert len(oauth.generate_nonce(32)) == 32
    with pytest.raises(ValueError):
        oauth.generate_nonce(8)
    assert abs(oauth.generate_timestamp() - time.time()) < 5


# ---------------------------------------------------------------------------------------------------------------------
# Configuration


def test_errors_are_sdk_errors() -> None:
    assert issubclass(OAuthConfigError, IbkrError) and issubclass(OAuthConfigError, ValueError)
    assert issubclass(LiveSessionTokenError, IbkrError)


def test_defaults() -> None:
    cfg = OAuth1aConfig()
    assert cfg.oauth_rest_url == "https://api.ibkr.com/v1/api/"
    assert cfg.live_session_token_endpoint == "oauth/live_session_token"
    assert cfg.dh_generator == 2 and cfg.realm == "limited_poa"
    assert cfg.init_oauth and cfg.maintain_oauth and cfg.shutdown_oauth and cfg.init_brokerage_session
    assert cfg.access_token is None and cfg.signature_key_fp is None


def test_missing_fields_are_listed() -> None:
    with pytest.raises(OAuthConfigError) as info:
        OAuth1aConfig(consumer_key="TESTCONS").validate()
    message = str(info.value)
    for name in ("access_token ", "access_token_secret", "dh_prime", "encryption_key_fp", "signature_key_fp"):
        assert name in message
    assert "IBKR_SDK_OAUTH1A_ACCESS_TOKEN" in message
    assert "consumer_key" not in message


def test_valid_config_passes(config: OAuth1aConfig) -> None:
    config.validate()


def test_key_files_are_read(config: OAuth1aConfig, rsa_key: RSA.RsaKey, tmp_path: Path) -> None:
    key_file = tmp_path / "private_signature.pem"
    key_file.write_text(_pem(rsa_key))
    config.signature_key = None
    config.signature_key_fp = str(key_file)
    config.validate()
    assert config.load_signature_key() == rsa_key


def test_unreadable_key_file_is_named(config: OAuth1aConfig, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "private_encryption.pem"
    config.encryption_key = None
    config.encryption_key_fp = str(missing)
    with pytest.raises(OAuthConfigError, match="cannot read the encryption key file") as info:
        config.validate()
    assert str(missing) in str(info.value)


def test_unparsable_key_is_refused_without_its_contents(config: OAuth1aConfig, tmp_path: Path) -> None:
    bad = tmp_path / "private_signature.pem"
    bad.write_text("-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETBYTES\n-----END RSA PRIVATE KEY-----\n")
    config.signature_key = None
    config.signature_key_fp = str(bad)
    with pytest.raises(OAuthConfigError, match="does not hold an RSA key") as info:
        config.validate()
    assert str(bad) in str(info.value) and "TOPSECRETBYTES" not in str(info.value)
    config.signature_key = "TOPSECRETTEXT"
    with pytest.raises(OAuthConfigError, match="given as text") as info:
        config.validate()
    assert "TOPSECRETTEXT" not in str(info.value)


def test_public_key_is_refused(config: OAuth1aConfig, rsa_key: RSA.RsaKey) -> None:
    config.encryption_key = rsa_key.public_key().export_key().decode()
    with pytest.raises(OAuthConfigError, match="public key"):
        config.validate()


def test_secret_of_another_key_is_refused(config: OAuth1aConfig, other_key: RSA.RsaKey) -> None:
    config.access_token_secret = _encrypt(bytes.fromhex(PREPEND), other_key)
    with pytest.raises(OAuthConfigError, match="could not be decrypted"):
        config.validate()


@pytest.mark.parametrize(
    ("prime", "message"),
    [
        ("f51d7ab7zz" + PRIME_HEX[10:], "not a hexadecimal number"),
        (PRIME_HEX[:200], "too small"),
        (PRIME_HEX[:-1] + "a", "even"),
        ("   ", "missing"),
    ],
)
def test_bad_prime(config: OAuth1aConfig, prime: str, message: str) -> None:
    config.dh_prime = prime
    with pytest.raises(OAuthConfigError, match=message):
        config.validate()


def test_prime_formats_accepted() -> None:
    grouped = ":".join(PRIME_HEX[i : i + 2] for i in range(0, len(PRIME_HEX), 2))
    assert oauth.parse_dh_prime("0x" + PRIME_HEX.upper()) == PRIME
    assert oauth.parse_dh_prime("00:" + grouped + "\n") == PRIME


def test_missing_pycryptodome(config: OAuth1aConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "Crypto" or name.startswith("Crypto."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "Crypto", None)
    with pytest.raises(OAuthConfigError, match=r"pip install ibkr-cpapi-sdk\[oauth\]"):
        config.validate()
    with pytest.raises(OAuthConfigError, match="pycryptodome"):
        oauth.rsa_sha256_signature("x", "key")


def test_env_fallback_ours_then_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IBIND_OAUTH1A_ACCESS_TOKEN", "from-ibind")
    assert OAuth1aConfig().access_token == "from-ibind"
    monkeypatch.setenv("IBKR_SDK_OAUTH1A_ACCESS_TOKEN", "from-sdk")
    assert OAuth1aConfig().access_token == "from-sdk"
    assert OAuth1aConfig(access_token="explicit").access_token == "explicit"
    monkeypatch.setenv("IBKR_SDK_OAUTH1A_ACCESS_TOKEN", "")  # empty counts as unset
    assert OAuth1aConfig().access_token == "from-ibind"


def test_env_types_and_peer_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IBIND_OAUTH1A_DH_GENERATOR", "5")
    monkeypatch.setenv("IBIND_OAUTH1A_REALM", "test_realm")
    monkeypatch.setenv("IBIND_OAUTH1A_REST_URL", "https://1.api.ibkr.com/v1/api/")
    monkeypatch.setenv("IBIND_INIT_OAUTH", "false")
    monkeypatch.setenv("IBKR_SDK_OAUTH1A_MAINTAIN_OAUTH", "no")
    monkeypatch.setenv("IBIND_MAINTAIN_OAUTH", "yes")
    cfg = OAuth1aConfig()
    assert cfg.dh_generator == 5 and cfg.realm == "test_realm"
    assert cfg.oauth_rest_url == "https://1.api.ibkr.com/v1/api/"
    assert cfg.live_session_token_url == "https://1.api.ibkr.com/v1/api/oauth/live_session_token"
    assert cfg.init_oauth is False and cfg.maintain_oauth is False and cfg.shutdown_oauth is True


def test_env_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IBKR_SDK_OAUTH1A_SHUTDOWN_OAUTH", "maybe")
    with pytest.raises(OAuthConfigError, match="IBKR_SDK_OAUTH1A_SHUTDOWN_OAUTH must be true or false"):
        OAuth1aConfig()
    monkeypatch.delenv("IBKR_SDK_OAUTH1A_SHUTDOWN_OAUTH")
    monkeypatch.setenv("IBIND_OAUTH1A_DH_GENERATOR", "two")
    with pytest.raises(OAuthConfigError, match="IBIND_OAUTH1A_DH_GENERATOR must be an integer"):
        OAuth1aConfig()


def test_env_supplies_a_complete_config(monkeypatch: pytest.MonkeyPatch, config: OAuth1aConfig) -> None:
    for name in ("access_token", "access_token_secret", "consumer_key", "dh_prime", "encryption_key", "signature_key"):
        monkeypatch.setenv(f"IBIND_OAUTH1A_{name.upper()}", getattr(config, name))
    OAuth1aConfig().validate()


# ---------------------------------------------------------------------------------------------------------------------
# No secret in repr


def test_config_repr_masks_secrets(config: OAuth1aConfig) -> None:
    text = repr(config)
    assert config.access_token_secret is not None and config.access_token_secret not in text
    assert "PRIVATE KEY" not in text and "access_token_secret='***'" in text and "signature_key='***'" in text
    assert ACCESS_TOKEN not in text and PRIME_HEX not in text
    assert "consumer_key='TESTCONS'" in text and "realm='limited_poa'" in text


def test_signer_repr_masks_secrets(ready_signer: OAuth1aSigner) -> None:
    text = repr(ready_signer)
    for secret in (LST, PREPEND, ACCESS_TOKEN, "PRIVATE"):
        assert secret not in text
    assert "live_session_token='***'" in text


def test_signer_repr_without_token(signer: OAuth1aSigner) -> None:
    assert "live_session_token=None" in repr(signer)


def test_signer_checks_the_config(config: OAuth1aConfig) -> None:
    config.consumer_key = None
    with pytest.raises(OAuthConfigError, match="consumer_key"):
        OAuth1aSigner(config)
