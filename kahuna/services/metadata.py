"""The instance metadata served at ``/latest/meta-data``: a VM's own profile, nothing else.

A VM names itself with two headers, ``X-Kowabunga-Instance-Id`` and
``X-Kowabunga-Source-Ip`` (its first private address; what the Kontroller agents and
``kw-meta`` send). Both must designate the same instance; anything else is "no such
instance", whichever part was wrong. The keys and their nesting are those the
Kontroller agents' templates read (Go Kahuna's ``InstanceMetadata``).

The pair is the only credential, and anyone who reaches the endpoint may try it: ids
cannot be guessed (:class:`kahuna.storage.documents.ObjectIds`), and a client address
that failed :data:`FAILURES_PER_SOURCE` times within :data:`WINDOW_SECONDS` is refused
with 429 (each attempt counted before it is checked, given back when it names an
instance). Failures are logged, a few lines a minute at most.
"""

from __future__ import annotations

import logging
import typing

from bson import ObjectId

from kahuna.costs import Pricing
from kahuna.errors import BadRequest, NotFound, TooManyRequests
from kahuna.services.throttling import AttemptLimiter, LogBudget, SourceGuard
from kahuna.storage import Database, models

log = logging.getLogger(__name__)

GIB = 1024**3
MASTER, BACKUP = 150, 100

#: Failed look-ups a client address may make per window before it is refused (429).
FAILURES_PER_SOURCE = 20
WINDOW_SECONDS = 600
#: Log lines about failed look-ups, per minute, at most.
LOG_LINES_PER_MINUTE = 10


class MetadataService:
    def __init__(self, db: Database, pricing: Pricing, limiter: AttemptLimiter | None = None):
        self.db = db
        self.pricing = pricing
        self.guard = SourceGuard(limiter, "instance metadata", FAILURES_PER_SOURCE, WINDOW_SECONDS) \
            if limiter is not None else None
        self.log_budget = LogBudget(limiter, "instance metadata", LOG_LINES_PER_MINUTE, 60) \
            if limiter is not None else None

    def _log(self, message: str, *args: typing.Any) -> None:
        if self.log_budget is None or self.log_budget.allow():
            log.warning(message + " (at most %d such lines a minute)", *args, LOG_LINES_PER_MINUTE)

    def _instance(self, instance_id: str, source_ip: str, client: str) -> models.Instance:
        if not instance_id or not source_ip:
            raise BadRequest("send X-Kowabunga-Instance-Id and X-Kowabunga-Source-Ip")
        if self.guard is not None:
            try:
                self.guard.reserve(client)
            except TooManyRequests:
                self._log("instance metadata: client %s refused (429) after %d failed look-ups",
                          client, FAILURES_PER_SOURCE)
                raise
        address = source_ip.split(":")[0] if source_ip.count(":") == 1 else source_ip
        instance = (self.db.instances.find_one({"_id": ObjectId(instance_id)}) if ObjectId.is_valid(instance_id)
                    else None)
        if instance is None or not instance.get("local_ip") or instance["local_ip"] != address:
            self._log("instance metadata: failed look-up from client %s (instance id %.40r, address %.40r)",
                      client, instance_id, source_ip)
            raise NotFound("no instance has this id and address")
        # The pair is right (not a guess), even if the instance is not ready yet: the attempt is given back.
        if self.guard is not None:
            self.guard.succeeded(client)
        if instance.get("state") != "ready":
            raise NotFound("no instance has this id and address")
        return instance

    def for_instance(self, instance_id: str, source_ip: str, client: str = "") -> dict[str, typing.Any]:
        """The profile of the instance named by the pair, for a request from *client* (its address)."""
        instance = self._instance(instance_id, source_ip, client)
        project = self.db.projects.get(instance["project_id"])
        zone = self.db.zones.get(instance["zone_id"])
        region = self.db.regions.get(instance["region_id"])
        kaktus = self.db.kaktuses.get(instance["kaktus_id"])
        os_volume = self.db.volumes.get(instance["volume_ids"][0])
        template = self.db.templates.find_one({"_id": ObjectId(os_volume["template_id"])}) or {"name": ""}
        subnet_cidr = ""
        for entry in project.get("private_subnets", []):
            if entry["key"] == instance["region_id"]:
                subnet_cidr = self.db.subnets.get(entry["value"])["cidr"]
        cost = self.pricing.instance_cost(instance)
        meta: dict[str, typing.Any] = {
            "instance-id": str(instance["_id"]), "local-hostname": instance["name"],
            "description": instance.get("description", ""), "kaktus": kaktus["name"], "vcpu": instance["vcpus"],
            "mem_gb": instance["memory"] // GIB, "local-ipv4": instance["local_ip"], "subnet_cidr": subnet_cidr,
            "template": template["name"], "monthly_cost": f"{cost.amount:f} {cost.currency}",
            "project": project["name"], "domain": project.get("domain", ""), "zone": zone["name"],
            "region": region["name"], "tags": project.get("tags") or None, "peers": None,
        }
        if instance.get("profile") == "kawaii":
            kawaii = self.db.kawaiis.get(instance["profile_id"])
            meta["peers"] = self._peers(instance, [z["kompute_id"] for z in kawaii["zones"]])
            meta["kawaii"] = self._kawaii(instance, kawaii, project)
        elif instance.get("profile") == "konvey":
            konvey = self.db.konveys.get(instance["profile_id"])
            meta["peers"] = self._peers(instance, konvey["kompute_ids"])
            meta["konvey"] = self._konvey(instance, konvey)
        return meta

    def _vm_instances(self, kompute_ids: list[str]) -> list[models.Instance]:
        komputes = [self.db.komputes.get(k) for k in kompute_ids]
        return [self.db.instances.get(k["instance_id"]) for k in komputes]

    def _peers(self, instance: models.Instance, kompute_ids: list[str]) -> list[str]:
        return [vm["local_ip"] for vm in self._vm_instances(kompute_ids) if vm["_id"] != instance["_id"]]

    def _kawaii(self, instance: models.Instance, kawaii: models.Kawaii, project: models.Project) -> dict[str,
                typing.Any]:
        zone_id = instance["zone_id"]
        public_vips = sorted(z["public"] for z in kawaii["zones"])
        public_subnet = self.db.subnets.get(self.db.adapters.get(kawaii["zones"][0]["vip_adapter_id"])["subnet_id"])
        private_subnet = next(self.db.subnets.get(e["value"]) for e in project["private_subnets"]
                              if e["key"] == kawaii["region_id"])
        firewall = kawaii["firewall"]
        output_action = "drop" if firewall["egress_policy"] == "accept" else "accept"
        peering_devices = [f"ens{5 + n}" for n in range(len(kawaii.get("vpc_peerings", [])))]
        forward_rules = []
        for peering, device in zip(kawaii.get("vpc_peerings", []), peering_devices, strict=True):
            peer = self.db.subnets.get(peering["subnet"])
            action = "drop" if peering["policy"] == "accept" else "accept"
            forward_rules += [{"iifname": "ens4", "oifname": device, "source_ip": private_subnet["cidr"],
                               "destination_ip": peer["cidr"], "protocol": r["protocol"], "ports": r["ports"],
                               "action": action} for r in peering["ingress"]]
            forward_rules += [{"iifname": device, "oifname": "ens4", "source_ip": peer["cidr"],
                               "destination_ip": private_subnet["cidr"], "protocol": r["protocol"],
                               "ports": r["ports"], "action": action} for r in peering["egress"]]
        ipsecs = self.db.ipsecs.find({"kawaii_id": str(kawaii["_id"])}, sort=[("_id", 1)])
        return {
            "public_interface": "ens3", "private_interface": "ens4", "vrrp_control_interface": "ens4",
            "peering_interfaces": peering_devices, "public_vip_addresses": public_vips,
            "public_gw_address": public_subnet["gateway"],
            "virtual_ips": [{"vrrp_id": v["vrrp_id"], "interface": v["interface"], "vip": v["vip"],
                             "priority": MASTER if v["zone_id"] == zone_id else BACKUP, "mask": v["mask"],
                             "public": v["public"]} for v in kawaii["virtual_ips"]],
            "fw_input_default": "drop", "fw_output_default": firewall["egress_policy"], "fw_forward_default": "drop",
            "fw_input_extra_networks": list(private_subnet.get("extra_routes", [])),
            "fw_input_rules": [{"iifname": "ens3", "source_ip": r["source"], "destination_ip": vip,
                                "protocol": r["protocol"], "ports": r["ports"], "action": "accept"}
                               for vip in public_vips for r in firewall["ingress"]],
            "fw_output_rules": [{"oifname": "ens3", "source_ip": vip, "destination_ip": r["destination"],
                                 "protocol": r["protocol"], "ports": r["ports"], "action": output_action}
                                for vip in public_vips for r in firewall["egress"]],
            "fw_forward_rules": forward_rules,
            "fw_nat_rules": [{"private_ip": r["destination"], "public_ip": vip, "protocol": r["protocol"],
                              "ports": r["ports"]} for vip in public_vips for r in kawaii["dnat"]],
            "ipsec_connections": [self._ipsec(i) for i in ipsecs],
        }

    @staticmethod
    def _ipsec(ipsec: models.KawaiiIpsec) -> dict[str, typing.Any]:
        return {"name": ipsec["name"], "ip": ipsec["ip"], "xfrm_id": ipsec["xfrm_id"],
                "remote_peer": ipsec["remote_ip"], "remote_subnet": ipsec["remote_subnet"],
                "pre_shared_key": ipsec["pre_shared_key"], "dpd_timeout": ipsec["dpd_timeout"],
                "dpd_action": ipsec["dpd_timeout_action"], "start_action": ipsec["start_action"],
                "rekey": ipsec["rekey_time"], "phase1_lifetime": ipsec["phase1_lifetime"],
                "phase1_df_group": ipsec["phase1_dh_group_number"],
                "phase1_integrity_algorithm": ipsec["phase1_integrity_algorithm"],
                "phase1_encryption_algorithm": ipsec["phase1_encryption_algorithm"],
                "phase2_lifetime": ipsec["phase2_lifetime"], "phase2_df_group": ipsec["phase2_dh_group_number"],
                "phase2_integrity_algorithm": ipsec["phase2_integrity_algorithm"],
                "phase2_encryption_algorithm": ipsec["phase2_encryption_algorithm"],
                "ingress_rules": [{"source_ip": r["source"], "protocol": r["protocol"], "ports": r["ports"],
                                   "action": "accept"} for r in ipsec["firewall"]["ingress"]]}

    def _konvey(self, instance: models.Instance, konvey: models.Konvey) -> dict[str, typing.Any]:
        first = self._vm_instances(konvey["kompute_ids"][:1])
        master = bool(first) and first[0]["_id"] == instance["_id"]
        return {
            "private_interface": "ens4", "vrrp_control_interface": "ens4",
            "virtual_ips": [{"vrrp_id": konvey["vrrp_id"], "interface": "ens4", "vip": konvey["vip"],
                             "priority": MASTER if master else BACKUP, "mask": konvey["mask"], "public": False}],
            "endpoints": [{"name": e["name"], "port": e["port"], "protocol": e["protocol"],
                           "backends": [{"host": host, "port": e["backends"]["port"]}
                                        for host in e["backends"]["hosts"]]}
                          for e in konvey["endpoints"]],
        }
