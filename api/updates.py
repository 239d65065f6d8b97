"""Partial updates: a loaded XUpdate body merged over the current object gives the full dict the services take.

The services update from a full description of the object, as a 0.53.2 PUT body loaded with the resource's schema
gave them (defaults filled in, read-only keys dropped). ``merged(XSchema, current, changes)`` builds exactly that
dict from the current object (as its GET shows it) with the top-level keys of *changes* put over it:

    return services().zones.update(zoneId, merged(ZoneSchema, zones.get(zoneId), changes))

A key absent from *changes* keeps the current value; a nested object or list present replaces the current one
whole. Read-merge-write is not atomic: as with a full PUT, the last writer sets the whole object.
"""

from __future__ import annotations

import typing

from marshmallow import Schema, ValidationError


def merged(full: type[Schema], current: typing.Any, changes: typing.Mapping[str, typing.Any]) -> dict[str, typing.Any]:
    """The dict *full* loads from *current*'s dump, with *changes* (a loaded XUpdate: attribute keys) over it.

    A stored value today's rules would refuse (older data) is passed on as stored rather than refused: the client
    did not send it. Only what *changes* carries was validated, by the XUpdate schema.
    """
    schema = full()
    dumped = schema.dump(current)
    attributes = {(field.data_key or name): (field.attribute or name) for name, field in schema.fields.items()}
    names = {(field.attribute or name): name for name, field in schema.fields.items()}
    overridden = [names[key] for key in changes if key in names]
    for name in overridden:
        field = schema.fields[name]
        dumped.pop(field.data_key or name, None)
    try:
        base = full(partial=tuple(overridden)).load(dumped)
    except ValidationError as error:
        base = dict(error.valid_data or {})
        for key in typing.cast("dict[str, typing.Any]", error.messages):
            if key in dumped and key in attributes:
                base[attributes[key]] = dumped[key]
    return {**base, **changes}
