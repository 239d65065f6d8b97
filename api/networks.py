"""The vnet, subnet and adapter tags."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.infrastructure import (
    AdapterSchema,
    AdapterUpdateSchema,
    AssignIpQuerySchema,
    SubnetSchema,
    SubnetUpdateSchema,
    VNetSchema,
    VNetUpdateSchema,
)
from api.updates import update_merged

vnet_blp = Blueprint("vnet", __name__, description="Virtual networks (a VLAN on a host bridge).")
subnet_blp = Blueprint("subnet", __name__, description="Subnets of a virtual network.")
adapter_blp = Blueprint("adapter", __name__, description="Network adapters: a MAC and addresses in a subnet.")


@vnet_blp.route("/vnet")
class VNets(MethodView):
    @vnet_blp.operation("ListVNets")
    @vnet_blp.ids_response()
    def get(self):
        return services().vnets.list_ids()


@vnet_blp.route("/vnet/<vnetId>")
class VNetById(MethodView):
    @vnet_blp.operation("ReadVNet")
    @vnet_blp.response(200, VNetSchema)
    def get(self, vnetId):
        return services().vnets.get(vnetId)

    @vnet_blp.operation("UpdateVNet")
    @vnet_blp.arguments(VNetUpdateSchema)
    @vnet_blp.response(200, VNetSchema)
    def put(self, changes, vnetId):
        vnets = services().vnets
        return update_merged(f"vnet:{vnetId}", VNetSchema, lambda: vnets.get(vnetId), changes,
                             lambda vnet: vnets.update(vnetId, vnet))

    @vnet_blp.operation("DeleteVNet")
    @vnet_blp.response(200)
    def delete(self, vnetId):
        services().vnets.delete(vnetId)
        return empty()


@vnet_blp.route("/vnet/<vnetId>/subnet")
class VNetSubnet(MethodView):
    @vnet_blp.operation("CreateVNetSubnet")
    @vnet_blp.arguments(SubnetSchema)
    @vnet_blp.response(201, SubnetSchema)
    def post(self, subnet, vnetId):
        return services().subnets.create(vnetId, subnet)


@vnet_blp.route("/vnet/<vnetId>/subnets")
class VNetSubnets(MethodView):
    @vnet_blp.operation("ListVNetSubnets")
    @vnet_blp.ids_response()
    def get(self, vnetId):
        return services().vnets.subnet_ids(vnetId)


@vnet_blp.route("/vnet/<vnetId>/subnet/<subnetId>/default")
class VNetDefaultSubnet(MethodView):
    @vnet_blp.operation("SetVNetDefaultSubnet")
    @vnet_blp.response(200)
    def patch(self, vnetId, subnetId):
        services().vnets.set_default_subnet(vnetId, subnetId)
        return empty()


@subnet_blp.route("/subnet")
class Subnets(MethodView):
    @subnet_blp.operation("ListSubnets")
    @subnet_blp.ids_response()
    def get(self):
        return services().subnets.list_ids()


@subnet_blp.route("/subnet/<subnetId>")
class SubnetById(MethodView):
    @subnet_blp.operation("ReadSubnet")
    @subnet_blp.response(200, SubnetSchema)
    def get(self, subnetId):
        return services().subnets.get(subnetId)

    @subnet_blp.operation("UpdateSubnet")
    @subnet_blp.arguments(SubnetUpdateSchema)
    @subnet_blp.response(200, SubnetSchema)
    def put(self, changes, subnetId):
        subnets = services().subnets
        return update_merged(f"subnet:{subnetId}", SubnetSchema, lambda: subnets.get(subnetId), changes,
                             lambda subnet: subnets.update(subnetId, subnet))

    @subnet_blp.operation("DeleteSubnet")
    @subnet_blp.response(200)
    def delete(self, subnetId):
        services().subnets.delete(subnetId)
        return empty()


@subnet_blp.route("/subnet/<subnetId>/adapter")
class SubnetAdapter(MethodView):
    @subnet_blp.operation("CreateSubnetAdapter")
    @subnet_blp.arguments(AssignIpQuerySchema, location="query")
    @subnet_blp.arguments(AdapterSchema)
    @subnet_blp.response(201, AdapterSchema)
    def post(self, query, adapter, subnetId):
        return services().adapters.create(subnetId, adapter, query["assignIP"])


@subnet_blp.route("/subnet/<subnetId>/adapters")
class SubnetAdapters(MethodView):
    @subnet_blp.operation("ListSubnetAdapters")
    @subnet_blp.ids_response()
    def get(self, subnetId):
        return services().subnets.adapter_ids(subnetId)


@adapter_blp.route("/adapter")
class Adapters(MethodView):
    @adapter_blp.operation("ListAdapters")
    @adapter_blp.ids_response()
    def get(self):
        return services().adapters.list_ids()


@adapter_blp.route("/adapter/<adapterId>")
class AdapterById(MethodView):
    @adapter_blp.operation("ReadAdapter")
    @adapter_blp.response(200, AdapterSchema)
    def get(self, adapterId):
        return services().adapters.get(adapterId)

    @adapter_blp.operation("UpdateAdapter")
    @adapter_blp.arguments(AdapterUpdateSchema)
    @adapter_blp.response(200, AdapterSchema)
    def put(self, changes, adapterId):
        adapters = services().adapters
        # AdapterService.update decides in its subnet's owner (addresses against the subnet's other adapters).
        subnet_id = adapters.get(adapterId)["subnet_id"]
        return update_merged(f"subnet:{subnet_id}", AdapterSchema, lambda: adapters.get(adapterId), changes,
                             lambda adapter: adapters.update(adapterId, adapter))

    @adapter_blp.operation("DeleteAdapter")
    @adapter_blp.response(200)
    def delete(self, adapterId):
        services().adapters.delete(adapterId)
        return empty()
