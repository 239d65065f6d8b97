"""Placement decisions through the fakes: what the Kaktus agents report (kahuna.services.nodes), the nodes a zone
offers and the claim of an instance on the elected one (kahuna.services.instances), and the plan of a Kompute
(kahuna.services.komputes)."""

from types import SimpleNamespace

import pytest

from kahuna.access import AuthMethod, Identity, Role
from kahuna.costs import Pricing
from kahuna.errors import AgentCallFailed, Conflict, NotFound, QuotaExceeded, Unprocessable
from kahuna.services._undo import Undo
from kahuna.services.dns import DnsService
from kahuna.services.instances import InstanceService, NewAdapter, Plan
from kahuna.services.komputes import KomputeService
from kahuna.services.networks import SubnetService
from kahuna.services.nodes import NO_CAPABILITIES, KaktusService
from kahuna.services.projects import ProjectService
from kahuna.services.teams import TeamService
from tests.unit import factories as make

GIB = 1024**3
CAPABILITIES = {"Arch": "x86_64", "Vendor": "AMD", "Model": "EPYC-Milan", "Sockets": 1, "Cores": 32, "Threads": 64,
                "Memory": 256 * GIB, "GuestEmulator": "/usr/bin/qemu", "GuestMachineName": "pc"}


@pytest.fixture
def t(db, agents, owners):
    """Zone a of eu-west: Kaktus k1 (agent a1, 8 threads x 3, 16 GiB x 2) and k2 (agent a2, same), both
    connected; project shop in eu-west."""
    west = make.region(db, "eu-west")
    zone = make.zone(db, west, "a")
    nodes = [make.kaktus(db, zone, f"k{n}", agents=[f"a{n}"], threads=8, memory=16 * GIB) for n in (1, 2)]
    agents.connect("a1", "a2")
    projects = ProjectService(db, TeamService(db), SubnetService(db, owners), DnsService(db, agents, owners),
                              "kowabunga", "", owners, Pricing(db))
    # The claim needs the project's quotas and the agent plane only: no volume, adapter, DNS or seed is made.
    instances = InstanceService(db, agents, owners, projects, pools=None, volumes=None, adapters=None, dns=None,
                                tokens=None, templates=None, public_url="https://kahuna.acme.example", hasher=None)
    return SimpleNamespace(west=west, zone=zone, k1=nodes[0], k2=nodes[1], projects=projects, instances=instances,
                           shop=make.project(db, "shop", regions=[west]))


def claim(t, name="web-1", vcpus=1, memory=GIB, avoid=frozenset()):
    with Undo() as undo:
        return t.instances._claim(t.shop, t.zone, Plan(name, "", vcpus, memory, avoid_kaktus_ids=avoid), undo)


# -- what the nodes offer -------------------------------------------------------------------------------------


def test_the_nodes_of_a_zone(db, agents, t):
    make.instance(db, t.shop, t.k1, "db-1", vcpus=4, memory=6 * GIB)
    make.instance(db, t.shop, t.k1, "db-2", vcpus=2, memory=GIB)
    agents.drop("a2")
    k1, k2 = t.instances.nodes(str(t.zone["_id"]))
    assert (k1.kaktus_id, k1.online, k1.vcpu_capacity, k1.memory_capacity) == (str(t.k1["_id"]), True, 24, 32 * GIB)
    assert (k1.vcpus, k1.memory, sorted(k1.instance_names)) == (6, 7 * GIB, ["db-1", "db-2"])
    assert (k2.online, k2.vcpus, k2.instance_names) == (False, 0, [])


def test_an_instance_is_claimed_on_the_elected_kaktus(db, owners, t):
    make.instance(db, t.shop, t.k1, "db-1", vcpus=4, memory=4 * GIB)
    instance = claim(t, "web-1", 2, 2 * GIB)
    assert (instance["kaktus_id"], instance["state"]) == (str(t.k2["_id"]), "creating")
    assert (instance["zone_id"], instance["region_id"], instance["project_id"]) == (
        str(t.zone["_id"]), str(t.west["_id"]), str(t.shop["_id"]))
    assert (instance["vcpus"], instance["memory"]) == (2, 2 * GIB)
    assert db.instances.get(instance["_id"])["name"] == "web-1"
    assert owners.keys == [f"project:{t.shop['_id']}", (f"zone:{t.zone['_id']}",)]


def test_siblings_are_spread_over_the_zone(t):
    placed = [claim(t, f"web-{n}")["kaktus_id"] for n in range(1, 5)]
    assert placed == [str(t.k1["_id"]), str(t.k2["_id"]), str(t.k1["_id"]), str(t.k2["_id"])]


def test_an_offline_or_avoided_kaktus_is_not_elected(agents, t):
    agents.drop("a1")
    assert claim(t, "web-1")["kaktus_id"] == str(t.k2["_id"])
    agents.connect("a1")
    assert claim(t, "api-1", avoid=frozenset({str(t.k1["_id"])}))["kaktus_id"] == str(t.k2["_id"])


@pytest.mark.parametrize(("offline", "vcpus", "why"), [
    (("a1", "a2"), 1, "no Kaktus of the zone has a connected agent"),
    ((), 25, "no Kaktus of the zone has room for 25 vCPU(s) and 1 GiB of memory"),
])
def test_no_room(db, agents, t, offline, vcpus, why):
    agents.drop(*offline)
    with pytest.raises(QuotaExceeded) as caught:
        claim(t, "web-1", vcpus)
    assert caught.value.reason.startswith(f"no room for web-1 in zone a: {why}")
    assert db.instances.count() == 0


def test_a_kaktus_has_room_up_to_its_capacity(db, t):
    make.instance(db, t.shop, t.k1, "big-1", vcpus=20, memory=30 * GIB)
    make.instance(db, t.shop, t.k2, "big-2", vcpus=20, memory=30 * GIB)
    assert claim(t, "fits", 4, 2 * GIB)["kaktus_id"] == str(t.k1["_id"])  # exactly full now
    assert claim(t, "also-fits", 4, 2 * GIB)["kaktus_id"] == str(t.k2["_id"])
    with pytest.raises(QuotaExceeded):
        claim(t, "one-more", 1, 1)


def test_names_are_unique_and_quotas_are_checked_first(db, t):
    claim(t, "web-1")
    with pytest.raises(Conflict, match="an instance named web-1 already exists"):
        claim(t, "web-1")
    db.projects.update(t.shop["_id"], {"quotas": {"vcpus": 0, "memory": 0, "storage": 0, "instances": 1}})
    with pytest.raises(QuotaExceeded, match="project shop quota exceeded: instances"):
        claim(t, "web-2")
    assert db.instances.count() == 1


def test_a_failure_after_the_claim_forgets_the_instance(db, t):
    with pytest.raises(RuntimeError), Undo() as undo:
        t.instances._claim(t.shop, t.zone, Plan("web-1", "", 1, GIB), undo)
        assert db.instances.count() == 1
        raise RuntimeError("a later step failed")
    assert db.instances.count() == 0


def test_a_zone_outside_the_projects_regions(db, t):
    other = make.zone(db, make.region(db, "eu-east"), "c")
    with pytest.raises(Unprocessable, match="project shop is not in the region of zone c"):
        t.instances.zone_of_project(t.shop, str(other["_id"]))


# -- what the Kaktus agents report ------------------------------------------------------------------------------


def test_a_new_kaktus_is_scanned_by_one_of_its_agents(db, agents, owners, t):
    agents.answer("Kaktus.NodeCapabilities", CAPABILITIES)
    make.agent(db, "kaktus-3")
    agent_id = str(db.agents.find_one({"name": "kaktus-3"})["_id"])
    agents.connect(agent_id)
    kaktus = KaktusService(db, agents, owners).create(str(t.zone["_id"]), {"name": "k3", "agent_ids": [agent_id]})
    assert kaktus["capabilities"] == {"cpu": {"arch": "x86_64", "model": "EPYC-Milan", "vendor": "AMD", "sockets": 1,
                                              "cores": 32, "threads": 64}, "memory": 256 * GIB}
    assert (kaktus["overcommit_cpu_ratio"], kaktus["overcommit_memory_ratio"]) == (3, 2)
    assert agents.methods(agent_id) == ["Kaktus.NodeCapabilities"]


def test_a_kaktus_whose_agents_are_away_is_made_without_capabilities(db, agents, owners, t):
    agent = make.agent(db, "kaktus-3")
    kaktus = KaktusService(db, agents, owners).create(str(t.zone["_id"]), {"name": "k3",
                                                                            "agent_ids": [str(agent["_id"])]})
    assert kaktus["capabilities"] == NO_CAPABILITIES


def test_a_kaktus_takes_agents_of_its_type_only(db, agents, owners, t):
    kiwi_agent = make.agent(db, "kiwi-1", "Kiwi")
    with pytest.raises(Unprocessable) as caught:
        KaktusService(db, agents, owners).create(str(t.zone["_id"]), {"name": "k3",
                                                                      "agent_ids": [str(kiwi_agent["_id"]), "junk"]})
    assert caught.value.reason == f"not Kaktus agent(s): {kiwi_agent['_id']}, junk"


def test_agents_that_connect_rescan_their_kaktuses_and_only_changes_are_written(db, agents, owners, t):
    service = KaktusService(db, agents, owners)
    agents.answer("Kaktus.NodeCapabilities", CAPABILITIES)
    agents.answer("Kaktus.NodeCapabilities", error=AgentCallFailed("agent a2: libvirt down"), agent_id="a2")
    service.on_agents_connected(["a1", "a2"])
    assert db.kaktuses.get(t.k1["_id"])["capabilities"]["cpu"]["threads"] == 64
    assert db.kaktuses.get(t.k2["_id"])["capabilities"]["cpu"]["threads"] == 8  # as it was
    stamp = db.kaktuses.get(t.k1["_id"])["updated_at"]
    service.on_agents_connected(["a1"])
    assert db.kaktuses.get(t.k1["_id"])["updated_at"] == stamp  # the same capabilities: no write
    assert agents.methods("a1") == ["Kaktus.NodeCapabilities"] * 2


# -- Komputes ----------------------------------------------------------------------------------------------------


def test_a_kompute_plan(db, t):
    public = make.vnet(db, t.west, "public", private=False)
    wan = make.subnet(db, public, "198.51.50.0/24")
    db.vnets.update(public["_id"], {"defaults.subnet_id": str(wan["_id"])})
    lan = make.subnet(db, make.vnet(db, t.west), "10.50.0.0/26", project=t.shop)
    shop = db.projects.update(t.shop["_id"], {"private_subnets": [{"key": str(t.west["_id"]),
                                                                   "value": str(lan["_id"])}]})
    pool = make.pool(db, t.west)
    template = make.template(db, pool)
    komputes = KomputeService(db, t.projects, t.instances, volumes=None)
    plan = komputes.plan(shop, t.zone, pool, template, "app", "", 2, 4 * GIB, 20 * GIB, 50 * GIB, public=False,
                         peering_subnet_ids=["peer-subnet"])
    assert (plan.name, plan.vcpus, plan.memory, plan.kompute, plan.storage) == ("app", 2, 4 * GIB, True, 70 * GIB)
    assert [(v.name, v.type, v.size) for v in plan.new_volumes] == [("app-os", "os", 20 * GIB),
                                                                    ("app-data", "raw", 50 * GIB)]
    assert plan.new_volumes[0].template == template
    assert plan.new_adapters == [NewAdapter("app-public-adapter", str(wan["_id"]), False),
                                 NewAdapter("app-private-adapter", str(lan["_id"]), True),
                                 NewAdapter("app-peering-adapter-0", "peer-subnet", True)]
    assert [v.name for v in komputes.plan(shop, t.zone, pool, template, "app", "", 1, GIB, GIB, 0, True).new_volumes] \
        == ["app-os"]
    with pytest.raises(Unprocessable, match="a Kompute's disk size must be positive"):
        komputes.plan(shop, t.zone, pool, template, "app", "", 1, GIB, 0, 0, True)


def test_a_kompute_needs_a_public_subnet_and_the_projects_private_one(db, t):
    komputes = KomputeService(db, t.projects, t.instances, volumes=None)
    make.vnet(db, t.west, "public-without-subnet", private=False)
    with pytest.raises(Unprocessable, match="region eu-west has no public subnet"):
        komputes.public_subnet(str(t.west["_id"]))
    with pytest.raises(Unprocessable, match="project shop has no private subnet in region eu-west"):
        t.projects.private_subnet(t.shop, str(t.west["_id"]))
    with pytest.raises(NotFound):
        t.projects.reserve("0" * 24, {}, lambda: None)


def test_komputes_of_a_zone(db, t):
    komputes = KomputeService(db, t.projects, t.instances, volumes=None)
    here = make.instance(db, t.shop, t.k1, "app-1")
    other_zone = make.kaktus(db, make.zone(db, t.west, "b"), "k9")
    there = make.instance(db, t.shop, other_zone, "app-2")
    ids = [str(db.komputes.insert({"project_id": str(t.shop["_id"]), "instance_id": str(i["_id"]), "name": i["name"],
                                   "profile": "", "profile_id": ""})["_id"]) for i in (here, there)]
    assert komputes.list_ids(str(t.shop["_id"]), str(t.zone["_id"])) == ids[:1]
    assert komputes.list_ids(str(t.shop["_id"])) == ids
    assert komputes.list_ids() == ids
    identity = Identity(AuthMethod.MASTER_KEY, Role.SUPER_ADMIN)
    assert t.projects.list_ids(identity) == [str(t.shop["_id"])]
