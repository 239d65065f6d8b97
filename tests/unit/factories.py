"""Documents of each kind, inserted directly (through ``db.<kind>.insert``, as the services write them), with
sensible defaults: ``make.zone(db, west, "a")``. Parents are given as documents or ids.

They bypass the services' checks on purpose: a test of one service sets up the others' objects in one line.
"""

from __future__ import annotations

import ipaddress
import typing

from kahuna.storage import Database, Document

GIB = 1024**3


def id_of(doc_or_id: Document | str) -> str:
    return doc_or_id if isinstance(doc_or_id, str) else str(doc_or_id["_id"])


def ids_of(docs_or_ids: typing.Iterable[Document | str]) -> list[str]:
    return [id_of(item) for item in docs_or_ids]


def _ranges(ranges: typing.Iterable[tuple[str, str] | dict[str, str]]) -> list[dict[str, str]]:
    return [item if isinstance(item, dict) else {"first": item[0], "last": item[1]} for item in ranges]


# -- accounts ------------------------------------------------------------------------------------------------


def user(db: Database, name: str = "alice", email: str | None = None, role: str = "user", enabled: bool = True,
         password_hash: str | None = None, **fields: typing.Any) -> Document:
    return db.users.insert({"name": name, "description": "", "email": email or f"{name}@example.com", "role": role,
                            "notifications": False, "enabled": enabled, "password_hash": password_hash, **fields})


def team(db: Database, name: str = "team", users: typing.Iterable[Document | str] = (),
         **fields: typing.Any) -> Document:
    return db.teams.insert({"name": name, "description": "", "user_ids": ids_of(users), **fields})


def agent(db: Database, name: str, agent_type: str = "Kaktus", **fields: typing.Any) -> Document:
    return db.agents.insert({"name": name, "description": "", "type": agent_type, **fields})


# -- infrastructure --------------------------------------------------------------------------------------------


def region(db: Database, name: str = "eu-west", domain: str = "", **fields: typing.Any) -> Document:
    return db.regions.insert({"name": name, "description": "", "domain": domain,
                              "defaults": {"pool_id": "", "nfs_id": ""}, **fields})


def zone(db: Database, region: Document | str, name: str = "a", **fields: typing.Any) -> Document:
    return db.zones.insert({"region_id": id_of(region), "name": name, "description": "", **fields})


def kaktus(db: Database, zone: Document | str, name: str = "kaktus", agents: typing.Iterable[Document | str] = (),
           threads: int = 32, memory: int = 256 * GIB, cpu_price: float = 0.0, memory_price: float = 0.0,
           currency: str = "EUR", cpu_overcommit: int = 3, memory_overcommit: int = 2,
           **fields: typing.Any) -> Document:
    """A Kaktus whose agent reported *threads* and *memory* (bytes)."""
    parent = db.zones.get(id_of(zone))
    return db.kaktuses.insert({
        "zone_id": id_of(parent), "region_id": parent["region_id"], "name": name, "description": "",
        "cpu_cost": {"price": cpu_price, "currency": currency},
        "memory_cost": {"price": memory_price, "currency": currency},
        "overcommit_cpu_ratio": cpu_overcommit, "overcommit_memory_ratio": memory_overcommit,
        "agent_ids": ids_of(agents),
        "capabilities": {"cpu": {"arch": "x86_64", "model": "EPYC", "vendor": "AMD", "sockets": 1,
                                 "cores": threads // 2, "threads": threads}, "memory": memory},
        **fields})


def kiwi(db: Database, region: Document | str, name: str = "kiwi", agents: typing.Iterable[Document | str] = (),
         **fields: typing.Any) -> Document:
    return db.kiwis.insert({"region_id": id_of(region), "name": name, "description": "", "agent_ids": ids_of(agents),
                            **fields})


def pool(db: Database, region: Document | str, name: str = "ssd", agents: typing.Iterable[Document | str] = (),
         capacity: int = 0, price: float = 0.0, currency: str = "EUR", **fields: typing.Any) -> Document:
    """A storage pool whose agent reported *capacity* (bytes)."""
    return db.pools.insert({
        "region_id": id_of(region), "name": name, "description": "", "pool": f"rbd-{name}",
        "ceph_address": "localhost", "ceph_port": 3300, "ceph_secret_uuid": "",
        "cost": {"price": price, "currency": currency}, "agent_ids": ids_of(agents),
        "stats": {"capacity": capacity, "allocation": 0, "available": capacity}, "defaults": {"template_id": ""},
        **fields})


def template(db: Database, pool: Document | str, name: str = "ubuntu-24", os: str = "linux",
             **fields: typing.Any) -> Document:
    return db.templates.insert({"storage_pool_id": id_of(pool), "name": name, "description": "", "os": os,
                                "source": f"https://images.example/{name}.qcow2", "volume": name, "size": 2 * GIB,
                                **fields})


def vnet(db: Database, region: Document | str, name: str = "private", private: bool = True, vlan: int = 100,
         interface: str = "br100", **fields: typing.Any) -> Document:
    return db.vnets.insert({"region_id": id_of(region), "name": name, "description": "", "vlan": vlan,
                            "interface": interface, "private": private, "defaults": {"subnet_id": ""}, **fields})


def subnet(db: Database, vnet: Document | str, cidr: str, name: str | None = None, gateway: str | None = None,
           reserved: typing.Iterable[tuple[str, str] | dict[str, str]] = (),
           gw_pool: typing.Iterable[tuple[str, str] | dict[str, str]] = (), project: Document | str = "",
           **fields: typing.Any) -> Document:
    """A subnet of *vnet*; the gateway defaults to the first host address."""
    parent = db.vnets.get(id_of(vnet))
    net = ipaddress.ip_network(cidr)
    gateway = gateway or str(net.network_address + 1)
    return db.subnets.insert({
        "vnet_id": id_of(parent), "region_id": parent["region_id"], "cidr": str(net), "prefix_length": net.prefixlen,
        "private": parent["private"], "project_id": id_of(project) if project else "", "name": name or cidr,
        "description": "", "gateway": gateway, "dns": gateway, "extra_routes": [], "reserved": _ranges(reserved),
        "gw_pool": _ranges(gw_pool), "application": "user", **fields})


def adapter(db: Database, subnet: Document | str, name: str = "nic", addresses: typing.Iterable[str] = (),
            mac: str = "da:1e:70:00:00:01", reserved: bool = False, **fields: typing.Any) -> Document:
    return db.adapters.insert({"subnet_id": id_of(subnet), "name": name, "description": "", "mac": mac,
                               "addresses": list(addresses), "reserved": reserved, "made_for": "", **fields})


# -- projects and what they own ------------------------------------------------------------------------------


def project(db: Database, name: str = "shop", regions: typing.Iterable[Document | str] = (), domain: str = "",
            teams: typing.Iterable[Document | str] = (), quotas: dict[str, int] | None = None,
            state: str = "ready", **fields: typing.Any) -> Document:
    return db.projects.insert({
        "name": name, "description": "", "domain": domain, "root_password": "", "bootstrap_user": "kowabunga",
        "bootstrap_pubkey": "", "tags": [], "metadatas": [],
        "quotas": {"vcpus": 0, "memory": 0, "storage": 0, "instances": 0, **(quotas or {})},
        "team_ids": ids_of(teams), "region_ids": ids_of(regions), "private_subnets": [], "zone_gateways": {},
        "reserved_vrrp_ids": [], "state": state, **fields})


def instance(db: Database, project: Document | str, kaktus: Document | str, name: str = "web-1", vcpus: int = 1,
             memory: int = GIB, state: str = "ready", **fields: typing.Any) -> Document:
    """An instance placed on *kaktus* (its zone and region are the Kaktus')."""
    node = db.kaktuses.get(id_of(kaktus))
    return db.instances.insert({
        "project_id": id_of(project), "region_id": node["region_id"], "zone_id": node["zone_id"],
        "kaktus_id": id_of(node), "name": name, "description": "", "vcpus": vcpus, "memory": memory,
        "adapter_ids": [], "volume_ids": [], "profile": "", "profile_id": "", "kompute": False, "agent_id": "",
        "seed_volume_id": "", "local_ip": "", "os": "linux", "dns_domain": "", "dns_addresses": [], "state": state,
        **fields})


def volume(db: Database, project: Document | str, pool: Document | str, name: str = "disk", size: int = 10 * GIB,
           volume_type: str = "raw", state: str = "ready", **fields: typing.Any) -> Document:
    parent = db.pools.get(id_of(pool))
    return db.volumes.insert({
        "project_id": id_of(project), "region_id": parent["region_id"], "storage_pool_id": id_of(parent),
        "template_id": "", "name": name, "description": "", "type": volume_type, "size": size, "instance_id": "",
        "state": state, **fields})


def record(db: Database, name: str, domain: str, addresses: typing.Iterable[str], *,
           region: Document | str = "", project: Document | str = "", **fields: typing.Any) -> Document:
    """A DNS record of a region or of a project."""
    return db.records.insert({"region_id": id_of(region) if region else "",
                              "project_id": id_of(project) if project else "", "name": name, "description": "",
                              "domain": domain, "addresses": list(addresses), **fields})
