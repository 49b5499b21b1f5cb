"""A fixed-answer HTTP/1.1 keep-alive server on 127.0.0.1 for benchmarks (never any other address)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PORTFOLIO_ACCOUNTS = [
    {
        "id": "DU1234567",
        "accountId": "DU1234567",
        "accountTitle": "Paper account",
        "currency": "USD",
        "type": "DEMO",
        "tradingType": "PMRGN",
        "covestor": False,
        "parent": {"mmc": [], "accountId": "", "isMParent": False, "isMChild": False, "isMultiplex": False},
    }
]


class FixedServer:
    def __init__(self, body: Any = PORTFOLIO_ACCOUNTS, latency: float = 0.0) -> None:
        payload = json.dumps(body).encode()
        # Status line, headers and body in one write: split writes meet Nagle + delayed ACK (40 ms stalls).
        response = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                if latency:
                    time.sleep(latency)
                self.wfile.write(response)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FixedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
