"""The kwarantine tag (API 0.58): a project's anti-affinity groups of instances and Komputes."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.kwarantine import KwarantineSchema, KwarantineUpdateSchema

blp = Blueprint("kwarantine", __name__, description="Kwarantine: anti-affinity groups of a project's instances.")


@blp.route("/kwarantine")
class Kwarantines(MethodView):
    @blp.operation("ListKwarantines")
    @blp.ids_response()
    def get(self):
        return services().kwarantines.list_ids()


@blp.route("/kwarantine/<kwarantineId>")
class KwarantineById(MethodView):
    @blp.operation("ReadKwarantine")
    @blp.response(200, KwarantineSchema)
    def get(self, kwarantineId):
        kwarantines = services().kwarantines
        return kwarantines.details(kwarantines.get(kwarantineId))

    @blp.operation("UpdateKwarantine")
    @blp.arguments(KwarantineUpdateSchema)
    @blp.response(200, KwarantineSchema)
    def put(self, changes, kwarantineId):
        kwarantines = services().kwarantines
        return kwarantines.details(kwarantines.update(kwarantineId, changes))

    @blp.operation("DeleteKwarantine")
    @blp.response(200)
    def delete(self, kwarantineId):
        services().kwarantines.delete(kwarantineId)
        return empty()


@blp.route("/kwarantine/<kwarantineId>/instance/<instanceId>")
class KwarantineInstance(MethodView):
    @blp.operation("AddKwarantineInstance")
    @blp.response(200, KwarantineSchema)
    def put(self, kwarantineId, instanceId):
        kwarantines = services().kwarantines
        return kwarantines.details(kwarantines.add_instance(kwarantineId, instanceId))

    @blp.operation("RemoveKwarantineInstance")
    @blp.response(200)
    def delete(self, kwarantineId, instanceId):
        services().kwarantines.remove_instance(kwarantineId, instanceId)
        return empty()


@blp.route("/kwarantine/<kwarantineId>/kompute/<komputeId>")
class KwarantineKompute(MethodView):
    @blp.operation("AddKwarantineKompute")
    @blp.response(200, KwarantineSchema)
    def put(self, kwarantineId, komputeId):
        kwarantines = services().kwarantines
        return kwarantines.details(kwarantines.add_kompute(kwarantineId, komputeId))

    @blp.operation("RemoveKwarantineKompute")
    @blp.response(200)
    def delete(self, kwarantineId, komputeId):
        services().kwarantines.remove_kompute(kwarantineId, komputeId)
        return empty()


@blp.route("/project/<projectId>/kwarantine")
class ProjectKwarantine(MethodView):
    @blp.operation("CreateProjectKwarantine")
    @blp.arguments(KwarantineSchema)
    @blp.response(201, KwarantineSchema)
    def post(self, kwarantine, projectId):
        kwarantines = services().kwarantines
        return kwarantines.details(kwarantines.create(projectId, kwarantine))


@blp.route("/project/<projectId>/kwarantines")
class ProjectKwarantines(MethodView):
    @blp.operation("ListProjectKwarantines")
    @blp.ids_response()
    def get(self, projectId):
        return services().kwarantines.list_ids(projectId)
