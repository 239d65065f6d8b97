"""Storage: Ceph pools, NFS storages (CephFS behind NFS-Ganesha), and OS templates in pools."""

from __future__ import annotations

import logging
import typing
import urllib.parse

from kahuna import network, rpc
from kahuna.errors import AgentError, Conflict, Unprocessable
from kahuna.rpc import AgentPlane
from kahuna.services._common import (
    DELETING,
    READY,
    Owners,
    agents_of_type,
    child_ids,
    child_of,
    clear_default,
    delete_if_childless,
    insert_child,
    set_default_if_none,
)
from kahuna.services.agents import run_each_concurrently
from kahuna.storage import Database, models

log = logging.getLogger(__name__)

DEFAULT_CEPH_ADDRESS = "localhost"
DEFAULT_CEPH_PORT = 3300
DEFAULT_FS = "nfs"
DEFAULT_GANESHA_PORT = 54934
NO_STATS = {"capacity": 0, "allocation": 0, "available": 0}


class PoolService:
    def __init__(self, db: Database, agents: AgentPlane, owners: Owners):
        self.db = db
        self.agents = agents
        # Templates, volumes and NFS storages are added to a pool in its owner, where it is deleted.
        self.owners = owners

    def list_ids(self, region_id: str | None = None) -> list[str]:
        return child_ids(self.db.regions, self.db.pools, "region_id", region_id)

    def get(self, pool_id: str) -> models.StoragePool:
        return self.db.pools.get(pool_id)

    def _fields(self, fields: dict[str, typing.Any]) -> dict[str, typing.Any]:
        cost = fields.get("cost") or {}
        return {
            "name": fields["name"],
            "description": fields.get("description", ""),
            "pool": fields["pool"],
            "ceph_address": fields.get("ceph_address") or DEFAULT_CEPH_ADDRESS,
            "ceph_port": fields.get("ceph_port") or DEFAULT_CEPH_PORT,
            "ceph_secret_uuid": fields.get("ceph_secret_uuid", ""),
            "cost": {"price": float(cost.get("price") or 0.0), "currency": cost.get("currency") or "EUR"},
            "agent_ids": agents_of_type(self.db, fields["agent_ids"], rpc.KAKTUS),
        }

    def create(self, region_id: str, fields: dict[str, typing.Any]) -> models.StoragePool:
        pool = insert_child(self.owners, "region", self.db.regions, region_id, self.db.pools,
                            {"region_id": region_id, **self._fields(fields), "stats": NO_STATS,
                             "defaults": {"template_id": ""}},
                            conflict=f"region already has a storage pool named {fields['name']}")
        set_default_if_none(self.db.regions, region_id, "defaults.pool_id", str(pool["_id"]))
        self._scan(pool)
        return pool

    def update(self, pool_id: str, fields: dict[str, typing.Any]) -> models.StoragePool:
        return self.db.pools.update(pool_id, self._fields(fields),
                                    conflict=f"region already has a storage pool named {fields['name']}")

    def delete(self, pool_id: str) -> None:
        pool = delete_if_childless(self.owners, self.db, "pool", self.db.pools, pool_id, "storage pool",
                                   (("template", "storage_pool_id", "templates"),
                                    ("volume", "storage_pool_id", "volumes"),
                                    ("nfs", "storage_pool_id", "NFS storages")))
        clear_default(self.db.regions, pool["region_id"], "defaults.pool_id", pool_id)

    def volume_ids(self, pool_id: str) -> list[str]:
        self.get(pool_id)
        return [str(doc["_id"]) for doc in self.db.db["volume"].find({"storage_pool_id": pool_id}, {"_id": 1})]

    def template_ids(self, pool_id: str) -> list[str]:
        self.get(pool_id)
        return self.db.templates.ids({"storage_pool_id": pool_id})

    def set_default_template(self, pool_id: str, template_id: str) -> None:
        self.get(pool_id)
        child_of(self.db.templates, template_id, "storage_pool_id", pool_id)
        self.db.pools.update(pool_id, {"defaults.template_id": template_id})

    def call(self, pool: models.StoragePool, method: rpc.Method[rpc.P, rpc.R], params: dict[str, typing.Any]) -> rpc.R:
        """A volume RPC, sent to one connected agent of the pool."""
        # *params* lack the Pool added here: their type cannot say so; they are checked when sent.
        return self.agents.call_any(pool["agent_ids"], method, typing.cast(rpc.P, {"Pool": pool["pool"], **params}))

    def call_cephfs(self, pool: models.StoragePool, method: rpc.Method[rpc.P, rpc.R],
                    params: rpc.Params[rpc.P]) -> rpc.R:
        """A CephFS/NFS RPC (they name a file system, not a pool), sent to one connected agent of the pool."""
        return self.agents.call_any(pool["agent_ids"], method, params)

    def on_agents_connected(self, agent_ids: list[str]) -> None:
        """Kaktus agents connected: refresh the stats of every pool they serve (found in one query), a few
        pools at a time."""
        run_each_concurrently(self.db.pools.find({"agent_ids": {"$in": agent_ids}}), self._scan,
                              lambda pool: f"storage pool {pool['name']}")

    def _scan(self, pool: models.StoragePool) -> None:
        try:
            stats = self.call(pool, rpc.kaktus.GetStoragePoolStats, {})
        except AgentError as exc:
            log.info("storage pool %s not scanned: %s", pool["name"], exc.reason)
            return
        self.db.pools.update(pool["_id"], {"stats": {"capacity": stats["Capacity"], "allocation": stats["Allocated"],
                                                     "available": stats["Available"]}})


class NfsService:
    def __init__(self, db: Database, owners: Owners):
        self.db = db
        self.owners = owners

    def list_ids(self, region_id: str | None = None) -> list[str]:
        return child_ids(self.db.regions, self.db.nfs, "region_id", region_id)

    def get(self, nfs_id: str) -> models.Nfs:
        return self.db.nfs.get(nfs_id)

    def _fields(self, fields: dict[str, typing.Any]) -> dict[str, typing.Any]:
        backends = fields.get("backends") or []
        for backend in backends:
            network.parse_address(backend, "NFS-Ganesha backend address")
        return {"name": fields["name"], "description": fields.get("description", ""),
                "endpoint": fields["endpoint"], "fs": fields.get("fs") or DEFAULT_FS, "backends": backends,
                "port": fields.get("port") or DEFAULT_GANESHA_PORT}

    def create(self, region_id: str, pool_id: str | None, fields: dict[str, typing.Any]) -> models.Nfs:
        region = self.db.regions.get(region_id)
        pool_id = pool_id or region.get("defaults", {}).get("pool_id")
        if not pool_id:
            raise Unprocessable("the region has no storage pool: create one, or name one with ?poolId")
        def insert() -> models.Nfs:
            child_of(self.db.pools, pool_id, "region_id", region_id)
            return self.db.nfs.insert({"region_id": region_id, "storage_pool_id": pool_id, **self._fields(fields)},
                                      conflict=f"region already has an NFS storage named {fields['name']}")

        nfs = self.owners.run_all((f"region:{region_id}", f"pool:{pool_id}"), insert)
        set_default_if_none(self.db.regions, region_id, "defaults.nfs_id", str(nfs["_id"]))
        return nfs

    def update(self, nfs_id: str, fields: dict[str, typing.Any]) -> models.Nfs:
        return self.db.nfs.update(nfs_id, self._fields(fields),
                                  conflict=f"region already has an NFS storage named {fields['name']}")

    def delete(self, nfs_id: str) -> None:
        nfs = delete_if_childless(self.owners, self.db, "nfs", self.db.nfs, nfs_id, "NFS storage",
                                  (("kylo", "nfs_id", "Kylo shares"),))
        clear_default(self.db.regions, nfs["region_id"], "defaults.nfs_id", nfs_id)

    def kylo_ids(self, nfs_id: str) -> list[str]:
        self.get(nfs_id)
        return [str(doc["_id"]) for doc in self.db.db["kylo"].find({"nfs_id": nfs_id}, {"_id": 1})]


class TemplateService:
    def __init__(self, db: Database, pools: PoolService):
        self.db = db
        self.pools = pools

    def list_ids(self) -> list[str]:
        return self.db.templates.ids()

    def get(self, template_id: str) -> models.Template:
        return self.db.templates.get(template_id)

    def create(self, pool_id: str, name: str, description: str, os: str, source: str) -> models.Template:
        pool = self.pools.get(pool_id)
        parsed = urllib.parse.urlparse(source)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise Unprocessable(f"template source {source!r} must be an http(s) URL the Kaktus agents can fetch")
        # The record reserves the name first, so that a duplicate never reaches the agents;
        # it is removed again if the agent cannot make the image.
        template = insert_child(
            self.pools.owners, "pool", self.db.pools, pool_id, self.db.templates,
            {"storage_pool_id": pool_id, "name": name, "description": description, "os": os, "source": source,
             "volume": name, "size": 0}, conflict=f"storage pool already has a template named {name}")
        try:
            created = self.pools.call(pool, rpc.kaktus.CreateTemplateVolume, {"Volume": name, "SourceURL": source})
        except BaseException:
            self.db.templates.delete(template["_id"])
            raise
        template = self.db.templates.update(template["_id"], {"size": created["Size"]})
        set_default_if_none(self.db.pools, pool_id, "defaults.template_id", str(template["_id"]))
        return template

    def update(self, template_id: str, name: str, description: str, os: str) -> models.Template:
        # The image keeps the name it was created with ("volume"); renaming the template is safe.
        return self.db.templates.update(template_id, {"name": name, "description": description, "os": os},
                                        conflict=f"storage pool already has a template named {name}")

    def delete(self, template_id: str) -> None:
        template = self.get(template_id)

        def decide() -> None:
            # In the pool's owner, where volumes are cloned from it: none can start from it once decided.
            current = self.get(template_id)
            if current.get("state") == DELETING:
                raise Conflict(f"template {current['name']} is being deleted")
            if self.db.db["volume"].find_one({"template_id": template_id}, {"_id": 1}):
                raise Conflict(f"template {current['name']} is still the source of volumes")
            self.db.templates.update(template_id, {"state": DELETING})

        self.pools.owners.run(f"pool:{template['storage_pool_id']}", decide)
        pool = self.pools.get(template["storage_pool_id"])
        try:
            self.pools.call(pool, rpc.kaktus.DeleteVolume, {"Volume": template["volume"], "WithSnapshots": True})
        except BaseException:
            self.db.templates.update(template_id, {"state": READY})
            raise
        self.db.templates.delete(template_id)
        clear_default(self.db.pools, str(pool["_id"]), "defaults.template_id", template_id)
