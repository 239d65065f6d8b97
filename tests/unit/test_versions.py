"""api.versions: the 0.53.2 document derived from the 0.58.0 one, and the Python SDK version rule of Login.

The derivation is checked on the 0.58.0 contract itself: downgraded, it must give the 0.53.2 contract's operations
(names, methods, paths) and its schemas' property and required sets. tests/test_contract.py checks the documents
the server serves.
"""

from __future__ import annotations

import copy

import pytest

from api import versions
from kahuna import access
from tests.contract import contract, operations


def _routes(document):
    return {operation_id: (method, path) for operation_id, (method, path, _) in operations(document).items()}


def _shapes(document):
    return {name: (set(schema.get("properties", {})), set(schema.get("required", [])))
            for name, schema in document["components"]["schemas"].items()}


@pytest.fixture(scope="module")
def downgraded():
    return versions.document(contract("0.58.0"), versions.LEGACY)


def test_the_versions():
    assert (versions.CURRENT, versions.LEGACY) == ("0.58.0", "0.53.2")
    assert versions.DOCUMENT_PATHS == {"0.58.0": "/openapi.json", "0.53.2": "/openapi-0.53.2.json"}
    with pytest.raises(ValueError, match="unknown API version"):
        versions.document(contract("0.58.0"), "0.57.0")


def test_the_tables_name_operations_of_the_contracts():
    current, legacy = operations(contract("0.58.0")), operations(contract("0.53.2"))
    assert len(versions.NEW_IN_058) == 20 and versions.NEW_IN_058 <= set(current)
    assert not versions.NEW_IN_058 & set(legacy)
    assert len(versions.RENAMED) == 12
    assert set(versions.RENAMED) <= set(current) and set(versions.RENAMED.values()) <= set(legacy)
    for version in versions.VERSIONS:
        assert set(versions.LEGACY_RESPONSES) | set(versions.QUERY_PARAMETERS[version]) <= set(current)
    moved = {(method, path) for method, path, _ in current.values()}
    assert set(versions.MOVED) <= moved


def test_renamed_operations_share_their_rule():
    for new, old in versions.RENAMED.items():
        assert access.RULES[new] is access.RULES[old]


def test_the_downgraded_0_58_contract_has_the_0_53_2_operations_and_routes(downgraded):
    assert downgraded["info"]["version"] == "0.53.2"
    assert _routes(downgraded) == _routes(contract("0.53.2"))


def test_the_downgraded_0_58_contract_has_the_0_53_2_schemas(downgraded):
    legacy = _shapes(contract("0.53.2"))
    derived = _shapes(downgraded)
    compared = {name for name in derived if name in legacy}
    assert {name: derived[name] for name in compared} == {name: legacy[name] for name in compared}
    assert len(compared) >= 40
    # Only 0.58's own schemas went away, with what referred to them.
    assert not any(name.endswith("Update") for name in derived)
    assert "KawaiiIpSecFirewall" not in derived and "ApiErrorInternalServerError" not in derived


def test_the_downgraded_replies_and_bodies_are_the_0_53_2_ones(downgraded):
    legacy = operations(contract("0.53.2"))
    for operation_id, (_, _, operation) in operations(downgraded).items():
        assert "500" not in operation["responses"], operation_id
        assert ({code for code in operation["responses"] if code.startswith("2")}
                == {code for code in legacy[operation_id][2]["responses"] if code.startswith("2")}), operation_id
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        expected = legacy[operation_id][2].get("requestBody", {}).get("content", {}).get("application/json", {})
        assert body == expected.get("schema"), operation_id
    login = operations(downgraded)["Login"][2]["responses"]["201"]
    assert login["content"]["application/json"]["schema"]["$ref"].endswith("/UserCredentials")
    assert "content" not in operations(downgraded)["SetUserApiToken"][2]["responses"]["200"]


def test_query_parameters_are_each_versions(downgraded):
    def query(document, operation_id):
        return {p["name"] for p in operations(document)[operation_id][2].get("parameters", []) if "name" in p}

    current = versions.document(_generated_like(), versions.CURRENT)
    legacy = versions.document(_generated_like(), versions.LEGACY)
    assert query(current, "SetUserApiToken") == {"expire", "expirationDate"}
    assert query(legacy, "SetUserApiToken") == {"expire", "expiration_date"}
    assert query(current, "ListRegionStorageNFSes") == set()
    assert query(legacy, "ListRegionStorageNFSs") == {"poolId"}
    assert query(downgraded, "ListProjects") == {"subnetSize"}


def _generated_like():
    """A small document shaped as flask-smorest generates it: both date parameters, inline, and poolId."""
    date = {"in": "query", "schema": {"type": "string", "format": "date"}, "required": False}
    ok = {"200": {"description": "OK"}, "500": {"$ref": "#/components/responses/InternalServerError"}}
    return {
        "info": {"version": "0.58.0"},
        "paths": {
            "/user/{userId}/token": {"patch": {
                "operationId": "SetUserApiToken", "responses": ok,
                "parameters": [{"in": "query", "name": "expire", "schema": {"type": "boolean"}},
                               {**date, "name": "expirationDate"}, {**date, "name": "expiration_date"}]}},
            "/region/{regionId}/nfses": {"get": {
                "operationId": "ListRegionStorageNFSes", "responses": ok,
                "parameters": [{"in": "query", "name": "poolId", "schema": {"type": "string"}}]}},
        },
        "components": {"schemas": {}, "responses": {"InternalServerError": {"description": "500"}}},
    }


def test_the_derivation_leaves_the_generated_document_unchanged():
    generated = contract("0.58.0")
    before = copy.deepcopy(generated)
    versions.document(generated, versions.LEGACY)
    versions.document(generated, versions.CURRENT)
    assert generated == before


def test_the_current_document_keeps_the_0_58_routes_and_schemas():
    current = versions.document(contract("0.58.0"), versions.CURRENT)
    assert _routes(current) == _routes(contract("0.58.0"))
    expected = _shapes(contract("0.58.0"))
    assert {n: s for n, s in _shapes(current).items()} == {n: expected[n] for n in _shapes(current)}


def test_a_document_still_in_0_53_2_shape_is_left_as_it_is():
    """The derivation is keyed by operationId and tolerant: an operation the code still serves under its 0.53.2
    name or route (while it is being renamed) comes out right."""
    legacy = contract("0.53.2")
    derived = versions.document(legacy, versions.LEGACY)
    assert _routes(derived) == _routes(legacy)
    shapes = _shapes(legacy)
    assert {n: s for n, s in _shapes(derived).items() if n in shapes} == {
        n: shapes[n] for n in _shapes(derived) if n in shapes}


def test_unreferenced_components_are_pruned():
    document = {"paths": {"/a": {"get": {"operationId": "A", "responses": {
        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Used"}}}}}}}},
        "components": {"schemas": {"Used": {"properties": {"b": {"$ref": "#/components/schemas/Nested"}}},
                                   "Nested": {}, "Orphan": {}},
                       "responses": {"Orphan": {}}}}
    derived = versions.document(document, versions.CURRENT)
    assert set(derived["components"]["schemas"]) == {"Used", "Nested"}
    assert derived["components"]["responses"] == {}


@pytest.mark.parametrize(("user_agent", "legacy"), [
    ("OpenAPI-Generator/0.53.2/python", True),
    ("OpenAPI-Generator/0.54.1/python", True),
    ("OpenAPI-Generator/0.57.9/python", True),
    ("OpenAPI-Generator/0.58.0/python", False),
    ("OpenAPI-Generator/0.60.1/python", False),
    ("OpenAPI-Generator/1.2.0/python", False),
    ("OpenAPI-Generator/0.53.2/go", False),
    ("OpenAPI-Generator/0.53.2/python extra", False),
    ("curl/8.5.0", False),
    ("", False),
    (None, False),
])
def test_is_legacy_python_sdk(user_agent, legacy):
    assert versions.is_legacy_python_sdk(user_agent) is legacy
    assert versions.login_status(user_agent) == (201 if legacy else 200)
