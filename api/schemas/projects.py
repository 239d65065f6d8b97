"""Schemas of the project tag: Project, ProjectResources, Cost, Metadata, RegionSubnet."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from api.schemas.common import ApiSchema, Float, Integer, List, ObjectIdString, QuerySchema, read_only
from api.schemas.updates import update_schema

INT32 = validate.Range(min=0, max=2**31 - 1)
INT64 = validate.Range(min=0, max=2**63 - 1)


class MetadataSchema(ApiSchema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=256))
    value = fields.String(required=True, validate=validate.Length(max=4096))


class RegionSubnetSchema(ApiSchema):
    key = fields.String()
    value = fields.String()


class ProjectResourcesSchema(ApiSchema):
    vcpus = Integer(validate=INT32, metadata={"format": "int32"})
    memory = Integer(validate=INT64, metadata={"format": "int64"})
    storage = Integer(validate=INT64, metadata={"format": "int64"})
    instances = Integer(validate=INT32, metadata={"format": "int32"})


class CostSchema(ApiSchema):
    price = Float(required=True, metadata={"format": "float"})
    currency = fields.String(required=True)


class ProjectSchema(ApiSchema):
    id = ObjectIdString()
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    description = fields.String(load_default="", validate=validate.Length(max=1024))
    domain = fields.String(load_default="", validate=validate.Length(max=253))
    root_password = fields.String(load_default="", validate=validate.Length(max=72))
    bootstrap_user = fields.String(load_default="", validate=validate.Length(max=32))
    bootstrap_pubkey = fields.String(load_default="", validate=validate.Length(max=16384))
    tags = List(fields.String(validate=validate.Length(max=256)), load_default=list)
    metadatas = List(fields.Nested(MetadataSchema), load_default=list)
    quotas = fields.Nested(ProjectResourcesSchema, load_default=dict)
    private_subnets = read_only(List(fields.Nested(RegionSubnetSchema)))
    reserved_vrrp_ids = read_only(List(Integer()))
    teams = List(fields.String(), required=True, attribute="team_ids")
    regions = List(fields.String(), required=True, attribute="region_ids")


#: The shortest private subnet prefix Kahuna gives a project: 0.58 documents 8-30, a /8 to /15 per project and
#: region would exhaust the region's private ranges. Refused as a rule violation (422), with this reason.
MIN_SUBNET_SIZE = 16


def _subnet_floor(size: int) -> None:
    if size < MIN_SUBNET_SIZE:
        raise ValidationError(f"Kahuna gives a project at most a /{MIN_SUBNET_SIZE} private subnet: use a "
                              f"subnetSize of {MIN_SUBNET_SIZE} to 30.")


class SubnetSizeQuerySchema(QuerySchema):
    subnetSize = fields.Integer(load_default=None, validate=[validate.Range(min=8, max=30), _subnet_floor],
                                metadata={"description": "Project's private subnet size (CIDR prefix length); Kahuna "
                                                         "refuses sizes below 16."})


class ListProjectsQuerySchema(QuerySchema):
    # ListProjects declares subnetSize (0.53.2 shares the parameter with CreateProject) but answers only 401 and
    # 403: a listing does not depend on a subnet size, so GET /project?subnetSize=abc is the list, not a 400.
    # Whatever its value, it is ignored rather than refused: ListProjects documents no status for a bad parameter
    # (neither 400 nor 422), and a well-formed value would change nothing. Raw takes any value; documented as the
    # contract's integer.
    subnetSize = fields.Raw(metadata={"type": "integer",
                                      "description": "Project's private subnet size (CIDR prefix length)."})


ProjectUpdateSchema = update_schema(ProjectSchema, "ProjectUpdate", creation_only=("domain",))
