"""Schemas of the infrastructure tags: region, zone, kaktus, kiwi, pool, nfs, template, vnet, subnet,
adapter, record. Defaults are the contract's."""

from __future__ import annotations

import typing

from marshmallow import fields, validate

from api.schemas.common import ApiSchema, Boolean, Integer, List, ObjectIdString, QuerySchema, read_only
from api.schemas.projects import CostSchema
from api.schemas.updates import update_schema

NAME = validate.Length(min=1, max=128)
DESCRIPTION = validate.Length(max=1024)
INT64 = validate.Range(min=0, max=2**63 - 1)


def _name():
    return fields.String(required=True, validate=NAME)


def _description():
    return fields.String(load_default="", validate=DESCRIPTION)


def _agents(required: bool):
    agents = List(fields.String(), attribute="agent_ids", metadata={"description": "IDs of its agents."})
    if required:
        agents.required = True
    else:
        agents.load_default = list
    return agents


class RegionSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    domain = fields.String(required=True, validate=validate.Length(min=1, max=253),
                           metadata={"description": "DNS domain of the region's records."})


class ZoneSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()


class KaktusSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    cpu_cost = fields.Nested(CostSchema, load_default=None)
    memory_cost = fields.Nested(CostSchema, load_default=None)
    overcommit_cpu_ratio = Integer(load_default=3, validate=validate.Range(min=1, max=100),
                                   metadata={"format": "int64"})
    overcommit_memory_ratio = Integer(load_default=2, validate=validate.Range(min=1, max=100),
                                      metadata={"format": "int64"})
    agents = _agents(required=True)
    maintenance = read_only(Boolean(dump_default=False, metadata={
        "description": "In maintenance: receives no new instance (changed by the maintenance routes)."}))


class KaktusCPUSchema(ApiSchema):
    arch = fields.String(required=True)
    model = fields.String(required=True)
    vendor = fields.String(required=True)
    sockets = Integer(required=True, metadata={"format": "int64"})
    cores = Integer(required=True, metadata={"format": "int64"})
    threads = Integer(required=True, metadata={"format": "int64"})


class _ReportedSize(Integer):
    """A size an agent reports: the contract's minimum is 0 (0.58 readers refuse less), a negative report is 0."""

    def _serialize(self, value: typing.Any, attr: typing.Any, obj: typing.Any, **kwargs: typing.Any) -> int | None:
        number = super()._serialize(value, attr, obj, **kwargs)
        return None if number is None else max(0, int(number))


class KaktusCapsSchema(ApiSchema):
    cpu = fields.Nested(KaktusCPUSchema, required=True)
    memory = _ReportedSize(required=True, validate=INT64, metadata={"format": "int64"})


class KiwiSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    agents = _agents(required=False)


class StoragePoolSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    pool = fields.String(required=True, validate=validate.Length(min=1, max=128),
                         metadata={"description": "Ceph RBD pool name."})
    ceph_address = fields.String(load_default="localhost", validate=validate.Length(max=253))
    ceph_port = Integer(load_default=3300, validate=validate.Range(min=1, max=65535), metadata={"format": "int64"})
    ceph_secret_uuid = fields.String(load_default="", validate=validate.Length(max=64))
    cost = fields.Nested(CostSchema, load_default=None)
    agents = _agents(required=True)


class StorageNFSSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    endpoint = fields.String(required=True, validate=validate.Length(min=1, max=253))
    fs = fields.String(load_default="nfs", validate=validate.Length(min=1, max=128))
    # Required in 0.58's replies (always sent, [] when none); optional on input, as 0.53.2 leaves it out.
    backends = List(fields.String(), load_default=list, dump_default=list)
    port = Integer(load_default=54934, validate=validate.Range(min=1, max=65535), metadata={"format": "int64"})


class TemplateSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    os = fields.String(load_default="linux", validate=validate.OneOf(["linux", "windows"]))
    source = fields.String(required=True, validate=validate.Length(min=1, max=2048),
                           metadata={"description": "HTTP(S) URL of a QCOW2 or raw image."})


class VNetSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    vlan = Integer(load_default=0, validate=validate.Range(min=0, max=4094), metadata={"format": "int64"})
    interface = fields.String(required=True, validate=validate.Length(min=1, max=64))
    private = Boolean(load_default=True)


class IpRangeSchema(ApiSchema):
    first = fields.String(required=True)
    last = fields.String(required=True)


class SubnetSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    cidr = fields.String(required=True, validate=validate.Length(min=1, max=64))
    gateway = fields.String(required=True, validate=validate.Length(min=1, max=64))
    dns = fields.String(load_default="", validate=validate.Length(max=64))
    extra_routes = List(fields.String(), load_default=list)
    reserved = List(fields.Nested(IpRangeSchema), load_default=list)
    gw_pool = List(fields.Nested(IpRangeSchema), load_default=list)
    application = fields.String(load_default="user", validate=validate.OneOf(["ceph", "user"]))


class AdapterSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    mac = fields.String(load_default="", validate=validate.Length(max=32))
    addresses = List(fields.String(), load_default=list)
    reserved = Boolean(load_default=False)


class DnsRecordSchema(ApiSchema):
    id = ObjectIdString()
    name = fields.String(required=True, validate=validate.Length(min=1, max=253))
    description = _description()
    domain = read_only(fields.String())
    addresses = List(fields.String(), required=True)


class PoolQuerySchema(QuerySchema):
    poolId = fields.String(load_default=None)


class AssignIpQuerySchema(QuerySchema):
    assignIP = fields.Boolean(load_default=False)


# -- partial updates (PUT bodies) -----------------------------------------------------

RegionUpdateSchema = update_schema(RegionSchema, "RegionUpdate")
ZoneUpdateSchema = update_schema(ZoneSchema, "ZoneUpdate")
KaktusUpdateSchema = update_schema(KaktusSchema, "KaktusUpdate")
KiwiUpdateSchema = update_schema(KiwiSchema, "KiwiUpdate")
StoragePoolUpdateSchema = update_schema(StoragePoolSchema, "StoragePoolUpdate")
StorageNFSUpdateSchema = update_schema(StorageNFSSchema, "StorageNFSUpdate")
TemplateUpdateSchema = update_schema(TemplateSchema, "TemplateUpdate", creation_only=("os", "source"))
VNetUpdateSchema = update_schema(VNetSchema, "VNetUpdate", creation_only=("private",))
SubnetUpdateSchema = update_schema(SubnetSchema, "SubnetUpdate", creation_only=("cidr",))
AdapterUpdateSchema = update_schema(AdapterSchema, "AdapterUpdate")
DnsRecordUpdateSchema = update_schema(DnsRecordSchema, "DnsRecordUpdate")
