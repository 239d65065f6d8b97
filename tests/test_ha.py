"""The active-passive pair on one database, in one process: the lease, the passive node's refusals,
takeover when the active one dies, and a stale active that cannot write. (tests/test_production.py
does it with real processes behind Caddy; tests/test_lease.py races the lease itself.)

Every test runs beside two CPU-hog processes: on a loaded machine the outcomes (roles, takeover) must
be the same. Waits are bounded and generous; nothing asserts how long something took."""

from __future__ import annotations

import kowabunga as k
import pytest

from kahuna.ha import LeaseStore
from tests.deployment import Deployment, expect_error
from tests.harness import CpuHogs

# Long enough for a loaded machine: the active renews every 2 s and stays active 4.5 s after each
# renewal, so a process starved for 2.5 s keeps its role (kahuna/ha.py explains the timing).
LEASE_SECONDS = 6.0
HA = {"global.ha.enabled": True, "global.ha.leaseSeconds": LEASE_SECONDS}


@pytest.fixture
def cpu_hogs():
    """Two busy-loop processes beside the test (2 cores: the machine is saturated)."""
    with CpuHogs(2, lifetime=300) as hogs:
        yield hogs


@pytest.fixture
def pair(cpu_hogs, ferretdb, mail_server):
    """(active, passive): the first node started takes the lease; the roles are checked, not assumed."""
    first = Deployment.start(ferretdb.uri, "kahuna_ha", mail_server, **HA, **{"global.ha.nodeName": "first"})
    second = Deployment.start(ferretdb.uri, "kahuna_ha", mail_server, keep_database=True, **HA,
                              **{"global.ha.nodeName": "second"})
    try:
        first.wait_until(lambda: sorted(role(each)[1] for each in (first, second)) == ["active", "passive"],
                         timeout=3 * LEASE_SECONDS, what="one active node and one passive")
        active, passive = (first, second) if role(first)[1] == "active" else (second, first)
        yield active, passive
    finally:
        second.stop()
        first.stop()


def role(deployment):
    response = deployment.http.request("GET", f"{deployment.base_url}/healthz/active")
    return response.status, response.json()["role"]


def test_one_node_is_active_the_other_refuses_writes_and_agents(pair):
    active, passive = pair
    assert role(active) == (200, "active") and role(passive) == (503, "passive")
    # Reads work on both; writes only on the active node.
    assert k.RegionApi(passive.admin).list_regions() == []
    body = expect_error(503, k.RegionApi(passive.admin).create_region, k.Region(name="r", domain="r.example"))
    assert "passive" in body["reason"]
    k.RegionApi(active.admin).create_region(k.Region(name="r", domain="r.example"))
    # Agents are turned away before the upgrade.
    agent_id, key = active.create_agent("kaktus-1", "Kaktus")
    response = passive.http.request("GET", f"{passive.base_url}/ws", headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "X-WS-Kowabunga-Agent": "Kaktus",
        "X-WS-Kowabunga-Id": agent_id, "X-WS-Kowabunga-Api-Key": key})
    assert response.status == 503
    # Following an e-mailed link writes too: the page's button is refused on the passive node.
    response = passive.http.request("POST", f"{passive.base_url}/confirmForgotPassword",
                                    fields={"user": agent_id, "token": "any"}, encode_multipart=False)
    assert response.status == 503 and "standby" in response.data.decode()


def test_the_passive_takes_over_when_the_active_dies_and_a_stale_active_cannot_write(pair):
    active, passive = pair
    agent = active.simulated_agent("kaktus-1", "Kaktus")
    k.RegionApi(active.admin).create_region(k.Region(name="kept", domain="kept.example"))
    active.kahuna.lease.stop(release=False)  # as if the process froze or died: the lease is not given up
    assert role(active)[0] == 503
    passive.wait_until(lambda: role(passive) == (200, "active"), timeout=4 * LEASE_SECONDS, what="takeover")
    # The acknowledged write is there; the new active serves writes; the lease token went up.
    assert [r.name for r in (k.RegionApi(passive.admin).read_region(i)
                             for i in k.RegionApi(passive.admin).list_regions())] == ["kept"]
    k.RegionApi(passive.admin).create_region(k.Region(name="after", domain="after.example"))
    assert LeaseStore(passive.kahuna.db, LEASE_SECONDS).holder().token >= 2
    # The old active refuses writes; its agents were told to go (they reconnect to the active one).
    expect_error(503, k.RegionApi(active.admin).create_region, k.Region(name="stale", domain="stale.example"))
    agent.close()
    reconnected = passive.simulated_agent("kaktus-2", "Kaktus")
    assert reconnected.connected


def test_a_clean_stop_hands_over_at_once(pair):
    active, passive = pair
    active.kahuna.lease.stop(release=True)
    passive.wait_until(lambda: role(passive) == (200, "active"), timeout=2 * LEASE_SECONDS, what="handover")


def test_metrics_describe_the_node(pair):
    active, _ = pair
    active.simulated_agent("kaktus-1", "Kaktus")
    k.RegionApi(active.admin).list_regions()
    text = active.http.request("GET", f"{active.base_url}/metrics").data.decode()
    assert 'kahuna_agents_connected{type="Kaktus"} 1.0' in text
    assert "kahuna_ha_active 1.0" in text
    assert 'kahuna_http_requests_total{method="GET",status="200"}' in text
    assert 'kahuna_agent_rpc_calls_total{method="Kaktus.Capabilities",outcome="ok"}' in text
    assert 'kahuna_objects{kind="agent"} 1.0' in text
