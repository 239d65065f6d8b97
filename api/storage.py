"""The pool, nfs and template tags: Ceph pools, NFS storages and OS templates."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.infrastructure import (
    StorageNFSSchema,
    StorageNFSUpdateSchema,
    StoragePoolSchema,
    StoragePoolUpdateSchema,
    TemplateSchema,
    TemplateUpdateSchema,
)
from api.updates import update_merged

pool_blp = Blueprint("pool", __name__, description="Ceph RBD storage pools.")
nfs_blp = Blueprint("nfs", __name__, description="NFS storages (CephFS behind NFS-Ganesha).")
template_blp = Blueprint("template", __name__, description="OS images, held in a storage pool.")


@pool_blp.route("/pool")
class Pools(MethodView):
    @pool_blp.operation("ListStoragePools")
    @pool_blp.ids_response()
    def get(self):
        return services().pools.list_ids()


@pool_blp.route("/pool/<poolId>")
class PoolById(MethodView):
    @pool_blp.operation("ReadStoragePool")
    @pool_blp.response(200, StoragePoolSchema)
    def get(self, poolId):
        return services().pools.get(poolId)

    @pool_blp.operation("UpdateStoragePool")
    @pool_blp.arguments(StoragePoolUpdateSchema)
    @pool_blp.response(200, StoragePoolSchema)
    def put(self, changes, poolId):
        pools = services().pools
        return update_merged(f"pool:{poolId}", StoragePoolSchema, lambda: pools.get(poolId), changes,
                             lambda pool: pools.update(poolId, pool))

    @pool_blp.operation("DeleteStoragePool")
    @pool_blp.response(200)
    def delete(self, poolId):
        services().pools.delete(poolId)
        return empty()


@pool_blp.route("/pool/<poolId>/volumes")
class PoolVolumes(MethodView):
    @pool_blp.operation("ListStoragePoolVolumes")
    @pool_blp.ids_response()
    def get(self, poolId):
        return services().pools.volume_ids(poolId)


@pool_blp.route("/pool/<poolId>/template")
class PoolTemplate(MethodView):
    @pool_blp.operation("CreateStoragePoolTemplate")
    @pool_blp.arguments(TemplateSchema)
    @pool_blp.response(201, TemplateSchema)
    def post(self, template, poolId):
        return services().templates.create(poolId, template["name"], template["description"], template["os"],
                                           template["source"])


@pool_blp.route("/pool/<poolId>/templates")
class PoolTemplates(MethodView):
    @pool_blp.operation("ListStoragePoolTemplates")
    @pool_blp.ids_response()
    def get(self, poolId):
        return services().pools.template_ids(poolId)


@pool_blp.route("/pool/<poolId>/template/<templateId>/default")
class PoolDefaultTemplate(MethodView):
    @pool_blp.operation("SetStoragePoolDefaultTemplate")
    @pool_blp.response(200)
    def patch(self, poolId, templateId):
        services().pools.set_default_template(poolId, templateId)
        return empty()


@nfs_blp.route("/nfs")
class NfsStorages(MethodView):
    @nfs_blp.operation("ListStorageNFSes")
    @nfs_blp.ids_response()
    def get(self):
        return services().nfs.list_ids()


@nfs_blp.route("/nfs/<nfsId>")
class NfsById(MethodView):
    @nfs_blp.operation("ReadStorageNFS")
    @nfs_blp.response(200, StorageNFSSchema)
    def get(self, nfsId):
        return services().nfs.get(nfsId)

    @nfs_blp.operation("UpdateStorageNFS")
    @nfs_blp.arguments(StorageNFSUpdateSchema)
    @nfs_blp.response(200, StorageNFSSchema)
    def put(self, changes, nfsId):
        nfs = services().nfs
        return update_merged(f"nfs:{nfsId}", StorageNFSSchema, lambda: nfs.get(nfsId), changes,
                             lambda storage: nfs.update(nfsId, storage))

    @nfs_blp.operation("DeleteStorageNFS")
    @nfs_blp.response(200)
    def delete(self, nfsId):
        services().nfs.delete(nfsId)
        return empty()


@nfs_blp.route("/nfs/<nfsId>/kylos")
class NfsKylos(MethodView):
    """Also routed at 0.53.2's /nfs/<nfsId>/kylo (api.legacy)."""

    @nfs_blp.operation("ListStorageNFSKylos")
    @nfs_blp.ids_response()
    def get(self, nfsId):
        return services().nfs.kylo_ids(nfsId)


@template_blp.route("/template")
class Templates(MethodView):
    @template_blp.operation("ListTemplates")
    @template_blp.ids_response()
    def get(self):
        return services().templates.list_ids()


@template_blp.route("/template/<templateId>")
class TemplateById(MethodView):
    @template_blp.operation("ReadTemplate")
    @template_blp.response(200, TemplateSchema)
    def get(self, templateId):
        return services().templates.get(templateId)

    @template_blp.operation("UpdateTemplate")
    @template_blp.arguments(TemplateUpdateSchema)
    @template_blp.response(200, TemplateSchema)
    def put(self, changes, templateId):
        templates = services().templates
        return update_merged(f"template:{templateId}", TemplateSchema, lambda: templates.get(templateId), changes,
                             lambda template: templates.update(templateId, template["name"], template["description"],
                                                               template["os"]))

    @template_blp.operation("DeleteTemplate")
    @template_blp.response(200)
    def delete(self, templateId):
        services().templates.delete(templateId)
        return empty()
