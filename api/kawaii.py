"""The kawaii tag: a project's Internet gateway in a region, and its IPsec tunnels."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.compute import KawaiiIpSecSchema, KawaiiSchema

blp = Blueprint("kawaii", __name__, description="Kawaii: a project's Internet gateway in a region.")


@blp.route("/kawaii")
class Kawaiis(MethodView):
    @blp.operation("ListKawaiis")
    @blp.ids_response()
    def get(self):
        return services().kawaiis.list_ids()


@blp.route("/kawaii/<kawaiiId>")
class KawaiiById(MethodView):
    @blp.operation("ReadKawaii")
    @blp.response(200, KawaiiSchema)
    def get(self, kawaiiId):
        kawaiis = services().kawaiis
        return kawaiis.details(kawaiis.get(kawaiiId))

    @blp.operation("UpdateKawaii")
    @blp.arguments(KawaiiSchema)
    @blp.response(200, KawaiiSchema)
    def put(self, kawaii, kawaiiId):
        kawaiis = services().kawaiis
        return kawaiis.details(kawaiis.update(kawaiiId, kawaii))

    @blp.operation("DeleteKawaii")
    @blp.response(200)
    def delete(self, kawaiiId):
        services().kawaiis.delete(kawaiiId)
        return empty()


@blp.route("/kawaii/<kawaiiId>/ipsec")
class KawaiiIpSecs(MethodView):
    @blp.operation("ListKawaiiIpSecs")
    @blp.ids_response()
    def get(self, kawaiiId):
        return services().kawaiis.ipsec_ids(kawaiiId)

    @blp.operation("CreateKawaiiIpSec")
    @blp.arguments(KawaiiIpSecSchema)
    @blp.response(201, KawaiiIpSecSchema)
    def post(self, ipsec, kawaiiId):
        return services().kawaiis.create_ipsec(kawaiiId, ipsec)


@blp.route("/kawaii/<kawaiiId>/ipsec/<KawaiiIpSecId>")
class KawaiiIpSecById(MethodView):
    @blp.operation("ReadKawaiiIpSec")
    @blp.response(200, KawaiiIpSecSchema)
    def get(self, kawaiiId, KawaiiIpSecId):
        return services().kawaiis.ipsec(kawaiiId, KawaiiIpSecId)

    @blp.operation("UpdateKawaiiIpSec")
    @blp.arguments(KawaiiIpSecSchema)
    @blp.response(200, KawaiiIpSecSchema)
    def put(self, ipsec, kawaiiId, KawaiiIpSecId):
        return services().kawaiis.update_ipsec(kawaiiId, KawaiiIpSecId, ipsec)

    @blp.operation("DeleteKawaiiIpSec")
    @blp.response(200)
    def delete(self, kawaiiId, KawaiiIpSecId):
        services().kawaiis.delete_ipsec(kawaiiId, KawaiiIpSecId)
        return empty()
