"""The project tag: projects, their cost and usage. Project-scoped creations come with their resources."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, identity, services
from api.schemas.infrastructure import DnsRecordSchema
from api.schemas.projects import CostSchema, ProjectResourcesSchema, ProjectSchema, SubnetSizeQuerySchema

blp = Blueprint("project", __name__, description="Projects (tenants) and what they own.")


@blp.route("/project")
class Projects(MethodView):
    @blp.operation("ListProjects")
    @blp.arguments(SubnetSizeQuerySchema, location="query")
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
    @blp.arguments(ProjectSchema)
    @blp.response(200, ProjectSchema)
    def put(self, project, projectId):
        return services().projects.update(identity(), projectId, project)

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
