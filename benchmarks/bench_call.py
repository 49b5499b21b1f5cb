"""Per-call cost of `IbkrClient.portfolio_accounts()` against raw `http.client` and a bare `requests.Session`.

All three talk to the same loopback server; rounds are interleaved so machine noise hits them alike. The bare
session is configured as the client's is (environment not consulted per call, the same headers and timeout), so
the ratio IbkrClient / requests.Session is our own overhead per call: argument checks, the request record, retry
and pacing bookkeeping (pacing off), the `Result`. Prints the median time per call and the ratios (lower is
better). Target: IbkrClient / requests.Session <= 1.10.
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

ROUNDS = 21
CALLS = 200


def main() -> None:
    with FixedServer() as server:
        base = f"http://127.0.0.1:{server.port}/v1/api"
        # Pacing off: this measures the cost of a call, not IBKR's 10 req/s schedule (see bench_pacing.py).
        client = IbkrClient(url=base + "/", account_id="DU1234567", max_retries=0, pacing=False)
        session = requests.Session()
        session.trust_env = False  # as the client: the environment is resolved once, not on every call
        session.headers.update({"User-Agent": "ibkr_sdk", "Accept": "application/json"})
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
        cpu: dict[str, list[float]] = {k: [] for k in contenders}
        names = list(contenders)
        for round_no in range(ROUNDS):
            # Rotate the order each round, so no contender always runs right after another one's garbage.
            for name in names[round_no % 3 :] + names[: round_no % 3]:
                fn = contenders[name]
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(CALLS):
                    fn()
                samples[name].append((time.perf_counter() - start) / CALLS)
                cpu[name].append((time.process_time() - start_cpu) / CALLS)
        client.close()
        session.close()
        conn.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"per-call cost, median of {ROUNDS} interleaved rounds x {CALLS} calls (loopback HTTP):")
    print(f"  {'':18s} {'wall':>9s}            {'CPU (client + server threads)':>30s}")
    for name in contenders:
        print(
            f"  {name:18s} {med[name] * 1e6:8.1f} us {med[name] / med['http.client']:5.2f}x   "
            f"{med_cpu[name] * 1e6:8.1f} us {med_cpu[name] / med_cpu['http.client']:5.2f}x http.client"
        )
    ratio = med["IbkrClient"] / med["requests.Session"]
    ratio_cpu = med_cpu["IbkrClient"] / med_cpu["requests.Session"]
    # CPU time is what our code costs; wall time also carries the scheduling noise of a shared machine.
    print(f"IbkrClient / requests.Session: wall {ratio:.3f}, CPU {ratio_cpu:.3f} (our overhead; target <= 1.10)")


if __name__ == "__main__":
    main()
