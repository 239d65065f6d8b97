"""The project tag: projects, their cost and usage, and the creation and lists of what they own."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, identity, services
from api.schemas.compute import (
    InstanceSchema,
    KawaiiSchema,
    KomputeQuerySchema,
    KomputeSchema,
    KonveySchema,
    KyloSchema,
    NfsQuerySchema,
    VolumeQuerySchema,
    VolumeSchema,
)
from api.schemas.infrastructure import DnsRecordSchema
from api.schemas.projects import (
    CostSchema,
    ListProjectsQuerySchema,
    ProjectResourcesSchema,
    ProjectSchema,
    ProjectUpdateSchema,
    SubnetSizeQuerySchema,
)
from api.updates import update_merged

blp = Blueprint("project", __name__, description="Projects (tenants) and what they own.")


@blp.route("/project")
class Projects(MethodView):
    @blp.operation("ListProjects")
    @blp.arguments(ListProjectsQuerySchema, location="query")
    @blp.ids_response()
    def get(self, _query):
        return services().projects.list_ids(identity())

    @blp.operation("CreateProject")
    @blp.arguments(SubnetSizeQuerySchema, location="query")
    @blp.arguments(ProjectSchema)
    @blp.response(201, ProjectSchema)
    def post(self, query, project):
        return services().projects.create(identity(), project, query["subnetSize"])


@blp.route("/project/<projectId>")
class ProjectById(MethodView):
    @blp.operation("ReadProject")
    @blp.response(200, ProjectSchema)
    def get(self, projectId):
        return services().projects.get(projectId)

    @blp.operation("UpdateProject")
    @blp.arguments(ProjectUpdateSchema)
    @blp.response(200, ProjectSchema)
    def put(self, changes, projectId):
        projects, caller = services().projects, identity()
        # quotas key by key: a body that sets one limit keeps the others (0 would lift them).
        return update_merged(f"project:{projectId}", ProjectSchema, lambda: projects.get(projectId), changes,
                             lambda project: projects.update(caller, projectId, project), by_key=("quotas",))

    @blp.operation("DeleteProject")
    @blp.response(200)
    def delete(self, projectId):
        services().projects.delete(projectId)
        return empty()


@blp.route("/project/<projectId>/cost")
class ProjectCost(MethodView):
    @blp.operation("ReadProjectCost")
    @blp.response(200, CostSchema)
    def get(self, projectId):
        return services().projects.cost(projectId)


@blp.route("/project/<projectId>/usage")
class ProjectUsage(MethodView):
    @blp.operation("ReadProjectUsage")
    @blp.response(200, ProjectResourcesSchema)
    def get(self, projectId):
        return services().projects.usage(projectId)


@blp.route("/project/<projectId>/record")
class ProjectRecord(MethodView):
    @blp.operation("CreateProjectDnsRecord")
    @blp.arguments(DnsRecordSchema)
    @blp.response(201, DnsRecordSchema)
    def post(self, record, projectId):
        project = services().projects.get(projectId)
        return services().dns.create("project_id", project, project.get("domain", ""), record["name"],
                                     record["description"], record["addresses"])


@blp.route("/project/<projectId>/records")
class ProjectRecords(MethodView):
    @blp.operation("ListProjectDnsRecords")
    @blp.ids_response()
    def get(self, projectId):
        services().projects.get(projectId)
        return services().dns.list_ids("project_id", projectId)


# -- what a project owns, created and listed under it ------------------------------------


@blp.route("/project/<projectId>/region/<regionId>/volume")
class ProjectRegionVolume(MethodView):
    @blp.operation("CreateProjectRegionVolume")
    @blp.arguments(VolumeQuerySchema, location="query")
    @blp.arguments(VolumeSchema)
    @blp.response(201, VolumeSchema)
    def post(self, query, volume, projectId, regionId):
        return services().volumes.create(projectId, regionId, volume, query["poolId"], query["templateId"])


@blp.route("/project/<projectId>/region/<regionId>/volumes")
class ProjectRegionVolumes(MethodView):
    @blp.operation("ListProjectRegionVolumes")
    @blp.ids_response()
    def get(self, projectId, regionId):
        return services().volumes.list_ids(projectId, region_id=regionId)


@blp.route("/project/<projectId>/zone/<zoneId>/instance")
class ProjectZoneInstance(MethodView):
    @blp.operation("CreateProjectZoneInstance")
    @blp.arguments(InstanceSchema)
    @blp.response(201, InstanceSchema)
    def post(self, instance, projectId, zoneId):
        return services().instances.create(projectId, zoneId, instance)


@blp.route("/project/<projectId>/zone/<zoneId>/instances")
class ProjectZoneInstances(MethodView):
    @blp.operation("ListProjectZoneInstances")
    @blp.ids_response()
    def get(self, projectId, zoneId):
        return services().instances.list_ids(projectId, zone_id=zoneId)


@blp.route("/project/<projectId>/zone/<zoneId>/kompute")
class ProjectZoneKompute(MethodView):
    @blp.operation("CreateProjectZoneKompute")
    @blp.arguments(KomputeQuerySchema, location="query")
    @blp.arguments(KomputeSchema)
    @blp.response(201, KomputeSchema)
    def post(self, query, kompute, projectId, zoneId):
        komputes = services().komputes
        return komputes.details(komputes.create(projectId, zoneId, kompute, query["poolId"], query["templateId"],
                                             query["public"]))


@blp.route("/project/<projectId>/zone/<zoneId>/komputes")
class ProjectZoneKomputes(MethodView):
    @blp.operation("ListProjectZoneKomputes")
    @blp.ids_response()
    def get(self, projectId, zoneId):
        return services().komputes.list_ids(projectId, zone_id=zoneId)


@blp.route("/project/<projectId>/region/<regionId>/kylos")
class ProjectRegionKylos(MethodView):
    """Also routed at 0.53.2's GET /project/<projectId>/region/<regionId>/kylo (api.legacy)."""

    @blp.operation("ListProjectRegionKylos")
    @blp.arguments(NfsQuerySchema, location="query")
    @blp.ids_response()
    def get(self, _query, projectId, regionId):
        return services().kylos.list_ids(projectId, region_id=regionId)


@blp.route("/project/<projectId>/region/<regionId>/kylo")
class ProjectRegionKylo(MethodView):
    @blp.operation("CreateProjectRegionKylo")
    @blp.arguments(NfsQuerySchema, location="query")
    @blp.arguments(KyloSchema)
    @blp.response(201, KyloSchema)
    def post(self, query, kylo, projectId, regionId):
        kylos = services().kylos
        return kylos.details(kylos.create(projectId, regionId, kylo, query["nfsId"]))


@blp.route("/project/<projectId>/region/<regionId>/kawaii")
class ProjectRegionKawaii(MethodView):
    @blp.operation("CreateProjectRegionKawaii")
    @blp.arguments(KawaiiSchema)
    @blp.response(201, KawaiiSchema)
    def post(self, kawaii, projectId, regionId):
        kawaiis = services().kawaiis
        return kawaiis.details(kawaiis.create(projectId, regionId, kawaii))


@blp.route("/project/<projectId>/region/<regionId>/kawaiis")
class ProjectRegionKawaiis(MethodView):
    @blp.operation("ListProjectRegionKawaiis")
    @blp.ids_response()
    def get(self, projectId, regionId):
        return services().kawaiis.list_ids(projectId, region_id=regionId)


@blp.route("/project/<projectId>/region/<regionId>/konvey")
class ProjectRegionKonvey(MethodView):
    @blp.operation("CreateProjectRegionKonvey")
    @blp.arguments(KonveySchema)
    @blp.response(201, KonveySchema)
    def post(self, konvey, projectId, regionId):
        return services().konveys.create(projectId, regionId, None, konvey)


@blp.route("/project/<projectId>/region/<regionId>/konveys")
class ProjectRegionKonveys(MethodView):
    @blp.operation("ListProjectRegionKonveys")
    @blp.ids_response()
    def get(self, projectId, regionId):
        return services().konveys.list_ids(projectId, region_id=regionId)


@blp.route("/project/<projectId>/zone/<zoneId>/konvey")
class ProjectZoneKonvey(MethodView):
    @blp.operation("CreateProjectZoneKonvey")
    @blp.arguments(KonveySchema)
    @blp.response(201, KonveySchema)
    def post(self, konvey, projectId, zoneId):
        return services().konveys.create(projectId, None, zoneId, konvey)


@blp.route("/project/<projectId>/zone/<zoneId>/konveys")
class ProjectZoneKonveys(MethodView):
    @blp.operation("ListProjectZoneKonveys")
    @blp.ids_response()
    def get(self, projectId, zoneId):
        return services().konveys.list_ids(projectId, zone_id=zoneId)
