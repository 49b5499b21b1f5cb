"""A small HTTP server on 127.0.0.1 that records every request and answers from a route table.

Used by the wire tests until (and besides) the gateway simulator. Bounded: every socket has a timeout and the
server is shut down by the fixture that started it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    raw_body: bytes
    headers: dict[str, str]

    @property
    def body(self) -> Any:
        return json.loads(self.raw_body) if self.raw_body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    raw: bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering (a stalled response when above the client's timeout)
    reset: bool = False  # close the connection without answering
    headers: dict[str, str] = field(default_factory=dict)


class RecordingServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}  # per path, since the last reset
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default logging
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                rec = Recorded(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    raw,
                    {k: v for k, v in self.headers.items()},
                )
                with outer._lock:
                    outer.requests.append(rec)
                    queue = outer.routes.get((self.command, parts.path))
                    # Scripted answers are used in order; the last one repeats.
                    reply = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else Reply()
                    outer.in_flight[parts.path] = outer.in_flight.get(parts.path, 0) + 1
                    outer.max_in_flight[parts.path] = max(
                        outer.max_in_flight.get(parts.path, 0), outer.in_flight[parts.path]
                    )
                self._answer(reply, parts.path)

            def _done(self, path: str) -> None:
                # The request counts as in flight until its answer starts, as a server's own limit would see it.
                with outer._lock:
                    outer.in_flight[path] = max(0, outer.in_flight.get(path, 0) - 1)

            def _answer(self, reply: Reply, path: str) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                self._done(path)
                if reply.reset:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                head = (
                    f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}\r\n"
                    f"Content-Type: {reply.content_type}\r\nContent-Length: {len(payload)}\r\n{extra}\r\n"
                )
                # One write: separate header and body writes stall on Nagle + delayed ACK.
                self.wfile.write(head.encode() + payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on a stalled answer is expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/api/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.routes.clear()
            self.in_flight.clear()
            self.max_in_flight.clear()

    def reply(self, method: str, path: str, *replies: Reply) -> None:
        """Answer `method path` (below /v1/api) with these replies in turn; the last one repeats."""
        with self._lock:
            self.routes[(method, "/v1/api" + path)] = list(replies)

    def sent(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == "/v1/api" + path)
            ]
