"""Placement decisions through the fakes: what the Kaktus agents report (kahuna.services.nodes), the nodes a zone
offers and the claim of an instance on the elected one (kahuna.services.instances), and the plan of a Kompute
(kahuna.services.komputes); API 0.58: maintenance, region-wide election, the creation-time fields (Kwarantine
groups, UEFI, kMotion switch) and the domain of a stored instance."""

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from kahuna.access import AuthMethod, Identity, Role
from kahuna.costs import Pricing
from kahuna.errors import AgentCallFailed, Conflict, NotFound, QuotaExceeded, Unprocessable
from kahuna.services._undo import Undo
from kahuna.services.dns import DnsService
from kahuna.services.instances import InstanceService, NewAdapter, Plan, Site, creation_options
from kahuna.services.komputes import KomputeService
from kahuna.services.kwarantines import KwarantineService
from kahuna.services.networks import SubnetService
from kahuna.services.nodes import NO_CAPABILITIES, KaktusService
from kahuna.services.projects import ProjectService
from kahuna.services.storage_pools import PoolService
from kahuna.services.teams import TeamService
from tests.unit import factories as make

GIB = 1024**3
CAPABILITIES = {"Arch": "x86_64", "Vendor": "AMD", "Model": "EPYC-Milan", "Sockets": 1, "Cores": 32, "Threads": 64,
                "Memory": 256 * GIB, "GuestEmulator": "/usr/bin/qemu", "GuestMachineName": "pc"}


@dataclass
class Kwarantines:
    """The Kwarantine service as the claim uses it: the exclusions it is told to answer, the calls it got."""

    excluded: frozenset[str] = frozenset()
    calls: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    owner_keys = staticmethod(KwarantineService.owner_keys)

    def exclusions(self, group_ids, project_id, member_id=None):
        self.calls.append((tuple(group_ids), project_id))
        return self.excluded


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
    kwarantines = Kwarantines()
    instances = InstanceService(db, agents, owners, projects, pools=PoolService(db, agents, owners), volumes=None,
                                adapters=None, dns=None, tokens=None, templates=None,
                                public_url="https://kahuna.acme.example", hasher=None, kwarantines=kwarantines)
    return SimpleNamespace(west=west, zone=zone, k1=nodes[0], k2=nodes[1], projects=projects, instances=instances,
                           kwarantines=kwarantines, shop=make.project(db, "shop", regions=[west]))


def claim(t, name="web-1", vcpus=1, memory=GIB, avoid=frozenset(), site=None, **options):
    with Undo() as undo:
        return t.instances._claim(t.shop, site or Site.of_zone(t.zone),
                                  Plan(name, "", vcpus, memory, avoid_kaktus_ids=avoid, **options), undo)


def in_region(db, t):
    """Zone b beside a in eu-west, with Kaktus k3 (agent a3, connected); the site of a region-wide creation."""
    zone_b = make.zone(db, t.west, "b")
    k3 = make.kaktus(db, zone_b, "k3", agents=["a3"], threads=8, memory=16 * GIB)
    t.instances.agents.connect("a3")
    return zone_b, k3, t.instances.region_of_project(t.shop, str(t.west["_id"]))


# -- what the nodes offer -------------------------------------------------------------------------------------


def test_the_nodes_of_a_zone(db, agents, t):
    make.instance(db, t.shop, t.k1, "db-1", vcpus=4, memory=6 * GIB)
    make.instance(db, t.shop, t.k1, "db-2", vcpus=2, memory=GIB)
    agents.drop("a2")
    k1, k2 = t.instances.nodes(str(t.zone["_id"]))
    assert (k1.kaktus_id, k1.online, k1.vcpu_capacity, k1.memory_capacity) == (str(t.k1["_id"]), True, 24, 32 * GIB)
    assert (k1.vcpus, k1.memory, sorted(k1.instance_names)) == (6, 7 * GIB, ["db-1", "db-2"])
    assert (k2.online, k2.vcpus, k2.instance_names) == (False, 0, [])
    assert (k1.zone_id, k1.maintenance, k2.maintenance) == (str(t.zone["_id"]), False, False)


def test_an_instance_being_moved_holds_its_room_on_both_nodes(db, t):
    """kMotion writes the instance on its target at the claim; a failed move puts it back on its source, whose
    room stays held until the move is over."""
    moving = make.instance(db, t.shop, t.k2, "db-1", vcpus=4, memory=6 * GIB)
    db.instances.update(moving["_id"], {"state": "updating", "kmotion": {
        "source_kaktus_id": str(t.k1["_id"]), "source_zone_id": str(t.zone["_id"]),
        "target_kaktus_id": str(t.k2["_id"])}})
    k1, k2 = t.instances.nodes(str(t.zone["_id"]))
    assert (k1.vcpus, k1.memory, k1.instance_names) == (4, 6 * GIB, ["db-1"])
    assert (k2.vcpus, k2.memory, k2.instance_names) == (4, 6 * GIB, ["db-1"])


def test_the_nodes_of_a_region(db, t):
    zone_b, k3, _ = in_region(db, t)
    make.kaktus(db, make.zone(db, make.region(db, "eu-east"), "c"), "k9")
    db.kaktuses.update(k3["_id"], {"maintenance": True})
    nodes = t.instances.nodes(region_id=str(t.west["_id"]))
    assert [(n.name, n.zone_id, n.maintenance) for n in nodes] == [
        ("k1", str(t.zone["_id"]), False), ("k2", str(t.zone["_id"]), False), ("k3", str(zone_b["_id"]), True)]
    assert [n.name for n in t.instances.nodes(str(zone_b["_id"]))] == ["k3"]
    with pytest.raises(ValueError):
        t.instances.nodes()


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


def test_a_kaktus_in_maintenance_receives_nothing_new(db, t):
    db.kaktuses.update(t.k1["_id"], {"maintenance": True})
    placed = [claim(t, f"web-{n}")["kaktus_id"] for n in range(1, 4)]
    assert placed == [str(t.k2["_id"])] * 3  # even against the sibling malus


def test_every_kaktus_of_the_zone_in_maintenance_is_507_saying_so(db, t):
    make.instance(db, t.shop, t.k1, "db-1")
    for node in (t.k1, t.k2):
        db.kaktuses.update(node["_id"], {"maintenance": True})
    with pytest.raises(QuotaExceeded) as caught:
        claim(t, "web-1")
    assert caught.value.reason == "no room for web-1 in zone a: every Kaktus of the zone is in maintenance"
    assert db.instances.count() == 1  # db-1 stays where it is


def test_excluded_nodes_are_said_so(t):
    with pytest.raises(QuotaExceeded, match="every connected Kaktus of the zone is excluded by anti-affinity"):
        claim(t, "web-1", avoid=frozenset({str(t.k1["_id"]), str(t.k2["_id"])}))


def test_a_region_wide_claim_elects_the_least_loaded_node_of_its_zones(db, owners, t):
    zone_b, k3, site = in_region(db, t)
    make.instance(db, t.shop, t.k1, "db-1", vcpus=2)
    make.instance(db, t.shop, t.k2, "db-2", vcpus=2)
    instance = claim(t, "web-1", site=site)
    assert (instance["kaktus_id"], instance["zone_id"], instance["region_id"]) == (
        str(k3["_id"]), str(zone_b["_id"]), str(t.west["_id"]))
    assert owners.keys[-1] == (f"zone:{t.zone['_id']}", f"zone:{zone_b['_id']}")
    # The next one: k3 now holds a sibling and more load; k1 and k2 tie, and the earliest, k1, wins.
    make.instance(db, t.shop, k3, "cache-1", vcpus=2)
    assert claim(t, "web-2", site=site)["kaktus_id"] == str(t.k1["_id"])


def test_a_region_wide_claim_skips_maintenance_and_says_when_nothing_is_left(db, t):
    _, k3, site = in_region(db, t)
    for node in (t.k1, t.k2):
        db.kaktuses.update(node["_id"], {"maintenance": True})
    assert claim(t, "web-1", site=site)["kaktus_id"] == str(k3["_id"])
    db.kaktuses.update(k3["_id"], {"maintenance": True})
    with pytest.raises(QuotaExceeded) as caught:
        claim(t, "web-2", site=site)
    assert caught.value.reason == "no room for web-2 in region eu-west: every Kaktus of the region is in maintenance"


def test_a_region_without_kaktus_or_outside_the_project(db, t):
    empty = make.region(db, "eu-south")
    with pytest.raises(Unprocessable, match="project shop is not in region eu-south"):
        t.instances.region_of_project(t.shop, str(empty["_id"]))
    shop = db.projects.update(t.shop["_id"], {"region_ids": [str(t.west["_id"]), str(empty["_id"])]})
    site = t.instances.region_of_project(shop, str(empty["_id"]))
    assert (site.zones, site.scope, site.name) == ((), "region", "eu-south")
    with pytest.raises(QuotaExceeded, match="no room for web-1 in region eu-south: the region has no Kaktus"):
        claim(t, "web-1", site=site)


def test_kwarantine_groups_exclude_nodes_in_their_owners(owners, t):
    t.kwarantines.excluded = frozenset({str(t.k1["_id"])})
    instance = claim(t, "web-1", kwarantine_ids=("g1", "g2"), uefi=True, kmotion_enabled=False)
    assert instance["kaktus_id"] == str(t.k2["_id"])
    assert t.kwarantines.calls == [(("g1", "g2"), str(t.shop["_id"]))]
    assert owners.keys[-1] == (f"zone:{t.zone['_id']}", "kwarantine:g1", "kwarantine:g2")
    assert (instance["kwarantine_ids"], instance["uefi"], instance["kmotion_enabled"]) == (["g1", "g2"], True, False)
    t.kwarantines.excluded = frozenset({str(t.k1["_id"]), str(t.k2["_id"])})
    with pytest.raises(QuotaExceeded, match="excluded by anti-affinity"):
        claim(t, "web-2", kwarantine_ids=("g1",))


def test_no_group_no_kwarantine_call(owners, t):
    instance = claim(t, "web-1")
    assert t.kwarantines.calls == []
    assert owners.keys[-1] == (f"zone:{t.zone['_id']}",)
    assert (instance["kwarantine_ids"], instance["uefi"], instance["kmotion_enabled"]) == ([], False, True)


@pytest.mark.parametrize(("body", "options"), [
    ({}, {"uefi": False, "kmotion_enabled": True, "kwarantine_ids": ()}),  # a 0.53.2 body: BIOS, as before
    ({"uefi": None, "kmotion_enabled": None, "kwarantine_ids": None},
     {"uefi": False, "kmotion_enabled": True, "kwarantine_ids": ()}),
    ({"uefi": True, "kmotion_enabled": False, "kwarantine_ids": ["g2", "g1", "g2"]},
     {"uefi": True, "kmotion_enabled": False, "kwarantine_ids": ("g2", "g1")}),
])
def test_creation_options(body, options):
    assert creation_options(body) == options


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
        t.instances._claim(t.shop, Site.of_zone(t.zone), Plan("web-1", "", 1, GIB), undo)
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


def test_maintenance_is_written_in_the_zones_owner_and_is_idempotent(db, agents, owners, t):
    service = KaktusService(db, agents, owners)
    kaktus = service.set_maintenance(str(t.k1["_id"]), True)
    assert kaktus["maintenance"] is True and db.kaktuses.get(t.k1["_id"])["maintenance"] is True
    assert owners.keys == [f"zone:{t.zone['_id']}"]
    stamp = db.kaktuses.get(t.k1["_id"])["updated_at"]
    service.set_maintenance(str(t.k1["_id"]), True)
    assert db.kaktuses.get(t.k1["_id"])["updated_at"] == stamp  # already in maintenance: no write
    assert service.set_maintenance(str(t.k1["_id"]), False)["maintenance"] is False
    assert service.set_maintenance(str(t.k2["_id"]), False) == db.kaktuses.get(t.k2["_id"])  # never was: as is
    with pytest.raises(NotFound):
        service.set_maintenance("0" * 24, True)


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
    west = str(t.west["_id"])
    plan = komputes.plan(shop, west, pool, template, "app", "", 2, 4 * GIB, 20 * GIB, 50 * GIB, public=False,
                         peering_subnet_ids=["peer-subnet"])
    assert (plan.name, plan.vcpus, plan.memory, plan.kompute, plan.storage) == ("app", 2, 4 * GIB, True, 70 * GIB)
    assert (plan.uefi, plan.kmotion_enabled, plan.kwarantine_ids) == (False, True, ())
    assert [(v.name, v.type, v.size) for v in plan.new_volumes] == [("app-os", "os", 20 * GIB),
                                                                    ("app-data", "raw", 50 * GIB)]
    assert plan.new_volumes[0].template == template
    assert plan.new_adapters == [NewAdapter("app-public-adapter", str(wan["_id"]), False),
                                 NewAdapter("app-private-adapter", str(lan["_id"]), True),
                                 NewAdapter("app-peering-adapter-0", "peer-subnet", True)]
    assert [v.name for v in komputes.plan(shop, west, pool, template, "app", "", 1, GIB, GIB, 0, True).new_volumes] \
        == ["app-os"]
    with pytest.raises(Unprocessable, match="a Kompute's disk size must be positive"):
        komputes.plan(shop, west, pool, template, "app", "", 1, GIB, 0, 0, True)
    options = creation_options({"uefi": True, "kmotion_enabled": False, "kwarantine_ids": ["g1"]})
    plan = komputes.plan(shop, west, pool, template, "app", "", 1, GIB, GIB, 0, True, **options)
    assert (plan.uefi, plan.kmotion_enabled, plan.kwarantine_ids) == (True, False, ("g1",))


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
    assert komputes.list_ids(str(t.shop["_id"]), region_id=str(t.west["_id"])) == ids
    east = make.region(db, "eu-east")
    assert komputes.list_ids(str(t.shop["_id"]), region_id=str(east["_id"])) == []
    with pytest.raises(NotFound):
        komputes.list_ids(str(t.shop["_id"]), region_id="0" * 24)
    assert komputes.list_ids() == ids
    identity = Identity(AuthMethod.MASTER_KEY, Role.SUPER_ADMIN)
    assert t.projects.list_ids(identity) == [str(t.shop["_id"])]


def test_instances_of_a_region(db, t):
    here = make.instance(db, t.shop, t.k1, "app-1")
    east = make.region(db, "eu-east")
    make.instance(db, t.shop, make.kaktus(db, make.zone(db, east, "c"), "k9"), "app-2")
    assert t.instances.list_ids(str(t.shop["_id"]), region_id=str(t.west["_id"])) == [str(here["_id"])]
    with pytest.raises(NotFound):
        t.instances.list_ids(str(t.shop["_id"]), region_id="0" * 24)


# -- the domain of a stored instance (what kMotion defines on another Kaktus) ------------------------------------------


@pytest.mark.parametrize(("uefi", "machine", "seed"), [(None, "pc", ("hdd", "ide")), (False, "pc", ("hdd", "ide")),
                                                       (True, "q35", ("sda", "sata"))])
def test_the_domain_of_a_stored_instance(db, agents, t, uefi, machine, seed):
    agents.answer("Kaktus.NodeCapabilities", {**CAPABILITIES, "GuestMachineName": "pc"}, agent_id="a2")
    pool = make.pool(db, t.west, ceph_secret_uuid="5b1c")
    data = make.volume(db, t.shop, pool, "web-1-data")
    os_disk = make.volume(db, t.shop, pool, "web-1-os", volume_type="os")
    seed_volume = make.volume(db, t.shop, pool, "web-1-cloudinit", volume_type="iso")
    private = make.adapter(db, make.subnet(db, make.vnet(db, t.west), "10.50.0.0/26"), "lan", mac="da:1e:70:00:00:02")
    public = make.adapter(db, make.subnet(db, make.vnet(db, t.west, "public", private=False, vlan=0, interface="br0"),
                                          "198.51.50.0/24"), "wan", mac="da:1e:70:00:00:01")
    instance = make.instance(db, t.shop, t.k1, "web-1", vcpus=2, memory=4 * GIB,
                             volume_ids=[str(os_disk["_id"]), str(data["_id"])],
                             adapter_ids=[str(private["_id"]), str(public["_id"])],
                             seed_volume_id=str(seed_volume["_id"]), **({} if uefi is None else {"uefi": uefi}))
    domain = ET.fromstring(t.instances.domain_xml(instance, t.k2))  # defined on k2, with k2's capabilities
    assert agents.methods("a2") == ["Kaktus.NodeCapabilities"] and agents.methods("a1") == []
    assert (domain.findtext("name"), domain.findtext("vcpu"), domain.findtext("memory")) == ("web-1", "2", "4096")
    assert domain.find("os/type").get("machine") == machine
    assert (domain.find("os").get("firmware"), domain.find("os/loader") is not None) == (
        ("efi", True) if uefi else (None, False))
    disks = [(d.find("source").get("name"), d.find("target").get("dev"), d.find("target").get("bus"))
             for d in domain.findall("devices/disk")]
    assert disks == [("rbd-ssd/web-1-os", "vda", "virtio"), ("rbd-ssd/web-1-data", "vdb", "virtio"),
                     ("rbd-ssd/web-1-cloudinit", *seed)]
    assert [(i.find("mac").get("address"), i.find("source").get("bridge"))
            for i in domain.findall("devices/interface")] == [("da:1e:70:00:00:01", "br0"),
                                                              ("da:1e:70:00:00:02", "br100")]  # public first
