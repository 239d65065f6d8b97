"""The kawaii (with its IPsec connections) and konvey tags."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.compute import KawaiiIpSecSchema, KawaiiSchema, KonveySchema

kawaii_blp = Blueprint("kawaii", __name__, description="Kawaii: a project's Internet gateway in a region.")
konvey_blp = Blueprint("konvey", __name__, description="Konvey: a project's network load balancer.")


@kawaii_blp.route("/kawaii")
class Kawaiis(MethodView):
    @kawaii_blp.operation("ListKawaiis")
    @kawaii_blp.ids_response()
    def get(self):
        return services().kawaiis.list_ids()


@kawaii_blp.route("/kawaii/<kawaiiId>")
class KawaiiById(MethodView):
    @kawaii_blp.operation("ReadKawaii")
    @kawaii_blp.response(200, KawaiiSchema)
    def get(self, kawaiiId):
        kawaiis = services().kawaiis
        return kawaiis.view(kawaiis.get(kawaiiId))

    @kawaii_blp.operation("UpdateKawaii")
    @kawaii_blp.arguments(KawaiiSchema)
    @kawaii_blp.response(200, KawaiiSchema)
    def put(self, kawaii, kawaiiId):
        kawaiis = services().kawaiis
        return kawaiis.view(kawaiis.update(kawaiiId, kawaii))

    @kawaii_blp.operation("DeleteKawaii")
    @kawaii_blp.response(200)
    def delete(self, kawaiiId):
        services().kawaiis.delete(kawaiiId)
        return empty()


@kawaii_blp.route("/kawaii/<kawaiiId>/ipsec")
class KawaiiIpSecs(MethodView):
    @kawaii_blp.operation("ListKawaiiIpSecs")
    @kawaii_blp.ids_response()
    def get(self, kawaiiId):
        return services().kawaiis.ipsec_ids(kawaiiId)

    @kawaii_blp.operation("CreateKawaiiIpSec")
    @kawaii_blp.arguments(KawaiiIpSecSchema)
    @kawaii_blp.response(201, KawaiiIpSecSchema)
    def post(self, ipsec, kawaiiId):
        return services().kawaiis.create_ipsec(kawaiiId, ipsec)


@kawaii_blp.route("/kawaii/<kawaiiId>/ipsec/<KawaiiIpSecId>")
class KawaiiIpSecById(MethodView):
    @kawaii_blp.operation("ReadKawaiiIpSec")
    @kawaii_blp.response(200, KawaiiIpSecSchema)
    def get(self, kawaiiId, KawaiiIpSecId):
        return services().kawaiis.ipsec(kawaiiId, KawaiiIpSecId)

    @kawaii_blp.operation("UpdateKawaiiIpSec")
    @kawaii_blp.arguments(KawaiiIpSecSchema)
    @kawaii_blp.response(200, KawaiiIpSecSchema)
    def put(self, ipsec, kawaiiId, KawaiiIpSecId):
        return services().kawaiis.update_ipsec(kawaiiId, KawaiiIpSecId, ipsec)

    @kawaii_blp.operation("DeleteKawaiiIpSec")
    @kawaii_blp.response(200)
    def delete(self, kawaiiId, KawaiiIpSecId):
        services().kawaiis.delete_ipsec(kawaiiId, KawaiiIpSecId)
        return empty()


@konvey_blp.route("/konvey")
class Konveys(MethodView):
    @konvey_blp.operation("ListKonveys")
    @konvey_blp.ids_response()
    def get(self):
        return services().konveys.list_ids()


@konvey_blp.route("/konvey/<konveyId>")
class KonveyById(MethodView):
    @konvey_blp.operation("ReadKonvey")
    @konvey_blp.response(200, KonveySchema)
    def get(self, konveyId):
        return services().konveys.get(konveyId)

    @konvey_blp.operation("UpdateKonvey")
    @konvey_blp.arguments(KonveySchema)
    @konvey_blp.response(200, KonveySchema)
    def put(self, konvey, konveyId):
        return services().konveys.update(konveyId, konvey)

    @konvey_blp.operation("DeleteKonvey")
    @konvey_blp.response(200)
    def delete(self, konveyId):
        services().konveys.delete(konveyId)
        return empty()
