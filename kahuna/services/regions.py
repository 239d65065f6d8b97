"""Regions and their zones."""

from __future__ import annotations

import typing

from kahuna.services._common import Owners, child_of, delete_if_childless, insert_child
from kahuna.services.dns import DnsService
from kahuna.storage import Database, Documents, models

REGION_CHILDREN = (("zone", "region_id", "zones"), ("kiwi", "region_id", "Kiwis"),
                   ("vnet", "region_id", "virtual networks"), ("storage_pool", "region_id", "storage pools"),
                   ("nfs", "region_id", "NFS storages"), ("dns_record", "region_id", "DNS records"))


class RegionService:
    def __init__(self, db: Database, owners: Owners, dns: DnsService):
        self.db = db
        # A region's children are inserted, and the region deleted, in its owner (``region:<id>``); its domain
        # is chosen in the owner of every domain (``domains``), where projects choose theirs.
        self.owners = owners
        self.dns = dns

    def list_ids(self) -> list[str]:
        return self.db.regions.ids()

    def get(self, region_id: str) -> models.Region:
        return self.db.regions.get(region_id)

    def create(self, name: str, description: str, domain: str) -> models.Region:
        def insert() -> models.Region:
            self.dns.check_region_domain(domain)
            return self.db.regions.insert({"name": name, "description": description, "domain": domain,
                                           "defaults": {"pool_id": "", "nfs_id": ""}})

        return self.owners.run("domains", insert)

    def update(self, region_id: str, name: str, description: str, domain: str) -> models.Region:
        def change() -> models.Region:
            if domain != self.get(region_id).get("domain"):
                self.dns.check_region_domain(domain)
            return self.db.regions.update(region_id, {"name": name, "description": description, "domain": domain})

        return self.owners.run("domains", change)

    def delete(self, region_id: str) -> None:
        delete_if_childless(self.owners, self.db, "region", self.db.regions, region_id, "region", REGION_CHILDREN)

    def children(self, region_id: str, documents: Documents[typing.Any]) -> list[str]:
        """IDs of the region's objects held in *documents* (zones, Kiwis, pools…), oldest first."""
        self.get(region_id)
        return documents.ids({"region_id": region_id})

    def set_default(self, region_id: str, field: str, documents: Documents[typing.Any], child_id: str) -> None:
        """Make a pool or NFS storage of this region its default (404 if it is another region's)."""
        self.get(region_id)
        child_of(documents, child_id, "region_id", region_id)
        self.db.regions.update(region_id, {f"defaults.{field}": child_id})

    def zone_count(self, region_id: str) -> int:
        return self.db.zones.count({"region_id": region_id})


class ZoneService:
    def __init__(self, db: Database, owners: Owners):
        self.db = db
        self.owners = owners

    def list_ids(self) -> list[str]:
        return self.db.zones.ids()

    def get(self, zone_id: str) -> models.Zone:
        return self.db.zones.get(zone_id)

    def create(self, region_id: str, name: str, description: str) -> models.Zone:
        return insert_child(self.owners, "region", self.db.regions, region_id, self.db.zones,
                            {"region_id": region_id, "name": name, "description": description},
                            conflict=f"region already has a zone named {name}")

    def update(self, zone_id: str, name: str, description: str) -> models.Zone:
        return self.db.zones.update(zone_id, {"name": name, "description": description},
                                    conflict=f"region already has a zone named {name}")

    def delete(self, zone_id: str) -> None:
        delete_if_childless(self.owners, self.db, "zone", self.db.zones, zone_id, "zone",
                            (("kaktus", "zone_id", "Kaktus nodes"),))
