"""Cost of OAuth 1.0a request signing (HMAC-SHA256 over the RFC 5849 base string) against the per-call cost of the
transport (IbkrClient.portfolio_accounts() on loopback), measured in the same run. Target: signing well under the
transport's cost; prints the ratio."""

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

ROUNDS = 15
CALLS = 200


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

    with FixedServer() as server:
        client = IbkrClient(url=f"http://127.0.0.1:{server.port}/v1/api/", max_retries=0, pacing=False)
        signing: list[float] = []
        calls: list[float] = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for _ in range(CALLS):
                sign()
            signing.append((time.perf_counter() - start) / CALLS)
            start = time.perf_counter()
            for _ in range(CALLS):
                client.portfolio_accounts()
            calls.append((time.perf_counter() - start) / CALLS)
        client.close()
    s, c = statistics.median(signing), statistics.median(calls)
    print(f"signing one request: {s * 1e6:.1f} us; one call through the transport: {c * 1e6:.1f} us")
    print(f"signing / transport = {s / c:.3f}")


if __name__ == "__main__":
    main()
