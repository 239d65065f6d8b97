"""Kawaii: a project's Internet gateway in a region, with its IPsec tunnels.

A Kawaii has one VM per zone of its region. Each zone has a public virtual address
(an adapter on the region's public subnet) and the project's gateway address of that
zone; both are VRRP virtual addresses with one router id per zone, mastered
(priority 150) by the VM of that zone.
"""

from __future__ import annotations

import ipaddress
import logging
import typing
from dataclasses import dataclass

from bson import ObjectId

from kahuna import port_lists
from kahuna.errors import Conflict, NotFound, Unprocessable
from kahuna.services._appliances import (
    PROTOCOLS,
    ApplianceService,
    checked_address,
    checked_network,
    firewall_rules,
    forward_rules,
    one_of,
)
from kahuna.services._common import CREATING, DELETING, READY, insert_owned, owned_ids
from kahuna.services._undo import Undo
from kahuna.services.names import check_name
from kahuna.storage import models

log = logging.getLogger(__name__)

CEPH_PORTS = "111,2049,3300,6789,6800-7568"
POLICIES = ("accept", "drop")
IPSEC_DEFAULTS = {"dpd_timeout_action": "restart", "dpd_timeout": "240s", "start_action": "start",
                  "rekey_time": "2h", "phase1_lifetime": "1h", "phase2_lifetime": "1h"}



@dataclass(frozen=True)
class KawaiiDetails:
    """A Kawaii with the address of each zone's VM in each VPC peering subnet: subnet id -> zone name ->
    address."""

    kawaii: models.Kawaii
    peering_addresses: dict[str, dict[str, str]]

class KawaiiService(ApplianceService):
    collection = "kawaii"

    def list_ids(self, project_id: str | None = None, region_id: str | None = None) -> list[str]:
        """The project's Kawaiis, or the one of a region."""
        if region_id is not None:
            self.db.regions.get(region_id)
            return owned_ids(self.db.kawaiis, self.projects, project_id, region_id=region_id)
        return owned_ids(self.db.kawaiis, self.projects, project_id)

    def get(self, kawaii_id: str) -> models.Kawaii:
        return self.db.kawaiis.get(kawaii_id)

    @staticmethod
    def _rules(fields: dict[str, typing.Any]) -> dict[str, typing.Any]:
        firewall = fields.get("firewall") or {}
        return {
            "firewall": {"ingress": firewall_rules(firewall.get("ingress"), "source"),
                         "egress_policy": one_of(firewall.get("egress_policy"), POLICIES, "accept", "egress_policy"),
                         "egress": firewall_rules(firewall.get("egress"), "destination")},
            "dnat": [{"destination": str(checked_address(rule["destination"])),
                      "protocol": one_of(rule.get("protocol"), PROTOCOLS, "tcp", "protocol"),
                      "ports": port_lists.check_port_list(rule["ports"])} for rule in fields.get("dnat") or []],
        }

    def _peerings(self, project: models.Project, peerings: list[dict[str, typing.Any]] | None) -> list[dict[str,
                  typing.Any]]:
        checked = []
        own = {entry["value"] for entry in project.get("private_subnets", [])}
        for peering in peerings or []:
            subnet = self.db.subnets.get(peering["subnet"]) if ObjectId.is_valid(peering["subnet"]) else None
            # Another private subnet of the region (a shared service's), never one given to another project.
            if subnet is None or not subnet["private"] or str(subnet["_id"]) in own \
                    or subnet.get("project_id") not in ("", None, str(project["_id"])):
                raise Unprocessable(f"VPC peering subnet {peering['subnet']!r} must be another private subnet, "
                                    f"not a project's")
            forced = CEPH_PORTS if subnet.get("application") == "ceph" else ""
            checked.append({"subnet": str(subnet["_id"]), "region_id": subnet["region_id"],
                            "policy": one_of(peering.get("policy"), POLICIES, "drop", "policy"),
                            "ingress": forward_rules(peering.get("ingress"), forced),
                            "egress": forward_rules(peering.get("egress"), forced)})
        return checked

    def create(self, project_id: str, region_id: str, fields: dict[str, typing.Any]) -> models.Kawaii:
        project, region = self._project_region(project_id, region_id)
        rules = self._rules(fields)
        peerings = self._peerings(project, fields.get("vpc_peerings"))
        if any(p["region_id"] != region_id for p in peerings):
            raise Unprocessable("a VPC peering subnet must be in the Kawaii's region")
        zones = sorted(self.db.zones.find({"region_id": region_id}), key=lambda z: z["name"])
        if not zones:
            raise Unprocessable(f"region {region['name']} has no zone")
        for zone in zones:  # the VMs' names, made of the project's, the region's and the zone's
            check_name(f"kawaii-{project['name']}-{region['name']}-{zone['name']}", "Kawaii VM")
        public = self.komputes.public_subnet(region_id)
        private = self.projects.private_subnet(project, region_id)
        self._image(region_id)
        kawaii = insert_owned(
            self.projects.serializer, self.db, project_id, self.db.kawaiis,
            {"region_id": region_id, "name": f"kawaii-{project['name']}-{region['name']}",
             "description": fields.get("description", ""), **rules, "vpc_peerings": peerings, "zones": [],
             "virtual_ips": [], "state": CREATING},
            conflict=f"project {project['name']} already has a Kawaii in region {region['name']}")
        kawaii_id = str(kawaii["_id"])
        with Undo() as undo:
            undo.push("forget the Kawaii", lambda: self.db.kawaiis.delete_many({"_id": kawaii["_id"]}))
            zone_entries, virtual_ips = [], []
            public_prefix = ipaddress.ip_network(public["cidr"]).prefixlen
            private_prefix = ipaddress.ip_network(private["cidr"]).prefixlen
            for zone in zones:
                zone_id = str(zone["_id"])
                vip = self._vip_adapter(str(public["_id"]), f"{kawaii['name']}-{zone['name']}-vip", kawaii_id, undo)
                vrrp_id = self._vrrp_id(project_id, undo)
                vm = self._vm(project, zone, f"{kawaii['name']}-{zone['name']}", "kawaii", kawaii_id, undo,
                              [p["subnet"] for p in peerings])
                gateway = project["zone_gateways"][zone_id]
                zone_entries.append({"zone_id": zone_id, "zone": zone["name"], "kompute_id": str(vm["_id"]),
                                     "vip_adapter_id": str(vip["_id"]), "public": vip["addresses"][0],
                                     "private": gateway})
                virtual_ips += [
                    {"vrrp_id": vrrp_id, "interface": "ens3", "vip": vip["addresses"][0], "mask": public_prefix,
                     "public": True, "zone_id": zone_id},
                    {"vrrp_id": vrrp_id, "interface": "ens4", "vip": gateway, "mask": private_prefix,
                     "public": False, "zone_id": zone_id}]
            return self.db.kawaiis.update(kawaii["_id"], {"zones": zone_entries, "virtual_ips": virtual_ips,
                                                          "state": "ready"})

    def details(self, kawaii: models.Kawaii) -> KawaiiDetails:
        """The Kawaii with each zone VM's address in each VPC peering subnet ("" where it has none)."""
        zones = kawaii.get("zones", [])
        return KawaiiDetails(kawaii, {
            peering["subnet"]: {zone["zone"]: self._vm_address_in(zone["kompute_id"], peering["subnet"])
                                for zone in zones}
            for peering in kawaii.get("vpc_peerings", [])})

    def _vm_address_in(self, kompute_id: str, subnet_id: str) -> str:
        instance = self.db.instances.get(self.db.komputes.get(kompute_id)["instance_id"])
        for adapter_id in instance["adapter_ids"]:
            adapter = self.db.adapters.get(adapter_id)
            if adapter["subnet_id"] == subnet_id and adapter.get("addresses"):
                return adapter["addresses"][0]
        return ""

    def update(self, kawaii_id: str, fields: dict[str, typing.Any]) -> models.Kawaii:
        kawaii = self.get(kawaii_id)
        changes = self._rules(fields)
        changes["description"] = fields.get("description", "")
        kawaii = self.db.kawaiis.update(kawaii_id, changes)
        self._reload(z["kompute_id"] for z in kawaii["zones"])
        return kawaii

    def delete(self, kawaii_id: str) -> None:
        self.projects.serializer.run(f"kawaii:{kawaii_id}", self._delete, kawaii_id)

    def _delete(self, kawaii_id: str) -> None:
        def decide() -> models.Kawaii:
            kawaii = self.get(kawaii_id)
            if kawaii.get("state", READY) == CREATING:
                raise Conflict("the Kawaii is still being created")
            if self.db.ipsecs.exists({"kawaii_id": kawaii_id}):
                raise Conflict("the Kawaii still has IPsec connections: delete them first")
            return self.db.kawaiis.update(kawaii_id, {"state": DELETING})

        kawaii = self.projects.serializer.run(f"project:{self.get(kawaii_id)['project_id']}", decide)
        self._destroy_vms([z["kompute_id"] for z in kawaii.get("zones", [])])
        self.db.adapters.delete_many({"_id": {"$in": [ObjectId(z["vip_adapter_id"]) for z in kawaii.get("zones", [])]}})
        self.projects.release_vrrp_ids(kawaii["project_id"], [v["vrrp_id"] for v in kawaii.get("virtual_ips", [])])
        self.db.kawaiis.delete(kawaii_id)

    # -- IPsec ------------------------------------------------------------------------

    def ipsec_ids(self, kawaii_id: str) -> list[str]:
        self.get(kawaii_id)
        return self.db.ipsecs.ids({"kawaii_id": kawaii_id})

    def ipsec(self, kawaii_id: str, ipsec_id: str) -> models.KawaiiIpsec:
        self.get(kawaii_id)
        ipsec = self.db.ipsecs.get(ipsec_id)
        if ipsec["kawaii_id"] != kawaii_id:
            raise NotFound(f"IPsec connection {ipsec_id} does not belong to this Kawaii")
        return ipsec

    @staticmethod
    def _ipsec_fields(fields: dict[str, typing.Any]) -> dict[str, typing.Any]:
        checked = {key: fields.get(key) or default for key, default in IPSEC_DEFAULTS.items()}
        checked.update({key: fields[key] for key in (
            "name", "remote_subnet", "pre_shared_key", "phase1_dh_group_number", "phase1_integrity_algorithm",
            "phase1_encryption_algorithm", "phase2_dh_group_number", "phase2_integrity_algorithm",
            "phase2_encryption_algorithm")})
        checked["remote_ip"] = str(checked_address(fields["remote_ip"]))
        checked["remote_subnet"] = checked_network(fields["remote_subnet"], "remote_subnet")
        checked["description"] = fields.get("description", "")
        checked["firewall"] = {"ingress": firewall_rules((fields.get("firewall") or {}).get("ingress"), "source")}
        return checked

    def create_ipsec(self, kawaii_id: str, fields: dict[str, typing.Any]) -> models.KawaiiIpsec:
        checked = self._ipsec_fields(fields)

        def claim() -> tuple[models.Kawaii, models.KawaiiIpsec]:
            # In the project's owner, where the Kawaii is deleted: a connection never outlives its Kawaii,
            # and two connections never get one xfrm id.
            kawaii = self.get(kawaii_id)
            if kawaii.get("state", READY) != READY or not kawaii.get("zones"):
                raise Unprocessable("the Kawaii is not ready (being created, deleted, or failed)")
            used = {i["xfrm_id"] for i in self.db.ipsecs.find({"kawaii_id": kawaii_id}, projection={"xfrm_id": 1})}
            xfrm_id = next((n for n in range(1, 256) if n not in used), None)
            if xfrm_id is None:
                raise Unprocessable("the Kawaii has 255 IPsec connections already")
            return kawaii, self.db.ipsecs.insert(
                {"kawaii_id": kawaii_id, "project_id": kawaii["project_id"], **checked,
                 "ip": sorted(z["public"] for z in kawaii["zones"])[0], "xfrm_id": xfrm_id},
                conflict=f"the Kawaii already has an IPsec connection named {fields['name']} or to "
                         f"{checked['remote_ip']}")

        kawaii, ipsec = self.projects.serializer.run(f"project:{self.get(kawaii_id)['project_id']}", claim)
        self._reload(z["kompute_id"] for z in kawaii["zones"])
        return ipsec

    def update_ipsec(self, kawaii_id: str, ipsec_id: str, fields: dict[str, typing.Any]) -> models.KawaiiIpsec:
        self.ipsec(kawaii_id, ipsec_id)
        updated = self.db.ipsecs.update(ipsec_id, self._ipsec_fields(fields),
                                        conflict=f"the Kawaii already has an IPsec connection named {fields['name']} "
                                                 f"or to {fields['remote_ip']}")
        self._reload(z["kompute_id"] for z in self.get(kawaii_id)["zones"])
        return updated

    def delete_ipsec(self, kawaii_id: str, ipsec_id: str) -> None:
        self.ipsec(kawaii_id, ipsec_id)
        self.db.ipsecs.delete(ipsec_id)
        self._reload(z["kompute_id"] for z in self.get(kawaii_id)["zones"])
