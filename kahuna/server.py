"""The gevent WSGI server Kahuna runs on."""

from __future__ import annotations

import socket

from gevent.pool import Pool
from gevent.pywsgi import WSGIServer


class NoDelayWSGIServer(WSGIServer):
    """pywsgi with TCP_NODELAY, an idle timeout, and a cap on connections.

    pywsgi writes headers and body in two sends; with Nagle's algorithm on, every
    keep-alive response after the first waits ~40 ms for the client's delayed ACK
    (gevent issue #1233). Caddy keeps upstream connections alive, so this matters.

    A connection that sends nothing for ``idle_timeout`` seconds (a request trickled
    byte by byte, a keep-alive left open) is closed; an agent's socket lifts the
    timeout once upgraded (its liveness is the agent plane's pings). At most
    ``max_connections`` are served at once; more wait in the listen backlog.
    """

    def __init__(self, listener, application, *, idle_timeout: float = 30.0, max_connections: int = 20000,
                 **kwargs) -> None:
        super().__init__(listener, application, spawn=Pool(max_connections), **kwargs)
        self.idle_timeout = idle_timeout

    def handle(self, sock: socket.socket, address) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.idle_timeout)
        super().handle(sock, address)
