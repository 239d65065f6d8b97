"""Kawaii (with IPsec), Konvey and Kylo on the simulated platform, through the SDK; and the whole
scenario of a project: made, checked on every agent, deleted, and nothing left anywhere."""

from __future__ import annotations

import ipaddress
import json

import kowabunga as k
import pytest
import yaml

from kahuna import cloudinit
from tests.deployment import expect_error
from tests.simulator import SimulatedAgent
from tests.test_compute import GIB, host

WEST_ZONES = ("a", "b")


@pytest.fixture
def project(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], regions=[platform.regions["eu-west"].id]),
        subnet_size=26)


def kawaii(platform, project, **fields):
    fields.setdefault("netip", k.KawaiiNetIp(public=[], private=[], zones=[]))
    return k.ProjectApi(platform.api).create_project_region_kawaii(project.id, platform.regions["eu-west"].id,
                                                                   k.Kawaii(**fields))


def seed(platform, name):
    volume = platform.agents["kaktus-a"].volumes[("rbd-ssd", f"{name}-cloudinit")]
    return {key: value.decode() for key, value in cloudinit.read_iso(volume["Content"]).items()}


def start_kontroller(platform, vm_name) -> tuple[SimulatedAgent, dict]:
    """The Kontroller inside a VM: it reads its id and key from the seed and dials Kahuna."""
    meta = yaml.safe_load(seed(platform, vm_name)["meta-data"])
    assert meta["kowabunga_controller_uri"].startswith("ws://")
    agent = SimulatedAgent(meta["kowabunga_controller_uri"], "Kontroller", meta["kowabunga_controller_agent_id"],
                           meta["kowabunga_controller_agent_token"], name=vm_name).connect()
    return agent, meta


def metadata(platform, meta):
    response = platform.deployment.http.request(
        "GET", meta["kowabunga_metadata_uri"],
        headers={"X-Kowabunga-Instance-Id": meta["instance-id"], "X-Kowabunga-Source-Ip": meta["kowabunga_local_ip"]})
    assert response.status == 200, response.data
    return json.loads(response.data)


def vm_names(platform, profile):
    return sorted(i["name"] for i in platform.deployment.kahuna.db.db["instance"].find({"profile": profile}))


def test_a_kawaii_is_one_vm_per_zone_with_virtual_addresses_mastered_locally(platform, project):
    peer = platform.subnets["eu-west-3"]  # another VPC of the region, e.g. a shared service
    gateway = kawaii(platform, project,
                     firewall=k.KawaiiFirewall(ingress=[k.KawaiiFirewallIngressRule(ports="22,443")]),
                     dnat=[k.KawaiiDNatRule(destination="10.50.0.20", ports="8080")],
                     vpc_peerings=[k.KawaiiVpcPeering(subnet=peer.id, ingress=[k.KawaiiVpcForwardRule(ports="5432")])])
    peering = gateway.vpc_peerings[0]
    assert peering.policy == "drop" and [z.zone for z in peering.netip] == list(WEST_ZONES)
    assert all(ipaddress.ip_address(z.private) in ipaddress.ip_network(peer.cidr) for z in peering.netip)
    assert len(gateway.netip.public) == 2 and all(ip.startswith("198.51.50.") for ip in gateway.netip.public)
    assert gateway.netip.private == ["10.50.0.6", "10.50.0.7"]  # the project's zone gateways
    assert [z.zone for z in gateway.netip.zones] == list(WEST_ZONES)
    names = vm_names(platform, "kawaii")
    assert names == ["kawaii-shop-eu-west-a", "kawaii-shop-eu-west-b"]
    assert set(platform.agents["kaktus-a"].instances) | set(platform.agents["kaktus-b"].instances) == set(names)
    expect_error(409, kawaii, platform, project)
    # Each VM's Kontroller connects with the key of its seed and reads its own profile.
    kontroller, meta = start_kontroller(platform, "kawaii-shop-eu-west-a")
    kontroller.wait_for_call("Reload")  # on connect: configure the VM
    profile = metadata(platform, meta)["kawaii"]
    zone_a = next(z for z in gateway.netip.zones if z.zone == "a")
    masters = {v["vip"] for v in profile["virtual_ips"] if v["priority"] == 150}
    assert masters == {zone_a.public, zone_a.private}
    assert {v["vrrp_id"] for v in profile["virtual_ips"]} == set(k.ProjectApi(platform.api).read_project(
        project.id).reserved_vrrp_ids)
    assert profile["fw_nat_rules"][0]["private_ip"] == "10.50.0.20"
    assert {r["ports"] for r in profile["fw_input_rules"]} == {"22,443"}
    assert profile["peering_interfaces"] == ["ens5"]
    assert profile["fw_forward_rules"] == [{"iifname": "ens4", "oifname": "ens5", "source_ip": "10.50.0.0/26",
                                            "destination_ip": "10.50.0.192/26", "protocol": "tcp", "ports": "5432",
                                            "action": "accept"}]
    # An update reloads the Kontrollers; IPsec connections too.
    kawaiis = k.KawaiiApi(platform.api)
    kawaiis.update_kawaii(gateway.id, k.Kawaii(netip=gateway.netip, firewall=k.KawaiiFirewall(
        ingress=[k.KawaiiFirewallIngressRule(ports="80")])))
    kontroller.wait_for_call("Reload", count=2)
    assert {r["ports"] for r in metadata(platform, meta)["kawaii"]["fw_input_rules"]} == {"80"}
    expect_error(400, kawaiis.update_kawaii, gateway.id, k.Kawaii(netip=gateway.netip, firewall=k.KawaiiFirewall(
        ingress=[k.KawaiiFirewallIngressRule(ports="70000")])))
    tunnel = kawaiis.create_kawaii_ip_sec(gateway.id, k.KawaiiIpSec(
        name="office", remote_ip="203.0.113.10", remote_subnet="192.168.0.0/24", pre_shared_key="s3cr3t-psk",
        phase1_dh_group_number=14, phase1_integrity_algorithm="SHA256", phase1_encryption_algorithm="AES256",
        phase2_dh_group_number=14, phase2_integrity_algorithm="SHA256", phase2_encryption_algorithm="AES256"))
    assert tunnel.ip in gateway.netip.public and tunnel.dpd_timeout == "240s"
    kontroller.wait_for_call("Reload", count=3)
    assert metadata(platform, meta)["kawaii"]["ipsec_connections"][0]["remote_peer"] == "203.0.113.10"
    expect_error(409, kawaiis.create_kawaii_ip_sec, gateway.id, k.KawaiiIpSec(
        name="office", remote_ip="203.0.113.11", remote_subnet="192.168.1.0/24", pre_shared_key="x",
        phase1_dh_group_number=14, phase1_integrity_algorithm="SHA256", phase1_encryption_algorithm="AES256",
        phase2_dh_group_number=14, phase2_integrity_algorithm="SHA256", phase2_encryption_algorithm="AES256"))
    assert kawaiis.list_kawaii_ip_secs(gateway.id) == [tunnel.id]
    expect_error(409, kawaiis.delete_kawaii, gateway.id)  # a tunnel remains
    kawaiis.delete_kawaii_ip_sec(gateway.id, tunnel.id)
    kawaiis.delete_kawaii(gateway.id)
    assert not platform.agents["kaktus-a"].instances and not platform.agents["kaktus-b"].instances
    platform.deployment.wait_until(lambda: not kontroller.connected, what="Kontroller dropped")
    assert k.ProjectApi(platform.api).read_project(project.id).reserved_vrrp_ids in (None, [])


def test_a_konvey_with_failover_spreads_two_vms_over_the_zones(platform, project):
    lb = k.ProjectApi(platform.api).create_project_region_konvey(project.id, platform.regions["eu-west"].id, k.Konvey(
        name="web", endpoints=[k.KonveyEndpoint(name="https", port=443, protocol="tcp", backends=k.KonveyBackends(
            hosts=["10.50.0.30", "10.50.0.31"], port=8443))]))
    assert lb.failover and lb.vip.startswith("10.50.0.") and lb.name == "web"
    names = vm_names(platform, "konvey")
    assert names == ["konvey-web-a-1", "konvey-web-b-2"]
    hosts = {i["kaktus_id"] for i in platform.deployment.kahuna.db.db["instance"].find({"profile": "konvey"})}
    assert len(hosts) == 2
    priorities = []
    for name in names:
        kontroller, meta = start_kontroller(platform, name)
        profile = metadata(platform, meta)["konvey"]
        assert profile["endpoints"][0]["backends"] == [{"host": "10.50.0.30", "port": 8443},
                                                       {"host": "10.50.0.31", "port": 8443}]
        priorities.append(profile["virtual_ips"][0]["priority"])
        kontroller.close()
    assert priorities == [150, 100]  # the first VM is the master
    expect_error(409, k.ProjectApi(platform.api).create_project_zone_konvey, project.id, platform.zones["a"].id,
                 k.Konvey(name="web", endpoints=[]))
    expect_error(422, k.KonveyApi(platform.api).update_konvey, lb.id, k.Konvey(endpoints=[k.KonveyEndpoint(
        name="x", port=0, protocol="tcp", backends=k.KonveyBackends(hosts=[], port=80))]))
    k.KonveyApi(platform.api).delete_konvey(lb.id)
    assert vm_names(platform, "konvey") == []


def test_a_zone_konvey_puts_its_vms_on_distinct_kaktus_or_refuses(platform, project):
    # Zone a has one Kaktus: two VMs cannot be on distinct nodes there.
    body = expect_error(507, k.ProjectApi(platform.api).create_project_zone_konvey, project.id,
                        platform.zones["a"].id, k.Konvey(name="lb", failover=True, endpoints=[]))
    assert "no room" in body["reason"]
    assert platform.deployment.kahuna.db.db["konvey"].count_documents({}) == 0
    assert vm_names(platform, "konvey") == []
    single = k.ProjectApi(platform.api).create_project_zone_konvey(
        project.id, platform.zones["a"].id, k.Konvey(name="lb", failover=False, endpoints=[]))
    assert not single.failover and vm_names(platform, "konvey") == ["konvey-lb-a-1"]
    k.KonveyApi(platform.api).delete_konvey(single.id)


def test_a_kylo_share_is_exported_to_the_project_only(platform, project):
    regions = k.RegionApi(platform.api)
    nfs = regions.create_storage_nfs(platform.regions["eu-west"].id, k.StorageNFS(
        name="share", endpoint="nfs.west.acme.internal", backends=["10.50.0.250"]))
    share = k.ProjectApi(platform.api).create_project_region_kylo(project.id, platform.regions["eu-west"].id,
                                                                  k.Kylo(name="assets", access="RW"))
    assert share.endpoint == "nfs.west.acme.internal" and share.protocols == [3, 4]
    agent = platform.agents["kaktus-a"]
    assert "assets" in agent.filesystems["nfs"]
    export = next(iter(agent.nfs_exports.values()))
    assert export["Clients"] == ["10.50.0.0/26"] and export["Access"] == "RW" and export["Backends"] == ["10.50.0.250"]
    expect_error(409, k.ProjectApi(platform.api).create_project_region_kylo, project.id,
                 platform.regions["eu-west"].id, k.Kylo(name="assets"))
    kylos = k.KyloApi(platform.api)
    assert kylos.update_kylo(share.id, k.Kylo(name="assets", access="RO")).access == "RO"
    assert next(iter(agent.nfs_exports.values()))["Access"] == "RO"
    expect_error(409, k.NfsApi(platform.api).delete_storage_nfs, nfs.id)
    kylos.delete_kylo(share.id)
    assert "assets" not in agent.filesystems["nfs"] and not agent.nfs_exports


def test_the_whole_project_scenario_leaves_nothing_behind(platform, project):
    projects = k.ProjectApi(platform.api)
    west = platform.regions["eu-west"].id
    web = projects.create_project_zone_kompute(project.id, platform.zones["a"].id, k.Kompute(
        name="web-1", vcpus=2, memory=2 * GIB, disk=10 * GIB))
    gateway = kawaii(platform, project)
    lb = projects.create_project_region_konvey(project.id, west, k.Konvey(name="front", endpoints=[k.KonveyEndpoint(
        name="http", port=80, protocol="tcp", backends=k.KonveyBackends(hosts=[web.ip], port=8080))]))
    db = platform.deployment.kahuna.db.db
    assert db["instance"].count_documents({"project_id": project.id}) == 5  # web-1, 2 Kawaii VMs, 2 Konvey VMs
    assert host(platform.agents["kiwi-west-1"], "web-1") == [web.ip]
    usage = projects.read_project_usage(project.id)
    assert usage.instances == 5 and usage.storage == 10 * GIB + 4 * 16 * GIB
    # Deleting it all, then the project.
    k.KonveyApi(platform.api).delete_konvey(lb.id)
    k.KawaiiApi(platform.api).delete_kawaii(gateway.id)
    k.KomputeApi(platform.api).delete_kompute(web.id)
    projects.delete_project(project.id)
    for collection in ("instance", "volume", "kompute", "kawaii", "konvey", "kylo", "kawaii_ipsec"):
        assert db[collection].count_documents({}) == 0, collection
    assert db["agent"].count_documents({"type": "Kontroller"}) == 0
    assert not [a["name"] for a in db["adapter"].find()]
    assert db["subnet"].count_documents({"project_id": {"$ne": ""}}) == 0
    for name in ("kaktus-a", "kaktus-b", "kaktus-c"):
        assert not platform.agents[name].instances, name
    assert set(platform.agents["kaktus-a"].volumes) == {("rbd-ssd", "ubuntu-24")}
    for name in ("kiwi-west-1", "kiwi-west-2"):
        assert not platform.agents[name].dns_records.get("shop.acme.internal")
        assert "shop.acme.internal" not in platform.agents[name].dns_zones
