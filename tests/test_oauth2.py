"""OAuth 2.0 (private_key_jwt) end to end: IbkrClient against the simulator's OAuth 2.0 authority over TLS on
loopback, plus the pure parts (config checks, JWTs, renewal decisions) and the simulator's pacing of /gw/api/v1."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from Crypto.PublicKey import ECC, RSA

from ibkr_sdk import IbkrClient, NotAuthenticatedError, OAuth2Config, OAuth2Error, OAuthConfigError
from ibkr_sdk._endpoint_table import ENDPOINTS, PACING_BUCKETS
from ibkr_sdk.lib.oauth2 import (
    AccessToken,
    OAuth2Session,
    client_assertion,
    decode_jwt,
    env_name,
    renewal_margin,
    token_form,
)
from ibkr_sdk.simulator import Simulator
from ibkr_sdk.simulator._oauth2 import OAuth2Settings, simulator_private_key_pem

SIM_KEY = simulator_private_key_pem()
# A second, public test key (2048 bits: accepted with a warning): another client's key, or the one IBKR rotated to.
OTHER_KEY_PEM = (Path(__file__).resolve().parent / "data" / "oauth2_test_2048.pem").read_text("ascii")


@pytest.fixture(scope="module")
def other_key() -> RSA.RsaKey:
    return RSA.import_key(OTHER_KEY_PEM)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(oauth2=True, https=True) as s:
        yield s


def _client(sim: Simulator, **config: Any) -> IbkrClient:
    values: dict[str, Any] = {"maintain_oauth": False, "shutdown_oauth": False}
    values.update(config)
    return IbkrClient(
        use_oauth=True,
        oauth_config=sim.oauth2_config(**values),
        cacert=sim.cacert,
        account_id="DU1234567",
        pacing=False,
        max_retries=0,
        timeout=5,
    )


def _named(sim: Simulator, name: str) -> list[Any]:
    return [r for r in sim.requests if r.endpoint == name]


# --- configuration -----------------------------------------------------------------------------------------------


def test_missing_settings_name_the_field_and_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLIENT_ID", "CLIENT_KEY_ID", "USERNAME", "PRIVATE_KEY", "PRIVATE_KEY_PATH"):
        monkeypatch.delenv(f"IBKR_SDK_OAUTH2_{name}", raising=False)
    with pytest.raises(OAuthConfigError) as info:
        OAuth2Config(client_key_id="k", username="u", private_key=SIM_KEY)
    assert "client_id (IBKR_SDK_OAUTH2_CLIENT_ID)" in str(info.value)
    with pytest.raises(OAuthConfigError, match="private_key_path"):
        OAuth2Config(client_id="c", client_key_id="k", username="u")


def test_environment_supplies_every_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text(SIM_KEY)
    monkeypatch.setenv(env_name("client_id"), "env-client")
    monkeypatch.setenv(env_name("client_key_id"), "env-kid")
    monkeypatch.setenv(env_name("private_key_path"), str(key))
    monkeypatch.setenv(env_name("username"), "envuser")
    monkeypatch.setenv(env_name("scope"), "sso-sessions.write accounts.read")
    monkeypatch.setenv("IBKR_SDK_INIT_OAUTH", "false")
    config = OAuth2Config()
    assert (config.client_id, config.client_key_id, config.username) == ("env-client", "env-kid", "envuser")
    assert config.scope == "sso-sessions.write accounts.read" and config.init_oauth is False
    assert config.ip_address is None  # never looked up behind the user's back
    assert config.token_url == "https://api.ibkr.com/oauth2/api/v1/token"
    assert config.sso_session_url == "https://api.ibkr.com/gw/api/v1/sso-sessions"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not a key", "does not hold an RSA private key"),
        (ECC.generate(curve="P-256").export_key(format="PEM"), "does not hold an RSA private key"),
        (RSA.import_key(SIM_KEY).public_key().export_key().decode(), "holds a public key"),
    ],
    ids=["garbage", "ec-key", "public-key"],
)
def test_unusable_keys_are_refused_at_construction(key: str, message: str) -> None:
    with pytest.raises(OAuthConfigError, match=message) as info:
        OAuth2Config(client_id="c", client_key_id="k", username="u", private_key=key)
    assert "BEGIN" not in str(info.value)


def test_unreadable_key_file_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(OAuthConfigError, match="cannot read private_key_path"):
        OAuth2Config(client_id="c", client_key_id="k", username="u", private_key_path=str(tmp_path / "none.pem"))


def test_pkcs1_and_pkcs8_are_read_and_short_keys_warned_or_refused() -> None:
    key = RSA.import_key(SIM_KEY)
    for pem in (key.export_key(pkcs=1).decode(), key.export_key(pkcs=8).decode()):
        OAuth2Config(client_id="c", client_key_id="k", username="u", private_key=pem)
    with pytest.warns(UserWarning, match="2048 bits"):
        OAuth2Config(client_id="c", client_key_id="k", username="u", private_key=OTHER_KEY_PEM)
    with pytest.raises(OAuthConfigError, match="1024-bit"):
        OAuth2Config(client_id="c", client_key_id="k", username="u", private_key=RSA.generate(1024).export_key())


def test_repr_masks_the_key_given_as_text() -> None:
    config = OAuth2Config(client_id="c", client_key_id="k", username="u", private_key=SIM_KEY)
    text = repr(config)
    assert "private_key='***'" in text and SIM_KEY.splitlines()[1] not in text


# --- the pure parts ----------------------------------------------------------------------------------------------


def test_client_assertion_has_ibkrs_claims_and_a_fresh_jti() -> None:
    key = RSA.import_key(SIM_KEY)
    now = 1_800_000_000.0
    first, second = (client_assertion("cid", "kid-1", key, now) for _ in range(2))
    header, claims = decode_jwt(first, key.public_key())
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert claims["iss"] == claims["sub"] == "cid" and claims["aud"] == "/token"
    assert claims["iat"] < now and 0 < claims["exp"] - claims["iat"] <= 300
    assert decode_jwt(second)[1]["jti"] != claims["jti"]
    assert set(token_form(first, "sso-sessions.write", "cid")) == {
        "grant_type",
        "client_assertion_type",
        "client_assertion",
        "scope",
        "client_id",
    }


def test_short_lifetimes_are_honoured_without_a_refresh_loop() -> None:
    assert renewal_margin(86399) == 60 and renewal_margin(8) == 2 and renewal_margin(0) == 0
    token = AccessToken("t", expires_at=100.0, lifetime=8.0)
    assert not token.needs_renewal(97.9) and token.needs_renewal(98.0)


# --- the flow against the simulator --------------------------------------------------------------------------------


def test_full_flow_over_tls(sim: Simulator) -> None:
    with _client(sim) as client:
        assert sim.oauth2 is not None
        assert (sim.oauth2.tokens_issued, sim.oauth2.sessions_opened) == (1, 1)
        header, claims = sim.oauth2.assertions[0]
        assert header["alg"] == "RS256" and header["kid"] == "sim-key-1" and claims["aud"] == "/token"
        session = sim.oauth2.session_claims[0]
        assert session["ip"] == "127.0.0.1" and session["credential"] == "simuser1" and session["iss"] == "sim-client"
        sso = _named(sim, "create_sso_session")[0]
        assert sso.headers["content-type"] == "application/jwt"
        init = _named(sim, "initialize_brokerage_session")[0]
        assert init.headers["authorization"] == f"Bearer {sim.oauth2.issued[1]}"  # the session token on /v1/api
        assert client.authentication_status(log=False).data["authenticated"] is True
        echo = client.echo_https()
        assert echo.data == {"requestMethod": "GET", "securityPolicy": "HTTPS", "queryParameters": {}}
        assert _named(sim, "echo_https")[0].headers["authorization"] == f"Bearer {sim.oauth2.issued[0]}"


def test_nothing_goes_to_v1_api_without_a_session(sim: Simulator) -> None:
    with _client(sim, init_oauth=False) as client:
        with pytest.raises(OAuth2Error, match="no OAuth 2.0 access token"):
            client.tickle()
        client.oauth2_access_token()
        with pytest.raises(OAuth2Error, match="nothing is sent to /v1/api"):
            client.tickle()
        assert _named(sim, "tickle") == []


def test_account_management_needs_oauth2_and_a_scope() -> None:
    with Simulator(oauth2=True) as plain_sim:
        with IbkrClient(url=plain_sim.url, pacing=False) as gateway_client:
            with pytest.raises(OAuth2Error, match="only with OAuth 2.0"):
                gateway_client.am_account_status("U1234567")
        config = plain_sim.oauth2_config(scope="sso-sessions.write", maintain_oauth=False, shutdown_oauth=False)
        with IbkrClient(use_oauth=True, oauth_config=config, pacing=False) as narrow:
            with pytest.raises(OAuth2Error, match="scope accounts.read"):
                narrow.am_account_status("U1234567")
        assert _named(plain_sim, "am_account_status") == []


def test_ssodh_init_falls_back_to_compete_false(sim: Simulator) -> None:
    sim.inject(
        "initialize_brokerage_session", "status", 500, body={"error": "failed to generate sso dh token"}, times=1
    )
    with _client(sim):
        bodies = [r.body for r in _named(sim, "initialize_brokerage_session")]
    assert bodies == [{"publish": True, "compete": True}, {"publish": True, "compete": False}]


def test_expired_session_gets_a_new_one_and_the_safe_request_again(sim: Simulator) -> None:
    assert sim.oauth2 is not None
    with _client(sim) as client:
        sim.oauth2.expire_sessions()
        sim.clear_requests()
        assert client.portfolio_accounts().data  # 401, new session, brokerage again, sent once more
        assert [r.status for r in _named(sim, "portfolio_accounts")] == [401, 200]
        assert sim.oauth2.sessions_opened == 2 and sim.oauth2.tokens_issued == 1
        assert [r.status for r in _named(sim, "initialize_brokerage_session")] == [200]


def test_expired_access_token_is_renewed_and_unsafe_requests_are_not_resent(sim: Simulator) -> None:
    assert sim.oauth2 is not None
    with _client(sim) as client:
        sim.oauth2.expire_access_tokens()
        assert client.am_account_status("U1234567").data["status"] == "O"
        assert [r.status for r in _named(sim, "am_account_status")] == [401, 200]
        assert sim.oauth2.tokens_issued == 2
        sim.oauth2.expire_access_tokens()
        with pytest.raises(NotAuthenticatedError):
            client.am_update_account({"accountId": "U1234567", "customer": {"email": "new@example.com"}})
        assert [r.status for r in _named(sim, "am_update_account")] == [401]  # sent once only
        assert sim.oauth2.tokens_issued == 3  # but renewed: the next call goes through
        client.am_update_account({"accountId": "U1234567", "customer": {"email": "new@example.com"}})


def test_both_expired_mid_run(sim: Simulator) -> None:
    assert sim.oauth2 is not None
    with _client(sim) as client:
        sim.oauth2.expire_all()
        assert client.tickle().data["session"]  # the session request is refused once: new token, new session
        assert (sim.oauth2.tokens_issued, sim.oauth2.sessions_opened) == (2, 2)


def test_rotated_key_gives_an_error_naming_the_token_endpoints_answer(sim: Simulator, other_key: RSA.RsaKey) -> None:
    assert sim.oauth2 is not None
    with _client(sim) as client:
        sim.oauth2.rotate_key(other_key.public_key().export_key().decode())
        sim.oauth2.expire_all()
        started = time.monotonic()
        with pytest.raises(OAuth2Error) as info:
            client.tickle()
        assert time.monotonic() - started < 5  # within the client's timeout
    assert info.value.step == "access token" and info.value.status_code == 401
    assert "access token request refused: HTTP 401 invalid_client" in str(info.value)


@pytest.mark.parametrize("skew", [-45.0, 45.0])
def test_clock_skew_within_a_minute_is_tolerated(skew: float) -> None:
    settings = OAuth2Settings(clock=lambda: time.time() + skew)
    with Simulator(oauth2=settings) as skewed:
        config = skewed.oauth2_config(maintain_oauth=False, shutdown_oauth=False)
        with IbkrClient(use_oauth=True, oauth_config=config, pacing=False) as client:
            assert client.tickle().data["session"]


def test_a_large_clock_skew_is_a_clear_error() -> None:
    with Simulator(oauth2=OAuth2Settings(clock=lambda: time.time() + 600)) as skewed:
        config = skewed.oauth2_config(maintain_oauth=False, shutdown_oauth=False)
        with pytest.raises(OAuth2Error, match="HTTP 401 invalid_client: the JWT has expired"):
            IbkrClient(use_oauth=True, oauth_config=config, pacing=False)


def test_tickle_reporting_no_session_opens_a_new_one(sim: Simulator) -> None:
    assert sim.oauth2 is not None
    with _client(sim) as client:
        sim.oauth2.expire_sessions()
        client.tickle()
        assert sim.oauth2.sessions_opened == 2
        assert client.tickle().data["session"]


def test_signed_jwt_bodies_are_verified_with_the_registered_key(sim: Simulator, other_key: RSA.RsaKey) -> None:
    assert sim.oauth2 is not None
    with _client(sim) as client:
        answer = client.echo_signed_jwt({"note": "hello"})
        assert answer.data["body"] == {"note": "hello"} and sim.oauth2.signed_bodies == 1
        received = _named(sim, "echo_signed_jwt")[0]
        assert received.headers["content-type"] == "application/jwt" and received.body == {"note": "hello"}
        # A body signed with another key under the registered kid is refused.
        with pytest.warns(UserWarning):
            forged_config = OAuth2Config(
                client_id="sim-client", client_key_id="sim-key-1", username="u", private_key=OTHER_KEY_PEM
            )
        forged = OAuth2Session(forged_config).sign_body({"note": "forged"})
        refused = requests.post(
            sim.gw_url + "echo/signed-jwt",
            data=forged,
            headers={"Content-Type": "application/jwt", "Authorization": f"Bearer {sim.oauth2.issued[0]}"},
            verify=sim.cacert,
            timeout=5,
        )
        assert refused.status_code == 401 and "does not verify" in refused.json()["detail"]


def test_transfers_move_through_their_statuses(sim: Simulator) -> None:
    with _client(sim) as client:
        move = {"sourceAccountId": "U1234567", "targetAccountId": "U7654321", "amount": 250, "currency": "USD"}
        made = client.am_internal_cash_transfer(
            {"instructionType": "INTERNAL_CASH_TRANSFER", "instruction": {"clientInstructionId": 11, **move}}
        ).data
        assert made["instructionResult"]["instructionStatus"] == "PENDING"
        instruction_id = made["instructionResult"]["instructionId"]
        done = client.am_instruction_status(instruction_id).data["instructionResult"]["instructionStatus"]
        assert done == "PROCESSED"
        with pytest.raises(Exception, match="409|used before"):  # a clientInstructionId is taken once
            client.am_internal_cash_transfer(
                {"instructionType": "INTERNAL_CASH_TRANSFER", "instruction": {"clientInstructionId": 11, **move}}
            )
        cancel = {"clientInstructionId": 12, "instructionId": instruction_id, "reason": "late"}
        with pytest.raises(Exception, match="422|cannot be cancelled"):
            client.am_cancel_instruction({"instructionType": "CANCEL_INSTRUCTION", "instruction": cancel})
        query = {"instructionType": "QUERY_WITHDRAWABLE_CASH_EQUITY"}
        balance = client.am_query_balances(
            {**query, "instruction": {"clientInstructionId": 13, "accountId": "U7654321", "currency": "USD"}}
        ).data
        assert balance["instructionResult"]["withdrawableCashAmount"] == 250


def test_websocket_session_under_oauth2(sim: Simulator) -> None:
    pytest.importorskip("websockets")
    from ibkr_sdk import IbkrWsClient

    with _client(sim) as client:
        ws = IbkrWsClient(ibkr_client=client, connect_timeout=5)
        try:
            assert ws.start()
            assert ws.tic() is not None
        finally:
            ws.shutdown()
        handshake = [r for r in sim.requests if r.endpoint == "ws"][0]
        assert handshake.status == 101 and handshake.headers["authorization"].startswith("Bearer sim-st-")


def test_shutdown_logs_out_and_forgets_the_tokens(sim: Simulator) -> None:
    with _client(sim) as client:
        client.oauth_shutdown()
        assert [r.status for r in _named(sim, "logout")] == [200]
        with pytest.raises(OAuth2Error):
            client.tickle()


def test_token_url_honours_the_ca_bundle_variables(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", sim.cacert)
    config = sim.oauth2_config(maintain_oauth=False, shutdown_oauth=False)
    with IbkrClient(use_oauth=True, oauth_config=config, cacert=True, pacing=False) as client:
        assert client.tickle().data["session"]


def test_no_secret_in_logs_reprs_errors_or_output(
    sim: Simulator, other_key: RSA.RsaKey, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    assert sim.oauth2 is not None
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            client = _client(sim)
        texts += [repr(client), repr(client.oauth_config), repr(client._oauth_signer)]
        client.echo_signed_jwt({"note": "x"})
        client.am_internal_cash_transfer(
            {
                "instructionType": "INTERNAL_CASH_TRANSFER",
                "instruction": {"clientInstructionId": 21, "sourceAccountId": "U1234567",
                                "targetAccountId": "U7654321", "amount": 1, "currency": "USD"},
            }
        )  # fmt: skip
        sim.oauth2.expire_all()
        client.tickle()
        sim.oauth2.rotate_key(other_key.public_key().export_key().decode())
        sim.oauth2.expire_all()
        with pytest.raises(OAuth2Error) as info:
            client.tickle()
        texts.append(str(info.value))
        client.close()
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text, *(r.getMessage() for r in caplog.records)]
    everything = "\n".join(texts)
    assert "-> POST" in caplog.text  # DEBUG logging was on
    secrets_seen = [*sim.oauth2.issued, *sim.oauth2.received_jwts]
    secrets_seen += [line for line in SIM_KEY.splitlines() if "-----" not in line]
    assert len(secrets_seen) > 10
    for secret in secrets_seen:
        assert secret not in everything
        for part in secret.split("."):  # not a JWT's signature or claims either
            assert len(part) < 16 or part not in everything


# --- pacing of /gw/api/v1 ------------------------------------------------------------------------------------------


def test_gw_pacing_per_endpoint_and_per_master_account() -> None:
    from ibkr_sdk.lib.endpoint import PacingBucket
    from ibkr_sdk.simulator._pacing import Pacer

    assert (PACING_BUCKETS["gw"].rate, PACING_BUCKETS["gw"].per) == (10, 1)
    assert (PACING_BUCKETS["gw_master_account"].rate, PACING_BUCKETS["gw_master_account"].per) == (600, 60)
    assert all(e.pacing == "gw" for e in ENDPOINTS.values() if e.base)
    now = [0.0]
    status = ENDPOINTS["am_account_status"]
    pacer = Pacer(PacingBucket("no global limit"), PACING_BUCKETS, clock=lambda: now[0])
    assert [pacer.enter(status) for _ in range(11)][-1] == "am_account_status limit of 10 requests per 1 s"
    pacer = Pacer(PacingBucket("no global limit"), PACING_BUCKETS, clock=lambda: now[0])
    gw = [e for e in ENDPOINTS.values() if e.base]
    admitted = []
    for second in range(60):  # ten a second, each to another endpoint: within every per-endpoint limit
        now[0] = float(second)
        admitted += [pacer.enter(gw[(second * 10 + i) % len(gw)]) for i in range(10)]
    assert admitted == [None] * 600
    now[0] = 59.5
    assert "master account limit of 600 requests per 60 s" in str(pacer.enter(gw[0]))
