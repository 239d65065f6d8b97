"""``GET /ws``: where agents connect. The handshake is checked before the upgrade.

The gate runs in the server's WebSocket handler, before any 101 is sent, so a
refused agent gets a plain HTTP 400 or 403 (as from the Go Kahuna) and never a
socket. The accepted connection is then served by the agent plane in the
request's greenlet, outside Flask: a socket lives for days and needs no request
context.

A flood of handshakes must not flood the log: refusals are logged at most once per
REFUSAL_LOG_INTERVAL, with the count of those not logged. An agent closed for
abuse (too many useless frames) is refused with 429 until its cool-down is over. At most
HANDSHAKES_AT_ONCE handshakes are checked at once.
"""

from __future__ import annotations

import json
import logging
import math
import time
import typing

import gevent.lock
from werkzeug.datastructures import EnvironHeaders

from actors import AgentInfo, AgentPlane
from kahuna.errors import error_body
from kahuna.services.agents import AgentService, HandshakeRefused

log = logging.getLogger(__name__)

PATH = "/ws"
_AGENT = "kahuna.agent"
_REASONS = {400: "400 Bad Request", 403: "403 Forbidden", 429: "429 Too Many Requests",
            503: "503 Service Unavailable"}
_NOT_AN_UPGRADE = json.dumps(error_body(400, "GET /ws expects a WebSocket upgrade from a Kowabunga agent")).encode()
#: Handshakes checked at once. When 10,000 agents dial together, checking them all at once would put thousands
#: of greenlets in the hub's ready queue, and every other request (a health check, /metrics, the API) would wait
#: behind all of them for seconds; parked on this semaphore they wait without delaying anyone else.
HANDSHAKES_AT_ONCE = 64
#: Seconds between two log lines about refused handshakes.
REFUSAL_LOG_INTERVAL = 10.0


class AgentSocket:
    def __init__(self, agents: AgentService, plane: AgentPlane, accepting: typing.Callable[[], bool] = lambda: True):
        self.agents = agents
        self.plane = plane
        # False on a passive node of an HA pair: agents must go to the active one.
        self.accepting = accepting
        self._next_log = 0.0
        self._unlogged = 0
        # Handshakes checked at once; the others wait their turn, parked (see HANDSHAKES_AT_ONCE).
        self._admitting = gevent.lock.BoundedSemaphore(HANDSHAKES_AT_ONCE)

    def gate(self, environ: dict) -> tuple[str, str] | None:
        """None to let the upgrade happen, or (status, body) to refuse it before the 101."""
        if environ.get("PATH_INFO") != PATH:
            return "404 Not Found", "no WebSocket endpoint here\n"
        if not self.accepting():
            return _REASONS[503], "Service Unavailable\n"
        try:
            headers = EnvironHeaders(environ)  # looked up by name, case-insensitively
            with self._admitting:
                environ[_AGENT] = self.agents.authenticate(headers)
        except HandshakeRefused as refusal:
            self._log_refusal(environ, refusal.reason)
            body = f"Bad Request: {refusal.reason}\n" if refusal.status == 400 else "Forbidden\n"
            return _REASONS[refusal.status], body
        except Exception:
            log.exception("agent handshake failed")
            return _REASONS[503], "Service Unavailable\n"
        cooling = self.plane.cooling_down(environ[_AGENT].id)
        if cooling:
            self._log_refusal(environ, f"agent {environ[_AGENT].id} was closed for abuse; refused for {cooling:.0f}s")
            return _REASONS[429], f"Too Many Requests: retry in {math.ceil(cooling)}s\n"
        return None

    def _log_refusal(self, environ: dict, reason: str) -> None:
        now = time.monotonic()
        if now < self._next_log:
            self._unlogged += 1
            return
        self._next_log = now + REFUSAL_LOG_INTERVAL
        unlogged, self._unlogged = self._unlogged, 0
        log.warning("refused agent handshake from %s: %s%s", environ.get("REMOTE_ADDR"), reason,
                    f" ({unlogged} more refused since the last such line)" if unlogged else "")

    def __call__(self, environ: dict, start_response: typing.Callable) -> typing.Iterable[bytes]:
        websocket = environ.get("wsgi.websocket")
        agent = environ.get(_AGENT)
        if websocket is None or agent is None:
            start_response("400 Bad Request", [("Content-Type", "application/json")])
            return [_NOT_AN_UPGRADE]
        info = AgentInfo(id=agent.id, type=agent.type, name=agent.name, remote=environ.get("REMOTE_ADDR", ""))
        # The socket lives for days and nothing reads the handshake's headers again (parsed by pywsgi, then
        # copied into the environ): let them go, a few KiB for each connected agent.
        websocket.handler.headers = None
        for key in [key for key in environ if key.startswith("HTTP_")]:
            del environ[key]
        self.plane.serve(info, websocket)
        return []
