"""One WebSocket connection on an asyncio loop, built on the `websockets` library's sans-I/O protocol.

The library parses and writes frames and does the opening handshake; this module moves bytes. Text messages are
handed to `on_text` (as UTF-8 bytes) straight from `data_received`, with no coroutine or queue per frame: the
reader does the least possible per frame, which is where streaming spends its time. Sending is synchronous (a
buffered write). Ping frames go out from `ping()`; a pong is recorded in `last_pong`.

Imported only when a client starts: this is the module that loads `websockets`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

logger = logging.getLogger("ibkr_sdk.ws")

TEXT, BINARY, CONT, PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG


class HandshakeError(ConnectionError):
    """The server refused the WebSocket (e.g. 401 without a session)."""


class Connection(asyncio.Protocol):
    """An open (or opening) WebSocket. Create with `open_connection()`."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        on_open: Callable[[], None],
        on_text: Callable[[bytes], None],
        max_size: int | None,
    ) -> None:
        self._protocol = ClientProtocol(parse_uri(url), max_size=max_size)
        self._headers = headers
        self._on_open = on_open
        self._on_text = on_text
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._parts: list[bytes] = []
        self._fast = False
        self._rest = b""
        self._max_size = max_size
        self.last_pong = time.monotonic()
        self.close_code: int | None = None
        self.close_reason: str | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        request = self._protocol.connect()
        for name, value in self._headers.items():
            if name.lower() == "user-agent" and "User-Agent" in request.headers:
                del request.headers["User-Agent"]
            request.headers[name] = value
        self._protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._fast:
            self._split(data)
            return
        self._feed(data)
        if self._protocol.state is State.OPEN and not self._protocol.extensions:
            self._fast = True  # the handshake is done and no extension changes the framing: split frames here

    def _feed(self, data: bytes) -> None:
        """Give bytes to the library's protocol and act on what it makes of them."""
        protocol = self._protocol
        protocol.receive_data(data)
        on_text = self._on_text
        for event in protocol.events_received():
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is TEXT and event.fin:
                    on_text(bytes(event.data))
                elif opcode is PONG:
                    self.last_pong = time.monotonic()
                elif opcode is TEXT or opcode is BINARY or opcode is CONT:
                    self._fragment(event)
            elif isinstance(event, Response):
                self._opened(event)
        self._flush()
        if protocol.close_expected() and self._transport is not None:
            asyncio.get_running_loop().call_later(0.5, self._transport.abort)

    def _split(self, data: bytes) -> None:
        """The reader's fast path: cut the stream into frames; an unfragmented text frame (nearly every frame the
        gateway sends) goes straight to `on_text`, any other frame (ping, pong, close, fragments) to the library,
        which sees whole frames only and so keeps its state."""
        buf = self._rest + data if self._rest else data
        size = len(buf)
        pos = 0
        on_text = self._on_text
        limit = self._max_size
        while size - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1]
            if length & 0x80:  # a masked frame from a server is a protocol error: let the library say so
                self._fast = False
                self._rest = b""
                self._feed(buf[pos:])
                return
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if limit is not None and length > limit:
                logger.warning("IbkrWsClient: a frame of %d bytes exceeds the limit of %d; closing", length, limit)
                self._protocol.fail(1009, "frame too big")
                self._flush()
                self.abort()
                return
            end = pos + head + length
            if end > size:
                break
            if b0 == 0x81:  # FIN + text
                on_text(buf[pos + head : end])
            else:
                self._feed(buf[pos:end])
                if not self._fast:
                    self._rest = b""
                    return
            pos = end
        self._rest = buf[pos:] if pos < size else b""

    def eof_received(self) -> bool | None:
        self._protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        protocol = self._protocol
        self.close_code = protocol.close_code
        self.close_reason = protocol.close_reason
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("the connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- helpers ----------------------------------------------------------------------------------------------------

    def _opened(self, response: Response) -> None:
        error = self._protocol.handshake_exc
        if self.opened.done():
            return
        if error is not None:
            status = getattr(response, "status_code", "?")
            self.opened.set_exception(HandshakeError(f"the server refused the WebSocket (HTTP {status})"))
            if self._transport is not None:
                self._transport.close()
        else:
            self.opened.set_result(None)
            self._on_open()  # before the frames that came with the handshake answer are handed on

    def _fragment(self, frame: Frame) -> None:
        self._parts.append(bytes(frame.data))
        if frame.fin:
            data, self._parts = b"".join(self._parts), []
            if frame.opcode is not BINARY:
                self._on_text(data)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for chunk in self._protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()

    # -- the connection's API ---------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._protocol.state is State.OPEN

    def send(self, text: str) -> bool:
        """Queue a text message; False when the connection is not open."""
        if self._protocol.state is not State.OPEN:
            return False
        self._protocol.send_text(text.encode())
        self._flush()
        return True

    def ping(self) -> None:
        if self._protocol.state is State.OPEN:
            self._protocol.send_ping(b"")
            self._flush()

    def close(self) -> None:
        """Start the closing handshake; the TCP connection is cut if the server does not answer soon."""
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(1000, "")
            self._flush()
        if self._transport is not None:
            asyncio.get_running_loop().call_later(0.3, self._transport.abort)

    def abort(self) -> None:
        """Cut the TCP connection now."""
        if self._transport is not None:
            self._transport.abort()


async def open_connection(
    url: str,
    headers: Mapping[str, str],
    on_open: Callable[[], None],
    on_text: Callable[[bytes], None],
    *,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
    max_size: int | None = 2**22,
) -> Connection:
    """Connect and complete the opening handshake within `timeout` seconds."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {}
    if uri.secure:
        kwargs["ssl"] = ssl_context if ssl_context is not None else ssl.create_default_context()
        kwargs["server_hostname"] = uri.host
    connection: Connection | None = None

    def factory() -> Connection:
        nonlocal connection
        connection = Connection(url, headers, on_open, on_text, max_size)
        return connection

    async def handshake() -> Connection:
        await loop.create_connection(factory, uri.host, uri.port, **kwargs)
        assert connection is not None
        await connection.opened
        return connection

    try:
        return await asyncio.wait_for(handshake(), timeout)
    except BaseException:
        if connection is not None:
            connection.abort()
        raise
