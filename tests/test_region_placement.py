"""Region-wide creation (API 0.58) on the simulated platform: ``POST /project/{p}/region/{r}/instance|kompute``
names no zone; Kahuna elects the least loaded Kaktus of the region's zones that can take it (capacity,
maintenance, Kwarantine groups), and the zone follows from the node. The region lists show what was made; quotas
hold. The creation-time fields (``uefi``, ``kmotion_enabled``, ``kwarantines``) are stored and honoured. Raw
JSON for the 0.58 routes and fields, the SDK 0.53.2 for the rest."""

from __future__ import annotations

import kowabunga as k
import pytest
import yaml

from tests.deployment import expect_error
from tests.test_compute import GIB, kompute, seed_of
from tests.test_maintenance import api, hosts, maintenance


@pytest.fixture
def project(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], regions=[platform.regions["eu-west"].id],
        quotas=k.ProjectResources(vcpus=0, memory=0, storage=0, instances=4)), subnet_size=26)


def region_kompute(platform, project, name, region="eu-west", query="", **fields):
    return api(platform, "POST", f"/project/{project.id}/region/{platform.regions[region].id}/kompute{query}",
               {"name": name, "vcpus": 1, "memory": GIB, "disk": 10 * GIB, **fields})


def region_list(platform, project, kind, region="eu-west"):
    status, ids = api(platform, "GET", f"/project/{project.id}/region/{platform.regions[region].id}/{kind}")
    assert status == 200, ids
    return ids


def instance_of(platform, name):
    return platform.deployment.kahuna.db.db["instance"].find_one({"name": name})


def test_a_region_wide_kompute_goes_to_the_least_loaded_open_node(platform, project):
    web = kompute(platform, project, "web-1", zone="a")  # 0.53.2 SDK: BIOS
    template = platform.templates["eu-west"].id
    status, app = region_kompute(platform, project, "app-1", query=f"?templateId={template}&public=true",
                                 uefi=True, kmotion_enabled=False)
    assert status == 201, app
    assert (app["name"], app["vcpus"], app["memory"], app["disk"]) == ("app-1", 1, GIB, 10 * GIB)
    assert (app["uefi"], app["kmotion_enabled"], app["kwarantines"]) == (True, False, [])
    assert (hosts(platform, "a"), hosts(platform, "b")) == ({"web-1"}, {"app-1"})  # k-b was idle
    assert instance_of(platform, "app-1")["zone_id"] == platform.zones["b"].id
    # The zone follows from the node: the seed says zone b, routes through zone b's gateway, and has a public address.
    seed = seed_of(platform.agents["kaktus-b"], "app-1")
    assert yaml.safe_load(seed["meta-data"])["availability-zone"] == "b"
    network = yaml.safe_load(seed["network-config"])["ethernets"]
    assert network["ens3"]["addresses"][0].startswith("198.51.50.")
    assert network["ens4"]["routes"][0]["via"] == "10.50.0.7"
    # UEFI asked, UEFI defined; the 0.53.2 SDK's Kompute is BIOS, as before.
    assert 'firmware="efi"' in platform.agents["kaktus-b"].instances["app-1"]["XML"]
    assert "firmware=" not in platform.agents["kaktus-a"].instances["web-1"]["XML"]
    assert api(platform, "GET", f"/kompute/{web.id}")[1]["uefi"] is False
    assert api(platform, "GET", f"/kompute/{app['id']}")[1]["kmotion_enabled"] is False
    # The region lists, and the zone ones.
    assert region_list(platform, project, "komputes") == [web.id, app["id"]]
    assert sorted(region_list(platform, project, "instances")) == sorted(
        str(instance_of(platform, name)["_id"]) for name in ("web-1", "app-1"))
    projects = k.ProjectApi(platform.api)
    assert projects.list_project_zone_komputes(project.id, platform.zones["b"].id) == [app["id"]]
    # With k-b in maintenance, the region's only open node is k-a.
    maintenance(platform, "b")
    status, other = region_kompute(platform, project, "cache-1")
    assert status == 201, other
    assert hosts(platform, "a") == {"web-1", "cache-1"} and other["uefi"] is False
    maintenance(platform, "a")
    status, error = region_kompute(platform, project, "cache-2")
    assert (status, error["reason"]) == (507, "no room for cache-2 in region eu-west: every Kaktus of the region "
                                              "is in maintenance")
    assert region_list(platform, project, "komputes") == [web.id, app["id"], other["id"]]


def test_a_region_wide_raw_instance(platform, project):
    kompute(platform, project, "web-1", zone="b")
    projects = k.ProjectApi(platform.api)
    os_volume = projects.create_project_region_volume(project.id, platform.regions["eu-west"].id, k.Volume(
        name="db-os", type="os", size=10 * GIB))
    adapter = k.SubnetApi(platform.api).create_adapter(project.private_subnets[0].value, k.Adapter(name="db-nic"),
                                                       assign_ip=True)
    status, instance = api(platform, "POST", f"/project/{project.id}/region/{platform.regions['eu-west'].id}/instance",
                           {"name": "db", "vcpus": 1, "memory": 2 * GIB, "volumes": [os_volume.id],
                            "adapters": [adapter.id]})
    assert status == 201, instance
    assert (instance["volumes"], instance["adapters"], instance["uefi"], instance["kmotion_enabled"]) == (
        [os_volume.id], [adapter.id], False, True)  # absent: BIOS, kMotion enabled
    assert hosts(platform, "a") == {"db"}
    assert projects.list_project_zone_instances(project.id, platform.zones["a"].id) == [instance["id"]]
    assert instance["id"] in region_list(platform, project, "instances")
    assert yaml.safe_load(seed_of(platform.agents["kaktus-a"], "db")["meta-data"])["availability-zone"] == "a"
    k.InstanceApi(platform.api).delete_instance(instance["id"])
    assert hosts(platform, "a") == set() and instance["id"] not in region_list(platform, project, "instances")


def test_quotas_hold_region_wide(platform, project):
    for n in range(1, 5):
        assert region_kompute(platform, project, f"web-{n}")[0] == 201
    status, error = region_kompute(platform, project, "web-5")
    assert status == 507 and "quota exceeded: instances" in error["reason"], error
    assert len(region_list(platform, project, "komputes")) == 4
    assert len(hosts(platform, "a") | hosts(platform, "b")) == 4


def test_a_zone_policy_kwarantine_spreads_region_wide_creations_over_the_zones(platform, project):
    status, group = api(platform, "POST", f"/project/{project.id}/kwarantine", {"name": "ha", "policy": "zone"})
    assert status == 201, group
    (status_1, first), (status_2, second) = (region_kompute(platform, project, name, kwarantines=[group["id"]])
                                              for name in ("db-1", "db-2"))
    assert (status_1, status_2) == (201, 201), (first, second)
    assert {instance_of(platform, name)["zone_id"] for name in ("db-1", "db-2")} == {
        platform.zones["a"].id, platform.zones["b"].id}
    assert first["kwarantines"] == second["kwarantines"] == [group["id"]]
    status, error = region_kompute(platform, project, "db-3", kwarantines=[group["id"]])
    assert status == 507 and "excluded by anti-affinity" in error["reason"], error
    # Outside the group, the same region takes it.
    assert region_kompute(platform, project, "db-3")[0] == 201


def test_region_wide_refusals(platform, project):
    status, error = region_kompute(platform, project, "web-1", region="eu-east")
    assert (status, error["reason"]) == (422, "project shop is not in region eu-east")
    unknown = "0" * 24
    for kind, extra in (("kompute", {"disk": GIB}), ("instance", {})):
        path = f"/project/{project.id}/region/{unknown}/{kind}"
        assert api(platform, "POST", path, {"name": "web-1", "vcpus": 1, "memory": GIB, **extra})[0] == 404
    for kind in ("instances", "komputes"):
        assert api(platform, "GET", f"/project/{project.id}/region/{unknown}/{kind}")[0] == 404
        assert region_list(platform, project, kind, region="eu-east") == []
    assert region_kompute(platform, project, "web-1", vcpus=0)[0] == 422  # out of range
    assert api(platform, "POST", f"/project/{project.id}/region/{platform.regions['eu-west'].id}/kompute",
               {"name": "web-1"}, headers={})[0] == 401
    expect_error(404, k.KomputeApi(platform.api).read_kompute, unknown)
    assert hosts(platform, "a") == hosts(platform, "b") == set()
