"""Abuse of the HTTP server and the agent socket: slow or idle clients are cut off, a storm of failing
handshakes is turned away cheaply, and a connected agent keeps working through all of it."""

from __future__ import annotations

import socket

import gevent
import pytest

from kahuna import rpc
from tests.deployment import Deployment

IDLE_TIMEOUT = 1.0
FAILING_HANDSHAKES = 1000


@pytest.fixture
def strict(ferretdb, mail_server):
    running = Deployment.start(ferretdb.uri, "kahuna_socket_abuse", mail_server,
                               **{"global.http.idleTimeoutSeconds": IDLE_TIMEOUT})
    yield running
    running.stop()


def _address(deployment):
    host, port = deployment.base_url.removeprefix("http://").split(":")
    return host, int(port)


def test_a_request_trickled_slowly_is_cut_off_but_an_agent_socket_is_not(strict):
    agent = strict.simulated_agent("kaktus-1", "Kaktus")
    slow = socket.create_connection(_address(strict))
    slow.sendall(b"GET /api/v1/region HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
    slow.settimeout(10 * IDLE_TIMEOUT)
    answer = b""
    while chunk := slow.recv(1024):  # until Kahuna closes the connection
        answer += chunk
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
    slow.close()
    gevent.sleep(2 * IDLE_TIMEOUT)  # longer than the idle timeout: the agent's socket must survive it
    assert strict.kahuna.plane.call(agent.id, rpc.kaktus.NodeCapabilities)["Threads"] == 64


def test_a_storm_of_failing_handshakes_leaves_agents_working(strict):
    agent = strict.simulated_agent("kaktus-1", "Kaktus")
    host, port = _address(strict)
    forged = ("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              f"X-WS-Kowabunga-Agent: Kaktus\r\nX-WS-Kowabunga-Id: {agent.id}\r\n"
              f"X-WS-Kowabunga-Api-Key: {'0' * 64}\r\n\r\n").encode()
    statuses: list[bytes] = []

    def attack(count: int) -> None:
        for _ in range(count):
            with socket.create_connection((host, port)) as attacker:
                attacker.sendall(forged)
                statuses.append(attacker.recv(64).split(b" ")[1])

    attackers = [gevent.spawn(attack, FAILING_HANDSHAKES // 20) for _ in range(20)]
    answered = 0
    while not all(a.dead for a in attackers):
        assert strict.kahuna.plane.call(agent.id, rpc.kaktus.NodeCapabilities, timeout=10)
        answered += 1
    gevent.joinall(attackers, raise_error=True)
    assert statuses == [b"403"] * FAILING_HANDSHAKES
    assert answered > 0 and agent.connected
    assert strict.kahuna.plane.info(agent.id) is not None
