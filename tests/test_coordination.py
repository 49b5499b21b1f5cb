"""Coordination within one test process: the counting rule, the settings, failures of the store (corrupt, not
permitted, unreachable) and what each means for reads and orders, the shared values (preflight, keep-alive,
live-orders snapshot), and `ibkr-sdk coordination`. Several processes: `test_coordination_fleet.py`."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from ibkr_sdk import CoordinationError, IbkrClient, QuestionType
from ibkr_sdk.lib import cli
from ibkr_sdk.lib.coordination import backend_for
from ibkr_sdk.lib.coordination.local import LocalBackend
from ibkr_sdk.lib.orders import _LiveOrdersFeed, _StoredSnapshots
from ibkr_sdk.lib.result import Result
from ibkr_sdk.lib.tickler import Tickler
from ibkr_sdk.simulator import Simulator
from tests.redis_server import available

ACCOUNT = "DU1234567"
MKT = {"conid": 265598, "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"}
NO_DATA = {QuestionType.MISSING_MARKET_DATA: True}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory of this test's own (a fresh `local` store)."""
    directory = tmp_path / "state"
    monkeypatch.setenv("IBKR_SDK_STATE_DIR", str(directory))
    return directory


def _sent(sim: Simulator, endpoint: str) -> int:
    return len([r for r in sim.requests if r.endpoint == endpoint])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


# --- the counting rule (issue item 4) -----------------------------------------------------------------------------


def test_a_request_counts_from_when_its_bytes_left_not_until_its_answer() -> None:
    """A slow answer no longer holds its place in the windows: the request counts from its departure plus the
    one-way delay (the lowest round trip seen, here a TCP handshake), so the next window opens a period after it.
    Only what a round trip takes beyond the usual one of its kind counts as a late arrival."""
    with (
        Simulator(pacing=True, latency=0.3) as sim,
        IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="process") as c,
    ):
        c.receive_brokerage_accounts()  # the first of its kind, on a new connection: counted until its answer
        first = list(c._transport.pacer._local_store._state.windows["<global>"][-1])
        started = time.monotonic()
        c.receive_brokerage_accounts()
        answered = time.monotonic()
        second = c._transport.pacer._local_store._state.windows["<global>"][-1]
    assert first[1] >= first[0] + 0.3, "counted until its answer"
    assert started <= second[1] <= answered - 0.25, "counted from its departure, not from its answer 0.3 s later"


# --- settings -----------------------------------------------------------------------------------------------------


def test_bad_settings_are_refused_naming_the_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"IbkrClient\(\): parameter 'coordination' must be 'local', 'process'"):
        IbkrClient(url="http://127.0.0.1:9/v1/api/", coordination="memcached://x")
    with pytest.raises(ValueError, match="coordination_fallback"):
        IbkrClient(url="http://127.0.0.1:9/v1/api/", coordination_fallback="local")
    with pytest.raises(ValueError, match=r"redis//u:\*\*\*@127\.0\.0\.1"):
        IbkrClient(url="http://127.0.0.1:9/v1/api/", coordination="redis//u:secret@127.0.0.1")  # no secret shown
    monkeypatch.setenv("IBKR_SDK_COORDINATION", "process")
    with IbkrClient(url="http://127.0.0.1:9/v1/api/") as c:
        assert c._transport.pacer.backend == "process"
    monkeypatch.delenv("IBKR_SDK_COORDINATION")
    with IbkrClient(url="http://127.0.0.1:9/v1/api/") as c:
        assert c._transport.pacer.backend == "local", "the default"


# --- failures of the store -----------------------------------------------------------------------------------------


def _corrupt_pacing_file(directory: Path, sim: Simulator) -> Path:
    with IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local") as c:
        c.tickle()  # creates the pacing file of this server
    (path,) = [p for p in directory.iterdir() if p.name.endswith(".pacing")]
    with path.open("r+b") as f:
        f.write(b"garbage!" * 8)
    return path


def test_a_corrupt_local_store_is_detected(sim: Simulator, state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _corrupt_pacing_file(state_dir, sim)
    sim.clear_requests()
    with IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local", pacing_time_scale=1.0) as c:
        with pytest.raises(CoordinationError, match="corrupt") as read:
            c.portfolio_accounts()
        assert str(path) in str(read.value) and read.value.store == str(path)
        with pytest.raises(CoordinationError, match=r"place_order\(\).*corrupt.*not placed") as order:
            c.place_order(MKT, NO_DATA)
        assert str(path) in str(order.value)
    assert sim.requests == [], "nothing was sent"
    with IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local", coordination_fallback="process") as c:
        with caplog.at_level(logging.WARNING, logger="ibkr_sdk"):
            assert c.receive_brokerage_accounts().data
            c.receive_brokerage_accounts()
        warnings = [r for r in caplog.records if "coordination store unusable" in r.getMessage()]
        assert len(warnings) == 1 and str(path) in warnings[0].getMessage(), "one warning per outage"
        with pytest.raises(CoordinationError, match="corrupt"):
            c.place_order(MKT, NO_DATA)
    assert _sent(sim, "place_order") == 0, "an order never falls back to per-process pacing"


def test_a_store_that_is_not_permitted_is_named(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("IBKR_SDK_STATE_DIR", str(blocked))
    with IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local") as c:
        with pytest.raises(CoordinationError, match="cannot use the coordination directory") as read:
            c.portfolio_accounts()
        assert str(blocked) in str(read.value)
        with pytest.raises(CoordinationError, match=r"place_order\(\).*Nothing was sent"):
            c.place_order(MKT, NO_DATA)
    assert sim.requests == []


@pytest.mark.skipif("redis-py" in available(), reason="redis-py is not installed (the redis extra)")
def test_redis_down_reads_raise_unless_the_fallback_is_chosen_orders_always_raise(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{_closed_port()}/0"
    with IbkrClient(url=sim.url, account_id=ACCOUNT, coordination=url) as c:
        with pytest.raises(CoordinationError, match=r"unreachable") as read:
            c.portfolio_accounts()
        assert "127.0.0.1" in str(read.value) and "hunter2" not in str(read.value)
        assert read.value.store.startswith("redis://:***@127.0.0.1:")
        with pytest.raises(CoordinationError, match=r"place_order\(\).*Nothing was sent"):
            c.place_order(MKT, NO_DATA)
    assert sim.requests == []
    with IbkrClient(url=sim.url, account_id=ACCOUNT, coordination=url, coordination_fallback="process") as c:
        with caplog.at_level(logging.WARNING, logger="ibkr_sdk"):
            assert c.portfolio_accounts().data
        assert any("coordination store unusable" in r.getMessage() for r in caplog.records)
        assert "hunter2" not in caplog.text
        with pytest.raises(CoordinationError):
            c.place_order(MKT, NO_DATA)
    assert _sent(sim, "place_order") == 0


# --- what is shared besides the windows ---------------------------------------------------------------------------


def test_clients_share_the_preflight_and_replace_a_marker_of_an_old_session(sim: Simulator, state_dir: Path) -> None:
    with (
        IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local", max_retries=0) as a,
        IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local", max_retries=0) as b,
    ):
        a.live_marketdata_snapshot(conids=["265598"], fields=["31"])
        b.live_marketdata_snapshot(conids=["265598"], fields=["31"])
        assert _sent(sim, "receive_brokerage_accounts") == 1, "one /iserver/accounts per session"
        sim._state.session.accounts_queried = False  # the gateway started a new session
        b.live_marketdata_snapshot(conids=["265598"], fields=["31"])
        assert _sent(sim, "receive_brokerage_accounts") == 2, "b ran the preflight again and says so to the others"
        a._preflight_done.clear()
        a.live_marketdata_snapshot(conids=["265598"], fields=["31"])
        assert _sent(sim, "receive_brokerage_accounts") == 2, "a trusts b's new marker"
    assert 429 not in [r.status for r in sim.requests]


def test_one_keep_alive_per_session(sim: Simulator, state_dir: Path) -> None:
    with (
        IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local") as a,
        IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local") as b,
    ):
        assert a._keepalive_claim(60.0) is True
        assert b._keepalive_claim(60.0) is False, "another client keeps the session alive"
        skipping = Tickler(b.tickle, 0.02)
        skipping.start()
        deadline = time.monotonic() + 5
        while skipping.skipped < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        skipping.stop()
    assert skipping.skipped >= 3 and skipping.ticks == 0 and _sent(sim, "tickle") == 0


def test_a_live_orders_snapshot_serves_the_reconciliations_of_other_processes(state_dir: Path) -> None:
    # Two feeds on two backend objects of one directory: two processes as far as the store is concerned.
    mine = _LiveOrdersFeed(_StoredSnapshots(LocalBackend(state_dir), "127.0.0.1:1:live_orders:DU1"))
    theirs = _LiveOrdersFeed(_StoredSnapshots(LocalBackend(state_dir), "127.0.0.1:1:live_orders:DU1"))
    lost_at = time.monotonic() - 0.1  # the order's answer was lost 100 ms before the snapshot was taken
    mine.offer(Result(data={"orders": [{"order_ref": "x"}]}), time.monotonic())
    fetched: list[int] = []
    value, why = theirs.snapshot(lost_at, lambda: fetched.append(1))
    assert why == "" and value is not None and value.data == {"orders": [{"order_ref": "x"}]}
    assert fetched == [], "no live_orders request of its own"


def test_the_order_flow_is_one_lease_per_server_and_account(sim: Simulator, state_dir: Path) -> None:
    with IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local") as c:
        lease = backend_for("local").lease(f"127.0.0.1:{sim.port}:orders:{ACCOUNT}")
        other = LocalBackend(state_dir).lease(f"127.0.0.1:{sim.port}:orders:{ACCOUNT}")  # "another process"
        token = other.try_acquire(6)
        assert token is not None and lease.holder() is not None
        done = threading.Event()
        thread = threading.Thread(target=lambda: (c.place_order(MKT, NO_DATA), done.set()))
        thread.start()
        time.sleep(0.2)
        assert not done.is_set() and _sent(sim, "place_order") == 0, "waits while another process holds the flow"
        other.release(token)
        thread.join(10)
    assert done.is_set() and len(sim.orders) == 1


# --- ibkr-sdk coordination ----------------------------------------------------------------------------------------


def test_the_coordination_command_shows_windows_and_the_order_flow_holder(sim: Simulator, state_dir: Path) -> None:
    with IbkrClient(url=sim.url, account_id=ACCOUNT, coordination="local", pacing_time_scale=5) as c:
        c.portfolio_accounts()
        lease = LocalBackend(state_dir).lease(f"127.0.0.1:{sim.port}:orders:{ACCOUNT}")
        token = lease.try_acquire(6)
        out = io.StringIO()
        with redirect_stdout(out):
            status = cli.main(["--url", sim.url, "--account", ACCOUNT, "coordination", "--pacing-time-scale", "5"])
        assert token is not None
        lease.release(token)
    report: dict[str, Any] = json.loads(out.getvalue())
    assert status == 0 and report["backend"] == "local" and report["store"] == str(state_dir)
    assert report["windows"]["portfolio_accounts"]["counted"] == 1
    assert report["windows"]["portfolio_accounts"]["next_in"] > 0
    assert report["order_flow"]["account"] == ACCOUNT and report["order_flow"]["holder"]["token"] == token
    assert sim.requests[-1].endpoint == "portfolio_accounts", "the command sent nothing"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_opens_its_own_descriptors(state_dir: Path) -> None:
    """Inherited descriptors share their flock with the parent and would not exclude it: a forked child (a web
    server's workers) opens its own on first use."""
    import fcntl

    from ibkr_sdk._endpoint_table import GLOBAL_LIMITS, PACING_BUCKETS
    from ibkr_sdk.lib.coordination import Grant
    from ibkr_sdk.lib.pacing import Pacer

    pacer = Pacer(PACING_BUCKETS, GLOBAL_LIMITS["gateway"], coordination=LocalBackend(state_dir), key="h:1")
    pacer.release(pacer.try_acquire(None))  # type: ignore[arg-type]
    store: Any = pacer._shared_store()
    parent_fd = store._fd
    to_parent, to_child = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: lock through its own descriptor, wait for the parent's verdict, leave at once
        try:
            if isinstance(pacer.try_acquire(None), Grant):
                fcntl.flock(store._fd, fcntl.LOCK_EX)
                os.write(to_parent[1], b"1")
                os.read(to_child[0], 1)
        finally:
            os.write(to_parent[1], b"0")
            os._exit(0)
    try:
        assert os.read(to_parent[0], 1) == b"1"
        with pytest.raises(BlockingIOError):  # the child's lock excludes the parent: separate descriptions
            fcntl.flock(parent_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.write(to_child[1], b"x")
        os.waitpid(pid, 0)
    assert isinstance(pacer.try_acquire(None), Grant) and store._fd == parent_fd


def test_a_new_simulator_on_a_port_an_earlier_one_used_gets_its_preflight(state_dir: Path) -> None:
    """The preflight marker is per host:port; a new simulated gateway on a port an earlier one served is a new
    session, so its clients send /iserver/accounts themselves rather than have their first order refused and sent
    again (a real gateway restart keeps the marker: the clients recover from the refusal)."""
    with Simulator() as first:
        port = first.port
        with IbkrClient(url=first.url, account_id="DU1234567", pacing=False) as client:
            client.live_orders()  # its preflight leaves the marker for the other clients of this session
    with Simulator(port=port) as second:
        with IbkrClient(url=second.url, account_id="DU1234567", pacing=False) as client:
            client.place_order(
                {"conid": 265598, "side": "BUY", "orderType": "MKT", "quantity": 1, "tif": "DAY"},
                {QuestionType.MISSING_MARKET_DATA: True},
            )
        sent = [r.endpoint for r in second.requests if r.endpoint in ("receive_brokerage_accounts", "place_order")]
    assert sent == ["receive_brokerage_accounts", "place_order"]
