"""Volumes: RBD images in a storage pool, owned by a project.

A volume's name is its RBD image name, so it is unique within its pool and cannot
change. The document is written first (it holds the name and counts against the
project's storage quota from that moment), then the agent makes the image; if the
agent fails the document goes away again.

Only ``os`` (a clone of a template) and ``raw`` (empty) volumes are made through
the API; ``iso`` volumes are the cloud-init seeds Kahuna writes for instances.
"""

from __future__ import annotations

import logging
import typing

from kahuna import rpc
from kahuna.errors import AgentCallFailed, Conflict, NotFound, Unprocessable
from kahuna.services._common import CREATING, DELETING, READY, UPDATING, child_of
from kahuna.services._undo import Undo
from kahuna.services.names import check_name
from kahuna.services.projects import BILLED_VOLUME_TYPES, ProjectService
from kahuna.services.storage_pools import PoolService
from kahuna.storage import Database, models

log = logging.getLogger(__name__)

OS, RAW, ISO = "os", "raw", "iso"


class VolumeService:
    def __init__(self, db: Database, pools: PoolService, projects: ProjectService):
        self.db = db
        self.pools = pools
        self.projects = projects

    # -- reads ---------------------------------------------------------------------

    def list_ids(self, project_id: str | None = None, region_id: str | None = None) -> list[str]:
        """The project's volumes (its instances' seeds are not volumes of the API), or those of a region."""
        query: dict[str, typing.Any] = {"type": {"$in": list(BILLED_VOLUME_TYPES)}}
        if project_id is not None:
            self.projects.get(project_id)
            query["project_id"] = project_id
        if region_id is not None:
            self.db.regions.get(region_id)
            query["region_id"] = region_id
        return self.db.volumes.ids(query)

    def get(self, volume_id: str) -> models.Volume:
        volume = self.db.volumes.get(volume_id)
        if volume["type"] not in BILLED_VOLUME_TYPES:
            raise NotFound(f"volume {volume_id} does not exist")  # a seed is part of its instance
        return volume

    # -- choosing where ------------------------------------------------------------

    def pool_of_region(self, region_id: str, pool_id: str | None) -> models.StoragePool:
        """The pool named, which must be of the region, or the region's default pool."""
        region = self.db.regions.get(region_id)
        pool_id = pool_id or region.get("defaults", {}).get("pool_id")
        if not pool_id:
            raise NotFound(f"region {region['name']} has no storage pool: create one, or name one with ?poolId")
        return child_of(self.db.pools, pool_id, "region_id", region_id)

    def template_of_pool(self, pool: models.StoragePool, template_id: str | None) -> models.Template:
        template_id = template_id or pool.get("defaults", {}).get("template_id")
        if not template_id:
            raise NotFound(f"storage pool {pool['name']} has no template: create one, or name one with ?templateId")
        return child_of(self.db.templates, template_id, "storage_pool_id", str(pool["_id"]))

    # -- the steps (used by instances and Komputes too) ---------------------------------

    def claim(self, project_id: str, pool: models.StoragePool, name: str, description: str, volume_type: str, size: int,
              template: models.Template | None = None, instance_id: str = "") -> models.Volume:
        """The volume's document, before the image exists (409 if the pool has that name); in the pool's owner,
        so that neither the pool nor the template can be deleted meanwhile."""
        def insert() -> models.Volume:
            self.pools.get(str(pool["_id"]))
            if template is not None and self.db.templates.get(template["_id"]).get("state", READY) != READY:
                raise Conflict(f"template {template['name']} is being deleted")
            return self.db.volumes.insert(
                {"project_id": project_id, "region_id": pool["region_id"], "storage_pool_id": str(pool["_id"]),
                 "template_id": str(template["_id"]) if template else "", "name": name, "description": description,
                 "type": volume_type, "size": size, "instance_id": instance_id, "state": CREATING},
                conflict=f"storage pool {pool['name']} already has a volume named {name}")

        return self.pools.owners.run(f"pool:{pool['_id']}", insert)

    def realize(self, volume: models.Volume, content: bytes = b"") -> models.Volume:
        """Have an agent of the pool make the image of a claimed volume."""
        pool = self.pools.get(volume["storage_pool_id"])
        if volume["type"] == OS:
            template = self.db.templates.get(volume["template_id"])
            self.pools.call(pool, rpc.kaktus.CreateOsVolume, {"Volume": volume["name"], "Size": volume["size"],
                                                     "Template": template["volume"]})
        elif volume["type"] == RAW:
            self.pools.call(pool, rpc.kaktus.CreateRawVolume, {"Volume": volume["name"], "Size": volume["size"]})
        else:
            self.pools.call(pool, rpc.kaktus.CreateIsoVolume, {"Volume": volume["name"], "Size": len(content),
                                                      "Content": content})
        return self.db.volumes.update(volume["_id"], {"state": "ready"})

    def destroy(self, volume: models.Volume) -> None:
        """Remove the image (an image the agent no longer has is fine), then the document."""
        pool = self.pools.get(volume["storage_pool_id"])
        try:
            self.pools.call(pool, rpc.kaktus.DeleteVolume, {"Volume": volume["name"], "WithSnapshots": True})
        except AgentCallFailed as exc:
            log.info("volume %s/%s: the agent could not delete it (%s); forgetting it", pool["pool"],
                     volume["name"], exc.reason)
        self.db.volumes.delete_many({"_id": volume["_id"]})

    # -- the API ---------------------------------------------------------------------

    def create(self, project_id: str, region_id: str, fields: dict[str, typing.Any], pool_id: str | None,
               template_id: str | None) -> models.Volume:
        check_name(fields["name"], "volume", label=False)  # its RBD image's name
        project = self.projects.get(project_id)
        self.db.regions.get(region_id)
        if region_id not in project.get("region_ids", []):
            raise Unprocessable(f"project {project['name']} is not in this region")
        volume_type = fields["type"]
        if volume_type not in BILLED_VOLUME_TYPES:
            raise Unprocessable(f"unsupported volume type {volume_type!r}: the API creates 'os' and 'raw' volumes")
        if fields["size"] <= 0:
            raise Unprocessable("a volume's size must be positive (bytes)")
        pool = self.pool_of_region(region_id, pool_id)
        template = self.template_of_pool(pool, template_id) if volume_type == OS else None
        volume = self.projects.reserve(project_id, {"storage": fields["size"]}, lambda: self.claim(
            project_id, pool, fields["name"], fields.get("description", ""), volume_type, fields["size"], template))
        with Undo() as undo:
            undo.push(f"forget volume {volume['name']}", lambda: self.db.volumes.delete_many({"_id": volume["_id"]}))
            return self.realize(volume)

    def update(self, volume_id: str, fields: dict[str, typing.Any]) -> models.Volume:
        volume = self.get(volume_id)
        if fields["name"] != volume["name"]:
            raise Unprocessable("a volume cannot be renamed: its name is its image's name in the pool")
        if fields["type"] != volume["type"]:
            raise Unprocessable("a volume's type cannot be changed")
        if fields["size"] < volume["size"]:
            raise Unprocessable(f"a volume cannot shrink (it holds {volume['size']} bytes)")
        if fields["size"] > volume["size"]:
            self._grow(volume, fields["size"])
        return self.db.volumes.update(volume_id, {"description": fields.get("description", "")})

    def _grow(self, volume: models.Volume, size: int) -> None:
        """Claim the growth (quota, in the project's owner) and mark the volume ``updating``; have the agent
        resize the image with no owner held; then commit, or put the old size back."""
        volume_id = volume["_id"]

        def claim() -> None:
            current = self.db.volumes.get(volume_id)
            if current.get("state", READY) != READY:
                raise Conflict(f"volume {current['name']} is being {current['state'].removesuffix('ing')}ed")
            self.db.volumes.update(volume_id, {"size": size, "state": UPDATING, "previous": {"size": current["size"]}})

        self.projects.reserve(volume["project_id"], {"storage": size - volume["size"]}, claim)
        try:
            self.pools.call(self.pools.get(volume["storage_pool_id"]), rpc.kaktus.ResizeVolume,
                            {"Volume": volume["name"], "Size": size})
        except BaseException:
            self.db.volumes.update(volume_id, {"size": volume["size"], "state": READY},
                                   extra={"$unset": {"previous": ""}})
            raise
        self.db.volumes.update(volume_id, {"state": READY}, extra={"$unset": {"previous": ""}})

    def grow(self, volume: models.Volume, size: int) -> None:
        """Grow a volume to *size* if it is smaller (Kompute disks)."""
        if size > volume["size"]:
            self._grow(volume, size)

    def delete(self, volume_id: str) -> None:
        """In the volume's owner: a second deletion waits for this one, then finds nothing."""
        project_id = self.get(volume_id)["project_id"]
        self.projects.serializer.run(f"volume:{volume_id}", self._delete, volume_id, project_id)

    def _delete(self, volume_id: str, project_id: str) -> None:
        def decide() -> tuple[str, models.Volume]:
            # In the project's owner, where instances claim their disks: it cannot become one meanwhile.
            volume = self.get(volume_id)
            user = self.db.instances.find_one({"volume_ids": volume_id})
            if user is not None:
                raise Conflict(f"volume {volume['name']} is a disk of instance {user['name']}")
            if volume.get("instance_id"):
                raise Conflict(f"volume {volume['name']} was made for a Kompute: delete the Kompute")
            if volume.get("state", READY) == CREATING:
                raise Conflict(f"volume {volume['name']} is still being created")
            if volume.get("state", READY) == UPDATING:
                raise Conflict(f"volume {volume['name']} is being changed")
            return volume.get("state", READY), self.db.volumes.update(volume_id, {"state": DELETING})

        state_before, volume = self.projects.serializer.run(f"project:{project_id}", decide)
        try:
            self.destroy(volume)
        except BaseException:
            self.db.volumes.update(volume_id, {"state": state_before})  # nothing was deleted: try again later
            raise
