"""Kaktus (compute and storage nodes) and Kiwi (network gateways), with what their agents report."""

from __future__ import annotations

import logging
import typing

from kahuna import rpc
from kahuna.errors import AgentError
from kahuna.rpc import AgentPlane
from kahuna.services._common import Owners, agents_of_type, child_ids, delete_if_childless, insert_child
from kahuna.services.agents import run_each_concurrently
from kahuna.services.dns import DnsService
from kahuna.storage import Database, models

log = logging.getLogger(__name__)

DEFAULT_CPU_OVERCOMMIT = 3
DEFAULT_MEMORY_OVERCOMMIT = 2
NO_CAPABILITIES: models.NodeCapabilities = {"cpu": {"arch": "", "model": "", "vendor": "", "sockets": 0, "cores": 0,
                                            "threads": 0},
                   "memory": 0}


def _cost(value: dict[str, typing.Any] | None) -> dict[str, typing.Any]:
    value = value or {}
    return {"price": float(value.get("price") or 0.0), "currency": value.get("currency") or "EUR"}


class KaktusService:
    def __init__(self, db: Database, agents: AgentPlane, owners: Owners):
        self.db = db
        self.agents = agents
        # Kaktus nodes are added to and removed from a zone in its owner, where instances are placed.
        self.owners = owners

    def list_ids(self, zone_id: str | None = None) -> list[str]:
        return child_ids(self.db.zones, self.db.kaktuses, "zone_id", zone_id)

    def get(self, kaktus_id: str) -> models.Kaktus:
        return self.db.kaktuses.get(kaktus_id)

    def _fields(self, fields: dict[str, typing.Any]) -> dict[str, typing.Any]:
        return {
            "name": fields["name"],
            "description": fields.get("description", ""),
            "cpu_cost": _cost(fields.get("cpu_cost")),
            "memory_cost": _cost(fields.get("memory_cost")),
            "overcommit_cpu_ratio": fields.get("overcommit_cpu_ratio") or DEFAULT_CPU_OVERCOMMIT,
            "overcommit_memory_ratio": fields.get("overcommit_memory_ratio") or DEFAULT_MEMORY_OVERCOMMIT,
            "agent_ids": agents_of_type(self.db, fields["agent_ids"], rpc.KAKTUS),
        }

    def create(self, zone_id: str, fields: dict[str, typing.Any]) -> models.Kaktus:
        zone = self.db.zones.get(zone_id)
        kaktus = insert_child(self.owners, "zone", self.db.zones, zone_id, self.db.kaktuses,
                              {"zone_id": zone_id, "region_id": zone["region_id"], **self._fields(fields),
                               "capabilities": NO_CAPABILITIES},
                              conflict=f"zone already has a Kaktus named {fields['name']}")
        return self._scan_kaktus(kaktus)

    def update(self, kaktus_id: str, fields: dict[str, typing.Any]) -> models.Kaktus:
        updated = self.db.kaktuses.update(kaktus_id, self._fields(fields),
                                          conflict=f"zone already has a Kaktus named {fields['name']}")
        return self._scan_kaktus(updated)

    def delete(self, kaktus_id: str) -> None:
        zone_id = self.get(kaktus_id)["zone_id"]
        self.owners.run(f"zone:{zone_id}", delete_if_childless, self.owners, self.db, "kaktus", self.db.kaktuses,
                        kaktus_id, "Kaktus", (("instance", "kaktus_id", "instances"),
                                              # A kMotion from or to it, under way or stranded, may end there.
                                              ("instance", "kmotion.source_kaktus_id", "instances moving off it"),
                                              ("instance", "kmotion.target_kaktus_id", "instances moving onto it")))

    def set_maintenance(self, kaktus_id: str, maintenance: bool) -> models.Kaktus:
        """Put a Kaktus in maintenance (it keeps its instances and receives no new one: instance, Kompute, Kawaii
        or Konvey VM, kMotion target) or take it out; idempotent. Written in the owner of its zone, where
        instances are placed: a placement decided after this never elects it. Every node of a zone may be in
        maintenance; creations there then answer 507 saying so."""
        zone_id = self.get(kaktus_id)["zone_id"]

        def write() -> models.Kaktus:
            kaktus = self.get(kaktus_id)
            if bool(kaktus.get("maintenance")) == maintenance:
                return kaktus
            log.info("Kaktus %s %s maintenance", kaktus["name"], "enters" if maintenance else "leaves")
            return self.db.kaktuses.update(kaktus_id, {"maintenance": maintenance})

        return self.owners.run(f"zone:{zone_id}", write)

    def capabilities(self, kaktus_id: str) -> models.NodeCapabilities:
        return self.get(kaktus_id).get("capabilities") or NO_CAPABILITIES

    def instance_ids(self, kaktus_id: str) -> list[str]:
        self.get(kaktus_id)
        return [str(doc["_id"]) for doc in self.db.db["instance"].find({"kaktus_id": kaktus_id}, {"_id": 1})]

    # -- what the agents report ----------------------------------------------------------

    def on_agents_connected(self, agent_ids: list[str]) -> None:
        """Kaktus agents connected: read the node's capabilities for every Kaktus they serve, from one of them.
        The Kaktuses are found in one query, then scanned a few at a time (one failure stops no other)."""
        connected = set(agent_ids)

        def scan(kaktus: models.Kaktus) -> None:
            self._scan_kaktus(kaktus, next(agent_id for agent_id in kaktus["agent_ids"] if agent_id in connected))

        run_each_concurrently(self.db.kaktuses.find({"agent_ids": {"$in": agent_ids}}), scan,
                              lambda kaktus: f"Kaktus {kaktus['name']}")

    def _scan_kaktus(self, kaktus: models.Kaktus, agent_id: str | None = None) -> models.Kaktus:
        """Store what the node's agent reports; the Kaktus as stored afterwards (unchanged if no agent answers)."""
        method = rpc.kaktus.NodeCapabilities
        try:
            node = self.agents.call(agent_id, method) if agent_id else \
                self.agents.call_any(kaktus["agent_ids"], method)
        except AgentError as exc:
            log.info("Kaktus %s not scanned: %s", kaktus["name"], exc.reason)
            return kaktus
        capabilities = {"cpu": {"arch": node["Arch"], "model": node["Model"], "vendor": node["Vendor"],
                                "sockets": node["Sockets"], "cores": node["Cores"], "threads": node["Threads"]},
                        "memory": node["Memory"]}
        if kaktus.get("capabilities") == capabilities:
            return kaktus  # as stored (every Kaktus after a restart): no write
        return self.db.kaktuses.update(kaktus["_id"], {"capabilities": capabilities})


class KiwiService:
    def __init__(self, db: Database, agents: AgentPlane, dns: DnsService, owners: Owners):
        self.db = db
        self.agents = agents
        self.dns = dns
        self.owners = owners

    def list_ids(self, region_id: str | None = None) -> list[str]:
        return child_ids(self.db.regions, self.db.kiwis, "region_id", region_id)

    def get(self, kiwi_id: str) -> models.Kiwi:
        return self.db.kiwis.get(kiwi_id)

    def create(self, region_id: str, name: str, description: str, agent_ids: list[str]) -> models.Kiwi:
        kiwi = insert_child(self.owners, "region", self.db.regions, region_id, self.db.kiwis,
                            {"region_id": region_id, "name": name, "description": description,
                             "agent_ids": agents_of_type(self.db, agent_ids, rpc.KIWI)},
                            conflict=f"region already has a Kiwi named {name}")
        self._synchronize(kiwi)
        return kiwi

    def update(self, kiwi_id: str, name: str, description: str, agent_ids: list[str]) -> models.Kiwi:
        kiwi = self.db.kiwis.update(kiwi_id, {"name": name, "description": description,
                                              "agent_ids": agents_of_type(self.db, agent_ids, rpc.KIWI)},
                                    conflict=f"region already has a Kiwi named {name}")
        self._synchronize(kiwi)
        return kiwi

    def _synchronize(self, kiwi: models.Kiwi) -> None:
        """Agents already connected get the DNS data of the Kiwi they now serve."""
        connected = self.agents.connected_ids(kiwi["agent_ids"])
        if connected:
            self.dns.on_agents_connected(connected)

    def delete(self, kiwi_id: str) -> None:
        self.get(kiwi_id)
        self.db.kiwis.delete(kiwi_id)
