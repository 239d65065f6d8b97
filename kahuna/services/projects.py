"""Projects: the tenants. A project is reached through its teams; it owns the objects that point to it."""

from __future__ import annotations

import typing

from kahuna.access import Identity
from kahuna.costs import Pricing
from kahuna.errors import Conflict, Forbidden, NotFound, QuotaExceeded, Unprocessable
from kahuna.network import DOMAIN, expand_ranges
from kahuna.services._common import CREATING, DELETING, FAILED, READY, Owners, live_project
from kahuna.services.dns import DnsService
from kahuna.services.names import check_name
from kahuna.services.networks import SubnetService
from kahuna.services.teams import TeamService
from kahuna.storage import Database, models

T = typing.TypeVar("T")

QuotaName = typing.Literal["vcpus", "memory", "storage", "instances"]
QUOTA_FIELDS: tuple[QuotaName, ...] = typing.get_args(QuotaName)
NO_QUOTAS: models.Quotas = {"vcpus": 0, "memory": 0, "storage": 0, "instances": 0}  # 0: unlimited

#: Collections of the objects a project owns (their documents carry ``project_id``).
OWNED_COLLECTIONS = ("instance", "volume", "kompute", "kylo", "kawaii", "konvey", "dns_record", "kwarantine")
#: Volumes that count in usage, quotas and cost (a cloud-init seed belongs to its instance's cost of nothing).
BILLED_VOLUME_TYPES = ("os", "raw")


#: Prefix length of the private subnet reserved per region when ?subnetSize is not given.
DEFAULT_SUBNET_SIZE = 26


class ProjectService:
    def __init__(self, db: Database, teams: TeamService, subnets: SubnetService, dns: DnsService,
                 default_bootstrap_user: str, default_bootstrap_pubkey: str, serializer: Owners,
                 pricing: Pricing):
        self.db = db
        self.serializer = serializer
        self.pricing = pricing
        self.teams = teams
        self.subnets = subnets
        self.dns = dns
        self.default_bootstrap_user = default_bootstrap_user
        self.default_bootstrap_pubkey = default_bootstrap_pubkey

    # -- reads ---------------------------------------------------------------------

    def list_ids(self, identity: Identity) -> list[str]:
        """Every project for a superAdmin; the projects of the caller's teams for anyone else."""
        if identity.is_super_admin:
            return self.db.projects.ids()
        return self.db.projects.ids({"team_ids": {"$in": self.teams.team_ids_of(identity.user_id or "")}})

    def get(self, project_id: str) -> models.Project:
        return self.db.projects.get(project_id)

    def is_member(self, identity: Identity, project: models.Project) -> bool:
        if identity.user_id is None:
            return False
        return bool(set(project.get("team_ids", [])) & set(self.teams.team_ids_of(identity.user_id)))

    def usage(self, project_id: str) -> dict[str, int]:
        """What the project's instances and volumes hold, those being created included."""
        self.db.projects.get(project_id)
        usage: dict[str, int] = dict.fromkeys(QUOTA_FIELDS, 0)
        for instance in self.db.instances.find({"project_id": project_id}, projection={"vcpus": 1, "memory": 1}):
            usage["instances"] += 1
            usage["vcpus"] += int(instance.get("vcpus", 0))
            usage["memory"] += int(instance.get("memory", 0))
        for volume in self.db.volumes.find({"project_id": project_id, "type": {"$in": list(BILLED_VOLUME_TYPES)}},
                                           projection={"size": 1}):
            usage["storage"] += int(volume.get("size", 0))
        return usage

    def cost(self, project_id: str) -> dict[str, typing.Any]:
        """The monthly cost of the project's instances and volumes at today's prices."""
        self.db.projects.get(project_id)
        total = self.pricing.total(
            self.db.instances.find({"project_id": project_id}),
            self.db.volumes.find({"project_id": project_id, "type": {"$in": list(BILLED_VOLUME_TYPES)}}))
        return {"price": total.amount, "currency": total.currency}

    def reserve(self, project_id: str, demand: dict[str, int], claim: typing.Callable[[], T]) -> T:
        """Run *claim* (which inserts the documents that hold *demand*) if the project's quotas allow it.

        Check and claim run in the project's serializer: two creations in one project never
        both pass the check on the same room. 507 when a quota would be exceeded.
        """
        def check_then_claim() -> T:
            project = live_project(self.db, project_id)
            quotas: models.Quotas = {**NO_QUOTAS, **project.get("quotas", {})}
            usage = self.usage(project_id)
            exceeded = [f"{name} ({usage[name]} used + {demand[name]} asked > {quotas[name]})"
                        for name in QUOTA_FIELDS
                        if demand.get(name, 0) > 0 and quotas[name] > 0 and usage[name] + demand[name] > quotas[name]]
            if exceeded:
                raise QuotaExceeded(f"project {project['name']} quota exceeded: {', '.join(exceeded)}")
            return claim()

        return self.serializer.run(f"project:{project_id}", check_then_claim)

    def private_subnet(self, project: models.Project, region_id: str) -> models.Subnet:
        """The project's private subnet in the region (422 when the project is not in the region)."""
        for entry in project.get("private_subnets", []):
            if entry["key"] == region_id:
                return self.db.subnets.get(entry["value"])
        region = self.db.regions.get(region_id)
        raise Unprocessable(f"project {project['name']} has no private subnet in region {region['name']}: "
                            f"add the region to the project first")

    def allocate_vrrp_id(self, project_id: str) -> int:
        """The lowest VRRP router id (1-255) the project's virtual addresses do not use yet."""
        def allocate() -> int:
            used = set(self.db.projects.get(project_id).get("reserved_vrrp_ids", []))
            free = next((n for n in range(1, 256) if n not in used), None)
            if free is None:
                raise Unprocessable("the project uses all 255 VRRP router ids")
            self.db.projects.update(project_id, extra={"$addToSet": {"reserved_vrrp_ids": free}})
            return free

        return self.serializer.run(f"project:{project_id}", allocate)

    def release_vrrp_ids(self, project_id: str, vrrp_ids: list[int]) -> None:
        def release() -> None:
            used = self.db.projects.get(project_id).get("reserved_vrrp_ids", [])
            self.db.projects.update(project_id, {"reserved_vrrp_ids": [n for n in used if n not in vrrp_ids]})

        self.serializer.run(f"project:{project_id}", release)

    def reclaim_vrrp_ids(self, project_id: str) -> None:
        """Keep reserved only the VRRP ids that the project's Kawaii and Konvey still use (crash recovery)."""
        def reclaim() -> None:
            used = {vip["vrrp_id"] for kawaii in self.db.kawaiis.find({"project_id": project_id})
                    for vip in kawaii.get("virtual_ips", [])}
            used |= {konvey["vrrp_id"] for konvey in self.db.konveys.find({"project_id": project_id})
                     if konvey.get("vrrp_id")}
            reserved = self.db.projects.get(project_id).get("reserved_vrrp_ids", [])
            if set(reserved) - used:
                self.db.projects.update(project_id, {"reserved_vrrp_ids": [n for n in reserved if n in used]})

        self.serializer.run(f"project:{project_id}", reclaim)

    # -- writes --------------------------------------------------------------------

    def create(self, identity: Identity, fields: dict[str, typing.Any], subnet_size: int | None) -> models.Project:
        check_name(fields["name"], "project")  # part of its Kawaii VMs' names
        domain = fields.get("domain") or ""
        if domain and (not DOMAIN.match(domain) or len(domain) > 253):
            raise Unprocessable(f"invalid domain name {domain!r}: expected a name such as project.acme.com")
        team_ids = self.db.teams.existing_ids(fields["team_ids"])
        region_ids = self.db.regions.existing_ids(fields["region_ids"])
        self._require_own_team(identity, team_ids)
        # The domain is checked free and taken in one step, in the owner of all domains (409 if another
        # project or a region holds it, or a domain within or above it).
        project = self.dns.claim_project_domain(domain, lambda: self.db.projects.insert({
            "name": fields["name"],
            "description": fields.get("description", ""),
            "domain": domain,
            "root_password": fields.get("root_password", ""),
            "bootstrap_user": fields.get("bootstrap_user") or self.default_bootstrap_user,
            "bootstrap_pubkey": fields.get("bootstrap_pubkey") or self.default_bootstrap_pubkey,
            "tags": fields.get("tags", []),
            "metadatas": fields.get("metadatas", []),
            "quotas": {**NO_QUOTAS, **(fields.get("quotas") or {})},
            "team_ids": team_ids,
            "region_ids": region_ids,
            "private_subnets": [],
            "zone_gateways": {},
            "reserved_vrrp_ids": [],
            # Until its networks and DNS zone exist; crash recovery undoes a project left so.
            "state": CREATING,
        }))
        # Reserve the networks, then create the DNS zone; on any failure undo all of it.
        try:
            networks = self._reserve_networks(project, region_ids, subnet_size or DEFAULT_SUBNET_SIZE)
            project = self.db.projects.update(project["_id"], networks)
            self.dns.create_zone(project)
        except BaseException:
            self.undo_creation(project)
            raise
        return self.db.projects.update(project["_id"], {"state": READY})

    def undo_creation(self, project: models.Project) -> None:
        """Take back a project whose creation failed or was cut short: its networks, then the document."""
        self.subnets.release_all(str(project["_id"]))
        self.db.projects.delete_many({"_id": project["_id"]})

    def _reserve_networks(self, project: models.Project, region_ids: list[str], size: int) -> dict[str, typing.Any]:
        """A private subnet per region, and a gateway address per zone taken from its gateway pool."""
        project_id = str(project["_id"])
        private_subnets = list(project.get("private_subnets", []))
        gateways = dict(project.get("zone_gateways", {}))
        for region_id in region_ids:
            subnet = self.subnets.reserve_private(region_id, size, project_id)
            private_subnets.append({"key": region_id, "value": str(subnet["_id"])})
            pool = expand_ranges(subnet.get("gw_pool", []))
            zones = sorted(self.db.zones.find({"region_id": region_id}, projection={"name": 1}),
                           key=lambda zone: zone["name"])
            if len(pool) < len(zones):
                self.subnets.release(str(subnet["_id"]), project_id)
                raise Unprocessable(f"subnet {subnet['name']} has {len(pool)} gateway address(es) for "
                                    f"{len(zones)} zones")
            gateways.update({str(zone["_id"]): address for zone, address in zip(zones, pool, strict=False)})
        return {"private_subnets": private_subnets, "zone_gateways": gateways}

    def update(self, identity: Identity, project_id: str, fields: dict[str, typing.Any]) -> models.Project:
        return self.serializer.run(f"project:{project_id}", self._update, identity, project_id, fields)

    def _update(self, identity: Identity, project_id: str, fields: dict[str, typing.Any]) -> models.Project:
        project = live_project(self.db, project_id)
        if fields["name"] != project["name"]:
            check_name(fields["name"], "project")
        quotas = {**NO_QUOTAS, **(fields.get("quotas") or {})}
        if quotas != {**NO_QUOTAS, **project.get("quotas", {})} and not identity.is_super_admin:
            raise Forbidden("only a superAdmin can change a project's quotas")
        if fields.get("domain") and fields["domain"] != project.get("domain"):
            raise Unprocessable("a project's domain cannot be changed")
        team_ids = self.db.teams.existing_ids(fields["team_ids"])
        self._require_own_team(identity, team_ids)
        added_regions = self.db.regions.existing_ids(
            [r for r in fields["region_ids"] if r not in project.get("region_ids", [])])
        region_ids = project.get("region_ids", []) + added_regions
        if [r for r in region_ids if r not in fields["region_ids"]]:
            raise Unprocessable("regions cannot be removed from a project")
        changes = {
            "name": fields["name"],
            "description": fields.get("description", ""),
            "tags": fields.get("tags", []),
            "metadatas": fields.get("metadatas", []),
            "quotas": quotas,
            "team_ids": team_ids,
            "region_ids": region_ids,
        }
        for optional in ("root_password", "bootstrap_user", "bootstrap_pubkey"):
            if fields.get(optional):
                changes[optional] = fields[optional]
        if added_regions:
            sizes = [self.db.subnets.get(entry["value"])["prefix_length"] for entry in project["private_subnets"]]
            changes.update(self._reserve_networks(project, added_regions, max(sizes, default=DEFAULT_SUBNET_SIZE)))
        return self.db.projects.update(project_id, changes)

    def delete(self, project_id: str) -> None:
        """Decided in the project's owner, where every object of the project is inserted: once the
        project is ``deleting`` nothing new can be made in it, and nothing was there when it was checked."""
        def decide() -> models.Project:
            project = self.db.projects.get(project_id)
            if project.get("state", READY) not in (READY, FAILED):
                raise NotFound(f"project {project_id} does not exist")
            owned = [c for c in OWNED_COLLECTIONS if self.db.db[c].find_one({"project_id": project_id}, {"_id": 1})]
            if owned:
                raise Conflict(f"project still owns {', '.join(owned)} object(s): delete them first")
            self.dns.check_reachable(project)  # fail now, with nothing changed, rather than half-way
            return self.db.projects.update(project_id, {"state": DELETING})

        project = self.serializer.run(f"project:{project_id}", decide)
        try:
            self.finish_deletion(project)
        except BaseException:
            # Past the point of no return: the clean-up of failed objects finishes it.
            self.db.projects.update(project_id, {"state": FAILED})
            raise

    def finish_deletion(self, project: models.Project) -> None:
        """The DNS zone off the Kiwis, the networks back to their regions, then the document (also run by
        crash recovery for a project left ``deleting``)."""
        self.dns.delete_zone(project)
        self.subnets.release_all(str(project["_id"]))
        self.db.projects.delete_many({"_id": project["_id"]})

    # -- helpers -------------------------------------------------------------------

    def _require_own_team(self, identity: Identity, team_ids: list[str]) -> None:
        if identity.is_super_admin:
            return
        if not set(team_ids) & set(self.teams.team_ids_of(identity.user_id or "")):
            raise Unprocessable("the project must keep at least one of your own teams, or you could not reach it")
