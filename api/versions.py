"""The two API versions Kahuna serves, and how the documents of both come from one code base.

Kahuna serves Kowabunga API 0.58.0 and, on the same server and the same routes, 0.53.2. The code is written once,
with the 0.58.0 names (operationIds, routes, XUpdate bodies); the OpenAPI document flask-smorest generates from it
is the 0.58.0 one. The 0.53.2 document is *derived* from it by the declarative tables of this module, every entry
keyed by operationId (the 0.58.0 name), so that the views stay single-version:

- :data:`RENAMED`: the 12 operationIds 0.58 renamed (0.58 name -> 0.53.2 name; one access rule for both names);
- :data:`NEW_IN_058`: the 20 operations 0.53.2 does not have;
- :data:`MOVED`: the routes 0.58 changed ((method, 0.58 path) -> (method, 0.53.2 path)); the old routes are still
  served, undocumented, by :mod:`api.legacy`;
- :data:`PATH_VARIABLES`: template variables 0.58 renamed (the URLs are the same);
- :data:`QUERY_PARAMETERS`: query parameters documented by one version only (both are accepted);
- :data:`LEGACY_RESPONSES`: success replies 0.53.2 documents otherwise (Login's 201, SetUserApiToken's empty 200);
  and no 0.53.2 operation documents 500;
- PUT bodies: 0.58's ``XUpdate`` is the full ``X`` in 0.53.2 (the same view accepts both, see api.updates);
- :data:`SCHEMA_CHANGES`: model differences, per version (fields 0.53.2 does not have, enums, required sets).

A change of a table entry is a change of the documents only: what the server accepts is the union of both versions
(the view code), what it answers is what both SDKs can read (PLAN §1.2), with the exceptions the README lists.

Why a derivation and not the frozen 0.53.2 YAML: the served documents keep describing what this server does (its
429 and 503 replies, its bounds, its error statuses), and a view that changes shows up in both documents at once;
tests/test_contract.py compares each document with its contract.

Only one thing is decided per request by version: the success status of Login (:func:`login_status`). Neither 200
nor 201 is read by both Python SDKs (each returns ``None`` on the other's), and the User-Agent is the only thing on
the wire that tells them apart (PLAN §1.1, §1.3).
"""

from __future__ import annotations

import copy
import re
import typing

from kahuna import API_VERSION, LEGACY_API_VERSIONS
from kahuna.access import RENAMED_OPERATIONS

CURRENT = API_VERSION
LEGACY = LEGACY_API_VERSIONS[0]
VERSIONS = (CURRENT, LEGACY)

#: The URL of each version's document, under the API prefix (each is also at ``/openapi-<version>.json``).
DOCUMENT_PATHS = {CURRENT: "/openapi.json", LEGACY: f"/openapi-{LEGACY}.json"}

#: 0.58 operationId -> 0.53.2 operationId (method and path unchanged).
RENAMED: typing.Mapping[str, str] = RENAMED_OPERATIONS

#: The operations 0.58 added.
NEW_IN_058 = frozenset({
    "ListKwarantines", "ReadKwarantine", "UpdateKwarantine", "DeleteKwarantine", "AddKwarantineInstance",
    "RemoveKwarantineInstance", "AddKwarantineKompute", "RemoveKwarantineKompute", "CreateProjectKwarantine",
    "ListProjectKwarantines", "PlanInstanceKMotion", "CommitInstanceKMotion", "PlanKomputeKMotion",
    "CommitKomputeKMotion", "EnableKaktusMaintenance", "DisableKaktusMaintenance", "CreateProjectRegionInstance",
    "ListProjectRegionInstances", "CreateProjectRegionKompute", "ListProjectRegionKomputes",
})

#: Routes 0.58 changed: (method, 0.58 path) -> (method, 0.53.2 path), paths as the documents write them.
MOVED: typing.Mapping[tuple[str, str], tuple[str, str]] = {
    ("get", "/region/{regionId}/nfses"): ("get", "/region/{regionId}/nfs"),
    ("get", "/nfs/{nfsId}/kylos"): ("get", "/nfs/{nfsId}/kylo"),
    ("get", "/project/{projectId}/region/{regionId}/kylos"): ("get", "/project/{projectId}/region/{regionId}/kylo"),
    ("post", "/resetPassword"): ("put", "/resetPassword"),
}

#: Path template variables 0.58 renamed: 0.58 name -> 0.53.2 name.
PATH_VARIABLES = {"kawaiiIpSecId": "KawaiiIpSecId"}

_POOL_ID = {"in": "query", "name": "poolId", "required": False, "schema": {"type": "string"},
            "description": "Storage pool ID (accepted, not used)."}
_SUBNET_SIZE = {"in": "query", "name": "subnetSize", "required": False, "schema": {"type": "integer"},
                "description": "Accepted, not used."}
_EXPIRATION = {"in": "query", "required": False, "schema": {"type": "string", "format": "date"},
               "description": "Token's expiration date (YYYY-MM-DD format)."}

#: Query parameters one version documents and the other does not (the server accepts both): version ->
#: 0.58 operationId -> the parameters (as documented when the generated document lacks them).
QUERY_PARAMETERS: typing.Mapping[str, typing.Mapping[str, tuple[dict[str, typing.Any], ...]]] = {
    CURRENT: {
        "SetUserApiToken": ({**_EXPIRATION, "name": "expirationDate"},),
        "SetAgentApiToken": ({**_EXPIRATION, "name": "expirationDate"},),
    },
    LEGACY: {
        "SetUserApiToken": ({**_EXPIRATION, "name": "expiration_date"},),
        "SetAgentApiToken": ({**_EXPIRATION, "name": "expiration_date"},),
        "ListRegionStorageNFSes": (_POOL_ID,),
        "ListProjects": (_SUBNET_SIZE,),
    },
}

#: Success replies 0.53.2 documents otherwise: 0.58 operationId -> (0.58 status, 0.53.2 status, 0.53.2 reply).
LEGACY_RESPONSES: typing.Mapping[str, tuple[str, str, dict[str, typing.Any] | None]] = {
    "Login": ("200", "201", None),  # the same reply, under 201
    "SetUserApiToken": ("200", "200", {"description": "The API key was replaced and sent by e-mail."}),
}
#: The status Login answers a Python SDK older than 0.58 (:func:`is_legacy_python_sdk`).
LOGIN_LEGACY_STATUS = 201

#: The error reply every 0.58 operation documents and no 0.53.2 operation does.
CURRENT_ONLY_ERRORS = ("500",)


class SchemaChange(typing.NamedTuple):
    """How one version's ``components/schemas/<name>`` differs from the generated one."""

    #: Properties the version does not have.
    drop: tuple[str, ...] = ()
    #: Properties the version has, as it documents them (added, or replacing the generated one).
    put: typing.Mapping[str, typing.Any] = {}
    #: Enumerations the version documents, by property.
    enums: typing.Mapping[str, tuple[str, ...]] = {}
    #: Properties the version requires, or does not.
    require: tuple[str, ...] = ()
    unrequire: tuple[str, ...] = ()


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


#: Version -> schema name -> its change. Read with :data:`SCHEMA_DEFINITIONS` (schemas the version defines when
#: the generated document has none).
SCHEMA_CHANGES: typing.Mapping[str, typing.Mapping[str, SchemaChange]] = {
    CURRENT: {
        # Always answered ([] when unset), optional on input: 0.53.2 clients leave it out (PLAN M9).
        "StorageNFS": SchemaChange(require=("backends",)),
        # Gone in 0.58; still accepted and ignored on input (PLAN M5).
        "Kawaii": SchemaChange(drop=("ipsec_connections",)),
        # Answered for every zone (0.53.2 requires it); 0.58 leaves it unset for VPC peered subnets (PLAN M8).
        "KawaiiNetIpZone": SchemaChange(unrequire=("public",)),
    },
    LEGACY: {
        "Instance": SchemaChange(drop=("kwarantines", "uefi", "kmotion_enabled")),
        "Kompute": SchemaChange(drop=("kwarantines", "uefi", "kmotion_enabled")),
        "Kaktus": SchemaChange(drop=("maintenance",)),
        "Kawaii": SchemaChange(put={"ipsec_connections": {
            "type": "array", "items": _ref("KawaiiIpSec"),
            "description": "The Kawaii list of Kowabunga IPsec connections (accepted, not used)."}}),
        "KawaiiIpSec": SchemaChange(put={"firewall": _ref("KawaiiFirewall")},
                                    enums={"dpd_timeout_action": ("clear", "restart", "start")}),
        "KawaiiVpcPeering": SchemaChange(put={"netip": {"type": "array", "readOnly": True,
                                                        "items": _ref("KawaiiVpcNetIpZone")}}),
        "KawaiiNetIpZone": SchemaChange(require=("public",)),
        "StorageNFS": SchemaChange(unrequire=("backends",)),
        "Agent": SchemaChange(enums={"type": ("Kaktus", "Kiwi")}),
        "Volume": SchemaChange(enums={"type": ("os", "iso", "raw")}),
    },
}

#: Schemas a version's document defines when the generated one does not (0.58 no longer refers to them).
SCHEMA_DEFINITIONS: typing.Mapping[str, typing.Mapping[str, dict[str, typing.Any]]] = {
    CURRENT: {},
    LEGACY: {
        "KawaiiVpcNetIpZone": {
            "type": "object", "description": "A Kawaii VPC Network IP zone settings.",
            "properties": {"zone": {"type": "string", "readOnly": True}, "private": {"type": "string",
                                                                                  "readOnly": True}},
            "required": ["private", "zone"]},
    },
}

_UPDATE_BODY = re.compile(r"^#/components/schemas/(?P<name>\w+)Update$")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_LEGACY_PYTHON_SDK = re.compile(r"^OpenAPI-Generator/0\.(\d+)\.\d+/python$")
_FIRST_CURRENT_MINOR = int(CURRENT.split(".")[1])


# -- per request --------------------------------------------------------------------------


def is_legacy_python_sdk(user_agent: str | None) -> bool:
    """Whether *user_agent* is the one a Kowabunga Python SDK older than 0.58 sends by default
    (``OpenAPI-Generator/0.53.2/python``): the only trace of its version on the wire."""
    match = _LEGACY_PYTHON_SDK.match(user_agent or "")
    return match is not None and int(match.group(1)) < _FIRST_CURRENT_MINOR


def login_status(user_agent: str | None) -> int:
    """The success status of Login for this client: 200 (0.58), 201 for a Python SDK older than 0.58."""
    return LOGIN_LEGACY_STATUS if is_legacy_python_sdk(user_agent) else 200


# -- documents ----------------------------------------------------------------------------


def _names(operation_id: str) -> frozenset[str]:
    """An operation's names (the generated document may still use a 0.53.2 name)."""
    old = RENAMED.get(operation_id)
    return frozenset({operation_id} if old is None else {operation_id, old})


def _operations(document: dict[str, typing.Any]) -> typing.Iterator[tuple[str, str, dict[str, typing.Any]]]:
    for path, item in list(document["paths"].items()):
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                yield path, method, operation


def _by_id(document: dict[str, typing.Any], table: typing.Mapping[str, typing.Any]
           ) -> typing.Iterator[tuple[dict[str, typing.Any], typing.Any]]:
    """(operation, table entry) for each operation of *document* that *table* (keyed by 0.58 names) names."""
    index = {name: entry for key, entry in table.items() for name in _names(key)}
    for _, _, operation in _operations(document):
        if operation.get("operationId") in index:
            yield operation, index[operation["operationId"]]


def _query_parameters(document: dict[str, typing.Any], version: str) -> None:
    own = QUERY_PARAMETERS[version]
    others = {op: params for other, table in QUERY_PARAMETERS.items() if other != version
              for op, params in table.items()}
    for operation, params in _by_id(document, others):
        names = {p["name"] for p in params}
        mine = {p["name"] for op, ps in own.items() if operation["operationId"] in _names(op) for p in ps}
        operation["parameters"] = [p for p in operation.get("parameters", [])
                                   if not (p.get("in") == "query" and p.get("name") in names - mine)]
    for operation, params in _by_id(document, own):
        present = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "query"}
        operation.setdefault("parameters", []).extend(copy.deepcopy(p) for p in params if p["name"] not in present)


def _change_schemas(document: dict[str, typing.Any], version: str) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in SCHEMA_DEFINITIONS[version].items():
        schemas.setdefault(name, copy.deepcopy(definition))
    for name, change in SCHEMA_CHANGES[version].items():
        schema = schemas.get(name)
        if schema is None:
            continue
        properties = schema.setdefault("properties", {})
        for prop in change.drop:
            properties.pop(prop, None)
        for prop, definition in change.put.items():
            properties[prop] = copy.deepcopy(definition)
        for prop, values in change.enums.items():
            if prop in properties:
                properties[prop]["enum"] = list(values)
        required = [r for r in schema.get("required", []) if r not in change.unrequire and r in properties]
        required += [r for r in change.require if r not in required and r in properties]
        if required:
            schema["required"] = sorted(required)
        else:
            schema.pop("required", None)


def _rename_path_variables(document: dict[str, typing.Any]) -> None:
    paths = document["paths"]
    for path in list(paths):
        new_path = path
        for new, old in PATH_VARIABLES.items():
            new_path = new_path.replace("{" + new + "}", "{" + old + "}")
        if new_path == path:
            continue
        item = paths.pop(path)
        for holder in [item, *(item[m] for m in _METHODS if isinstance(item.get(m), dict))]:
            for parameter in holder.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") in PATH_VARIABLES:
                    parameter["name"] = PATH_VARIABLES[parameter["name"]]
        paths[new_path] = item


def _move(document: dict[str, typing.Any]) -> None:
    paths = document["paths"]
    for (method, path), (old_method, old_path) in MOVED.items():
        item = paths.get(path)
        if item is None or method not in item:
            continue  # not served under its 0.58 route (yet): the generated document has the 0.53.2 one
        operation = item.pop(method)
        target = paths.setdefault(old_path, {})
        if "parameters" in item and "parameters" not in target:
            target["parameters"] = copy.deepcopy(item["parameters"])
        target[old_method] = operation
        if not any(m in item for m in _METHODS):
            del paths[path]


def _legacy_operations(document: dict[str, typing.Any]) -> None:
    paths = document["paths"]
    for path, method, operation in list(_operations(document)):
        if operation["operationId"] in NEW_IN_058:
            del paths[path][method]
            if not any(m in paths[path] for m in _METHODS):
                del paths[path]
            continue
        operation["operationId"] = RENAMED.get(operation["operationId"], operation["operationId"])
        for status in CURRENT_ONLY_ERRORS:
            operation.get("responses", {}).pop(status, None)
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        match = _UPDATE_BODY.match(body.get("$ref", ""))
        if method == "put" and match is not None:
            body["$ref"] = f"#/components/schemas/{match['name']}"
    for operation, (status, legacy_status, reply) in _by_id(document, LEGACY_RESPONSES):
        responses = operation["responses"]
        if status in responses:
            served = responses.pop(status)
            responses[legacy_status] = copy.deepcopy(reply) if reply is not None else served


def _references(value: typing.Any) -> typing.Iterator[str]:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                yield ref
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _prune(document: dict[str, typing.Any]) -> None:
    """Drop the components (schemas, responses, parameters) nothing in the document refers to any more."""
    components = document.get("components", {})
    reached: set[str] = set()
    pending = list(_references(document["paths"]))
    while pending:
        ref = pending.pop()
        if ref in reached or not ref.startswith("#/components/"):
            continue
        reached.add(ref)
        _, _, kind, name = ref.split("/", 3)
        target = components.get(kind, {}).get(name)
        if target is not None:
            pending.extend(_references(target))
    for kind in ("schemas", "responses", "parameters", "requestBodies"):
        if kind in components:
            components[kind] = {name: value for name, value in components[kind].items()
                                if f"#/components/{kind}/{name}" in reached}


def document(generated: dict[str, typing.Any], version: str) -> dict[str, typing.Any]:
    """The OpenAPI document of *version*, from the one flask-smorest *generated* (which is not changed)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown API version {version!r}: Kahuna serves {', '.join(VERSIONS)}")
    result = copy.deepcopy(generated)
    result.setdefault("info", {})["version"] = version
    if version == LEGACY:
        _legacy_operations(result)
        _move(result)
        _rename_path_variables(result)
    _query_parameters(result, version)
    _change_schemas(result, version)
    _prune(result)
    return result
