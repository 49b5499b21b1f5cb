"""A loopback WebSocket gateway for the streaming tests, until/unless the simulator's WebSocket covers a case.

Speaks the gateway's protocol on 127.0.0.1: greeting and `sts` on connect, heartbeats, answers to each subscribe
topic, and fault switches (drop every connection, stall, send a malformed frame, end market-data streams after a
while). Every text frame received is recorded with the connection it came on.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, serve


class LoopbackGateway:
    def __init__(self, *, heartbeat: float = 0.2, md_interval: float = 0.02, smd_lifetime: float | None = None) -> None:
        self.heartbeat = heartbeat
        self.md_interval = md_interval
        self.smd_lifetime = smd_lifetime
        self.received: list[tuple[int, str]] = []  # (connection number, frame)
        self.cookies: list[str | None] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path with query, headers) of each handshake
        self.connections = 0
        self.stalled = False
        self.authenticated = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._live: set[ServerConnection] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/api/ws"

    def frames(self, prefix: str = "", connection: int | None = None) -> list[str]:
        return [f for c, f in list(self.received) if f.startswith(prefix) and (connection is None or c == connection)]

    # -- faults -----------------------------------------------------------------------------------------------------

    def drop(self) -> None:
        """Cut every open connection (no close frame)."""
        assert self._loop is not None
        for ws in list(self._live):
            self._loop.call_soon_threadsafe(ws.transport.abort)

    def send_raw(self, text: str) -> None:
        """Send `text` as a frame on every open connection."""
        assert self._loop is not None
        for ws in list(self._live):
            asyncio.run_coroutine_threadsafe(ws.send(text), self._loop).result(5)

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def __enter__(self) -> LoopbackGateway:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True, name="ws-gateway")
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            for ws in list(self._live):
                ws.transport.abort()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        number = self.connections
        self.cookies.append(ws.request.headers.get("Cookie") if ws.request else None)
        self.requests.append((ws.request.path, dict(ws.request.headers)) if ws.request else ("", {}))
        self._live.add(ws)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await ws.send(json.dumps({"topic": "system", "success": "testuser", "isPaper": True}))
            if not self.authenticated:
                await ws.send(json.dumps({"message": "waiting for session"}))
                while not self.authenticated:
                    await asyncio.sleep(0.02)
            await ws.send(json.dumps({"topic": "act", "args": {"accounts": ["DU1234567"]}}))
            await ws.send(json.dumps({"topic": "sts", "args": {"authenticated": True, "competing": False}}))
            tasks.append(asyncio.ensure_future(self._heartbeats(ws)))
            async for message in ws:
                text = str(message)
                self.received.append((number, text))
                if self.stalled:
                    continue
                tasks.extend(await self._answer(ws, text))
        except Exception:
            pass
        finally:
            self._live.discard(ws)
            for task in tasks:
                task.cancel()

    async def _heartbeats(self, ws: ServerConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            if not self.stalled:
                await ws.send(json.dumps({"topic": "system", "hb": int(time.time() * 1000)}))

    async def _answer(self, ws: ServerConnection, text: str) -> list[asyncio.Task[Any]]:
        head, _, rest = text.partition("+")
        target = rest.partition("+")[0]
        send = ws.send
        if head == "smd":
            return [asyncio.ensure_future(self._market_data(ws, target))]
        if head == "smh":
            await send(json.dumps({"topic": f"smh+{target}", "serverId": f"sid{target}", "data": [{"o": 1, "c": 2}]}))
        elif head == "umh":
            await send(json.dumps({"message": f"Unsubscribed {target}"}))
        elif head == "ssd":
            rows = [{"key": "AccountCode", "value": target, "timestamp": 1}, {"key": "NetLiq", "value": 1.0}]
            await send(json.dumps({"topic": f"ssd+{target}", "result": rows}))
        elif head == "usd":
            await send(json.dumps({"result": "unsubscribed from summary"}))
        elif head == "sld":
            await send(
                json.dumps({"topic": f"sld+{target}", "result": [{"acctCode": target, "key": "LedgerListBASE"}]})
            )
        elif head == "uld":
            await send(json.dumps({"result": "unsubscribed from ledger"}))
        elif head == "spl":
            await send(json.dumps({"topic": "spl", "args": {"DU1234567.Core": {"rowType": 1, "dpl": 1.5}}}))
        elif head == "str":
            await send(json.dumps({"topic": "str", "args": [{"execution_id": "e1", "symbol": "AAPL"}]}))
        elif head == "sbd":
            await send(json.dumps({"topic": text, "data": [{"row": 0, "price": "1.0", "bid": "100"}]}))
        elif head == "tic":
            await send(json.dumps({"topic": "tic", "alive": True, "lastAccessed": time.time()}))
        return []

    async def _market_data(self, ws: ServerConnection, conid: str) -> None:
        start = time.monotonic()
        i = 0
        while self.smd_lifetime is None or time.monotonic() - start < self.smd_lifetime:
            if not self.stalled:
                frame: dict[str, Any] = {"topic": f"smd+{conid}", "conid": int(conid), "_updated": i}
                frame["31" if i % 2 else "84"] = f"{100 + i / 100:.2f}"
                if i == 0:
                    frame["86"] = "101.00"
                await ws.send(json.dumps(frame))
                i += 1
            await asyncio.sleep(self.md_interval)
