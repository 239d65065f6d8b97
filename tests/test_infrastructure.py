"""The infrastructure API through the SDK, on a realistic topology served by simulated agents."""

import gevent
import kowabunga as k
import pytest

from tests.deployment import expect_error


def test_the_topology_reads_back(bare_platform):
    api = bare_platform.api
    regions = k.RegionApi(api)
    west, east = bare_platform.regions["eu-west"], bare_platform.regions["eu-east"]
    assert regions.list_regions() == [west.id, east.id]
    assert regions.read_region(west.id) == k.Region(id=west.id, name="eu-west", description="",
                                                    domain="west.acme.internal")
    assert regions.list_region_zones(west.id) == [bare_platform.zones["a"].id, bare_platform.zones["b"].id]
    assert regions.list_region_kiwis(east.id) == [bare_platform.kiwis["eu-east"].id]
    assert regions.list_region_storage_pools(west.id) == [bare_platform.pools["eu-west"].id]
    assert len(regions.list_region_v_nets(west.id)) == 2
    assert k.ZoneApi(api).list_zone_kaktuses(bare_platform.zones["c"].id) == [bare_platform.kaktuses["c"].id]
    kaktus = k.KaktusApi(api).read_kaktus(bare_platform.kaktuses["a"].id)
    assert (kaktus.overcommit_cpu_ratio, kaktus.overcommit_memory_ratio) == (3, 2)  # the contract's defaults
    assert kaktus.cpu_cost == k.Cost(price=500.0, currency="EUR")
    vnet = k.VnetApi(api).read_v_net(bare_platform.vnets["eu-west-private"].id)
    assert (vnet.vlan, vnet.interface, vnet.private) == (100, "br100", True)
    subnet = k.SubnetApi(api).read_subnet(bare_platform.subnets["eu-west-0"].id)
    assert (subnet.cidr, subnet.dns, subnet.application) == ("10.50.0.0/26", "10.50.0.1", "user")
    assert k.VnetApi(api).list_v_net_subnets(bare_platform.vnets["eu-west-private"].id)[0] == subnet.id


def test_kaktus_capabilities_come_from_its_agent(bare_platform):
    caps = k.KaktusApi(bare_platform.api).read_kaktus_caps(bare_platform.kaktuses["b"].id)
    assert caps == k.KaktusCaps(cpu=k.KaktusCPU(arch="x86_64", model="EPYC-Milan", vendor="AMD", sockets=1,
                                                cores=32, threads=64), memory=256 << 30)
    assert bare_platform.agents["kaktus-b"].calls_of("NodeCapabilities")
    # The pool was scanned too.
    pool = bare_platform.deployment.kahuna.db.db["storage_pool"].find_one(
        {"region_id": bare_platform.regions["eu-west"].id})
    assert pool["stats"]["capacity"] == 10 << 40


def test_names_are_unique_within_their_parent(bare_platform):
    regions = k.RegionApi(bare_platform.api)
    expect_error(409, regions.create_zone, bare_platform.regions["eu-west"].id, k.Zone(name="a"))
    assert regions.create_zone(bare_platform.regions["eu-east"].id, k.Zone(name="a")).name == "a"
    expect_error(409, regions.create_region, k.Region(name="eu-west", domain="x.acme.internal"))
    # A clash on PUT is a 422: the contract lists no 409 for updates.
    expect_error(422, k.ZoneApi(bare_platform.api).update_zone, bare_platform.zones["b"].id, k.Zone(name="a"))


def test_unknown_parents_and_ids_are_404(bare_platform):
    unknown = "0" * 24
    expect_error(404, k.RegionApi(bare_platform.api).create_zone, unknown, k.Zone(name="z"))
    expect_error(404, k.ZoneApi(bare_platform.api).create_kaktus, unknown, k.Kaktus(name="x", agents=[]))
    expect_error(404, k.VnetApi(bare_platform.api).create_subnet, unknown,
                 k.Subnet(name="s", cidr="10.9.0.0/24", gateway="10.9.0.1"))
    expect_error(404, k.SubnetApi(bare_platform.api).create_adapter, unknown, k.Adapter(name="nic"))
    expect_error(404, k.PoolApi(bare_platform.api).read_storage_pool, unknown)
    expect_error(404, k.RecordApi(bare_platform.api).read_dns_record, unknown)


def test_parents_with_children_are_not_deleted(bare_platform):
    expect_error(409, k.RegionApi(bare_platform.api).delete_region, bare_platform.regions["eu-west"].id)
    expect_error(409, k.ZoneApi(bare_platform.api).delete_zone, bare_platform.zones["a"].id)
    expect_error(409, k.VnetApi(bare_platform.api).delete_v_net, bare_platform.vnets["eu-west-private"].id)
    subnet = bare_platform.subnets["eu-west-0"].id
    k.SubnetApi(bare_platform.api).create_adapter(subnet, k.Adapter(name="nic"), assign_ip=True)
    expect_error(409, k.SubnetApi(bare_platform.api).delete_subnet, subnet)
    # A childless zone goes.
    extra = k.RegionApi(bare_platform.api).create_zone(bare_platform.regions["eu-east"].id, k.Zone(name="d"))
    k.ZoneApi(bare_platform.api).delete_zone(extra.id)
    expect_error(404, k.ZoneApi(bare_platform.api).read_zone, extra.id)


def test_defaults_follow_the_first_child_and_stay_in_their_region(bare_platform):
    regions = k.RegionApi(bare_platform.api)
    west, east = bare_platform.regions["eu-west"].id, bare_platform.regions["eu-east"].id
    second = regions.create_storage_pool(west, k.StoragePool(name="hdd", pool="rbd-hdd", agents=[]))
    stored = bare_platform.deployment.kahuna.db.regions.get(west)
    assert stored["defaults"]["pool_id"] == bare_platform.pools["eu-west"].id
    regions.set_region_default_storage_pool(west, second.id)
    assert bare_platform.deployment.kahuna.db.regions.get(west)["defaults"]["pool_id"] == second.id
    expect_error(404, regions.set_region_default_storage_pool, west, bare_platform.pools["eu-east"].id)
    nfs = regions.create_storage_nfs(east, k.StorageNFS(name="share", endpoint="nfs.east.acme.internal",
                                                        backends=["10.60.0.10"]))
    assert (nfs.fs, nfs.port) == ("nfs", 54934)
    assert regions.list_region_storage_nfss(east) == [nfs.id]
    k.PoolApi(bare_platform.api).delete_storage_pool(second.id)
    assert bare_platform.deployment.kahuna.db.regions.get(west)["defaults"]["pool_id"] == ""


@pytest.mark.parametrize("subnet, words", [
    (k.Subnet(name="s", cidr="10.70.0.0/33", gateway="10.70.0.1"), "invalid CIDR"),
    (k.Subnet(name="s", cidr="8.8.8.0/24", gateway="8.8.8.1"), "not a private range"),
    (k.Subnet(name="s", cidr="10.70.0.0/24", gateway="10.71.0.1"), "gateway 10.71.0.1 is not part"),
    (k.Subnet(name="s", cidr="10.70.0.0/24", gateway="10.70.0.1",
              reserved=[k.IpRange(first="10.70.0.10", last="10.70.1.10")]), "not part of subnet"),
    (k.Subnet(name="s", cidr="10.70.0.0/24", gateway="10.70.0.1",
              reserved=[k.IpRange(first="10.70.0.10", last="10.70.0.5")]), "ends before it starts"),
    (k.Subnet(name="s", cidr="10.70.0.0/24", gateway="10.70.0.1",
              gw_pool=[k.IpRange(first="10.70.0.10", last="10.70.0.10")]), "fewer than the region's 2 zone"),
    (k.Subnet(name="s", cidr="10.70.0.0/24", gateway="10.70.0.1", dns="dns.example"), "invalid DNS server"),
    (k.Subnet(name="s", cidr="10.70.0.0/24", gateway="10.70.0.1", extra_routes=["nowhere"]), "invalid extra route"),
])
def test_subnet_validation(bare_platform, subnet, words):
    body = expect_error(422, k.VnetApi(bare_platform.api).create_subnet, bare_platform.vnets["eu-west-private"].id,
                        subnet)
    assert words in body["reason"]


def test_vnet_validation(bare_platform):
    api = bare_platform.api
    response = bare_platform.deployment.http.request(
        "POST", f"{bare_platform.deployment.base_url}/api/v1/region/{bare_platform.regions['eu-west'].id}/vnet",
        json={"name": "v", "interface": "br9", "vlan": 5000},
        headers={"X-API-Key": api.configuration.api_key["ApiKeyAuth"]})
    assert response.status == 422 and "vlan" in response.json()["reason"]
    # private is set at creation only: an update carrying another value leaves it as it is (API 0.58).
    vnet = k.VnetApi(api).update_v_net(bare_platform.vnets["eu-west-private"].id,
                                       k.VNet(name="private", interface="br100", private=False))
    assert (vnet.private, vnet.interface) == (True, "br100")


def test_addresses_are_allocated_lowest_first_and_never_twice(bare_platform):
    subnets = k.SubnetApi(bare_platform.api)
    subnet = bare_platform.subnets["eu-west-1"]  # 10.50.0.64/26: gateway .65, reserved .66-.69, gw pool .70-.71
    first = subnets.create_adapter(subnet.id, k.Adapter(name="nic-0"), assign_ip=True)
    assert first.addresses == ["10.50.0.72"] and first.mac.startswith("da:1e:70:")
    created = [gevent.spawn(subnets.create_adapter, subnet.id, k.Adapter(name=f"nic-{n}"), assign_ip=True)
               for n in range(1, 21)]
    gevent.joinall(created, raise_error=True)
    addresses = [first.addresses[0]] + [g.value.addresses[0] for g in created]
    assert len(set(addresses)) == 21
    assert sorted(addresses, key=lambda a: int(a.rsplit(".", 1)[1])) == [f"10.50.0.{n}" for n in range(72, 93)]
    assert len(subnets.list_subnet_adapters(subnet.id)) == 21


def test_adapter_validation(bare_platform):
    subnets, adapters = k.SubnetApi(bare_platform.api), k.AdapterApi(bare_platform.api)
    subnet = bare_platform.subnets["eu-west-2"].id  # 10.50.0.128/26
    nic = subnets.create_adapter(subnet, k.Adapter(name="nic", mac="AA-BB-CC-00-11-22", addresses=["10.50.0.140"]))
    assert nic.mac == "aa:bb:cc:00:11:22"
    for adapter, words in ((k.Adapter(name="x", addresses=["10.50.1.140"]), "not part of subnet"),
                           (k.Adapter(name="x", addresses=["10.50.0.140"]), "already in use"),
                           (k.Adapter(name="x", addresses=["10.50.0.129"]), "already in use"),  # the gateway
                           (k.Adapter(name="x", mac="aa:bb:cc:00:11:22"), "already used"),
                           (k.Adapter(name="x", mac="not-a-mac"), "invalid MAC")):
        body = expect_error(422, subnets.create_adapter, subnet, adapter)
        assert words in body["reason"], body
    updated = adapters.update_adapter(nic.id, k.Adapter(name="nic", addresses=["10.50.0.141"]))
    assert updated.addresses == ["10.50.0.141"] and updated.mac == "aa:bb:cc:00:11:22"
    adapters.delete_adapter(nic.id)
    assert subnets.list_subnet_adapters(subnet) == []


def test_templates_are_made_by_a_pool_agent(bare_platform):
    pools = k.PoolApi(bare_platform.api)
    pool = bare_platform.pools["eu-east"].id
    template = pools.create_template(pool, k.Template(name="debian-12", source="https://images.example/debian.qcow2"))
    assert template.os == "linux"
    agent = bare_platform.agents["kaktus-c"]
    assert agent.calls_of("CreateTemplateVolume") == [
        {"Pool": "rbd-ssd", "Volume": "debian-12", "SourceURL": "https://images.example/debian.qcow2"}]
    assert ("rbd-ssd", "debian-12") in agent.volumes
    assert pools.list_storage_pool_templates(pool) == [template.id]
    expect_error(409, pools.create_template, pool, k.Template(name="debian-12", source="https://images.example/x"))
    expect_error(422, pools.create_template, pool, k.Template(name="bad", source="file:///etc/passwd"))
    k.TemplateApi(bare_platform.api).delete_template(template.id)
    assert ("rbd-ssd", "debian-12") not in agent.volumes
    assert k.TemplateApi(bare_platform.api).list_templates() == []


def test_an_offline_pool_agent_leaves_nothing_behind(bare_platform):
    bare_platform.agents["kaktus-c"].close()
    bare_platform.deployment.wait_until(
        lambda: bare_platform.deployment.kahuna.plane.info(bare_platform.agents["kaktus-c"].id) is None)
    body = expect_error(422, k.PoolApi(bare_platform.api).create_template, bare_platform.pools["eu-east"].id,
                        k.Template(name="debian-12", source="https://images.example/debian.qcow2"))
    assert "no connected agent" in body["reason"]
    assert k.TemplateApi(bare_platform.api).list_templates() == []


def test_nodes_accept_only_agents_of_their_type(bare_platform):
    body = expect_error(422, k.ZoneApi(bare_platform.api).create_kaktus, bare_platform.zones["a"].id,
                        k.Kaktus(name="k-x", agents=[bare_platform.agents["kiwi-west-1"].id]))
    assert "not Kaktus agent" in body["reason"]
    expect_error(422, k.RegionApi(bare_platform.api).create_kiwi, bare_platform.regions["eu-west"].id,
                 k.Kiwi(name="kw", agents=["0" * 24]))


def test_users_read_regions_and_zones_only(bare_platform):
    bob = bare_platform.deployment.create_account("bob")
    client = bare_platform.deployment.login(bob)
    assert k.RegionApi(client).list_regions() == [bare_platform.regions["eu-west"].id,
                                                  bare_platform.regions["eu-east"].id]
    assert k.ZoneApi(client).read_zone(bare_platform.zones["a"].id).name == "a"
    expect_error(403, k.RegionApi(client).create_region, k.Region(name="mine", domain="mine.example"))
    expect_error(403, k.KaktusApi(client).read_kaktus, bare_platform.kaktuses["a"].id)
    expect_error(403, k.RegionApi(client).list_region_zones, bare_platform.regions["eu-west"].id)
    expect_error(403, k.SubnetApi(client).list_subnets)


def test_every_remaining_operation_round_trips(bare_platform):
    """Reads, updates and deletions of each kind, through the SDK, that the tests above do not already do."""
    api = bare_platform.api
    regions, zones, kaktus, kiwis = k.RegionApi(api), k.ZoneApi(api), k.KaktusApi(api), k.KiwiApi(api)
    pools, nfss, templates = k.PoolApi(api), k.NfsApi(api), k.TemplateApi(api)
    vnets, subnets, adapters = k.VnetApi(api), k.SubnetApi(api), k.AdapterApi(api)
    east = bare_platform.regions["eu-east"].id

    region = regions.update_region(east, k.Region(name="eu-east", description="Frankfurt",
                                                  domain="east.acme.internal"))
    assert region.description == "Frankfurt"
    assert zones.list_zones() == [bare_platform.zones[z].id for z in "abc"]
    zone = zones.update_zone(bare_platform.zones["c"].id, k.Zone(name="c", description="hall C"))
    assert zone.description == "hall C"

    assert kaktus.list_kaktuss() == [bare_platform.kaktuses[z].id for z in "abc"]
    node = kaktus.update_kaktus(bare_platform.kaktuses["c"].id, k.Kaktus(
        name="k-c", agents=[bare_platform.agents["kaktus-c"].id], overcommit_cpu_ratio=4,
        cpu_cost=k.Cost(price=600, currency="EUR"), memory_cost=k.Cost(price=300, currency="EUR")))
    assert (node.overcommit_cpu_ratio, node.cpu_cost.price) == (4, 600.0)
    assert kaktus.list_kaktus_instances(node.id) == []

    assert kiwis.list_kiwis() == [bare_platform.kiwis["eu-west"].id, bare_platform.kiwis["eu-east"].id]
    assert kiwis.read_kiwi(bare_platform.kiwis["eu-east"].id).agents == [bare_platform.agents["kiwi-east-1"].id]
    assert kiwis.update_kiwi(bare_platform.kiwis["eu-east"].id, k.Kiwi(name="kiwi-east", agents=[])).agents == []

    assert pools.list_storage_pools() == [bare_platform.pools["eu-west"].id, bare_platform.pools["eu-east"].id]
    pool = pools.update_storage_pool(bare_platform.pools["eu-east"].id, k.StoragePool(
        name="ssd", pool="rbd-ssd", ceph_address="10.60.0.3", agents=[bare_platform.agents["kaktus-c"].id]))
    assert (pool.ceph_address, pool.ceph_port) == ("10.60.0.3", 3300)
    assert pools.read_storage_pool(pool.id).ceph_address == "10.60.0.3"
    assert pools.list_storage_pool_volumes(pool.id) == []
    first = pools.create_template(pool.id, k.Template(name="debian", source="https://images.example/debian.img"))
    second = pools.create_template(pool.id, k.Template(name="alma", os="linux",
                                                       source="https://images.example/alma.img"))
    pools.set_storage_pool_default_template(pool.id, second.id)
    assert bare_platform.deployment.kahuna.db.pools.get(pool.id)["defaults"]["template_id"] == second.id
    expect_error(404, pools.set_storage_pool_default_template, bare_platform.pools["eu-west"].id, second.id)
    assert sorted(templates.list_templates()) == sorted([first.id, second.id])
    renamed = templates.update_template(first.id, k.Template(name="debian-12", os="linux", source="ignored"))
    assert templates.read_template(first.id).name == renamed.name == "debian-12"

    nfs = regions.create_storage_nfs(east, k.StorageNFS(name="share", endpoint="nfs.east", backends=["10.60.0.10"]),
                                     pool_id=pool.id)
    other = regions.create_storage_nfs(east, k.StorageNFS(name="share-2", endpoint="nfs2.east"))
    regions.set_region_default_storage_nfs(east, other.id)
    assert bare_platform.deployment.kahuna.db.regions.get(east)["defaults"]["nfs_id"] == other.id
    assert nfss.list_storage_nfss() == [nfs.id, other.id]
    assert nfss.update_storage_nfs(nfs.id, k.StorageNFS(name="share", endpoint="nfs.east", port=2049)).port == 2049
    assert nfss.read_storage_nfs(nfs.id).fs == "nfs"
    assert nfss.list_storage_nfs_kylos(nfs.id) == []
    expect_error(422, regions.create_storage_nfs, east, k.StorageNFS(name="x", endpoint="e", backends=["nope"]))
    nfss.delete_storage_nfs(other.id)
    expect_error(409, pools.delete_storage_pool, pool.id)  # still holds templates and an NFS storage

    assert len(vnets.list_v_nets()) == 4
    private = bare_platform.vnets["eu-east-private"].id
    assert vnets.update_v_net(private, k.VNet(name="lan", vlan=200, interface="br200")).vlan == 200
    vnets.set_v_net_default_subnet(private, bare_platform.subnets["eu-east-1"].id)
    assert (bare_platform.deployment.kahuna.db.vnets.get(private)["defaults"]["subnet_id"]
            == bare_platform.subnets["eu-east-1"].id)
    assert len(subnets.list_subnets()) == 10
    subnet = subnets.update_subnet(bare_platform.subnets["eu-east-3"].id, k.Subnet(
        name="vpc-3", cidr="10.60.0.192/26", gateway="10.60.0.193", dns="10.60.0.2", extra_routes=["10.0.0.0/8"],
        gw_pool=[k.IpRange(first="10.60.0.250", last="10.60.0.250")]))
    assert (subnet.dns, subnet.extra_routes) == ("10.60.0.2", ["10.0.0.0/8"])
    expect_error(422, subnets.update_subnet, subnet.id, k.Subnet(name="vpc-3", cidr="10.60.1.0/26",
                                                                  gateway="10.60.1.1"))
    nic = subnets.create_adapter(subnet.id, k.Adapter(name="router", reserved=True), assign_ip=True)
    assert adapters.list_adapters() == [nic.id]
    assert adapters.read_adapter(nic.id).reserved is True

    for delete, object_id in ((adapters.delete_adapter, nic.id), (subnets.delete_subnet, subnet.id),
                              (templates.delete_template, first.id), (templates.delete_template, second.id),
                              (nfss.delete_storage_nfs, nfs.id), (pools.delete_storage_pool, pool.id),
                              (kaktus.delete_kaktus, node.id), (kiwis.delete_kiwi, bare_platform.kiwis["eu-east"].id)):
        delete(object_id)
    for subnet_name in ("eu-east-0", "eu-east-1", "eu-east-2", "eu-east-public"):
        subnets.delete_subnet(bare_platform.subnets[subnet_name].id)
    vnets.delete_v_net(private)
    vnets.delete_v_net(bare_platform.vnets["eu-east-public"].id)
    zones.delete_zone(bare_platform.zones["c"].id)
    regions.delete_region(east)
    assert regions.list_regions() == [bare_platform.regions["eu-west"].id]
