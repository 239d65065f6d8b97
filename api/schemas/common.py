"""Schema conventions shared by every resource of the contract."""

from __future__ import annotations

import typing

from bson import ObjectId
from marshmallow import RAISE, Schema, fields, post_dump, pre_load

#: The contract's ObjectIds: a JSON array of id strings.
OBJECT_IDS = {"type": "array", "items": {"type": "string"}}


class ApiSchema(Schema):
    """Base of the contract's schemas.

    Unknown fields are refused. Read-only fields (``metadata={"readOnly": True}``)
    are accepted on input and dropped, so a client may send back what it read.
    Absent values are left out of replies rather than sent as null.
    """

    class Meta:
        unknown = RAISE

    @pre_load
    def _drop_read_only(self, data: typing.Any, **_: typing.Any) -> typing.Any:
        if isinstance(data, dict):
            read_only = {f.data_key or name for name, f in self.fields.items() if f.metadata.get("readOnly")}
            data = {k: v for k, v in data.items() if k not in read_only}
        return data

    @post_dump
    def _drop_absent(self, data: dict, **_: typing.Any) -> dict:
        return {k: v for k, v in data.items() if v is not None}


class ObjectIdString(fields.String):
    """The API ``id``: the document's ObjectId as 24 hex characters; read-only."""

    def __init__(self, **kwargs: typing.Any):
        kwargs.setdefault("attribute", "_id")
        kwargs.setdefault("metadata", {"readOnly": True, "description": "ID (auto-generated)."})
        super().__init__(**kwargs)

    def _serialize(self, value: typing.Any, attr: typing.Any, obj: typing.Any, **kwargs: typing.Any) -> str | None:
        return str(value) if isinstance(value, ObjectId) else super()._serialize(value, attr, obj, **kwargs)


class StoredDate(fields.Date):
    """A date kept in the database as its ISO string (YYYY-MM-DD), as the Go Kahuna kept it."""

    def _serialize(self, value: typing.Any, attr: typing.Any, obj: typing.Any, **kwargs: typing.Any) -> str | None:
        return value if isinstance(value, str) else super()._serialize(value, attr, obj, **kwargs)


def read_only(field: fields.Field) -> fields.Field:
    field.metadata = {**field.metadata, "readOnly": True}
    return field


class ApiErrorSchema(Schema):
    """The body of every error reply (the contract's ApiError* schemas all have this shape)."""

    status = fields.Integer(required=True)
    error = fields.String(required=True)
    reason = fields.String(required=True)
