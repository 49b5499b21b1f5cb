"""A small HTTP server on 127.0.0.1 that records every request and answers from a route table.

Used by the wire tests until (and besides) the gateway simulator. Bounded: every socket has a timeout and the
server is shut down by the fixture that started it.
"""

from __future__ import annotations

import json
import threading
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


class RecordingServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
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
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                head = (
                    f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}\r\n"
                    f"Content-Type: {reply.content_type}\r\nContent-Length: {len(payload)}\r\n\r\n"
                )
                # One write: separate header and body writes stall on Nagle + delayed ACK.
                self.wfile.write(head.encode() + payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
