"""Konvey: a project's L4 load balancer.

A Konvey has one VM, or two in distinct zones (or on distinct Kaktus nodes of one zone)
with ``failover``, sharing one private virtual address mastered by the first VM.
"""

from __future__ import annotations

import ipaddress
import logging
import typing

from bson import ObjectId

from kahuna import port_lists
from kahuna.errors import Conflict, Unprocessable
from kahuna.services._appliances import (
    PROTOCOLS,
    ApplianceService,
    checked_address,
    one_of,
)
from kahuna.services._common import CREATING, DELETING, READY, insert_owned, instance_ids_in_zone, owned_ids
from kahuna.services._undo import Undo
from kahuna.services.names import check_name
from kahuna.storage import models

log = logging.getLogger(__name__)



class KonveyService(ApplianceService):
    collection = "konvey"

    def list_ids(self, project_id: str | None = None, region_id: str | None = None,
                 zone_id: str | None = None) -> list[str]:
        """The project's Konveys, or those of a region, or those with a VM in a zone."""
        if region_id is not None:
            self.db.regions.get(region_id)
            return owned_ids(self.db.konveys, self.projects, project_id, region_id=region_id)
        if zone_id is not None:
            vms = self.db.komputes.ids({"instance_id": {"$in": instance_ids_in_zone(self.db, zone_id)}})
            return owned_ids(self.db.konveys, self.projects, project_id, kompute_ids={"$in": vms})
        return owned_ids(self.db.konveys, self.projects, project_id)

    def get(self, konvey_id: str) -> models.Konvey:
        return self.db.konveys.get(konvey_id)

    @staticmethod
    def _endpoints(endpoints: list[dict[str, typing.Any]]) -> list[dict[str, typing.Any]]:
        checked = []
        for endpoint in endpoints:
            backends = endpoint["backends"]
            checked.append({"name": endpoint["name"], "port": port_lists.check_port(endpoint["port"]),
                            "protocol": one_of(endpoint.get("protocol"), PROTOCOLS, "tcp", "protocol"),
                            "backends": {"hosts": [str(checked_address(h)) for h in backends["hosts"]],
                                         "port": port_lists.check_port(backends["port"])}})
        names = [e["name"] for e in checked]
        if len(set(names)) != len(names):
            raise Unprocessable("endpoint names must be unique")
        return checked

    def _zone_scores(self, region_id: str) -> list[tuple[int, str, models.Zone]]:
        """The zones of the region, least loaded first; those where no Kaktus can take a VM (every one in
        maintenance, or away) are left out, unless no zone is left (the election then says why)."""
        scored: list[tuple[int, str, models.Zone]] = []
        closed: list[tuple[int, str, models.Zone]] = []
        for zone in self.db.zones.find({"region_id": region_id}):
            nodes = self.instances.nodes(str(zone["_id"]))
            load = sum(n.score("") for n in nodes)
            usable = any(n.online and not n.maintenance for n in nodes)
            (scored if usable else closed).append((load, zone["name"], zone))
        return sorted(scored or closed, key=lambda item: (item[0], item[1]))

    def create(self, project_id: str, region_id: str | None, zone_id: str | None,
               fields: dict[str, typing.Any]) -> models.Konvey:
        """In a region (VMs spread over its least loaded zones), or in one zone (VMs on distinct Kaktus)."""
        if zone_id is not None:
            zone = self.db.zones.get(zone_id)
            region_id = zone["region_id"]
            project, region = self._project_region(project_id, region_id)
            zones = [zone]
        elif region_id is None:
            raise ValueError("a Konvey is made in a region or in a zone")
        else:
            project, region = self._project_region(project_id, region_id)
            zones = [z for _, _, z in self._zone_scores(region_id)]
            if not zones:
                raise Unprocessable(f"region {region['name']} has no zone")
        count = 2 if fields.get("failover", True) else 1
        placements = (zones * count)[:count]
        endpoints = self._endpoints(fields["endpoints"])
        name = check_name(fields.get("name") or project["name"], "Konvey")
        for index, zone in enumerate(placements, 1):  # the VMs' names
            check_name(f"konvey-{name}-{zone['name']}-{index}", "Konvey VM")
        private = self.projects.private_subnet(project, region_id)
        self._image(region_id)
        konvey = insert_owned(
            self.projects.serializer, self.db, project_id, self.db.konveys,
            {"region_id": region_id, "name": name,
             "description": fields.get("description", ""), "failover": count > 1, "endpoints": endpoints,
             "kompute_ids": [], "vip": "", "vip_adapter_id": "", "vrrp_id": 0, "mask": 0, "state": CREATING},
            conflict=f"project {project['name']} already has a Konvey named {name}")
        konvey_id = str(konvey["_id"])
        with Undo() as undo:
            undo.push("forget the Konvey", lambda: self.db.konveys.delete_many({"_id": konvey["_id"]}))
            vip = self._vip_adapter(str(private["_id"]), f"konvey-{name}-vip", konvey_id, undo)
            vrrp_id = self._vrrp_id(project_id, undo)
            kompute_ids: list[str] = []
            used_kaktuses: set[str] = set()
            for index, zone in enumerate(placements, 1):
                vm = self._vm(project, zone, f"konvey-{name}-{zone['name']}-{index}", "konvey", konvey_id, undo,
                              avoid=frozenset(used_kaktuses))
                kompute_ids.append(str(vm["_id"]))
                used_kaktuses.add(self.db.instances.get(vm["instance_id"])["kaktus_id"])
            return self.db.konveys.update(konvey["_id"], {
                "kompute_ids": kompute_ids, "vip": vip["addresses"][0], "vip_adapter_id": str(vip["_id"]),
                "vrrp_id": vrrp_id, "mask": ipaddress.ip_network(private["cidr"]).prefixlen, "state": "ready"})

    def update(self, konvey_id: str, fields: dict[str, typing.Any]) -> models.Konvey:
        konvey = self.get(konvey_id)
        if fields.get("name", konvey["name"]) != konvey["name"]:
            raise Unprocessable("a Konvey cannot be renamed: its VMs and virtual IP adapter are named after it")
        changes: dict[str, typing.Any] = {"endpoints": self._endpoints(fields["endpoints"]),
                                          "description": fields.get("description", "")}
        konvey = self.db.konveys.update(konvey_id, changes)
        self._reload(konvey["kompute_ids"])
        return konvey

    def delete(self, konvey_id: str) -> None:
        self.projects.serializer.run(f"konvey:{konvey_id}", self._delete, konvey_id)

    def _delete(self, konvey_id: str) -> None:
        konvey = self.get(konvey_id)
        if konvey.get("state", READY) == CREATING:
            raise Conflict("the Konvey is still being created")
        # From here recovery finishes the deletion if the process dies half-way.
        konvey = self.db.konveys.update(konvey_id, {"state": DELETING})
        self._destroy_vms(konvey["kompute_ids"])
        if konvey.get("vip_adapter_id"):
            self.db.adapters.delete_many({"_id": ObjectId(konvey["vip_adapter_id"])})
        if konvey.get("vrrp_id"):
            self.projects.release_vrrp_ids(konvey["project_id"], [konvey["vrrp_id"]])
        self.db.konveys.delete(konvey_id)
