"""schemathesis over every operation of the OpenAPI document Kahuna serves, as a superAdmin and as a
plain user: no 5xx, and every response conforms to the document (status, content type, schema).
Bounded: a few examples per operation, derandomized, so CI runs the same cases every time."""

from __future__ import annotations

import kowabunga as k

from tests.deployment import MASTER_KEY

EXAMPLES_PER_OPERATION = 6


def fuzz(deployment, headers: dict[str, str]) -> list[str]:
    # Imported here, not at collection: schemathesis and hypothesis are large, and every pytest run would pay.
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    check_list = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
                  checks.response_schema_conformance]
    document = deployment.http.request("GET", f"{deployment.base_url}/api/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 167
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


def test_fuzz_as_a_super_admin(deployment):
    assert fuzz(deployment, {"X-API-Key": MASTER_KEY}) == []


def test_fuzz_as_a_plain_user(deployment):
    bob = deployment.create_account("bob")
    token = k.UserApi(deployment.anonymous()).login(k.UserCredentials(email=bob.email, password=bob.password)).jwt
    assert fuzz(deployment, {"Authorization": f"Bearer {token}"}) == []
