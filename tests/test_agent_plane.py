"""The agent plane: handshakes, the wire, one actor per agent, calls and their failures."""

import base64
import gc
import json
import random
import socket
import struct
import time

import gevent
import gevent.event
import kowabunga
import pytest
import urllib3
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import WebSocket

from actors._connection import AgentConnection, AgentInfo
from actors._transport import Transport
from kahuna import rpc
from kahuna.errors import AgentCallFailed, AgentDisconnected, AgentTimeout, AgentUnavailable
from kahuna.services.agents import ID_HEADER, KEY_HEADER, TYPE_HEADER, signed_headers
from tests.deployment import ADMIN_EMAIL, Deployment, expect_error
from tests.simulator import HandshakeFailed, SimulatedAgent

NODE = rpc.kaktus.NodeCapabilities


def ws_url(deployment):
    return deployment.base_url.replace("http://", "ws://")


def handshake(deployment, headers, path="/ws"):
    """The status of a raw upgrade request (101 when accepted), on a connection of its own."""
    host, port = deployment.kahuna.server.address[:2]
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: Upgrade", "Upgrade: websocket",
             "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = connection.makefile("rb").readline().decode()
    return int(status_line.split()[1])


# -- REST -----------------------------------------------------------------------------


def test_agent_records_through_the_sdk(deployment):
    agents = kowabunga.AgentApi(deployment.admin)
    kaktus = agents.create_agent(kowabunga.Agent(name="kaktus-1", description="rack 1", type="Kaktus"))
    kiwi = agents.create_agent(kowabunga.Agent(name="kiwi-1", type="Kiwi"))
    assert agents.list_agents() == [kaktus.id, kiwi.id]
    assert agents.read_agent(kaktus.id) == kowabunga.Agent(id=kaktus.id, name="kaktus-1", description="rack 1",
                                                           type="Kaktus")
    renamed = agents.update_agent(kaktus.id, kowabunga.Agent(name="kaktus-01", type="Kaktus"))
    assert renamed.name == "kaktus-01"
    # API 0.58: an agent's type is set at creation only, ignored on update.
    assert agents.update_agent(kaktus.id, kowabunga.Agent(name="kaktus-01", type="Kiwi")).type == "Kaktus"
    expect_error(409, agents.create_agent, kowabunga.Agent(name="kiwi-1", type="Kaktus"))
    expect_error(404, agents.read_agent, "0" * 24)
    response = deployment.http.request("POST", f"{deployment.base_url}/api/v1/agent",
                                       json={"name": "k", "type": "Kontroller"},
                                       headers={"X-API-Key": deployment.admin.configuration.api_key["ApiKeyAuth"]})
    assert response.status == 201  # API 0.58: a Kontroller agent made by hand (Kahuna makes its VMs' own)
    agents.delete_agent(response.json()["id"])
    agents.delete_agent(kiwi.id)
    assert agents.list_agents() == [kaktus.id]
    user = deployment.create_account("bob")
    expect_error(403, kowabunga.AgentApi(deployment.login(user)).list_agents)


def test_the_key_is_mailed_to_the_administrator_and_stored_as_a_digest(deployment):
    agent_id, key = deployment.create_agent("kaktus-1")
    assert len(key) == 64
    token = kowabunga.TokenApi(deployment.admin).read_api_token(kowabunga.TokenApi(deployment.admin)
                                                                 .list_api_tokens()[0])
    assert token.name == "kaktus-1-api-key"
    assert key not in json.dumps(deployment.kahuna.db.db["token"].find_one({}, {"_id": 0}), default=str)
    assert deployment.mail.messages(ADMIN_EMAIL)


# -- handshakes --------------------------------------------------------------------------


def test_handshake_checks_happen_before_the_upgrade(deployment):
    agent_id, key = deployment.create_agent("kaktus-1")
    other_id, other_key = deployment.create_agent("kiwi-1", "Kiwi")
    good = {"X-WS-Kowabunga-Agent": "Kaktus", "X-WS-Kowabunga-Id": agent_id, "X-WS-Kowabunga-Api-Key": key}
    cases = [
        ({k: v for k, v in good.items() if k != "X-WS-Kowabunga-Agent"}, 400),
        ({**good, "X-WS-Kowabunga-Agent": "Kawaii"}, 403),
        ({k: v for k, v in good.items() if k != "X-WS-Kowabunga-Id"}, 400),
        ({**good, "X-WS-Kowabunga-Id": "0" * 24}, 403),
        ({**good, "X-WS-Kowabunga-Id": "not-an-id"}, 403),
        ({k: v for k, v in good.items() if k != "X-WS-Kowabunga-Api-Key"}, 400),
        ({**good, "X-WS-Kowabunga-Api-Key": key[:-1] + ("a" if key[-1] != "a" else "b")}, 403),
        ({**good, "X-WS-Kowabunga-Api-Key": other_key}, 403),
        ({**good, "X-WS-Kowabunga-Agent": "Kiwi"}, 403),
        # Header names are case-insensitive, as the Go agents canonicalize them.
        ({"x-ws-kowabunga-agent": "Kaktus", "X-Ws-Kowabunga-Id": agent_id, "X-WS-KOWABUNGA-API-KEY": key}, 101),
    ]
    for headers, status in cases:
        assert handshake(deployment, headers) == status, headers
    # Only /ws upgrades; any other path is refused before the 101.
    assert handshake(deployment, good, path="/api/v1/user") == 404
    plain = urllib3.request("GET", f"{deployment.base_url}/ws", retries=False)
    assert plain.status == 400 and plain.json()["status"] == 400


def test_an_expired_key_is_refused(deployment):
    agent_id, key = deployment.create_agent("kaktus-1")
    deployment.kahuna.db.db["token"].update_one({"parent_id": agent_id},
                                                {"$set": {"expire": True, "expiration_date": "2020-01-01"}})
    with pytest.raises(HandshakeFailed) as refused:
        SimulatedAgent(ws_url(deployment), "Kaktus", agent_id, key).connect()
    assert refused.value.status == 403


def test_signed_handshakes_cannot_be_replayed(deployment):
    agent_id, key = deployment.create_agent("kaktus-1")
    agent = SimulatedAgent(ws_url(deployment), "Kaktus", agent_id, key, signed=True).connect()
    deployment.wait_until(lambda: deployment.kahuna.plane.info(agent_id) is not None)
    agent.close()
    headers = signed_headers(key, "Kaktus", agent_id, "n" * 24)
    assert handshake(deployment, headers) == 101
    assert handshake(deployment, headers) == 403  # the same nonce again
    stale = signed_headers(key, "Kaktus", agent_id, "m" * 24, timestamp=int(time.time()) - 3600)
    assert handshake(deployment, stale) == 403
    forged = {**signed_headers(key, "Kaktus", agent_id, "o" * 24), "X-WS-Kowabunga-Signature": "0" * 64}
    assert handshake(deployment, forged) == 403
    assert "X-WS-Kowabunga-Api-Key" not in headers


def test_signed_handshakes_can_be_required(ferretdb, mail_server):
    deployment = Deployment.start(ferretdb.uri, "kahuna_require_hmac", mail_server,
                                  **{"global.agents.requireHmac": True})
    try:
        agent_id, key = deployment.create_agent("kaktus-1")
        with pytest.raises(HandshakeFailed):
            SimulatedAgent(ws_url(deployment), "Kaktus", agent_id, key).connect()
        SimulatedAgent(ws_url(deployment), "Kaktus", agent_id, key, signed=True).connect()
        deployment.wait_until(lambda: deployment.kahuna.plane.info(agent_id) is not None)
    finally:
        deployment.stop()


# -- connection life ----------------------------------------------------------------------


def test_connect_asks_capabilities_and_stores_them(deployment):
    agent = deployment.simulated_agent("kaktus-1")
    assert agent.calls[0][0] == "Capabilities"
    info = deployment.kahuna.plane.info(agent.id)
    assert (info.type, info.name, info.version) == ("Kaktus", "kaktus-1", "1.0")
    assert len(info.methods) == 26
    stored = deployment.kahuna.db.db["agent"].find_one({"name": "kaktus-1"})
    assert stored["capabilities"]["version"] == "1.0" and "NodeCapabilities" in stored["capabilities"]["methods"]


def test_a_reconnect_replaces_the_old_connection(deployment):
    first = deployment.simulated_agent("kaktus-1")
    second = SimulatedAgent(ws_url(deployment), "Kaktus", first.id, first.api_key).connect()
    assert first.closed.wait(5) and first.close_code == 4000
    deployment.wait_until(lambda: second.calls_of("Capabilities"))
    assert deployment.kahuna.plane.call(first.id, NODE)["Cores"] == 32
    assert second.calls_of("NodeCapabilities") and not first.calls_of("NodeCapabilities")
    # The replaced connection's end did not unregister its successor.
    gevent.sleep(0.2)
    assert deployment.kahuna.plane.info(first.id) is not None


def test_rotating_or_deleting_the_key_closes_the_socket(deployment):
    agent = deployment.simulated_agent("kaktus-1")
    kowabunga.AgentApi(deployment.admin).set_agent_api_token(agent.id)
    assert agent.closed.wait(5) and agent.close_code == 4001
    with pytest.raises(HandshakeFailed) as refused:
        agent.connect()
    assert refused.value.status == 403
    letter = deployment.mail.wait_for(ADMIN_EMAIL, "agent API key", count=2)
    from tests.mailserver import fact_in
    agent.api_key = fact_in(letter, "API key")
    agent.connect()
    deployment.wait_until(lambda: deployment.kahuna.plane.info(agent.id) is not None)
    tokens = kowabunga.TokenApi(deployment.admin)
    tokens.delete_api_token(tokens.list_api_tokens()[0])
    assert agent.closed.wait(5) and agent.close_code == 4001


def test_deleting_the_agent_closes_the_socket(deployment):
    agent = deployment.simulated_agent("kaktus-1")
    kowabunga.AgentApi(deployment.admin).delete_agent(agent.id)
    assert agent.closed.wait(5)
    assert kowabunga.TokenApi(deployment.admin).list_api_tokens() == []
    with pytest.raises(HandshakeFailed):
        agent.connect()


def test_a_silent_agent_is_declared_dead(ferretdb, mail_server):
    deployment = Deployment.start(ferretdb.uri, "kahuna_dead_agent", mail_server, **{
        "global.agents.pingIntervalSeconds": 0.1, "global.agents.deadAfterSeconds": 0.5})
    try:
        agent = deployment.simulated_agent("kaktus-1")
        healthy = deployment.simulated_agent("kaktus-2")
        agent.behaviour.answer_pings = False
        assert agent.closed.wait(10) and agent.close_code == 4002
        deployment.wait_until(lambda: deployment.kahuna.plane.info(agent.id) is None)
        # The one that answers pings stays.
        gevent.sleep(1)
        assert healthy.connected and deployment.kahuna.plane.info(healthy.id) is not None
    finally:
        deployment.stop()


# -- calls --------------------------------------------------------------------------------


def test_calls_carry_pascal_case_fields_and_results(deployment):
    agent = deployment.simulated_agent("kaktus-1")
    plane = deployment.kahuna.plane
    plane.call(agent.id, rpc.kaktus.CreateRawVolume, {"Pool": "rbd", "Volume": "v1", "Size": 1 << 30})
    assert agent.volumes[("rbd", "v1")]["Size"] == 1 << 30
    content = b"cloud-init"
    plane.call(agent.id, rpc.kaktus.CreateIsoVolume,
               {"Pool": "rbd", "Volume": "v1-ci", "Size": len(content), "Content": content})
    assert agent.volumes[("rbd", "v1-ci")]["Content"] == content
    assert plane.call(agent.id, rpc.kaktus.GetVolumeInfos, {"Pool": "rbd", "Volume": "v1"}) == \
        {"Size": 1 << 30}
    with pytest.raises(AgentCallFailed, match="No such file"):
        plane.call(agent.id, rpc.kaktus.GetVolumeInfos, {"Pool": "rbd", "Volume": "nope"})
    with pytest.raises(AgentUnavailable, match="not connected"):
        plane.call("0" * 24, NODE)


def test_one_request_at_a_time_per_agent(deployment):
    agent = deployment.simulated_agent("kaktus-1")
    agent.behaviour.delays["NodeCapabilities"] = 0.1
    in_flight = []
    original = agent._serve_request

    def watch(ws, message):
        in_flight.append(1)
        assert len(in_flight) == 1, "two requests in flight to one agent"
        try:
            original(ws, message)
        finally:
            in_flight.pop()

    agent._serve_request = watch
    calls = [gevent.spawn(deployment.kahuna.plane.call, agent.id, NODE) for _ in range(5)]
    gevent.joinall(calls, raise_error=True)
    assert all(call.value["Cores"] == 32 for call in calls)


def test_fan_out_to_several_agents(deployment):
    agents = [deployment.simulated_agent(f"kiwi-{n}", "Kiwi") for n in range(3)]
    agents[2].behaviour.failures["CreateDnsRecord"] = "zone is read-only"
    results = deployment.kahuna.plane.broadcast(
        [a.id for a in agents], rpc.kiwi.CreateDnsRecord,
        {"Domain": "acme.internal", "Entry": "web", "Addresses": ["10.0.0.5"]})
    assert results[agents[0].id] == {} and results[agents[1].id] == {}
    assert isinstance(results[agents[2].id], AgentCallFailed)
    assert agents[0].dns_records == {"acme.internal": {"web": ["10.0.0.5"]}}
    chosen = deployment.kahuna.plane.call_any([a.id for a in agents], rpc.kiwi.CreateDnsZone,
                                              {"Domain": "z.internal"})
    assert chosen == {} and sum("z.internal" in a.dns_zones for a in agents) == 1
    with pytest.raises(AgentUnavailable):
        deployment.kahuna.plane.call_any([a.id for a in agents], NODE)  # no Kiwi serves a Kaktus method


def test_a_timed_out_request_holds_the_slot_until_its_late_reply(deployment):
    agent = deployment.simulated_agent("kaktus-1")
    agent.instances["vm"] = {"XML": "<domain/>", "State": "Running", "Autostart": True}
    late = agent.behaviour.hold["GetInstanceState"] = gevent.event.Event()
    with pytest.raises(AgentTimeout, match="did not answer Kaktus.GetInstanceState"):
        deployment.kahuna.plane.call(agent.id, rpc.kaktus.GetInstanceState, {"Name": "vm"},
                                     timeout=0.2)
    next_call = gevent.spawn(deployment.kahuna.plane.call, agent.id, NODE, timeout=60)
    gevent.sleep(0.3)
    # The agent may still be working on the first request: the next one waits for its reply.
    assert agent.calls_of("NodeCapabilities") == [] and agent.outstanding == 1
    late.set()
    assert next_call.get(timeout=30)["Cores"] == 32
    assert agent.max_outstanding == 1
    assert deployment.kahuna.plane.info(agent.id) is not None  # the late reply was expected, not garbage


def test_a_request_never_answered_recycles_the_connection(ferretdb, mail_server):
    deployment = Deployment.start(ferretdb.uri, "kahuna_recycle", mail_server,
                                  **{"global.agents.lateReplyGraceSeconds": 0.5,
                                     "global.agents.pingIntervalSeconds": 0.3})
    try:
        agent = deployment.simulated_agent("kaktus-1")
        agent.behaviour.silent.add("GetInstanceState")
        with pytest.raises(AgentTimeout):
            deployment.kahuna.plane.call(agent.id, rpc.kaktus.GetInstanceState, {"Name": "vm"},
                                         timeout=0.2)
        assert agent.closed.wait(30) and agent.close_code == 4003
        agent.connect()  # what a Go agent does after any close: dial again, and start afresh
        deployment.wait_until(lambda: (info := deployment.kahuna.plane.info(agent.id)) is not None and info.methods,
                              30)
        assert deployment.kahuna.plane.call(agent.id, NODE)["Cores"] == 32
    finally:
        deployment.stop()


def test_replies_late_and_out_of_order_never_meet_two_requests(deployment):
    """An agent that answers each request after its own random delay and writes without a lock, called by
    many callers whose timeouts are shorter than some of its delays: still one request at a time, and every
    answer reaches the caller of its own request."""
    agent = deployment.simulated_agent("kaktus-1")
    sizes = {f"v{n}": (n + 1) << 20 for n in range(8)}
    for name, size in sizes.items():
        agent.volumes[("rbd", name)] = {"Size": size, "Kind": "raw"}
    agent.behaviour.jitter = 0.05
    agent.behaviour.unlocked_replies = True
    plane = deployment.kahuna.plane
    rng = random.Random(13)
    answered, timed_out = [], []

    def caller(seed: int) -> None:
        own = random.Random(seed)
        for _ in range(6):
            name = own.choice(sorted(sizes))
            try:
                result = plane.call(agent.id, rpc.kaktus.GetVolumeInfos, {"Pool": "rbd", "Volume": name},
                                    timeout=own.choice([0.02, 0.05, 30]))
            except AgentTimeout:
                timed_out.append(name)
                continue
            answered.append((name, result["Size"]))

    gevent.joinall([gevent.spawn(caller, rng.random()) for _ in range(20)], raise_error=True)
    assert answered and timed_out  # both happened, or the test proved nothing
    assert all(size == sizes[name] for name, size in answered)
    assert agent.max_outstanding == 1
    assert plane.info(agent.id) is not None and plane.call(agent.id, NODE)["Cores"] == 32


def test_a_close_during_a_large_send_never_cuts_into_its_frame(ferretdb, mail_server):
    """Kahuna closes an agent while a multi-megabyte request is still being written to its slow socket: the
    agent reads the whole request frame, then the close frame."""
    # No ping may come between the frames this test reads.
    deployment = Deployment.start(ferretdb.uri, "kahuna_slow_socket", mail_server,
                                  **{"global.agents.pingIntervalSeconds": 300,
                                     "global.agents.deadAfterSeconds": 600})
    agent_id, key = deployment.create_agent("kaktus-slow")
    host, port = deployment.kahuna.server.address[:2]
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    connection.settimeout(30)
    connection.connect((host, port))
    try:
        lines = ["GET /ws HTTP/1.1", f"Host: {host}:{port}", "Connection: Upgrade", "Upgrade: websocket",
                 "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                 f"{TYPE_HEADER}: Kaktus", f"{ID_HEADER}: {agent_id}", f"{KEY_HEADER}: {key}"]
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        stream = connection.makefile("rb")
        assert b" 101 " in stream.readline()
        while stream.readline() not in (b"\r\n", b""):
            pass
        opcode, welcome = read_frame(stream)
        assert opcode == 2 and json.loads(welcome)["method"] == "Kaktus.Capabilities"
        capabilities = {"Version": "1.0", "Methods": sorted(rpc.CATALOG["Kaktus"])}
        connection.sendall(masked_frame(2, json.dumps({"id": json.loads(welcome)["id"], "result": capabilities,
                                                       "error": None}).encode()))
        deployment.wait_until(lambda: (info := deployment.kahuna.plane.info(agent_id)) is not None and info.methods)
        content = bytes(range(256)) * (24 << 10)  # 6 MiB, some 8 MiB of JSON: far more than the socket buffers
        call = gevent.spawn(deployment.kahuna.plane.call, agent_id, rpc.kaktus.CreateIsoVolume,
                            {"Pool": "rbd", "Volume": "big", "Size": len(content), "Content": content}, timeout=60)
        # Once the request's first bytes are here its frame is being written, and cannot be written at once.
        connection.recv(1, socket.MSG_PEEK)
        assert deployment.kahuna.plane.disconnect(agent_id, "closed mid-send")
        opcode, request = read_frame(stream)
        assert opcode == 2 and json.loads(request)["method"] == "Kaktus.CreateIsoVolume"
        assert base64.b64decode(json.loads(request)["params"]["Content"]) == content
        opcode, close = read_frame(stream)
        assert opcode == 8 and struct.unpack("!H", close[:2])[0] == 1000
        with pytest.raises(AgentDisconnected):
            call.get(timeout=30)
    finally:
        connection.close()
        deployment.stop()


def read_frame(stream) -> tuple[int, bytes]:
    """One unmasked server frame (opcode, payload) from *stream*."""
    first, second = stream.read(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", stream.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", stream.read(8))[0]
    assert first & 0x80, "fragmented frame"
    payload = stream.read(length)
    assert len(payload) == length, "frame cut short"
    return first & 0x0F, payload


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    header = bytes([0x80 | opcode]) + (bytes([0x80 | len(payload)]) if len(payload) < 126 else
                                         bytes([0x80 | 126]) + struct.pack("!H", len(payload)))
    return header + mask + bytes(byte ^ mask[n % 4] for n, byte in enumerate(payload))


def test_a_disconnect_mid_call_fails_the_caller_at_once(deployment):
    agent = deployment.simulated_agent("kaktus-1")
    agent.behaviour.drop_on.add("GetInstanceState")
    # AgentDisconnected, not AgentTimeout: the caller failed on the disconnect, without waiting out its timeout.
    with pytest.raises(AgentDisconnected):
        deployment.kahuna.plane.call(agent.id, rpc.kaktus.GetInstanceState, {"Name": "x"},
                                     timeout=300)
    deployment.wait_until(lambda: deployment.kahuna.plane.info(agent.id) is None)


def test_malformed_frames_harm_no_one(deployment):
    noisy = deployment.simulated_agent("kaktus-1")
    other = deployment.simulated_agent("kaktus-2")
    for garbage in ("text frame", b"\xff\xfe not json", b'{"no":"id"}', b'{"id":999,"result":{},"error":null}',
                    b"[1,2,3]"):
        noisy.send_raw(garbage)
    assert deployment.kahuna.plane.call(noisy.id, NODE)["Cores"] == 32
    assert deployment.kahuna.plane.call(other.id, NODE)["Cores"] == 32
    for _ in range(25):
        noisy.send_raw(b"garbage")
    assert noisy.closed.wait(5) and noisy.close_code == 1008
    assert deployment.kahuna.plane.call(other.id, NODE)["Cores"] == 32


def test_an_oversized_message_closes_only_that_agent(ferretdb, mail_server):
    deployment = Deployment.start(ferretdb.uri, "kahuna_big_message", mail_server,
                                  **{"global.agents.maxMessageBytes": 4096})
    try:
        big = deployment.simulated_agent("kaktus-1")
        other = deployment.simulated_agent("kaktus-2")
        big.send_raw(b"x" * 10000)
        assert big.closed.wait(5) and big.close_code == 1009
        assert deployment.kahuna.plane.call(other.id, NODE)["Cores"] == 32
    finally:
        deployment.stop()


def test_closed_connections_leave_no_cycles(deployment):
    """Connected agents' objects are set aside from the collector's passes (kahuna/collector.py): once
    closed, they must be freed by reference counting alone, leaving no cycle behind."""
    agents = [deployment.simulated_agent(f"kaktus-{n}") for n in range(3)]
    plane = deployment.kahuna.plane
    gc.collect()
    for agent in agents:
        assert plane.disconnect(agent.id, "test over")
    deployment.wait_until(lambda: not plane.count_by_type() and not deployment.kahuna.server.clients)
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        # By type(), not isinstance(): the garbage may hold dead weak proxies, which isinstance() dereferences.
        kept = (AgentConnection, AgentInfo, Transport, WebSocket, WebSocketHandler)
        left = [type(o).__name__ for o in list(gc.garbage)
                if issubclass(type(o), kept) or (type(o) is type and str(vars(o).get("__module__", "")).startswith(
                    ("geventwebsocket", "actors")))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []
