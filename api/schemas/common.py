"""Schema conventions shared by every resource of the contract."""

from __future__ import annotations

import typing

from bson import ObjectId
from marshmallow import EXCLUDE, RAISE, Schema, fields, post_dump, pre_load, validate

#: The contract's ObjectIds: a JSON array of id strings.
OBJECT_IDS = {"type": "array", "items": {"type": "string"}}


#: Items a list in a request may hold: enough for any real object, and a bound on the work a single request
#: can ask for (a subnet with 10,000 reserved ranges held the server for a quarter of a second).
MAX_LIST_ITEMS = 256


class List(fields.List):
    """A list of at most *max_items* items (``MAX_LIST_ITEMS`` by default); a longer one is a 422."""

    def __init__(self, cls_or_instance: typing.Any, max_items: int = MAX_LIST_ITEMS, **kwargs: typing.Any):
        kwargs.setdefault("validate", validate.Length(max=max_items))
        super().__init__(cls_or_instance, **kwargs)


class ApiSchema(Schema):
    """Base of the contract's schemas.

    Unknown fields are refused. Read-only fields (``metadata={"readOnly": True}``)
    are accepted on input and dropped, so a client may send back what it read; so are the keys of ``TOLERATED``
    (properties an older contract had: a client of that version may still send them).
    Absent values are left out of replies rather than sent as null.
    """

    #: Keys accepted on input and ignored, though no field of the schema.
    TOLERATED: typing.ClassVar[frozenset[str]] = frozenset()

    class Meta:
        unknown = RAISE

    @pre_load
    def _drop_read_only(self, data: typing.Any, **_: typing.Any) -> typing.Any:
        if isinstance(data, dict):
            read_only = {f.data_key or name for name, f in self.fields.items() if f.metadata.get("readOnly")}
            data = {k: v for k, v in data.items() if k not in read_only and k not in self.TOLERATED}
        return data

    @post_dump
    def _drop_absent(self, data: dict, **_: typing.Any) -> dict:
        return {k: v for k, v in data.items() if v is not None}


class QuerySchema(ApiSchema):
    """Base of the schemas of query strings, whose values are all text.

    Their fields convert text ("26", "true"), unlike a body's. A parameter the operation does not declare is
    ignored, not refused: the contract documents no error for it, and clients add their own (cache busters).
    """

    class Meta:
        unknown = EXCLUDE


# -- strict JSON types ----------------------------------------------------------------
# A body's value must have the JSON type the contract gives it: no "10" for 10, no 1.5 taken as 1, no "true" or 1
# for true. Their errors start with "Not a valid", which api.errors reports as malformed input (400). Request
# bodies use these, never marshmallow's converting Integer, Float and Boolean (tests/test_hostile_input.py checks).

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Integer(fields.Integer):
    """A JSON integer: not a string, not a number with a fraction (not even 10.0), not a boolean.

    One that does not fit in 64 bits is a rule violation ("Number too large.", 422): nothing can store it.
    """

    def __init__(self, **kwargs: typing.Any):
        kwargs["strict"] = True
        super().__init__(**kwargs)

    def _validated(self, value: typing.Any) -> int:
        number = super()._validated(value)
        if not INT64_MIN <= number <= INT64_MAX:
            raise self.make_error("too_large", input=value)
        return number


class Float(fields.Float):
    """A JSON number (an integer is a number too): not a string, not a boolean, finite."""

    def _validated(self, value: typing.Any) -> float:
        if value is True or value is False or not isinstance(value, (int, float)):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Boolean(fields.Boolean):
    """JSON true or false, nothing else: not "true", not 1."""

    def _deserialize(self, value: typing.Any, attr: typing.Any, data: typing.Any, **kwargs: typing.Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)


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

    def _serialize(self, value: typing.Any, attr: typing.Any, obj: typing.Any,
                   **kwargs: typing.Any) -> str | float | None:
        return value if isinstance(value, str) else super()._serialize(value, attr, obj, **kwargs)


def read_only(field: fields.Field) -> fields.Field:
    field.metadata = {**field.metadata, "readOnly": True}
    return field


class ApiErrorSchema(Schema):
    """The body of every error reply (the contract's ApiError* schemas all have this shape)."""

    status = fields.Integer(required=True)
    error = fields.String(required=True)
    reason = fields.String(required=True)
