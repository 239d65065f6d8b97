"""The stored documents, one TypedDict per collection: the one place that says what each holds.

Why TypedDicts and not dataclasses: a document goes from pymongo to the services, to the API
schemas (marshmallow dumps it by key) and to the cache (which hands out decoded BSON) without
being copied into another shape; a TypedDict types exactly that dict, costs nothing at run
time, and lets mypy check every ``doc["field"]`` against the declaration. Fields that a
document may lack (written by a later version, only in some states, or absent from databases
converted from the Go Kahuna) are ``NotRequired``; the services read those with ``.get()``.

References to other objects are hex strings (the API ids); ``_id`` is an ObjectId except for the
few kinds keyed by a natural value (API key digests, session ids, agent nonces). Money is
``{"price", "currency"}``; sizes are bytes.
"""

from __future__ import annotations

import datetime
from typing import Literal, NotRequired, TypedDict

from bson import ObjectId

#: A child's or an operation's progress. Absent means ready (documents written before states existed).
State = Literal["creating", "ready", "updating", "deleting", "failed"]


class Stored(TypedDict):
    """What every document of an object kind carries (see :class:`kahuna.storage.Documents`)."""

    _id: ObjectId
    created_at: datetime.datetime
    updated_at: datetime.datetime
    schema_version: int


class Named(Stored):
    name: str
    description: str


class Cost(TypedDict):
    price: float
    currency: str


class AddressRange(TypedDict):
    first: str
    last: str


class KeyValue(TypedDict):
    key: str
    value: str


# -- accounts -------------------------------------------------------------------------


class Link(TypedDict):
    """A pending e-mailed link: only the digest of its secret is kept."""

    digest: str
    expires_at: datetime.datetime
    address: NotRequired[str]  # the new address, for an address change


class User(Named):
    email: str
    role: str  # kahuna.access.Role
    enabled: bool
    notifications: bool
    password_hash: str | None  # None until the account is confirmed
    registration: NotRequired[Link]
    password_reset: NotRequired[Link]
    email_change: NotRequired[Link]


class Team(Named):
    user_ids: list[str]


class Token(Named):
    """An API key's record; the key itself is never stored, only its SHA-256 (``api_key_sha256``)."""

    api_key_sha256: str
    parent_type: Literal["user", "agent"]
    parent_id: str
    expire: bool
    expiration_date: str | None  # ISO date
    api_key_bcrypt: NotRequired[str]  # a Go Kahuna key's bcrypt hash, until the key is first presented


class ApiKey(TypedDict):
    """Key digest -> token: finding a presented key's token never scans."""

    _id: str
    token_id: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    schema_version: int


class Session(TypedDict):
    """A JWT's session (its ``jti``), so that logging out revokes it."""

    _id: str
    user_id: str
    expires_at: datetime.datetime
    created_at: datetime.datetime
    updated_at: datetime.datetime
    schema_version: int


class AgentCapabilities(TypedDict):
    version: str
    methods: list[str]


class Agent(Named):
    type: str  # kahuna.rpc agent type: Kaktus, Kiwi or Kontroller
    capabilities: NotRequired[AgentCapabilities]
    made_for: NotRequired[str]  # a Kontroller's instance


class AgentNonce(TypedDict):
    """A signed handshake's nonce, kept for the replay window: ``<agent id>:<nonce>``."""

    _id: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    schema_version: int


# -- infrastructure -------------------------------------------------------------------


class RegionDefaults(TypedDict, total=False):
    pool_id: str
    nfs_id: str


class Region(Named):
    domain: str
    defaults: RegionDefaults


class Zone(Named):
    region_id: str


class CpuCapabilities(TypedDict):
    arch: str
    vendor: str
    model: str
    sockets: int
    cores: int
    threads: int


class NodeCapabilities(TypedDict):
    cpu: CpuCapabilities
    memory: int


class Kaktus(Named):
    region_id: str
    zone_id: str
    agent_ids: list[str]
    cpu_cost: Cost
    memory_cost: Cost
    overcommit_cpu_ratio: int
    overcommit_memory_ratio: int
    capabilities: NodeCapabilities
    maintenance: NotRequired[bool]  # API 0.58: keeps its instances, receives nothing new


class Kiwi(Named):
    region_id: str
    agent_ids: list[str]


class PoolStats(TypedDict):
    capacity: int
    allocation: int
    available: int


class PoolDefaults(TypedDict, total=False):
    template_id: str


class StoragePool(Named):
    region_id: str
    pool: str  # the Ceph RBD pool
    ceph_address: str
    ceph_port: int
    ceph_secret_uuid: str
    cost: Cost
    agent_ids: list[str]
    stats: PoolStats
    defaults: PoolDefaults


class Nfs(Named):
    region_id: str
    storage_pool_id: str
    endpoint: str
    fs: str  # the CephFS file system
    backends: list[str]
    port: int


class Template(Named):
    storage_pool_id: str
    os: str
    source: str
    volume: str
    size: int


class VNetDefaults(TypedDict, total=False):
    subnet_id: str


class VNet(Named):
    region_id: str
    vlan: int
    interface: str
    private: bool
    defaults: VNetDefaults


class Subnet(Named):
    region_id: str
    vnet_id: str
    cidr: str
    prefix_length: int
    gateway: str
    dns: str
    reserved: list[AddressRange]
    gw_pool: list[AddressRange]
    extra_routes: list[str]
    application: str
    private: bool
    project_id: str  # "" when no project holds it


class Adapter(Named):
    subnet_id: str
    mac: str
    addresses: list[str]
    reserved: bool
    made_for: str  # the Kawaii or Konvey a virtual address was made for, else ""


class DnsRecord(Named):
    project_id: str
    region_id: str
    domain: str
    addresses: list[str]


# -- projects and what they hold ------------------------------------------------------


class Quotas(TypedDict):
    vcpus: int
    memory: int
    storage: int
    instances: int


class Project(Named):
    domain: str
    team_ids: list[str]
    region_ids: list[str]
    tags: list[str]
    metadatas: list[KeyValue]
    quotas: Quotas
    root_password: str
    bootstrap_user: str
    bootstrap_pubkey: str
    private_subnets: list[KeyValue]  # region id -> subnet id
    zone_gateways: dict[str, str]  # zone id -> the project's gateway address there
    reserved_vrrp_ids: list[int]
    state: NotRequired[State]


class Volume(Named):
    project_id: str
    region_id: str
    storage_pool_id: str
    template_id: str
    type: str  # os, raw, iso
    size: int
    instance_id: str
    state: NotRequired[State]


class InstanceResources(TypedDict):
    vcpus: int
    memory: int


class Instance(Named):
    project_id: str
    region_id: str
    zone_id: str
    kaktus_id: str
    vcpus: int
    memory: int
    os: str
    adapter_ids: list[str]
    volume_ids: list[str]
    seed_volume_id: str
    agent_id: str  # its Kontroller agent
    local_ip: str
    dns_domain: str
    dns_addresses: list[str]
    kompute: bool
    profile: str  # "", or the Kawaii/Konvey/Kompute it serves
    profile_id: str
    state: NotRequired[State]
    previous: NotRequired[InstanceResources]  # while a resize is being applied
    # API 0.58 (absent in documents written before it: read with .get()).
    kwarantine_ids: NotRequired[list[str]]  # the anti-affinity groups it belongs to (a Kompute's: its instance's)
    uefi: NotRequired[bool]  # UEFI firmware; absent means BIOS, as before 0.58
    kmotion_enabled: NotRequired[bool]  # absent means enabled
    kmotion: NotRequired[KMotionMove]  # while a kMotion moves it (kahuna.services.kmotion)


class KMotionMove(TypedDict):
    """What an instance being moved carries in its ``kmotion`` field, written before each agent step."""

    plan_id: str
    source_kaktus_id: str
    source_zone_id: str
    target_kaktus_id: str
    target_zone_id: str
    live: bool
    was_running: bool
    xml: str  # the domain's definition, once read from the source
    step: str  # the last step started: claimed, stopping, undefining, defining, starting, migrating
    stranded: NotRequired[bool]  # set by crash recovery: no process is at work on it


class Kompute(Stored):
    name: str
    project_id: str
    instance_id: str
    profile: str
    profile_id: str


class FirewallRule(TypedDict, total=False):
    source: str
    destination: str
    protocol: str
    ports: str


class ForwardRule(TypedDict):
    protocol: str
    ports: str


class KawaiiFirewall(TypedDict):
    ingress: list[FirewallRule]
    egress_policy: str
    egress: list[FirewallRule]


class DnatRule(TypedDict):
    destination: str
    protocol: str
    ports: str


class VpcPeering(TypedDict):
    subnet: str
    region_id: str
    policy: str
    ingress: list[ForwardRule]
    egress: list[ForwardRule]


class KawaiiZone(TypedDict):
    zone_id: str
    zone: str
    kompute_id: str
    vip_adapter_id: str
    public: str
    private: str


class VirtualIp(TypedDict):
    vrrp_id: int
    interface: str
    vip: str
    mask: int
    public: bool
    zone_id: str


class Kawaii(Named):
    project_id: str
    region_id: str
    firewall: KawaiiFirewall
    dnat: list[DnatRule]
    vpc_peerings: list[VpcPeering]
    zones: list[KawaiiZone]
    virtual_ips: list[VirtualIp]
    state: NotRequired[State]


class IpsecFirewall(TypedDict):
    ingress: list[FirewallRule]


class KawaiiIpsec(Named):
    kawaii_id: str
    project_id: str
    ip: str
    xfrm_id: int
    remote_ip: str
    remote_subnet: str
    pre_shared_key: str
    dpd_timeout_action: str
    dpd_timeout: str
    start_action: str
    rekey_time: str
    phase1_lifetime: str
    phase1_dh_group_number: int
    phase1_integrity_algorithm: str
    phase1_encryption_algorithm: str
    phase2_lifetime: str
    phase2_dh_group_number: int
    phase2_integrity_algorithm: str
    phase2_encryption_algorithm: str
    firewall: IpsecFirewall


class KonveyBackends(TypedDict):
    hosts: list[str]
    port: int


class KonveyEndpoint(TypedDict):
    name: str
    port: int
    protocol: str
    backends: KonveyBackends


class Konvey(Named):
    project_id: str
    region_id: str
    failover: bool
    endpoints: list[KonveyEndpoint]
    kompute_ids: list[str]
    vip: str
    vip_adapter_id: str
    vrrp_id: int
    mask: int
    state: NotRequired[State]


class Kwarantine(Named):
    """An anti-affinity group of a project: its members (instances, and Komputes through their instance) hold its
    id in ``kwarantine_ids``, so a deleted member leaves no trace to clean up."""

    project_id: str
    policy: Literal["host", "zone"]  # no two members on one Kaktus, or in one zone


class KMotionPlan(Stored):
    """A kMotion plan: single use, short-lived, tied to its instance (and Kompute, when made for one)."""

    instance_id: str
    kompute_id: str  # "" for a plain instance
    source_kaktus_id: str
    target_kaktus_id: str
    live: bool
    expires_at: datetime.datetime


class Kylo(Named):
    project_id: str
    region_id: str
    nfs_id: str
    access: str
    protocols: list[int]
    clients: list[str]
    export_id: int | str  # a Go database's non-numeric export id is kept as it was by `kahuna migrate`
    path: str
    size: int
    state: NotRequired[State]
