"""Streaming: market-data frames decoded, merged and delivered per second, latency, and memory under a burst.

A loopback frame source (a WebSocket server in its own process, with the gateway simulator answering `/tickle`)
speaks the gateway's protocol: greeting, `sts` authenticated, then market-data frames for the `smd` subscription.
Each client runs in its own process with a `QueueSink` and a consumer thread, and is measured on three scenarios:

- throughput: a burst of frames as fast as the source sends; frames delivered to the consumer per second;
- latency: frames paced at 5,000/s; time from the source's send to the consumer, p50/p99;
- memory: a 20,000-frame (and a 100,000-frame) burst with a consumer that never reads: peak RSS.

Columns: ours (`ibkr_sdk.IbkrWsClient`) and, in the same run, the peer's `ibind.IbkrWsClient` when it can be
imported (from the environment, `IBKR_SDK_BENCH_PEER_PATH`, or a throwaway `pip install --target` into a temporary
directory; skipped with a message otherwise). Targets: ours >= 5x the peer's throughput, p99 <= 10 ms at 5,000
frames/s, memory bounded (peak RSS the same order for 20,000 and 100,000 unread frames).
The throughput ratio is printed twice: from the two medians, and within each round (the two runs of a round are
adjacent in time, so load from elsewhere on the machine skews that ratio less).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONID = "265598"
FIELDS = ["31", "84", "86", "85", "88", "7059"]
STAMP_FIELD = "7295"  # a field both clients pass through by name: carries the source's send time (ns)
THROUGHPUT_FRAMES = 20_000
LATENCY_RATE = 5_000
LATENCY_FRAMES = 10_000
MEMORY_FRAMES = (20_000, 100_000)
PEER_VERSION = "0.2.2"
ROUNDS = 3  # throughput and latency: the median of this many interleaved runs per client


# -- the frame source (its own process) -----------------------------------------------------------------------------


def _frame(i: int) -> str:
    price = 190.0 + (i % 200) / 100
    if i % 3 == 0:  # partial frames: most carry only some of the fields, as the gateway sends them
        body = f'"31":"{price:.2f}","7059":"{100 + i % 7}"'
    elif i % 3 == 1:
        body = f'"84":"{price - 0.01:.2f}","88":"{1000 + i % 50}"'
    else:
        body = f'"86":"{price + 0.01:.2f}","85":"{900 + i % 40}","31":"{price:.2f}"'
    return (
        f'{{"topic":"smd+{CONID}","conid":{CONID},"conidEx":"{CONID}","server_id":"q0",'
        f'"_updated":{1_700_000_000_000 + i},{body},"{STAMP_FIELD}":"%d"}}'
    )


def _ws_frame(text: str) -> bytes:
    """One unmasked server-to-client text frame (RFC 6455)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


async def _serve_connection(ws: Any) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        await _stream_to(ws)
    except ConnectionClosed:  # the client finished and left
        pass


async def _stream_to(ws: Any) -> None:
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(ws.request.path).query)
    mode = query.get("mode", ["burst"])[0]
    count = int(query.get("n", ["1000"])[0])
    rate = float(query.get("rate", ["0"])[0])
    await ws.send(json.dumps({"topic": "system", "success": "bench", "isFT": False, "isPaper": True}))
    await ws.send(json.dumps({"topic": "sts", "args": {"authenticated": True, "competing": False}}))
    templates = [_frame(i) for i in range(min(count, 1000))]
    async for message in ws:
        if not str(message).startswith("smd+"):
            continue
        await asyncio.sleep(0.2)  # let the client settle after its subscription
        transport = ws.transport
        start = time.perf_counter()
        i = 0
        while i < count:
            # Frames go to the socket in batches of ready-made WebSocket frames, so the source is not what limits.
            if mode == "paced":
                due = start + i / rate
                while (ahead := due - time.perf_counter()) > 0:
                    await asyncio.sleep(ahead if ahead > 0.002 else 0)
                batch = 1
            else:
                batch = min(200, count - i)
            now = time.monotonic_ns()
            transport.write(b"".join(_ws_frame(templates[(i + k) % len(templates)] % now) for k in range(batch)))
            i += batch
            while transport.get_write_buffer_size() > 1 << 20:
                await asyncio.sleep(0.001)
        await ws.send(json.dumps({"topic": "system", "hb": int(time.time() * 1000), "bench_done": count}))


def serve() -> None:
    from websockets.asyncio.server import serve as ws_serve

    from ibkr_sdk.simulator import Simulator

    async def run() -> None:
        with Simulator() as sim:
            async with ws_serve(_serve_connection, "127.0.0.1", 0, compression=None, max_queue=None) as server:
                port = server.sockets[0].getsockname()[1]
                print(json.dumps({"ws": f"ws://127.0.0.1:{port}/v1/api/ws", "rest": sim.url}), flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes

    asyncio.run(run())


# -- one client run (its own process) -------------------------------------------------------------------------------


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def client_run(which: str, ws_url: str, rest_url: str, mode: str, count: int, rate: float) -> dict[str, Any]:
    url = f"{ws_url}?mode={mode}&n={count}&rate={rate}"
    if which == "ours":
        from ibkr_sdk import IbkrClient, IbkrWsClient, QueueSink, events
        from ibkr_sdk.subscriptions import MarketDataSubscription

        sink: Any = QueueSink(maxsize=10_000)
        rest = IbkrClient(url=rest_url, account_id="DU1234567", pacing=False)
        client: Any = IbkrWsClient(url=url, ibkr_client=rest, sink=sink, account_id="DU1234567")
    else:
        import logging

        logging.getLogger("ibind").setLevel(logging.CRITICAL)
        from ibind import IbkrClient as PeerClient, IbkrWsClient as PeerWs, QueueSink as PeerSink, events
        from ibind.subscriptions import MarketDataSubscription

        sink = PeerSink(maxsize=10_000)
        rest = PeerClient(url=rest_url, account_id="DU1234567", cacert=False, use_oauth=False)
        client = PeerWs(url=url, ibkr_client=rest, sink=sink, account_id="DU1234567", use_oauth=False)
    consume = mode != "hold"
    latencies: list[int] = []
    received = [0]
    first_sent = [0]
    last_seen = [0]
    done = threading.Event()

    def consumer() -> None:
        md, system = events.MarketData, events.System
        while not done.is_set():
            if consume:
                event = sink.get(md, block=True, timeout=0.05)
                if event is not None:
                    now = time.monotonic_ns()
                    sent = int(_stamp(event.data))
                    if not first_sent[0]:
                        first_sent[0] = sent
                    latencies.append(now - sent)
                    received[0] += 1
                    last_seen[0] = now
                    if received[0] >= count:
                        done.set()
                    continue
            else:
                time.sleep(0.02)
            sys_event = sink.get(system, block=False)
            if sys_event is not None and "bench_done" in sys_event.data:
                if not consume or received[0] >= count:
                    done.set()

    assert client.start(), "the client did not become ready"
    baseline_rss = _rss_kb()
    reader = threading.Thread(target=consumer, daemon=True)
    reader.start()
    client.subscribe(MarketDataSubscription(conid=CONID, fields=FIELDS))
    finished = done.wait(120)
    time.sleep(0.3 if not consume else 0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    done.set()
    reader.join(2)
    client.shutdown()
    out: dict[str, Any] = {"finished": finished, "received": received[0], "peak_rss_mb": peak_kb / 1024}
    out["baseline_rss_mb"] = baseline_rss / 1024
    if latencies:
        latencies.sort()
        out["p50_ms"] = latencies[len(latencies) // 2] / 1e6
        out["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e6
        elapsed = (last_seen[0] - first_sent[0]) / 1e9
        out["frames_per_s"] = received[0] / elapsed if elapsed > 0 else 0.0
    if which == "ours":
        out["dropped"] = sum(client.stats()["dropped"].values())
    return out


def _stamp(data: dict[str, Any]) -> str:
    for value in data.values():  # the field name differs between the clients; the stamp is the only big number
        if isinstance(value, str) and len(value) > 12 and value.isdigit():
            return value
    raise KeyError(STAMP_FIELD)


# -- the orchestrator -----------------------------------------------------------------------------------------------


def _peer_path() -> str | None:
    """A directory from which `ibind` imports, or None (with the reason printed)."""
    probe = "import ibind, ibind.ibkr_ws.ibkr_ws_client"
    env = os.environ.get("IBKR_SDK_BENCH_PEER_PATH")
    candidates = [env] if env else []
    if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0:
        return ""
    target = Path(tempfile.gettempdir()) / f"ibkr-sdk-bench-ibind-{PEER_VERSION}"
    candidates.append(str(target))
    for path in candidates:
        if subprocess.run([sys.executable, "-c", probe], capture_output=True, env=_env(path)).returncode == 0:
            return path
    print(f"installing the peer (ibind=={PEER_VERSION}) into {target} for this run ...", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), f"ibind=={PEER_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode == 0 and subprocess.run([sys.executable, "-c", probe], env=_env(str(target))).returncode == 0:
        return str(target)
    print(f"peer column skipped: ibind=={PEER_VERSION} could not be installed ({done.stderr.strip()[-200:]})")
    return None


def _env(peer_path: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if peer_path:
        env["PYTHONPATH"] = peer_path + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run_client(which: str, urls: dict[str, str], mode: str, count: int, rate: float, peer: str | None) -> Any:
    args = [sys.executable, __file__, "--client", which, "--ws", urls["ws"], "--rest", urls["rest"]]
    args += ["--mode", mode, "--count", str(count), "--rate", str(rate)]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=240, env=_env(peer if which == "peer" else None)
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    peer = _peer_path()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        urls = json.loads(server.stdout.readline())
        contenders = ["ours"] + (["peer"] if peer is not None else [])
        results: dict[str, dict[str, Any]] = {c: {} for c in contenders}
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(ROUNDS):  # interleaved, so load from elsewhere on the machine hits both columns alike
            for who in contenders:
                runs.setdefault((who, "throughput"), []).append(
                    _run_client(who, urls, "burst", THROUGHPUT_FRAMES, 0, peer)
                )
                runs.setdefault((who, "latency"), []).append(
                    _run_client(who, urls, "paced", LATENCY_FRAMES, LATENCY_RATE, peer)
                )
        if "peer" in contenders:  # each round's two runs are adjacent in time: their ratio is the steadier figure
            pairs = zip(runs[("ours", "throughput")], runs[("peer", "throughput")], strict=True)
            ratios = sorted(
                a["frames_per_s"] / b["frames_per_s"]
                for a, b in pairs
                if a.get("frames_per_s") and b.get("frames_per_s")
            )
            results["peer"]["round_ratios"] = {"values": ratios}
        for (who, scenario), values in runs.items():
            key = "frames_per_s" if scenario == "throughput" else "p99_ms"
            ok = [v for v in values if key in v]
            ok.sort(key=lambda v: v[key])
            results[who][scenario] = ok[len(ok) // 2] if ok else values[0]  # the median run
        for who in contenders:
            for n in MEMORY_FRAMES:
                results[who][f"hold{n}"] = _run_client(who, urls, "hold", n, 0, peer)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)
    _report(results)


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "n/a"


def _report(results: dict[str, dict[str, Any]]) -> None:
    print(
        "market-data frames over a loopback WebSocket (each client in its own process, QueueSink + a consumer; "
        f"throughput and latency: median of {ROUNDS} interleaved runs):"
    )
    header = f"{'':44}" + "".join(f"{who:>16}" for who in results)
    print(header)
    rows = [
        (f"throughput, {THROUGHPUT_FRAMES:,}-frame burst (frames/s)", "throughput", "frames_per_s", ",.0f"),
        ("  p50 latency in that burst (ms)", "throughput", "p50_ms", ".2f"),
        (f"latency at {LATENCY_RATE:,} frames/s, p50 (ms)", "latency", "p50_ms", ".3f"),
        (f"latency at {LATENCY_RATE:,} frames/s, p99 (ms)", "latency", "p99_ms", ".3f"),
        ("  frames delivered of 10,000", "latency", "received", ",d"),
    ]
    for n in MEMORY_FRAMES:
        rows.append((f"peak RSS, {n:,} frames never read (MB)", f"hold{n}", "peak_rss_mb", ".1f"))
        rows.append(("  RSS before that burst (MB)", f"hold{n}", "baseline_rss_mb", ".1f"))
    for label, scenario, key, spec in rows:
        cells = "".join(f"{_fmt(results[w].get(scenario, {}).get(key), spec):>16}" for w in results)
        print(f"{label:44}{cells}")
    for who, res in results.items():
        for scenario, values in res.items():
            if "error" in values or values.get("finished") is False:
                print(f"note: {who} {scenario}: {values.get('error') or 'did not finish within the time limit'}")
    ours = results["ours"]
    drops = ours.get(f"hold{MEMORY_FRAMES[-1]}", {}).get("dropped")
    if drops is not None:
        print(f"ours: {drops:,} events dropped (counted, reported by stats()) with a 10,000-event queue never read")
    if "peer" in results:
        a = ours["throughput"].get("frames_per_s")
        b = results["peer"]["throughput"].get("frames_per_s")
        if a and b:
            print(f"throughput ratio ours/peer: {a / b:.1f}x (target >= 5x)")
        ratios = results["peer"].get("round_ratios", {}).get("values")
        if ratios:
            each = ", ".join(f"{r:.1f}x" for r in ratios)
            print(f"throughput ratio ours/peer within each round: {each} (median {ratios[len(ratios) // 2]:.1f}x)")
    else:
        print("peer column skipped (ibind not importable or installable)")
    p99 = ours["latency"].get("p99_ms")
    if p99 is not None:
        print(f"ours p99 at {LATENCY_RATE:,} frames/s: {p99:.2f} ms (target <= 10 ms)")
    small, large = (ours.get(f"hold{n}", {}).get("peak_rss_mb") for n in MEMORY_FRAMES)
    if small and large:
        print(
            f"ours memory bound: peak RSS {small:.1f} MB at {MEMORY_FRAMES[0]:,} unread frames, {large:.1f} MB at "
            f"{MEMORY_FRAMES[1]:,} ({'bounded' if large < small * 1.5 else 'GROWS'})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--client", choices=["ours", "peer"])
    parser.add_argument("--ws")
    parser.add_argument("--rest")
    parser.add_argument("--mode", default="burst")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0)
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if options.serve:
        serve()
    elif options.client:
        result = client_run(options.client, options.ws, options.rest, options.mode, options.count, options.rate)
        print(json.dumps(result))
    else:
        main()
