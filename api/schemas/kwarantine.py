"""Schemas of the kwarantine tag (API 0.58): a project's anti-affinity groups."""

from __future__ import annotations

import typing

from marshmallow import fields, pre_dump, validate

from api.schemas.common import ApiSchema, List, ObjectIdString, read_only
from api.schemas.updates import update_schema
from kahuna.services.kwarantines import DEFAULT_POLICY, POLICIES, KwarantineDetails

_POLICY = ('The anti-affinity enforcement policy. Use "host" to guarantee no two group members are ever scheduled on '
           'the same Kaktus computing node, or "zone" to guarantee no two group members are ever scheduled within the '
           'same availability zone.')
_MEMBERS = ("Members are guaranteed to never be co-scheduled according to the group policy, regardless of Kaktus "
            "host scheduling score. Managed through the dedicated add/remove operations (read-only).")


class KwarantineSchema(ApiSchema):
    class Meta(ApiSchema.Meta):
        description = ("A Kwarantine is an anti-affinity mechanism that ensures its member virtual machine instances "
                       "or Kompute resources are never co-scheduled on the same Kaktus computing node (host policy) or "
                       "the same availability zone (zone policy), regardless of Kaktus host scheduling score, so that "
                       "critical redundant resources stay properly spread out.")

    id = ObjectIdString(metadata={"readOnly": True, "description": "The Kwarantine ID (auto-generated) (read-only)."})
    name = fields.String(required=True, validate=validate.Length(min=1, max=128),
                         metadata={"description": "The Kwarantine name."})
    description = fields.String(load_default="", validate=validate.Length(max=1024),
                                metadata={"description": "The Kwarantine description."})
    policy = fields.String(load_default=DEFAULT_POLICY, validate=validate.OneOf(POLICIES),
                           metadata={"description": _POLICY})
    instances = read_only(List(fields.String(), metadata={
        "description": "A list of existing virtual machine instance IDs that are part of the Kwarantine group. "
                       + _MEMBERS}))
    komputes = read_only(List(fields.String(), metadata={
        "description": f"A list of existing Kompute IDs that are part of the Kwarantine group. {_MEMBERS}"}))

    @pre_dump
    def _from_details(self, details: KwarantineDetails, **_: typing.Any) -> dict[str, typing.Any]:
        return {**details.kwarantine, "instances": details.instance_ids, "komputes": details.kompute_ids}


KwarantineUpdateSchema = update_schema(KwarantineSchema, "KwarantineUpdate")

