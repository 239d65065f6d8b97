"""HTTP-level behaviour: JSON errors everywhere, limits, the served OpenAPI document, pages."""

import pytest

from tests.deployment import MASTER_KEY


@pytest.fixture
def http(deployment):
    def request(method, path, **kwargs):
        return deployment.http.request(method, f"{deployment.base_url}{path}", **kwargs)
    return request


def test_unknown_paths_and_methods_answer_json(http):
    for method, path, status in (("GET", "/api/v1/nothing", 404), ("GET", "/nothing", 404),
                                 ("DELETE", "/api/v1/user", 405), ("GET", "/api/v1/login", 405)):
        response = http(method, path, headers={"X-API-Key": MASTER_KEY})
        assert response.status == status
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["status"] == status


def test_oversized_bodies_are_refused(http):
    response = http("POST", "/api/v1/login", body=b"{" + b" " * (2 << 20) + b"}",
                    headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert response.json()["status"] == 413


def test_a_body_that_is_not_json_is_a_bad_request(http):
    response = http("POST", "/api/v1/login", body=b"email=x", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert response.json()["status"] == 400


def test_patch_with_a_malformed_query_is_a_documented_422(deployment, http):
    account = deployment.create_account("bob")
    response = http("PATCH", f"/api/v1/user/{account.id}/token?expire=maybe", headers={"X-API-Key": MASTER_KEY})
    # PATCH documents no 400: malformed input there is "can't process".
    assert response.status == 422
    assert "expire" in response.json()["reason"]


def test_version_and_health(http):
    assert "API 0.58.0, 0.53.2" in http("GET", "/version").data.decode()
    health = http("GET", "/healthz")
    assert health.status == 200 and health.json() == {"status": "ok", "database": True, "role": "active"}


def test_the_openapi_document_is_served(http):
    document = http("GET", "/api/v1/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == "0.58.0"
    assert http("GET", "/api/v1/openapi-0.53.2.json").json()["info"]["version"] == "0.53.2"
    assert document["servers"] == [{"url": "/api/v1"}]
