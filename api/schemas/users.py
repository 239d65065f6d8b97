"""Schemas of the user tag: User, UserCredentials, UserEmail, Password."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas.common import ApiSchema, Boolean, ObjectIdString, read_only
from api.schemas.updates import update_schema
from kahuna.access import Role

NAME = validate.Length(min=1, max=128)


class UserSchema(ApiSchema):
    id = ObjectIdString()
    name = fields.String(required=True, validate=NAME, metadata={"description": "The Kowabunga user name."})
    description = fields.String(load_default="", validate=validate.Length(max=1024))
    email = fields.String(required=True, validate=validate.Length(min=3, max=254),
                          metadata={"description": "User email address."})
    role = fields.String(required=True, validate=validate.OneOf([role.value for role in Role]),
                         metadata={"description": "The Kowabunga user role."})
    notifications = Boolean(load_default=False,
                            metadata={"description": "Whether or not to receive email notifications on events."})


UserUpdateSchema = update_schema(UserSchema, "UserUpdate")


class UserCredentialsSchema(ApiSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    # Required by the contract on both ways; a reply always carries it empty,
    # so that the password is never echoed.
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    jwt = read_only(fields.String(metadata={"description": "The resulting server-generated JWT token (read-only)."}))


class UserEmailSchema(ApiSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))


class PasswordSchema(ApiSchema):
    value = fields.String(required=True, validate=validate.Length(min=1, max=1024))
