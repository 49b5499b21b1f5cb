"""OAuth 1.0a end to end: IbkrClient against the simulator's OAuth authority, over HTTP on loopback."""

from __future__ import annotations

import base64
import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from Crypto.Cipher import PKCS1_v1_5
from Crypto.PublicKey import RSA

from ibkr_sdk import IbkrClient, LiveSessionTokenError, NotAuthenticatedError, OAuth1aConfig
from ibkr_sdk.lib.oauth import OAuth1aSigner
from ibkr_sdk.simulator import OAuthSettings, Simulator
from tests.test_oauth import PRIME, PRIME_HEX

CONSUMER = "TESTCONS"
ACCESS_TOKEN = "a1b2c3d4e5f6a7b8c9d0"


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    signature = RSA.generate(2048)
    encryption = RSA.generate(2048)
    secret = secrets.token_bytes(32)
    encrypted = base64.b64encode(PKCS1_v1_5.new(encryption.publickey()).encrypt(secret)).decode()
    return {"signature": signature, "encryption": encryption, "secret": secret, "encrypted": encrypted}


@pytest.fixture
def sim(keys: dict[str, Any]) -> Iterator[Simulator]:
    settings = OAuthSettings(
        consumer_key=CONSUMER,
        access_token=ACCESS_TOKEN,
        access_token_secret_hex=keys["secret"].hex(),
        signature_public_key=keys["signature"].publickey().export_key().decode(),
        dh_prime=PRIME,
    )
    with Simulator(oauth=settings) as s:
        yield s


def _config(sim: Simulator, keys: dict[str, Any], **overrides: Any) -> OAuth1aConfig:
    values: dict[str, Any] = dict(
        oauth_rest_url=sim.url,
        consumer_key=CONSUMER,
        access_token=ACCESS_TOKEN,
        access_token_secret=keys["encrypted"],
        encryption_key=keys["encryption"].export_key().decode(),
        signature_key=keys["signature"].export_key().decode(),
        dh_prime=PRIME_HEX,
        init_oauth=True,
        maintain_oauth=False,
        shutdown_oauth=False,
        init_brokerage_session=True,
    )
    values.update(overrides)
    return OAuth1aConfig(**values)


def _client(sim: Simulator, keys: dict[str, Any], **overrides: Any) -> IbkrClient:
    return IbkrClient(
        use_oauth=True, oauth_config=_config(sim, keys, **overrides), account_id="DU1234567", max_retries=0
    )


def test_token_obtained_and_signed_calls_accepted(sim: Simulator, keys: dict[str, Any]) -> None:
    with _client(sim, keys) as client:
        assert client.portfolio_accounts().data[0]["id"] == "DU1234567"
        assert client.stock_conid_by_symbol("MSFT").data == {"MSFT": 272093}
    assert sim.oauth is not None and sim.oauth.issued == 1
    paths = [r.path for r in sim.requests]
    assert paths[:2] == ["/oauth/live_session_token", "/iserver/auth/ssodh/init"]
    signed = [r for r in sim.requests if r.path != "/oauth/live_session_token"]
    assert all(r.status == 200 for r in sim.requests)
    assert all('oauth_signature_method="HMAC-SHA256"' in r.headers["authorization"] for r in signed)
    nonces = [r.headers["authorization"].split('oauth_nonce="')[1].split('"')[0] for r in signed]
    assert len(set(nonces)) == len(nonces), "a fresh nonce on every request"
    assert all(r.headers["host"] == f"127.0.0.1:{sim.port}" for r in sim.requests)


def test_a_signature_over_the_simulators_own_url_verifies_whatever_host_is_named(
    sim: Simulator, keys: dict[str, Any]
) -> None:
    # The peer library sends `Host: api.ibkr.com` whatever URL it signs (the same thing against IBKR): a stand-in at
    # another address must check the signature against its own URL too, or the peer never gets a token from it.
    signer = OAuth1aSigner(_config(sim, keys))
    headers, a_int = signer.lst_request_headers()
    answer = requests.post(signer.live_session_token_url, headers={**headers, "Host": "api.ibkr.com"}, timeout=30)
    assert answer.status_code == 200, answer.text
    signer.complete_lst(answer.json(), a_int)
    url = f"{sim.url}portfolio/accounts"
    signed = requests.get(url, headers={**signer.sign("GET", url), "Host": "api.ibkr.com"}, timeout=30)
    assert signed.status_code == 200 and signed.json()[0]["id"] == "DU1234567"
    elsewhere = url.replace(f":{sim.port}/", f":{sim.port + 1}/")  # neither the Host named nor the simulator
    refused = requests.get(url, headers={**signer.sign("GET", elsewhere), "Host": "api.ibkr.com"}, timeout=30)
    assert refused.status_code == 401 and "does not verify" in refused.text
    assert [(r.path, r.status) for r in sim.requests] == [
        ("/oauth/live_session_token", 200),
        ("/portfolio/accounts", 200),
        ("/portfolio/accounts", 401),
    ]


def test_unsigned_requests_are_refused(sim: Simulator) -> None:
    with IbkrClient(url=sim.url, account_id="DU1234567", max_retries=0) as plain:
        with pytest.raises(NotAuthenticatedError) as info:
            plain.portfolio_accounts()
    assert info.value.status_code == 401 and "OAuth" in str(info.value)


def test_tampered_token_signature_is_refused(
    sim: Simulator, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sim.oauth is not None
    genuine = sim.oauth.live_session_token

    def tampered(*args: Any) -> dict[str, Any]:
        answer = genuine(*args)
        answer["live_session_token_signature"] = "00" + answer["live_session_token_signature"][2:]
        return answer

    monkeypatch.setattr(sim.oauth, "live_session_token", tampered)
    with pytest.raises(LiveSessionTokenError, match="does not match") as info:
        _client(sim, keys)
    assert isinstance(info.value, RuntimeError)
    assert [r.path for r in sim.requests] == ["/oauth/live_session_token"], "nothing else was sent"


def test_401_after_expiry_renews_once(sim: Simulator, keys: dict[str, Any]) -> None:
    assert sim.oauth is not None
    with _client(sim, keys) as client:
        client.portfolio_accounts()
        sim.oauth.expire_tokens()
        sim.clear_requests()
        assert client.receive_brokerage_accounts().data["accounts"] == ["DU1234567"]
    assert [(r.path, r.status) for r in sim.requests] == [
        ("/iserver/accounts", 401),
        ("/oauth/live_session_token", 200),
        ("/iserver/accounts", 200),
    ]
    assert sim.oauth.issued == 2


def test_calling_before_a_token_exists_is_a_clear_error(sim: Simulator, keys: dict[str, Any]) -> None:
    with _client(sim, keys, init_oauth=False) as client:
        with pytest.raises(LiveSessionTokenError, match=r"oauth_init\(\.\.\.\) or generate_live_session_token\(\)"):
            client.tickle()
        assert sim.requests == []
        client.generate_live_session_token()
        assert client.tickle().data is not None


def test_no_secret_in_debug_logs_or_repr(
    sim: Simulator, keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client = _client(sim, keys)
        client.portfolio_accounts()
        lst = client._oauth_signer._token.lst  # type: ignore[union-attr]
        shown = caplog.text + repr(client) + repr(client.oauth_config) + repr(client._oauth_signer)
        client.close()
    assert "OAuth live session token obtained" in caplog.text
    for secret in (lst, keys["encrypted"], keys["secret"].hex(), "PRIVATE KEY"):
        assert secret not in shown


def test_every_attempt_is_signed_afresh(sim: Simulator, keys: dict[str, Any]) -> None:
    """A retried request carries a new nonce and timestamp: the server refuses a reused nonce."""
    with _client(sim, keys) as client:
        client._transport.max_retries = 2
        client._transport.retry_backoff = 0.01
        sim.inject("portfolio_accounts", "status", 503)
        sim.clear_requests()
        assert client.portfolio_accounts().data[0]["id"] == "DU1234567"
    attempts = [r for r in sim.requests if r.path == "/portfolio/accounts"]
    assert [r.status for r in attempts] == [503, 200]
    nonces = {r.headers["authorization"].split('oauth_nonce="')[1].split('"')[0] for r in attempts}
    assert len(nonces) == 2


def test_token_close_to_expiry_is_renewed_before_sending(sim: Simulator, keys: dict[str, Any]) -> None:
    with _client(sim, keys) as client:
        signer = client._oauth_signer
        assert signer is not None and signer._token is not None
        signer._token = type(signer._token)(lst=signer._token.lst, expires_at=time.time() + 5)  # about to expire
        sim.clear_requests()
        client.portfolio_accounts()
    assert [(r.path, r.status) for r in sim.requests] == [
        ("/oauth/live_session_token", 200),
        ("/portfolio/accounts", 200),
    ]
    assert sim.oauth is not None and sim.oauth.issued == 2
