"""The record tag: DNS records (created under their project or region)."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.infrastructure import DnsRecordSchema, DnsRecordUpdateSchema
from api.updates import update_merged

blp = Blueprint("record", __name__, description="DNS records served by the Kiwi gateways.")


@blp.route("/record/<recordId>")
class RecordById(MethodView):
    @blp.operation("ReadDnsRecord")
    @blp.response(200, DnsRecordSchema)
    def get(self, recordId):
        return services().dns.get(recordId)

    @blp.operation("UpdateDnsRecord")
    @blp.arguments(DnsRecordUpdateSchema)
    @blp.response(200, DnsRecordSchema)
    def put(self, changes, recordId):
        dns = services().dns
        return update_merged(f"record:{recordId}", DnsRecordSchema, lambda: dns.get(recordId), changes,
                             lambda record: dns.update(recordId, record["name"], record["description"],
                                                       record["addresses"]))

    @blp.operation("DeleteDnsRecord")
    @blp.response(200)
    def delete(self, recordId):
        services().dns.delete(recordId)
        return empty()
