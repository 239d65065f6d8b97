"""A realistic platform for the tests: 2 regions, 3 zones, Kaktus and Kiwi nodes served by simulated agents."""

from __future__ import annotations

from dataclasses import dataclass, field

import kowabunga as k

from tests.deployment import Deployment
from tests.simulator import SimulatedAgent


@dataclass
class Topology:
    deployment: Deployment
    regions: dict[str, k.Region] = field(default_factory=dict)
    zones: dict[str, k.Zone] = field(default_factory=dict)
    kaktuses: dict[str, k.Kaktus] = field(default_factory=dict)
    kiwis: dict[str, k.Kiwi] = field(default_factory=dict)
    pools: dict[str, k.StoragePool] = field(default_factory=dict)
    templates: dict[str, k.Template] = field(default_factory=dict)
    vnets: dict[str, k.VNet] = field(default_factory=dict)
    subnets: dict[str, k.Subnet] = field(default_factory=dict)
    agents: dict[str, SimulatedAgent] = field(default_factory=dict)

    @property
    def api(self) -> k.ApiClient:
        return self.deployment.admin


def build(deployment: Deployment, with_templates: bool = False, dense: bool = False) -> Topology:
    """eu-west (zones a, b; Kaktus k-a, k-b; an HA Kiwi with 2 agents) and eu-east (zone c; Kaktus k-c; 1 Kiwi).

    *with_templates* adds an OS template (``ubuntu-24``) to each region's pool, for instances. *dense* adds a second
    Kaktus to zone a, ``k-a2`` (``kaktuses["a2"]``, agent ``kaktus-a2``), on the same Ceph cluster as k-a and k-b.
    """
    t = Topology(deployment)
    regions, zones = k.RegionApi(t.api), k.ZoneApi(t.api)
    for name, domain in (("eu-west", "west.acme.internal"), ("eu-east", "east.acme.internal")):
        t.regions[name] = regions.create_region(k.Region(name=name, domain=domain))
    for zone, region in (("a", "eu-west"), ("b", "eu-west"), ("c", "eu-east")):
        t.zones[zone] = regions.create_zone(t.regions[region].id, k.Zone(name=zone))
    for name in ("kaktus-a", "kaktus-b", "kaktus-c", *(("kaktus-a2",) if dense else ())):
        t.agents[name] = deployment.simulated_agent(name, "Kaktus")
    for name in ("kiwi-west-1", "kiwi-west-2", "kiwi-east-1"):
        t.agents[name] = deployment.simulated_agent(name, "Kiwi")
    # kaktus-a and kaktus-b serve one Ceph cluster: what one makes in the pool, the other sees.
    for sharing in ("kaktus-b", *(("kaktus-a2",) if dense else ())):
        for shared in ("volumes", "filesystems", "nfs_exports"):
            setattr(t.agents[sharing], shared, getattr(t.agents["kaktus-a"], shared))
    for node, zone in (("a", "a"), ("b", "b"), ("c", "c"), *((("a2", "a"),) if dense else ())):
        t.kaktuses[node] = zones.create_kaktus(t.zones[zone].id, k.Kaktus(
            name=f"k-{node}", agents=[t.agents[f"kaktus-{node}"].id],
            cpu_cost=k.Cost(price=500, currency="EUR"), memory_cost=k.Cost(price=300, currency="EUR")))
    t.kiwis["eu-west"] = regions.create_kiwi(t.regions["eu-west"].id, k.Kiwi(
        name="kiwi-west", agents=[t.agents["kiwi-west-1"].id, t.agents["kiwi-west-2"].id]))
    t.kiwis["eu-east"] = regions.create_kiwi(t.regions["eu-east"].id, k.Kiwi(
        name="kiwi-east", agents=[t.agents["kiwi-east-1"].id]))
    t.pools["eu-west"] = regions.create_storage_pool(t.regions["eu-west"].id, k.StoragePool(
        name="ssd", pool="rbd-ssd", agents=[t.agents["kaktus-a"].id, t.agents["kaktus-b"].id],
        cost=k.Cost(price=200, currency="EUR")))
    t.pools["eu-east"] = regions.create_storage_pool(t.regions["eu-east"].id, k.StoragePool(
        name="ssd", pool="rbd-ssd", agents=[t.agents["kaktus-c"].id], cost=k.Cost(price=200, currency="EUR")))
    for region, pool in t.pools.items() if with_templates else ():
        t.templates[region] = k.PoolApi(t.api).create_template(pool.id, k.Template(
            name="ubuntu-24", os="linux", source="https://images.example/ubuntu-24.qcow2"))
    vnets = k.VnetApi(t.api)
    for region, octet, zones_count in (("eu-west", 50, 2), ("eu-east", 60, 1)):
        private = regions.create_v_net(t.regions[region].id, k.VNet(name="private", vlan=100, interface="br100",
                                                                       private=True))
        public = regions.create_v_net(t.regions[region].id, k.VNet(name="public", vlan=0, interface="br0",
                                                                      private=False))
        t.vnets[f"{region}-private"], t.vnets[f"{region}-public"] = private, public
        for n in range(4):
            base = n * 64
            t.subnets[f"{region}-{n}"] = vnets.create_subnet(private.id, k.Subnet(
                name=f"vpc-{n}", cidr=f"10.{octet}.0.{base}/26", gateway=f"10.{octet}.0.{base + 1}",
                reserved=[k.IpRange(first=f"10.{octet}.0.{base + 2}", last=f"10.{octet}.0.{base + 5}")],
                gw_pool=[k.IpRange(first=f"10.{octet}.0.{base + 6}", last=f"10.{octet}.0.{base + 5 + zones_count}")]))
        t.subnets[f"{region}-public"] = vnets.create_subnet(public.id, k.Subnet(
            name="wan", cidr=f"198.51.{octet}.0/24", gateway=f"198.51.{octet}.1",
            reserved=[k.IpRange(first=f"198.51.{octet}.2", last=f"198.51.{octet}.9")]))
    return t
