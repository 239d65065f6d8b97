"""The gevent WSGI server Kahuna runs on."""

from __future__ import annotations

import socket
import typing

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

#: Replies up to this size leave in one send(), headers and body together.
ONE_SEND_BYTES = 64 * 1024


class _FairHandler:
    """Mixed into the server's handler class: take turns between connections; one send per small reply.

    Turns: a keep-alive client that sends its next request as soon as it has the reply often finds
    pywsgi still in its loop, reading that request without ever waiting, hence without yielding:
    one connection then holds the process for hundreds of requests while the others wait (a
    p50 of 0.2 ms and a p99 of 200 ms at 32 connections). Each request after a connection's
    first waits its turn behind the other ready greenlets.

    One send: pywsgi sends a reply's head and body apart; with many small JSON replies that second
    send() is a sizeable part of the cost of a request. Same bytes on the wire; chunked and
    large bodies go as pywsgi sends them.
    """

    _answered = False

    def handle_one_request(self) -> typing.Any:
        if self._answered:
            gevent.sleep(0)
        self._answered = True
        return super().handle_one_request()

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
    """pywsgi with TCP_NODELAY, an idle timeout, and a cap on connections.

    pywsgi writes headers and body in two sends; with Nagle's algorithm on, every
    keep-alive response after the first waits ~40 ms for the client's delayed ACK
    (gevent issue #1233). Caddy keeps upstream connections alive, so this matters.

    Connections take turns, and replies' heads and bodies leave in one send (:class:`_FairHandler`).

    A connection that sends nothing for ``idle_timeout`` seconds (a request trickled
    byte by byte, a keep-alive left open) is closed; an agent's socket lifts the
    timeout once upgraded (its liveness is the agent plane's pings). At most
    ``max_connections`` are served at once; more wait in the listen backlog.
    """

    def __init__(self, listener, application, *, idle_timeout: float = 30.0, max_connections: int = 20000,
                 **kwargs) -> None:
        handler_class = _fair(kwargs.pop("handler_class", None) or self.handler_class or WSGIHandler)
        super().__init__(listener, application, spawn=Pool(max_connections), handler_class=handler_class, **kwargs)
        self.idle_timeout = idle_timeout

    def handle(self, sock: socket.socket, address) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.idle_timeout)
        super().handle(sock, address)
