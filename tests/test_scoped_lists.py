"""Zone- and region-scoped lists hold what is in that zone or region only (Koala relies on the scope; the Go
Kahuna listed the whole project there)."""

from __future__ import annotations

import kowabunga as k
import pytest

from tests.test_compute import GIB, kompute


@pytest.fixture
def project(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[],
        regions=[platform.regions["eu-west"].id, platform.regions["eu-east"].id]), subnet_size=26)


def names(ids, read):
    return sorted(read(i).name for i in ids)


def test_each_zone_and_region_list_holds_only_its_own(platform, project):
    projects, zones, regions = k.ProjectApi(platform.api), platform.zones, platform.regions
    for name, zone in (("web-a", "a"), ("web-b", "b"), ("web-c", "c")):
        kompute(platform, project, name=name, zone=zone)
    for name, region in (("data-west", "eu-west"), ("data-east", "eu-east")):
        projects.create_project_region_volume(project.id, regions[region].id, k.Volume(name=name, type="raw", size=GIB))
    projects.create_project_region_konvey(project.id, regions["eu-west"].id, k.Konvey(
        name="lb", failover=False, endpoints=[k.KonveyEndpoint(
            name="https", port=443, protocol="tcp", backends=k.KonveyBackends(hosts=["10.50.0.10"], port=443))]))
    instance, kompute_api, volume_api, konvey_api = (k.InstanceApi(platform.api), k.KomputeApi(platform.api),
                                                     k.VolumeApi(platform.api), k.KonveyApi(platform.api))
    konvey_zone = next(z for z in ("a", "b") if projects.list_project_zone_konveys(project.id, zones[z].id))

    assert names(projects.list_project_zone_komputes(project.id, zones["a"].id), kompute_api.read_kompute) == \
        sorted(["web-a"] + (["konvey-lb-a-1"] if konvey_zone == "a" else []))
    assert names(projects.list_project_zone_komputes(project.id, zones["c"].id), kompute_api.read_kompute) == ["web-c"]
    assert names(projects.list_project_zone_instances(project.id, zones["c"].id), instance.read_instance) == ["web-c"]
    assert "web-a" not in names(projects.list_project_zone_instances(project.id, zones["b"].id),
                                instance.read_instance)
    assert names(projects.list_project_region_volumes(project.id, regions["eu-east"].id),
                 volume_api.read_volume) == ["data-east", "web-c-os"]
    assert "data-east" not in names(projects.list_project_region_volumes(project.id, regions["eu-west"].id),
                                    volume_api.read_volume)
    assert names(projects.list_project_region_konveys(project.id, regions["eu-west"].id),
                 konvey_api.read_konvey) == ["lb"]
    assert projects.list_project_region_konveys(project.id, regions["eu-east"].id) == []
    assert projects.list_project_zone_konveys(project.id, zones["c"].id) == []
    assert projects.list_project_region_kawaiis(project.id, regions["eu-east"].id) == []
    assert projects.list_project_region_kylos(project.id, regions["eu-east"].id) == []
    # An unknown zone or region is still a 404.
    with pytest.raises(k.ApiException) as refused:
        projects.list_project_zone_instances(project.id, "0" * 24)
    assert refused.value.status == 404
