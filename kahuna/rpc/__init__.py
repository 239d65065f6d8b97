"""The RPC catalog of the Kowabunga agents, as typed declarations referenced by attribute (after MAAS's RPC commands).

Kahuna calls the agents ("reverse RPC": the agent dialled in, Kahuna sends the
requests). On the wire a request is ``{"id", "method": "<Type>.<Method>",
"params"}`` and a reply ``{"id", "result", "error"}``, one JSON object per binary
WebSocket message. Field names are the agents' Go struct names (PascalCase);
``bytes`` travel as standard base64.

**Layout.** One module per agent type, named as the wire names it, holds that agent's
declarations: :mod:`kahuna.rpc.kaktus`, :mod:`kahuna.rpc.kiwi`, :mod:`kahuna.rpc.kontroller`.
A call site therefore reads like the wire name it sends (``rpc.kaktus.CreateInstance`` is
``Kaktus.CreateInstance``), and a misspelt method is an ``AttributeError`` at import time
and a mypy error, not a failed call. This module holds what they share: the wire format,
:class:`Method`, the errors, the :class:`AgentPlane` protocol, and the registry of every
method (:data:`CATALOG`, :data:`METHODS`, :func:`capabilities`, :func:`catalog_table`).
It stays the package's ``__init__`` so that ``from kahuna import rpc`` gives all of it,
and so that mypy's strict flags for ``kahuna.rpc`` cover the code that checks the wire.

**One declaration per method.** Each :class:`Method` names its parameters and result as
``TypedDict``\\ s (nested ones for records, ``list[...]`` for lists, ``bytes`` for base64
strings), and the field tables that check the wire are derived from their annotations.
``Method`` is generic in both, so ``agents.call(agent_id, rpc.kaktus.NodeCapabilities)`` is
typed as returning :class:`kahuna.rpc.kaktus.NodeCapabilitiesResult`; params given as a dict
literal are checked against the method's TypedDict (see :data:`Params`). At run time each
method checks outgoing parameters and normalizes incoming results, so a misspelt field
fails in Kahuna, not in an agent.

``python -m kahuna.rpc`` prints the catalog as the Markdown table of README.md's "Agents".
"""

from __future__ import annotations

import base64
import binascii
import json
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

KAKTUS = "Kaktus"
KIWI = "Kiwi"
KONTROLLER = "Kontroller"
AGENT_TYPES = (KAKTUS, KIWI, KONTROLLER)

DEFAULT_TIMEOUT = 30.0

#: A method's parameters (TypedDict).
P = typing.TypeVar("P", bound=Mapping[str, object])
#: A method's result (TypedDict).
R = typing.TypeVar("R", bound=Mapping[str, object])
_T_co = typing.TypeVar("_T_co", covariant=True)

#: What the wire checks work on, derived from a TypedDict's annotations: a Python type (``str``, ``int``,
#: ``float``, ``bool``, ``bytes``), a list of one kind (``[str]``), or a nested record (a :data:`FieldTable`).
FieldKind: typing.TypeAlias = "type[object] | list[FieldKind] | dict[str, FieldKind]"
FieldTable: typing.TypeAlias = "dict[str, FieldKind]"


class RpcError(Exception):
    """A call failed: the agent answered an error, or the reply was not what the method declares."""


class ParamsError(ValueError):
    """Parameters that do not match the method's declaration (a bug in Kahuna)."""


class NoParams(typing.TypedDict):
    """The parameters of a method that takes none (sent as ``{}``, never ``null``)."""


class NoResult(typing.TypedDict):
    """The result of a method that answers nothing but success."""


class CapabilitiesResult(typing.TypedDict):
    Version: str
    Methods: list[str]


class _AfterTheMethod(typing.Generic[_T_co]):
    """Never instantiated: a typing device of :data:`Params`, see there."""


#: What a caller passes as the params of a ``Method[P, R]``: the method's TypedDict, or None for ``{}``.
#: The third member is never a value (nothing makes an ``_AfterTheMethod``); it only steers mypy. mypy infers
#: a dict literal argument on its own (a plain ``dict``, which no TypedDict accepts), unless the argument's
#: declared type holds a callable of a type variable: such arguments are inferred in a second pass, once the
#: other arguments (here the method) have fixed P. So ``call(agent, kaktus.GetVolumeInfos, {"Pool": p,
#: "Volume": v})`` is checked field by field against ``kaktus.Volume``, and a misspelt key is a mypy error.
Params: typing.TypeAlias = P | None | _AfterTheMethod[Callable[[], P]]


@dataclass(frozen=True)
class Method(typing.Generic[P, R]):
    """One method of one agent type: ``Method(KAKTUS, "GetVolumeInfos", Volume, VolumeSize)``.

    *params* and *result* (the field tables the wire checks use) are derived from *params_type* and
    *result_type*; *errors* lists the conditions the agent answers an error for (documentation).
    """

    agent_type: str
    name: str
    params_type: type[P]
    result_type: type[R]
    timeout: float = DEFAULT_TIMEOUT
    doc: str = ""
    errors: tuple[str, ...] = ()
    since: str = "0.64"
    params: FieldTable = field(init=False, repr=False, compare=False)
    result: FieldTable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen: the derived tables are set as the dataclass machinery sets fields.
        object.__setattr__(self, "params", field_table(self.params_type, f"{self.wire_name} params"))
        object.__setattr__(self, "result", field_table(self.result_type, f"{self.wire_name} result"))

    @property
    def wire_name(self) -> str:
        return f"{self.agent_type}.{self.name}"

    def encode_params(self, params: Params[P]) -> dict[str, object]:
        """Check *params* against the declaration and turn them into JSON values (None: no parameters)."""
        return _encode_record(self.params, params or {}, self.wire_name)

    def decode_result(self, result: object) -> R:
        """The reply's ``result`` as declared: missing fields take their zero value, bytes are decoded."""
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise RpcError(f"{self.wire_name} replied a {type(result).__name__} instead of an object")
        # Checked field by field against R's own annotations just now.
        return typing.cast(R, _decode_record(self.result, result, self.wire_name))

    def decode_params(self, params: object) -> P:
        """Agent side (simulator): the request's params as declared."""
        if not isinstance(params, dict):
            raise ParamsError(f"{self.wire_name} params must be an object")
        return typing.cast(P, _decode_record(self.params, params, self.wire_name))

    def encode_result(self, result: Mapping[str, object]) -> dict[str, object]:
        """Agent side (simulator): a result as the Go agents encode it (fields left out take their zero value)."""
        return _encode_record(self.result, result, self.wire_name, partial=True)


#: Any method, whatever its params and result (registries, messages that carry one).
AnyMethod: typing.TypeAlias = Method[typing.Any, typing.Any]


# -- the field tables, from the TypedDicts --------------------------------------------


_SCALARS: tuple[type[object], ...] = (str, int, float, bool, bytes)


def field_table(record: type[Mapping[str, object]], where: str) -> FieldTable:
    """The field table of a TypedDict: every field, in declaration order (inherited ones first)."""
    if not typing.is_typeddict(record):
        raise TypeError(f"{where}: {record!r} is not a TypedDict")
    if getattr(record, "__optional_keys__", frozenset()):
        raise TypeError(f"{where}: {record.__name__} has optional fields; the agents' structs have none")
    return {name: _field_kind(annotation, f"{where}.{name}")
            for name, annotation in typing.get_type_hints(record).items()}


def _field_kind(annotation: object, where: str) -> FieldKind:
    for scalar in _SCALARS:
        if annotation is scalar:
            return scalar
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return [_field_kind(item, f"{where}[]")]
    if isinstance(annotation, type) and typing.is_typeddict(annotation):
        return field_table(annotation, where)
    raise TypeError(f"{where}: {annotation!r} is not a field type (str, int, float, bool, bytes, list[...], "
                    f"a TypedDict)")


# -- the wire checks ------------------------------------------------------------------


def _zero(kind: FieldKind) -> object:
    if isinstance(kind, list):
        return None  # Go encodes a nil slice as null
    if isinstance(kind, dict):
        return {name: _zero(sub) for name, sub in kind.items()}
    return _ZEROS[kind]


_ZEROS: dict[type[object], object] = {str: "", int: 0, float: 0.0, bool: False, bytes: b""}


def _encode_value(kind: FieldKind, value: object, where: str) -> object:
    if isinstance(kind, list):
        if value is None:
            return None
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where} must be a list")
        return [_encode_value(kind[0], item, f"{where}[]") for item in value]
    if isinstance(kind, dict):
        return _encode_record(kind, value, where)
    if kind is bytes:
        if not isinstance(value, (bytes, bytearray)):
            raise ParamsError(f"{where} must be bytes")
        return base64.b64encode(bytes(value)).decode()
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ParamsError(f"{where} must be {kind.__name__}, not {type(value).__name__}")
    return value


def _encode_record(kinds: FieldTable, values: object, where: str, partial: bool = False) -> dict[str, object]:
    if not isinstance(values, dict):
        raise ParamsError(f"{where} must be a record")
    unknown = set(values) - set(kinds)
    if unknown:
        raise ParamsError(f"{where} has no field {sorted(unknown)[0]}")
    missing = set(kinds) - set(values)
    if missing and not partial:
        raise ParamsError(f"{where} needs field {sorted(missing)[0]}")
    return {name: _encode_value(kind, values[name], f"{where}.{name}") if name in values else _zero(kind)
            for name, kind in kinds.items()}


def _decode_value(kind: FieldKind, value: object, where: str) -> object:
    if value is None:
        return [] if isinstance(kind, list) else _zero(kind)
    if isinstance(kind, list):
        if not isinstance(value, list):
            raise RpcError(f"{where} must be a list")
        return [_decode_value(kind[0], item, f"{where}[]") for item in value]
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            raise RpcError(f"{where} must be an object")
        return _decode_record(kind, value, where)
    if kind is bytes:
        try:
            if not isinstance(value, (str, bytes, bytearray)):
                raise TypeError(value)  # what b64decode raises for a number, a list...
            return base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise RpcError(f"{where} is not base64") from None
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)  # the Go agents re-marshal numbers through float64
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RpcError(f"{where} must be {kind.__name__}, not {type(value).__name__}")
    return value


def _decode_record(kinds: FieldTable, values: Mapping[str, object], where: str) -> dict[str, object]:
    # Go decodes field names case-insensitively and ignores unknown ones; so do we.
    by_lower = {key.lower(): value for key, value in values.items()}
    return {name: _decode_value(kind, by_lower.get(name.lower()), f"{where}.{name}") for name, kind in kinds.items()}


# -- wire messages ----------------------------------------------------------------


def request_message(request_id: int, method: Method[P, R], params: Params[P]) -> bytes:
    # Never "params": null: the Go agents drop such a request without replying.
    return json.dumps({"id": request_id, "method": method.wire_name, "params": method.encode_params(params)},
                      separators=(",", ":")).encode()


@dataclass(frozen=True)
class Reply:
    id: int
    result: object
    error: str | None


def parse_reply(data: bytes) -> Reply:
    """A reply from its wire form; :class:`RpcError` when it is not one."""
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise RpcError("message is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("id"), int) or isinstance(message["id"], bool):
        raise RpcError("message is not an RPC reply (no integer id)")
    if "method" in message:
        raise RpcError("message is a request, not a reply (agents do not call Kahuna)")
    error = message.get("error")
    if error is not None and not isinstance(error, str):
        error = json.dumps(error)
    return Reply(message["id"], message.get("result"), error)


# -- the gateway ----------------------------------------------------------------------


class AgentPlane(typing.Protocol):
    """How the domain reaches connected agents (implemented by ``actors.AgentPlane``)."""

    def call(self, agent_id: str, method: Method[P, R], params: Params[P] = None,
             timeout: float | None = None) -> R: ...

    def call_any(self, agent_ids: Iterable[str], method: Method[P, R], params: Params[P] = None,
                 timeout: float | None = None) -> R: ...

    def broadcast(self, agent_ids: Iterable[str], method: Method[P, R], params: Params[P] = None,
                  timeout: float | None = None) -> dict[str, R | Exception]: ...

    def disconnect(self, agent_id: str, reason: str, code: int = 1000) -> bool: ...

    def connected_ids(self, agent_ids: Iterable[str]) -> list[str]: ...


class InstanceAction:
    """``kaktus.InstanceOperation``'s ``Action`` values (Go iota order)."""

    AUTO_START = 0
    START = 1
    SOFT_REBOOT = 2
    HARD_REBOOT = 3
    HARD_SHUTDOWN = 4
    SOFT_SHUTDOWN = 5
    PM_SUSPEND = 6
    PM_RESUME = 7


def capabilities_method(agent_type: str) -> Method[NoParams, CapabilitiesResult]:
    """The ``Capabilities`` method every agent type serves (declared by each type's module)."""
    return Method(agent_type, "Capabilities", NoParams, CapabilitiesResult, timeout=10.0,
                  doc="Version of the agent and the methods it serves.")


# -- the registry (after the declarations, which import the above) ---------------------------

# They import this module's names; the aliases export them (``rpc.kaktus.CreateInstance``).
from kahuna.rpc import kaktus as kaktus  # noqa: E402
from kahuna.rpc import kiwi as kiwi  # noqa: E402
from kahuna.rpc import kontroller as kontroller  # noqa: E402

_NAMESPACES = {KAKTUS: kaktus, KIWI: kiwi, KONTROLLER: kontroller}


def _declared(agent_type: str) -> dict[str, AnyMethod]:
    methods: dict[str, AnyMethod] = {}
    for attribute, value in vars(_NAMESPACES[agent_type]).items():
        if isinstance(value, Method):
            if value.agent_type != agent_type or value.name != attribute:
                raise TypeError(f"{_NAMESPACES[agent_type].__name__}.{attribute} declares {value.wire_name}")
            methods[value.name] = value
    return dict(sorted(methods.items()))


#: ``CATALOG[agent type][method name]``: every method of every agent type, by name.
CATALOG: dict[str, dict[str, AnyMethod]] = {agent_type: _declared(agent_type) for agent_type in AGENT_TYPES}
#: Every method by its wire name (``"Kaktus.CreateInstance"``): for whoever reads names off the wire.
METHODS: dict[str, AnyMethod] = {method.wire_name: method for methods in CATALOG.values()
                                 for method in methods.values()}
_CAPABILITIES: dict[str, Method[NoParams, CapabilitiesResult]] = {
    KAKTUS: kaktus.Capabilities, KIWI: kiwi.Capabilities, KONTROLLER: kontroller.Capabilities}


def capabilities(agent_type: str) -> Method[NoParams, CapabilitiesResult]:
    """The ``Capabilities`` method of *agent_type* (KeyError for a type that is none of :data:`AGENT_TYPES`)."""
    return _CAPABILITIES[agent_type]


# -- the catalog as documentation -------------------------------------------------------------

README_BEGIN = "<!-- rpc-catalog:begin -->"
README_END = "<!-- rpc-catalog:end -->"


def _kind_text(kind: FieldKind) -> str:
    if isinstance(kind, list):
        return f"list[{_kind_text(kind[0])}]"
    if isinstance(kind, dict):
        return "{" + _table_text(kind) + "}"
    return kind.__name__


def _table_text(table: FieldTable) -> str:
    return ", ".join(f"{name}: {_kind_text(kind)}" for name, kind in table.items())


def _record_text(record: type[Mapping[str, object]], table: FieldTable) -> str:
    return f"`{record.__name__} {{{_table_text(table)}}}`" if table else ""


def catalog_table() -> str:
    """Every method as a Markdown table: agent type, wire name, params, result, timeout, doc, known errors."""
    lines = ["| agent | method | params | result | timeout | doc | known errors |",
             "|---|---|---|---|---|---|---|"]
    for agent_type, methods in CATALOG.items():
        for method in methods.values():
            params = _record_text(method.params_type, method.params)
            result = _record_text(method.result_type, method.result)
            lines.append(f"| {agent_type} | `{method.wire_name}` | {params} | {result} | {method.timeout:g} s "
                         f"| {method.doc} | {'; '.join(method.errors)} |")
    return "\n".join(lines) + "\n"


def with_catalog_table(readme: str) -> str:
    """*readme* with the text between :data:`README_BEGIN` and :data:`README_END` replaced by the table."""
    head, begin, rest = readme.partition(README_BEGIN)
    _, end, tail = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"the README has no {README_BEGIN} ... {README_END} markers")
    return f"{head}{README_BEGIN}\n{catalog_table()}{README_END}{tail}"
