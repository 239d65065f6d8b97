"""Kylo: NFS shares, each a CephFS subvolume exported by the NFS storage's NFS-Ganesha
backends to the project's private subnet only. The agents that do it are those of
the NFS storage's pool."""

from __future__ import annotations

import random
import typing
from dataclasses import dataclass

from kahuna.errors import AgentCallFailed, Conflict, Unprocessable
from kahuna.rpc import kaktus
from kahuna.services._common import CREATING, child_of, live_project, owned_ids
from kahuna.services._undo import Undo
from kahuna.services.names import check_name
from kahuna.services.projects import ProjectService
from kahuna.services.storage_pools import PoolService
from kahuna.storage import Database, models

ACCESS_TYPES = ("RO", "RW")
NFS_VERSIONS = (3, 4)
EXPORT_IDS = range(100, 65001)



@dataclass(frozen=True)
class KyloDetails:
    """A Kylo share with the address its clients mount it from (its NFS storage's endpoint)."""

    kylo: models.Kylo
    endpoint: str

class KyloService:
    def __init__(self, db: Database, projects: ProjectService, pools: PoolService):
        self.db = db
        self.projects = projects
        self.pools = pools

    def list_ids(self, project_id: str | None = None, region_id: str | None = None) -> list[str]:
        """The project's Kylo shares, or those of a region."""
        if region_id is not None:
            self.db.regions.get(region_id)
            return owned_ids(self.db.kylos, self.projects, project_id, region_id=region_id)
        return owned_ids(self.db.kylos, self.projects, project_id)

    def get(self, kylo_id: str) -> models.Kylo:
        return self.db.kylos.get(kylo_id)

    def details(self, kylo: models.Kylo) -> KyloDetails:
        return KyloDetails(kylo, self.db.nfs.get(kylo["nfs_id"])["endpoint"])

    @staticmethod
    def _sharing(fields: dict[str, typing.Any]) -> tuple[str, list[int]]:
        access = fields.get("access") or "RW"
        if access not in ACCESS_TYPES:
            raise Unprocessable(f"access must be RO or RW, not {access!r}")
        protocols = sorted(set(fields.get("protocols") or NFS_VERSIONS))
        if any(p not in NFS_VERSIONS for p in protocols):
            raise Unprocessable("protocols are NFS versions: 3 and/or 4")
        return access, protocols

    def _backends(self, kylo: models.Kylo, nfs: models.Nfs) -> kaktus.NfsBackends:
        return {"ID": str(kylo["export_id"]), "Name": kylo["name"], "FS": nfs["fs"], "Path": kylo["path"],
                "Access": kylo["access"], "Protocols": kylo["protocols"], "Clients": kylo["clients"],
                "Backends": nfs["backends"], "Port": nfs["port"]}

    def create(self, project_id: str, region_id: str, fields: dict[str, typing.Any], nfs_id: str | None) -> models.Kylo:
        name = check_name(fields["name"], "share")  # its subvolume's and export's name
        project = self.projects.get(project_id)
        region = self.db.regions.get(region_id)
        nfs_id = nfs_id or region.get("defaults", {}).get("nfs_id")
        if not nfs_id:
            raise Unprocessable(f"region {region['name']} has no NFS storage: create one, or name one with ?nfsId")
        nfs = child_of(self.db.nfs, nfs_id, "region_id", region_id)
        access, protocols = self._sharing(fields)
        subnet = self.projects.private_subnet(project, region_id)
        pool = self.pools.get(nfs["storage_pool_id"])
        def claim() -> models.Kylo:
            # In the owners of the project (not being deleted) and of the NFS storage (export ids are unique
            # in it). The record comes first: it holds the name, so two creations cannot both reach the agents.
            live_project(self.db, project_id)
            used = {k["export_id"] for k in self.db.kylos.find({"nfs_id": nfs_id}, projection={"export_id": 1})}
            export_id = random.choice([n for n in EXPORT_IDS if n not in used])  # noqa: S311 - not a secret
            return self.db.kylos.insert(
                {"project_id": project_id, "region_id": region_id, "nfs_id": nfs_id, "name": name,
                 "description": fields.get("description", ""), "access": access, "protocols": protocols,
                 "clients": [subnet["cidr"]], "export_id": export_id, "path": "", "size": 0, "state": CREATING},
                conflict=f"NFS storage {nfs['name']} already has a share named {name}")

        kylo = self.projects.serializer.run_all((f"project:{project_id}", f"nfs:{nfs_id}"), claim)
        with Undo() as undo:
            undo.push(f"forget share {name}", lambda: self.db.kylos.delete_many({"_id": kylo["_id"]}))
            filesystems = self.pools.call_cephfs(pool, kaktus.ListFileSystems, {})["FS"]
            if nfs["fs"] not in filesystems:
                raise Unprocessable(f"the Ceph file system {nfs['fs']} of NFS storage {nfs['name']} does not exist")
            if name in self.pools.call_cephfs(pool, kaktus.ListFsSubVolumes, {"FS": nfs["fs"]})["SubVolumes"]:
                raise Conflict(f"the Ceph file system {nfs['fs']} already has a subvolume named {name}")
            made = self.pools.call_cephfs(pool, kaktus.CreateFsSubVolume, {"FS": nfs["fs"], "SubVolume": name})
            undo.push(f"delete subvolume {name}", lambda: self.pools.call_cephfs(
                pool, kaktus.DeleteFsSubVolume, {"FS": nfs["fs"], "SubVolume": name}))
            kylo = self.db.kylos.update(kylo["_id"], {"path": made["Path"], "size": made["BytesUsed"]})
            self.pools.call_cephfs(pool, kaktus.CreateNfsBackends, self._backends(kylo, nfs))
            return self.db.kylos.update(kylo["_id"], {"state": "ready"})

    def update(self, kylo_id: str, fields: dict[str, typing.Any]) -> models.Kylo:
        kylo = self.get(kylo_id)
        if fields["name"] != kylo["name"]:
            raise Unprocessable("a share cannot be renamed: its name is its subvolume's name")
        access, protocols = self._sharing(fields)
        nfs = self.db.nfs.get(kylo["nfs_id"])
        changed: models.Kylo = {**kylo, "access": access, "protocols": protocols}
        self.pools.call_cephfs(self.pools.get(nfs["storage_pool_id"]), kaktus.UpdateNfsBackends,
                               self._backends(changed, nfs))
        return self.db.kylos.update(kylo_id, {"description": fields.get("description", ""), "access": access,
                                              "protocols": protocols})

    def delete(self, kylo_id: str) -> None:
        """In the share's owner: a second deletion waits for this one, then finds nothing."""
        self.projects.serializer.run(f"kylo:{kylo_id}", self._delete, kylo_id)

    def _delete(self, kylo_id: str) -> None:
        kylo = self.get(kylo_id)
        nfs = self.db.nfs.get(kylo["nfs_id"])
        pool = self.pools.get(nfs["storage_pool_id"])
        try:
            self.pools.call_cephfs(pool, kaktus.DeleteNfsBackends, self._backends(kylo, nfs))
        except AgentCallFailed:
            pass  # no export left to remove; the subvolume is what matters
        try:
            self.pools.call_cephfs(pool, kaktus.DeleteFsSubVolume, {"FS": nfs["fs"], "SubVolume": kylo["name"]})
        except AgentCallFailed as exc:
            if kylo["name"] in self.pools.call_cephfs(pool, kaktus.ListFsSubVolumes, {"FS": nfs["fs"]})["SubVolumes"]:
                raise Unprocessable(f"share {kylo['name']} could not be deleted: {exc.reason}") from None
        self.db.kylos.delete(kylo_id)
