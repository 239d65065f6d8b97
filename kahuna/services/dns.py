"""DNS: project and region records, project zones, and keeping the Kiwi agents in step.

A record of a project goes to the Kiwis of the project's regions; a region record
to the Kiwis of its region. Every connected agent of such a Kiwi receives it (the
Go Kahuna picked one agent per Kiwi, so the two agents of an HA Kiwi diverged).
A Kiwi none of whose agents is connected makes the operation fail with nothing
changed: the agents that had applied it are rolled back. When a Kiwi agent
connects it is sent ``Reload`` with every record it serves, then each record
again with ``CreateDnsRecord``: the Go agents' ``Reload`` keys its records wrongly
and wipes the others, so only the replay makes names resolve.

Domains belong to one tenant: a project's domain neither equals nor lies within or
above another project's domain or a region's domain (409), decided in the one owner
of all domains (``domains``) with the insert that claims it; a region record does not
land inside a project's domain. So no project can publish names in another's zone,
and deleting a project never takes a zone that another project or a region uses.
"""

from __future__ import annotations

import logging
import re
import typing

from kahuna import network, rpc
from kahuna.errors import AgentCallFailed, AgentError, AgentUnavailable, Conflict, Unprocessable
from kahuna.rpc import AgentPlane
from kahuna.services._common import DELETING, FAILED, Owners, insert_child, insert_owned
from kahuna.services.agents import run_each_concurrently
from kahuna.storage import Database, models

log = logging.getLogger(__name__)
T = typing.TypeVar("T")


class ServedRecord(typing.TypedDict):
    """A record as a Kiwi serves it: a DNS record's, or an instance's host name."""

    name: str
    domain: str
    addresses: list[str]

HOST_LABELS = re.compile(r"^(\*|[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}"
                         r"[a-zA-Z0-9])?)*$")


#: The owner of every DNS domain (projects' and regions'): taken before any object's owner (KEY_ORDER).
DOMAINS_KEY = "domains"


#: The params of the Kiwi method that undoes another (``DnsService._apply``): each names its zone.
UndoParams = typing.TypeVar("UndoParams", bound=rpc.kiwi.DnsZone)


def normalized(domain: str) -> str:
    """A DNS name as the Kiwis compare it: case-insensitive, with or without its final dot."""
    return (domain or "").strip().rstrip(".").lower()


def within(name: str, domain: str) -> bool:
    """*name* is *domain* or a name under it."""
    name, domain = normalized(name), normalized(domain)
    return bool(domain) and (name == domain or name.endswith("." + domain))


def overlap(one: str, other: str) -> bool:
    """Either domain is the other or lies under it."""
    return within(one, other) or within(other, one)


class DnsService:
    def __init__(self, db: Database, agents: AgentPlane, owners: Owners):
        self.db = db
        self.agents = agents
        self.owners = owners

    # -- who serves what -----------------------------------------------------------------

    def _targets(self, region_ids: typing.Iterable[str]) -> list[str]:
        """Connected agents of every Kiwi of the regions; AgentUnavailable if a Kiwi has none connected."""
        targets = []
        for kiwi in self.db.kiwis.find({"region_id": {"$in": list(region_ids)}}):
            if not kiwi["agent_ids"]:
                continue
            connected = self.agents.connected_ids(kiwi["agent_ids"])
            if not connected:
                raise AgentUnavailable(f"Kiwi {kiwi['name']} has no connected agent")
            targets += connected
        return targets

    def _apply(self, targets: list[str], method: rpc.Method[rpc.P, typing.Any], params: rpc.Params[rpc.P],
               undo: rpc.Method[UndoParams, typing.Any], undo_params: rpc.Params[UndoParams]) -> None:
        """Send to every target; if any fails, undo on those that applied it, then fail."""
        results = self.agents.broadcast(targets, method, params)
        failed = {agent_id: error for agent_id, error in results.items() if isinstance(error, Exception)}
        if not failed:
            return
        applied = [agent_id for agent_id in results if agent_id not in failed]
        self.agents.broadcast(applied, undo, undo_params)
        first = next(iter(failed.values()))
        raise first if isinstance(first, AgentError) else AgentCallFailed(str(first))

    def _regions_of(self, record: models.DnsRecord) -> list[str]:
        if record.get("region_id"):
            return [record["region_id"]]
        return self.db.projects.get(record["project_id"]).get("region_ids", [])

    # -- who owns which domain ---------------------------------------------------------------

    def claim_project_domain(self, domain: str, insert: typing.Callable[[], T]) -> T:
        """Run *insert* (which writes the project holding *domain*) if no project or region already holds a
        domain that equals it or lies within or above it; 409 otherwise. Decided in the ``domains`` owner,
        so two projects created at once cannot both take overlapping domains."""
        def check_then_insert() -> T:
            self.check_project_domain(domain)
            return insert()

        if not domain:
            return insert()
        return self.owners.run(DOMAINS_KEY, check_then_insert)

    def check_project_domain(self, domain: str, project_id: str = "") -> None:
        """409 if *domain* overlaps the domain of a project (other than *project_id*) or of a region. The reason
        names only the domain asked for: other tenants' projects are not the caller's to know."""
        for project in self.db.projects.find({"domain": {"$nin": ["", None]}}, projection={"domain": 1}):
            if str(project["_id"]) != project_id and overlap(domain, project["domain"]):
                raise Conflict(f"domain {domain} is not available: it is, or lies within or above, the domain "
                               f"of another project")
        for region in self.db.regions.find({"domain": {"$nin": ["", None]}}, projection={"domain": 1}):
            if overlap(domain, region["domain"]):
                raise Conflict(f"domain {domain} is not available: it is, or lies within or above, the domain "
                               f"of a region")

    def check_region_domain(self, domain: str) -> None:
        """409 if a region's *domain* would overlap a project's (for region creation and updates, in the
        ``domains`` owner)."""
        for project in self.db.projects.find({"domain": {"$nin": ["", None]}}, projection={"domain": 1}):
            if overlap(domain, project["domain"]):
                raise Conflict(f"domain {domain} is not available: it is, or lies within or above, the domain "
                               f"of a project")

    def _shared_zone(self, project: models.Project) -> bool:
        """Another project or a region uses the very zone of *project* (left from before domains were
        exclusive): deleting *project* must not take it from them."""
        domain = normalized(project.get("domain", ""))
        others = self.db.projects.find({"domain": {"$nin": ["", None]}, "_id": {"$ne": project["_id"]}},
                                       projection={"domain": 1})
        regions = self.db.regions.find({"domain": {"$nin": ["", None]}}, projection={"domain": 1})
        return any(normalized(other["domain"]) == domain for other in [*others, *regions])

    # -- project zones ---------------------------------------------------------------------

    def create_zone(self, project: models.Project) -> None:
        if project.get("domain"):
            domain: rpc.kiwi.DnsZone = {"Domain": project["domain"]}
            self._apply(self._targets(project.get("region_ids", [])), rpc.kiwi.CreateDnsZone, domain,
                        rpc.kiwi.DeleteDnsZone, domain)

    def check_reachable(self, project: models.Project) -> None:
        """AgentUnavailable unless every Kiwi of the project's regions has a connected agent."""
        if project.get("domain"):
            self._targets(project.get("region_ids", []))

    def delete_zone(self, project: models.Project) -> None:
        """The project's zone off every Kiwi of its regions; AgentUnavailable (nothing done) while one is away,
        since a Kiwi that reconnects is not told which zones to forget."""
        if not project.get("domain"):
            return
        if self._shared_zone(project):
            log.warning("DNS zone %s kept: another project or a region uses it too", project["domain"])
            return
        targets = self._targets(project.get("region_ids", []))
        for agent_id, result in self.agents.broadcast(targets, rpc.kiwi.DeleteDnsZone,
                                                       {"Domain": project["domain"]}).items():
            if isinstance(result, Exception):
                log.warning("DNS zone %s not deleted on agent %s: %s", project["domain"], agent_id, result)

    # -- records ---------------------------------------------------------------------------------

    def list_ids(self, parent_field: str, parent_id: str) -> list[str]:
        return self.db.records.ids({parent_field: parent_id})

    def get(self, record_id: str) -> models.DnsRecord:
        return self.db.records.get(record_id)

    @staticmethod
    def _checked(name: str, addresses: list[str]) -> list[str]:
        if not HOST_LABELS.fullmatch(name) or len(name) > 253:
            raise Unprocessable(f"invalid DNS name {name!r}")
        if not addresses:
            raise Unprocessable("a DNS record needs at least one address")
        return [str(network.parse_address(address)) for address in dict.fromkeys(addresses)]

    def create(self, parent_field: str, parent: models.Project | models.Region, domain: str, name: str,
               description: str,
               addresses: list[str]) -> models.DnsRecord:
        if not domain or not network.DOMAIN.match(domain) or normalized(domain) != normalized(parent.get("domain")):
            raise Unprocessable(f"the record's parent has no valid DNS domain ({domain!r})")
        addresses = self._checked(name, addresses)
        fqdn = f"{name}.{normalized(domain)}"
        if not within(fqdn, domain) or len(fqdn) > 253:
            raise Unprocessable(f"invalid DNS name {name!r}: {name}.{domain} must be a name of {domain}")
        parent_id = str(parent["_id"])
        # Stored first: the unique (domain, name) index refuses a duplicate before any agent hears of it.
        fields = {"region_id": parent_id if parent_field == "region_id" else "", "name": name,
                  "description": description, "domain": domain, "addresses": addresses}
        conflict = f"{name}.{domain} already exists"
        if parent_field == "project_id":
            # Within the project's domain, which no other project or region overlaps.
            record = insert_owned(self.owners, self.db, parent_id, self.db.records, fields, conflict)
        else:
            def check_then_insert() -> models.DnsRecord:
                # In the owner of all domains: no project can take a domain around the name meanwhile.
                if any(within(fqdn, project["domain"]) for project in
                       self.db.projects.find({"domain": {"$nin": ["", None]}}, projection={"domain": 1})):
                    raise Conflict(f"{name}.{domain} lies within the domain of a project")
                return insert_child(self.owners, "region", self.db.regions, parent_id, self.db.records,
                                    {**fields, "project_id": ""}, conflict=conflict)

            record = self.owners.run(DOMAINS_KEY, check_then_insert)
        params: rpc.kiwi.DnsAddresses = {"Domain": domain, "Entry": name, "Addresses": addresses}
        try:
            self._apply(self._targets(self._regions_of(record)), rpc.kiwi.CreateDnsRecord, params,
                        rpc.kiwi.DeleteDnsRecord, {"Domain": domain, "Entry": name})
        except BaseException:
            self.db.records.delete(record["_id"])
            raise
        return record

    def update(self, record_id: str, name: str, description: str, addresses: list[str]) -> models.DnsRecord:
        record = self.get(record_id)
        if name != record["name"]:
            raise Unprocessable("a DNS record cannot be renamed: delete it and create another")
        addresses = self._checked(name, addresses)
        base: rpc.kiwi.DnsEntry = {"Domain": record["domain"], "Entry": name}
        self._apply(self._targets(self._regions_of(record)), rpc.kiwi.UpdateDnsRecord, {**base, "Addresses": addresses},
                    rpc.kiwi.UpdateDnsRecord, {**base, "Addresses": record["addresses"]})
        return self.db.records.update(record_id, {"description": description, "addresses": addresses})

    def delete(self, record_id: str) -> None:
        record = self.get(record_id)
        base: rpc.kiwi.DnsEntry = {"Domain": record["domain"], "Entry": record["name"]}
        self._apply(self._targets(self._regions_of(record)), rpc.kiwi.DeleteDnsRecord, base,
                    rpc.kiwi.CreateDnsRecord, {**base, "Addresses": record["addresses"]})
        self.db.records.delete(record_id)

    # -- instance host names -------------------------------------------------------------------

    def add_host(self, domain: str, region_id: str, name: str, addresses: list[str]) -> None:
        """``name.domain`` on the Kiwis of the region (an instance's private addresses)."""
        params: rpc.kiwi.DnsAddresses = {"Domain": domain, "Entry": name, "Addresses": addresses}
        self._apply(self._targets([region_id]), rpc.kiwi.CreateDnsRecord, params,
                    rpc.kiwi.DeleteDnsRecord, {"Domain": domain, "Entry": name})

    def remove_host(self, domain: str, region_id: str, name: str) -> None:
        """Best effort: a Kiwi that is away drops the name when it reconnects (it is no longer replayed)."""
        try:
            targets = self._targets([region_id])
        except AgentUnavailable as exc:
            log.warning("host %s.%s not removed everywhere: %s", name, domain, exc.reason)
            targets = []
        for agent_id, result in self.agents.broadcast(targets, rpc.kiwi.DeleteDnsRecord,
                                                       {"Domain": domain, "Entry": name}).items():
            if isinstance(result, Exception):
                log.warning("host %s.%s not removed on agent %s: %s", name, domain, agent_id, result)

    # -- agents coming (back) ---------------------------------------------------------------

    def on_agents_connected(self, agent_ids: list[str]) -> None:
        """Bring Kiwi agents that just connected up to date with every record they serve. The Kiwis they serve
        are found in one query, then the agents are brought up to date a few at a time (one failure stops no
        other)."""
        connected = set(agent_ids)
        kiwis_of: dict[str, list[models.Kiwi]] = {}
        for kiwi in self.db.kiwis.find({"agent_ids": {"$in": agent_ids}}):
            for agent_id in kiwi["agent_ids"]:
                if agent_id in connected:
                    kiwis_of.setdefault(agent_id, []).append(kiwi)

        def resynchronize(agent_id: str) -> None:
            for kiwi in kiwis_of[agent_id]:
                if not self._resynchronize(agent_id, kiwi["region_id"]):
                    return

        run_each_concurrently(kiwis_of, resynchronize, lambda agent_id: f"Kiwi agent {agent_id}")

    def _resynchronize(self, agent_id: str, region_id: str) -> bool:
        """``Reload`` with the region's records, then each record again (see the module's docstring); False if
        the agent could not be brought up to date.

        A record may be deleted while it is replayed (its deletion's broadcast reaching the agent before the
        replay): once replayed, the region's records are read again, and those gone are deleted on the agent.
        A deletion after that second read reaches the agent after the replay, so nothing deleted is left."""
        records = self._records_of_region(region_id)
        domains: dict[str, list[rpc.kiwi.DnsRecord]] = {}
        for record in records:
            domains.setdefault(record["domain"], []).append(
                {"Name": record["name"], "Type": "A", "Addresses": record["addresses"]})
        try:
            reload: list[rpc.kiwi.DnsDomain] = [{"Name": name, "Records": entries} for name, entries in domains.items()]
            self.agents.call(agent_id, rpc.kiwi.Reload, {"Domains": reload})
        except AgentError as exc:
            log.warning("Kiwi agent %s not reloaded: %s", agent_id, exc.reason)
            return False
        for record in records:
            try:
                self.agents.call(agent_id, rpc.kiwi.CreateDnsRecord, {
                    "Domain": record["domain"], "Entry": record["name"], "Addresses": record["addresses"]})
            except AgentCallFailed as exc:
                # An agent whose Reload did install the record says it exists: nothing to do.
                log.debug("record %s.%s not replayed: %s", record["name"], record["domain"], exc.reason)
            except AgentError as exc:
                log.warning("Kiwi agent %s not resynchronized: %s", agent_id, exc.reason)
                return False
        still = {(record["domain"], record["name"]) for record in self._records_of_region(region_id)}
        for domain, name in {(record["domain"], record["name"]) for record in records} - still:
            try:
                self.agents.call(agent_id, rpc.kiwi.DeleteDnsRecord, {"Domain": domain, "Entry": name})
            except AgentError as exc:
                log.warning("record %s.%s, deleted meanwhile, not removed from Kiwi agent %s: %s", name, domain,
                            agent_id, exc.reason)
        return True

    def _records_of_region(self, region_id: str) -> list[ServedRecord]:
        """The records a Kiwi of the region serves: region and project records, and instance host names."""
        project_ids = self.db.projects.ids({"region_ids": region_id})
        records = self.db.records.find({"$or": [{"region_id": region_id}, {"project_id": {"$in": project_ids}}]},
                                       sort=[("_id", 1)])
        # Not those being deleted or whose creation failed: they are on their way out.
        hosts = self.db.instances.find({"region_id": region_id, "dns_domain": {"$nin": ["", None]},
                                        "state": {"$nin": [DELETING, FAILED]}},
                                       projection={"name": 1, "dns_domain": 1, "dns_addresses": 1}, sort=[("_id", 1)])
        served = [ServedRecord(name=r["name"], domain=r["domain"], addresses=r["addresses"]) for r in records]
        return served + [ServedRecord(name=host["name"], domain=host["dns_domain"], addresses=host["dns_addresses"])
                         for host in hosts]
