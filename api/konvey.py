"""The konvey tag: a project's network load balancer."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.compute import KonveySchema, KonveyUpdateSchema
from api.updates import update_merged

blp = Blueprint("konvey", __name__, description="Konvey: a project's network load balancer.")


@blp.route("/konvey")
class Konveys(MethodView):
    @blp.operation("ListKonveys")
    @blp.ids_response()
    def get(self):
        return services().konveys.list_ids()


@blp.route("/konvey/<konveyId>")
class KonveyById(MethodView):
    @blp.operation("ReadKonvey")
    @blp.response(200, KonveySchema)
    def get(self, konveyId):
        return services().konveys.get(konveyId)

    @blp.operation("UpdateKonvey")
    @blp.arguments(KonveyUpdateSchema)
    @blp.response(200, KonveySchema)
    def put(self, changes, konveyId):
        konveys = services().konveys
        return update_merged(f"konvey:{konveyId}", KonveySchema, lambda: konveys.get(konveyId), changes,
                             lambda konvey: konveys.update(konveyId, konvey))

    @blp.operation("DeleteKonvey")
    @blp.response(200)
    def delete(self, konveyId):
        services().konveys.delete(konveyId)
        return empty()
