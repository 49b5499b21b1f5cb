"""Per-call cost of `IbkrClient.portfolio_accounts()` against raw `http.client` and raw `requests.Session`.

All three talk to the same loopback server; rounds are interleaved so machine noise hits them alike. Prints the
median time per call and the ratios (lower is better). Target: IbkrClient <= raw requests.Session.
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._server import FixedServer  # noqa: E402
from ibkr_sdk import IbkrClient  # noqa: E402

ROUNDS = 15
CALLS = 200


def main() -> None:
    with FixedServer() as server:
        base = f"http://127.0.0.1:{server.port}/v1/api"
        # Pacing off: this measures the cost of a call, not IBKR's 10 req/s schedule (see bench_pacing.py).
        client = IbkrClient(url=base + "/", account_id="DU1234567", max_retries=0, pacing=False)
        session = requests.Session()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

        def ours() -> object:
            return client.portfolio_accounts().data

        def raw_requests() -> object:
            return session.get(base + "/portfolio/accounts", timeout=10).json()

        def raw_http_client() -> object:
            conn.request("GET", "/v1/api/portfolio/accounts", headers={"Accept": "application/json"})
            return json.loads(conn.getresponse().read())

        contenders = {"http.client": raw_http_client, "requests.Session": raw_requests, "IbkrClient": ours}
        expected = raw_http_client()
        for fn in contenders.values():
            assert fn() == expected
        samples: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(ROUNDS):
            for name, fn in contenders.items():
                start = time.perf_counter()
                for _ in range(CALLS):
                    fn()
                samples[name].append((time.perf_counter() - start) / CALLS)
        client.close()
        session.close()
        conn.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"per-call cost, median of {ROUNDS} interleaved rounds x {CALLS} calls (loopback HTTP):")
    for name, value in med.items():
        print(f"  {name:18s} {value * 1e6:8.1f} us   {value / med['http.client']:5.2f}x http.client")
    ratio = med["IbkrClient"] / med["requests.Session"]
    print(f"IbkrClient / requests.Session = {ratio:.2f} (target <= 1.00)")


if __name__ == "__main__":
    main()
