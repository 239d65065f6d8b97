"""Timeouts reach the client as a JSON 503 with Retry-After, never a 500: an agent that did not answer in time
(what the operation did was undone), or an object's owner that did not finish within the caller's wait (the
operation goes on). The mapping is one place: the ``status`` of the classes in kahuna/errors.py."""

import pytest

from kahuna.errors import AgentTimeout, OperationTimeout
from tests.deployment import MASTER_KEY


@pytest.mark.parametrize("error", [AgentTimeout("agent kaktus-1 did not answer Kaktus.GetInstanceState in 30 s"),
                                   OperationTimeout("operation on project:1 did not finish within 30s")])
def test_a_timeout_is_a_json_503_with_retry_after(deployment, monkeypatch, error):
    def times_out(*args, **kwargs):
        raise error

    monkeypatch.setattr(deployment.kahuna.services.regions, "list_ids", times_out)
    response = deployment.http.request("GET", f"{deployment.base_url}/api/v1/region",
                                       headers={"X-API-Key": MASTER_KEY})
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {"status": 503, "error": "Service unavailable.", "reason": error.reason}
