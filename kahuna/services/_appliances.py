"""What Kawaii and Konvey share: network appliances made of Komputes whose Kontroller agent
configures them from the instance metadata (rules checked here, VMs, virtual addresses, VRRP ids)."""

from __future__ import annotations

import ipaddress
import logging
import typing

from bson import ObjectId

from kahuna import port_lists, rpc
from kahuna.errors import AgentError, Unprocessable
from kahuna.rpc import AgentPlane
from kahuna.services._undo import Undo
from kahuna.services.instances import InstanceService, Site
from kahuna.services.komputes import KomputeService
from kahuna.services.networks import AdapterService
from kahuna.services.projects import ProjectService
from kahuna.services.volumes import VolumeService
from kahuna.storage import Database, models

log = logging.getLogger(__name__)

GIB = 1024**3
VM_VCPUS, VM_MEMORY, VM_DISK = 1, 1 * GIB, 16 * GIB
PROTOCOLS = ("tcp", "udp")


def one_of(value: str | None, allowed: tuple[str, ...], default: str, what: str) -> str:
    value = value or default
    if value not in allowed:
        raise Unprocessable(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def checked_network(text: str | None, what: str) -> str:
    try:
        return str(ipaddress.ip_network(text or "0.0.0.0/0", strict=False))
    except ValueError:
        raise Unprocessable(f"{what} {text!r} is not an address or network") from None

def checked_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise Unprocessable(f"{text!r} is not an IP address") from None


def firewall_rules(rules: list[dict[str, typing.Any]] | None, peer_key: str) -> list[dict[str, str]]:
    return [{peer_key: checked_network(rule.get(peer_key), peer_key),
             "protocol": one_of(rule.get("protocol"), PROTOCOLS, "tcp", "protocol"),
             "ports": port_lists.check_port_list(rule["ports"])} for rule in rules or []]


def forward_rules(rules: list[dict[str, typing.Any]] | None, forced_ports: str = "") -> list[dict[str, str]]:
    return [{"protocol": one_of(rule.get("protocol"), PROTOCOLS, "tcp", "protocol"),
             "ports": port_lists.check_port_list(rule["ports"])} for rule in rules or []] + (
        [{"protocol": "tcp", "ports": forced_ports}] if forced_ports else [])


class ApplianceService:
    """What Kawaii and Konvey both build on."""

    #: The collection of the appliance's documents (and the prefix of its owner keys).
    collection: typing.ClassVar[str]

    def __init__(self, db: Database, agents: AgentPlane, projects: ProjectService, instances: InstanceService,
                 komputes: KomputeService, volumes: VolumeService, adapters: AdapterService):
        self.db = db
        self.agents = agents
        self.projects = projects
        self.instances = instances
        self.komputes = komputes
        self.volumes = volumes
        self.adapters = adapters

    def _project_region(self, project_id: str, region_id: str) -> tuple[models.Project, models.Region]:
        project = self.projects.get(project_id)
        region = self.db.regions.get(region_id)
        if region_id not in project.get("region_ids", []):
            raise Unprocessable(f"project {project['name']} is not in region {region['name']}")
        return project, region

    def _image(self, region_id: str) -> tuple[models.StoragePool, models.Template]:
        pool = self.volumes.pool_of_region(region_id, None)
        return pool, self.volumes.template_of_pool(pool, None)

    def _vm(self, project: models.Project, zone: models.Zone, name: str, profile: str, profile_id: str, undo: Undo,
            peering_subnet_ids: typing.Sequence[str] = (), avoid: frozenset[str] = frozenset()) -> models.Kompute:
        """A VM of the appliance in *zone*, on a Kaktus out of maintenance (and not in *avoid*)."""
        pool, template = self._image(zone["region_id"])
        plan = self.komputes.plan(project, zone["region_id"], pool, template, name, f"{profile} VM", VM_VCPUS,
                                  VM_MEMORY, VM_DISK, 0, False, profile, profile_id, peering_subnet_ids, avoid)
        return self.komputes.build(project, Site.of_zone(zone), plan, undo)

    def _vip_adapter(self, subnet_id: str, name: str, made_for: str, undo: Undo) -> models.Adapter:
        adapter = self.adapters.create(subnet_id, {"name": name, "description": "virtual address"}, assign_ip=True,
                                       made_for=made_for)
        undo.push(f"delete adapter {name}", lambda: self.db.adapters.delete_many({"_id": adapter["_id"]}))
        return adapter

    def _vrrp_id(self, project_id: str, undo: Undo) -> int:
        vrrp_id = self.projects.allocate_vrrp_id(project_id)
        undo.push(f"release VRRP id {vrrp_id}", lambda: self.projects.release_vrrp_ids(project_id, [vrrp_id]))
        return vrrp_id

    def _reload(self, kompute_ids: typing.Iterable[str]) -> None:
        """Have each VM's Kontroller re-read its metadata (a VM that is away reloads when it reconnects)."""
        for kompute_id in kompute_ids:
            instance = self.db.instances.get(self.db.komputes.get(kompute_id)["instance_id"])
            try:
                self.agents.call(instance["agent_id"], rpc.kontroller.Reload)
            except AgentError as exc:
                log.info("Kontroller of %s not reloaded: %s", instance["name"], exc.reason)

    def destroy_leftover(self, service: models.Kawaii | models.Konvey) -> None:
        """Crash recovery: a Kawaii or Konvey whose creation or deletion was cut short. Its VMs are the
        Komputes made for it; its virtual addresses, the adapters made for it; its VRRP ids are given back
        by the caller, from what the project's live services still use."""
        self.projects.serializer.run(f"{self.collection}:{service['_id']}", self._destroy_leftover, service)

    def _destroy_leftover(self, service: models.Kawaii | models.Konvey) -> None:
        service_id = str(service["_id"])
        for kompute in self.db.komputes.find({"profile_id": service_id}):
            self.komputes.destroy_leftover(kompute)
        self.db.adapters.delete_many({"made_for": service_id})
        self.db.db[self.collection].delete_many({"_id": service["_id"]})

    def _destroy_vms(self, kompute_ids: list[str]) -> None:
        komputes = self.db.komputes.find({"_id": {"$in": [ObjectId(k) for k in kompute_ids]}})
        for kompute in komputes:  # every agent first, so that nothing is half deleted
            instance = self.db.instances.find_one({"_id": ObjectId(kompute["instance_id"])})
            if instance is not None:
                self.instances.check_reachable(instance)
        for kompute in komputes:
            self.komputes.destroy(kompute)
