"""The agent registry's queries cost what they ask, not what is connected (no database, no sockets)."""

import pytest

from actors._connection import AgentInfo
from actors._messages import (
    TICK,
    Call,
    CallAgent,
    CallAny,
    Close,
    ConnectedAmong,
    CountByType,
    DisconnectAll,
    Register,
    SetCapabilities,
    Unregister,
)
from actors._registry import PING_SLICES, AgentRegistry
from kahuna import rpc
from kahuna.errors import AgentUnavailable

NODE = rpc.kaktus.NodeCapabilities
CONNECTED = 2000


class FakeConnection:
    """Stands for a connection actor's ref: records what it is told."""

    def __init__(self):
        self.told = []

    def tell(self, message):
        self.told.append(message)


class CountingDict(dict):
    """The registry's table of agents, counting the walks over all of it."""

    walks = 0

    def values(self):
        CountingDict.walks += 1
        return super().values()

    def items(self):
        CountingDict.walks += 1
        return super().items()

    def __iter__(self):
        CountingDict.walks += 1
        return super().__iter__()


class CountingRegistry(AgentRegistry):
    def __init__(self, on_welcomed):
        super().__init__(on_welcomed)
        self._agents = CountingDict()


@pytest.fixture
def registry():
    welcomed = []
    ref = CountingRegistry.start(welcomed.append)
    connections = {}
    for n in range(CONNECTED):
        agent_id = f"agent-{n:05d}"
        connections[agent_id] = FakeConnection()
        ref.tell(Register(AgentInfo(agent_id, rpc.KAKTUS if n % 2 else rpc.KIWI, agent_id), connections[agent_id]))
        ref.tell(SetCapabilities(agent_id, connections[agent_id], "1.0", tuple(rpc.CATALOG[rpc.KAKTUS if n % 2
                                                                                           else rpc.KIWI])))
    assert ref.ask(CountByType(), timeout=10) == {rpc.KAKTUS: CONNECTED // 2, rpc.KIWI: CONNECTED // 2}
    assert len(welcomed) == CONNECTED
    CountingDict.walks = 0
    yield ref, connections
    ref.stop()


def test_queries_walk_only_the_ids_asked(registry):
    ref, connections = registry
    asked = ("agent-00001", "agent-00002", "nobody")
    assert ref.ask(ConnectedAmong(asked), timeout=10) == ["agent-00001", "agent-00002"]
    call = Call(NODE, {})
    ref.tell(CallAny(asked, call))  # only agent-00001 is a Kaktus
    ref.ask(CountByType(), timeout=10)
    assert connections["agent-00001"].told[-1] is call and call.connection is connections["agent-00001"]
    assert CountingDict.walks == 0


def test_calls_are_routed_or_failed_at_once(registry):
    ref, connections = registry
    missing, wrong_type = Call(NODE, {}), Call(NODE, {})
    ref.tell(CallAgent("nobody", missing))
    ref.tell(CallAgent("agent-00002", wrong_type))  # a Kiwi
    with pytest.raises(AgentUnavailable, match="not connected"):
        missing.reply.get(timeout=10)
    with pytest.raises(AgentUnavailable, match="does not serve Kaktus.NodeCapabilities"):
        wrong_type.reply.get(timeout=10)
    assert CountingDict.walks == 0


def test_each_tick_pings_one_slice(registry):
    ref, connections = registry
    for _ in range(PING_SLICES):
        ref.tell(TICK)
    ref.ask(CountByType(), timeout=10)
    ticked = [sum(1 for message in c.told if message is TICK) for c in connections.values()]
    assert ticked == [1] * CONNECTED  # one ping interval: every agent once
    assert CountingDict.walks == 0


def test_a_late_unregistration_cannot_remove_a_successor(registry):
    ref, connections = registry
    successor = FakeConnection()
    ref.tell(Register(AgentInfo("agent-00001", rpc.KAKTUS, "agent-00001"), successor))
    ref.tell(Unregister("agent-00001", connections["agent-00001"]))
    assert ref.ask(ConnectedAmong(("agent-00001",)), timeout=10) == ["agent-00001"]
    assert isinstance(connections["agent-00001"].told[-1], Close) and connections["agent-00001"].told[-1].code == 4000
    assert ref.ask(DisconnectAll(1001, "passive"), timeout=10) == CONNECTED
    assert ref.ask(CountByType(), timeout=10) == {}
