"""The record tag: DNS records (created under their project or region)."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.infrastructure import DnsRecordSchema

blp = Blueprint("record", __name__, description="DNS records served by the Kiwi gateways.")


@blp.route("/record/<recordId>")
class RecordById(MethodView):
    @blp.operation("ReadDnsRecord")
    @blp.response(200, DnsRecordSchema)
    def get(self, recordId):
        return services().dns.get(recordId)

    @blp.operation("UpdateDnsRecord")
    @blp.arguments(DnsRecordSchema)
    @blp.response(200, DnsRecordSchema)
    def put(self, record, recordId):
        return services().dns.update(recordId, record["name"], record["description"], record["addresses"])

    @blp.operation("DeleteDnsRecord")
    @blp.response(200)
    def delete(self, recordId):
        services().dns.delete(recordId)
        return empty()
