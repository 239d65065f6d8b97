"""Hostile peers: an authenticated agent flooding useless frames, clients trickling request heads (slowloris),
a client frame left unmasked, a chunked body over the limit. Each is cut off in a documented way while the
others are served. Only behaviour is asserted here (with generous bounded waits); how little a flood costs
the REST API is measured in ``bench/`` (``python -m bench hostile``).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
from pathlib import Path

import gevent
import gevent.event
import pytest

from actors import _connection
from kahuna import config, rpc
from tests.deployment import MASTER_KEY, Deployment
from tests.simulator import HandshakeFailed, SimulatedAgent

NODE = rpc.kaktus.NodeCapabilities
GARBAGE_LIMIT = 50


# -- helpers ---------------------------------------------------------------------------------


def _address(deployment):
    return tuple(deployment.kahuna.server.address[:2])


def frame(payload: bytes, opcode: int = 0x2, masked: bool = True) -> bytes:
    """One client WebSocket frame (masked, as RFC 6455 requires of clients, unless told otherwise)."""
    length = len(payload)
    bit = 0x80 if masked else 0
    if length < 126:
        head = bytes([0x80 | opcode, bit | length])
    elif length < 1 << 16:
        head = bytes([0x80 | opcode, bit | 126]) + struct.pack("!H", length)
    else:
        head = bytes([0x80 | opcode, bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))


def read_server_frame(stream) -> tuple[int, bytes]:
    """(opcode, payload) of the next frame Kahuna sends; (-1, b"") at the end of the stream."""
    head = stream.read(2)
    if len(head) < 2:
        return -1, b""
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", stream.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", stream.read(8))[0]
    return head[0] & 0x0F, stream.read(length)


def raw_agent(deployment, name: str):
    """A socket upgraded on /ws as a real agent (created through the API); its buffered reader."""
    agent_id, key = deployment.create_agent(name)
    headers = SimulatedAgent(deployment.base_url, "Kaktus", agent_id, key).handshake_headers()
    host, port = _address(deployment)
    lines = ["GET /ws HTTP/1.1", f"Host: {host}:{port}", "Connection: Upgrade", "Upgrade: websocket",
             "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             *(f"{header}: {value}" for header, value in headers.items())]
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    stream = sock.makefile("rb")
    status = stream.readline()
    assert status.split()[1] == b"101", status
    while stream.readline() not in (b"\r\n", b""):
        pass
    return agent_id, sock, stream


def close_frame_after(stream) -> tuple[int | None, bool]:
    """Read (and skip requests) until Kahuna's close frame: its code, and whether the stream then ended."""
    while True:
        opcode, payload = read_server_frame(stream)
        if opcode == -1:
            return None, True
        if opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            return code, read_server_frame(stream)[0] == -1


def lines_about(caplog, agent_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("actors") and agent_id in r.getMessage()]


def rest_answers(deployment) -> int:
    response = deployment.http.request("GET", f"{deployment.base_url}/api/v1/region",
                                       headers={"X-API-Key": MASTER_KEY}, timeout=10, retries=False)
    return response.status


def flood(count: int) -> bytes:
    """*count* useless frames of every kind: replies matching no call, not JSON, requests, text."""
    kinds = [lambda n: frame(b'{"id":%d,"result":{},"error":null}' % (1_000_000 + n)),
             lambda n: frame(b"\xff not json %d" % n),
             lambda n: frame(b'{"id":%d,"method":"Kahuna.Anything","params":{}}' % n),
             lambda n: frame(b"text %d" % n, opcode=0x1)]
    return b"".join(kinds[n % len(kinds)](n) for n in range(count))


def send_on(agent: SimulatedAgent, data: bytes) -> None:
    """Bytes straight onto a simulated agent's socket, between its own writes."""
    with agent._write_lock:
        try:
            agent._ws.sock.sendall(data)
        except OSError:
            pass  # Kahuna closed it meanwhile


@pytest.fixture
def limited(ferretdb, mail_server):
    running = Deployment.start(ferretdb.uri, "kahuna_hostile_agents", mail_server,
                               **{"global.agents.maxGarbageFrames": GARBAGE_LIMIT,
                                  "global.agents.garbageWindowSeconds": 60})
    yield running
    running.stop()


# -- 1. an agent flooding useless frames ----------------------------------------------------


def test_an_agent_past_the_garbage_limit_is_closed_with_1008_in_two_log_lines(limited, caplog):
    caplog.set_level(logging.INFO)
    flooder = limited.simulated_agent("kaktus-1")
    other = limited.simulated_agent("kaktus-2")
    caplog.clear()
    send_on(flooder, flood(GARBAGE_LIMIT))  # the limit itself is tolerated ...
    assert limited.kahuna.plane.call(flooder.id, NODE)["Cores"] == 32
    assert not flooder.closed.is_set()
    send_on(flooder, flood(1))  # ... one more is not
    assert flooder.closed.wait(10) and flooder.close_code == 1008
    limited.wait_until(lambda: limited.kahuna.plane.info(flooder.id) is None, what="flooder unregistered")
    lines = lines_about(caplog, flooder.id)
    assert len(lines) == 2, lines  # the first useless frame, then the disconnection (with the counts)
    assert f"over {GARBAGE_LIMIT} useless frames" in lines[-1] and "49 not logged" in lines[-1]
    assert limited.kahuna.plane.call(other.id, NODE)["Cores"] == 32
    assert rest_answers(limited) == 200
    # Dialling again at once buys no fresh budget: refused before the upgrade for one more window.
    with pytest.raises(HandshakeFailed) as refused:
        flooder.connect()
    assert refused.value.status == 429


def test_an_agent_closed_for_abuse_is_welcome_again_after_its_cool_down(ferretdb, mail_server):
    deployment = Deployment.start(ferretdb.uri, "kahuna_hostile_cool_down", mail_server,
                                  **{"global.agents.maxGarbageFrames": 5,
                                     "global.agents.garbageWindowSeconds": 1})
    try:
        flooder = deployment.simulated_agent("kaktus-1")
        send_on(flooder, flood(6))
        assert flooder.closed.wait(10) and flooder.close_code == 1008
        with pytest.raises(HandshakeFailed):
            flooder.connect()

        def welcome() -> bool:
            try:
                flooder.connect()
            except HandshakeFailed as refusal:
                assert refusal.status == 429
                return False
            return True

        deployment.wait_until(welcome, timeout=15, what="the agent welcome again")
        deployment.wait_until(lambda: deployment.kahuna.plane.info(flooder.id) is not None)
        assert deployment.kahuna.plane.call(flooder.id, NODE)["Cores"] == 32
    finally:
        deployment.stop()


def test_a_big_flood_stops_at_the_limit(limited, caplog):
    caplog.set_level(logging.INFO)
    flooder = limited.simulated_agent("kaktus-1")
    other = limited.simulated_agent("kaktus-2")
    handled = []
    count_garbage = _connection.AgentConnection._count_garbage

    def counting(self, what):  # the actors are greenlets of this process: count the frames they look at
        handled.append(what)
        count_garbage(self, what)

    caplog.clear()
    _connection.AgentConnection._count_garbage = counting
    try:
        sender = gevent.spawn(send_on, flooder, flood(5000))
        assert flooder.closed.wait(10)  # closed (its close frame may be lost in the reset of its unread flood)
        sender.join(10)
        limited.wait_until(lambda: limited.kahuna.plane.info(flooder.id) is None, what="flooder unregistered")
    finally:
        _connection.AgentConnection._count_garbage = count_garbage
    assert len(handled) == GARBAGE_LIMIT + 1  # nothing read past the frame that broke the limit
    assert len(lines_about(caplog, flooder.id)) == 2
    assert limited.kahuna.plane.call(other.id, NODE)["Cores"] == 32
    assert rest_answers(limited) == 200


def test_a_flood_under_the_limit_takes_turns_with_rest_and_is_logged_once(ferretdb, mail_server, caplog):
    deployment = Deployment.start(ferretdb.uri, "kahuna_hostile_flood", mail_server,
                                  **{"global.agents.maxGarbageFrames": 1_000_000,
                                     "global.agents.garbageWindowSeconds": 60})
    handled = []
    count_garbage = _connection.AgentConnection._count_garbage

    def counting(self, what):
        handled.append(what)
        count_garbage(self, what)

    try:
        caplog.set_level(logging.INFO)
        flooder = deployment.simulated_agent("kaktus-1")
        other = deployment.simulated_agent("kaktus-2")
        total = 20_000
        blob = flood(total)
        caplog.clear()
        _connection.AgentConnection._count_garbage = counting
        sender = gevent.spawn(send_on, flooder, blob)
        deployment.wait_until(lambda: handled, what="the flood reaching the agent's actor")
        # Reading a flood already buffered never waits: without taking turns it would be read to its end
        # before anyone else ran. The REST API and the other agent are served in the middle of it.
        assert rest_answers(deployment) == 200
        assert deployment.kahuna.plane.call(other.id, NODE, timeout=10)["Cores"] == 32
        assert len(handled) < total
        sender.join(30)
        deployment.wait_until(lambda: len(handled) == total, timeout=60, what="the whole flood handled")
        assert deployment.kahuna.plane.call(flooder.id, NODE)["Cores"] == 32  # under the limit: still served
        lines = lines_about(caplog, flooder.id)
        assert len(lines) == 1, lines  # one line per window, whatever the flood
    finally:
        _connection.AgentConnection._count_garbage = count_garbage
        deployment.stop()


# -- 2. slowloris ----------------------------------------------------------------------------


def _trickle(address, stop: gevent.event.Event, interval: float) -> socket.socket:
    """A connection sending a request head one header line per *interval*, never its end."""
    sock = socket.create_connection(address, timeout=10)
    sock.sendall(b"GET /api/v1/region HTTP/1.1\r\nHost: x\r\n")

    def drip() -> None:
        n = 0
        while not stop.wait(interval):
            n += 1
            try:
                sock.sendall(b"X-Trickle-%d: %d\r\n" % (n, n))
            except OSError:
                return

    gevent.spawn(drip)
    return sock


def _served(address) -> bytes:
    """A complete request on a new connection: its reply's status line (bounded wait)."""
    with socket.create_connection(address, timeout=10) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return client.makefile("rb").readline()


def _ended(sock: socket.socket) -> bool:
    """Whether Kahuna closed *sock* (whatever it said first); never blocks."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        data = sock.recv(4096, socket.MSG_PEEK)
    except OSError:
        return True
    if not data:
        return True
    assert data.startswith(b"HTTP/1.1 408"), data
    sock.recv(len(data))  # the 408; its end follows
    return _ended(sock)


def test_request_heads_that_trickle_are_closed_at_their_deadline(ferretdb, mail_server):
    # A per-read timeout never trips: each header line comes well within it. The head's deadline does.
    deployment = Deployment.start(ferretdb.uri, "kahuna_slowloris_deadline", mail_server,
                                  **{"global.http.headerTimeoutSeconds": 1.0,
                                     "global.http.idleTimeoutSeconds": 30})
    stop = gevent.event.Event()
    tricklers = []
    try:
        address = _address(deployment)
        tricklers = [_trickle(address, stop, 0.2) for _ in range(20)]
        assert _served(address).startswith(b"HTTP/1.1 200")
        deployment.wait_until(lambda: all(_ended(sock) for sock in tricklers), timeout=20,
                              what="every trickling connection closed")
        assert deployment.kahuna.server.closed_slow["timed_out"] >= len(tricklers)
        assert _served(address).startswith(b"HTTP/1.1 200")
    finally:
        stop.set()
        for sock in tricklers:
            sock.close()
        deployment.stop()


def test_incomplete_requests_cannot_take_every_connection(ferretdb, mail_server):
    # Deadlines far away: only the share of incomplete requests can keep room for a complete one.
    deployment = Deployment.start(ferretdb.uri, "kahuna_slowloris_share", mail_server,
                                  **{"global.http.maxConnections": 20, "global.http.incompleteRequestsShare": 0.5,
                                     "global.http.headerTimeoutSeconds": 60, "global.http.idleTimeoutSeconds": 60})
    stop = gevent.event.Event()
    slow = []
    try:
        address = _address(deployment)
        slow = [_trickle(address, stop, 5.0) for _ in range(40)]  # twice maxConnections
        deployment.wait_until(lambda: sum(_ended(sock) for sock in slow) >= 30, timeout=20,
                              what="the oldest incomplete requests closed")
        assert _served(address).startswith(b"HTTP/1.1 200")  # would wait 60 s for a slot without the share
        assert sum(not _ended(sock) for sock in slow) <= 10
        assert deployment.kahuna.server.closed_slow["evicted"] >= 30
    finally:
        stop.set()
        for sock in slow:
            sock.close()
        deployment.stop()


# -- 3. an unmasked client frame -------------------------------------------------------------


def test_an_unmasked_frame_closes_the_socket_with_1002(deployment):
    other = deployment.simulated_agent("kaktus-2")
    agent_id, sock, stream = raw_agent(deployment, "kaktus-1")
    try:
        deployment.wait_until(lambda: deployment.kahuna.plane.info(agent_id) is not None, what="raw agent known")
        sock.sendall(frame(b'{"id":0,"result":{"Version":"1.0","Methods":[]},"error":null}', masked=False))
        code, ended = close_frame_after(stream)
        assert code == 1002 and ended
        deployment.wait_until(lambda: deployment.kahuna.plane.info(agent_id) is None, what="agent unregistered")
        assert deployment.kahuna.plane.call(other.id, NODE)["Cores"] == 32
    finally:
        sock.close()


def test_the_agents_close_is_echoed_by_kahuna(deployment):
    agent_id, sock, stream = raw_agent(deployment, "kaktus-1")
    try:
        sock.sendall(frame(struct.pack("!H", 1001) + b"bye", opcode=0x8))
        code, ended = close_frame_after(stream)
        assert code == 1001 and ended
        deployment.wait_until(lambda: deployment.kahuna.plane.info(agent_id) is None, what="agent unregistered")
    finally:
        sock.close()


# -- 4. bodies over the limit -------------------------------------------------------------------


def _post(deployment, head: bytes, body_parts: list[bytes]) -> tuple[bytes, dict, bytes]:
    """A raw POST: the reply's status line, headers and body."""
    with socket.create_connection(_address(deployment), timeout=10) as client:
        client.sendall(head)
        for part in body_parts:
            try:
                client.sendall(part)
            except OSError:
                break  # Kahuna answered and closed before the end of the body
        stream = client.makefile("rb")
        status = stream.readline()
        headers = {}
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, stream.read(int(headers.get("content-length", 0)))


def _chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size)] + [
        b"0\r\n\r\n"]


def test_oversized_bodies_are_413_whether_chunked_or_sized(deployment):
    import json

    limit = deployment.kahuna.config.global_.http.maxBodyBytes
    big = b'{"email": "' + b"x" * (limit + 1000) + b'", "password": "x"}'
    chunked_head = (b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
    sized_head = (b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(big))
    for head, parts in ((chunked_head, _chunks(big)), (sized_head, [big])):
        status, headers, body = _post(deployment, head, parts)
        assert status.startswith(b"HTTP/1.1 413"), status
        assert headers["content-type"] == "application/json" and headers["connection"] == "close"
        answer = json.loads(body)
        assert answer["status"] == 413 and answer["error"] == "Request body too large."
        assert str(limit) in answer["reason"]
    # A chunked body under the limit reaches the API whole: a wrong password, not a malformed body.
    small = b'{"email": "nobody@example.com", "password": "wrong"}'
    status, _, body = _post(deployment, chunked_head, _chunks(small, 7))
    assert status.startswith(b"HTTP/1.1 401"), (status, body)
    assert json.loads(body)["status"] == 401


# -- the limits' configuration -------------------------------------------------------------------


@pytest.mark.parametrize("key, value", [("http.headerTimeoutSeconds", 0), ("http.incompleteRequestsShare", 1),
                                        ("http.incompleteRequestsShare", 0), ("http.maxConnections", 1),
                                        ("http.maxBodyBytes", -1), ("agents.maxGarbageFrames", 0),
                                        ("agents.garbageWindowSeconds", 0)])
def test_the_limits_are_validated(tmp_path, key, value):
    section, name = key.split(".")
    path = tmp_path / "kahuna.yml"
    path.write_text(f"global:\n  {section}:\n    {name}: {value}\n")
    with pytest.raises(config.ConfigError, match=f"global.{key}"):
        config.load(path, environ={})


def test_the_sample_configuration_shows_the_defaults():
    sample = config.load(Path(__file__).resolve().parents[1] / "kahuna" / "data" / "kahuna.yml", environ={}).global_
    defaults = config.Config().global_
    for section, name in (("http", "headerTimeoutSeconds"), ("http", "incompleteRequestsShare"),
                          ("agents", "maxGarbageFrames"), ("agents", "garbageWindowSeconds")):
        assert getattr(getattr(sample, section), name) == getattr(getattr(defaults, section), name)
