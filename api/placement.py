"""Placement routes of API 0.58: Kaktus maintenance, and instances and Komputes created region-wide (Kahuna
elects the zone and the node)."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.compute import InstanceSchema, KomputeQuerySchema, KomputeSchema

blp = Blueprint("placement", __name__, description="Kaktus maintenance and region-wide placement.")


@blp.route("/kaktus/<kaktusId>/maintenance/enable")
class KaktusMaintenanceEnable(MethodView):
    @blp.operation("EnableKaktusMaintenance")
    @blp.response(200)
    def patch(self, kaktusId):
        services().kaktuses.set_maintenance(kaktusId, True)
        return empty()


@blp.route("/kaktus/<kaktusId>/maintenance/disable")
class KaktusMaintenanceDisable(MethodView):
    @blp.operation("DisableKaktusMaintenance")
    @blp.response(200)
    def patch(self, kaktusId):
        services().kaktuses.set_maintenance(kaktusId, False)
        return empty()


@blp.route("/project/<projectId>/region/<regionId>/instance")
class ProjectRegionInstance(MethodView):
    @blp.operation("CreateProjectRegionInstance")
    @blp.arguments(InstanceSchema)
    @blp.response(201, InstanceSchema)
    def post(self, instance, projectId, regionId):
        return services().instances.create_in_region(projectId, regionId, instance)


@blp.route("/project/<projectId>/region/<regionId>/instances")
class ProjectRegionInstances(MethodView):
    @blp.operation("ListProjectRegionInstances")
    @blp.ids_response()
    def get(self, projectId, regionId):
        return services().instances.list_ids(projectId, region_id=regionId)


@blp.route("/project/<projectId>/region/<regionId>/kompute")
class ProjectRegionKompute(MethodView):
    @blp.operation("CreateProjectRegionKompute")
    @blp.arguments(KomputeQuerySchema, location="query")
    @blp.arguments(KomputeSchema)
    @blp.response(201, KomputeSchema)
    def post(self, query, kompute, projectId, regionId):
        komputes = services().komputes
        return komputes.details(komputes.create_in_region(projectId, regionId, kompute, query["poolId"],
                                                          query["templateId"], query["public"]))


@blp.route("/project/<projectId>/region/<regionId>/komputes")
class ProjectRegionKomputes(MethodView):
    @blp.operation("ListProjectRegionKomputes")
    @blp.ids_response()
    def get(self, projectId, regionId):
        return services().komputes.list_ids(projectId, region_id=regionId)
