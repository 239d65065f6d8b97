"""The gevent WSGI server Kahuna runs on."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
import typing

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from kahuna.errors import error_body

log = logging.getLogger(__name__)

#: Replies up to this size leave in one send(), headers and body together.
ONE_SEND_BYTES = 64 * 1024
#: At most one log line per this many seconds about connections closed for being slow (with the counts).
REPORT_INTERVAL = 10.0
#: After a 413, what is left of the body is read and dropped for at most this long (and at most twice the
#: limit, 1 MiB at least) so that a client still sending gets the reply rather than a reset; then the
#: connection is closed. pywsgi alone would read all of it, however long.
DISCARD_SECONDS = 2.0

_REQUEST_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class _Evicted(BaseException):
    """Raised in a connection's greenlet whose incomplete request was closed to make room (not an Exception:
    pywsgi must not turn it into a 400)."""


class _BoundedDiscard:
    """Stands for pywsgi's request input after a 413: its ``_discard`` drops a bounded part of the body."""

    def __init__(self, wsgi_input: typing.Any, max_bytes: int):
        self.input = wsgi_input
        self.max_bytes = max_bytes

    def _discard(self) -> None:
        if getattr(self.input, "socket", None) is not None:
            return  # "Expect: 100-continue" not answered: the client sends no body
        left = self.max_bytes
        try:
            with gevent.Timeout(DISCARD_SECONDS, False):
                while left > 0:
                    data = self.input.read(min(left, 65536))
                    if not data:
                        break
                    left -= len(data)
        except Exception:  # noqa: BLE001, S110 - a broken chunk, the client gone: closing anyway
            pass


class _Close:
    """The request body could not be read whole: close the connection without a reply."""


_CLOSE = _Close()


def _too_large(limit: int) -> typing.Callable:
    """The WSGI application answering 413 in the API's error shape (``api/errors.py``), then closing."""
    body = json.dumps(error_body(413, f"the request body is over the limit of {limit} bytes")).encode()

    def application(environ: dict, start_response: typing.Callable) -> list[bytes]:
        start_response("413 Request Entity Too Large", [("Content-Type", "application/json"),
                                                        ("Content-Length", str(len(body))), ("Connection", "close")])
        return [body]

    return application


#: Bytes of each connection's read buffer (see :meth:`_FairHandler.__init__`).
READ_BUFFER_BYTES = 2048


class _FairHandler(WSGIHandler):
    """Put before the server's handler class (pywsgi's or a subclass) in its bases: take turns between
    connections; one send per small reply; a deadline for each request's head; bodies read whole (and capped)
    before the application runs.

    Turns: a keep-alive client that sends its next request as soon as it has the reply often finds
    pywsgi still in its loop, reading that request without ever waiting, hence without yielding:
    one connection then holds the process for hundreds of requests while the others wait (a
    p50 of 0.2 ms and a p99 of 200 ms at 32 connections). Each request after a connection's
    first waits its turn behind the other ready greenlets.

    One send: pywsgi sends a reply's head and body apart; with many small JSON replies that second
    send() is a sizeable part of the cost of a request. Same bytes on the wire; chunked and
    large bodies go as pywsgi sends them.

    Head deadline: the request line and headers must all arrive within the server's ``header_timeout``,
    counted from the accept (first request) or from the next request's first byte (keep-alive; until
    that byte the idle timeout applies). A client trickling one header line every few seconds never
    trips a per-read timeout; this one it does: 408, and the connection is closed.

    Incomplete requests: from the deadline's start until the body is read, the connection is on the
    server's list of incomplete requests (:meth:`NoDelayWSGIServer._incomplete_started`), whose oldest
    entry is closed when the list outgrows its share of the connections.

    Bodies: read here, up to the server's ``max_body_bytes``, whether sized by Content-Length or chunked;
    a larger one is answered 413 (the API's JSON error shape) and the connection closed. The application
    gets the body in memory, with its Content-Length.
    """

    _answered = False
    _evicted = False
    _head_deadline: gevent.Timeout | None = None
    #: pywsgi's request input; after a 413, the :class:`_BoundedDiscard` standing for it.
    wsgi_input: typing.Any

    def __init__(self, sock: typing.Any, address: typing.Any, server: typing.Any, rfile: typing.Any = None):
        # pywsgi's default read buffer is 8 KiB, kept for the connection's life: an agent's socket lives for
        # days and reads frames of a few hundred bytes, and 10,000 of them would hold 80 MiB of buffers.
        # Request heads (about 1 KiB behind Caddy) take one or two reads; bodies are read past the buffer.
        super().__init__(sock, address, server, rfile if rfile is not None else sock.makefile("rb", READ_BUFFER_BYTES))

    def handle_one_request(self) -> typing.Any:
        server = self.server
        if self._answered:
            gevent.sleep(0)
            # Keep-alive: the next request's deadline starts with its first byte (until then: the idle timeout).
            try:
                if not self.rfile.peek(1):
                    return None
            except (OSError, ValueError):
                return None
        self._answered = True
        deadline = gevent.Timeout(server.header_timeout)
        self._head_deadline = deadline
        server._incomplete_started(self)
        deadline.start()
        try:
            return super().handle_one_request()
        except gevent.Timeout as timeout:
            if timeout is not deadline:
                raise
            server._closed_slow("timed_out")
            self._send_quietly(_REQUEST_TIMEOUT_RESPONSE)
            return None
        except _Evicted:
            return None
        finally:
            deadline.close()
            server._incomplete_ended(self)

    def read_request(self, raw_requestline: str) -> typing.Any:
        if self._evicted:
            raise _Evicted()
        try:
            return super().read_request(raw_requestline)
        finally:
            # The head is in (or refused): the deadline is over; an eviction meanwhile wins.
            if self._head_deadline is not None:
                self._head_deadline.cancel()
            if self._evicted:
                raise _Evicted()

    def _handle_client_error(self, ex: BaseException) -> typing.Any:
        # A head cut short by the idle timeout: quietly 408 (pywsgi prints a traceback for each).
        if isinstance(ex, socket.timeout):
            self.server._closed_slow("timed_out")
            return "408", _REQUEST_TIMEOUT_RESPONSE
        return super()._handle_client_error(ex)

    def handle_one_response(self) -> typing.Any:
        try:
            taken = self._take_body()
        finally:
            self.server._incomplete_ended(self)
        if taken is _CLOSE:
            self.close_connection = True
            return None
        if taken is not None:
            self.application = taken
            self.close_connection = True
            self.wsgi_input = _BoundedDiscard(self.wsgi_input, max(2 * self.server.max_body_bytes, 1 << 20))
        return super().handle_one_response()

    def _take_body(self) -> typing.Any:
        """None when the request's body (if any) is now in memory; else the application answering 413, or
        :data:`_CLOSE`."""
        limit = self.server.max_body_bytes
        if limit is None or self._connection_upgrade_requested():
            return None  # an upgrade's stream is the WebSocket's, read by its owner
        environ = self.environ
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        length = self.content_length
        if not chunked and not length:
            return None
        if not chunked and length > limit:
            return _too_large(limit)  # refused unread: the connection is closed after the reply
        try:
            body = self.wsgi_input.read(limit + 1 if chunked else length)
        except Exception:  # noqa: BLE001 - a broken chunk, the client gone, the connection evicted
            return _CLOSE
        if self._evicted or (not chunked and len(body) < length):
            return _CLOSE
        if len(body) > limit:
            return _too_large(limit)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return None

    def _evict(self) -> None:
        """Close this connection, whose request is incomplete, to make room (called from another greenlet)."""
        self._evicted = True
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # its reader wakes up on the end of the stream
        except (OSError, AttributeError):
            pass

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.socket.send(data)
        except (OSError, AttributeError):
            pass

    def _write_with_headers(self, data: bytes) -> None:
        self.headers_sent = True
        self.finalize_headers()
        head = bytearray(b"HTTP/1.1 ")
        head += self.status
        head += b"\r\n"
        for header, value in self.response_headers:
            head += header
            head += b": "
            head += value
            head += b"\r\n"
        head += b"\r\n"
        if data and not self.response_use_chunked and len(data) <= ONE_SEND_BYTES:
            head += data
            self._sendall(head)
            return
        self._sendall(head)
        self._write(data)


def _fair(handler_class: type) -> type:
    return type(handler_class.__name__, (_FairHandler, handler_class), {"__module__": handler_class.__module__})


class NoDelayWSGIServer(WSGIServer):
    """pywsgi with TCP_NODELAY, an idle timeout, a deadline for request heads, and a cap on connections of
    which only a share may be held by incomplete requests.

    pywsgi writes headers and body in two sends; with Nagle's algorithm on, every
    keep-alive response after the first waits ~40 ms for the client's delayed ACK
    (gevent issue #1233). Caddy keeps upstream connections alive, so this matters.

    Connections take turns, and replies' heads and bodies leave in one send (:class:`_FairHandler`).

    A connection that sends nothing for ``idle_timeout`` seconds (an idle keep-alive, a stalled
    body) is closed; a request's head must arrive whole within ``header_timeout`` seconds however
    it trickles (408). An agent's socket lifts both once upgraded (its liveness is the agent plane's
    pings). At most ``max_connections`` are served at once; more wait in the listen backlog.

    Slowloris: connections whose request is still arriving (head, then body) may hold at most
    ``incomplete_share`` of ``max_connections``; a new one past that closes the oldest, so slow
    clients, however many, cannot take the slots of clients that send whole requests quickly:
    those are never the oldest incomplete request for long. Bodies over ``max_body_bytes``
    (Content-Length or chunked) are answered 413.
    """

    def __init__(self, listener, application, *, idle_timeout: float = 30.0, max_connections: int = 20000,
                 header_timeout: float = 5.0, incomplete_share: float = 0.5, max_body_bytes: int | None = None,
                 **kwargs) -> None:
        handler_class = _fair(kwargs.pop("handler_class", None) or self.handler_class or WSGIHandler)
        super().__init__(listener, application, spawn=Pool(max_connections), handler_class=handler_class, **kwargs)
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.max_body_bytes = max_body_bytes
        self.max_incomplete = max(1, min(max_connections - 1, int(max_connections * incomplete_share)))
        # Handlers whose request is incomplete, oldest first (dicts keep insertion order).
        self._incomplete: dict[_FairHandler, None] = {}
        # Connections closed for being slow, by cause, since the last log line; and in all.
        self._unreported = {"timed_out": 0, "evicted": 0}
        self.closed_slow = {"timed_out": 0, "evicted": 0}
        self._next_report = 0.0

    def handle(self, sock: socket.socket, address) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.idle_timeout)
        super().handle(sock, address)

    def _incomplete_started(self, handler: _FairHandler) -> None:
        incomplete = self._incomplete
        incomplete.pop(handler, None)
        incomplete[handler] = None
        while len(incomplete) > self.max_incomplete:
            oldest = next(iter(incomplete))
            del incomplete[oldest]
            oldest._evict()
            self._closed_slow("evicted")

    def _incomplete_ended(self, handler: _FairHandler) -> None:
        self._incomplete.pop(handler, None)

    def _closed_slow(self, cause: str) -> None:
        """Count a connection closed for being slow; one log line per REPORT_INTERVAL at most."""
        self.closed_slow[cause] += 1
        self._unreported[cause] += 1
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + REPORT_INTERVAL
            log.warning("closed %d connection(s) whose request head took over %gs and %d incomplete one(s) to "
                        "keep room for complete requests (since the last such line)",
                        self._unreported["timed_out"], self.header_timeout, self._unreported["evicted"])
            self._unreported = {"timed_out": 0, "evicted": 0}
