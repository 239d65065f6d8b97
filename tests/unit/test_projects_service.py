"""kahuna.services.projects through the fakes: a project's private subnets, zone gateways and DNS zone, made
together or not at all; quotas; VRRP ids; deletion."""

from types import SimpleNamespace

import pytest

from kahuna.access import AuthMethod, Identity, Role
from kahuna.costs import Pricing
from kahuna.errors import AgentUnavailable, Conflict, NotFound, QuotaExceeded, Unprocessable
from kahuna.services.dns import DnsService
from kahuna.services.networks import SubnetService
from kahuna.services.projects import ProjectService
from kahuna.services.teams import TeamService
from tests.unit import factories as make

GIB = 1024**3
ADMIN = Identity(AuthMethod.MASTER_KEY, Role.SUPER_ADMIN)


@pytest.fixture
def t(db, agents, owners):
    """eu-west (zones b then a, Kiwi agent kw1, private /26 subnets with 2 gateway addresses each) and eu-east
    (zone c, Kiwi agent ke1, one private /26 and a /25); a team; the project service."""
    west, east = make.region(db, "eu-west"), make.region(db, "eu-east")
    make.zone(db, west, "b")
    make.zone(db, west, "a")
    make.zone(db, east, "c")
    make.kiwi(db, west, "kiwi-west", agents=["kw1"])
    make.kiwi(db, east, "kiwi-east", agents=["ke1"])
    agents.connect("kw1", "ke1")
    west_lan, east_lan = make.vnet(db, west), make.vnet(db, east)
    west_subnets = [make.subnet(db, west_lan, f"10.50.0.{n * 64}/26", name=f"vpc-{n}",
                                gw_pool=[(f"10.50.0.{n * 64 + 6}", f"10.50.0.{n * 64 + 7}")]) for n in range(2)]
    east_subnets = [make.subnet(db, east_lan, "10.60.0.0/26", name="vpc-0", gw_pool=[("10.60.0.6", "10.60.0.6")]),
                    make.subnet(db, east_lan, "10.60.1.0/25", name="big", gw_pool=[("10.60.1.6", "10.60.1.6")])]
    dns = DnsService(db, agents, owners)
    projects = ProjectService(db, TeamService(db), SubnetService(db, owners), dns, "kowabunga", "ssh-ed25519 K",
                              owners, Pricing(db))
    return SimpleNamespace(west=west, east=east, west_subnets=west_subnets, east_subnets=east_subnets,
                           team=make.team(db, "ops"), projects=projects,
                           zones={zone["name"]: str(zone["_id"]) for zone in db.zones.find()})


def fields(t, name="shop", regions=("west", "east"), domain="shop.acme.internal", **extra):
    return {"name": name, "domain": domain, "team_ids": [str(t.team["_id"])],
            "region_ids": [str(getattr(t, region)["_id"]) for region in regions], **extra}


def project_subnets(db, project_id):
    return sorted(subnet["name"] + "@" + subnet["region_id"] for subnet in db.subnets.find({"project_id": project_id}))


def test_a_project_gets_a_subnet_per_region_a_gateway_per_zone_and_a_dns_zone(db, agents, t):
    project = t.projects.create(ADMIN, fields(t, quotas={"vcpus": 8}), 26)
    assert project["state"] == "ready"
    assert project["private_subnets"] == [{"key": str(t.west["_id"]), "value": str(t.west_subnets[0]["_id"])},
                                          {"key": str(t.east["_id"]), "value": str(t.east_subnets[0]["_id"])}]
    # Gateways in zone name order, from each subnet's gateway pool.
    assert project["zone_gateways"] == {t.zones["a"]: "10.50.0.6", t.zones["b"]: "10.50.0.7",
                                        t.zones["c"]: "10.60.0.6"}
    assert project["quotas"] == {"vcpus": 8, "memory": 0, "storage": 0, "instances": 0}
    assert (project["bootstrap_user"], project["bootstrap_pubkey"]) == ("kowabunga", "ssh-ed25519 K")
    assert db.subnets.get(t.west_subnets[0]["_id"])["project_id"] == str(project["_id"])
    assert [(call.agent_id, call.method, call.params) for call in agents.calls] == [
        ("kw1", "Kiwi.CreateDnsZone", {"Domain": "shop.acme.internal"}),
        ("ke1", "Kiwi.CreateDnsZone", {"Domain": "shop.acme.internal"})]


def test_a_larger_subnet_serves_when_the_size_asked_is_missing(db, t):
    t.projects.create(ADMIN, fields(t, "one", regions=("east",), domain=""), 26)
    project = t.projects.create(ADMIN, fields(t, "two", regions=("east",), domain=""), 28)
    assert project["private_subnets"][0]["value"] == str(t.east_subnets[1]["_id"])


def test_running_out_of_subnets_undoes_everything(db, agents, t):
    t.projects.create(ADMIN, fields(t, "one", regions=("east",), domain=""), 25)
    t.projects.create(ADMIN, fields(t, "two", regions=("east",), domain=""), 26)
    before = {str(s["_id"]): s["project_id"] for s in db.subnets.find()}
    with pytest.raises(Unprocessable, match="no free private subnet of /26 or larger in region eu-east"):
        t.projects.create(ADMIN, fields(t, "three"), 26)
    assert {str(s["_id"]): s["project_id"] for s in db.subnets.find()} == before  # eu-west's given back
    assert db.projects.find_one({"name": "three"}) is None
    assert agents.calls == []


def test_an_offline_kiwi_undoes_everything(db, agents, t):
    agents.drop("ke1")
    with pytest.raises(AgentUnavailable, match="Kiwi kiwi-east has no connected agent"):
        t.projects.create(ADMIN, fields(t), 26)
    assert (db.projects.count(), db.subnets.count({"project_id": {"$ne": ""}})) == (0, 0)


def test_a_gateway_pool_too_small_for_the_zones_is_refused(db, t):
    db.subnets.update(t.west_subnets[0]["_id"], {"gw_pool": [{"first": "10.50.0.6", "last": "10.50.0.6"}]})
    with pytest.raises(Unprocessable, match=r"subnet vpc-0 has 1 gateway address\(es\) for 2 zones"):
        t.projects.create(ADMIN, fields(t, regions=("west",)), 26)
    assert (db.projects.count(), db.subnets.count({"project_id": {"$ne": ""}})) == (0, 0)


@pytest.mark.parametrize(("changes", "error", "reason"), [
    ({"name": "bad/name"}, Unprocessable, "invalid project name 'bad/name': "),
    ({"domain": "nodots"}, Unprocessable, "invalid domain name 'nodots': expected a name such as project.acme.com"),
    ({"team_ids": ["0" * 24, "x"]}, Unprocessable, "unknown team(s): 000000000000000000000000, x"),
    ({"region_ids": ["0" * 24]}, Unprocessable, "unknown region(s): 000000000000000000000000"),
    ({"domain": "www.taken.acme.internal"}, Conflict, "domain www.taken.acme.internal is not available"),
])
def test_refusals_leave_nothing(db, agents, t, changes, error, reason):
    make.project(db, "taken", domain="taken.acme.internal")
    with pytest.raises(error) as caught:
        t.projects.create(ADMIN, {**fields(t), **changes}, 26)
    assert caught.value.reason.startswith(reason)
    assert (db.projects.count(), agents.calls) == (1, [])


def test_a_project_admin_must_stay_a_member(db, t):
    alice = make.user(db, "alice", role="projectAdmin")
    identity = Identity(AuthMethod.BEARER, Role.PROJECT_ADMIN, str(alice["_id"]))
    with pytest.raises(Unprocessable, match="the project must keep at least one of your own teams"):
        t.projects.create(identity, fields(t), 26)
    db.teams.update(t.team["_id"], {"user_ids": [str(alice["_id"])]})
    project = t.projects.create(identity, fields(t), 26)
    assert t.projects.list_ids(identity) == [str(project["_id"])]
    assert t.projects.is_member(identity, project)
    assert t.projects.list_ids(Identity(AuthMethod.API_KEY, Role.USER, "nobody")) == []


@pytest.mark.parametrize(("quotas", "demand", "exceeded"), [
    ({}, {"instances": 1, "vcpus": 64, "memory": 64 * GIB, "storage": 10 * GIB}, None),  # 0: no limit
    ({"vcpus": 4}, {"instances": 1, "vcpus": 1}, None),  # 3 used + 1
    ({"vcpus": 4}, {"instances": 1, "vcpus": 2}, "vcpus (3 used + 2 asked > 4)"),
    ({"instances": 2, "memory": 4 * GIB - 1}, {"instances": 1, "memory": GIB},
     f"memory ({3 * GIB} used + {GIB} asked > {4 * GIB - 1}), instances (2 used + 1 asked > 2)"),
    ({"memory": 4 * GIB}, {"instances": 1, "memory": GIB}, None),  # exactly full
    ({"storage": 30 * GIB}, {"storage": 10 * GIB}, None),  # an ISO does not count
    ({"storage": 30 * GIB}, {"storage": 10 * GIB + 1}, f"storage ({20 * GIB} used + {10 * GIB + 1} asked"),
])
def test_quotas(db, owners, t, quotas, demand, exceeded):
    project = make.project(db, "shop", regions=[t.west], quotas=quotas)
    project_id = str(project["_id"])
    node = make.kaktus(db, t.zones["a"])
    make.instance(db, project, node, "web-1", vcpus=2, memory=2 * GIB)
    make.instance(db, project, node, "web-2", vcpus=1, memory=GIB, state="creating")  # counts already
    pool = make.pool(db, t.west)
    make.volume(db, project, pool, "os", 15 * GIB, "os")
    make.volume(db, project, pool, "data", 5 * GIB, "raw")
    make.volume(db, project, pool, "seed", 10 * GIB, "iso")
    assert t.projects.usage(project_id) == {"instances": 2, "vcpus": 3, "memory": 3 * GIB, "storage": 20 * GIB}
    if exceeded is None:
        assert t.projects.reserve(project_id, demand, lambda: "claimed") == "claimed"
    else:
        with pytest.raises(QuotaExceeded) as caught:
            t.projects.reserve(project_id, demand, lambda: pytest.fail("claimed anyway"))
        assert caught.value.reason.startswith(f"project shop quota exceeded: {exceeded}")
    assert owners.keys[-1] == f"project:{project_id}"


@pytest.mark.parametrize("state", ["creating", "deleting"])
def test_nothing_is_claimed_in_a_project_that_is_not_ready(db, t, state):
    project = make.project(db, state=state)
    with pytest.raises(NotFound):
        t.projects.reserve(str(project["_id"]), {"instances": 1}, lambda: pytest.fail("claimed anyway"))


def test_vrrp_ids(db, t):
    project_id = str(make.project(db, reserved_vrrp_ids=[1, 3])["_id"])
    assert [t.projects.allocate_vrrp_id(project_id) for _ in range(3)] == [2, 4, 5]
    t.projects.release_vrrp_ids(project_id, [3, 4])
    assert db.projects.get(project_id)["reserved_vrrp_ids"] == [1, 2, 5]
    db.projects.update(project_id, {"reserved_vrrp_ids": list(range(1, 256))})
    with pytest.raises(Unprocessable, match="the project uses all 255 VRRP router ids"):
        t.projects.allocate_vrrp_id(project_id)


def test_deleting_a_project_releases_its_networks_and_its_zone(db, agents, t):
    project = t.projects.create(ADMIN, fields(t), 26)
    agents.forget_calls()
    t.projects.delete(str(project["_id"]))
    assert db.projects.count() == 0
    assert db.subnets.count({"project_id": {"$ne": ""}}) == 0
    assert agents.methods() == ["Kiwi.DeleteDnsZone", "Kiwi.DeleteDnsZone"]


def test_a_project_is_not_deleted_while_it_owns_objects_or_a_kiwi_is_away(db, agents, t):
    project = t.projects.create(ADMIN, fields(t), 26)
    project_id = str(project["_id"])
    record = make.record(db, "www", "shop.acme.internal", ["10.50.0.10"], project=project)
    with pytest.raises(Conflict, match="project still owns dns_record object"):
        t.projects.delete(project_id)
    db.records.delete(record["_id"])
    agents.drop("kw1")
    agents.forget_calls()
    with pytest.raises(AgentUnavailable):
        t.projects.delete(project_id)
    assert db.projects.get(project_id)["state"] == "ready"  # refused before anything changed
    assert project_subnets(db, project_id) == sorted(
        [f"vpc-0@{t.west['_id']}", f"vpc-0@{t.east['_id']}"])
    assert agents.calls == []
