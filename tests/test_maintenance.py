"""Kaktus maintenance (API 0.58) on the simulated platform: a node in maintenance keeps running its instances and
receives no new one (instance, Kompute, Kawaii or Konvey VM), until maintenance is disabled; the last open node of
a zone may enter maintenance, and creations there then answer 507 saying so. The SDK 0.53.2 drives what it knows,
raw JSON the 0.58 routes."""

from __future__ import annotations

import kowabunga as k
import pytest

from tests import topology
from tests.deployment import NO_BODY, expect_error
from tests.test_compute import GIB, kompute


def api(platform, method, path, body=None, headers=None):
    """A raw JSON request to the API, as superAdmin unless *headers* say otherwise: (status, decoded body or None)."""
    return platform.deployment.api_request(method, path, NO_BODY if body is None else body, headers=headers)


def maintenance(platform, node, action="enable", headers=None):
    status, body = api(platform, "PATCH", f"/kaktus/{platform.kaktuses[node].id}/maintenance/{action}",
                       headers=headers)
    assert status == 200, body
    assert body is None  # the contract's 200 has no body


def hosts(platform, node):
    """The domains a simulated Kaktus has defined."""
    return set(platform.agents[f"kaktus-{node}"].instances)


@pytest.fixture
def dense(deployment):
    """The platform with a second Kaktus in zone a (k-a2), on the same Ceph cluster as k-a."""
    return topology.build(deployment, with_templates=True, dense=True)


def shop(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], regions=[platform.regions["eu-west"].id]), subnet_size=26)


def test_a_node_in_maintenance_keeps_its_instances_and_receives_nothing_new(dense):
    project = shop(dense)
    kompute(dense, project, "web-1")  # k-a and k-a2 tie: the earliest, k-a
    assert hosts(dense, "a") == {"web-1"}
    maintenance(dense, "a")
    assert api(dense, "GET", f"/kaktus/{dense.kaktuses['a'].id}")[1]["maintenance"] is True
    assert api(dense, "GET", f"/kaktus/{dense.kaktuses['a2'].id}")[1]["maintenance"] is False
    maintenance(dense, "a")  # idempotent
    # An update of the Kaktus (a 0.53.2 full body, which knows nothing of maintenance) leaves it in maintenance.
    k.KaktusApi(dense.api).update_kaktus(dense.kaktuses["a"].id, k.Kaktus(
        name="k-a", description="draining", agents=[dense.agents["kaktus-a"].id]))
    assert api(dense, "GET", f"/kaktus/{dense.kaktuses['a'].id}")[1]["maintenance"] is True
    # web-2 and web-3 would be spread (siblings of web-1): both go to k-a2.
    kompute(dense, project, "web-2")
    kompute(dense, project, "web-3")
    # A raw instance too.
    projects = k.ProjectApi(dense.api)
    os_volume = projects.create_project_region_volume(project.id, dense.regions["eu-west"].id, k.Volume(
        name="db-os", type="os", size=10 * GIB))
    adapter = k.SubnetApi(dense.api).create_adapter(project.private_subnets[0].value, k.Adapter(name="db-nic"),
                                                    assign_ip=True)
    projects.create_project_zone_instance(project.id, dense.zones["a"].id, k.Instance(
        name="db", vcpus=1, memory=2 * GIB, volumes=[os_volume.id], adapters=[adapter.id]))
    assert (hosts(dense, "a"), hosts(dense, "a2")) == ({"web-1"}, {"web-2", "web-3", "db"})
    # web-1 keeps running where it is, and can be operated and even resized there.
    web_1 = next(i for i in dense.deployment.kahuna.db.db["kompute"].find({"name": "web-1"}))
    komputes = k.KomputeApi(dense.api)
    komputes.reboot_kompute(str(web_1["_id"]))
    resized = komputes.update_kompute(str(web_1["_id"]), k.Kompute(name="web-1", vcpus=3, memory=4 * GIB,
                                                                   disk=20 * GIB))
    assert resized.vcpus == 3 and dense.agents["kaktus-a"].instances["web-1"]["State"] == "Running"
    assert k.KaktusApi(dense.api).list_kaktus_instances(dense.kaktuses["a"].id) == [str(web_1["instance_id"])]
    # Out of maintenance, it takes new instances again (it is the least loaded).
    maintenance(dense, "a", "disable")
    assert api(dense, "GET", f"/kaktus/{dense.kaktuses['a'].id}")[1]["maintenance"] is False
    kompute(dense, project, "app-1")
    assert hosts(dense, "a") == {"web-1", "app-1"}


def test_kawaii_and_konvey_vms_avoid_a_node_in_maintenance(dense):
    project = shop(dense)
    maintenance(dense, "a")
    projects = k.ProjectApi(dense.api)
    projects.create_project_region_kawaii(project.id, dense.regions["eu-west"].id, k.Kawaii(
        netip=k.KawaiiNetIp(public=[], private=[], zones=[])))
    projects.create_project_zone_konvey(project.id, dense.zones["a"].id, k.Konvey(
        name="lb", failover=False, endpoints=[k.KonveyEndpoint(name="web", port=443, protocol="tcp", backends=(
            k.KonveyBackends(hosts=["10.50.0.20"], port=8443)))]))
    assert hosts(dense, "a") == set()
    assert hosts(dense, "a2") == {"kawaii-shop-eu-west-a", "konvey-lb-a-1"}
    assert hosts(dense, "b") == {"kawaii-shop-eu-west-b"}


def test_a_konvey_with_failover_stays_in_the_zone_whose_nodes_are_open(dense):
    """Region-wide, a Konvey spreads its two VMs over the least loaded zones; a zone whose every Kaktus is in
    maintenance is left out, so both go to distinct Kaktus of the other zone."""
    project = shop(dense)
    maintenance(dense, "b")
    k.ProjectApi(dense.api).create_project_region_konvey(project.id, dense.regions["eu-west"].id, k.Konvey(
        name="lb", endpoints=[k.KonveyEndpoint(name="web", port=443, protocol="tcp", backends=(
            k.KonveyBackends(hosts=["10.50.0.20"], port=8443)))]))
    assert hosts(dense, "b") == set()
    assert {*hosts(dense, "a"), *hosts(dense, "a2")} == {"konvey-lb-a-1", "konvey-lb-a-2"}
    assert len(hosts(dense, "a")) == len(hosts(dense, "a2")) == 1


def test_the_last_open_node_of_a_zone_may_enter_maintenance_and_creations_there_answer_507(platform):
    project = shop(platform)
    maintenance(platform, "b")
    error = expect_error(507, kompute, platform, project, "web-1", zone="b")
    assert error["reason"] == "no room for web-1 in zone b: every Kaktus of the zone is in maintenance"
    # A Kawaii needs a VM in every zone of the region: refused, with the same reason, and nothing is left.
    error = expect_error(507, k.ProjectApi(platform.api).create_project_region_kawaii, project.id,
                         platform.regions["eu-west"].id, k.Kawaii(netip=k.KawaiiNetIp(public=[], private=[],
                                                                                      zones=[])))
    assert "in zone b: every Kaktus of the zone is in maintenance" in error["reason"]
    assert hosts(platform, "a") == hosts(platform, "b") == set()
    assert k.KomputeApi(platform.api).list_komputes() == []
    assert platform.deployment.kahuna.db.db["instance"].count_documents({}) == 0
    # Zone a still takes them; zone b again once out of maintenance.
    kompute(platform, project, "web-1", zone="a")
    maintenance(platform, "b", "disable")
    kompute(platform, project, "web-2", zone="b")
    assert (hosts(platform, "a"), hosts(platform, "b")) == ({"web-1"}, {"web-2"})


def test_maintenance_is_for_super_admins(platform):
    kaktus = platform.kaktuses["a"].id
    account = platform.deployment.create_account("alice")
    token = platform.deployment.login(account).configuration.access_token
    for action in ("enable", "disable"):
        path = f"/kaktus/{kaktus}/maintenance/{action}"
        assert api(platform, "PATCH", path, headers={})[0] == 401
        assert api(platform, "PATCH", path, headers={"Authorization": f"Bearer {token}"})[0] == 403
        status, body = api(platform, "PATCH", f"/kaktus/{'0' * 24}/maintenance/{action}")
        assert (status, body["status"]) == (404, 404)
    assert api(platform, "GET", f"/kaktus/{kaktus}")[1]["maintenance"] is False
