"""Kawaii (a project's Internet gateway in a region, with its IPsec tunnels) and Konvey
(a project's L4 load balancer): services made of Komputes whose Kontroller agent
configures them from the instance metadata.

A Kawaii has one VM per zone of its region. Each zone has a public virtual address
(an adapter on the region's public subnet) and the project's gateway address of that
zone; both are VRRP virtual addresses with one router id per zone, mastered
(priority 150) by the VM of that zone. A Konvey has one VM, or two in distinct zones
(or on distinct Kaktus nodes of one zone) with ``failover``, sharing one private
virtual address mastered by the first VM.
"""

from __future__ import annotations

import ipaddress
import logging
import typing

from bson import ObjectId

from kahuna import port_lists, rpc
from kahuna.errors import AgentError, Conflict, NotFound, Unprocessable
from kahuna.rpc import AgentGateway
from kahuna.services._common import CREATING, DELETING, READY, insert_owned, instance_ids_in_zone, owned_ids
from kahuna.services._undo import Undo
from kahuna.services.instances import InstanceService
from kahuna.services.komputes import KomputeService
from kahuna.services.names import check_name
from kahuna.services.networks import AdapterService
from kahuna.services.projects import ProjectService
from kahuna.services.volumes import VolumeService
from kahuna.storage import Database, Document

log = logging.getLogger(__name__)

GIB = 1024**3
VM_VCPUS, VM_MEMORY, VM_DISK = 1, 1 * GIB, 16 * GIB
CEPH_PORTS = "111,2049,3300,6789,6800-7568"
PROTOCOLS = ("tcp", "udp")
POLICIES = ("accept", "drop")
IPSEC_DEFAULTS = {"dpd_timeout_action": "restart", "dpd_timeout": "240s", "start_action": "start",
                  "rekey_time": "2h", "phase1_lifetime": "1h", "phase2_lifetime": "1h"}


def _choice(value: str | None, allowed: tuple[str, ...], default: str, what: str) -> str:
    value = value or default
    if value not in allowed:
        raise Unprocessable(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _network(text: str | None, what: str) -> str:
    try:
        return str(ipaddress.ip_network(text or "0.0.0.0/0", strict=False))
    except ValueError:
        raise Unprocessable(f"{what} {text!r} is not an address or network") from None


def firewall_rules(rules: list[dict] | None, peer_key: str) -> list[dict[str, str]]:
    return [{peer_key: _network(rule.get(peer_key), peer_key), "protocol": _choice(rule.get("protocol"), PROTOCOLS,
                                                                                    "tcp", "protocol"),
             "ports": port_lists.check_port_list(rule["ports"])} for rule in rules or []]


def forward_rules(rules: list[dict] | None, forced_ports: str = "") -> list[dict[str, str]]:
    return [{"protocol": _choice(rule.get("protocol"), PROTOCOLS, "tcp", "protocol"),
             "ports": port_lists.check_port_list(rule["ports"])} for rule in rules or []] + (
        [{"protocol": "tcp", "ports": forced_ports}] if forced_ports else [])


class _Services:
    """What Kawaii and Konvey both build on."""

    def __init__(self, db: Database, gateway: AgentGateway, projects: ProjectService, instances: InstanceService,
                 komputes: KomputeService, volumes: VolumeService, adapters: AdapterService):
        self.db = db
        self.gateway = gateway
        self.projects = projects
        self.instances = instances
        self.komputes = komputes
        self.volumes = volumes
        self.adapters = adapters

    def _project_region(self, project_id: str, region_id: str) -> tuple[Document, Document]:
        project = self.projects.get(project_id)
        region = self.db.regions.get(region_id)
        if region_id not in project.get("region_ids", []):
            raise Unprocessable(f"project {project['name']} is not in region {region['name']}")
        return project, region

    def _image(self, region_id: str) -> tuple[Document, Document]:
        pool = self.volumes.pool_of_region(region_id, None)
        return pool, self.volumes.template_of_pool(pool, None)

    def _vm(self, project: Document, zone: Document, name: str, profile: str, profile_id: str, undo: Undo,
            peering_subnet_ids: typing.Sequence[str] = (), avoid: frozenset[str] = frozenset()) -> Document:
        pool, template = self._image(zone["region_id"])
        plan = self.komputes.plan(project, zone, pool, template, name, f"{profile} VM", VM_VCPUS, VM_MEMORY, VM_DISK,
                                  0, False, profile, profile_id, peering_subnet_ids, avoid)
        return self.komputes.build(project, zone, plan, undo)

    def _vip_adapter(self, subnet_id: str, name: str, made_for: str, undo: Undo) -> Document:
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
                self.gateway.call(instance["agent_id"], rpc.method(rpc.KONTROLLER, "Reload"))
            except AgentError as exc:
                log.info("Kontroller of %s not reloaded: %s", instance["name"], exc.reason)

    def destroy_leftover(self, service: Document) -> None:
        """Crash recovery: a Kawaii or Konvey whose creation or deletion was cut short. Its VMs are the
        Komputes made for it; its virtual addresses, the adapters made for it; its VRRP ids are given back
        by the caller, from what the project's live services still use."""
        self.projects.serializer.run(f"{self.collection}:{service['_id']}", self._destroy_leftover, service)

    def _destroy_leftover(self, service: Document) -> None:
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


class KawaiiService(_Services):
    collection = "kawaii"

    def list_ids(self, project_id: str | None = None, region_id: str | None = None) -> list[str]:
        """The project's Kawaiis, or the one of a region."""
        if region_id is not None:
            self.db.regions.get(region_id)
            return owned_ids(self.db.kawaiis, self.projects, project_id, region_id=region_id)
        return owned_ids(self.db.kawaiis, self.projects, project_id)

    def get(self, kawaii_id: str) -> Document:
        return self.db.kawaiis.get(kawaii_id)

    @staticmethod
    def _rules(fields: dict[str, typing.Any]) -> dict[str, typing.Any]:
        firewall = fields.get("firewall") or {}
        return {
            "firewall": {"ingress": firewall_rules(firewall.get("ingress"), "source"),
                         "egress_policy": _choice(firewall.get("egress_policy"), POLICIES, "accept", "egress_policy"),
                         "egress": firewall_rules(firewall.get("egress"), "destination")},
            "dnat": [{"destination": str(_address(rule["destination"])),
                      "protocol": _choice(rule.get("protocol"), PROTOCOLS, "tcp", "protocol"),
                      "ports": port_lists.check_port_list(rule["ports"])} for rule in fields.get("dnat") or []],
        }

    def _peerings(self, project: Document, peerings: list[dict] | None) -> list[dict[str, typing.Any]]:
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
                            "policy": _choice(peering.get("policy"), POLICIES, "drop", "policy"),
                            "ingress": forward_rules(peering.get("ingress"), forced),
                            "egress": forward_rules(peering.get("egress"), forced)})
        return checked

    def create(self, project_id: str, region_id: str, fields: dict[str, typing.Any]) -> Document:
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

    def view(self, kawaii: Document) -> dict[str, typing.Any]:
        zones = kawaii.get("zones", [])
        peerings = []
        for peering in kawaii.get("vpc_peerings", []):
            netip = []
            for zone in zones:
                address = self._vm_address_in(zone["kompute_id"], peering["subnet"])
                netip.append({"zone": zone["zone"], "private": address})
            peerings.append({**peering, "netip": netip})
        return {**kawaii, "vpc_peerings": peerings,
                "netip": {"public": sorted(z["public"] for z in zones), "private": sorted(z["private"] for z in zones),
                          "zones": [{"zone": z["zone"], "public": z["public"], "private": z["private"]}
                                    for z in zones]}}

    def _vm_address_in(self, kompute_id: str, subnet_id: str) -> str:
        instance = self.db.instances.get(self.db.komputes.get(kompute_id)["instance_id"])
        for adapter_id in instance["adapter_ids"]:
            adapter = self.db.adapters.get(adapter_id)
            if adapter["subnet_id"] == subnet_id and adapter.get("addresses"):
                return adapter["addresses"][0]
        return ""

    def update(self, kawaii_id: str, fields: dict[str, typing.Any]) -> Document:
        kawaii = self.get(kawaii_id)
        changes = self._rules(fields)
        if fields.get("description"):
            changes["description"] = fields["description"]
        kawaii = self.db.kawaiis.update(kawaii_id, changes)
        self._reload(z["kompute_id"] for z in kawaii["zones"])
        return kawaii

    def delete(self, kawaii_id: str) -> None:
        self.projects.serializer.run(f"kawaii:{kawaii_id}", self._delete, kawaii_id)

    def _delete(self, kawaii_id: str) -> None:
        def decide() -> Document:
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

    def ipsec(self, kawaii_id: str, ipsec_id: str) -> Document:
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
        checked["remote_ip"] = str(_address(fields["remote_ip"]))
        checked["remote_subnet"] = _network(fields["remote_subnet"], "remote_subnet")
        checked["description"] = fields.get("description", "")
        checked["firewall"] = {"ingress": firewall_rules((fields.get("firewall") or {}).get("ingress"), "source")}
        return checked

    def create_ipsec(self, kawaii_id: str, fields: dict[str, typing.Any]) -> Document:
        checked = self._ipsec_fields(fields)

        def claim() -> tuple[Document, Document]:
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

    def update_ipsec(self, kawaii_id: str, ipsec_id: str, fields: dict[str, typing.Any]) -> Document:
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


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise Unprocessable(f"{text!r} is not an IP address") from None


class KonveyService(_Services):
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

    def get(self, konvey_id: str) -> Document:
        return self.db.konveys.get(konvey_id)

    @staticmethod
    def _endpoints(endpoints: list[dict]) -> list[dict[str, typing.Any]]:
        checked = []
        for endpoint in endpoints:
            backends = endpoint["backends"]
            checked.append({"name": endpoint["name"], "port": port_lists.check_port(endpoint["port"]),
                            "protocol": _choice(endpoint.get("protocol"), PROTOCOLS, "tcp", "protocol"),
                            "backends": {"hosts": [str(_address(h)) for h in backends["hosts"]],
                                         "port": port_lists.check_port(backends["port"])}})
        names = [e["name"] for e in checked]
        if len(set(names)) != len(names):
            raise Unprocessable("endpoint names must be unique")
        return checked

    def _zone_scores(self, region_id: str) -> list[tuple[int, str, Document]]:
        scored = []
        for zone in self.db.zones.find({"region_id": region_id}):
            load = sum(n.score("") for n in self.instances.nodes(str(zone["_id"])))
            scored.append((load, zone["name"], zone))
        return sorted(scored, key=lambda item: (item[0], item[1]))

    def create(self, project_id: str, region_id: str | None, zone_id: str | None,
               fields: dict[str, typing.Any]) -> Document:
        """In a region (VMs spread over its least loaded zones), or in one zone (VMs on distinct Kaktus)."""
        if zone_id is not None:
            zone = self.db.zones.get(zone_id)
            region_id = zone["region_id"]
            project, region = self._project_region(project_id, region_id)
            zones = [zone]
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
            kompute_ids, used_kaktuses = [], set()
            for index, zone in enumerate(placements, 1):
                vm = self._vm(project, zone, f"konvey-{name}-{zone['name']}-{index}", "konvey", konvey_id, undo,
                              avoid=frozenset(used_kaktuses))
                kompute_ids.append(str(vm["_id"]))
                used_kaktuses.add(self.db.instances.get(vm["instance_id"])["kaktus_id"])
            return self.db.konveys.update(konvey["_id"], {
                "kompute_ids": kompute_ids, "vip": vip["addresses"][0], "vip_adapter_id": str(vip["_id"]),
                "vrrp_id": vrrp_id, "mask": ipaddress.ip_network(private["cidr"]).prefixlen, "state": "ready"})

    def update(self, konvey_id: str, fields: dict[str, typing.Any]) -> Document:
        konvey = self.get(konvey_id)
        changes: dict[str, typing.Any] = {"endpoints": self._endpoints(fields["endpoints"])}
        if fields.get("description"):
            changes["description"] = fields["description"]
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
