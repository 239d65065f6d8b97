"""Partial updates: a loaded XUpdate body merged over the current object gives the full dict the services take.

The services update from a full description of the object, as a 0.53.2 PUT body loaded with the resource's schema
gave them (defaults filled in, read-only keys dropped). ``merged(XSchema, current, changes)`` builds exactly that
dict from the current object (as its GET shows it) with the top-level keys of *changes* put over it:

    return services().zones.update(zoneId, merged(ZoneSchema, zones.get(zoneId), changes))

A key absent from *changes* keeps the current value; a nested object or list present replaces the current one
whole, but for the keys named *by_key* (a project's ``quotas``), merged key by key.

The views call :func:`update_merged`, which reads, merges and writes in the object's owner (the key its service
already decides that object in): two partial updates of different fields of one object both survive, where a
read in the view would let the second writer put back the field the first one changed.
"""

from __future__ import annotations

import typing

from marshmallow import Schema, ValidationError

from api.blueprint import services

T = typing.TypeVar("T")


def update_merged(owner: str | tuple[str, ...], full: type[Schema], read: typing.Callable[[], typing.Any],
                  changes: typing.Mapping[str, typing.Any], write: typing.Callable[[dict[str, typing.Any]], T], *,
                  by_key: typing.Iterable[str] = ()) -> T:
    """``write(merged(full, read(), changes))`` in the owner(s) *owner* of the object: read, merge and write are
    not interleaved with another update of it.

    *read* and *write* run in the owner's greenlet, outside the request's context: whatever they need of the
    request (the caller's identity...) is taken before.
    """
    keys = (owner,) if isinstance(owner, str) else owner
    return services().serializer.run_all(keys, lambda: write(merged(full, read(), changes, by_key)))


def merged(full: type[Schema], current: typing.Any, changes: typing.Mapping[str, typing.Any],
           by_key: typing.Iterable[str] = ()) -> dict[str, typing.Any]:
    """The dict *full* loads from *current*'s dump, with *changes* (a loaded XUpdate: attribute keys) over it; the
    nested objects of *by_key* (attribute names) present in *changes* are put over the current ones key by key.

    A stored value today's rules would refuse (older data) is passed on as stored rather than refused: the client
    did not send it. Only what *changes* carries was validated, by the XUpdate schema.
    """
    schema = full()
    dumped = schema.dump(current)
    attributes = {(field.data_key or name): (field.attribute or name) for name, field in schema.fields.items()}
    names = {(field.attribute or name): name for name, field in schema.fields.items()}
    by_key = set(by_key)
    overridden = [names[key] for key in changes if key in names]
    for name in overridden:
        field = schema.fields[name]
        if (field.attribute or name) not in by_key:  # the current value is not needed: it is replaced
            dumped.pop(field.data_key or name, None)
    try:
        base = full(partial=tuple(overridden)).load(dumped)
    except ValidationError as error:
        base = dict(error.valid_data or {})
        for key in typing.cast("dict[str, typing.Any]", error.messages):
            if key in dumped and key in attributes:
                base[attributes[key]] = dumped[key]
    result = {**base, **changes}
    for key in by_key:
        if key in changes and isinstance(base.get(key), dict):
            result[key] = {**base[key], **changes[key]}
    return result
