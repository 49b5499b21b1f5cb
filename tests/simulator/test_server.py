"""The server itself: start-up time, independence of instances, concurrency, pacing, the CLI, the pytest plugin."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import AAPL, ACCOUNT, answer_all, make_client


def test_start_is_fast_and_url_is_loopback() -> None:
    started = time.monotonic()
    sim = Simulator().start()
    try:
        elapsed = time.monotonic() - started
        assert elapsed < 5  # well under a second in practice; loose for slow CI machines
        assert sim.url == f"http://127.0.0.1:{sim.port}/v1/api/"
        with make_client(sim) as api:
            assert api.tickle().data["iserver"]["authStatus"]["authenticated"] is True
    finally:
        sim.stop()
    sim.stop()  # idempotent
    assert not sim.running


def test_lifecycle_errors() -> None:
    sim = Simulator()
    with pytest.raises(RuntimeError):
        _ = sim.url
    with sim:
        with pytest.raises(RuntimeError):
            sim.start()
    with pytest.raises(ValueError):
        Simulator(accounts=[])
    with pytest.raises(ValueError):
        Simulator(latency=-1)


def test_two_simulators_share_nothing(client_for: Callable[..., IbkrClient]) -> None:
    with Simulator() as one, Simulator() as two:
        assert one.port != two.port
        a, b = client_for(one), client_for(two)
        a.live_marketdata_snapshot(conids=str(AAPL), fields="31")
        a._place_order(orders=[{"conid": AAPL, "orderType": "MKT", "quantity": 3, "side": "BUY", "tif": "DAY"}])
        a.create_watchlist("7", "mine", [{"C": str(AAPL)}])
        assert len(one.orders) == 1 and two.orders == []
        assert b.positions().data == [] and a.positions().data[0]["position"] == 3.0
        assert b.get_all_watchlists().data["data"]["user_lists"] == []
        # Market data streams are per simulator too: the first snapshot on `two` is a pre-flight.
        assert b.live_marketdata_snapshot(conids=str(AAPL), fields="31").data == [{"conid": AAPL, "conidEx": str(AAPL)}]
        b.logout()
        assert a.tickle().data["iserver"]["authStatus"]["authenticated"] is True
        assert len(two.requests) != len(one.requests)


def test_eight_concurrent_clients(sim: Simulator) -> None:
    rounds = 5

    def session(index: int) -> int:
        with make_client(sim) as api:
            api.live_marketdata_snapshot(conids=str(AAPL), fields=["31", "84", "86"])
            for _ in range(rounds):
                api.tickle()
                assert api.live_marketdata_snapshot(conids=str(AAPL), fields="31").data[0]["conid"] == AAPL
                ticket = {"conid": AAPL, "orderType": "MKT", "quantity": 1, "side": "BUY", "tif": "DAY"}
                answer, _ = answer_all(api, api._place_order(orders=[ticket]).data)
                assert answer[0]["order_status"] == "Filled"
                api.positions()
        return index

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = [f.result(timeout=30) for f in [pool.submit(session, i) for i in range(8)]]
    assert sorted(done) == list(range(8))
    assert len(sim.orders) == 8 * rounds
    with make_client(sim) as api:
        assert api.positions().data[0]["position"] == 8.0 * rounds


def test_pacing_global_limit() -> None:
    with Simulator(pacing=True) as sim, make_client(sim) as api:
        statuses = []
        for _ in range(14):
            try:
                api.contract_information_by_conid(str(AAPL))
                statuses.append(200)
            except ExternalBrokerError as exc:
                statuses.append(exc.status_code or 0)
        assert statuses[:10] == [200] * 10
        assert 429 in statuses[10:]
        assert any(r.status == 429 for r in sim.requests)


def test_pacing_history_concurrency() -> None:
    with Simulator(pacing=True, latency=0.4) as sim:
        barrier = threading.Barrier(6, timeout=10)

        def fetch(_: int) -> int:
            with make_client(sim) as api:
                barrier.wait()
                try:
                    api.marketdata_history_by_conid(conid=str(AAPL), bar="1h", period="1d")
                    return 200
                except ExternalBrokerError as exc:
                    return exc.status_code or 0

        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = sorted(pool.map(fetch, range(6), timeout=30))
        assert statuses == [200] * 5 + [429]


def test_no_pacing_by_default(sim: Simulator, api: IbkrClient) -> None:
    for _ in range(25):
        api.contract_information_by_conid(str(AAPL))
    assert all(r.status == 200 for r in sim.requests)


def test_command_line_runs_until_interrupted() -> None:
    src = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibkr_sdk.simulator", "--port", "0", "--accounts", "DU7654321", "--http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=src,
        env=env,
        # SIGINT must reach it even under a shell that ignores it in background jobs (the child would inherit that).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.put(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    try:
        banner = lines.get(timeout=120)  # a hang bound: starting takes a second, minutes on a starved machine
        url = next(word for word in banner.split() if word.startswith("http://127.0.0.1:"))
        with IbkrClient(url=url, account_id="DU7654321", timeout=5, max_retries=0) as api:
            assert api.portfolio_accounts().data[0]["id"] == "DU7654321"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0  # a hang bound, not a speed check
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "ibkr-sdk-simulator"
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--port" in out.stdout


def test_plugin_fixtures(ibkr_simulator: Simulator, ibkr_client: IbkrClient) -> None:
    assert ibkr_client.base_url == ibkr_simulator.url and ibkr_client.account_id == ACCOUNT
    assert ibkr_client.receive_brokerage_accounts().data["selectedAccount"] == ACCOUNT
    assert ibkr_simulator.requests[-1].endpoint == "receive_brokerage_accounts"


@pytest.mark.ibkr_simulator(accounts=["DU5555555"], seed=3)
def test_plugin_marker_configures_the_simulator(ibkr_simulator: Simulator, ibkr_client: IbkrClient) -> None:
    assert ibkr_simulator.accounts == ["DU5555555"] and ibkr_client.account_id == "DU5555555"
    assert ibkr_client.portfolio_accounts().data[0]["id"] == "DU5555555"


def test_https_with_the_self_signed_certificate() -> None:
    import ssl

    import pytest

    from ibkr_sdk import ApiConnectionError, IbkrClient
    from ibkr_sdk.simulator import Simulator

    with Simulator(https=True) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        with IbkrClient(url=sim.url, cacert=sim.cacert, max_retries=0, pacing=False) as verified:
            assert verified.authentication_status().data["authenticated"] is True
        with IbkrClient(url=sim.url, cacert=False, max_retries=0, pacing=False) as unverified:
            assert unverified.tickle().data is not None
        with IbkrClient(url=sim.url, cacert=True, max_retries=0, pacing=False) as strict:
            with pytest.raises(ApiConnectionError):
                strict.tickle()  # the system store does not trust the test certificate
        assert ssl.get_server_certificate(("127.0.0.1", sim.port))


def test_a_failed_tls_handshake_closes_the_socket() -> None:
    import gc
    import socket
    import warnings

    with Simulator(https=True) as sim, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as raw:
            raw.sendall(b"GET /v1/api/tickle HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to the TLS port
            try:
                while raw.recv(4096):  # the server answers nothing (or a TLS alert) and closes the connection
                    pass
            except ConnectionResetError:
                pass
        deadline = time.monotonic() + 5
        while sim._server is not None and sim._server._workers and time.monotonic() < deadline:
            time.sleep(0.01)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
