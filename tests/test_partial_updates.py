"""Partial updates (API 0.58 XUpdate bodies) of every resource whose PUT this package serves, over HTTP.

For each PUT:

- ``{}`` changes nothing, and neither does sending back what a GET read (read-only keys are accepted and dropped);
- a creation-only key is accepted and ignored (the reply shows the value kept);
- ``null`` is refused with 400;
- a raw partial JSON body (as the 0.58 SDK sends it) changes only the keys it carries;
- a full body of the 0.53.2 SDK sets every field it carries, as before; a field that SDK leaves out is kept.

The 0.58 shapes of these resources are checked here too: dpd ``start`` read back as ``restart``, StorageNFS
``backends`` always sent, Konvey ports bounded, Kaktus ``maintenance`` read-only, Instance/Kompute ``kwarantines``,
``uefi`` and ``kmotion_enabled``.
"""

from __future__ import annotations

import typing

import gevent
import gevent.event
import kowabunga as k
import pytest

from actors._serializer import held_keys
from tests.deployment import NO_BODY, expect_error
from tests.test_compute import GIB
from tests.test_kawaii_konvey_kylo import kawaii as make_kawaii


class Raw:
    """JSON over HTTP with the master key, as any client of 0.58 sends it."""

    def __init__(self, platform):
        self.deployment = platform.deployment

    def request(self, method: str, path: str, body: typing.Any = NO_BODY) -> tuple[int, typing.Any]:
        return self.deployment.api_request(method, path, body)

    def get(self, path: str) -> dict:
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def put(self, path: str, body: typing.Any) -> tuple[int, typing.Any]:
        return self.request("PUT", path, body)


def check_partial_updates(raw: Raw, path: str, change: dict, *, creation_only: dict | None = None,
                          shown: dict | None = None) -> tuple[dict, dict]:
    """The rules every PUT follows; *change* is a valid partial body, *shown* what a GET then shows of it."""
    before = raw.get(path)
    assert raw.put(path, {}) == (200, before)
    assert raw.put(path, before) == (200, before)  # read-only (and creation-only) keys included
    for key, value in (creation_only or {}).items():
        assert before.get(key) != value
        assert raw.put(path, {key: value}) == (200, before), key
    for key in change:
        status, body = raw.put(path, {key: None})
        assert status == 400 and key in body["reason"], body
    status, after = raw.put(path, change)
    assert status == 200, after
    assert after == {**before, **(shown or change)}
    assert raw.get(path) == after
    return before, after


#: Bound on waits that only a defect would reach (never a measured time).
RACE_TIMEOUT = 120.0


def updates_racing_in(monkeypatch, raw: Raw, key: str, puts: list[tuple[str, dict]]) -> list[tuple[int, typing.Any]]:
    """Each ``(path, body)`` PUT in its own greenlet, all of them started while the test holds the owner *key*, and
    that owner released only once every request has asked for it: a request that read the object before asking
    (outside the owner) read it before any of them wrote. Returns their answers, in order."""
    serializer = raw.deployment.kahuna.services.serializer
    original = serializer.run
    holding, release, arrived = gevent.event.Event(), gevent.event.Event(), gevent.event.Event()
    arrivals = []

    def counted_run(asked, function, *args, **kwargs):
        if asked == key and not held_keys():  # a request asking for the owner (not a step nested in it)
            arrivals.append(asked)
            if len(arrivals) == len(puts):
                arrived.set()
        return original(asked, function, *args, **kwargs)

    def hold() -> None:
        holding.set()
        release.wait()

    holder = gevent.spawn(original, key, hold)
    assert holding.wait(RACE_TIMEOUT)
    monkeypatch.setattr(serializer, "run", counted_run)
    greenlets = [gevent.spawn(raw.put, path, body) for path, body in puts]
    try:
        assert arrived.wait(RACE_TIMEOUT), f"{len(arrivals)} of {len(puts)} updates asked for the owner {key}"
    finally:
        release.set()
        gevent.joinall([holder, *greenlets], timeout=RACE_TIMEOUT)
    assert all(g.successful() for g in [holder, *greenlets])
    return [g.value for g in greenlets]


@pytest.fixture
def raw(bare_platform):
    return Raw(bare_platform)


@pytest.fixture
def project(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], root_password="S3cret-root-pw",
        regions=[platform.regions["eu-west"].id]), subnet_size=26)


# -- infrastructure ----------------------------------------------------------------------------------------------


def test_region(bare_platform, raw):
    region = bare_platform.regions["eu-west"]
    check_partial_updates(raw, f"/region/{region.id}", {"description": "western Europe"})
    sdk = k.RegionApi(bare_platform.api)
    updated = sdk.update_region(region.id, k.Region(name="west", domain="west.acme.internal"))
    assert (updated.name, updated.description, updated.domain) == ("west", "western Europe", "west.acme.internal")
    assert sdk.update_region(region.id, k.Region(name="west", domain="west.acme.internal",
                                                 description="")).description == ""


def test_zone(bare_platform, raw):
    zone = bare_platform.zones["a"]
    check_partial_updates(raw, f"/zone/{zone.id}", {"description": "room 1"})
    updated = k.ZoneApi(bare_platform.api).update_zone(zone.id, k.Zone(name="a1"))
    assert (updated.name, updated.description) == ("a1", "room 1")


def test_kaktus(bare_platform, raw):
    kaktus = bare_platform.kaktuses["a"]
    before, _ = check_partial_updates(raw, f"/kaktus/{kaktus.id}", {"overcommit_cpu_ratio": 5},
                                      creation_only={"maintenance": True}, shown={"overcommit_cpu_ratio": 5})
    assert before["maintenance"] is False
    assert raw.put(f"/kaktus/{kaktus.id}", {"cpu_cost": {"price": 1, "currency": "USD"}})[1]["cpu_cost"] == {
        "price": 1.0, "currency": "USD"}
    # The 0.53.2 SDK always sends its overcommit defaults (3 and 2): they are set, as before.
    updated = k.KaktusApi(bare_platform.api).update_kaktus(kaktus.id, k.Kaktus(name="k-a", agents=kaktus.agents))
    assert (updated.overcommit_cpu_ratio, updated.cpu_cost.currency) == (3, "USD")


def test_kiwi(bare_platform, raw):
    kiwi = bare_platform.kiwis["eu-west"]
    agent = bare_platform.agents["kiwi-west-1"].id
    check_partial_updates(raw, f"/kiwi/{kiwi.id}", {"agents": [agent]})
    updated = k.KiwiApi(bare_platform.api).update_kiwi(kiwi.id, k.Kiwi(name="kiwi-west", description="gateway"))
    assert (updated.description, updated.agents) == ("gateway", [agent])


def test_storage_pool(bare_platform, raw):
    pool = bare_platform.pools["eu-west"]
    check_partial_updates(raw, f"/pool/{pool.id}", {"cost": {"price": 150.0, "currency": "EUR"}})
    updated = k.PoolApi(bare_platform.api).update_storage_pool(pool.id, k.StoragePool(
        name="ssd", pool="rbd-ssd", agents=pool.agents, description="fast"))
    assert (updated.description, updated.cost.price, updated.ceph_port) == ("fast", 150.0, 3300)


def test_storage_nfs(bare_platform, raw):
    east = bare_platform.regions["eu-east"].id
    regions = k.RegionApi(bare_platform.api)
    nfs = regions.create_storage_nfs(east, k.StorageNFS(name="share", endpoint="nfs.east", backends=["10.60.0.10"]))
    check_partial_updates(raw, f"/nfs/{nfs.id}", {"port": 2049})
    # A 0.53.2 body without backends keeps them; its SDK sends its defaults for fs and port.
    updated = k.NfsApi(bare_platform.api).update_storage_nfs(nfs.id, k.StorageNFS(name="share", endpoint="nfs.e"))
    assert (updated.backends, updated.endpoint, updated.port) == (["10.60.0.10"], "nfs.e", 54934)
    bare = regions.create_storage_nfs(east, k.StorageNFS(name="share-2", endpoint="nfs2.east"))
    assert raw.get(f"/nfs/{bare.id}")["backends"] == []
    assert raw.request("GET", f"/region/{east}/nfses") == (200, [nfs.id, bare.id])
    assert raw.request("GET", f"/region/{east}/nfses?poolId=whatever") == (200, [nfs.id, bare.id])
    assert raw.request("GET", f"/nfs/{nfs.id}/kylos") == (200, [])


def test_template(platform):
    raw = Raw(platform)
    template = platform.templates["eu-west"]
    check_partial_updates(raw, f"/template/{template.id}", {"description": "LTS"},
                          creation_only={"os": "windows", "source": "https://images.example/other.qcow2"})
    # 0.53.2's SDK sends os="linux" by default: the os is set at creation only, so it is kept either way.
    updated = k.TemplateApi(platform.api).update_template(template.id, k.Template(
        name="ubuntu", os="windows", source="https://images.example/ubuntu-24.qcow2"))
    assert (updated.name, updated.description, updated.os) == ("ubuntu", "LTS", "linux")


def test_vnet(bare_platform, raw):
    vnet = bare_platform.vnets["eu-west-private"]
    check_partial_updates(raw, f"/vnet/{vnet.id}", {"description": "tenants"}, creation_only={"private": False})
    updated = k.VnetApi(bare_platform.api).update_v_net(vnet.id, k.VNet(name="private", interface="br100",
                                                                         private=False, vlan=100))
    assert (updated.private, updated.description, updated.vlan) == (True, "tenants", 100)


def test_subnet(bare_platform, raw):
    subnet = bare_platform.subnets["eu-west-1"]
    check_partial_updates(raw, f"/subnet/{subnet.id}", {"dns": "10.50.0.65"},
                          creation_only={"cidr": "10.99.0.0/24"})
    updated = k.SubnetApi(bare_platform.api).update_subnet(subnet.id, k.Subnet(
        name="vpc-1", cidr="10.99.0.0/24", gateway="10.50.0.65", description="one"))
    assert (updated.cidr, updated.dns, updated.description) == ("10.50.0.64/26", "10.50.0.65", "one")
    assert updated.reserved == subnet.reserved and updated.application == "user"


def test_adapter(bare_platform, raw):
    subnet = bare_platform.subnets["eu-west-1"]
    adapter = k.SubnetApi(bare_platform.api).create_adapter(subnet.id, k.Adapter(name="nic"), assign_ip=True)
    check_partial_updates(raw, f"/adapter/{adapter.id}", {"description": "spare"})
    updated = k.AdapterApi(bare_platform.api).update_adapter(adapter.id, k.Adapter(name="nic-1"))
    assert (updated.name, updated.description, updated.addresses, updated.mac) == (
        "nic-1", "spare", adapter.addresses, adapter.mac)


def test_dns_record(bare_platform, raw):
    region = bare_platform.regions["eu-west"]
    record = k.RegionApi(bare_platform.api).create_region_dns_record(region.id, k.DnsRecord(
        name="ntp", addresses=["10.50.0.2"]))
    check_partial_updates(raw, f"/record/{record.id}", {"addresses": ["10.50.0.3", "10.50.0.4"]},
                          creation_only={"domain": "elsewhere.example"})
    updated = k.RecordApi(bare_platform.api).update_dns_record(record.id, k.DnsRecord(
        name="ntp", addresses=["10.50.0.5"], description="time"))
    assert (updated.addresses, updated.description, updated.domain) == (["10.50.0.5"], "time", "west.acme.internal")


def test_team(bare_platform, raw):
    team = k.TeamApi(bare_platform.api).create_team(k.Team(name="ops", description="on call", users=[]))
    check_partial_updates(raw, f"/team/{team.id}", {"name": "sre"})
    updated = k.TeamApi(bare_platform.api).update_team(team.id, k.Team(name="sre", users=[]))
    assert (updated.name, updated.description) == ("sre", "on call")


def test_project(platform, project):
    raw = Raw(platform)
    check_partial_updates(raw, f"/project/{project.id}", {"tags": ["shop", "web"]},
                          creation_only={"domain": "other.acme.internal"})
    updated = k.ProjectApi(platform.api).update_project(project.id, k.Project(
        name="shop", domain="other.acme.internal", teams=[], regions=[platform.regions["eu-west"].id],
        description="the shop"))
    assert (updated.domain, updated.tags, updated.description) == ("shop.acme.internal", ["shop", "web"], "the shop")


def test_concurrent_partial_updates_of_a_project_both_survive(platform, project, monkeypatch):
    """Both requests read the project before either writes, unless the read is in the project's owner."""
    raw = Raw(platform)
    path = f"/project/{project.id}"
    before = raw.get(path)
    answers = updates_racing_in(monkeypatch, raw, f"project:{project.id}",
                                [(path, {"description": "the shop"}), (path, {"tags": ["shop", "web"]})])
    assert [status for status, _ in answers] == [200, 200], answers
    assert raw.get(path) == {**before, "description": "the shop", "tags": ["shop", "web"]}


def test_a_partial_quotas_object_keeps_the_other_limits(platform, project):
    raw = Raw(platform)
    path = f"/project/{project.id}"
    limits = {"vcpus": 16, "memory": 2**34, "storage": 2**40, "instances": 10}
    assert raw.put(path, {"quotas": limits})[1]["quotas"] == limits
    status, updated = raw.put(path, {"quotas": {"vcpus": 32}})
    assert (status, updated["quotas"]) == (200, {**limits, "vcpus": 32})
    # 0 still lifts a limit, when it is sent.
    assert raw.put(path, {"quotas": {"instances": 0}})[1]["quotas"] == {**limits, "vcpus": 32, "instances": 0}
    assert raw.get(path)["quotas"] == {**limits, "vcpus": 32, "instances": 0}


# -- compute -------------------------------------------------------------------------------------------------------


def test_volume(platform, project):
    raw = Raw(platform)
    volume = k.ProjectApi(platform.api).create_project_region_volume(
        project.id, platform.regions["eu-west"].id, k.Volume(name="data", type="raw", size=GIB))
    check_partial_updates(raw, f"/volume/{volume.id}", {"size": 2 * GIB}, creation_only={"type": "os"})
    updated = k.VolumeApi(platform.api).update_volume(volume.id, k.Volume(name="data", type="os", size=2 * GIB,
                                                                          description="scratch"))
    assert (updated.type, updated.size, updated.description) == ("raw", 2 * GIB, "scratch")
    status, body = raw.request("POST", f"/project/{project.id}/region/{platform.regions['eu-west'].id}/volume",
                               {"name": "tpl", "type": "template", "size": GIB})
    assert status == 422, body


def test_instance(platform, project):
    raw = Raw(platform)
    projects = k.ProjectApi(platform.api)
    os_volume = projects.create_project_region_volume(project.id, platform.regions["eu-west"].id,
                                                      k.Volume(name="db-os", type="os", size=10 * GIB))
    adapter = k.SubnetApi(platform.api).create_adapter(project.private_subnets[0].value, k.Adapter(name="db-nic"),
                                                       assign_ip=True)
    instance = projects.create_project_zone_instance(project.id, platform.zones["b"].id, k.Instance(
        name="db", vcpus=1, memory=2 * GIB, volumes=[os_volume.id], adapters=[adapter.id]))
    path = f"/instance/{instance.id}"
    before = raw.get(path)
    assert (before["kwarantines"], before["uefi"], before["kmotion_enabled"]) == ([], False, True)
    check_partial_updates(raw, path, {"kmotion_enabled": False},
                          creation_only={"uefi": True, "kwarantines": ["0123456789abcdef01234567"]})
    status, resized = raw.put(path, {"vcpus": 2})
    assert status == 200 and (resized["vcpus"], resized["memory"], resized["kmotion_enabled"]) == (2, 2 * GIB, False)
    assert "<vcpu>2</vcpu>" in platform.agents["kaktus-b"].instances["db"]["XML"].replace(' placement="static"', "")
    # A 0.53.2 body leaves out adapters and volumes (kept) and never sends kmotion_enabled (kept).
    updated = k.InstanceApi(platform.api).update_instance(instance.id, k.Instance(
        name="db", vcpus=2, memory=2 * GIB, description="database"))
    assert (updated.description, updated.volumes, updated.adapters) == ("database", [os_volume.id], [adapter.id])
    assert raw.get(path)["kmotion_enabled"] is False
    expect_error(422, k.InstanceApi(platform.api).update_instance, instance.id,
                 k.Instance(name="renamed", vcpus=2, memory=2 * GIB))
    k.InstanceApi(platform.api).delete_instance(instance.id)


def test_kompute(platform, project):
    raw = Raw(platform)
    kompute = k.ProjectApi(platform.api).create_project_zone_kompute(
        project.id, platform.zones["a"].id, k.Kompute(name="web-1", vcpus=1, memory=GIB, disk=10 * GIB))
    path = f"/kompute/{kompute.id}"
    before = raw.get(path)
    assert (before["kwarantines"], before["uefi"], before["kmotion_enabled"]) == ([], False, True)
    check_partial_updates(raw, path, {"kmotion_enabled": False, "description": "front"},
                          creation_only={"uefi": True, "kwarantines": ["0123456789abcdef01234567"]})
    status, grown = raw.put(path, {"disk": 12 * GIB})
    assert status == 200 and grown["disk"] == 12 * GIB and grown["description"] == "front"
    updated = k.KomputeApi(platform.api).update_kompute(kompute.id, k.Kompute(
        name="web-1", vcpus=2, memory=GIB, disk=12 * GIB))
    assert (updated.vcpus, updated.description) == (2, "front")
    assert raw.get(path)["kmotion_enabled"] is False
    k.KomputeApi(platform.api).delete_kompute(kompute.id)


def test_kylo(platform, project):
    raw = Raw(platform)
    west = platform.regions["eu-west"].id
    nfs = k.RegionApi(platform.api).create_storage_nfs(west, k.StorageNFS(
        name="share", endpoint="nfs.west.acme.internal", backends=["10.50.0.250"]))
    kylo = k.ProjectApi(platform.api).create_project_region_kylo(project.id, west, k.Kylo(name="assets"))
    check_partial_updates(raw, f"/kylo/{kylo.id}", {"access": "RO"})
    assert next(iter(platform.agents["kaktus-a"].nfs_exports.values()))["Access"] == "RO"
    # The 0.53.2 SDK sends access="RW" by default: set, as before.
    updated = k.KyloApi(platform.api).update_kylo(kylo.id, k.Kylo(name="assets", description="shared"))
    assert (updated.access, updated.description) == ("RW", "shared")
    assert raw.request("GET", f"/nfs/{nfs.id}/kylos") == (200, [kylo.id])
    assert raw.request("GET", f"/project/{project.id}/region/{west}/kylos") == (200, [kylo.id])
    assert raw.request("GET", f"/project/{project.id}/region/{west}/kylos?nfsId={nfs.id}") == (200, [kylo.id])
    k.KyloApi(platform.api).delete_kylo(kylo.id)


def test_kawaii(platform, project):
    raw = Raw(platform)
    peer = platform.subnets["eu-west-3"]
    gateway = make_kawaii(platform, project, vpc_peerings=[k.KawaiiVpcPeering(subnet=peer.id)])
    path = f"/kawaii/{gateway.id}"
    before, _ = check_partial_updates(
        raw, path, {"dnat": [{"destination": "10.50.0.20", "protocol": "tcp", "ports": "8080"}]},
        creation_only={"vpc_peerings": [], "name": "renamed"})
    assert "ipsec_connections" not in before and before["name"] == gateway.name
    assert raw.put(path, {"ipsec_connections": [{"name": "x"}], "description": "edge"})[0] == 200
    firewall = {"ingress": [{"source": "0.0.0.0/0", "protocol": "tcp", "ports": "443"}], "egress_policy": "drop",
                "egress": []}
    status, updated = raw.put(path, {"firewall": firewall})
    assert status == 200 and updated["firewall"] == firewall and updated["description"] == "edge"
    assert len(updated["dnat"]) == 1 and updated["vpc_peerings"] == before["vpc_peerings"]
    # A 0.53.2 body (netip required by its SDK) sets what it carries; dnat, left out, is kept.
    sdk = k.KawaiiApi(platform.api).update_kawaii(gateway.id, k.Kawaii(
        netip=gateway.netip, firewall=k.KawaiiFirewall(ingress=[])))
    assert sdk.firewall.ingress == [] and sdk.firewall.egress_policy == "accept" and len(sdk.dnat) == 1
    assert sdk.description == "edge"
    status, cleared = raw.put(path, {"description": ""})
    assert (status, cleared["description"]) == (200, "")
    assert raw.get(path)["description"] == ""


def test_concurrent_partial_updates_of_a_kawaii_both_survive(platform, project, monkeypatch):
    """dnat from one client, firewall from another: neither puts the other's field back."""
    raw = Raw(platform)
    gateway = make_kawaii(platform, project)
    path = f"/kawaii/{gateway.id}"
    before = raw.get(path)
    dnat = [{"destination": "10.50.0.20", "protocol": "tcp", "ports": "8080"}]
    firewall = {"ingress": [{"source": "0.0.0.0/0", "protocol": "tcp", "ports": "443"}], "egress_policy": "drop",
                "egress": []}
    answers = updates_racing_in(monkeypatch, raw, f"kawaii:{gateway.id}",
                                [(path, {"dnat": dnat}), (path, {"firewall": firewall})])
    assert [status for status, _ in answers] == [200, 200], answers
    after = raw.get(path)
    assert (after["dnat"], after["firewall"]) == (dnat, firewall)
    assert after == {**before, "dnat": dnat, "firewall": firewall}


IPSEC = {"name": "office", "remote_ip": "203.0.113.10", "remote_subnet": "192.168.0.0/24",
         "pre_shared_key": "s3cr3t-psk", "phase1_dh_group_number": 14, "phase1_integrity_algorithm": "SHA256",
         "phase1_encryption_algorithm": "AES256", "phase2_dh_group_number": 14,
         "phase2_integrity_algorithm": "SHA256", "phase2_encryption_algorithm": "AES256"}


def test_kawaii_ipsec(platform, project):
    raw = Raw(platform)
    gateway = make_kawaii(platform, project)
    status, tunnel = raw.request("POST", f"/kawaii/{gateway.id}/ipsec", {
        **IPSEC, "dpd_timeout_action": "start",
        "firewall": {"ingress": [{"ports": "22"}], "egress_policy": "drop", "egress": [{"ports": "80"}]}})
    assert status == 201, tunnel
    assert tunnel["dpd_timeout_action"] == "restart"
    assert tunnel["firewall"] == {"ingress": [{"source": "0.0.0.0/0", "protocol": "tcp", "ports": "22"}]}
    path = f"/kawaii/{gateway.id}/ipsec/{tunnel['id']}"
    check_partial_updates(raw, path, {"dpd_timeout_action": "trap", "rekey_time": "4h"})
    status, updated = raw.put(path, {"dpd_timeout_action": "start", "firewall": {"ingress": []}})
    assert status == 200 and updated["dpd_timeout_action"] == "restart" and updated["firewall"] == {"ingress": []}
    assert updated["rekey_time"] == "4h"
    # 0.53.2 reads "restart" back; its full body sends its defaults (rekey_time 2h) and a firewall with egress keys.
    sdk = k.KawaiiApi(platform.api)
    read = sdk.read_kawaii_ip_sec(gateway.id, tunnel["id"])
    assert read.dpd_timeout_action == "restart"
    full = sdk.update_kawaii_ip_sec(gateway.id, tunnel["id"], k.KawaiiIpSec(**{
        **IPSEC, "dpd_timeout_action": "start", "description": "HQ",
        "firewall": k.KawaiiFirewall(ingress=[k.KawaiiFirewallIngressRule(ports="443")])}))
    assert (full.dpd_timeout_action, full.rekey_time, full.description) == ("restart", "2h", "HQ")
    assert [rule.ports for rule in full.firewall.ingress] == ["443"]


def test_konvey(platform, project):
    raw = Raw(platform)
    konvey = k.ProjectApi(platform.api).create_project_region_konvey(
        project.id, platform.regions["eu-west"].id, k.Konvey(name="web", endpoints=[k.KonveyEndpoint(
            name="https", port=443, protocol="tcp", backends=k.KonveyBackends(hosts=["10.50.0.30"], port=8443))]))
    path = f"/konvey/{konvey.id}"
    endpoints = [{"name": "http", "port": 80, "protocol": "tcp", "backends": {"hosts": ["10.50.0.31"], "port": 8080}}]
    check_partial_updates(raw, path, {"endpoints": endpoints}, creation_only={"failover": False})
    for port in (0, 65536):
        bad = [{**endpoints[0], "port": port}]
        status, body = raw.put(path, {"endpoints": bad})
        assert status == 422 and "port" in body["reason"], body
        bad = [{**endpoints[0], "backends": {"hosts": [], "port": port}}]
        assert raw.put(path, {"endpoints": bad})[0] == 422
    updated = k.KonveyApi(platform.api).update_konvey(konvey.id, k.Konvey(description="front", endpoints=[
        k.KonveyEndpoint(name="https", port=443, protocol="tcp", backends=k.KonveyBackends(hosts=[], port=8443))]))
    assert (updated.failover, updated.description, updated.name) == (True, "front", "web")
    assert [e.port for e in updated.endpoints] == [443]
    # A description can be cleared; a name is kept (its VMs are named after it): another one is refused.
    status, cleared = raw.put(path, {"description": ""})
    assert (status, cleared["description"]) == (200, "")
    status, body = raw.put(path, {"name": "shop"})
    assert status == 422 and "cannot be renamed" in body["reason"], body
    assert raw.put(path, {"name": "web"}) == (200, cleared)  # its own name: nothing changes
    k.KonveyApi(platform.api).delete_konvey(konvey.id)


# -- with the official 0.58 SDK ------------------------------------------------------------------------------------


def test_the_058_sdk_updates_partially_and_reads_the_058_shapes(platform, project, sdk058):
    from tests.sdk058.harness import model

    client = sdk058()
    zone = platform.zones["a"]
    k.ZoneApi(platform.api).update_zone(zone.id, k.Zone(name="a", description="room 1"))
    updated = client.ok("ZoneApi", "update_zone", zone.id, model("ZoneUpdate", name="a1"))
    assert (updated["name"], updated["description"]) == ("a1", "room 1")
    assert client.ok("KaktusApi", "read_kaktus", platform.kaktuses["a"].id)["maintenance"] is False
    west = platform.regions["eu-west"].id
    nfs = k.RegionApi(platform.api).create_storage_nfs(west, k.StorageNFS(name="share", endpoint="nfs.west"))
    assert client.ok("NfsApi", "read_storage_nfs", nfs.id)["backends"] == []
    assert client.ok("RegionApi", "list_region_storage_nf_ses", west) == [nfs.id]

    kompute = k.ProjectApi(platform.api).create_project_zone_kompute(
        project.id, zone.id, k.Kompute(name="web-1", vcpus=1, memory=GIB, disk=10 * GIB, description="front"))
    read = client.ok("KomputeApi", "read_kompute", kompute.id)
    assert (read["kwarantines"], read["uefi"], read["kmotion_enabled"]) == ([], False, True)
    updated = client.ok("KomputeApi", "update_kompute", kompute.id, model("KomputeUpdate", kmotion_enabled=False))
    assert (updated["kmotion_enabled"], updated["description"], updated["vcpus"]) == (False, "front", 1)

    gateway = make_kawaii(platform, project)
    tunnel = k.KawaiiApi(platform.api).create_kawaii_ip_sec(gateway.id, k.KawaiiIpSec(
        **IPSEC, dpd_timeout_action="start", description="HQ"))
    assert tunnel.dpd_timeout_action == "restart"
    read = client.ok("KawaiiApi", "read_kawaii_ip_sec", gateway.id, tunnel.id)
    assert read["dpd_timeout_action"] == "restart"
    updated = client.ok("KawaiiApi", "update_kawaii_ip_sec", gateway.id, tunnel.id,
                        model("KawaiiIpSecUpdate", dpd_timeout_action="trap"))
    assert (updated["dpd_timeout_action"], updated["description"], updated["name"]) == ("trap", "HQ", "office")
    assert client.ok("KawaiiApi", "read_kawaii", gateway.id)["name"] == gateway.name
    k.KomputeApi(platform.api).delete_kompute(kompute.id)
