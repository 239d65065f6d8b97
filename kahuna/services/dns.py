"""DNS: project and region records, project zones, and keeping the Kiwi agents in step.

A record of a project goes to the Kiwis of the project's regions; a region record
to the Kiwis of its region. Every connected agent of such a Kiwi receives it (the
Go Kahuna picked one agent per Kiwi, so the two agents of an HA Kiwi diverged).
A Kiwi none of whose agents is connected makes the operation fail with nothing
changed: the agents that had applied it are rolled back. When a Kiwi agent
connects it is sent ``Reload`` with every record it serves, then each record
again with ``CreateDnsRecord``: the Go agents' ``Reload`` keys its records wrongly
and wipes the others, so only the replay makes names resolve.
"""

from __future__ import annotations

import logging
import re
import typing

from kahuna import network, rpc
from kahuna.errors import AgentCallFailed, AgentError, AgentUnavailable, Unprocessable
from kahuna.rpc import AgentGateway
from kahuna.services._common import Owners, insert_child, insert_owned
from kahuna.storage import Database, Document

log = logging.getLogger(__name__)

HOST_LABELS = re.compile(r"^(\*|[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}"
                         r"[a-zA-Z0-9])?)*$")


def _kiwi(name: str) -> rpc.Method:
    return rpc.method(rpc.KIWI, name)


class DnsService:
    def __init__(self, db: Database, gateway: AgentGateway, owners: Owners):
        self.db = db
        self.gateway = gateway
        self.owners = owners

    # -- who serves what -----------------------------------------------------------------

    def _targets(self, region_ids: typing.Iterable[str]) -> list[str]:
        """Connected agents of every Kiwi of the regions; AgentUnavailable if a Kiwi has none connected."""
        targets = []
        for kiwi in self.db.kiwis.find({"region_id": {"$in": list(region_ids)}}):
            if not kiwi["agent_ids"]:
                continue
            connected = self.gateway.connected_ids(kiwi["agent_ids"])
            if not connected:
                raise AgentUnavailable(f"Kiwi {kiwi['name']} has no connected agent")
            targets += connected
        return targets

    def _apply(self, targets: list[str], method: str, params: dict, undo: tuple[str, dict] | None) -> None:
        """Send to every target; if any fails, undo on those that applied it, then fail."""
        results = self.gateway.broadcast(targets, _kiwi(method), params)
        failed = {agent_id: error for agent_id, error in results.items() if isinstance(error, Exception)}
        if not failed:
            return
        if undo is not None:
            applied = [agent_id for agent_id in results if agent_id not in failed]
            self.gateway.broadcast(applied, _kiwi(undo[0]), undo[1])
        first = next(iter(failed.values()))
        raise first if isinstance(first, AgentError) else AgentCallFailed(str(first))

    def _regions_of(self, record: Document) -> list[str]:
        if record.get("region_id"):
            return [record["region_id"]]
        return self.db.projects.get(record["project_id"]).get("region_ids", [])

    # -- project zones ---------------------------------------------------------------------

    def create_zone(self, project: Document) -> None:
        if project.get("domain"):
            domain = {"Domain": project["domain"]}
            self._apply(self._targets(project.get("region_ids", [])), "CreateDnsZone", domain, ("DeleteDnsZone", domain))

    def check_reachable(self, project: Document) -> None:
        """AgentUnavailable unless every Kiwi of the project's regions has a connected agent."""
        if project.get("domain"):
            self._targets(project.get("region_ids", []))

    def delete_zone(self, project: Document) -> None:
        """The project's zone off every Kiwi of its regions; AgentUnavailable (nothing done) while one is away,
        since a Kiwi that reconnects is not told which zones to forget."""
        if not project.get("domain"):
            return
        targets = self._targets(project.get("region_ids", []))
        for agent_id, result in self.gateway.broadcast(targets, _kiwi("DeleteDnsZone"),
                                                       {"Domain": project["domain"]}).items():
            if isinstance(result, Exception):
                log.warning("DNS zone %s not deleted on agent %s: %s", project["domain"], agent_id, result)

    # -- records ---------------------------------------------------------------------------------

    def list_ids(self, parent_field: str, parent_id: str) -> list[str]:
        return self.db.records.ids({parent_field: parent_id})

    def get(self, record_id: str) -> Document:
        return self.db.records.get(record_id)

    @staticmethod
    def _checked(name: str, addresses: list[str]) -> list[str]:
        if not HOST_LABELS.match(name) or len(name) > 253:
            raise Unprocessable(f"invalid DNS name {name!r}")
        if not addresses:
            raise Unprocessable("a DNS record needs at least one address")
        return [str(network.parse_address(address)) for address in dict.fromkeys(addresses)]

    def create(self, parent_field: str, parent: Document, domain: str, name: str, description: str,
               addresses: list[str]) -> Document:
        if not domain or not network.DOMAIN.match(domain):
            raise Unprocessable(f"the record's parent has no valid DNS domain ({domain!r})")
        addresses = self._checked(name, addresses)
        parent_id = str(parent["_id"])
        # Stored first: the unique (domain, name) index refuses a duplicate before any agent hears of it.
        fields = {"region_id": parent_id if parent_field == "region_id" else "", "name": name,
                  "description": description, "domain": domain, "addresses": addresses}
        conflict = f"{name}.{domain} already exists"
        if parent_field == "project_id":
            record = insert_owned(self.owners, self.db, parent_id, self.db.records, fields, conflict)
        else:
            record = insert_child(self.owners, "region", self.db.regions, parent_id, self.db.records,
                                  {**fields, "project_id": ""}, conflict=conflict)
        params = {"Domain": domain, "Entry": name, "Addresses": addresses}
        try:
            self._apply(self._targets(self._regions_of(record)), "CreateDnsRecord", params,
                        ("DeleteDnsRecord", {"Domain": domain, "Entry": name}))
        except BaseException:
            self.db.records.delete(record["_id"])
            raise
        return record

    def update(self, record_id: str, name: str, description: str, addresses: list[str]) -> Document:
        record = self.get(record_id)
        if name != record["name"]:
            raise Unprocessable("a DNS record cannot be renamed: delete it and create another")
        addresses = self._checked(name, addresses)
        base = {"Domain": record["domain"], "Entry": name}
        self._apply(self._targets(self._regions_of(record)), "UpdateDnsRecord", {**base, "Addresses": addresses},
                    ("UpdateDnsRecord", {**base, "Addresses": record["addresses"]}))
        return self.db.records.update(record_id, {"description": description, "addresses": addresses})

    def delete(self, record_id: str) -> None:
        record = self.get(record_id)
        base = {"Domain": record["domain"], "Entry": record["name"]}
        self._apply(self._targets(self._regions_of(record)), "DeleteDnsRecord", base,
                    ("CreateDnsRecord", {**base, "Addresses": record["addresses"]}))
        self.db.records.delete(record_id)

    # -- instance host names -------------------------------------------------------------------

    def add_host(self, domain: str, region_id: str, name: str, addresses: list[str]) -> None:
        """``name.domain`` on the Kiwis of the region (an instance's private addresses)."""
        params = {"Domain": domain, "Entry": name, "Addresses": addresses}
        self._apply(self._targets([region_id]), "CreateDnsRecord", params,
                    ("DeleteDnsRecord", {"Domain": domain, "Entry": name}))

    def remove_host(self, domain: str, region_id: str, name: str) -> None:
        """Best effort: a Kiwi that is away drops the name when it reconnects (it is no longer replayed)."""
        try:
            targets = self._targets([region_id])
        except AgentUnavailable as exc:
            log.warning("host %s.%s not removed everywhere: %s", name, domain, exc.reason)
            targets = []
        for agent_id, result in self.gateway.broadcast(targets, _kiwi("DeleteDnsRecord"),
                                                       {"Domain": domain, "Entry": name}).items():
            if isinstance(result, Exception):
                log.warning("host %s.%s not removed on agent %s: %s", name, domain, agent_id, result)

    # -- agents coming (back) ---------------------------------------------------------------

    def on_agent_connected(self, agent_id: str) -> None:
        """Bring a Kiwi agent that just connected up to date with every record it serves."""
        for kiwi in self.db.kiwis.find({"agent_ids": agent_id}):
            records = self._records_of_region(kiwi["region_id"])
            domains: dict[str, list[dict]] = {}
            for record in records:
                domains.setdefault(record["domain"], []).append(
                    {"Name": record["name"], "Type": "A", "Addresses": record["addresses"]})
            try:
                self.gateway.call(agent_id, _kiwi("Reload"),
                                  {"Domains": [{"Name": name, "Records": entries} for name, entries in domains.items()]})
            except AgentError as exc:
                log.warning("Kiwi agent %s not reloaded: %s", agent_id, exc.reason)
                return
            for record in records:
                try:
                    self.gateway.call(agent_id, _kiwi("CreateDnsRecord"), {
                        "Domain": record["domain"], "Entry": record["name"], "Addresses": record["addresses"]})
                except AgentCallFailed as exc:
                    # An agent whose Reload did install the record says it exists: nothing to do.
                    log.debug("record %s.%s not replayed: %s", record["name"], record["domain"], exc.reason)
                except AgentError as exc:
                    log.warning("Kiwi agent %s not resynchronized: %s", agent_id, exc.reason)
                    return

    def _records_of_region(self, region_id: str) -> list[Document]:
        """The records a Kiwi of the region serves: region and project records, and instance host names."""
        project_ids = self.db.projects.ids({"region_ids": region_id})
        records = self.db.records.find({"$or": [{"region_id": region_id}, {"project_id": {"$in": project_ids}}]},
                                       sort=[("_id", 1)])
        hosts = self.db.instances.find({"region_id": region_id, "dns_domain": {"$nin": ["", None]}},
                                       projection={"name": 1, "dns_domain": 1, "dns_addresses": 1}, sort=[("_id", 1)])
        return records + [{"name": host["name"], "domain": host["dns_domain"], "addresses": host["dns_addresses"]}
                          for host in hosts]
