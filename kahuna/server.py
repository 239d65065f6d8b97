"""The gevent WSGI server Kahuna runs on."""

from __future__ import annotations

import socket

from gevent.pywsgi import WSGIServer


class NoDelayWSGIServer(WSGIServer):
    """pywsgi with TCP_NODELAY on every accepted socket.

    pywsgi writes headers and body in two sends; with Nagle's algorithm on, every
    keep-alive response after the first waits ~40 ms for the client's delayed ACK
    (gevent issue #1233). Caddy keeps upstream connections alive, so this matters.
    """

    def handle(self, sock: socket.socket, address) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)
