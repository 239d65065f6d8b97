"""XUpdate schemas: the body of a partial update (PUT) of a resource, derived from the resource's schema.

API 0.58 updates with ``XUpdate`` bodies whose every property is optional: what a body carries is changed, what it
leaves out is kept (the 0.58 SDK leaves unset fields out and never sends null). ``update_schema(XSchema, "XUpdate")``
derives it from ``XSchema``:

- every writable field is kept, with its validators, its strict JSON type and its nested schema (a nested object
  present in a body is loaded whole, with its own defaults, and replaces the stored one);
- nothing is required and nothing has a default (``load_default``): an absent key stays absent from the loaded dict;
- read-only fields and *creation_only* fields are not part of it: a body may still carry them (a 0.53.2 client sends
  back what it read, and its full bodies carry the creation fields), they are dropped before loading, i.e. ignored;
- *tolerated* names keys that are no field of the update (any more) but are accepted and dropped (Kawaii's
  ``ipsec_connections``, KawaiiIpSec's ``egress`` keys of 0.53.2...);
- *keep* names read-only fields the contract still lists in the update (Kawaii ``name``): documented as writable,
  accepted, ignored.

``null`` is refused (400), also for the fields whose schema default is None (the 0.58 SDK never sends null, so
a null cannot mean "clear"). api.updates.merged() merges a loaded update over the
current object.
"""

from __future__ import annotations

import copy
import typing

from marshmallow import Schema, fields, missing, pre_load

from api.schemas.common import ApiSchema

#: Schema-level hooks ApiSchema itself declares; the resource schema's own load hooks would have to be carried over.
_API_SCHEMA_HOOKS = {"_drop_read_only", "_drop_absent"}


def _key(name: str, field: fields.Field) -> str:
    return field.data_key or name


def update_schema(base: type[Schema], name: str, *, creation_only: typing.Iterable[str] = (),
                  tolerated: typing.Iterable[str] = (), keep: typing.Iterable[str] = ()) -> type[ApiSchema]:
    """The ``{name}Schema`` class (component ``name``) of the partial update of *base*'s resource.

    *creation_only*, *tolerated* and *keep* are JSON keys (a field's ``data_key`` or name).
    """
    creation_only, tolerated, keep = set(creation_only), set(tolerated), set(keep)
    declared = base._declared_fields
    keys = {_key(n, f): n for n, f in declared.items()}
    unknown = (creation_only | keep) - set(keys)
    if unknown:
        raise TypeError(f"{base.__name__} has no field {sorted(unknown)}")
    for tag, hooks in base._hooks.items():
        extra = [hook[0] for hook in hooks if hook[0] not in _API_SCHEMA_HOOKS]
        # "validates": a field validator (@validates) is a hook of the schema, not of the field: it would be lost.
        if extra and tag in ("pre_load", "post_load", "validates_schema", "validates"):
            raise TypeError(f"{base.__name__} has load hooks {extra}: carry them into {name}")

    attrs: dict[str, typing.Any] = {"__doc__": f"Partial update of {base.__name__.removesuffix('Schema')}: "
                                               "absent properties are unchanged."}
    ignored = set(tolerated) | set(getattr(base, "TOLERATED", ()))
    for field_name, field in declared.items():
        key = _key(field_name, field)
        read_only = bool(field.metadata.get("readOnly"))
        if key in creation_only or key in tolerated or (read_only and key not in keep):
            ignored.add(key)
            continue
        if key in keep:
            ignored.add(key)
        copied = copy.deepcopy(field)
        copied.required = False
        copied.load_default = missing
        copied.allow_none = False  # a load_default of None allowed null: an update has no null (400)
        copied.metadata = {k: v for k, v in copied.metadata.items() if k not in ("readOnly", "default")}
        attrs[field_name] = copied

    def _drop_ignored(self: Schema, data: typing.Any, **_: typing.Any) -> typing.Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in ignored}
        return data

    attrs["_drop_ignored"] = pre_load(_drop_ignored)
    return typing.cast("type[ApiSchema]", type(f"{name}Schema", (ApiSchema,), attrs))
