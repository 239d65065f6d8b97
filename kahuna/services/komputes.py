"""Komputes: managed VMs. One instance with an OS disk (a clone of a template), an
optional data disk, a public NIC (with a public address when asked) and a NIC on the
project's private subnet, all made and taken back together; in a zone, or anywhere in a
region (the zone follows from the Kaktus elected)."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from bson import ObjectId

from kahuna.errors import Unprocessable
from kahuna.services._common import instance_ids_in_zone, owned_ids
from kahuna.services._undo import Undo
from kahuna.services.instances import InstanceService, NewAdapter, NewVolume, Plan, Site, creation_options
from kahuna.services.names import check_name
from kahuna.services.projects import ProjectService
from kahuna.services.volumes import OS, RAW, VolumeService
from kahuna.storage import Database, models


@dataclass(frozen=True)
class KomputeDetails:
    """A Kompute with what its API model shows of its instance: disks (OS first) and private address."""

    kompute: models.Kompute
    instance: models.Instance
    disk_sizes: list[int]
    private_ip: str


class KomputeService:
    def __init__(self, db: Database, projects: ProjectService, instances: InstanceService, volumes: VolumeService):
        self.db = db
        self.projects = projects
        self.instances = instances
        self.volumes = volumes

    def list_ids(self, project_id: str | None = None, zone_id: str | None = None,
                 region_id: str | None = None) -> list[str]:
        """The project's Komputes, or those of one of its zones or regions (where their instance is)."""
        if zone_id is not None:
            return owned_ids(self.db.komputes, self.projects, project_id,
                             instance_id={"$in": instance_ids_in_zone(self.db, zone_id)})
        if region_id is not None:
            self.db.regions.get(region_id)
            return owned_ids(self.db.komputes, self.projects, project_id,
                             instance_id={"$in": self.db.instances.ids({"region_id": region_id})})
        return owned_ids(self.db.komputes, self.projects, project_id)

    def get(self, kompute_id: str) -> models.Kompute:
        return self.db.komputes.get(kompute_id)

    def details(self, kompute: models.Kompute) -> KomputeDetails:
        """Read from the instance and its disks."""
        instance = self.db.instances.get(kompute["instance_id"])
        disk_sizes = [self.db.volumes.get(v)["size"] for v in instance["volume_ids"]]
        private_ip = ""
        for adapter_id in instance["adapter_ids"]:
            adapter = self.db.adapters.get(adapter_id)
            if self.db.subnets.get(adapter["subnet_id"])["private"] and adapter.get("addresses"):
                private_ip = adapter["addresses"][0]
                break
        return KomputeDetails(kompute, instance, disk_sizes, private_ip)

    def public_subnet(self, region_id: str) -> models.Subnet:
        """The default subnet of the region's public virtual network."""
        for vnet in self.db.vnets.find({"region_id": region_id, "private": False}, sort=[("_id", 1)]):
            subnet_id = vnet.get("defaults", {}).get("subnet_id")
            if subnet_id:
                return self.db.subnets.get(subnet_id)
        region = self.db.regions.get(region_id)
        raise Unprocessable(f"region {region['name']} has no public subnet (a public virtual network with a subnet)")

    def plan(self, project: models.Project, region_id: str, pool: models.StoragePool, template: models.Template,
             name: str,
             description: str, vcpus: int, memory: int, disk: int, data_disk: int, public: bool,
             profile: str = "", profile_id: str = "", peering_subnet_ids: typing.Sequence[str] = (),
             avoid_kaktus_ids: frozenset[str] = frozenset(), **options: typing.Any) -> Plan:
        """What a Kompute of region *region_id* is made of; *options*: :func:`creation_options`."""
        if disk <= 0:
            raise Unprocessable("a Kompute's disk size must be positive (bytes)")
        private = self.projects.private_subnet(project, region_id)
        public_subnet = self.public_subnet(region_id)
        volumes = [NewVolume(f"{name}-os", OS, disk, pool, template)]
        if data_disk:
            volumes.append(NewVolume(f"{name}-data", RAW, data_disk, pool))
        adapters = [NewAdapter(f"{name}-public-adapter", str(public_subnet["_id"]), public),
                    NewAdapter(f"{name}-private-adapter", str(private["_id"]), True)]
        adapters += [NewAdapter(f"{name}-peering-adapter-{n}", subnet_id, True)
                     for n, subnet_id in enumerate(peering_subnet_ids)]
        return Plan(name, description, vcpus, memory, new_adapters=adapters, new_volumes=volumes, profile=profile,
                    profile_id=profile_id, avoid_kaktus_ids=avoid_kaktus_ids, kompute=True, **options)

    def create(self, project_id: str, zone_id: str, fields: dict[str, typing.Any], pool_id: str | None,
               template_id: str | None, public: bool) -> models.Kompute:
        """A Kompute in a zone."""
        check_name(fields["name"], "Kompute")  # its instance's, hence its domain's and host's name
        project = self.projects.get(project_id)
        site = Site.of_zone(self.instances.zone_of_project(project, zone_id))
        return self._create(project, site, fields, pool_id, template_id, public)

    def create_in_region(self, project_id: str, region_id: str, fields: dict[str, typing.Any], pool_id: str | None,
                         template_id: str | None, public: bool) -> models.Kompute:
        """A Kompute anywhere in a region: on the least loaded Kaktus of its zones that can take it."""
        check_name(fields["name"], "Kompute")
        project = self.projects.get(project_id)
        site = self.instances.region_of_project(project, region_id)
        return self._create(project, site, fields, pool_id, template_id, public)

    def _create(self, project: models.Project, site: Site, fields: dict[str, typing.Any], pool_id: str | None,
                template_id: str | None, public: bool) -> models.Kompute:
        pool = self.volumes.pool_of_region(site.region_id, pool_id)
        template = self.volumes.template_of_pool(pool, template_id)
        plan = self.plan(project, site.region_id, pool, template, fields["name"], fields.get("description", ""),
                         fields["vcpus"], fields["memory"], fields["disk"], fields.get("data_disk") or 0, public,
                         **creation_options(fields))
        return self.build(project, site, plan)

    def build(self, project: models.Project, site: Site, plan: Plan, undo: Undo | None = None) -> models.Kompute:
        """The Kompute of *plan* on a Kaktus of *site*: its instance, then its record (taken back with the rest
        on failure)."""
        with Undo() as own:
            undo = undo or own
            instance = self.instances.provision(project, site, plan, undo)
            kompute = self.db.komputes.insert(
                {"project_id": str(project["_id"]), "instance_id": str(instance["_id"]), "name": instance["name"],
                 "profile": plan.profile, "profile_id": plan.profile_id},
                conflict=f"a Kompute named {plan.name} already exists")
            undo.push(f"forget Kompute {plan.name}", lambda: self.db.komputes.delete_many({"_id": kompute["_id"]}))
            return kompute

    def update(self, kompute_id: str, fields: dict[str, typing.Any]) -> models.Kompute:
        kompute = self.get(kompute_id)
        instance = self.db.instances.get(kompute["instance_id"])
        if fields["name"] != instance["name"]:
            raise Unprocessable("a Kompute cannot be renamed: its name is its domain's name on the Kaktus")
        disks = [self.db.volumes.get(v) for v in instance["volume_ids"]]
        if fields["disk"] < disks[0]["size"] or (len(disks) > 1 and (fields.get("data_disk") or 0) < disks[1]["size"]):
            raise Unprocessable("a Kompute's disks cannot shrink")
        if len(disks) == 1 and fields.get("data_disk"):
            raise Unprocessable("a data disk can only be added when the Kompute is created")
        self.volumes.grow(disks[0], fields["disk"])
        if len(disks) > 1:
            self.volumes.grow(disks[1], fields["data_disk"])
        self.instances.resize(instance, fields["vcpus"], fields["memory"])
        self.db.instances.update(instance["_id"], {"description": fields.get("description", ""),
                                                   "kmotion_enabled": fields.get("kmotion_enabled", True)})
        return kompute

    def delete(self, kompute_id: str) -> None:
        kompute = self.get(kompute_id)
        if kompute.get("profile"):
            raise Unprocessable(f"this Kompute is a VM of a {kompute['profile'].capitalize()}: delete that instead")
        self.destroy(kompute)

    def destroy(self, kompute: models.Kompute) -> None:
        """The instance (domain, seed, agent, host name), then its disks and adapters, then the record; in the
        Kompute's owner (a second deletion waits, then finds nothing).

        A Kompute whose instance is already gone (a deletion cut short) loses what is left of it."""
        self.instances.serializer.run(f"kompute:{kompute['_id']}", self._destroy, kompute["_id"])

    def _destroy(self, kompute_id: ObjectId) -> None:
        kompute = self.db.komputes.find_one({"_id": kompute_id})
        if kompute is None:
            return  # deleted meanwhile
        instance = self.db.instances.find_one({"_id": ObjectId(kompute["instance_id"])}) \
            if ObjectId.is_valid(kompute.get("instance_id", "")) else None
        if instance is not None:
            self.instances.destroy(instance)
            self.db.adapters.delete_many({"_id": {"$in": [ObjectId(a) for a in instance["adapter_ids"]]}})
        for volume in self.db.volumes.find({"instance_id": kompute["instance_id"]}):
            self.volumes.destroy(volume)
        self.db.adapters.delete_many({"made_for": kompute["instance_id"]})
        self.db.komputes.delete_many({"_id": kompute["_id"]})

    def destroy_leftover(self, kompute: models.Kompute) -> None:
        """Crash recovery: what is left of a Kompute whose creation or deletion was cut short."""
        def destroy() -> None:
            instance = self.db.instances.find_one({"_id": ObjectId(kompute["instance_id"])}) \
                if ObjectId.is_valid(kompute.get("instance_id", "")) else None
            if instance is not None:
                self.instances.destroy_leftover(instance)
            self._destroy(kompute["_id"])

        self.instances.serializer.run(f"kompute:{kompute['_id']}", destroy)
