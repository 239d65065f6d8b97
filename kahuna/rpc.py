"""The RPC catalog of the Kowabunga agents, as typed declarations (after MAAS's RPC commands).

Kahuna calls the agents ("reverse RPC": the agent dialled in, Kahuna sends the
requests). On the wire a request is ``{"id", "method": "<Type>.<Method>",
"params"}`` and a reply ``{"id", "result", "error"}``, one JSON object per binary
WebSocket message. Field names are the agents' Go struct names (PascalCase);
``bytes`` travel as standard base64. Each :class:`Method` below declares its
parameters and result with those exact names, checks outgoing parameters, and
normalizes incoming results, so a misspelt field fails in Kahuna, not in an agent.
"""

from __future__ import annotations

import base64
import binascii
import json
import typing
from dataclasses import dataclass, field

KAKTUS = "Kaktus"
KIWI = "Kiwi"
KONTROLLER = "Kontroller"
AGENT_TYPES = (KAKTUS, KIWI, KONTROLLER)

DEFAULT_TIMEOUT = 30.0

#: A field type: a Python type, a list of one (``[str]``), or a nested record (a dict of field types).
FieldType = typing.Any


class RpcError(Exception):
    """A call failed: the agent answered an error, or the reply was not what the method declares."""


class ParamsError(ValueError):
    """Parameters that do not match the method's declaration (a bug in Kahuna)."""


@dataclass(frozen=True)
class Method:
    agent_type: str
    name: str
    params: dict[str, FieldType] = field(default_factory=dict)
    result: dict[str, FieldType] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    doc: str = ""
    since: str = "0.64"

    @property
    def wire_name(self) -> str:
        return f"{self.agent_type}.{self.name}"

    def encode_params(self, params: dict[str, typing.Any]) -> dict[str, typing.Any]:
        """Check *params* against the declaration and turn them into JSON values."""
        return _encode_record(self.params, params, self.wire_name)

    def decode_result(self, result: typing.Any) -> dict[str, typing.Any]:
        """The reply's ``result`` as declared: missing fields take their zero value, bytes are decoded."""
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise RpcError(f"{self.wire_name} replied a {type(result).__name__} instead of an object")
        return _decode_record(self.result, result, self.wire_name)

    def decode_params(self, params: typing.Any) -> dict[str, typing.Any]:
        """Agent side (simulator): the request's params as declared."""
        if not isinstance(params, dict):
            raise ParamsError(f"{self.wire_name} params must be an object")
        return _decode_record(self.params, params, self.wire_name)

    def encode_result(self, result: dict[str, typing.Any]) -> dict[str, typing.Any]:
        """Agent side (simulator): a result as the Go agents encode it."""
        return _encode_record(self.result, result, self.wire_name, partial=True)


def _zero(kind: FieldType) -> typing.Any:
    if isinstance(kind, list):
        return None  # Go encodes a nil slice as null
    if isinstance(kind, dict):
        return {name: _zero(sub) for name, sub in kind.items()}
    return {str: "", int: 0, float: 0.0, bool: False, bytes: b""}[kind]


def _encode_value(kind: FieldType, value: typing.Any, where: str) -> typing.Any:
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


def _encode_record(kinds: dict[str, FieldType], values: typing.Any, where: str, partial: bool = False) -> dict:
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


def _decode_value(kind: FieldType, value: typing.Any, where: str) -> typing.Any:
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


def _decode_record(kinds: dict[str, FieldType], values: dict, where: str) -> dict:
    # Go decodes field names case-insensitively and ignores unknown ones; so do we.
    by_lower = {key.lower(): value for key, value in values.items()}
    return {name: _decode_value(kind, by_lower.get(name.lower()), f"{where}.{name}") for name, kind in kinds.items()}


# -- wire messages ----------------------------------------------------------------


def request_message(request_id: int, method: Method, params: dict[str, typing.Any]) -> bytes:
    # Never "params": null: the Go agents drop such a request without replying.
    return json.dumps({"id": request_id, "method": method.wire_name, "params": method.encode_params(params)},
                      separators=(",", ":")).encode()


@dataclass(frozen=True)
class Reply:
    id: int
    result: typing.Any
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


# -- the catalog --------------------------------------------------------------------

VOLUME = {"Pool": str, "Volume": str}
NFS_BACKENDS = {"ID": str, "Name": str, "FS": str, "Path": str, "Access": str, "Protocols": [int],
                "Clients": [str], "Backends": [str], "Port": int}
DNS_RECORD = {"Name": str, "Type": str, "Addresses": [str]}


def _methods(agent_type: str, *methods: Method) -> dict[str, Method]:
    catalog = {"Capabilities": Method(agent_type, "Capabilities", result={"Version": str, "Methods": [str]},
                                      timeout=10.0, doc="Version of the agent and the methods it serves.")}
    for method in methods:
        assert method.agent_type == agent_type
        catalog[method.name] = method
    return dict(sorted(catalog.items()))


def _kaktus(name: str, params=None, result=None, timeout=DEFAULT_TIMEOUT, doc="") -> Method:
    return Method(KAKTUS, name, params or {}, result or {}, timeout, doc)


def _kiwi(name: str, params=None, result=None, doc="") -> Method:
    return Method(KIWI, name, params or {}, result or {}, DEFAULT_TIMEOUT, doc)


CATALOG: dict[str, dict[str, Method]] = {
    KAKTUS: _methods(
        KAKTUS,
        _kaktus("NodeCapabilities", result={"Arch": str, "Vendor": str, "Model": str, "Sockets": int, "Cores": int,
                                            "Threads": int, "Memory": int, "GuestEmulator": str,
                                            "GuestMachineName": str}, doc="The host's CPU, memory and emulator."),
        _kaktus("CreateInstance", {"Name": str, "XML": str}, doc="Define a libvirt domain (does not start it)."),
        _kaktus("GetInstance", {"Name": str, "Migratable": bool}, {"XML": str}, doc="A domain's XML."),
        _kaktus("UpdateInstance", {"Name": str, "XML": str}, doc="Redefine a domain."),
        _kaktus("DeleteInstance", {"Name": str}, doc="Undefine a domain."),
        _kaktus("GetInstanceState", {"Name": str}, {"State": str, "Reason": str}),
        _kaktus("InstanceIsRunning", {"Name": str}, {"Running": bool}),
        _kaktus("GetInstanceRemoteConnectionUrl", {"Name": str}, {"URL": str}),
        _kaktus("InstanceOperation", {"Name": str, "Action": int}, timeout=120.0,
                doc="Power operation; Action is an InstanceAction."),
        _kaktus("GetStoragePoolStats", {"Pool": str}, {"Allocated": int, "Available": int, "Capacity": int}),
        _kaktus("CreateRawVolume", {**VOLUME, "Size": int}, timeout=120.0),
        _kaktus("CreateTemplateVolume", {**VOLUME, "SourceURL": str}, {"Size": int}, timeout=3600.0,
                doc="The agent downloads the image itself: minutes for a large one."),
        _kaktus("CreateOsVolume", {**VOLUME, "Size": int, "Template": str}, timeout=300.0,
                doc="Clone a template (by name) into a new volume, then resize it."),
        _kaktus("CreateIsoVolume", {**VOLUME, "Size": int, "Content": bytes}, timeout=120.0,
                doc="Size must equal len(Content)."),
        _kaktus("UpdateIsoVolume", {**VOLUME, "Size": int, "Content": bytes}, timeout=120.0),
        _kaktus("GetVolumeInfos", VOLUME, {"Size": int}),
        _kaktus("ResizeVolume", {**VOLUME, "Size": int}, timeout=120.0),
        _kaktus("DeleteVolume", {**VOLUME, "WithSnapshots": bool}, timeout=300.0),
        _kaktus("ListFileSystems", result={"FS": [str]}),
        _kaktus("ListFsSubVolumes", {"FS": str}, {"SubVolumes": [str]}),
        _kaktus("CreateFsSubVolume", {"FS": str, "SubVolume": str}, {"Path": str, "BytesUsed": int}),
        _kaktus("DeleteFsSubVolume", {"FS": str, "SubVolume": str}),
        _kaktus("CreateNfsBackends", NFS_BACKENDS),
        _kaktus("UpdateNfsBackends", NFS_BACKENDS),
        _kaktus("DeleteNfsBackends", NFS_BACKENDS),
    ),
    KIWI: _methods(
        KIWI,
        _kiwi("Reload", {"Domains": [{"Name": str, "Records": [DNS_RECORD]}]},
              doc="Replace the agent's whole record table (see the replay in the DNS service)."),
        _kiwi("CreateDnsZone", {"Domain": str}),
        _kiwi("DeleteDnsZone", {"Domain": str}),
        _kiwi("CreateDnsRecord", {"Domain": str, "Entry": str, "Addresses": [str]}, doc="Fails if it exists."),
        _kiwi("UpdateDnsRecord", {"Domain": str, "Entry": str, "Addresses": [str]}, doc="Fails if it is absent."),
        _kiwi("DeleteDnsRecord", {"Domain": str, "Entry": str}),
    ),
    KONTROLLER: _methods(
        KONTROLLER,
        Method(KONTROLLER, "Reload", timeout=120.0, doc="Re-read the metadata and reconfigure the services."),
    ),
}


class AgentPlane(typing.Protocol):
    """How the domain reaches connected agents (implemented by ``actors.AgentPlane``)."""

    def call(self, agent_id: str, method: Method, params: dict[str, typing.Any] | None = None,
             timeout: float | None = None) -> dict[str, typing.Any]: ...

    def call_any(self, agent_ids: typing.Iterable[str], method: Method,
                 params: dict[str, typing.Any] | None = None,
                 timeout: float | None = None) -> dict[str, typing.Any]: ...

    def broadcast(self, agent_ids: typing.Iterable[str], method: Method, params: dict[str, typing.Any] | None = None,
                  timeout: float | None = None) -> dict[str, dict[str, typing.Any] | Exception]: ...

    def disconnect(self, agent_id: str, reason: str, code: int = 1000) -> bool: ...

    def connected_ids(self, agent_ids: typing.Iterable[str]) -> list[str]: ...


class InstanceAction:
    """``InstanceOperation.Action`` values (Go iota order)."""

    AUTO_START = 0
    START = 1
    SOFT_REBOOT = 2
    HARD_REBOOT = 3
    HARD_SHUTDOWN = 4
    SOFT_SHUTDOWN = 5
    PM_SUSPEND = 6
    PM_RESUME = 7


def method(agent_type: str, name: str) -> Method:
    return CATALOG[agent_type][name]
