"""The WebSocket transport: the one module that knows gevent-websocket.

gevent-websocket (0.10.1, unmaintained since 2017) does the HTTP upgrade well;
its message layer does not suit an orchestrator, so this adapter reads frames
itself:

- every frame and every message is size-capped (the library reads anything);
- client frames are unmasked with one big-integer XOR (the library loops per byte
  in Python, ~2 MB/s, blocking the hub);
- pings and pongs are handed to the owner instead of being answered from the
  reader, so that one greenlet (the connection actor) writes to the socket;
- the reader never writes: a protocol error it finds (an unmasked client frame,
  reserved bits, an oversized message...) or the peer's close ends :meth:`Transport.read`
  with a :class:`TransportClosed` carrying the close code, which the owner sends;
- close sends the code it is given (the library's close drops it).

The handler also refuses an upgrade *before* the 101 when the request is not
allowed, which the library cannot do on its own: it upgrades any GET carrying
upgrade headers, whatever the path, before the application runs.
"""

from __future__ import annotations

import logging
import struct
import typing
from dataclasses import dataclass

from geventwebsocket.exceptions import ProtocolError
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import Header, WebSocket

log = logging.getLogger(__name__)

BINARY = "binary"
TEXT = "text"
PING = "ping"
PONG = "pong"
CLOSE = "close"

# Close codes (RFC 6455 and the private 4000-4999 range).
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
REPLACED = 4000
REVOKED = 4001
DEAD = 4002


@dataclass(frozen=True)
class Frame:
    kind: str
    data: bytes = b""


class TransportClosed(Exception):
    """The end of the stream. ``code``: the close frame the owner must send (None: just close the socket)."""

    def __init__(self, reason: str, code: int | None = None):
        super().__init__(reason)
        self.code = code


class FrameTooLarge(Exception):
    pass


def unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    if not length:
        return b""
    key = (mask * ((length + 3) // 4))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")


class Transport:
    """One accepted WebSocket. :meth:`read` is called by one reader; writes by one owner."""

    def __init__(self, websocket: WebSocket, max_message_bytes: int):
        self._ws = websocket
        self._max = max_message_bytes
        self.closed = False
        self._read_ended = False  # the reader met the end, or a protocol error the owner still has to answer

    def read(self) -> Frame:
        """The next data message or control frame; :class:`TransportClosed` at the end."""
        kind: str | None = None
        parts: list[bytes] = []
        size = 0
        while True:
            header, payload = self._read_frame()
            opcode = header.opcode
            if opcode == WebSocket.OPCODE_PING:
                return Frame(PING, payload)
            if opcode == WebSocket.OPCODE_PONG:
                return Frame(PONG, payload)
            if opcode == WebSocket.OPCODE_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else NORMAL
                self._read_ended = True
                # The owner echoes the close (RFC 6455 5.5.1).
                raise TransportClosed(f"peer closed ({code})", code if code in (NORMAL, GOING_AWAY) else NORMAL)
            if opcode in (WebSocket.OPCODE_TEXT, WebSocket.OPCODE_BINARY):
                if kind is not None:
                    raise self._fail(PROTOCOL_ERROR, "new message inside a fragmented one")
                kind = TEXT if opcode == WebSocket.OPCODE_TEXT else BINARY
            elif opcode == WebSocket.OPCODE_CONTINUATION:
                if kind is None:
                    raise self._fail(PROTOCOL_ERROR, "continuation without a message")
            else:
                raise self._fail(PROTOCOL_ERROR, f"unknown opcode {opcode}")
            size += len(payload)
            if size > self._max:
                raise self._fail(MESSAGE_TOO_BIG, f"message over {self._max} bytes")
            parts.append(payload)
            if header.fin:
                return Frame(kind, b"".join(parts))

    def _read_frame(self) -> tuple[Header, bytes]:
        if self.closed or self._read_ended:
            raise TransportClosed("closed")
        try:
            header = Header.decode_header(self._ws.stream)
            if header.flags:
                raise self._fail(PROTOCOL_ERROR, "reserved bits set")
            if not header.mask:
                # RFC 6455 5.1: a server MUST close the connection upon receiving an unmasked frame.
                raise self._fail(PROTOCOL_ERROR, "unmasked client frame")
            if header.length > self._max:
                raise self._fail(MESSAGE_TOO_BIG, f"frame of {header.length} bytes")
            payload = self._ws.raw_read(header.length) if header.length else b""
        except TransportClosed:
            raise
        except ProtocolError as exc:  # a fragmented or oversized control frame
            raise self._fail(PROTOCOL_ERROR, str(exc)[:100]) from None
        except Exception as exc:  # socket errors, EOF, garbage headers: the library raises many kinds
            self._drop()
            raise TransportClosed(f"read failed: {exc}") from None
        if len(payload) != header.length:
            self._drop()
            raise TransportClosed("unexpected end of stream")
        if header.mask:
            payload = unmask(payload, header.mask)
        return header, payload

    def _fail(self, code: int, reason: str) -> TransportClosed:
        """Stop reading; the owner sends the close frame with *code* (the reader writes nothing)."""
        self._read_ended = True
        return TransportClosed(reason, code)

    # -- writes (owner only) -------------------------------------------------------

    def send_binary(self, data: bytes) -> None:
        self._send(data, WebSocket.OPCODE_BINARY)

    def send_ping(self, payload: bytes = b"") -> None:
        self._send(payload, WebSocket.OPCODE_PING)

    def send_pong(self, payload: bytes) -> None:
        self._send(payload, WebSocket.OPCODE_PONG)

    def _send(self, data: bytes, opcode: int) -> None:
        if self.closed:
            raise TransportClosed("closed")
        try:
            header = Header.encode_header(True, opcode, b"", len(data), 0)
            self._ws.raw_write(header + data)
        except Exception as exc:
            self._drop()
            raise TransportClosed(f"write failed: {exc}") from None

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        if self.closed:
            return
        try:
            payload = struct.pack("!H", code) + reason.encode()[:120]
            self._ws.raw_write(Header.encode_header(True, WebSocket.OPCODE_CLOSE, b"", len(payload), 0) + payload)
        except Exception:  # noqa: S110 - the peer may be gone already; closing anyway
            pass
        self._drop()

    def _drop(self) -> None:
        self.closed = True
        self._ws.closed = True
        try:
            self._ws.handler.socket.close()
        except Exception:  # noqa: S110
            pass


class _NoCloseHook:
    """gevent-websocket tells ``server.application.current_app.on_close`` of every socket closed or
    collected; when the application has none it builds a new class each time (cyclic garbage, some
    14 objects per connection, that only the collector's full passes find). Kahuna needs no hook."""

    @staticmethod
    def on_close(*_: typing.Any) -> None:
        pass


# gevent-websocket ships no type information: its handler is Any, and subclassing it is the only way in.
class GatedWebSocketHandler(WebSocketHandler):  # type: ignore[misc]
    """Upgrades only what the server's ``upgrade_gate`` accepts, answering everything else before the 101.

    ``server.upgrade_gate(environ)`` returns None to accept, or ``(status, body)``
    to refuse with a plain-text reply.
    """

    def upgrade_websocket(self) -> typing.Any:
        if self.environ.get("HTTP_UPGRADE", "").lower() != "websocket" or self.environ.get("REQUEST_METHOD") != "GET":
            return super().upgrade_websocket()  # not an upgrade: the application answers
        gate = getattr(self.server, "upgrade_gate", None)
        refusal = gate(self.environ) if gate else ("404 Not Found", "no WebSocket endpoint here\n")
        if refusal is not None:
            status, body = refusal
            self.start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                         ("X-Content-Type-Options", "nosniff")])
            return [body.encode()]
        # From here the socket is an agent's: its liveness is watched by pings, not by the idle timeout.
        self.socket.settimeout(None)
        if not hasattr(self.server.application, "current_app"):
            self.server.application.current_app = _NoCloseHook
        return super().upgrade_websocket()

    def log_request(self) -> None:
        # WebSocketHandler silences pywsgi's access log; keep it (it goes to the server's log, if any).
        if self.server.log is not None:
            super(WebSocketHandler, self).log_request()
