"""Schema of the team tag."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas.common import ApiSchema, List, ObjectIdString
from api.schemas.updates import update_schema


class TeamSchema(ApiSchema):
    id = ObjectIdString()
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    description = fields.String(load_default="", validate=validate.Length(max=1024))
    users = List(fields.String(), max_items=4096, required=True, attribute="user_ids",
                        metadata={"description": "List of user IDs that are part of the team."})


TeamUpdateSchema = update_schema(TeamSchema, "TeamUpdate")
