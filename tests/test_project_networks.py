"""Projects on the platform: private subnets, zone gateways, DNS zones and records on the Kiwi agents."""

import kowabunga as k

from tests.deployment import expect_error
from tests.simulator import SimulatedAgent

WEST_KIWIS = ("kiwi-west-1", "kiwi-west-2")
ALL_KIWIS = (*WEST_KIWIS, "kiwi-east-1")


def create_project(platform, name="shop", regions=("eu-west", "eu-east"), **kwargs):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name=name, domain=f"{name}.acme.internal", teams=[],
        regions=[platform.regions[r].id for r in regions]), **kwargs)


def assigned(platform, project_id):
    return {str(s["_id"]) for s in platform.deployment.kahuna.db.db["subnet"].find({"project_id": project_id})}


def go_offline(platform, name):
    agent = platform.agents[name]
    agent.close()
    platform.deployment.wait_until(lambda: platform.deployment.kahuna.plane.info(agent.id) is None)


def test_a_project_gets_a_subnet_per_region_gateways_per_zone_and_a_dns_zone(bare_platform):
    project = create_project(bare_platform, subnet_size=26)
    regions = {entry.key: entry.value for entry in project.private_subnets}
    assert regions == {bare_platform.regions["eu-west"].id: bare_platform.subnets["eu-west-0"].id,
                       bare_platform.regions["eu-east"].id: bare_platform.subnets["eu-east-0"].id}
    assert assigned(bare_platform, project.id) == set(regions.values())
    stored = bare_platform.deployment.kahuna.db.projects.get(project.id)
    assert stored["zone_gateways"] == {bare_platform.zones["a"].id: "10.50.0.6",
                                       bare_platform.zones["b"].id: "10.50.0.7",
                                       bare_platform.zones["c"].id: "10.60.0.6"}
    for name in ALL_KIWIS:
        assert bare_platform.agents[name].dns_zones == {"shop.acme.internal"}, name


def test_a_larger_subnet_serves_when_the_size_asked_is_missing(bare_platform):
    project = create_project(bare_platform, regions=("eu-east",), subnet_size=28)
    subnet = k.SubnetApi(bare_platform.api).read_subnet(project.private_subnets[0].value)
    assert subnet.cidr.endswith("/26")


def test_running_out_of_subnets_fails_cleanly(bare_platform):
    for n in range(4):
        create_project(bare_platform, name=f"p{n}", regions=("eu-east",))
    before = {str(s["_id"]): s["project_id"] for s in bare_platform.deployment.kahuna.db.db["subnet"].find()}
    body = expect_error(422, create_project, bare_platform, name="p4", regions=("eu-west", "eu-east"))
    assert "no free private subnet" in body["reason"]
    after = {str(s["_id"]): s["project_id"] for s in bare_platform.deployment.kahuna.db.db["subnet"].find()}
    assert after == before  # the eu-west subnet taken on the way was given back
    assert "p4" not in [k.ProjectApi(bare_platform.api).read_project(p).name
                        for p in k.ProjectApi(bare_platform.api).list_projects()]


def test_an_offline_kiwi_makes_project_creation_fail_with_nothing_left(bare_platform):
    go_offline(bare_platform, "kiwi-east-1")
    body = expect_error(422, create_project, bare_platform)
    assert "kiwi-east has no connected agent" in body["reason"]
    assert k.ProjectApi(bare_platform.api).list_projects() == []
    assert bare_platform.deployment.kahuna.db.db["subnet"].count_documents({"project_id": {"$ne": ""}}) == 0
    for name in WEST_KIWIS:
        assert bare_platform.agents[name].dns_zones == set()


def test_deleting_a_project_releases_its_networks_and_zone(bare_platform):
    project = create_project(bare_platform)
    k.ProjectApi(bare_platform.api).delete_project(project.id)
    assert assigned(bare_platform, project.id) == set()
    for name in ALL_KIWIS:
        assert bare_platform.agents[name].dns_zones == set()
        assert bare_platform.agents[name].calls_of("DeleteDnsZone") == [{"Domain": "shop.acme.internal"}]


def test_a_subnet_in_use_by_a_project_is_not_deleted(bare_platform):
    project = create_project(bare_platform)
    expect_error(409, k.SubnetApi(bare_platform.api).delete_subnet, project.private_subnets[0].value)


def test_project_records_reach_every_kiwi_agent_of_its_regions(bare_platform):
    project = create_project(bare_platform, regions=("eu-west",))
    projects, records = k.ProjectApi(bare_platform.api), k.RecordApi(bare_platform.api)
    record = projects.create_project_dns_record(project.id, k.DnsRecord(name="db", addresses=["10.50.0.20"]))
    assert (record.domain, record.addresses) == ("shop.acme.internal", ["10.50.0.20"])
    for name in WEST_KIWIS:
        assert bare_platform.agents[name].dns_records == {"shop.acme.internal": {"db": ["10.50.0.20"]}}
    assert bare_platform.agents["kiwi-east-1"].dns_records == {}
    assert projects.list_project_dns_records(project.id) == [record.id]
    records.update_dns_record(record.id, k.DnsRecord(name="db", addresses=["10.50.0.21", "10.50.0.22"]))
    for name in WEST_KIWIS:
        assert bare_platform.agents[name].dns_records["shop.acme.internal"]["db"] == ["10.50.0.21", "10.50.0.22"]
    expect_error(409, projects.create_project_dns_record, project.id, k.DnsRecord(name="db", addresses=["10.0.0.1"]))
    expect_error(422, projects.create_project_dns_record, project.id, k.DnsRecord(name="x", addresses=["nope"]))
    expect_error(422, projects.create_project_dns_record, project.id,
                 k.DnsRecord(name="bad name!", addresses=["10.0.0.1"]))
    records.delete_dns_record(record.id)
    for name in WEST_KIWIS:
        assert bare_platform.agents[name].dns_records["shop.acme.internal"] == {}
    assert projects.list_project_dns_records(project.id) == []


def test_region_records_use_the_region_domain(bare_platform):
    region = bare_platform.regions["eu-east"]
    record = k.RegionApi(bare_platform.api).create_region_dns_record(region.id, k.DnsRecord(name="ntp",
                                                                                          addresses=["10.60.0.2"]))
    assert record.domain == "east.acme.internal"
    assert bare_platform.agents["kiwi-east-1"].dns_records == {"east.acme.internal": {"ntp": ["10.60.0.2"]}}
    assert bare_platform.agents["kiwi-west-1"].dns_records == {}
    assert k.RegionApi(bare_platform.api).list_region_dns_records(region.id) == [record.id]
    expect_error(409, k.RegionApi(bare_platform.api).delete_region, region.id)


def test_a_failing_kiwi_agent_rolls_the_record_back_everywhere(bare_platform):
    project = create_project(bare_platform, regions=("eu-west",))
    bare_platform.agents["kiwi-west-2"].behaviour.failures["CreateDnsRecord"] = "disk full"
    body = expect_error(422, k.ProjectApi(bare_platform.api).create_project_dns_record, project.id,
                        k.DnsRecord(name="db", addresses=["10.50.0.20"]))
    assert "disk full" in body["reason"]
    assert bare_platform.agents["kiwi-west-1"].dns_records.get("shop.acme.internal", {}) == {}
    assert k.ProjectApi(bare_platform.api).list_project_dns_records(project.id) == []


def test_a_kiwi_agent_that_reconnects_is_brought_up_to_date(bare_platform):
    project = create_project(bare_platform, regions=("eu-west",))
    k.ProjectApi(bare_platform.api).create_project_dns_record(project.id,
                                                              k.DnsRecord(name="db", addresses=["10.50.0.20"]))
    k.RegionApi(bare_platform.api).create_region_dns_record(bare_platform.regions["eu-west"].id,
                                                       k.DnsRecord(name="ntp", addresses=["10.50.0.2"]))
    old = bare_platform.agents["kiwi-west-2"]
    old.close()
    fresh = SimulatedAgent(old.url.removesuffix("/ws"), "Kiwi", old.id, old.api_key).connect()
    fresh.wait_for_call("CreateDnsRecord", count=2)
    assert fresh.calls_of("Reload") == [{"Domains": [
        {"Name": "shop.acme.internal", "Records": [{"Name": "db", "Type": "A", "Addresses": ["10.50.0.20"]}]},
        {"Name": "west.acme.internal", "Records": [{"Name": "ntp", "Type": "A", "Addresses": ["10.50.0.2"]}]}]}]
    assert fresh.dns_records == {"shop.acme.internal": {"db": ["10.50.0.20"]},
                                 "west.acme.internal": {"ntp": ["10.50.0.2"]}}


def test_project_members_manage_their_records(bare_platform):
    bob = bare_platform.deployment.create_account("bob")
    eve = bare_platform.deployment.create_account("eve")
    team = k.TeamApi(bare_platform.api).create_team(k.Team(name="shop-team", users=[bob.id]))
    project = k.ProjectApi(bare_platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[team.id], regions=[bare_platform.regions["eu-west"].id]))
    as_bob = bare_platform.deployment.login(bob)
    record = k.ProjectApi(as_bob).create_project_dns_record(project.id, k.DnsRecord(name="www",
                                                                                    addresses=["10.50.0.30"]))
    assert k.RecordApi(as_bob).read_dns_record(record.id).name == "www"
    as_eve = bare_platform.deployment.login(eve)
    expect_error(403, k.RecordApi(as_eve).read_dns_record, record.id)
    expect_error(403, k.RecordApi(as_eve).delete_dns_record, record.id)
    expect_error(403, k.ProjectApi(as_eve).create_project_dns_record, project.id,
                 k.DnsRecord(name="evil", addresses=["10.50.0.31"]))
    k.RecordApi(as_bob).delete_dns_record(record.id)
