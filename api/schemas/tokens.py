"""Schemas of the token tag: ApiToken and the key issuing query."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas.common import ApiSchema, Boolean, ObjectIdString, QuerySchema, StoredDate


class ApiTokenSchema(ApiSchema):
    id = ObjectIdString()
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    description = fields.String(load_default="", validate=validate.Length(max=1024))
    expire = Boolean(required=True, metadata={"description": "Does the API token expires at some stage ?"})
    expiration_date = StoredDate(load_default=None, metadata={"description": "Expiration date (YYYY-MM-DD)."})


class ExpiryQuerySchema(QuerySchema):
    expire = fields.Boolean(load_default=False)
    expiration_date = fields.Date(load_default=None)
