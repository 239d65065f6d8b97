"""Instances: libvirt domains on a Kaktus, with their disks, NICs and cloud-init seed.

Creating one takes several agents and several documents, and nothing can commit
them together; so each step registers its inverse (:class:`Undo`) and a failure
anywhere takes back every earlier step: no volume, adapter, address, DNS name,
Kontroller agent or domain is left behind.

1. *claim* - in the project's serializer: check the quotas, elect a Kaktus (in the
   serializers of the candidate zones - one, or every zone of the region for a
   region-wide creation - and of its Kwarantine groups, against the capacity in use,
   maintenance and anti-affinity), write the instance document (state ``creating``;
   it holds the name and the quota from then on) and the documents of the volumes
   to make;
2. adapters (addresses allocated in each subnet's serializer);
3. volumes, made by an agent of their pool;
4. the host name on the region's Kiwis (the private addresses, under the project domain);
5. for Kawaii and Konvey VMs, the Kontroller agent and its key;
6. the cloud-init seed ISO, as a volume of the OS volume's pool;
7. the domain on the Kaktus, then autostart.

An instance's name is its domain's name on the Kaktus and cannot change. What is
fixed at its creation (API 0.58): ``uefi`` (absent: BIOS, as before), and the
Kwarantine groups it joins (``kwarantine_ids``); ``kmotion_enabled`` (absent: true)
says whether kMotion may move it.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import typing
from dataclasses import dataclass, field

from bson import ObjectId

from kahuna import cloudinit, credentials, libvirt_xml, placement, rpc
from kahuna.errors import (
    AgentCallFailed,
    AgentError,
    AgentUnavailable,
    Conflict,
    NotFound,
    QuotaExceeded,
    Unprocessable,
)
from kahuna.rpc import AgentPlane, InstanceAction
from kahuna.services._common import CREATING, DELETING, READY, UPDATING, Owners, owned_ids
from kahuna.services._undo import Undo
from kahuna.services.agents import run_each_concurrently
from kahuna.services.dns import DnsService
from kahuna.services.kwarantines import KwarantineService
from kahuna.services.names import check_name
from kahuna.services.networks import AdapterService
from kahuna.services.projects import ProjectService
from kahuna.services.storage_pools import PoolService
from kahuna.services.tokens import TokenService
from kahuna.services.volumes import ISO, OS, RAW, VolumeService
from kahuna.storage import Database, models

log = logging.getLogger(__name__)

PROFILES_WITH_AGENT = ("kawaii", "konvey")
POWER_ACTIONS = {
    "start": InstanceAction.START, "stop": InstanceAction.HARD_SHUTDOWN, "shutdown": InstanceAction.SOFT_SHUTDOWN,
    "reboot": InstanceAction.SOFT_REBOOT, "reset": InstanceAction.HARD_REBOOT, "suspend": InstanceAction.PM_SUSPEND,
    "resume": InstanceAction.PM_RESUME,
}


def check_hostname(name: str, what: str = "instance") -> str:
    """An instance's name is its libvirt domain and its DNS label (see :mod:`kahuna.services.names`)."""
    return check_name(name, what)


@dataclass(frozen=True)
class NewVolume:
    name: str
    type: str
    size: int
    pool: models.StoragePool
    template: models.Template | None = None


@dataclass(frozen=True)
class NewAdapter:
    name: str
    subnet_id: str
    assign_ip: bool


def creation_options(fields: typing.Mapping[str, typing.Any]) -> dict[str, typing.Any]:
    """The creation-time fields of API 0.58 in a creation body, as :class:`Plan` takes them: ``uefi`` (absent:
    BIOS, as 0.53.2 clients always had), ``kmotion_enabled`` (absent: true), the Kwarantine group ids (once each)."""
    return {"uefi": fields.get("uefi") is True, "kmotion_enabled": fields.get("kmotion_enabled") is not False,
            "kwarantine_ids": tuple(dict.fromkeys(fields.get("kwarantine_ids") or ()))}


@dataclass
class Plan:
    """What an instance is made of: existing adapters/volumes, and ones to make, in NIC and disk order."""

    name: str
    description: str
    vcpus: int
    memory: int
    adapter_ids: list[str] = field(default_factory=list)
    volume_ids: list[str] = field(default_factory=list)
    new_adapters: list[NewAdapter] = field(default_factory=list)
    new_volumes: list[NewVolume] = field(default_factory=list)
    profile: str = ""
    profile_id: str = ""
    avoid_kaktus_ids: frozenset[str] = frozenset()
    #: The instance of a Kompute: crash recovery takes back one whose Kompute record was never written.
    kompute: bool = False
    uefi: bool = False
    kmotion_enabled: bool = True
    #: The Kwarantine groups (of the same project) it joins: their policies exclude nodes from the election.
    kwarantine_ids: tuple[str, ...] = ()

    @property
    def storage(self) -> int:
        return sum(v.size for v in self.new_volumes)


@dataclass(frozen=True)
class Site:
    """Where a new instance may go: the zones whose Kaktus nodes are candidates - one zone, or every zone of a
    region (a region-wide creation: Kahuna elects the node, and the zone follows from it)."""

    region_id: str
    zones: tuple[models.Zone, ...]
    scope: str  # "zone" or "region", in the reasons
    name: str

    @classmethod
    def of_zone(cls, zone: models.Zone) -> Site:
        return cls(zone["region_id"], (zone,), "zone", zone["name"])

    @classmethod
    def of_region(cls, region: models.Region, zones: typing.Iterable[models.Zone]) -> Site:
        return cls(str(region["_id"]), tuple(sorted(zones, key=lambda z: z["name"])), "region", region["name"])

    @property
    def zone_ids(self) -> list[str]:
        return [str(zone["_id"]) for zone in self.zones]

    def zone(self, zone_id: str) -> models.Zone:
        return next(zone for zone in self.zones if str(zone["_id"]) == zone_id)


class InstanceService:
    def __init__(self, db: Database, agents: AgentPlane, serializer: Owners, projects: ProjectService,
                 pools: PoolService, volumes: VolumeService, adapters: AdapterService, dns: DnsService,
                 tokens: TokenService, templates: cloudinit.Templates, public_url: str,
                 hasher: credentials.PasswordHasher, kwarantines: KwarantineService):
        self.db = db
        self.agents = agents
        self.serializer = serializer
        self.projects = projects
        self.pools = pools
        self.volumes = volumes
        self.adapters = adapters
        self.dns = dns
        self.tokens = tokens
        self.templates = templates
        self.public_url = public_url.rstrip("/")
        self.hasher = hasher
        self.kwarantines = kwarantines

    # -- reads -------------------------------------------------------------------------

    def list_ids(self, project_id: str | None = None, zone_id: str | None = None,
                 region_id: str | None = None) -> list[str]:
        """The project's instances, or those of one of its zones, or of one of its regions."""
        if zone_id is not None:
            self.db.zones.get(zone_id)
            return owned_ids(self.db.instances, self.projects, project_id, zone_id=zone_id)
        if region_id is not None:
            self.db.regions.get(region_id)
            return owned_ids(self.db.instances, self.projects, project_id, region_id=region_id)
        return owned_ids(self.db.instances, self.projects, project_id)

    def get(self, instance_id: str) -> models.Instance:
        return self.db.instances.get(instance_id)

    # -- creation ------------------------------------------------------------------------

    def create(self, project_id: str, zone_id: str, fields: dict[str, typing.Any]) -> models.Instance:
        """A raw instance from adapters and volumes the project already has, in a zone."""
        project = self.projects.get(project_id)
        return self._create(project, Site.of_zone(self.zone_of_project(project, zone_id)), fields)

    def create_in_region(self, project_id: str, region_id: str, fields: dict[str, typing.Any]) -> models.Instance:
        """The same, anywhere in a region: on the least loaded Kaktus of its zones that can take it."""
        project = self.projects.get(project_id)
        return self._create(project, self.region_of_project(project, region_id), fields)

    def _create(self, project: models.Project, site: Site, fields: dict[str, typing.Any]) -> models.Instance:
        project_id = str(project["_id"])
        adapter_ids = list(dict.fromkeys(fields.get("adapter_ids") or []))
        volume_ids = list(dict.fromkeys(fields.get("volume_ids") or []))
        for adapter_id in adapter_ids:  # early, clear refusals; claimed for good in _claim
            self._check_adapter_usable(project, adapter_id)
        for volume_id in volume_ids:
            self._check_volume_usable(project_id, volume_id)
        plan = Plan(fields["name"], fields.get("description", ""), fields["vcpus"], fields["memory"],
                    adapter_ids=adapter_ids, volume_ids=volume_ids, **creation_options(fields))
        return self.provision(project, site, plan)

    def zone_of_project(self, project: models.Project, zone_id: str) -> models.Zone:
        zone = self.db.zones.get(zone_id)
        if zone["region_id"] not in project.get("region_ids", []):
            raise Unprocessable(f"project {project['name']} is not in the region of zone {zone['name']}")
        return zone

    def region_of_project(self, project: models.Project, region_id: str) -> Site:
        """Every zone of a region of the project, as the site of a region-wide creation."""
        region = self.db.regions.get(region_id)
        if region_id not in project.get("region_ids", []):
            raise Unprocessable(f"project {project['name']} is not in region {region['name']}")
        return Site.of_region(region, self.db.zones.find({"region_id": region_id}))

    def _check_adapter_usable(self, project: models.Project, adapter_id: str) -> None:
        # Reasons name the id the caller sent, never what it names: the adapter may be another project's.
        adapter = self.db.adapters.get(adapter_id)
        subnet = self.db.subnets.get(adapter["subnet_id"])
        # An adapter made for a Kawaii or Konvey (its virtual address) is that service's, whatever the subnet.
        made_for_service = bool(adapter.get("made_for")) and not self.db.instances.exists(
            {"_id": ObjectId(adapter["made_for"])} if ObjectId.is_valid(adapter["made_for"]) else {"_id": None})
        if (subnet["private"] and subnet.get("project_id") != str(project["_id"])) or made_for_service:
            raise Unprocessable(f"adapter {adapter_id} cannot be used by this project")
        if self.db.instances.exists({"adapter_ids": adapter_id}):
            raise Conflict(f"adapter {adapter_id} is already plugged in an instance")

    def _check_volume_usable(self, project_id: str, volume_id: str) -> None:
        volume = self.db.volumes.get(volume_id)
        if volume.get("project_id") != project_id or volume["type"] not in (OS, RAW):
            raise Unprocessable(f"volume {volume_id} is not a volume of this project")
        if volume.get("state", "ready") != "ready":
            doing = "created" if volume["state"] == "creating" else "changed"
            raise Conflict(f"volume {volume['name']} is being {doing}")
        if self.db.instances.exists({"volume_ids": volume_id}):
            raise Conflict(f"volume {volume['name']} is already a disk of an instance")

    def provision(self, project: models.Project, site: Site, plan: Plan,
                  undo: Undo | None = None) -> models.Instance:
        """Make the instance of *plan* on a Kaktus of *site*; on failure take back every step (also those of an
        enclosing *undo*)."""
        check_hostname(plan.name)
        if plan.vcpus <= 0 or plan.memory <= 0:
            raise Unprocessable("an instance needs at least one vCPU and some memory")
        with Undo() as own:
            undo = undo or own
            instance = self._claim(project, site, plan, undo)
            zone = site.zone(instance["zone_id"])
            adapter_ids = list(plan.adapter_ids)
            for new in plan.new_adapters:
                adapter = self.adapters.create(new.subnet_id, {"name": new.name, "description": instance["name"]},
                                               assign_ip=new.assign_ip, made_for=str(instance["_id"]))
                undo.push(f"delete adapter {new.name}",
                          functools.partial(self.db.adapters.delete_many, {"_id": adapter["_id"]}))
                adapter_ids.append(str(adapter["_id"]))
            volume_ids = list(plan.volume_ids)
            for volume in self.db.volumes.find({"instance_id": str(instance["_id"]), "type": {"$ne": ISO}},
                                               sort=[("_id", 1)]):
                realized = self.volumes.realize(volume)
                undo.push(f"delete volume {volume['name']}", functools.partial(self.volumes.destroy, realized))
                volume_ids.append(str(volume["_id"]))
            instance = self.db.instances.update(instance["_id"], {"adapter_ids": adapter_ids, "volume_ids": volume_ids})
            return self._realize(project, zone, instance, undo)

    def _claim(self, project: models.Project, site: Site, plan: Plan, undo: Undo) -> models.Instance:
        project_id = str(project["_id"])
        demand = {"instances": 1, "vcpus": plan.vcpus, "memory": plan.memory, "storage": plan.storage}

        def place() -> models.Instance:
            # In the owners of the project, the zones, each adapter and each Kwarantine group: the disks and
            # NICs are checked free and written into the instance in one step, so two instances never get the
            # same one; the groups' members are read and the new one written in one step too, so two creations
            # in one group are decided one after the other.
            for adapter_id in plan.adapter_ids:
                self._check_adapter_usable(project, adapter_id)
            for volume_id in plan.volume_ids:
                self._check_volume_usable(project_id, volume_id)
            exclude = plan.avoid_kaktus_ids
            if plan.kwarantine_ids:
                exclude |= self.kwarantines.exclusions(plan.kwarantine_ids, project_id)
            return self._place(project, site, plan, exclude)

        def claim() -> models.Instance:
            instance = self.serializer.run_all(
                [f"zone:{zone_id}" for zone_id in site.zone_ids]
                + [f"adapter:{adapter_id}" for adapter_id in plan.adapter_ids]
                + self.kwarantines.owner_keys(plan.kwarantine_ids), place)
            claimed: list[models.Instance | models.Volume] = [instance]
            try:
                for new in plan.new_volumes:
                    claimed.append(self.volumes.claim(project_id, new.pool, new.name, instance["name"], new.type,
                                                      new.size, new.template, instance_id=str(instance["_id"])))
            except BaseException:
                for document in claimed:
                    self.db.db[("instance" if document is instance else "volume")].delete_one({"_id": document["_id"]})
                raise
            return instance

        instance = self.projects.reserve(project_id, demand, claim)
        undo.push(f"forget instance {plan.name}", lambda: (
            self.db.volumes.delete_many({"instance_id": str(instance["_id"]), "state": "creating"}),
            self.db.instances.delete_many({"_id": instance["_id"]})))
        return instance

    def nodes(self, zone_id: str | None = None, region_id: str | None = None) -> list[placement.Node]:
        """The Kaktus nodes of a zone, or of every zone of a region, as the election sees them (capacity in
        use, connected agent, maintenance)."""
        if zone_id is not None:
            return self._nodes([zone_id])
        if region_id is None:
            raise ValueError("the nodes of a zone or of a region")
        return self._nodes(self.db.zones.ids({"region_id": region_id}))

    def _nodes(self, zone_ids: list[str]) -> list[placement.Node]:
        nodes = []
        for kaktus in self.db.kaktuses.find({"zone_id": {"$in": zone_ids}}, sort=[("_id", 1)]):
            caps = kaktus.get("capabilities") or {}
            threads = int((caps.get("cpu") or {}).get("threads") or 0)
            # An instance being moved off it (kMotion) holds its room until the move is over: a failed move puts
            # it back.
            hosted = self.db.instances.find({"$or": [{"kaktus_id": str(kaktus["_id"])},
                                                     {"kmotion.source_kaktus_id": str(kaktus["_id"])}]},
                                            projection={"name": 1, "vcpus": 1, "memory": 1})
            nodes.append(placement.Node(
                kaktus_id=str(kaktus["_id"]), name=kaktus["name"],
                online=bool(self.agents.connected_ids(kaktus["agent_ids"])),
                vcpu_capacity=threads * kaktus["overcommit_cpu_ratio"],
                memory_capacity=int(caps.get("memory") or 0) * kaktus["overcommit_memory_ratio"],
                vcpus=sum(i["vcpus"] for i in hosted), memory=sum(i["memory"] for i in hosted),
                instance_names=[i["name"] for i in hosted], zone_id=kaktus["zone_id"],
                maintenance=bool(kaktus.get("maintenance"))))
        return nodes

    def _place(self, project: models.Project, site: Site, plan: Plan, exclude: frozenset[str]) -> models.Instance:
        """Elect a Kaktus of *site* and write the instance there (in the zones' serializers: capacity is not
        double-booked, and a node put in maintenance meanwhile is not elected)."""
        nodes = self._nodes(site.zone_ids)
        node = placement.elect(nodes, plan.name, plan.vcpus, plan.memory, exclude)
        if node is None:
            raise QuotaExceeded(f"no room for {plan.name} in {site.scope} {site.name}: "
                                f"{placement.why_none_fits(nodes, plan.vcpus, plan.memory, exclude, site.scope)}")
        zone = site.zone(node.zone_id)
        return self.db.instances.insert(
            {"project_id": str(project["_id"]), "region_id": zone["region_id"], "zone_id": str(zone["_id"]),
             "kaktus_id": node.kaktus_id, "name": plan.name, "description": plan.description, "vcpus": plan.vcpus,
             "memory": plan.memory, "adapter_ids": list(plan.adapter_ids), "volume_ids": list(plan.volume_ids),
             "profile": plan.profile,
             "profile_id": plan.profile_id, "kompute": plan.kompute, "agent_id": "", "seed_volume_id": "",
             "local_ip": "", "os": "",
             "dns_domain": "", "dns_addresses": [], "state": "creating", "uefi": plan.uefi,
             "kmotion_enabled": plan.kmotion_enabled, "kwarantine_ids": list(plan.kwarantine_ids)},
            conflict=f"an instance named {plan.name} already exists")

    def _realize(self, project: models.Project, zone: models.Zone, instance: models.Instance,
                 undo: Undo) -> models.Instance:
        nics = self._nics(project, zone, instance)
        disks = [self.db.volumes.get(volume_id) for volume_id in instance["volume_ids"]]
        os_volumes = [v for v in disks if v["type"] == OS]
        if len(os_volumes) != 1:
            raise Unprocessable(f"an instance needs exactly one OS volume; {instance['name']} has {len(os_volumes)}")
        disks.remove(os_volumes[0])
        disks.insert(0, os_volumes[0])
        template = self.db.templates.get(os_volumes[0]["template_id"])
        local_ip = next((nic.addresses[0].split("/")[0] for nic in nics if nic.private and nic.addresses), "")
        region = self.db.regions.get(zone["region_id"])
        changes: dict[str, typing.Any] = {"os": template["os"], "local_ip": local_ip,
                                          "volume_ids": [str(v["_id"]) for v in disks]}
        # The host name, on the region's Kiwis.
        private_addresses = [nic.addresses[0].split("/")[0] for nic in nics if nic.private and nic.addresses]
        if project.get("domain") and private_addresses:
            # Written down before the Kiwis hear of it: crash recovery removes the name with the instance.
            self.db.instances.update(instance["_id"], {"dns_domain": project["domain"],
                                                       "dns_addresses": private_addresses})
            self.dns.add_host(project["domain"], zone["region_id"], instance["name"], private_addresses)
            undo.push(f"remove host {instance['name']}",
                      lambda: self.dns.remove_host(project["domain"], zone["region_id"], instance["name"]))
            changes.update(dns_domain=project["domain"], dns_addresses=private_addresses)
        # The agent inside Kawaii and Konvey VMs.
        controller_id = controller_key = ""
        if instance["profile"] in PROFILES_WITH_AGENT:
            agent = self.db.agents.insert({"name": instance["name"], "type": rpc.KONTROLLER,
                                           "description": f"Kontroller of {instance['profile']} VM {instance['name']}",
                                           "made_for": str(instance["_id"])},
                                          conflict=f"an agent named {instance['name']} already exists")
            controller_id = str(agent["_id"])
            undo.push(f"delete agent {instance['name']}", lambda: self._forget_agent(controller_id))
            controller_key = self.tokens.issue_instance_agent_key(agent)
            changes["agent_id"] = controller_id
        # The cloud-init seed.
        root_hash = self.hasher.hash(project["root_password"]) if project.get("root_password") else ""
        seed = cloudinit.Seed(
            instance_id=str(instance["_id"]), hostname=instance["name"], domain=project.get("domain", ""),
            profile=instance["profile"], region=region["name"], zone=zone["name"], local_ip=local_ip,
            metadata_uri=f"{self.public_url}/latest/meta-data", root_password_hash=root_hash,
            service_user=project.get("bootstrap_user", ""), service_user_pubkey=project.get("bootstrap_pubkey", ""),
            interfaces=nics, controller_uri=self.public_url.replace("http", "ws", 1) if controller_id else "",
            controller_agent_id=controller_id, controller_agent_token=controller_key)
        image = cloudinit.build_iso(self.templates.render(template["os"], seed))
        pool = self.pools.get(os_volumes[0]["storage_pool_id"])
        seed_volume = self.volumes.claim(str(project["_id"]), pool, f"{instance['name']}-cloudinit", "cloud-init seed",
                                         ISO, len(image), instance_id=str(instance["_id"]))
        undo.push("forget the seed", lambda: self.db.volumes.delete_many({"_id": seed_volume["_id"]}))
        seed_volume = self.volumes.realize(seed_volume, image)
        undo.push("delete the seed", lambda: self.volumes.destroy(seed_volume))
        changes["seed_volume_id"] = str(seed_volume["_id"])
        # The domain.
        kaktus = self.db.kaktuses.get(instance["kaktus_id"])
        xml = self.domain_xml(typing.cast(models.Instance, {**instance, **changes}), kaktus)
        self._kaktus_call(kaktus, rpc.kaktus.CreateInstance, {"Name": instance["name"], "XML": xml})
        undo.push(f"undefine {instance['name']}", lambda: self._undefine(kaktus, instance["name"]))
        self._kaktus_call(kaktus, rpc.kaktus.InstanceOperation,
                          {"Name": instance["name"], "Action": InstanceAction.AUTO_START})
        return self.db.instances.update(instance["_id"], {**changes, "state": "ready"})

    def domain_xml(self, instance: models.Instance, kaktus: models.Kaktus) -> str:
        """The libvirt domain of *instance* as stored (its disks, the OS one first, in their pool's Ceph cluster;
        its seed; its NICs; UEFI or BIOS) for *kaktus*, whose agent tells the architecture, machine type and
        emulator. The creation defines it; kMotion defines an existing instance on another Kaktus with it."""
        node = self.agents.call_any(kaktus["agent_ids"], rpc.kaktus.NodeCapabilities)
        disks = [self.db.volumes.get(volume_id) for volume_id in instance["volume_ids"]]
        pool = self.pools.get(disks[0]["storage_pool_id"])
        storage = libvirt_xml.Storage(pool.get("ceph_address", ""), pool.get("ceph_port", 0),
                                      pool.get("ceph_secret_uuid", ""))
        uefi = instance.get("uefi", False)
        seed = None
        if instance.get("seed_volume_id"):
            seed_volume = self.db.volumes.get(instance["seed_volume_id"])
            seed = libvirt_xml.Disk(libvirt_xml.seed_device(uefi),
                                    self.pools.get(seed_volume["storage_pool_id"])["pool"], seed_volume["name"])
        return libvirt_xml.domain_xml(
            instance["name"], instance["vcpus"], instance["memory"], node["Arch"], node["GuestMachineName"],
            node["GuestEmulator"], storage,
            [libvirt_xml.Disk(libvirt_xml.disk_device(i), self.pools.get(v["storage_pool_id"])["pool"], v["name"])
             for i, v in enumerate(disks)],
            seed, [self._bridged(adapter) for adapter in self._adapters_in_nic_order(instance)], uefi=uefi)

    # -- networking of one instance -----------------------------------------------------

    def _adapters_in_nic_order(self, instance: models.Instance) -> list[models.Adapter]:
        """The public adapter first (``ens3``), then the others in the order given."""
        adapters = [self.db.adapters.get(a) for a in instance["adapter_ids"]]
        public = [a for a in adapters if not self.db.subnets.get(a["subnet_id"])["private"]]
        if len(public) > 1:
            raise Unprocessable("an instance can have one public adapter at most")
        return public + [a for a in adapters if a not in public]

    def _nics(self, project: models.Project, zone: models.Zone,
              instance: models.Instance) -> list[cloudinit.Interface]:
        """Each NIC as cloud-init configures it (addresses, default route, DNS); :meth:`domain_xml` bridges it."""
        gateway_of_zone = project.get("zone_gateways", {}).get(str(zone["_id"]), "")
        project_subnet_ids = {entry["value"] for entry in project.get("private_subnets", [])}
        is_kawaii = instance["profile"] == "kawaii"
        nics = []
        for index, adapter in enumerate(self._adapters_in_nic_order(instance)):
            subnet = self.db.subnets.get(adapter["subnet_id"])
            prefix = ipaddress.ip_network(subnet["cidr"]).prefixlen
            addresses = [f"{address}/{prefix}" for address in adapter.get("addresses", [])]
            gateway = ""
            if not subnet["private"]:
                gateway = subnet["gateway"] if addresses else ""
            elif str(subnet["_id"]) in project_subnet_ids and not is_kawaii:
                gateway = gateway_of_zone  # the zone's Kawaii virtual address
            first_two = index < 2
            nics.append(cloudinit.Interface(
                device=f"ens{3 + index}", mac=adapter["mac"], private=subnet["private"], addresses=addresses,
                gateway=gateway if first_two or not is_kawaii else "",
                dns=subnet.get("dns", "") if first_two else "",
                domain=project.get("domain", "") if first_two else "",
                routes=list(subnet.get("extra_routes", [])) if first_two and gateway else []))
        return nics

    def _bridged(self, adapter: models.Adapter) -> libvirt_xml.Nic:
        """The NIC of *adapter* as the domain bridges it: on its virtual network's bridge and VLAN."""
        vnet = self.db.vnets.get(self.db.subnets.get(adapter["subnet_id"])["vnet_id"])
        return libvirt_xml.Nic(adapter["mac"], vnet["interface"], vnet["vlan"])

    # -- agents ------------------------------------------------------------------------

    def _kaktus_call(self, kaktus: models.Kaktus, method: rpc.Method[rpc.P, rpc.R], params: rpc.Params[rpc.P]) -> rpc.R:
        return self.agents.call_any(kaktus["agent_ids"], method, params)

    def _undefine(self, kaktus: models.Kaktus, name: str) -> None:
        try:
            self._kaktus_call(kaktus, rpc.kaktus.InstanceOperation,
                              {"Name": name, "Action": InstanceAction.HARD_SHUTDOWN})
        except AgentCallFailed:
            pass  # already off
        try:
            self._kaktus_call(kaktus, rpc.kaktus.DeleteInstance, {"Name": name})
        except AgentCallFailed as exc:
            log.warning("domain %s: the Kaktus could not undefine it (%s); forgetting it", name, exc.reason)

    def _forget_agent(self, agent_id: str) -> None:
        self.tokens.delete_for("agent", agent_id)
        self.db.agents.delete_many({"_id": self.db.agents.get(agent_id)["_id"]})
        self.agents.disconnect(agent_id, "instance deleted")

    def on_controllers_connected(self, agent_ids: list[str]) -> None:
        """The Kontrollers of Kawaii or Konvey VMs connected (the VMs booted, or came back): have each configure
        its VM from its metadata, a few at a time."""
        run_each_concurrently(agent_ids, self._reload_controller, lambda agent_id: f"Kontroller {agent_id}")

    def _reload_controller(self, agent_id: str) -> None:
        try:
            self.agents.call(agent_id, rpc.kontroller.Reload)
        except AgentError as exc:
            log.info("Kontroller %s not reloaded on connect: %s", agent_id, exc.reason)

    def kaktus_of(self, instance: models.Instance) -> models.Kaktus:
        return self.db.kaktuses.get(instance["kaktus_id"])

    # -- operations ------------------------------------------------------------------------

    def _ready(self, instance_id: str) -> models.Instance:
        instance = self.get(instance_id)
        state = instance.get("state")
        if state == CREATING:
            raise Unprocessable(f"instance {instance['name']} is still being created")
        if state == UPDATING:
            raise Conflict(f"instance {instance['name']} is being changed")
        if state != READY:
            raise Conflict(f"instance {instance['name']} is being deleted, or its creation failed: delete it")
        return instance

    # Power operations, state reads and the console run in the instance's owner, which a kMotion holds for its
    # whole move and a resize for its agents' work: none of them reaches a node the instance is leaving (a guest
    # started there behind a move's back would run twice).

    def power(self, instance_id: str, action: str) -> None:
        def power() -> None:
            instance = self._ready(instance_id)
            self._kaktus_call(self.kaktus_of(instance), rpc.kaktus.InstanceOperation,
                              {"Name": instance["name"], "Action": POWER_ACTIONS[action]})

        self.serializer.run(f"instance:{instance_id}", power)

    def state(self, instance_id: str) -> dict[str, str]:
        def state() -> dict[str, str]:
            instance = self._ready(instance_id)
            state = self._kaktus_call(self.kaktus_of(instance), rpc.kaktus.GetInstanceState,
                                      {"Name": instance["name"]})
            return {"state": state["State"], "reason": state["Reason"]}

        return self.serializer.run(f"instance:{instance_id}", state)

    def remote_connection(self, instance_id: str) -> dict[str, str]:
        def remote_connection() -> dict[str, str]:
            instance = self._ready(instance_id)
            url = self._kaktus_call(self.kaktus_of(instance), rpc.kaktus.GetInstanceRemoteConnectionUrl,
                                    {"Name": instance["name"]})
            return {"url": url["URL"]}

        return self.serializer.run(f"instance:{instance_id}", remote_connection)

    def update(self, instance_id: str, fields: dict[str, typing.Any]) -> models.Instance:
        instance = self._ready(instance_id)
        if fields["name"] != instance["name"]:
            raise Unprocessable("an instance cannot be renamed: its name is its domain's name on the Kaktus")
        for given, current, label in ((fields.get("adapter_ids"), instance["adapter_ids"], "adapters"),
                                      (fields.get("volume_ids"), instance["volume_ids"], "volumes")):
            if given is not None and sorted(given) != sorted(current):
                raise Unprocessable(f"an instance's {label} cannot be changed after its creation")
        self.resize(instance, fields["vcpus"], fields["memory"])
        return self.db.instances.update(instance_id, {"description": fields.get("description", ""),
                                                      "kmotion_enabled": fields.get("kmotion_enabled", True)})

    def resize(self, instance: models.Instance, vcpus: int, memory: int) -> models.Instance:
        """New vCPUs and memory, in the instance's owner (no kMotion or power operation meanwhile): claim (quota
        and Kaktus room, in the owners of the project and the zone), then redefine and restart the domain with no
        shared owner held, then commit, or put the old size back."""
        if vcpus <= 0 or memory <= 0:
            raise Unprocessable("an instance needs at least one vCPU and some memory")
        if (vcpus, memory) == (instance["vcpus"], instance["memory"]):
            return instance
        return self.serializer.run(f"instance:{instance['_id']}", self._resize, str(instance["_id"]), vcpus, memory)

    def _resize(self, instance_id: str, vcpus: int, memory: int) -> models.Instance:
        instance = self._ready(instance_id)  # read again in the owner: where it is now
        if (vcpus, memory) == (instance["vcpus"], instance["memory"]):
            return instance
        kaktus = self.kaktus_of(instance)
        old = {"vcpus": instance["vcpus"], "memory": instance["memory"]}

        def claim() -> models.Instance:
            current = self._ready(instance_id)
            if (current["kaktus_id"], current["zone_id"]) != (str(kaktus["_id"]), instance["zone_id"]):
                raise Conflict(f"instance {current['name']} moved meanwhile: try again")
            node = next(n for n in self.nodes(kaktus["zone_id"]) if n.kaktus_id == str(kaktus["_id"]))
            node.vcpus -= current["vcpus"]
            node.memory -= current["memory"]
            if not node.has_room(vcpus, memory):  # a node in maintenance keeps its instances, at any size
                raise QuotaExceeded(f"Kaktus {kaktus['name']} has no room for {vcpus} vCPU(s) and this memory")
            # The larger of the two sizes is held until the agent is done (quota and room alike).
            return self.db.instances.update(instance_id, {"vcpus": max(vcpus, current["vcpus"]),
                                                          "memory": max(memory, current["memory"]),
                                                          "state": UPDATING, "previous": old})

        demand = {"vcpus": max(0, vcpus - instance["vcpus"]), "memory": max(0, memory - instance["memory"])}
        self.projects.reserve(instance["project_id"], demand,
                              lambda: self.serializer.run(f"zone:{instance['zone_id']}", claim))
        try:
            xml = self._kaktus_call(kaktus, rpc.kaktus.GetInstance,
                                    {"Name": instance["name"], "Migratable": True})["XML"]
            self._kaktus_call(kaktus, rpc.kaktus.UpdateInstance, {"Name": instance["name"],
                                                                  "XML": libvirt_xml.set_resources(xml, vcpus, memory)})
        except BaseException:
            self.db.instances.update(instance_id, {**old, "state": READY}, extra={"$unset": {"previous": ""}})
            raise
        updated = self.db.instances.update(instance_id, {"vcpus": vcpus, "memory": memory, "state": READY},
                                           extra={"$unset": {"previous": ""}})
        # The new definition applies from the next boot.
        for action in (InstanceAction.SOFT_SHUTDOWN, InstanceAction.HARD_SHUTDOWN, InstanceAction.START):
            try:
                self._kaktus_call(kaktus, rpc.kaktus.InstanceOperation, {"Name": instance["name"], "Action": action})
            except AgentCallFailed as exc:
                log.info("instance %s restart step %s: %s", instance["name"], action, exc.reason)
        return updated

    def delete(self, instance_id: str) -> None:
        instance = self.get(instance_id)
        if self.db.komputes.exists({"instance_id": instance_id}):
            raise Conflict(f"instance {instance['name']} belongs to a Kompute: delete the Kompute")
        self.destroy(instance)

    def destroy(self, instance: models.Instance) -> None:
        """Undefine the domain, remove its seed, agent and host name, then the document; in the instance's
        owner, so that a second deletion waits for this one (and finds nothing left).

        The Kaktus must be reachable (otherwise the domain would outlive its record):
        an offline agent fails the deletion with nothing changed. Adapters and volumes stay.
        """
        self.serializer.run(f"instance:{instance['_id']}", self._destroy, str(instance["_id"]))

    def _destroy(self, instance_id: str) -> None:
        instance = self.db.instances.find_one({"_id": ObjectId(instance_id)})
        if instance is None:
            return  # deleted meanwhile
        if instance.get("state") == UPDATING:
            raise Conflict(f"instance {instance['name']} is being changed")
        self.check_reachable(instance)
        # From here the instance is on its way out: nothing uses or changes it, and crash recovery finishes it.
        self.db.instances.update(instance_id, {"state": DELETING})
        if instance.get("state") != CREATING:
            self._undefine(self.kaktus_of(instance), instance["name"])
        if instance.get("seed_volume_id"):
            try:
                self.volumes.destroy(self.db.volumes.get(instance["seed_volume_id"]))
            except NotFound:
                pass
        if instance.get("agent_id"):
            try:
                self._forget_agent(instance["agent_id"])
            except NotFound:
                pass
        if instance.get("dns_domain"):
            self.dns.remove_host(instance["dns_domain"], instance["region_id"], instance["name"])
        self.db.instances.delete(instance_id)

    def destroy_leftover(self, instance: models.Instance) -> None:
        self.serializer.run(f"instance:{instance['_id']}", self._destroy_leftover, instance)

    def _destroy_leftover(self, instance: models.Instance) -> None:
        """Take back whatever a creation or deletion cut short by a crash left of *instance*, from what its
        documents say: the domain, the volumes and adapters made for it, its Kontroller agent, its host name.
        Every step tolerates what is already gone; AgentUnavailable leaves everything for a later try."""
        instance_id = str(instance["_id"])
        self.check_reachable(instance)
        self._undefine(self.kaktus_of(instance), instance["name"])
        for volume in self.db.volumes.find({"instance_id": instance_id}):
            self.volumes.destroy(volume)
        self.db.adapters.delete_many({"made_for": instance_id})
        for agent in self.db.agents.find({"made_for": instance_id}, projection={"_id": 1}):
            self._forget_agent(str(agent["_id"]))
        if instance.get("dns_domain"):
            self.dns.remove_host(instance["dns_domain"], instance["region_id"], instance["name"])
        self.db.instances.delete_many({"_id": instance["_id"]})

    def check_reachable(self, instance: models.Instance) -> None:
        """AgentUnavailable unless the agents that deleting *instance* needs are connected."""
        holders: list[tuple[str, models.Kaktus | models.StoragePool]] = [("Kaktus", self.kaktus_of(instance))]
        for volume in self.db.volumes.find({"instance_id": str(instance["_id"])}):
            holders.append(("storage pool", self.pools.get(volume["storage_pool_id"])))
        for kind, holder in holders:
            if not self.agents.connected_ids(holder["agent_ids"]):
                raise AgentUnavailable(f"{kind} {holder['name']} has no connected agent: nothing was deleted")
