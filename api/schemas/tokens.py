"""Schemas of the token tag: ApiToken and the key issuing query."""

from __future__ import annotations

import typing

from marshmallow import ValidationError, fields, post_load, validate

from api.schemas.common import ApiSchema, Boolean, ObjectIdString, QuerySchema, StoredDate
from api.schemas.updates import update_schema


class ApiTokenSchema(ApiSchema):
    id = ObjectIdString()
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    description = fields.String(load_default="", validate=validate.Length(max=1024))
    expire = Boolean(required=True, metadata={"description": "Does the API token expires at some stage ?"})
    expiration_date = StoredDate(load_default=None, metadata={"description": "Expiration date (YYYY-MM-DD)."})


ApiTokenUpdateSchema = update_schema(ApiTokenSchema, "ApiTokenUpdate")


class ExpiryQuerySchema(QuerySchema):
    """The query of the key setters. The date is ``expirationDate`` in API 0.58 and ``expiration_date`` in 0.53.2:
    either is read (each version's document names its own, api.versions); both, naming different dates, is a 422.
    Loads as ``{"expire", "expiration_date"}``."""

    expire = fields.Boolean(load_default=False)
    expiration_date = fields.Date(data_key="expirationDate", load_default=None,
                                  metadata={"description": "Token's expiration date (YYYY-MM-DD format)."})
    legacy_expiration_date = fields.Date(data_key="expiration_date", load_default=None,
                                         metadata={"description": "The same, as API 0.53.2 names it."})

    @post_load
    def _one_date(self, data: dict[str, typing.Any], **_: typing.Any) -> dict[str, typing.Any]:
        date, legacy = data.pop("expiration_date", None), data.pop("legacy_expiration_date", None)
        if date is not None and legacy is not None and date != legacy:
            raise ValidationError(f"expirationDate ({date.isoformat()}) and expiration_date "
                                  f"({legacy.isoformat()}) differ: send one", "expirationDate")
        return {**data, "expiration_date": date if date is not None else legacy}
