"""The zone tag: availability zones, and the Kaktus nodes created in them."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.infrastructure import KaktusSchema, ZoneSchema, ZoneUpdateSchema
from api.updates import update_merged

blp = Blueprint("zone", __name__, description="Availability zones of a region.")


@blp.route("/zone")
class Zones(MethodView):
    @blp.operation("ListZones")
    @blp.ids_response()
    def get(self):
        return services().zones.list_ids()


@blp.route("/zone/<zoneId>")
class ZoneById(MethodView):
    @blp.operation("ReadZone")
    @blp.response(200, ZoneSchema)
    def get(self, zoneId):
        return services().zones.get(zoneId)

    @blp.operation("UpdateZone")
    @blp.arguments(ZoneUpdateSchema)
    @blp.response(200, ZoneSchema)
    def put(self, changes, zoneId):
        zones = services().zones
        return update_merged(f"zone:{zoneId}", ZoneSchema, lambda: zones.get(zoneId), changes,
                             lambda zone: zones.update(zoneId, zone["name"], zone["description"]))

    @blp.operation("DeleteZone")
    @blp.response(200)
    def delete(self, zoneId):
        services().zones.delete(zoneId)
        return empty()


@blp.route("/zone/<zoneId>/kaktus")
class ZoneKaktus(MethodView):
    @blp.operation("CreateZoneKaktus")
    @blp.arguments(KaktusSchema)
    @blp.response(201, KaktusSchema)
    def post(self, kaktus, zoneId):
        return services().kaktuses.create(zoneId, kaktus)


@blp.route("/zone/<zoneId>/kaktuses")
class ZoneKaktuses(MethodView):
    @blp.operation("ListZoneKaktuses")
    @blp.ids_response()
    def get(self, zoneId):
        return services().kaktuses.list_ids(zoneId)
