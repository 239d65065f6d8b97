"""Taking over a Go Kahuna database: its documents converted into this Kahuna's, by ``kahuna migrate``.

The Go Kahuna (0.64.x, schema version 2; ``ipsec`` is 1) stored every object with its
API-visible fields under other names, both sides of every reference (a child's
``<parent>_id`` and the parent's ``<children>_ids``, often stale), maps keyed by names,
services split over helper collections (``mzr`` for a Kawaii, ``har`` for a Konvey), and
figures this Kahuna derives (usage, costs, virtual resources). This module converts the
whole database into documents of schema version 3, the shapes the services write:

1. legacy collections are renamed and version 0/1 fields renamed (what the Go Kahuna's own
   ``--migrate`` did), so that every Go document is at version 2;
2. the Go documents are copied into ``go_kahuna_<collection>`` (the originals, for reference
   and for a re-run after an interruption: conversions read them, never the half-converted
   database; a copy is written once and never changed);
3. each Go document is converted (same ``_id``, so every API id, and every agent's id, stays);
   relations are rebuilt from the children's references; multi-step objects are ``ready``
   with the marks crash recovery reads (``made_for``, ``instance_id``, ``kompute``);
4. what does not fit is reported: unknown collections (left alone), unknown fields (kept
   as they are, or named when nested), dangling references, values given defaults, and what
   the operator must do (user API keys to re-issue: the Go Kahuna kept only bcrypt hashes,
   and a user key is presented without anything naming its token).

Agents' keys keep working: their tokens keep the Go bcrypt hash (``api_key_bcrypt``); an
agent's handshake names its id, so the one hash is checked once and replaced by the key's
digest (:meth:`kahuna.services.tokens.TokenService.upgrade_legacy_key`).

Running it again converts nothing more: converted documents are at version 3 and are never
rewritten, and the originals' copies are only ever added to.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import math
import re
import secrets
import typing
from dataclasses import dataclass, field

from bson import ObjectId
from pymongo import ReplaceOne, UpdateOne

from kahuna.storage.cache import AnyDatabase
from kahuna.storage.documents import utcnow

if typing.TYPE_CHECKING:
    from kahuna.storage.schema import Kind

log = logging.getLogger(__name__)

Document = dict[str, typing.Any]

TARGET_VERSION = 3
GO_VERSION = 2
#: Where the Go originals are kept.
ORIGINALS_PREFIX = "go_kahuna_"

#: Every collection a Go Kahuna 0.64 writes.
GO_COLLECTIONS = ("adapter", "agent", "dns_record", "har", "instance", "ipsec", "kaktus", "kawaii", "kiwi",
                  "kompute", "konvey", "kylo", "mzr", "nfs", "project", "region", "storage_pool", "subnet", "team",
                  "template", "token", "user", "vnet", "volume", "zone")
#: Collections renamed by the Go Kahuna's 0.60 migration.
LEGACY_NAMES = {"regions": "region", "zones": "zone", "hosts": "kaktus", "netgws": "kiwi", "agents": "agent",
                "pools": "storage_pool", "templates": "template", "volumes": "volume", "vnets": "vnet",
                "subnets": "subnet", "adapters": "adapter", "instances": "instance", "kces": "kompute",
                "kgws": "kawaii", "kfs": "kylo", "records": "dns_record", "projects": "project", "groups": "team",
                "users": "user", "tokens": "token"}
#: Go collections folded into others (they have no collection of their own here).
FOLDED = {"mzr": "kawaii", "har": "konvey", "ipsec": "kawaii_ipsec"}
#: Collections this Kahuna has and the Go Kahuna had not: converted documents are added to them.
NEW_COLLECTIONS = ("kawaii_ipsec",)
#: Where each Go collection's documents go.
TARGET = {name: FOLDED.get(name, name) for name in GO_COLLECTIONS}
#: Collections this Kahuna keeps besides its kinds' (never "not understood").
OWN_COLLECTIONS = ("schema", "lease_grants", "lease")

# -- version 0/1 -> 2 (the Go Kahuna's own migration) ------------------------------------------

V2_RENAMES: dict[str, dict[str, str]] = {
    "region": {"defaults.pool": "defaults.pool_id", "defaults.nfs": "defaults.nfs_id", "zones": "zone_ids",
               "netgws": "kiwi_ids", "vnets": "vnet_ids", "pools": "storage_pool_ids", "nfs": "nfs_ids",
               "records": "record_ids"},
    "zone": {"region": "region_id", "hosts": "kaktus_ids"},
    "kaktus": {"zone": "zone_id", "agents": "agent_ids", "instances": "instance_ids"},
    "kiwi": {"region": "region_id", "agents": "agent_ids"},
    "agent": {"token": "token_id"},
    "storage_pool": {"region": "region_id", "defaults.templates": "defaults.template_ids", "agents": "agent_ids",
                     "templates": "template_ids", "volumes": "volume_ids"},
    "nfs": {"region": "region_id", "pool": "storage_pool_id", "kfs": "kylo_ids"},
    "template": {"pool": "storage_pool_id", "volume": "volume_id"},
    "volume": {"project": "project_id", "pool": "storage_pool_id", "template": "template_id"},
    "vnet": {"region": "region_id", "defaults.subnet": "defaults.subnet_id", "subnets": "subnet_ids"},
    "subnet": {"project": "project_id", "vnet": "vnet_id", "adapters": "adapter_ids"},
    "adapter": {"subnet": "subnet_id"},
    "instance": {"project": "project_id", "host": "kaktus_id", "instance_type_id": "profile_id", "agent": "agent_id"},
    "kompute": {"project": "project_id", "instance": "instance_id"},
    "mzr": {"project": "project_id", "region": "region_id", "private_subnet": "private_subnet_id",
            "public_subnet": "public_subnet_id", "private_adapters": "private_adapter_ids",
            "public_adapters": "public_adapter_ids", "kces": "kompute_ids"},
    "har": {"project": "project_id", "region": "region_id", "private_subnet": "private_subnet_id",
            "private_adapter": "private_adapter_id", "kces": "kompute_ids"},
    "kawaii": {"project": "project_id", "public_subnet": "public_subnet_id", "mzr": "mzr_id"},
    "konvey": {"project": "project_id", "har": "har_id"},
    "kylo": {"project": "project_id", "nfs": "nfs_id"},
    "dns_record": {"project": "project_id"},
    "project": {"groups": "team_ids", "regions": "region_ids", "instances": "instance_ids", "volumes": "volume_ids",
                "kces": "kompute_ids", "kgws": "kawaii_ids", "konveys": "konvey_ids", "kfs": "kylo_ids",
                "records": "record_ids"},
    "user": {"groups": "team_ids"},
    "team": {"users": "user_ids"},
    "token": {"agent": "agent_id", "user": "user_id"},
}
LEGACY_AGENT_TYPES = {"KCA": "Kaktus", "KNA": "Kiwi"}

# -- defaults this Kahuna's services apply (kept equal to theirs by tests/test_migration_go.py) ------------------

IPSEC_DEFAULTS = {"dpd_timeout_action": "restart", "dpd_timeout": "240s", "start_action": "start",
                  "rekey_time": "2h", "phase1_lifetime": "1h", "phase2_lifetime": "1h"}
DEFAULT_CPU_OVERCOMMIT = 3
DEFAULT_MEMORY_OVERCOMMIT = 2
ROLES = ("superAdmin", "projectAdmin", "user")
#: The API contract's choices for IPsec connections (api.schemas.compute): the Go Kahuna did not enforce them.
IPSEC_CHOICES = {
    # API 0.58's DPD actions; 0.53.2's "start" is converted to "restart", which strongSwan does with it anyway.
    "dpd_timeout_action": ("clear", "trap", "restart"), "start_action": ("none", "start", "trap"),
    "phase1_dh_group_number": (2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24),
    "phase1_integrity_algorithm": ("SHA1", "SHA256", "SHA384", "SHA512"),
    "phase1_encryption_algorithm": ("AES128", "AES256", "CAMELLIA128", "CAMELLIA256"),
}
for _phase1, _choices in list(IPSEC_CHOICES.items()):
    if _phase1.startswith("phase1_"):
        IPSEC_CHOICES[_phase1.replace("phase1_", "phase2_")] = _choices
AGENT_TYPES = ("Kaktus", "Kiwi", "Kontroller")
VOLUME_TYPES = ("os", "raw", "iso", "template")

# -- what the Go documents hold ---------------------------------------------------------------------------------
# Field paths: "a.b" nested, "a[]" array elements, "a.*" any key of a map (maps keyed by names or devices).
# Paths under a derived field are not listed: the field is dropped whole.

COMMON = "_id created_at updated_at schema_version name description"
KNOWN_SPEC = {
    "adapter": "subnet_id mac addresses reserved",
    "agent": "type token_id",
    "dns_record": "project_id region_id domain addresses",
    "har": "project_id region_id private_subnet_id profile private_adapter_id private_vip "
           "virtual_ip.{interface,mask,priority,public,vip,vrrp_id} kompute_ids",
    "instance": "project_id kaktus_id profile_id agent_id os vcpus memory initial_root_password cloudinit profile "
                "cost local_ip interfaces.* disks.*",
    "ipsec": "kawaii_id ip xfrm_id remote_peer remote_subnet pre_shared_key dpd_timeout dpd_action start_action "
             "rekey phase1_lifetime phase1_df_group phase1_integrity_algorithm phase1_encryption_algorithm "
             "phase2_lifetime phase2_df_group phase2_integrity_algorithm phase2_encryption_algorithm "
             "firewall.ingress[].{source,Protocol,Ports,protocol,ports} "
             "firewall.egress[].{destination,protocol,ports,Protocol,Ports} firewall.egress_policy",
    "kaktus": "zone_id costs.cpu.{cost,price,currency} costs.memory.{cost,price,currency} usage "
              "capabilities.cpu.{arch,cores,model,sockets,threads,vendor} capabilities.memory "
              "overcommit.{cpu,memory} virtual_resources agent_ids instance_ids",
    "kawaii": "project_id public_subnet_id firewall.ingress[].{source,Protocol,Ports,protocol,ports} "
              "firewall.egress[].{destination,protocol,ports,Protocol,Ports} firewall.egress_policy "
              "dnat_rules[].{private_ip,protocol,ports} "
              "vpc_peerings[].{subnet,policy} vpc_peerings[].netip[].{zone,private} "
              "vpc_peerings[].ingress[].{protocol,ports} "
              "vpc_peerings[].egress[].{protocol,ports} mzr_id ipsec_ids",
    "kiwi": "region_id agent_ids",
    "kompute": "project_id instance_id",
    "konvey": "project_id failover endpoints[].{name,port,protocol} endpoints[].backends[].{host,port} har_id",
    "kylo": "project_id nfs_id subvolume.{name,path,size} export_id access_type protocols clients",
    "mzr": "project_id region_id private_subnet_id public_subnet_id profile private_adapter_ids.* private_vips "
           "public_adapter_ids.* public_vips virtual_ips[].{interface,mask,priority,public,vip,vrrp_id} kompute_ids",
    "nfs": "region_id storage_pool_id endpoint fs ganesha.{backends,port} kylo_ids exports",
    "project": "domain default_root_password bootstrap_user bootstrap_pubkey tags metadatas[].{key,value} "
               "quotas.{vcpus,memory,storage,instances} usage cost team_ids region_ids reserved_vrrp_ids "
               "instance_ids volume_ids kompute_ids kawaii_ids konvey_ids kylo_ids record_ids private_subnets.* "
               "zone_gateways.*",
    "region": "domain defaults.{pool_id,nfs_id} virtual_resources zone_ids kiwi_ids vnet_ids storage_pool_ids "
              "nfs_ids record_ids",
    "storage_pool": "region_id libvirt_pool ceph_mon_address ceph_mon_port ceph_auth_secret_uuid "
                    "cost.{cost,price,currency} capacity allocation available defaults.template_ids.os agent_ids "
                    "template_ids volume_ids",
    "subnet": "project_id vnet_id cidr gateway dns reserved_ranges[].{first,last} gw_pool[].{first,last} routes "
              "application adapter_ids",
    "team": "user_ids",
    "template": "storage_pool_id os source_url volume_id",
    "token": "agent_id user_id parent_type expire expiration_date api_key_hash",
    "user": "email password_hash role password_renewal_token registration_token enabled notifications_enabled "
            "token jwt team_ids",
    "vnet": "region_id vlan_id interface private defaults.subnet_id subnet_ids",
    "volume": "project_id storage_pool_id template_id type size cost",
    "zone": "region_id virtual_resources kaktus_ids",
}
#: Fields this Kahuna derives, or keeps on the other side of a relation: not copied.
DERIVED = {
    "region": ("virtual_resources", "zone_ids", "kiwi_ids", "vnet_ids", "storage_pool_ids", "nfs_ids", "record_ids"),
    "zone": ("virtual_resources", "kaktus_ids"),
    "kaktus": ("usage", "virtual_resources", "instance_ids"),
    "storage_pool": ("template_ids", "volume_ids"),
    "nfs": ("kylo_ids", "exports"),
    "vnet": ("subnet_ids",),
    "subnet": ("adapter_ids",),
    "instance": ("cost",),
    "volume": ("cost",),
    "project": ("usage", "cost", "instance_ids", "volume_ids", "kompute_ids", "kawaii_ids", "konvey_ids",
                "kylo_ids", "record_ids"),
    "kawaii": ("public_subnet_id", "ipsec_ids"),
    "user": ("team_ids", "token"),
    "agent": ("token_id",),
}

#: (parent collection, its list, child collection, the child's reference) pairs the Go Kahuna kept on both sides.
PARENT_LISTS = (
    ("region", "zone_ids", "zone", "region_id"), ("region", "kiwi_ids", "kiwi", "region_id"),
    ("region", "vnet_ids", "vnet", "region_id"), ("region", "storage_pool_ids", "storage_pool", "region_id"),
    ("region", "nfs_ids", "nfs", "region_id"), ("region", "record_ids", "dns_record", "region_id"),
    ("zone", "kaktus_ids", "kaktus", "zone_id"), ("kaktus", "instance_ids", "instance", "kaktus_id"),
    ("storage_pool", "template_ids", "template", "storage_pool_id"),
    ("storage_pool", "volume_ids", "volume", "storage_pool_id"), ("nfs", "kylo_ids", "kylo", "nfs_id"),
    ("vnet", "subnet_ids", "subnet", "vnet_id"), ("subnet", "adapter_ids", "adapter", "subnet_id"),
    ("project", "instance_ids", "instance", "project_id"), ("project", "volume_ids", "volume", "project_id"),
    ("project", "kompute_ids", "kompute", "project_id"), ("project", "kawaii_ids", "kawaii", "project_id"),
    ("project", "konvey_ids", "konvey", "project_id"), ("project", "kylo_ids", "kylo", "project_id"),
    ("project", "record_ids", "dns_record", "project_id"), ("kawaii", "ipsec_ids", "ipsec", "kawaii_id"),
)


def _expand(spec: str) -> set[str]:
    """``"a.{b,c} d[].e"`` -> every path and its parents: a, a.b, a.c, d, d[], d[].e."""
    paths: set[str] = set()
    for item in (COMMON + " " + spec).split():
        match = re.match(r"^(.*)\{(.*)\}$", item)
        leaves = [match.group(1) + leaf for leaf in match.group(2).split(",")] if match else [item]
        for leaf in leaves:
            parts = leaf.split(".")
            for n in range(1, len(parts) + 1):
                prefix = ".".join(parts[:n])
                paths.add(prefix)
                paths.add(prefix.removesuffix("[]"))
    return paths


KNOWN = {collection: _expand(spec) for collection, spec in KNOWN_SPEC.items()}


def _unknown_paths(value: typing.Any, prefix: str, known: set[str], skip: tuple[str, ...],
                   found: set[str]) -> None:
    if isinstance(value, dict):
        wildcard = f"{prefix}.*" in known
        for key, item in value.items():
            path = f"{prefix}.*" if wildcard else (f"{prefix}.{key}" if prefix else key)
            if not prefix and key in skip:
                continue
            if path not in known:
                found.add(f"{prefix}.{key}" if prefix else key)
                continue
            _unknown_paths(item, path, known, skip, found)
    elif isinstance(value, list):
        for item in value:
            _unknown_paths(item, f"{prefix}[]", known, skip, found)


# -- the report ---------------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What ``kahuna migrate`` did and what it could not do, as printed."""

    renamed: list[str] = field(default_factory=list)
    converted: dict[str, int] = field(default_factory=dict)
    folded: list[str] = field(default_factory=list)
    recomputed: dict[str, set[str]] = field(default_factory=dict)
    stale_lists: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    defaults: list[str] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    originals: list[str] = field(default_factory=list)

    @property
    def anything_converted(self) -> bool:
        return bool(self.converted or self.renamed)

    def lines(self) -> list[str]:
        out: list[str] = []
        if not self.anything_converted:
            out.append("no Go Kahuna document to convert")
        for line in self.renamed:
            out.append(f"renamed {line}")
        if self.converted:
            total = sum(self.converted.values())
            out.append(f"converted {total} Go Kahuna document(s) to schema version {TARGET_VERSION}:")
            out += [f"  {name}: {count}" for name, count in sorted(self.converted.items())]
        if self.folded:
            out.append("folded into other objects:")
            out += [f"  {line}" for line in self.folded]
        if self.recomputed:
            out.append("not copied, derived by this Kahuna from the objects themselves:")
            out += [f"  {name}: {', '.join(sorted(fields))}" for name, fields in sorted(self.recomputed.items())]
        if self.stale_lists:
            out.append("stale lists of children in the Go database (relations rebuilt from the children):")
            out += [f"  {line}" for line in self.stale_lists]
        if self.defaults:
            out.append("values given this Kahuna's defaults or usual form:")
            out += [f"  {line}" for line in self.defaults]
        if self.not_understood:
            out.append("NOT UNDERSTOOD (review them):")
            out += [f"  {line}" for line in self.not_understood]
        if self.warnings:
            out.append("WARNINGS:")
            out += [f"  {line}" for line in self.warnings]
        if self.notes:
            out.append("notes:")
            out += [f"  {line}" for line in self.notes]
        if self.actions:
            out.append("TO DO:")
            out += [f"  {line}" for line in self.actions]
        if self.originals:
            out.append(f"the Go originals are kept in {len(self.originals)} collection(s) "
                       f"{ORIGINALS_PREFIX}*: drop them once this migration is checked")
        return out


class ConversionError(Exception):
    """The database cannot be converted as it is (nothing was written); the message says why."""


# -- helpers --------------------------------------------------------------------------------------------------------


def _outdated(version: int) -> dict[str, typing.Any]:
    return {"$or": [{"schema_version": {"$lt": version}}, {"schema_version": {"$exists": False}}]}


def _price(value: typing.Any) -> float | None:
    try:
        number = float(value or 0.0)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ids(value: typing.Any) -> list[str]:
    return [str(item) for item in value or [] if item not in ("", None)]


def _device_order(device: str, pattern: str) -> tuple[int, int, str]:
    match = re.match(pattern, device)
    if match is None:
        return (1, 0, device)
    suffix = match.group(2)
    return (0, int(suffix), "") if suffix.isdigit() else (0, len(suffix), suffix)


NIC = r"^(ens|interface)(\d+)$"
DISK = r"^(vd)([a-z]+)$"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def existing_collections(db: AnyDatabase) -> set[str]:
    return set(db.list_collection_names())


def pending(db: AnyDatabase, collections: typing.Iterable[str] | None = None) -> list[str]:
    """The Go (or legacy) collections that still hold Go documents (all of them when *collections* is None)."""
    existing = existing_collections(db)
    names = list(GO_COLLECTIONS if collections is None else collections)
    found = [legacy for legacy, name in LEGACY_NAMES.items() if legacy in existing and name in names]
    found += [name for name in names if name in existing
              and db[name].find_one(_outdated(TARGET_VERSION), {"_id": 1}) is not None]
    found += [name for name in FOLDED if name in existing and name not in found
              and db[name].find_one({}, {"_id": 1}) is not None]
    return found


# -- the conversion -------------------------------------------------------------------------------------------------


class _Context:
    """The Go documents (the originals' copies): lookups by id and by name."""

    def __init__(self, documents: dict[str, list[Document]]):
        self.documents = documents
        self.by_id = {name: {str(doc["_id"]): doc for doc in docs} for name, docs in documents.items()}
        self.by_name: dict[str, dict[str, Document]] = {}
        for name, docs in documents.items():
            index: dict[str, Document] = {}
            for doc in docs:
                index.setdefault(doc.get("name", ""), doc)
            self.by_name[name] = index
        # Relations read from the children's side.
        self.kompute_of_instance = {k.get("instance_id"): k for k in documents.get("kompute", [])}
        self.instance_of_agent = {i.get("agent_id"): i for i in documents.get("instance", []) if i.get("agent_id")}
        self.template_of_volume = {t.get("volume_id"): t for t in documents.get("template", []) if t.get("volume_id")}
        self.instance_of_seed = {i.get("cloudinit"): i for i in documents.get("instance", []) if i.get("cloudinit")}
        self.instance_of_disk: dict[str, Document] = {}
        self.instance_of_adapter: dict[str, Document] = {}
        for instance in documents.get("instance", []):
            for volume_id in (instance.get("disks") or {}).values():
                self.instance_of_disk[volume_id] = instance
            for adapter_id in (instance.get("interfaces") or {}).values():
                self.instance_of_adapter[adapter_id] = instance
        self.service_of_adapter: dict[str, str] = {}
        for kawaii in documents.get("kawaii", []):
            mzr = self.get("mzr", kawaii.get("mzr_id"))
            if mzr is not None:
                for adapter_id in [*(mzr.get("public_adapter_ids") or {}).values(),
                                   *(mzr.get("private_adapter_ids") or {}).values()]:
                    self.service_of_adapter[adapter_id] = str(kawaii["_id"])
        for konvey in documents.get("konvey", []):
            har = self.get("har", konvey.get("har_id"))
            if har is not None and har.get("private_adapter_id"):
                self.service_of_adapter[har["private_adapter_id"]] = str(konvey["_id"])

    def get(self, collection: str, doc_id: typing.Any) -> Document | None:
        if not doc_id:
            return None
        return self.by_id.get(collection, {}).get(str(doc_id))

    def named(self, collection: str, name: str) -> Document | None:
        return self.by_name.get(collection, {}).get(name)


class Converter:
    def __init__(self, context: _Context, report: Report, now: datetime.datetime,
                 registration_lifetime: datetime.timedelta, reset_lifetime: datetime.timedelta):
        self.ctx = context
        self.report = report
        self.now = now
        self.registration_lifetime = registration_lifetime
        self.reset_lifetime = reset_lifetime
        self.user_keys: list[str] = []
        self.agent_keys: list[str] = []
        self.sessions: list[str] = []
        self.links: list[str] = []
        self.root_passwords = 0

    # -- helpers ---------------------------------------------------------------------------

    def warn(self, collection: str, doc: Document, message: str) -> None:
        self.report.warnings.append(f"{collection} {doc.get('name') or doc.get('_id')}: {message}")

    def ref(self, collection: str, doc: Document, field_name: str, target: str, required: bool = True) -> str:
        """A reference of *doc*, checked: a dangling one is kept but reported."""
        value = doc.get(field_name) or ""
        if value and self.ctx.get(target, value) is None:
            self.warn(collection, doc, f"{field_name} {value} names no {target}")
        elif not value and required:
            self.warn(collection, doc, f"no {field_name}")
        return str(value)

    def refs(self, collection: str, doc: Document, field_name: str, target: str) -> list[str]:
        values = _ids(doc.get(field_name))
        missing = [v for v in values if self.ctx.get(target, v) is None]
        if missing:
            self.warn(collection, doc, f"{field_name} lists unknown {target}(s) {', '.join(missing)} (kept)")
        return values

    def price(self, collection: str, doc: Document, value: typing.Any, what: str) -> float:
        number = _price(value)
        if number is None:
            self.warn(collection, doc, f"{what} {value!r} is not a finite number: set to 0")
            return 0.0
        return number

    @staticmethod
    def base(doc: Document) -> Document:
        return {"_id": doc["_id"], "name": doc.get("name", ""), "description": doc.get("description", "") or "",
                "created_at": doc.get("created_at"), "updated_at": doc.get("updated_at"),
                "schema_version": TARGET_VERSION}

    def region_of_zone(self, zone_id: str) -> str:
        zone = self.ctx.get("zone", zone_id)
        return zone.get("region_id", "") if zone else ""

    def region_of_pool(self, pool_id: str) -> str:
        pool = self.ctx.get("storage_pool", pool_id)
        return pool.get("region_id", "") if pool else ""

    def is_private_subnet(self, subnet_id: str) -> bool:
        subnet = self.ctx.get("subnet", subnet_id)
        vnet = self.ctx.get("vnet", subnet.get("vnet_id")) if subnet else None
        return bool(vnet and vnet.get("private"))

    # -- accounts ------------------------------------------------------------------------------

    def user(self, doc: Document) -> Document:
        new = self.base(doc)
        email = (doc.get("email") or "").strip()
        if email != email.lower():
            self.report.defaults.append(f"user {doc.get('name')}: e-mail address lower-cased (logins compare "
                                        f"addresses in lower case)")
        role = doc.get("role") or "user"
        if role not in ROLES:
            self.warn("user", doc, f"unknown role {role!r} (kept; the API will refuse to read it)")
        new.update(email=email.lower(), role=role, notifications=bool(doc.get("notifications_enabled")),
                   enabled=bool(doc.get("enabled")), password_hash=doc.get("password_hash") or None)
        # A link e-mailed by the Go Kahuna and not followed yet keeps working (same URL, same token).
        for go_field, purpose, lifetime, what in (
                ("registration_token", "registration", self.registration_lifetime, "registration"),
                ("password_renewal_token", "password_reset", self.reset_lifetime, "password reset")):
            token = doc.get(go_field) or ""
            if token:
                new[purpose] = {"digest": _digest(token), "expires_at": self.now + lifetime}
                self.links.append(f"{what} of {doc.get('name')}")
        if doc.get("jwt"):
            self.sessions.append(doc.get("name", ""))
        # Membership is the team's; a user's own list that disagrees is reported.
        teams = {str(t["_id"]) for t in self.ctx.documents.get("team", [])
                 if str(doc["_id"]) in _ids(t.get("user_ids"))}
        listed = set(_ids(doc.get("team_ids")))
        if listed != teams:
            def names(ids: set[str]) -> str:
                return ", ".join(sorted((self.ctx.get("team", i) or {}).get("name", i) for i in ids)) or "none"

            self.warn("user", doc, f"its team_ids ({names(listed)}) differ from the teams listing it "
                                   f"({names(teams)}): the teams' member lists are kept")
        return new

    def team(self, doc: Document) -> Document:
        return {**self.base(doc), "user_ids": self.refs("team", doc, "user_ids", "user")}

    def token(self, doc: Document) -> Document:
        new = self.base(doc)
        parent_type = doc.get("parent_type") or ("agent" if doc.get("agent_id") else "user")
        if parent_type not in ("user", "agent"):
            self.warn("token", doc, f"unknown parent_type {parent_type!r}")
        parent_id = self.ref("token", doc, f"{parent_type}_id", parent_type)
        expire = bool(doc.get("expire"))
        date = doc.get("expiration_date") or None
        if expire and date:
            try:
                date = datetime.date.fromisoformat(date).isoformat()
            except ValueError:
                self.warn("token", doc, f"expiration_date {date!r} is not a date: the key is taken as expired")
                date = None
        new.update(parent_type=parent_type, parent_id=parent_id, expire=expire,
                   expiration_date=date if expire else None,
                   # Unique, and never the digest of any key: the key is found by its bcrypt hash until upgraded.
                   api_key_sha256=f"go-bcrypt:{secrets.token_hex(16)}")
        hashed = doc.get("api_key_hash") or ""
        parent = self.ctx.get(parent_type, parent_id) or {}
        if parent_type == "agent" and hashed:
            new["api_key_bcrypt"] = hashed
            self.agent_keys.append(parent.get("name", parent_id))
        elif hashed:
            self.user_keys.append(parent.get("name", parent_id))
        return new

    def agent(self, doc: Document) -> Document:
        new = self.base(doc)
        agent_type = doc.get("type") or ""
        if agent_type not in AGENT_TYPES:
            self.warn("agent", doc, f"unknown agent type {agent_type!r} (kept)")
        new["type"] = agent_type
        if agent_type == "Kontroller":
            instance = self.ctx.instance_of_agent.get(str(doc["_id"]))
            if instance is None:
                self.warn("agent", doc, "Kontroller agent of no instance (kept)")
            new["made_for"] = str(instance["_id"]) if instance else ""
        return new

    # -- regions and nodes ------------------------------------------------------------------------

    def region(self, doc: Document) -> Document:
        defaults = doc.get("defaults") or {}
        return {**self.base(doc), "domain": doc.get("domain", "") or "",
                "defaults": {"pool_id": str(defaults.get("pool_id") or ""),
                             "nfs_id": str(defaults.get("nfs_id") or "")}}

    def zone(self, doc: Document) -> Document:
        return {**self.base(doc), "region_id": self.ref("zone", doc, "region_id", "region")}

    def kaktus(self, doc: Document) -> Document:
        zone_id = self.ref("kaktus", doc, "zone_id", "zone")
        costs = doc.get("costs") or {}
        overcommit = doc.get("overcommit") or {}

        def cost(kind: str) -> Document:
            value = costs.get(kind) or {}
            price = value.get("cost", value.get("price"))
            return {"price": self.price("kaktus", doc, price, f"{kind} cost"), "currency": value.get("currency") or ""}

        def ratio(kind: str, default: int) -> int:
            value = overcommit.get(kind)
            if not value or int(value) < 1:
                self.report.defaults.append(f"kaktus {doc.get('name')}: {kind} overcommit unset, {default}")
                return default
            return int(value)

        capabilities = doc.get("capabilities") or {}
        cpu = capabilities.get("cpu") or {}
        return {**self.base(doc), "zone_id": zone_id, "region_id": self.region_of_zone(zone_id),
                "cpu_cost": cost("cpu"), "memory_cost": cost("memory"),
                "overcommit_cpu_ratio": ratio("cpu", DEFAULT_CPU_OVERCOMMIT),
                "overcommit_memory_ratio": ratio("memory", DEFAULT_MEMORY_OVERCOMMIT),
                "agent_ids": self.refs("kaktus", doc, "agent_ids", "agent"),
                "capabilities": {"cpu": {"arch": cpu.get("arch", "") or "", "model": cpu.get("model", "") or "",
                                         "vendor": cpu.get("vendor", "") or "", "sockets": int(cpu.get("sockets") or 0),
                                         "cores": int(cpu.get("cores") or 0), "threads": int(cpu.get("threads") or 0)},
                                 "memory": int(capabilities.get("memory") or 0)}}

    def kiwi(self, doc: Document) -> Document:
        return {**self.base(doc), "region_id": self.ref("kiwi", doc, "region_id", "region"),
                "agent_ids": self.refs("kiwi", doc, "agent_ids", "agent")}

    # -- storage ----------------------------------------------------------------------------------

    def storage_pool(self, doc: Document) -> Document:
        cost = doc.get("cost") or {}
        defaults = (doc.get("defaults") or {}).get("template_ids") or {}
        return {**self.base(doc), "region_id": self.ref("storage_pool", doc, "region_id", "region"),
                "pool": doc.get("libvirt_pool", "") or "", "ceph_address": doc.get("ceph_mon_address", "") or "",
                "ceph_port": int(doc.get("ceph_mon_port") or 0),
                "ceph_secret_uuid": doc.get("ceph_auth_secret_uuid", "") or "",
                "cost": {"price": self.price("storage_pool", doc, cost.get("cost", cost.get("price")), "cost"),
                         "currency": cost.get("currency") or ""},
                "agent_ids": self.refs("storage_pool", doc, "agent_ids", "agent"),
                "stats": {"capacity": int(doc.get("capacity") or 0), "allocation": int(doc.get("allocation") or 0),
                          "available": int(doc.get("available") or 0)},
                "defaults": {"template_id": str(defaults.get("os") or "")}}

    def nfs(self, doc: Document) -> Document:
        ganesha = doc.get("ganesha") or {}
        return {**self.base(doc), "region_id": self.ref("nfs", doc, "region_id", "region"),
                "storage_pool_id": self.ref("nfs", doc, "storage_pool_id", "storage_pool"),
                "endpoint": doc.get("endpoint", "") or "", "fs": doc.get("fs", "") or "",
                "backends": [str(b) for b in ganesha.get("backends") or []], "port": int(ganesha.get("port") or 0)}

    def template(self, doc: Document) -> Document:
        image = self.ctx.get("volume", doc.get("volume_id"))
        if image is None:
            self.warn("template", doc, f"its image volume {doc.get('volume_id')!r} is unknown: image name taken as "
                                       f"the template's")
        return {**self.base(doc), "storage_pool_id": self.ref("template", doc, "storage_pool_id", "storage_pool"),
                "os": doc.get("os") or "linux", "source": doc.get("source_url", "") or "",
                "volume": (image or {}).get("name") or doc.get("name", ""), "size": int((image or {}).get("size") or 0)}

    def volume(self, doc: Document) -> Document | None:
        volume_type = doc.get("type") or ""
        volume_id = str(doc["_id"])
        if volume_type == "template":
            if volume_id not in self.ctx.template_of_volume:
                self.warn("volume", doc, "template image of no template: dropped (the image stays in its pool)")
            return None  # its name and size are its template's
        if volume_type not in VOLUME_TYPES:
            self.warn("volume", doc, f"unknown type {volume_type!r} (kept)")
        pool_id = self.ref("volume", doc, "storage_pool_id", "storage_pool")
        template_id = ""
        if volume_type == "os":
            template_id = str(doc.get("template_id") or "")
            if self.ctx.get("template", template_id) is None:
                self.warn("volume", doc, f"template_id {template_id!r} names no template")
                if not ObjectId.is_valid(template_id):
                    template_id = ""
        # Made for an instance (a Kompute's disks, any instance's cloud-init seed): deleted with it.
        owner = self.ctx.instance_of_seed.get(volume_id)
        if owner is None:
            disk_of = self.ctx.instance_of_disk.get(volume_id)
            if disk_of is not None and str(disk_of["_id"]) in self.ctx.kompute_of_instance:
                owner = disk_of
        if volume_type == "iso" and owner is None:
            self.warn("volume", doc, "cloud-init seed of no instance (kept)")
        project_id = self.ref("volume", doc, "project_id", "project", required=False)
        return {**self.base(doc), "project_id": project_id, "region_id": self.region_of_pool(pool_id),
                "storage_pool_id": pool_id, "template_id": template_id, "type": volume_type,
                "size": int(doc.get("size") or 0), "instance_id": str(owner["_id"]) if owner else "", "state": "ready"}

    # -- networks --------------------------------------------------------------------------------

    def vnet(self, doc: Document) -> Document:
        return {**self.base(doc), "region_id": self.ref("vnet", doc, "region_id", "region"),
                "vlan": int(doc.get("vlan_id") or 0), "interface": doc.get("interface", "") or "",
                "private": bool(doc.get("private")),
                "defaults": {"subnet_id": str((doc.get("defaults") or {}).get("subnet_id") or "")}}

    def subnet(self, doc: Document) -> Document:
        vnet_id = self.ref("subnet", doc, "vnet_id", "vnet")
        vnet = self.ctx.get("vnet", vnet_id) or {}
        cidr = doc.get("cidr", "") or ""
        try:
            net = ipaddress.ip_network(cidr, strict=False)
            if str(net) != cidr:
                self.report.defaults.append(f"subnet {doc.get('name')}: CIDR {cidr} written {net}")
            cidr, prefix = str(net), net.prefixlen
        except ValueError:
            self.warn("subnet", doc, f"CIDR {cidr!r} is not a network (kept)")
            prefix = 0
        application = doc.get("application") or "user"

        def ranges(key: str) -> list[Document]:
            return [{"first": r.get("first", ""), "last": r.get("last", "")} for r in doc.get(key) or []]

        return {**self.base(doc), "vnet_id": vnet_id, "region_id": vnet.get("region_id", ""), "cidr": cidr,
                "prefix_length": prefix, "private": bool(vnet.get("private")),
                "project_id": self.ref("subnet", doc, "project_id", "project", required=False),
                "gateway": doc.get("gateway", "") or "", "dns": doc.get("dns") or doc.get("gateway", "") or "",
                "extra_routes": [str(r) for r in doc.get("routes") or []], "reserved": ranges("reserved_ranges"),
                "gw_pool": ranges("gw_pool"), "application": application}

    def adapter(self, doc: Document) -> Document:
        adapter_id = str(doc["_id"])
        made_for = self.ctx.service_of_adapter.get(adapter_id, "")
        instance = self.ctx.instance_of_adapter.get(adapter_id)
        if not made_for and instance is not None and str(instance["_id"]) in self.ctx.kompute_of_instance:
            made_for = str(instance["_id"])  # a Kompute's NICs are made with it, and deleted with it
        return {**self.base(doc), "subnet_id": self.ref("adapter", doc, "subnet_id", "subnet"),
                "mac": (doc.get("mac") or "").lower(), "addresses": [str(a) for a in doc.get("addresses") or []],
                "reserved": bool(doc.get("reserved")), "made_for": made_for}

    def dns_record(self, doc: Document) -> Document:
        project_id = self.ref("dns_record", doc, "project_id", "project", required=False)
        region_id = self.ref("dns_record", doc, "region_id", "region", required=False)
        if bool(project_id) == bool(region_id):
            self.warn("dns_record", doc, "belongs to both or neither of a project and a region")
        return {**self.base(doc), "project_id": project_id, "region_id": region_id,
                "domain": doc.get("domain", "") or "", "addresses": [str(a) for a in doc.get("addresses") or []]}

    # -- projects --------------------------------------------------------------------------------

    def project(self, doc: Document) -> Document:
        project_id = str(doc["_id"])
        private_subnets = []
        for region_name, subnet_id in (doc.get("private_subnets") or {}).items():
            region = self.ctx.named("region", region_name)
            if region is None:
                self.warn("project", doc, f"private subnet of unknown region {region_name!r} dropped")
                continue
            subnet = self.ctx.get("subnet", subnet_id)
            if subnet is None or subnet.get("project_id") != project_id:
                self.warn("project", doc, f"private subnet {subnet_id} of region {region_name} is not assigned "
                                          f"to the project")
            private_subnets.append({"key": str(region["_id"]), "value": str(subnet_id)})
        gateways = {}
        for zone_name, address in (doc.get("zone_gateways") or {}).items():
            zone = self.ctx.named("zone", zone_name)
            if zone is None:
                self.warn("project", doc, f"gateway {address} of unknown zone {zone_name!r} dropped")
                continue
            gateways[str(zone["_id"])] = str(address)
        quotas = doc.get("quotas") or {}
        return {**self.base(doc), "domain": doc.get("domain", "") or "",
                "root_password": doc.get("default_root_password", "") or "",
                "bootstrap_user": doc.get("bootstrap_user", "") or "",
                "bootstrap_pubkey": doc.get("bootstrap_pubkey", "") or "",
                "tags": [str(t) for t in doc.get("tags") or []],
                "metadatas": [{"key": m.get("key", ""), "value": m.get("value", "")}
                              for m in doc.get("metadatas") or []],
                "quotas": {key: int(quotas.get(key) or 0) for key in ("vcpus", "memory", "storage", "instances")},
                "team_ids": self.refs("project", doc, "team_ids", "team"),
                "region_ids": self.refs("project", doc, "region_ids", "region"),
                "private_subnets": private_subnets, "zone_gateways": gateways,
                "reserved_vrrp_ids": [int(n) for n in doc.get("reserved_vrrp_ids") or []], "state": "ready"}

    # -- compute -----------------------------------------------------------------------------------

    def instance(self, doc: Document) -> Document:
        instance_id = str(doc["_id"])
        kaktus_id = self.ref("instance", doc, "kaktus_id", "kaktus")
        kaktus = self.ctx.get("kaktus", kaktus_id) or {}
        zone_id = kaktus.get("zone_id", "")
        project_id = self.ref("instance", doc, "project_id", "project")
        project = self.ctx.get("project", project_id) or {}
        interfaces = doc.get("interfaces") or {}
        disks = doc.get("disks") or {}
        for device in interfaces:
            if not re.match(NIC, device):
                self.warn("instance", doc, f"unexpected NIC name {device!r}: put last")
        for device in disks:
            if not re.match(DISK, device):
                self.warn("instance", doc, f"unexpected disk name {device!r}: put last")
        adapter_ids = [str(interfaces[d]) for d in sorted(interfaces, key=lambda d: _device_order(d, NIC))]
        volume_ids = [str(disks[d]) for d in sorted(disks, key=lambda d: _device_order(d, DISK))]
        for adapter_id in adapter_ids:
            if self.ctx.get("adapter", adapter_id) is None:
                self.warn("instance", doc, f"NIC adapter {adapter_id} is unknown")
        for volume_id in volume_ids:
            if self.ctx.get("volume", volume_id) is None:
                self.warn("instance", doc, f"disk volume {volume_id} is unknown")
        seed = str(doc.get("cloudinit") or "")
        if seed and self.ctx.get("volume", seed) is None:
            self.warn("instance", doc, f"cloud-init volume {seed} is unknown")
        profile = doc.get("profile") or ""
        if profile not in ("", "kawaii", "konvey"):
            self.warn("instance", doc, f"unknown profile {profile!r} (kept)")
        # The Go Kahuna published every private address of the instance under the project's domain.
        addresses = []
        for adapter_id in adapter_ids:
            adapter = self.ctx.get("adapter", adapter_id) or {}
            if self.is_private_subnet(adapter.get("subnet_id", "")):
                addresses += [str(a) for a in adapter.get("addresses") or []]
        domain = project.get("domain", "") if addresses else ""
        new = {**self.base(doc), "project_id": project_id, "region_id": self.region_of_zone(zone_id),
               "zone_id": zone_id, "kaktus_id": kaktus_id, "vcpus": int(doc.get("vcpus") or 0),
               "memory": int(doc.get("memory") or 0), "adapter_ids": adapter_ids, "volume_ids": volume_ids,
               "profile": profile, "profile_id": str(doc.get("profile_id") or ""),
               "kompute": instance_id in self.ctx.kompute_of_instance, "agent_id": str(doc.get("agent_id") or ""),
               "seed_volume_id": seed, "local_ip": doc.get("local_ip", "") or "", "os": doc.get("os") or "linux",
               "dns_domain": domain or "", "dns_addresses": addresses if domain else [], "state": "ready"}
        if doc.get("initial_root_password"):
            # Not used here (the seed already applied it), but the only record of a generated password.
            new["initial_root_password"] = doc["initial_root_password"]
            self.root_passwords += 1
        return new

    def kompute(self, doc: Document) -> Document:
        instance_id = self.ref("kompute", doc, "instance_id", "instance")
        instance = self.ctx.get("instance", instance_id) or {}
        if instance and (doc.get("description") or "") != (instance.get("description") or ""):
            self.warn("kompute", doc, "its description differs from its instance's: the instance's is shown")
        return {**self.base(doc), "project_id": self.ref("kompute", doc, "project_id", "project"),
                "instance_id": instance_id, "name": instance.get("name") or doc.get("name", ""),
                "profile": instance.get("profile", "") or "", "profile_id": str(instance.get("profile_id") or "")}

    def kylo(self, doc: Document) -> Document:
        nfs_id = self.ref("kylo", doc, "nfs_id", "nfs")
        nfs = self.ctx.get("nfs", nfs_id) or {}
        subvolume = doc.get("subvolume") or {}
        if subvolume.get("name") and subvolume["name"] != doc.get("name"):
            self.warn("kylo", doc, f"its subvolume is named {subvolume['name']!r}: the share's name is used")
        export_id: object  # a number, or what the Go document held when it is not one
        try:
            export_id = int(doc.get("export_id") or 0)
        except (TypeError, ValueError):
            self.warn("kylo", doc, f"export id {doc.get('export_id')!r} is not a number (kept)")
            export_id = doc.get("export_id")
        return {**self.base(doc), "project_id": self.ref("kylo", doc, "project_id", "project"),
                "region_id": nfs.get("region_id", ""), "nfs_id": nfs_id, "access": doc.get("access_type") or "RW",
                "protocols": sorted(int(p) for p in doc.get("protocols") or []),
                "clients": [str(c) for c in doc.get("clients") or []], "export_id": export_id,
                "path": subvolume.get("path", "") or "", "size": int(subvolume.get("size") or 0), "state": "ready"}

    # -- services ------------------------------------------------------------------------------------

    @staticmethod
    def _rule(rule: Document, peer: str | None) -> Document:
        # The Go Kahuna's ingress rules carry Protocol and Ports capitalised (their bson tags).
        converted = {"protocol": rule.get("protocol") or rule.get("Protocol") or "tcp",
                     "ports": rule.get("ports") or rule.get("Ports") or ""}
        if peer is not None:
            converted = {peer: rule.get(peer) or "0.0.0.0/0", **converted}
        return converted

    def kawaii(self, doc: Document) -> Document:
        project_id = self.ref("kawaii", doc, "project_id", "project")
        project = self.ctx.get("project", project_id) or {}
        mzr = self.ctx.get("mzr", doc.get("mzr_id"))
        if mzr is None:
            self.warn("kawaii", doc, f"its mzr {doc.get('mzr_id')!r} is unknown: no VM, virtual address or zone "
                                     f"converted")
            mzr = {}
        region_id = str(mzr.get("region_id") or "")
        firewall = doc.get("firewall") or {}
        policy = firewall.get("egress_policy") or ""
        if not policy:
            self.report.defaults.append(f"kawaii {doc.get('name')}: egress policy unset, accept")
        zones, virtual_ips = [], []
        vips = list(mzr.get("virtual_ips") or [])
        komputes = [self.ctx.get("kompute", k) for k in _ids(mzr.get("kompute_ids"))]
        for zone_name in sorted(mzr.get("public_adapter_ids") or {}):
            zone = self.ctx.named("zone", zone_name)
            if zone is None:
                self.warn("kawaii", doc, f"zone {zone_name!r} is unknown: its VM and addresses are not converted")
                continue
            zone_id = str(zone["_id"])
            vip_adapter_id = str(mzr["public_adapter_ids"][zone_name])
            vip_adapter = self.ctx.get("adapter", vip_adapter_id) or {}
            public = (vip_adapter.get("addresses") or [""])[0]
            private = (project.get("zone_gateways") or {}).get(zone_name, "")
            vm = next((k for k in komputes if k and self._zone_of_kompute(k) == zone_id), None)
            if vm is None:
                self.warn("kawaii", doc, f"no VM in zone {zone_name}")
            zones.append({"zone_id": zone_id, "zone": zone_name, "kompute_id": str(vm["_id"]) if vm else "",
                          "vip_adapter_id": vip_adapter_id, "public": public, "private": private})
            public_vip = next((v for v in vips if v.get("public") and v.get("vip") == public), None)
            private_vip = next((v for v in vips if not v.get("public") and v.get("vip") == private), None)
            for vip in (public_vip, private_vip):
                if vip is None:
                    self.warn("kawaii", doc, f"zone {zone_name}: a virtual address is missing from its mzr")
                    continue
                vips.remove(vip)
                virtual_ips.append({"vrrp_id": int(vip.get("vrrp_id") or 0), "interface": vip.get("interface", ""),
                                    "vip": vip.get("vip", ""), "mask": int(vip.get("mask") or 0),
                                    "public": bool(vip.get("public")), "zone_id": zone_id})
        for vip in vips:
            self.warn("kawaii", doc, f"virtual address {vip.get('vip')} of no zone: not converted")
        if mzr.get("private_adapter_ids") or mzr.get("private_vips"):
            self.warn("kawaii", doc, "private virtual address adapters in its mzr: not converted")
        peerings = []
        for peering in doc.get("vpc_peerings") or []:
            subnet_id = str(peering.get("subnet") or "")
            subnet = self.ctx.get("subnet", subnet_id)
            if subnet is None:
                self.warn("kawaii", doc, f"VPC peering subnet {subnet_id} is unknown")
            vnet = self.ctx.get("vnet", (subnet or {}).get("vnet_id")) or {}
            peerings.append({"subnet": subnet_id, "region_id": vnet.get("region_id", region_id),
                             "policy": peering.get("policy") or "drop",
                             "ingress": [self._rule(r, None) for r in peering.get("ingress") or []],
                             "egress": [self._rule(r, None) for r in peering.get("egress") or []]})
        return {**self.base(doc), "project_id": project_id, "region_id": region_id,
                "firewall": {"ingress": [self._rule(r, "source") for r in firewall.get("ingress") or []],
                             "egress_policy": policy or "accept",
                             "egress": [self._rule(r, "destination") for r in firewall.get("egress") or []]},
                "dnat": [{"destination": r.get("private_ip", ""), "protocol": r.get("protocol") or "tcp",
                          "ports": r.get("ports", "")} for r in doc.get("dnat_rules") or []],
                "vpc_peerings": peerings, "zones": zones, "virtual_ips": virtual_ips, "state": "ready"}

    def _zone_of_kompute(self, kompute: Document) -> object:
        """The ``zone_id`` of the Kaktus of *kompute*'s instance, as the Go document holds it ("" if none)."""
        instance = self.ctx.get("instance", kompute.get("instance_id")) or {}
        kaktus = self.ctx.get("kaktus", instance.get("kaktus_id")) or {}
        return kaktus.get("zone_id", "")

    def ipsec(self, doc: Document) -> Document:
        kawaii_id = self.ref("ipsec", doc, "kawaii_id", "kawaii")
        kawaii = self.ctx.get("kawaii", kawaii_id) or {}
        values = {"dpd_timeout_action": doc.get("dpd_action"), "dpd_timeout": doc.get("dpd_timeout"),
                  "start_action": doc.get("start_action"), "rekey_time": doc.get("rekey"),
                  "phase1_lifetime": doc.get("phase1_lifetime"), "phase2_lifetime": doc.get("phase2_lifetime")}
        unset = [key for key, value in values.items() if not value]
        if unset:
            self.report.defaults.append(f"IPsec connection {doc.get('name')}: "
                                        + ", ".join(f"{key} {IPSEC_DEFAULTS[key]}" for key in unset))
        if values["dpd_timeout_action"] == "start":
            values["dpd_timeout_action"] = "restart"
        converted = {**{key: value or IPSEC_DEFAULTS[key] for key, value in values.items()},
                     "phase1_dh_group_number": int(doc.get("phase1_df_group") or 0),
                     "phase1_integrity_algorithm": doc.get("phase1_integrity_algorithm", "") or "",
                     "phase1_encryption_algorithm": doc.get("phase1_encryption_algorithm", "") or "",
                     "phase2_dh_group_number": int(doc.get("phase2_df_group") or 0),
                     "phase2_integrity_algorithm": doc.get("phase2_integrity_algorithm", "") or "",
                     "phase2_encryption_algorithm": doc.get("phase2_encryption_algorithm", "") or ""}
        outside = [f"{key} {converted[key]}" for key, choices in IPSEC_CHOICES.items()
                   if converted[key] not in choices]
        if outside:
            self.warn("ipsec", doc, f"{', '.join(outside)}: kept (the tunnel is configured so), but outside the "
                                    f"API's choices: SDK clients cannot read this connection, and an update must "
                                    f"choose other values (agree them with the remote peer first)")
        firewall = doc.get("firewall") or {}
        if firewall.get("egress") or firewall.get("egress_policy"):
            self.warn("ipsec", doc, "egress rules or policy in its firewall: not converted (IPsec connections "
                                    "filter ingress only)")
        return {**self.base(doc), "kawaii_id": kawaii_id, "project_id": kawaii.get("project_id", ""),
                **converted, "remote_ip": doc.get("remote_peer", "") or "",
                "remote_subnet": doc.get("remote_subnet", "") or "",
                "pre_shared_key": doc.get("pre_shared_key", "") or "",
                "firewall": {"ingress": [self._rule(r, "source") for r in firewall.get("ingress") or []]},
                "ip": doc.get("ip", "") or "", "xfrm_id": int(doc.get("xfrm_id") or 0)}

    def konvey(self, doc: Document) -> Document:
        har = self.ctx.get("har", doc.get("har_id"))
        if har is None:
            self.warn("konvey", doc, f"its har {doc.get('har_id')!r} is unknown: no VM or virtual address converted")
            har = {}
        virtual_ip = har.get("virtual_ip") or {}
        endpoints = []
        for endpoint in doc.get("endpoints") or []:
            backends = endpoint.get("backends") or []
            ports = {int(b.get("port") or 0) for b in backends}
            if len(ports) > 1:
                self.warn("konvey", doc, f"endpoint {endpoint.get('name')}: backends on several ports "
                                         f"{sorted(ports)}; this Kahuna keeps one port per endpoint: "
                                         f"{min(ports)}")
            endpoints.append({"name": endpoint.get("name", ""), "port": int(endpoint.get("port") or 0),
                              "protocol": endpoint.get("protocol") or "tcp",
                              "backends": {"hosts": [str(b.get("host", "")) for b in backends],
                                           "port": min(ports) if ports else 0}})
        kompute_ids = _ids(har.get("kompute_ids"))
        for kompute_id in kompute_ids:
            if self.ctx.get("kompute", kompute_id) is None:
                self.warn("konvey", doc, f"its VM Kompute {kompute_id} is unknown")
        return {**self.base(doc), "project_id": self.ref("konvey", doc, "project_id", "project"),
                "region_id": str(har.get("region_id") or ""), "failover": bool(doc.get("failover")),
                "endpoints": endpoints, "kompute_ids": kompute_ids, "vip": har.get("private_vip", "") or "",
                "vip_adapter_id": str(har.get("private_adapter_id") or ""),
                "vrrp_id": int(virtual_ip.get("vrrp_id") or 0), "mask": int(virtual_ip.get("mask") or 0),
                "state": "ready"}


# -- running it -----------------------------------------------------------------------------------------------------


def _rename_legacy(db: AnyDatabase, report: Report) -> None:
    existing = existing_collections(db)
    for legacy, name in LEGACY_NAMES.items():
        if legacy not in existing:
            continue
        if name in existing and db[name].find_one({}, {"_id": 1}) is not None:
            report.not_understood.append(f"collection {legacy}: {name} exists too, so it was not renamed "
                                         f"(left as it is)")
            continue
        if name in existing:
            db[name].drop()
        log.info("renaming collection %s to %s", legacy, name)
        db[legacy].rename(name)
        report.renamed.append(f"collection {legacy} to {name}")


def _upgrade_to_v2(db: AnyDatabase) -> None:
    """What the Go Kahuna's own --migrate does to documents of version 0 and 1."""
    existing = existing_collections(db)
    old = _outdated(GO_VERSION)
    old_pools: list[typing.Any] = []
    for name in GO_COLLECTIONS:
        # (ipsec documents are at version 1 in a 0.64 database: the Go Kahuna never had to migrate them.)
        if name not in V2_RENAMES or name not in existing or db[name].find_one(old, {"_id": 1}) is None:
            continue
        collection = db[name]
        if name == "agent":
            collection.delete_many({**old, "type": "KSA"})
            for legacy, current in LEGACY_AGENT_TYPES.items():
                collection.update_many({**old, "type": legacy}, {"$set": {"type": current}})
        if name == "mzr":
            collection.update_many({**old, "profile": "kgw"}, {"$set": {"profile": "kawaii"}})
        for doc in collection.find(old):
            renames = {old_name: new_name for old_name, new_name in V2_RENAMES.get(name, {}).items()
                       if _has_path(doc, old_name)}
            update: Document = {"$set": {"schema_version": GO_VERSION}}
            if renames:
                update["$rename"] = renames
            collection.update_one({"_id": doc["_id"]}, update)
            if name == "storage_pool":
                old_pools.append(doc["_id"])
    # The Go migration gave an old pool the agents of every Kaktus of its region (once zones and Kaktus nodes
    # have their version 2 references).
    for pool in db["storage_pool"].find({"_id": {"$in": old_pools}}) if old_pools else ():
        if pool.get("agent_ids"):
            continue
        zone_ids = [str(z["_id"]) for z in db["zone"].find({"region_id": pool.get("region_id")}, {"_id": 1})]
        agents = [a for kaktus in db["kaktus"].find({"zone_id": {"$in": zone_ids}}, {"agent_ids": 1})
                  for a in kaktus.get("agent_ids") or []]
        db["storage_pool"].update_one({"_id": pool["_id"]}, {"$set": {"agent_ids": list(dict.fromkeys(agents))}})


def _has_path(doc: Document, path: str) -> bool:
    value: typing.Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _keep_originals(db: AnyDatabase, existing: set[str], report: Report) -> None:
    for name in GO_COLLECTIONS:
        if name not in existing:
            continue
        outdated = list(db[name].find(_outdated(TARGET_VERSION)))
        if not outdated:
            continue
        db[ORIGINALS_PREFIX + name].bulk_write(
            [UpdateOne({"_id": doc["_id"]}, {"$setOnInsert": _without_id(doc)}, upsert=True) for doc in outdated],
            ordered=False)


def _without_id(doc: Document) -> Document:
    return {key: value for key, value in doc.items() if key != "_id"}


def _unique_conflicts(db: AnyDatabase, target: str, writes: list[Document],
                      kinds: typing.Mapping[str, Kind]) -> list[str]:
    kind = kinds.get(target)
    if kind is None:
        return []
    written = {doc["_id"] for doc in writes}
    current = [doc for doc in db[target].find({"schema_version": {"$gte": TARGET_VERSION}})
               if doc["_id"] not in written]
    conflicts = []
    for index in kind.indexes:
        if not index.unique:
            continue
        seen: dict[tuple[str, ...], str] = {}
        for doc in [*current, *writes]:
            key = tuple(str(_get_path(doc, k)) for k in index.keys)
            label = doc.get("name") or str(doc["_id"])
            if key in seen:
                conflicts.append(f"{target} {seen[key]} and {label} share {', '.join(index.keys)} = "
                                 f"{', '.join(key)}")
            else:
                seen[key] = label
    return conflicts


def _get_path(doc: Document, path: str) -> typing.Any:
    value: typing.Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass
class _UnknownField:
    """A field of a Go collection that no conversion reads: how many documents hold it, and whether it was kept on
    the converted documents (a top-level field is; a nested one is not)."""

    count: int = 0
    kept: bool = False


CONVERSION_ORDER = ("user", "team", "token", "agent", "region", "zone", "kaktus", "kiwi", "storage_pool", "nfs",
                    "template", "vnet", "subnet", "adapter", "dns_record", "project", "volume", "instance",
                    "kompute", "kylo", "kawaii", "ipsec", "konvey", "mzr", "har")


def convert(db: AnyDatabase, kinds: typing.Mapping[str, Kind], own_collections: typing.Iterable[str],
            registration_lifetime: datetime.timedelta = datetime.timedelta(hours=72),
            reset_lifetime: datetime.timedelta = datetime.timedelta(hours=1)) -> Report:
    """Convert every Go document of *db*; *kinds* are this Kahuna's collections (schema.KINDS_BY_COLLECTION)."""
    report = Report()
    _rename_legacy(db, report)
    _upgrade_to_v2(db)
    existing = existing_collections(db)
    _keep_originals(db, existing, report)
    originals = {name: list(db[ORIGINALS_PREFIX + name].find(sort=[("_id", 1)]))
                 for name in GO_COLLECTIONS if ORIGINALS_PREFIX + name in existing_collections(db)}
    report.originals = sorted(ORIGINALS_PREFIX + name for name in originals)
    live = {name: list(db[name].find(_outdated(TARGET_VERSION), sort=[("_id", 1)]))
            for name in GO_COLLECTIONS if name in existing}
    live = {name: docs for name, docs in live.items() if docs}
    _report_unknown_collections(existing, kinds, own_collections, report)
    if not live:
        return report
    context = _Context(originals)
    converter = Converter(context, report, utcnow(), registration_lifetime, reset_lifetime)
    writes: dict[str, list[Document]] = {}
    removed: dict[str, list[typing.Any]] = {}
    unknown: dict[str, dict[str, _UnknownField]] = {}
    for name in CONVERSION_ORDER:
        for doc in live.get(name, []):
            found: set[str] = set()
            _unknown_paths(doc, "", KNOWN[name], DERIVED.get(name, ()), found)
            for path in found:
                unknown.setdefault(name, {}).setdefault(path, _UnknownField()).count += 1
            derived = [f for f in DERIVED.get(name, ()) if f in doc]
            if derived:
                report.recomputed.setdefault(name, set()).update(derived)
            if name in ("mzr", "har"):
                removed.setdefault(name, []).append(doc["_id"])
                continue
            new = getattr(converter, name)(doc)
            if new is None:
                removed.setdefault(name, []).append(doc["_id"])
                continue
            # Fields not understood at the top level are kept as they are.
            for path in found:
                if "." not in path and "[" not in path:
                    new[path] = doc[path]
                    unknown[name][path].kept = True
            writes.setdefault(TARGET[name], []).append(new)
            if name in FOLDED:
                removed.setdefault(name, []).append(doc["_id"])
    for name, paths in sorted(unknown.items()):
        for path in sorted(paths):
            unknown_field = paths[path]
            kept = "kept as it is on the converted documents" if unknown_field.kept else "not converted"
            report.not_understood.append(f"field {name}.{path} ({unknown_field.count} document(s)): {kept}")
    conflicts = [c for target, docs in writes.items() for c in _unique_conflicts(db, target, docs, kinds)]
    if conflicts:
        raise ConversionError("the converted documents break this Kahuna's uniqueness rules (nothing converted; "
                              "fix them in the Go database, then run `kahuna migrate` again):\n  "
                              + "\n  ".join(conflicts))
    _write(db, writes, removed)
    for target, docs in writes.items():
        report.converted[target] = report.converted.get(target, 0) + len(docs)
    _summarize(converter, context, removed, report)
    return report


def _write(db: AnyDatabase, writes: dict[str, list[Document]], removed: dict[str, list[typing.Any]]) -> None:
    outdated = _outdated(TARGET_VERSION)
    for target, docs in writes.items():
        operations: list[UpdateOne | ReplaceOne[Document]]
        if target in NEW_COLLECTIONS:
            # A new collection: the converted document is added unless a previous run added it.
            operations = [UpdateOne({"_id": doc["_id"]}, {"$setOnInsert": _without_id(doc)}, upsert=True)
                          for doc in docs]
        else:
            operations = [ReplaceOne({"_id": doc["_id"], **outdated}, doc) for doc in docs]
        db[target].bulk_write(operations, ordered=True)
    for name, ids in removed.items():
        db[name].delete_many({"_id": {"$in": ids}, **outdated} if name not in FOLDED else {"_id": {"$in": ids}})
        if name in FOLDED and db[name].find_one({}, {"_id": 1}) is None:
            db[name].drop()


def _report_unknown_collections(existing: set[str], kinds: typing.Mapping[str, Kind],
                                own_collections: typing.Iterable[str], report: Report) -> None:
    known = set(GO_COLLECTIONS) | set(kinds) | set(own_collections) | set(LEGACY_NAMES)
    for name in sorted(existing):
        if name in known or name.startswith(ORIGINALS_PREFIX) or name.startswith("system."):
            continue
        report.not_understood.append(f"collection {name}: not a Go Kahuna 0.64 collection, left as it is")


def _summarize(converter: Converter, context: _Context, removed: dict[str, list[typing.Any]],
               report: Report) -> None:
    templates = len(removed.get("volume", []))
    if templates:
        report.folded.append(f"volume: {templates} template image(s) into their templates (volume, size)")
    for name, target, what in (("mzr", "kawaii", "VM, zones, virtual addresses and VIP adapters"),
                               ("har", "konvey", "VMs, virtual address and VIP adapter")):
        if removed.get(name):
            report.folded.append(f"{name}: {len(removed[name])} into {target} ({what})")
    if removed.get("ipsec"):
        report.folded.append(f"ipsec: {len(removed['ipsec'])} into kawaii_ipsec")
    docs = context.documents
    for parent, list_field, child, ref in PARENT_LISTS:
        listed = {(str(p["_id"]), c) for p in docs.get(parent, []) for c in _ids(p.get(list_field))}
        actual = {(str(c.get(ref)), str(c["_id"])) for c in docs.get(child, []) if c.get(ref)}
        missing, extra = len(actual - listed), len(listed - actual)
        if missing or extra:
            parts = ([f"{missing} {child}(s) not listed"] if missing else []) + \
                    ([f"{extra} listed that do not point back"] if extra else [])
            report.stale_lists.append(f"{parent}.{list_field}: {', '.join(parts)}")
    if converter.agent_keys:
        report.notes.append(
            f"the API keys of {len(converter.agent_keys)} agent(s) keep working: each is checked once against its "
            f"Go bcrypt hash when the agent next connects, then stored as a digest (a signed handshake is refused "
            f"until then)")
    if converter.user_keys:
        report.actions.append(
            f"re-issue the API keys of {len(converter.user_keys)} user(s) ({', '.join(sorted(converter.user_keys))}) "
            f"with PATCH /api/v1/user/<id>/token: the Go Kahuna kept only bcrypt hashes, and a user's key is "
            f"presented without anything that names its token")
    if converter.sessions:
        report.actions.append(
            f"users with a Go session ({', '.join(sorted(converter.sessions))}) log in again: their JWTs are not "
            f"accepted here (passwords carry over)")
    if converter.links:
        report.notes.append(
            f"pending e-mailed links keep working for their usual lifetime from now: "
            f"{', '.join(sorted(converter.links))}")
    if converter.root_passwords:
        report.notes.append(
            f"the root passwords of {converter.root_passwords} instance(s) stay on their documents "
            f"(initial_root_password), not served by the API")
