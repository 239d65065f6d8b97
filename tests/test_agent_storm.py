"""Reconnect storms: what the agents' handshakes and their post-connection work cost the database.

After a restart or a failover every agent reconnects at once. Kahuna's own MongoDB client is
given a pymongo command listener here, and the tests count the commands that Kahuna sends:

- the post-connection work of a batch of agents (:meth:`AgentService.on_agents_connected`)
  costs the same few queries whatever the batch's size, and writes only what changed;
- after the preload that starts each active term, a known agent's handshake costs no database
  command at all (a signed one, the insert of its nonce), and a key revoked, rotated or
  deleted after the preload is still refused at the next handshake.

The agent plane's own hook is replaced by a recorder: the batches are handed to the service
by the test, so that no welcome runs behind the test's back while it counts. And cached
documents live an hour here: on a busy machine, no entry may expire between two steps of a
test (only writes, clears and the lease make them go).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import os
import time
from dataclasses import dataclass

import gevent
import gevent.event
import kowabunga as k
import pytest
from bson import ObjectId
from pymongo import monitoring

import kahuna.daemon
import kahuna.storage.cache
from kahuna import rpc
from kahuna.services.agents import NONCE_PRUNE_INTERVAL
from kahuna.storage import Database
from tests.deployment import ADMIN_EMAIL, Deployment
from tests.mailserver import fact_in
from tests.simulator import HandshakeFailed, SimulatedAgent

_names = itertools.count()

READS = ("find", "getMore")
WRITES = ("insert", "update", "delete", "findAndModify")


@dataclass(frozen=True)
class Command:
    name: str
    collection: str
    body: dict


class CommandLog(monitoring.CommandListener):
    """Every command Kahuna's client sends, in order."""

    def __init__(self) -> None:
        self.commands: list[Command] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        collection = event.command.get(event.command_name)
        self.commands.append(Command(event.command_name, collection if isinstance(collection, str) else "",
                                     dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def mark(self) -> int:
        return len(self.commands)

    def since(self, mark: int) -> list[Command]:
        """The commands sent since *mark*, but for what Kahuna does in the background: the crash-recovery
        loop's counts (``aggregate``, every 10 s) and the HA lease's steps."""
        return [command for command in self.commands[mark:]
                if command.name != "aggregate" and not command.collection.startswith("lease")]

    def preloaded_since(self, mark: int) -> bool:
        """The preload of the agents' credentials has been sent since *mark*: it reads the tokens, the keys,
        then the agents, and then has nothing more to ask."""
        return any(command.name == "find" and command.collection == "agent" for command in self.commands[mark:])


def reads_by_collection(commands: list[Command]) -> collections.Counter:
    return collections.Counter(command.collection for command in commands if command.name in READS)


def writes_to(commands: list[Command], collection: str) -> list[Command]:
    return [command for command in commands if command.name in WRITES and command.collection == collection]


def counted_kahuna(ferretdb, mail_server, monkeypatch, commands: CommandLog, db_name: str,
                   keep_database: bool = False, **overrides) -> tuple[Deployment, list]:
    """A Kahuna whose client reports to *commands*, whose cache keeps documents for an hour, and whose plane's
    batches are recorded (the list returned) rather than worked on."""
    monkeypatch.setattr(kahuna.daemon, "Database", functools.partial(Database, event_listeners=[commands]))
    monkeypatch.setattr(kahuna.storage.cache, "PRELOAD_MAX_AGE", 3600.0)
    deployment = Deployment.start(ferretdb.uri, db_name, mail_server, keep_database=keep_database, **overrides)
    deployment.kahuna.db.cache.max_age = 3600.0
    welcomed: list = []
    deployment.kahuna.plane.set_on_connected(welcomed.extend)
    return deployment, welcomed


def start(ferretdb, mail_server, monkeypatch, commands: CommandLog, db_name: str,
          keep_database: bool = False) -> tuple[Deployment, list]:
    """:func:`counted_kahuna`, once its start-up preload of the agents' credentials (in the background) has been
    sent."""
    mark = commands.mark()
    deployment, welcomed = counted_kahuna(ferretdb, mail_server, monkeypatch, commands, db_name, keep_database)
    deployment.wait_until(lambda: commands.preloaded_since(mark), 20, "start-up preload")
    return deployment, welcomed


@pytest.fixture
def counted(ferretdb, mail_server, monkeypatch):
    commands = CommandLog()
    deployment, welcomed = start(ferretdb, mail_server, monkeypatch, commands,
                                 f"kahuna_storm_{os.getpid()}_{next(_names)}")
    yield deployment, commands, welcomed
    deployment.stop()


def new_agent(deployment: Deployment, name: str, agent_type: str) -> SimulatedAgent:
    """An agent record and its key (issued by the service: no e-mail to wait for), not connected yet."""
    services = deployment.kahuna.services
    record = services.agents.create(name, "", agent_type)
    key = services.tokens.issue_instance_agent_key(record)
    return SimulatedAgent(deployment.base_url.replace("http://", "ws://"), agent_type, str(record["_id"]), key,
                          name=name)


@dataclass
class Fleet:
    kaktus: list[SimulatedAgent]
    kiwi: list[SimulatedAgent]
    kontroller: list[SimulatedAgent]

    def __iter__(self):
        return iter([*self.kaktus, *self.kiwi, *self.kontroller])


def fleet(deployment: Deployment, welcomed: list, kaktuses: int, kiwis: int, kontrollers: int) -> Fleet:
    """Connected agents: each Kaktus agent serves a Kaktus of its own and the region's one pool; the first Kiwi
    agent a Kiwi alone, the others together another Kiwi (the region has one DNS record)."""
    agents = Fleet([new_agent(deployment, f"kaktus-{n}", rpc.KAKTUS).connect() for n in range(kaktuses)],
                   [new_agent(deployment, f"kiwi-{n}", rpc.KIWI).connect() for n in range(kiwis)],
                   [new_agent(deployment, f"kontroller-{n}", rpc.KONTROLLER).connect() for n in range(kontrollers)])
    deployment.wait_until(lambda: {info.id for info in welcomed} >= {agent.id for agent in agents}, 20,
                          "every agent welcomed by the plane")
    regions = k.RegionApi(deployment.admin)
    region = regions.create_region(k.Region(name="eu", domain="eu.acme.internal"))
    zone = regions.create_zone(region.id, k.Zone(name="a"))
    for n, agent in enumerate(agents.kaktus):
        k.ZoneApi(deployment.admin).create_kaktus(zone.id, k.Kaktus(name=f"k-{n}", agents=[agent.id]))
    regions.create_storage_pool(region.id, k.StoragePool(name="ssd", pool="rbd-ssd",
                                                         agents=[agent.id for agent in agents.kaktus]))
    regions.create_kiwi(region.id, k.Kiwi(name="dns-a", agents=[agents.kiwi[0].id]))
    regions.create_kiwi(region.id, k.Kiwi(name="dns-b", agents=[agent.id for agent in agents.kiwi[1:]]))
    regions.create_region_dns_record(region.id, k.DnsRecord(name="ntp", addresses=["10.50.0.2"]))
    return agents


def batch_of(welcomed: list, agents) -> list:
    """The plane's records (id, type, version, methods…) of *agents*, as a batch of the plane hands them over."""
    latest = {info.id: info for info in welcomed}
    return [latest[agent.id] for agent in agents]


def calls(agents, name: str) -> int:
    return sum(len(agent.calls_of(name)) for agent in agents)


# -- post-connection work ----------------------------------------------------------------------


def test_a_batch_costs_one_query_per_collection_of_holders_whatever_its_size(counted):
    deployment, commands, welcomed = counted
    agents = fleet(deployment, welcomed, kaktuses=10, kiwis=5, kontrollers=5)
    small = Fleet(agents.kaktus[:2], agents.kiwi[:1], agents.kontroller[:1])
    large = Fleet(agents.kaktus[2:], agents.kiwi[1:], agents.kontroller[1:])
    services, cache = deployment.kahuna.services, deployment.kahuna.db.cache
    reads, agent_writes = [], []
    for batch in (small, large):
        scans, pool_scans = calls(batch.kaktus, "NodeCapabilities"), calls(agents.kaktus, "GetStoragePoolStats")
        reloads = calls([*batch.kiwi, *batch.kontroller], "Reload")
        cache.clear()  # the agents' documents are read from the database, however long ago their handshakes were
        mark = commands.mark()
        services.agents.on_agents_connected(batch_of(welcomed, batch))
        sent = commands.since(mark)
        reads.append(reads_by_collection(sent))
        agent_writes.append(writes_to(sent, "agent"))
        assert writes_to(sent, "kaktus") == []  # the nodes are as their scans at creation stored them
        # The work was done: every Kaktus scanned from its agent, the pool once, every Kiwi agent reloaded with
        # the region's records, every Kontroller reloaded.
        assert calls(batch.kaktus, "NodeCapabilities") == scans + len(batch.kaktus)
        assert calls(agents.kaktus, "GetStoragePoolStats") == pool_scans + 1
        assert calls([*batch.kiwi, *batch.kontroller], "Reload") == reloads + len(batch.kiwi) + len(batch.kontroller)
        assert all(agent.calls_of("Reload")[-1] == {"Domains": [{"Name": "eu.acme.internal", "Records": [
            {"Name": "ntp", "Type": "A", "Addresses": ["10.50.0.2"]}]}]} for agent in batch.kiwi)
    # 4 agents, then 16: one query per collection of holders; the agents' own documents, not in memory here,
    # are read by _id (FerretDB scans the whole collection for an `_id: {$in: ...}`, not for an _id); each Kiwi
    # agent reads its region's records twice (to replay them, then to remove any deleted meanwhile).
    for batch, counted in zip((small, large), reads, strict=True):
        region_reads = 2 * len(batch.kiwi)
        assert counted == {"agent": len(list(batch)), "kaktus": 1, "storage_pool": 1, "kiwi": 1,
                           "project": region_reads, "dns_record": region_reads, "instance": region_reads}
    # Capabilities never stored before: each written once, by _id alone.
    for batch, writes in zip((small, large), agent_writes, strict=False):
        filters = [update["q"] for write in writes for update in write.body["updates"]]
        assert sorted(str(query["_id"]) for query in filters) == sorted(agent.id for agent in batch)
        assert all(list(query) == ["_id"] for query in filters)
    stored = deployment.kahuna.db.agents.get(agents.kiwi[0].id)["capabilities"]
    assert stored == {"version": "1.1", "methods": sorted(rpc.CATALOG[rpc.KIWI])}


def test_known_capabilities_are_read_from_memory_and_only_changed_ones_written(counted):
    deployment, commands, welcomed = counted
    agents = fleet(deployment, welcomed, kaktuses=3, kiwis=2, kontrollers=3)
    services = deployment.kahuna.services
    services.agents.on_agents_connected(batch_of(welcomed, agents))  # the first time: capabilities recorded
    services.agents.preload_credentials()  # as when an active term starts: every agent in memory
    mark = commands.mark()
    services.agents.on_agents_connected(batch_of(welcomed, agents))
    sent = commands.since(mark)
    assert reads_by_collection(sent)["agent"] == 0 and writes_to(sent, "agent") == []
    # An agent upgraded since: its capabilities are written, its alone.
    upgraded = dataclasses.replace(batch_of(welcomed, agents.kiwi[:1])[0], version="1.2")
    mark = commands.mark()
    services.agents.on_agents_connected([upgraded, *batch_of(welcomed, agents.kaktus)])
    writes = writes_to(commands.since(mark), "agent")
    assert [update["q"] for write in writes for update in write.body["updates"]] == \
        [{"_id": ObjectId(agents.kiwi[0].id)}]
    assert deployment.kahuna.db.agents.get(agents.kiwi[0].id)["capabilities"]["version"] == "1.2"


def test_a_failing_holder_stops_no_other(counted, caplog):
    deployment, commands, welcomed = counted
    agents = fleet(deployment, welcomed, kaktuses=3, kiwis=1, kontrollers=2)
    agents.kontroller[0].behaviour.failures["Reload"] = "no metadata yet"  # an agent's error: logged, as ever
    # Kaktus k-0, whose node has changed, is deleted while its agent answers the scan: writing the scan fails.
    agents.kaktus[0].node["Memory"] = 512 << 30
    answer = gevent.event.Event()
    agents.kaktus[0].behaviour.hold["NodeCapabilities"] = answer
    scans, scans_of_k0 = calls(agents.kaktus, "NodeCapabilities"), calls(agents.kaktus[:1], "NodeCapabilities")
    welcome = gevent.spawn(deployment.kahuna.services.agents.on_agents_connected, batch_of(welcomed, agents))
    agents.kaktus[0].wait_for_call("NodeCapabilities", count=scans_of_k0 + 1)
    deployment.kahuna.db.kaktuses.delete_many({"name": "k-0"})
    answer.set()
    welcome.get(timeout=30)
    assert "post-connection work for Kaktus k-0 failed" in caplog.text
    assert calls(agents.kaktus, "NodeCapabilities") == scans + 3
    # The other hooks of the batch ran all the same.
    assert agents.kontroller[1].calls_of("Reload") and agents.kiwi[0].calls_of("Reload")


# -- handshakes ---------------------------------------------------------------------------------


@pytest.fixture
def restarted(ferretdb, mail_server, monkeypatch):
    """A fleet made on one Kahuna, then a second Kahuna started on the same database (a restart, or the
    other node of a pair taking over), which preloads the agents' credentials as it starts."""
    commands = CommandLog()
    name = f"kahuna_storm_{os.getpid()}_{next(_names)}"
    first, welcomed = start(ferretdb, mail_server, monkeypatch, commands, name)
    agents = [new_agent(first, f"agent-{n}", agent_type)
              for n, agent_type in enumerate([rpc.KAKTUS] * 3 + [rpc.KIWI] * 2 + [rpc.KONTROLLER] * 3)]
    second, _ = start(ferretdb, mail_server, monkeypatch, commands, name, keep_database=True)
    url = second.base_url.replace("http://", "ws://") + "/ws"
    for agent in agents:
        agent.url = url
    yield second, commands, agents
    second.stop()
    first.stop()


def test_after_the_preload_a_known_agents_handshake_costs_no_database_command(restarted):
    deployment, commands, agents = restarted
    mark = commands.mark()
    for agent in agents:
        agent.connect()
    assert commands.since(mark) == []
    assert all(agent.connected for agent in agents)
    # An agent the preload did not know (made since) costs its three lookups, once.
    late = new_agent(deployment, "late", rpc.KAKTUS)
    mark = commands.mark()
    late.connect()
    assert sorted((command.name, command.collection) for command in commands.since(mark)) == \
        [("find", "agent"), ("find", "api_key"), ("find", "token")]
    late.close()
    mark = commands.mark()
    late.connect()
    assert commands.since(mark) == []


def test_after_the_preload_a_signed_handshake_only_records_its_nonce(restarted):
    deployment, commands, agents = restarted
    started, mark = time.monotonic(), commands.mark()
    for agent in agents:
        agent.signed = True
        agent.connect()
    sent = commands.since(mark)
    assert [(command.name, command.collection) for command in sent if command.name != "delete"] == \
        [("insert", "agent_nonce")] * len(agents)
    # Old nonces are pruned now and then, not at every handshake.
    prunes = [command.collection for command in sent if command.name == "delete"]
    assert set(prunes) <= {"agent_nonce"}
    assert len(prunes) <= 1 + (time.monotonic() - started) // NONCE_PRUNE_INTERVAL


def test_a_key_revoked_rotated_or_deleted_after_the_preload_is_refused(restarted):
    deployment, commands, agents = restarted
    revoked, rotated, deleted, untouched = agents[0], agents[1], agents[2], agents[6]
    api = deployment.admin
    token = deployment.kahuna.services.tokens.token_of("agent", revoked.id)
    k.TokenApi(api).delete_api_token(str(token["_id"]))
    count = deployment.mail.count(ADMIN_EMAIL, "agent API key") + 1
    k.AgentApi(api).set_agent_api_token(rotated.id)
    new_key = fact_in(deployment.mail.wait_for(ADMIN_EMAIL, "agent API key", count=count), "API key")
    k.AgentApi(api).delete_agent(deleted.id)
    for signed in (False, True):
        for agent in (revoked, rotated, deleted):
            agent.signed = signed
            with pytest.raises(HandshakeFailed) as refused:
                agent.connect()
            assert refused.value.status == 403
    rotated.api_key = new_key
    assert rotated.connect().connected
    rotated.close()
    rotated.signed = False
    assert rotated.connect().connected
    mark = commands.mark()
    assert untouched.connect().connected
    assert commands.since(mark) == []  # the others' credentials are still served from memory


def test_the_node_that_takes_over_preloads_the_agents_credentials(ferretdb, mail_server, monkeypatch):
    name = f"kahuna_storm_{os.getpid()}_{next(_names)}"
    ha = {"global.ha.enabled": True, "global.ha.leaseSeconds": 3.0}
    nodes: list[tuple[Deployment, CommandLog]] = []
    for node in ("first", "second"):
        commands = CommandLog()
        deployment, _ = counted_kahuna(ferretdb, mail_server, monkeypatch, commands, name, node == "second", **ha,
                                       **{"global.ha.nodeName": node})
        nodes.append((deployment, commands))
    try:
        nodes[0][0].wait_until(lambda: sum(node.kahuna.lease.is_active() for node, _ in nodes) == 1, 30,
                               "one node active")
        (active, _), (taker, commands) = sorted(nodes, key=lambda node: not node[0].kahuna.lease.is_active())
        agents = [new_agent(active, f"agent-{n}", agent_type)
                  for n, agent_type in enumerate([rpc.KAKTUS, rpc.KIWI, rpc.KONTROLLER])]
        mark = commands.mark()
        active.kahuna.lease.stop(release=False)  # the active node dies
        taker.wait_until(lambda: taker.kahuna.lease.is_active() and commands.preloaded_since(mark), 30,
                         "the other node active, the agents' credentials preloaded")
        mark = commands.mark()
        for agent in agents:
            agent.url = taker.base_url.replace("http://", "ws://") + "/ws"
            assert agent.connect().connected
        assert commands.since(mark) == []
    finally:
        for node, _ in reversed(nodes):
            node.stop()
