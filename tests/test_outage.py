"""A database that goes away: Kahuna answers 503 with a clear body, recovers by itself when the
database comes back, and has lost nothing it acknowledged."""

from __future__ import annotations

import kowabunga as k
import pytest

from kahuna.storage.embedded import EmbeddedFerretDB
from tests.deployment import Deployment, expect_error


@pytest.fixture
def fragile(tmp_path, mail_server):
    database = EmbeddedFerretDB(tmp_path / "db").start()
    running = Deployment.start(database.uri, "kahuna_outage", mail_server, **{"global.db.timeoutSeconds": 1})
    yield running, database
    running.stop()
    database.stop()


def test_an_outage_is_a_clear_503_and_kahuna_recovers_with_nothing_lost(fragile):
    deployment, database = fragile
    regions = k.RegionApi(deployment.admin)
    kept = regions.create_region(k.Region(name="kept", domain="kept.example"))
    database.stop()
    body = expect_error(503, regions.list_regions)
    assert body["status"] == 503 and "database is unavailable" in body["reason"]
    health = deployment.http.request("GET", f"{deployment.base_url}/healthz", retries=False)
    assert health.status == 503 and health.json()["database"] is False
    agent_socket = deployment.http.request("GET", f"{deployment.base_url}/ws", retries=False, headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "X-WS-Kowabunga-Agent": "Kaktus",
        "X-WS-Kowabunga-Id": "0" * 24, "X-WS-Kowabunga-Api-Key": "x" * 64})
    assert agent_socket.status == 503
    database.start()
    deployment.wait_until(lambda: deployment.http.request("GET", f"{deployment.base_url}/healthz",
                                                          retries=False).status == 200, timeout=30, what="recovery")
    assert regions.read_region(kept.id).name == "kept"
    assert regions.create_region(k.Region(name="after", domain="after.example")).name == "after"
