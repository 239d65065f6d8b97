"""Schema of the agent tag."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas.common import ApiSchema, ObjectIdString
from api.schemas.updates import update_schema
from kahuna.services.agents import REST_TYPES


class AgentSchema(ApiSchema):
    id = ObjectIdString()
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    description = fields.String(load_default="", validate=validate.Length(max=1024))
    type = fields.String(required=True, validate=validate.OneOf(REST_TYPES),
                         metadata={"description": "The Kowabunga remote agent type. Can only be set at creation "
                                                  "time, ignored on updates."})


AgentUpdateSchema = update_schema(AgentSchema, "AgentUpdate", creation_only=("type",))
