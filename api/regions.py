"""The region tag: regions, and the objects created in a region."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.infrastructure import (
    DnsRecordSchema,
    KiwiSchema,
    PoolQuerySchema,
    RegionSchema,
    RegionUpdateSchema,
    StorageNFSSchema,
    StoragePoolSchema,
    VNetSchema,
    ZoneSchema,
)
from api.updates import update_merged

blp = Blueprint("region", __name__, description="Regions and what they hold.")


@blp.route("/region")
class Regions(MethodView):
    @blp.operation("ListRegions")
    @blp.ids_response()
    def get(self):
        return services().regions.list_ids()

    @blp.operation("CreateRegion")
    @blp.arguments(RegionSchema)
    @blp.response(201, RegionSchema)
    def post(self, region):
        return services().regions.create(region["name"], region["description"], region["domain"])


@blp.route("/region/<regionId>")
class RegionById(MethodView):
    @blp.operation("ReadRegion")
    @blp.response(200, RegionSchema)
    def get(self, regionId):
        return services().regions.get(regionId)

    @blp.operation("UpdateRegion")
    @blp.arguments(RegionUpdateSchema)
    @blp.response(200, RegionSchema)
    def put(self, changes, regionId):
        regions = services().regions
        # RegionService.update decides in the "domains" owner (a region's domain against every other domain).
        return update_merged("domains", RegionSchema, lambda: regions.get(regionId), changes,
                             lambda region: regions.update(regionId, region["name"], region["description"],
                                                           region["domain"]))

    @blp.operation("DeleteRegion")
    @blp.response(200)
    def delete(self, regionId):
        services().regions.delete(regionId)
        return empty()


@blp.route("/region/<regionId>/zone")
class RegionZone(MethodView):
    @blp.operation("CreateRegionZone")
    @blp.arguments(ZoneSchema)
    @blp.response(201, ZoneSchema)
    def post(self, zone, regionId):
        return services().zones.create(regionId, zone["name"], zone["description"])


@blp.route("/region/<regionId>/zones")
class RegionZones(MethodView):
    @blp.operation("ListRegionZones")
    @blp.ids_response()
    def get(self, regionId):
        return services().regions.children(regionId, services().db.zones)


@blp.route("/region/<regionId>/kiwi")
class RegionKiwi(MethodView):
    @blp.operation("CreateRegionKiwi")
    @blp.arguments(KiwiSchema)
    @blp.response(201, KiwiSchema)
    def post(self, kiwi, regionId):
        return services().kiwis.create(regionId, kiwi["name"], kiwi["description"], kiwi["agent_ids"])


@blp.route("/region/<regionId>/kiwis")
class RegionKiwis(MethodView):
    @blp.operation("ListRegionKiwis")
    @blp.ids_response()
    def get(self, regionId):
        return services().kiwis.list_ids(regionId)


@blp.route("/region/<regionId>/vnet")
class RegionVNet(MethodView):
    @blp.operation("CreateRegionVNet")
    @blp.arguments(VNetSchema)
    @blp.response(201, VNetSchema)
    def post(self, vnet, regionId):
        return services().vnets.create(regionId, vnet)


@blp.route("/region/<regionId>/vnets")
class RegionVNets(MethodView):
    @blp.operation("ListRegionVNets")
    @blp.ids_response()
    def get(self, regionId):
        return services().vnets.list_ids(regionId)


@blp.route("/region/<regionId>/pool")
class RegionPool(MethodView):
    @blp.operation("CreateRegionStoragePool")
    @blp.arguments(StoragePoolSchema)
    @blp.response(201, StoragePoolSchema)
    def post(self, pool, regionId):
        return services().pools.create(regionId, pool)


@blp.route("/region/<regionId>/pools")
class RegionPools(MethodView):
    @blp.operation("ListRegionStoragePools")
    @blp.ids_response()
    def get(self, regionId):
        return services().pools.list_ids(regionId)


@blp.route("/region/<regionId>/pool/<poolId>/default")
class RegionDefaultPool(MethodView):
    @blp.operation("SetRegionDefaultStoragePool")
    @blp.response(200)
    def patch(self, regionId, poolId):
        services().regions.set_default(regionId, "pool_id", services().db.pools, poolId)
        return empty()


@blp.route("/region/<regionId>/nfses")
class RegionNfses(MethodView):
    """Also routed at 0.53.2's GET /region/<regionId>/nfs (api.legacy), which took a poolId: still accepted,
    ignored."""

    @blp.operation("ListRegionStorageNFSes")
    @blp.arguments(PoolQuerySchema, location="query")
    @blp.ids_response()
    def get(self, _query, regionId):
        return services().nfs.list_ids(regionId)


@blp.route("/region/<regionId>/nfs")
class RegionNfs(MethodView):
    @blp.operation("CreateRegionStorageNFS")
    @blp.arguments(PoolQuerySchema, location="query")
    @blp.arguments(StorageNFSSchema)
    @blp.response(201, StorageNFSSchema)
    def post(self, query, nfs, regionId):
        return services().nfs.create(regionId, query["poolId"], nfs)


@blp.route("/region/<regionId>/nfs/<nfsId>/default")
class RegionDefaultNfs(MethodView):
    @blp.operation("SetRegionDefaultStorageNFS")
    @blp.response(200)
    def patch(self, regionId, nfsId):
        services().regions.set_default(regionId, "nfs_id", services().db.nfs, nfsId)
        return empty()


@blp.route("/region/<regionId>/record")
class RegionRecord(MethodView):
    @blp.operation("CreateRegionDnsRecord")
    @blp.arguments(DnsRecordSchema)
    @blp.response(201, DnsRecordSchema)
    def post(self, record, regionId):
        region = services().regions.get(regionId)
        return services().dns.create("region_id", region, region["domain"], record["name"], record["description"],
                                     record["addresses"])


@blp.route("/region/<regionId>/records")
class RegionRecords(MethodView):
    @blp.operation("ListRegionDnsRecords")
    @blp.ids_response()
    def get(self, regionId):
        services().regions.get(regionId)
        return services().dns.list_ids("region_id", regionId)
