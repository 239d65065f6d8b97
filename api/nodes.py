"""The kaktus and kiwi tags: compute/storage nodes and network gateways."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.infrastructure import KaktusCapsSchema, KaktusSchema, KaktusUpdateSchema, KiwiSchema, KiwiUpdateSchema
from api.updates import update_merged

kaktus_blp = Blueprint("kaktus", __name__, description="Kaktus hyper-converged nodes.")
kiwi_blp = Blueprint("kiwi", __name__, description="Kiwi network gateways (DNS).")


@kaktus_blp.route("/kaktus")
class Kaktuses(MethodView):
    @kaktus_blp.operation("ListKaktuses")
    @kaktus_blp.ids_response()
    def get(self):
        return services().kaktuses.list_ids()


@kaktus_blp.route("/kaktus/<kaktusId>")
class KaktusById(MethodView):
    @kaktus_blp.operation("ReadKaktus")
    @kaktus_blp.response(200, KaktusSchema)
    def get(self, kaktusId):
        return services().kaktuses.get(kaktusId)

    @kaktus_blp.operation("UpdateKaktus")
    @kaktus_blp.arguments(KaktusUpdateSchema)
    @kaktus_blp.response(200, KaktusSchema)
    def put(self, changes, kaktusId):
        kaktuses = services().kaktuses
        return update_merged(f"kaktus:{kaktusId}", KaktusSchema, lambda: kaktuses.get(kaktusId), changes,
                             lambda kaktus: kaktuses.update(kaktusId, kaktus))

    @kaktus_blp.operation("DeleteKaktus")
    @kaktus_blp.response(200)
    def delete(self, kaktusId):
        services().kaktuses.delete(kaktusId)
        return empty()


@kaktus_blp.route("/kaktus/<kaktusId>/caps")
class KaktusCaps(MethodView):
    @kaktus_blp.operation("ReadKaktusCaps")
    @kaktus_blp.response(200, KaktusCapsSchema)
    def get(self, kaktusId):
        return services().kaktuses.capabilities(kaktusId)


@kaktus_blp.route("/kaktus/<kaktusId>/instances")
class KaktusInstances(MethodView):
    @kaktus_blp.operation("ListKaktusInstances")
    @kaktus_blp.ids_response()
    def get(self, kaktusId):
        return services().kaktuses.instance_ids(kaktusId)


@kiwi_blp.route("/kiwi")
class Kiwis(MethodView):
    @kiwi_blp.operation("ListKiwis")
    @kiwi_blp.ids_response()
    def get(self):
        return services().kiwis.list_ids()


@kiwi_blp.route("/kiwi/<kiwiId>")
class KiwiById(MethodView):
    @kiwi_blp.operation("ReadKiwi")
    @kiwi_blp.response(200, KiwiSchema)
    def get(self, kiwiId):
        return services().kiwis.get(kiwiId)

    @kiwi_blp.operation("UpdateKiwi")
    @kiwi_blp.arguments(KiwiUpdateSchema)
    @kiwi_blp.response(200, KiwiSchema)
    def put(self, changes, kiwiId):
        kiwis = services().kiwis
        return update_merged(f"kiwi:{kiwiId}", KiwiSchema, lambda: kiwis.get(kiwiId), changes,
                             lambda kiwi: kiwis.update(kiwiId, kiwi["name"], kiwi["description"], kiwi["agent_ids"]))

    @kiwi_blp.operation("DeleteKiwi")
    @kiwi_blp.response(200)
    def delete(self, kiwiId):
        services().kiwis.delete(kiwiId)
        return empty()
