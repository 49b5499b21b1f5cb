"""Cost of OAuth request signing against the per-call cost of the transport (IbkrClient.portfolio_accounts() on
loopback), measured in the same run. Target: signing well under the transport's cost; prints the ratios.

- OAuth 1.0a: HMAC-SHA256 over the RFC 5849 base string, on every request.
- OAuth 2.0: on every request only the bearer header (the token is chosen by URL); a SIGNED_JWT operation of
  /gw/api/v1 also signs its body (RS256 with the client's key).
- OAuth 2.0 set-up: getting the access token (a signed assertion, one POST) and opening the SSO session (a signed
  JWT, one POST), against the simulator's OAuth 2.0 authority on loopback (which verifies both signatures)."""

from __future__ import annotations

import base64
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._server import FixedServer  # noqa: E402
from ibkr_sdk import IbkrClient  # noqa: E402
from ibkr_sdk.lib import oauth  # noqa: E402
from ibkr_sdk.lib.oauth2 import OAuth2Session  # noqa: E402
from ibkr_sdk.simulator import Simulator  # noqa: E402

ROUNDS = 15
CALLS = 200
SETUP_ROUNDS = 30


def main() -> None:
    lst = base64.b64encode(bytes(range(20))).decode()
    params = {"conids": "265598,8314", "fields": "31,84,86"}
    url = "https://api.ibkr.com/v1/api/iserver/marketdata/snapshot"

    def sign() -> object:
        header = {
            "oauth_consumer_key": "TESTCONS",
            "oauth_nonce": oauth.generate_nonce(),
            "oauth_signature_method": "HMAC-SHA256",
            "oauth_timestamp": str(oauth.generate_timestamp()),
            "oauth_token": "a1b2c3d4e5f6a7b8c9d0",
        }
        base = oauth.base_string("GET", url, header, query=params)
        header["oauth_signature"] = oauth.hmac_sha256_signature(base, lst)
        return oauth.authorization_header(header, "limited_poa")

    with Simulator(oauth2=True) as sim:
        config = sim.oauth2_config(init_oauth=False, maintain_oauth=False, shutdown_oauth=False)
        oauth2_client = IbkrClient(use_oauth=True, oauth_config=config, max_retries=0, pacing=False)
        session = oauth2_client._oauth2
        assert isinstance(session, OAuth2Session)
        tokens: list[float] = []
        sessions: list[float] = []
        for _ in range(SETUP_ROUNDS):
            start = time.perf_counter()
            oauth2_client.oauth2_access_token()
            tokens.append(time.perf_counter() - start)
            start = time.perf_counter()
            oauth2_client.create_sso_session()
            sessions.append(time.perf_counter() - start)
        oauth2_client.close()

    def bearer() -> object:
        return session.bearer(url)

    def signed_body() -> object:
        return session.sign_body({"instructionType": "INTERNAL_CASH_TRANSFER", "instruction": params})

    with FixedServer() as server:
        client = IbkrClient(url=f"http://127.0.0.1:{server.port}/v1/api/", max_retries=0, pacing=False)
        signing: list[float] = []
        bearing: list[float] = []
        bodies: list[float] = []
        calls: list[float] = []
        for _ in range(ROUNDS):
            for fn, out, count in ((sign, signing, CALLS), (bearer, bearing, CALLS), (signed_body, bodies, 20)):
                start = time.perf_counter()
                for _ in range(count):
                    fn()
                out.append((time.perf_counter() - start) / count)
            start = time.perf_counter()
            for _ in range(CALLS):
                client.portfolio_accounts()
            calls.append((time.perf_counter() - start) / CALLS)
        client.close()
    s, c = statistics.median(signing), statistics.median(calls)
    b, j = statistics.median(bearing), statistics.median(bodies)
    t, e = statistics.median(tokens), statistics.median(sessions)
    print(f"signing one request: {s * 1e6:.1f} us; one call through the transport: {c * 1e6:.1f} us")
    print(f"signing / transport = {s / c:.3f}")
    print(f"OAuth 2.0 per request (bearer header): {b * 1e6:.2f} us; OAuth 1.0a signing: {s * 1e6:.1f} us")
    print(f"OAuth 2.0 / OAuth 1.0a per-request signing = {b / s:.3f}; OAuth 2.0 bearer / transport = {b / c:.4f}")
    print(f"OAuth 2.0 SIGNED_JWT body (RS256, 3072-bit key): {j * 1e6:.0f} us = {j / c:.2f} x one transport call")
    print(
        f"OAuth 2.0 access token: {t * 1e3:.2f} ms; SSO session: {e * 1e3:.2f} ms; "
        f"together = {(t + e) / c:.1f} x one transport call (once per session, again on expiry or a 401)"
    )


if __name__ == "__main__":
    main()
