"""The served OpenAPI document against the contract (api/contract/openapi.yaml, Kowabunga API 0.53.2)."""


import pytest

from tests.contract import contract
from tests.deployment import MASTER_KEY

CONTRACT = contract()
METHODS = ("get", "post", "put", "patch", "delete")


def operations(document, prefix=""):
    found = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                found[item[method]["operationId"]] = (method, path.removeprefix(prefix), item[method])
    return found


@pytest.fixture
def served(deployment):
    response = deployment.http.request("GET", f"{deployment.base_url}/api/v1/openapi.json",
                                       headers={"X-API-Key": MASTER_KEY})
    return response.json()


def _normalize(path):
    # Our path parameters are named as the contract's; only the syntax differs.
    return path.replace("<", "{").replace(">", "}")


def test_every_served_operation_is_the_contracts(served):
    contract = operations(CONTRACT)
    for operation_id, (method, path, _) in operations(served).items():
        assert operation_id in contract, f"{operation_id} is not in the contract"
        assert (method, _normalize(path)) == contract[operation_id][:2], operation_id


def test_every_operation_of_the_contract_is_served(served):
    contract = operations(CONTRACT)
    assert len(contract) == 167
    assert sorted(set(contract) - set(operations(served))) == []


def test_served_schemas_have_the_contracts_fields(served):
    contract_schemas = CONTRACT["components"]["schemas"]
    served_schemas = served["components"]["schemas"]
    compared = 0
    for name, schema in served_schemas.items():
        if name not in contract_schemas:
            continue
        expected = contract_schemas[name]
        assert set(schema.get("properties", {})) == set(expected.get("properties", {})), name
        assert set(schema.get("required", [])) == set(expected.get("required", [])), name
        compared += 1
    assert compared >= 10


def test_error_responses_are_documented_as_in_the_contract(served):
    contract = operations(CONTRACT)
    for operation_id, (_, _, spec) in operations(served).items():
        documented = {code for code in contract[operation_id][2]["responses"] if code.startswith(("4", "5"))}
        assert documented <= set(spec["responses"]), operation_id
