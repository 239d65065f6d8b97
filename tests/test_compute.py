"""Volumes, instances and Komputes on the simulated platform, through the SDK: what each agent is asked
to do, quotas, costs, rollback when an agent fails half-way, and the metadata a VM reads."""

from __future__ import annotations

import json

import kowabunga as k
import pytest
import yaml

from kahuna import cloudinit
from tests.deployment import expect_error

GIB = 1024**3


@pytest.fixture
def project(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], root_password="S3cret-root-pw",
        regions=[platform.regions["eu-west"].id, platform.regions["eu-east"].id]), subnet_size=26)


def kompute(platform, project, name="web-1", zone="a", **kwargs):
    return k.ProjectApi(platform.api).create_project_zone_kompute(
        project.id, platform.zones[zone].id,
        k.Kompute(name=name, vcpus=2, memory=4 * GIB, disk=20 * GIB, data_disk=kwargs.pop("data_disk", 0)), **kwargs)


def stored(platform, collection, **query):
    return list(platform.deployment.kahuna.db.db[collection].find(query))


def host(agent, name, domain="shop.acme.internal"):
    """The addresses a simulated Kiwi serves for *name*, or None."""
    return agent.dns_records.get(domain, {}).get(name)


def seed_of(agent, name):
    """The cloud-init documents Kahuna wrote for instance *name*, read back from the simulated pool."""
    volume = next(v for (pool, volume), v in agent.volumes.items() if volume == f"{name}-cloudinit")
    return {key: value.decode() for key, value in cloudinit.read_iso(volume["Content"]).items()}


def test_a_kompute_is_made_on_the_agents_and_taken_back_entirely(platform, project):
    made = kompute(platform, project, data_disk=10 * GIB, public=True)
    assert (made.name, made.vcpus, made.memory, made.disk, made.data_disk) == ("web-1", 2, 4 * GIB, 20 * GIB, 10 * GIB)
    assert made.ip.startswith("10.50.0.")
    kaktus = platform.agents["kaktus-a"]
    pool_agents = [platform.agents["kaktus-a"]]  # the pool's agents share its volumes
    # Disks and seed on the pool (one of its agents), the domain on the zone's Kaktus, started.
    volumes = {name: v for agent in pool_agents for (_, name), v in agent.volumes.items()}
    assert volumes["web-1-os"]["Kind"] == "os" and volumes["web-1-os"]["Template"] == "ubuntu-24"
    assert volumes["web-1-os"]["Size"] == 20 * GIB and volumes["web-1-data"]["Kind"] == "raw"
    assert volumes["web-1-cloudinit"]["Kind"] == "iso"
    domain = kaktus.instances["web-1"]
    assert domain["State"] == "Running" and domain["Autostart"]
    assert "rbd-ssd/web-1-os" in domain["XML"] and "rbd-ssd/web-1-cloudinit" in domain["XML"]
    # The host name on both Kiwis of the region, not on the other region's.
    for name in ("kiwi-west-1", "kiwi-west-2"):
        assert host(platform.agents[name], "web-1") == [made.ip]
    assert host(platform.agents["kiwi-east-1"], "web-1") is None
    # The seed: the instance's network, its zone's gateway, the root password hashed.
    seed_agent = next(a for a in pool_agents if any(n == "web-1-cloudinit" for _, n in a.volumes))
    seed = seed_of(seed_agent, "web-1")
    meta = yaml.safe_load(seed["meta-data"])
    assert meta["instance-id"] and meta["kowabunga_local_ip"] == made.ip and meta["availability-zone"] == "a"
    assert "kowabunga_controller_agent_token" not in meta
    network = yaml.safe_load(seed["network-config"])["ethernets"]
    assert network["ens3"]["addresses"][0].startswith("198.51.50.")  # public=True
    assert network["ens4"]["addresses"] == [f"{made.ip}/26"]
    assert network["ens4"]["routes"][0]["via"] == "10.50.0.6"  # zone a's gateway of the project
    user = yaml.safe_load(seed["user-data"].split("\n", 1)[1])
    root = next(u for u in user["users"] if u["name"] == "root")
    assert root["hashed_passwd"].startswith("$2b$") and "S3cret" not in seed["user-data"]
    # Usage counts the disks (not the seed) and the instance; cost follows the prices.
    usage = k.ProjectApi(platform.api).read_project_usage(project.id)
    assert (usage.instances, usage.vcpus, usage.memory, usage.storage) == (1, 2, 4 * GIB, 30 * GIB)
    # 2 vCPUs at 500/(64 threads x 3), 4 GiB at 300/(256 GiB x 2), 30 GiB at 200/10 TiB of pool: monthly.
    cost = k.ProjectApi(platform.api).read_project_cost(project.id)
    assert (cost.price, cost.currency) == (round(2 * 500 / 192 + 4 * 300 / 512 + 30 * 200 / 10240, 2), "EUR")
    # Power and state go to the Kaktus.
    komputes = k.KomputeApi(platform.api)
    komputes.stop_kompute(made.id)
    assert komputes.read_kompute_state(made.id).state == "Shutoff"
    komputes.start_kompute(made.id)
    assert komputes.read_kompute_state(made.id).state == "Running"
    # Deleting takes back everything, everywhere.
    komputes.delete_kompute(made.id)
    assert "web-1" not in kaktus.instances
    assert not [n for a in pool_agents for _, n in a.volumes if n.startswith("web-1")]
    assert host(platform.agents["kiwi-west-1"], "web-1") is None
    for collection in ("kompute", "instance", "volume", "adapter"):
        assert not stored(platform, collection, project_id=project.id), collection
    assert not [a for a in stored(platform, "adapter") if a["name"].startswith("web-1")]
    k.ProjectApi(platform.api).delete_project(project.id)


def test_a_failure_half_way_leaves_nothing_behind(platform, project):
    platform.agents["kaktus-a"].behaviour.failures["CreateInstance"] = "libvirt: no more room"
    platform.agents["kaktus-b"].behaviour.failures["CreateInstance"] = "libvirt: no more room"
    adapters_before = len(stored(platform, "adapter"))
    body = expect_error(422, kompute, platform, project, data_disk=GIB)
    assert "no more room" in body["reason"]
    for collection in ("kompute", "instance", "volume"):
        assert not stored(platform, collection), collection
    assert len(stored(platform, "adapter")) == adapters_before
    assert not platform.agents["kaktus-a"].volumes.keys() - {("rbd-ssd", "ubuntu-24")}
    for name in ("kaktus-a", "kaktus-b"):
        assert not platform.agents[name].instances
    assert host(platform.agents["kiwi-west-1"], "web-1") is None
    # and the name is free again
    platform.agents["kaktus-a"].behaviour.failures.clear()
    platform.agents["kaktus-b"].behaviour.failures.clear()
    assert kompute(platform, project).name == "web-1"


def test_siblings_are_spread_and_quotas_refuse_with_507(platform, project):
    k.ProjectApi(platform.api).update_project(project.id, k.Project(
        name="shop", teams=[], regions=project.regions, quotas=k.ProjectResources(instances=2)))
    first, second = kompute(platform, project, "web-1", zone="a"), kompute(platform, project, "web-2", zone="a")
    hosts = {i["name"]: i["kaktus_id"] for i in stored(platform, "instance")}
    assert hosts["web-1"] == hosts["web-2"]  # zone a has a single Kaktus
    body = expect_error(507, kompute, platform, project, "web-3", zone="b")
    assert "instances" in body["reason"]
    assert {first.id, second.id} == set(k.ProjectApi(platform.api).list_project_zone_komputes(
        project.id, platform.zones["a"].id))


def test_placement_needs_an_online_kaktus(platform, project):
    agent = platform.agents["kaktus-c"]
    agent.close()
    platform.deployment.wait_until(lambda: platform.deployment.kahuna.plane.info(agent.id) is None)
    body = expect_error(507, kompute, platform, project, zone="c")
    assert "no Kaktus of the zone has a connected agent" in body["reason"]
    assert not stored(platform, "instance") and not stored(platform, "volume")


def test_volumes_through_the_api(platform, project):
    projects, volumes = k.ProjectApi(platform.api), k.VolumeApi(platform.api)
    region = platform.regions["eu-west"].id
    raw = projects.create_project_region_volume(project.id, region, k.Volume(name="data", type="raw", size=5 * GIB))
    assert raw.size == 5 * GIB
    expect_error(409, projects.create_project_region_volume, project.id, region,
                 k.Volume(name="data", type="raw", size=GIB))
    body = expect_error(422, projects.create_project_region_volume, project.id, region,
                        k.Volume(name="seed", type="iso", size=GIB))
    assert "os" in body["reason"]
    grown = volumes.update_volume(raw.id, k.Volume(name="data", type="raw", size=8 * GIB))
    assert grown.size == 8 * GIB
    pool_agents = [platform.agents["kaktus-a"]]
    assert [v["Size"] for a in pool_agents for (_, n), v in a.volumes.items() if n == "data"] == [8 * GIB]
    expect_error(422, volumes.update_volume, raw.id, k.Volume(name="data", type="raw", size=GIB))
    expect_error(422, volumes.update_volume, raw.id, k.Volume(name="renamed", type="raw", size=8 * GIB))
    assert projects.list_project_region_volumes(project.id, region) == [raw.id]
    volumes.delete_volume(raw.id)
    assert not [n for a in pool_agents for _, n in a.volumes if n == "data"]
    expect_error(404, volumes.read_volume, raw.id)


def test_a_raw_instance_from_existing_volumes_and_adapters(platform, project):
    projects = k.ProjectApi(platform.api)
    region, zone = platform.regions["eu-west"].id, platform.zones["b"].id
    os_volume = projects.create_project_region_volume(project.id, region, k.Volume(name="db-os", type="os",
                                                                                      size=10 * GIB))
    private = project.private_subnets[0].value
    adapter = k.SubnetApi(platform.api).create_adapter(private, k.Adapter(name="db-nic"), assign_ip=True)
    instance = projects.create_project_zone_instance(project.id, zone, k.Instance(
        name="db", vcpus=1, memory=2 * GIB, volumes=[os_volume.id], adapters=[adapter.id]))
    assert instance.volumes == [os_volume.id] and instance.adapters == [adapter.id]
    instances = k.InstanceApi(platform.api)
    assert instances.read_instance_remote_connection(instance.id).url.startswith("spice://")
    instances.reboot_instance(instance.id)
    expect_error(409, k.VolumeApi(platform.api).delete_volume, os_volume.id)
    resized = instances.update_instance(instance.id, k.Instance(name="db", vcpus=2, memory=2 * GIB))
    assert resized.vcpus == 2 and "<vcpu>2</vcpu>" in platform.agents["kaktus-b"].instances["db"]["XML"].replace(
        ' placement="static"', "")
    expect_error(422, instances.update_instance, instance.id, k.Instance(name="renamed", vcpus=2, memory=2 * GIB))
    instances.delete_instance(instance.id)
    assert "db" not in platform.agents["kaktus-b"].instances
    # the volume and the adapter stay, free again
    k.VolumeApi(platform.api).delete_volume(os_volume.id)
    k.AdapterApi(platform.api).delete_adapter(adapter.id)


def test_metadata_is_given_to_its_own_instance_only(platform, project):
    web, db = kompute(platform, project, "web-1"), kompute(platform, project, "db-1", zone="b")
    http = platform.deployment.http
    url = f"{platform.deployment.base_url}/latest/meta-data"
    instance_id = stored(platform, "instance", name="web-1")[0]["_id"]
    own = http.request("GET", url, headers={"X-Kowabunga-Instance-Id": str(instance_id),
                                            "X-Kowabunga-Source-Ip": f"{web.ip}:41234"})
    assert own.status == 200
    meta = json.loads(own.data)
    assert (meta["local-hostname"], meta["local-ipv4"], meta["zone"], meta["region"]) == ("web-1", web.ip, "a",
                                                                                          "eu-west")
    assert meta["template"] == "ubuntu-24" and meta["project"] == "shop" and meta["mem_gb"] == 4
    # Another instance's address with this id, or nothing: no profile at all.
    for headers in ({"X-Kowabunga-Instance-Id": str(instance_id), "X-Kowabunga-Source-Ip": db.ip},
                    {"X-Kowabunga-Instance-Id": "0" * 24, "X-Kowabunga-Source-Ip": web.ip}):
        refused = http.request("GET", url, headers=headers)
        assert refused.status == 404 and b"web-1" not in refused.data
    assert http.request("GET", url).status == 400
