"""The simulated platform of :mod:`tests.topology`, served by a real ``kahuna serve`` process
(:class:`tests.harness.KahunaNode`) instead of an in-process Kahuna: for tests that kill the node.

:class:`NodePlatform` has what :func:`tests.topology.build` uses of a
:class:`tests.deployment.Deployment` (``admin`` and ``simulated_agent``), so the same
2 regions / 3 zones topology is built through the SDK against the node's URL. Its
simulated agents stay connected in the background (they reconnect, with a short
back-off, to the node restarted on the same port).
"""

from __future__ import annotations

import typing
from pathlib import Path

import kowabunga as k
import pymongo
from bson import ObjectId

from tests import topology
from tests.deployment import ADMIN_EMAIL, MASTER_KEY
from tests.harness import KahunaNode, wait_until
from tests.mailserver import MailServer, fact_in
from tests.simulator import Backoff, SimulatedAgent

AGENT_BACKOFF = {"initial": 0.1, "cap": 0.5}


class NodePlatform:
    """A ``kahuna serve`` on *db_name* (in the FerretDB at *db_uri*), and the agents simulated for it."""

    def __init__(self, workdir: Path, db_uri: str, db_name: str, mail: MailServer, **node: typing.Any):
        """*node*: more arguments of every :class:`KahunaNode` (``command`` and ``cwd``: an installed Kahuna)."""
        self.workdir = workdir
        self.node_arguments = node
        self.db_uri = db_uri
        self.db_name = db_name
        self.mail = mail
        self.agents: list[SimulatedAgent] = []
        self.generation = 0
        self.settings: dict[str, typing.Any] = {
            "publicUrl": "http://127.0.0.1:1", "apiKey": MASTER_KEY, "adminEmail": ADMIN_EMAIL,
            "db": {"uri": db_uri, "name": db_name},
            "smtp": {"host": "127.0.0.1", "port": mail.port, "security": "none"},
            "bootstrap": {"pubkey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKahunaTestKey test"},
            "accounts": {"bcryptCost": 4},
            "http": {"shutdownGraceSeconds": 0.1},
        }
        self.node = KahunaNode(workdir, "node-0", self.settings, **node)
        self.mongo = pymongo.MongoClient(db_uri, serverSelectionTimeoutMS=10000)
        self.db = self.mongo[db_name]

    # -- what tests.topology.build needs of a Deployment ------------------------------------

    @property
    def base_url(self) -> str:
        return self.node.url

    def client(self) -> k.ApiClient:
        """A superAdmin SDK client of the current node, without retries (a lost request fails at once)."""
        configuration = k.Configuration(host=f"{self.node.url}/api/v1")
        configuration.api_key = {"ApiKeyAuth": MASTER_KEY}
        configuration.retries = False
        return k.ApiClient(configuration)

    @property
    def admin(self) -> k.ApiClient:
        return self.client()

    def create_agent(self, name: str, agent_type: str) -> tuple[str, str]:
        agents = k.AgentApi(self.admin)
        agent = agents.create_agent(k.Agent(name=name, type=agent_type))
        count = self.mail.count(ADMIN_EMAIL, "agent API key") + 1
        agents.set_agent_api_token(agent.id)
        letter = self.mail.wait_for(ADMIN_EMAIL, "agent API key", count=count)
        assert fact_in(letter, "Agent ID") == agent.id
        return agent.id, fact_in(letter, "API key")

    def simulated_agent(self, name: str, agent_type: str = "Kaktus") -> SimulatedAgent:
        """An agent that stays connected (reconnecting after every loss), once Kahuna has its capabilities."""
        agent_id, key = self.create_agent(name, agent_type)
        agent = SimulatedAgent(self.node.url.replace("http://", "ws://"), agent_type, agent_id, key, name=name)
        agent.run(Backoff(**AGENT_BACKOFF))
        wait_until(lambda: (self.db.agent.find_one({"_id": ObjectId(agent_id)}) or {}).get("capabilities"), 20,
                   f"capabilities of agent {name}")
        self.agents.append(agent)
        return agent

    # -- the node's life --------------------------------------------------------------------

    def kill(self) -> None:
        self.node.kill()

    def restart(self) -> KahunaNode:
        """A new ``kahuna serve`` on the same database, configuration and port (where the agents dial)."""
        self.generation += 1
        self.node = KahunaNode(self.workdir, f"node-{self.generation}", self.settings, port=self.node.port,
                               **self.node_arguments)
        return self.node

    def connected_agents(self) -> dict[str, float]:
        try:
            return {kind: self.node.metric("kahuna_agents_connected", f'type="{kind}"') for kind in ("Kaktus", "Kiwi")}
        except Exception:  # noqa: BLE001 - not answering yet
            return {}

    def stop(self) -> None:
        for agent in self.agents:
            agent.close()
        if self.node.process.poll() is None:
            self.node.stop()
        self.mongo.drop_database(self.db_name)
        self.mongo.close()


def build(platform: NodePlatform, extra_subnets: int = 8) -> topology.Topology:
    """The topology of :func:`tests.topology.build` (templates included), with *extra_subnets* more private
    /26 per region, so that projects made round after round (and any that leak) do not exhaust them."""
    t = topology.build(platform, with_templates=True)  # type: ignore[arg-type] - duck-typed Deployment
    vnets = k.VnetApi(t.api)
    for region, octet, zones_count in (("eu-west", 50, 2), ("eu-east", 60, 1)):
        for n in range(extra_subnets):
            third, base = 1 + n // 4, (n % 4) * 64
            t.subnets[f"{region}-extra-{n}"] = vnets.create_subnet(t.vnets[f"{region}-private"].id, k.Subnet(
                name=f"vpc-extra-{n}", cidr=f"10.{octet}.{third}.{base}/26", gateway=f"10.{octet}.{third}.{base + 1}",
                reserved=[k.IpRange(first=f"10.{octet}.{third}.{base + 2}", last=f"10.{octet}.{third}.{base + 5}")],
                gw_pool=[k.IpRange(first=f"10.{octet}.{third}.{base + 6}",
                                   last=f"10.{octet}.{third}.{base + 5 + zones_count}")]))
    return t
