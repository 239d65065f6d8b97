"""schemathesis over every operation of both OpenAPI documents Kahuna serves (0.58.0 and 0.53.2), as a superAdmin
and as a plain user: no 5xx, and every response conforms to the document (status, content type, schema).
The 0.53.2 run is a 0.53.2 Python SDK to the server (its User-Agent: Login then answers 201, as 0.53.2 documents).
Bounded: a few examples per operation, derandomized, so CI runs the same cases every time."""

from __future__ import annotations

import kowabunga as k
import pytest

from tests.contract import NOT_YET_SERVED
from tests.deployment import MASTER_KEY

EXAMPLES_PER_OPERATION = 6
#: version -> (document, operations, the client's User-Agent).
DOCUMENTS = {
    "0.58.0": ("/api/v1/openapi.json", 187 - len(NOT_YET_SERVED), "OpenAPI-Generator/0.58.0/python"),
    "0.53.2": ("/api/v1/openapi-0.53.2.json", 167, "OpenAPI-Generator/0.53.2/python"),
}


def fuzz(deployment, version: str, headers: dict[str, str]) -> list[str]:
    # Imported here, not at collection: schemathesis and hypothesis are large, and every pytest run would pay.
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    path, count, user_agent = DOCUMENTS[version]
    headers = {**headers, "User-Agent": user_agent}
    check_list = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
                  checks.response_schema_conformance]
    document = deployment.http.request("GET", f"{deployment.base_url}{path}").json()
    assert document["info"]["version"] == version
    schema = schemathesis.openapi.from_dict(document)
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == count
    for operation in operations:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call(base_url=f"{deployment.base_url}/api/v1", headers=headers, timeout=30)
            case.validate_response(response, checks=check_list)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected, reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    return failures


@pytest.mark.parametrize("version", DOCUMENTS)
def test_fuzz_as_a_super_admin(deployment, version):
    assert fuzz(deployment, version, {"X-API-Key": MASTER_KEY}) == []


@pytest.mark.parametrize("version", DOCUMENTS)
def test_fuzz_as_a_plain_user(deployment, version):
    bob = deployment.create_account("bob")
    token = k.UserApi(deployment.anonymous()).login(k.UserCredentials(email=bob.email, password=bob.password)).jwt
    assert fuzz(deployment, version, {"Authorization": f"Bearer {token}"}) == []
