"""The kawaii tag: a project's Internet gateway in a region, and its IPsec tunnels."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.compute import KawaiiIpSecSchema, KawaiiIpSecUpdateSchema, KawaiiSchema, KawaiiUpdateSchema
from api.updates import update_merged

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
    @blp.arguments(KawaiiUpdateSchema)
    @blp.response(200, KawaiiSchema)
    def put(self, changes, kawaiiId):
        kawaiis = services().kawaiis
        return kawaiis.details(update_merged(f"kawaii:{kawaiiId}", KawaiiSchema,
                                             lambda: kawaiis.details(kawaiis.get(kawaiiId)), changes,
                                             lambda kawaii: kawaiis.update(kawaiiId, kawaii)))

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


@blp.route("/kawaii/<kawaiiId>/ipsec/<kawaiiIpSecId>")
class KawaiiIpSecById(MethodView):
    @blp.operation("ReadKawaiiIpSec")
    @blp.response(200, KawaiiIpSecSchema)
    def get(self, kawaiiId, kawaiiIpSecId):
        return services().kawaiis.ipsec(kawaiiId, kawaiiIpSecId)

    @blp.operation("UpdateKawaiiIpSec")
    @blp.arguments(KawaiiIpSecUpdateSchema)
    @blp.response(200, KawaiiIpSecSchema)
    def put(self, changes, kawaiiId, kawaiiIpSecId):
        kawaiis = services().kawaiis
        return update_merged(f"kawaii:{kawaiiId}", KawaiiIpSecSchema, lambda: kawaiis.ipsec(kawaiiId, kawaiiIpSecId),
                             changes, lambda ipsec: kawaiis.update_ipsec(kawaiiId, kawaiiIpSecId, ipsec))

    @blp.operation("DeleteKawaiiIpSec")
    @blp.response(200)
    def delete(self, kawaiiId, kawaiiIpSecId):
        services().kawaiis.delete_ipsec(kawaiiId, kawaiiIpSecId)
        return empty()
