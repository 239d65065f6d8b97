"""The served OpenAPI documents against the contracts: ``/api/v1/openapi.json`` against
api/contract/openapi-0.58.yaml (Kowabunga API 0.58.0), ``/api/v1/openapi-0.53.2.json`` against
api/contract/openapi.yaml (0.53.2); every route of both contracts is served; Login's status by client."""

from __future__ import annotations

import re

import pytest

from api import create_api_app
from api.versions import RENAMED
from tests.contract import NOT_YET_SERVED, contract, operations
from tests.deployment import MASTER_KEY

#: (version, where it is served, its operations).
DOCUMENTS = [("0.58.0", "/api/v1/openapi.json", 187), ("0.53.2", "/api/v1/openapi-0.53.2.json", 167)]
LEGACY_UA = "OpenAPI-Generator/0.53.2/python"
CURRENT_UA = "OpenAPI-Generator/0.58.0/python"


def _not_yet(version: str) -> frozenset[str]:
    """The operations of *version* the server does not serve yet (0.58.0 only), with their 0.53.2 names."""
    if version != "0.58.0":
        return frozenset()
    return NOT_YET_SERVED | {RENAMED[name] for name in NOT_YET_SERVED if name in RENAMED}


@pytest.fixture(params=DOCUMENTS, ids=[version for version, _, _ in DOCUMENTS])
def served(request, deployment):
    version, url, count = request.param
    response = deployment.http.request("GET", f"{deployment.base_url}{url}")  # public, as every API document
    assert response.status == 200
    document = response.json()
    assert document["info"]["version"] == version
    return version, count, document


def test_each_document_is_also_served_under_its_version(deployment):
    for version, url, _ in DOCUMENTS:
        versioned = deployment.http.request("GET", f"{deployment.base_url}/api/v1/openapi-{version}.json")
        served = deployment.http.request("GET", f"{deployment.base_url}{url}")
        assert versioned.status == 200 and versioned.json() == served.json()
        assert versioned.headers["Content-Type"] == "application/json"


def _normalize(path):
    # Our path parameters are named as the contract's; only the syntax differs.
    return path.replace("<", "{").replace(">", "}")


def test_every_served_operation_is_the_contracts(served):
    version, _, document = served
    expected = operations(contract(version))
    for operation_id, (method, path, _) in operations(document).items():
        if operation_id in _not_yet(version):
            continue
        assert operation_id in expected, f"{operation_id} is not in the {version} contract"
        assert (method, _normalize(path)) == expected[operation_id][:2], operation_id


def test_every_operation_of_the_contract_is_served(served):
    version, count, document = served
    expected = operations(contract(version))
    assert len(expected) == count
    assert sorted(set(expected) - set(operations(document)) - _not_yet(version)) == []


def test_not_yet_served_lists_only_what_is_missing(served):
    """NOT_YET_SERVED shrinks as the operations land: an operation served is taken off it."""
    version, _, document = served
    assert sorted(_not_yet(version) & set(operations(document))) == []
    assert NOT_YET_SERVED <= set(operations(contract("0.58.0")))


def test_served_schemas_have_the_contracts_fields(served):
    version, _, document = served
    contract_schemas = contract(version)["components"]["schemas"]
    served_schemas = document["components"]["schemas"]
    compared = 0
    for name, schema in served_schemas.items():
        if name not in contract_schemas:
            continue
        expected = contract_schemas[name]
        assert set(schema.get("properties", {})) == set(expected.get("properties", {})), name
        assert set(schema.get("required", [])) == set(expected.get("required", [])), name
        compared += 1
    assert compared >= 40


def test_error_responses_are_documented_as_in_the_contract(served):
    version, _, document = served
    expected = operations(contract(version))
    for operation_id, (_, _, spec) in operations(document).items():
        if operation_id in _not_yet(version):
            continue
        documented = {code for code in expected[operation_id][2]["responses"] if code.startswith(("4", "5"))}
        assert documented <= set(spec["responses"]), operation_id


def test_success_replies_are_the_contracts(served):
    """Login's 200 (0.58) or 201 (0.53.2), SetUserApiToken's ApiToken (0.58) or empty 200 (0.53.2)..."""
    version, _, document = served
    expected = operations(contract(version))

    def success(operation):
        return {code: "content" in reply for code, reply in operation["responses"].items() if code.startswith("2")}

    wrong = [operation_id for operation_id, (_, _, spec) in operations(document).items()
             if operation_id not in _not_yet(version) and success(spec) != success(expected[operation_id][2])]
    assert wrong == []


def test_0_58_documents_500_and_partial_update_bodies(served):
    version, _, document = served
    schemas = document["components"]["schemas"]
    puts = 0
    for operation_id, (method, _, spec) in operations(document).items():
        documents_500 = "500" in spec["responses"]
        assert documents_500 == (version == "0.58.0"), operation_id
        body = spec.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if method == "put" and body:
            puts += 1
            name = body["$ref"].rsplit("/", 1)[1]
            assert name.endswith("Update") == (version == "0.58.0") or name == "Password", operation_id
    assert puts >= 23
    if version == "0.58.0":
        assert schemas["ApiErrorInternalServerError"]["required"] == ["error", "reason", "status"]
        reply = document["components"]["responses"]["InternalServerError"]
        assert reply["content"]["application/json"]["schema"]["$ref"].endswith("/ApiErrorInternalServerError")
        assert all("required" not in schemas[name] for name in schemas if name.endswith("Update"))


def test_every_route_of_both_contracts_is_routed(deployment):
    """Each (method, path) of either contract reaches a view: the 0.53.2 routes 0.58 moved go through api.legacy.
    A route that only answers 404/405 is a forgotten alias."""
    app = create_api_app(deployment.kahuna.services)
    adapter = app.url_map.bind("")
    missing = []
    checked = 0
    for version in ("0.58.0", "0.53.2"):
        for operation_id, (method, path, _) in operations(contract(version)).items():
            if operation_id in _not_yet(version):
                continue
            url = re.sub(r"{\w+}", "0" * 24, path)
            try:
                adapter.match(url, method.upper())
            except Exception as exc:  # noqa: BLE001 - werkzeug's NotFound / MethodNotAllowed, reported
                missing.append(f"{version} {method.upper()} {path} ({operation_id}): {type(exc).__name__}")
            checked += 1
    assert missing == []
    assert checked == 187 + 167 - len(NOT_YET_SERVED)


def test_legacy_routes_answer_as_their_0_58_route(deployment):
    """GET /region/{id}/nfs and /region/{id}/nfses: the same reply; an unknown region is the same 404."""
    admin = {"X-API-Key": MASTER_KEY}
    base = f"{deployment.base_url}/api/v1"
    missing = "0" * 24
    for old, new in ((f"/region/{missing}/nfs", f"/region/{missing}/nfses"),
                     (f"/nfs/{missing}/kylo", f"/nfs/{missing}/kylos")):
        old_reply = deployment.http.request("GET", base + old, headers=admin)
        new_reply = deployment.http.request("GET", base + new, headers=admin)
        assert (old_reply.status, old_reply.json()) == (new_reply.status, new_reply.json()) == (
            404, old_reply.json())
        assert old_reply.json()["status"] == 404
    # A legacy route keeps its operation's access rule: no credentials, 401.
    assert deployment.http.request("GET", base + f"/region/{missing}/nfs").status == 401


def _login(deployment, email, password, user_agent=None):
    headers = {} if user_agent is None else {"User-Agent": user_agent}
    return deployment.http.request("POST", f"{deployment.base_url}/api/v1/login",
                                   json={"email": email, "password": password}, headers=headers)


@pytest.mark.parametrize(("user_agent", "status"), [
    (LEGACY_UA, 201),
    ("OpenAPI-Generator/0.54.1/python", 201),
    (CURRENT_UA, 200),
    ("OpenAPI-Generator/0.53.2/go", 200),
    ("curl/8.5.0", 200),
    ("", 200),
    (None, 200),
])
def test_login_answers_201_only_to_python_sdks_older_than_0_58(deployment, user_agent, status):
    bob = deployment.create_account("bob")
    response = _login(deployment, bob.email, bob.password, user_agent)
    assert response.status == status
    body = response.json()
    assert body["email"] == bob.email and body["password"] == "" and body["jwt"].count(".") == 2
