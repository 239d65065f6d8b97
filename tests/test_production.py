"""The production shape, with real processes: Debian's Caddy in front (the repository's Caddyfile),
two `kahuna serve` processes on one database as an active-passive pair, an agent on wss through
Caddy, a kill -9 of the active node, and the systemd units checked by systemd-analyze."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import kowabunga as k
import pytest

from tests.deployment import ADMIN_EMAIL, MASTER_KEY
from tests.harness import ROOT, Caddy, CpuHogs, KahunaNode, wait_until
from tests.mailserver import fact_in
from tests.simulator import Backoff, SimulatedAgent

# Long enough for a loaded machine (the HA tests run beside two CPU hogs): renewals every 2 s, and a
# node stays active 4.5 s after each one (kahuna/ha.py explains the timing).
LEASE_SECONDS = 6.0


@pytest.fixture
def cpu_hogs():
    """Two busy-loop processes beside the test (2 cores: the machine is saturated)."""
    with CpuHogs(2, lifetime=300) as hogs:
        yield hogs


def test_the_systemd_units_verify(tmp_path):
    kahuna = shutil.which("kahuna") or str(Path(sys.executable).with_name("kahuna"))
    for unit in ("kahuna.service", "kahuna-caddy.service"):
        text = (ROOT / "systemd" / unit).read_text().replace("/usr/bin/kahuna", kahuna)
        (tmp_path / unit).write_text(text)
        result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0 and not result.stderr.strip(), (unit, result.stderr)


def node(tmp: Path, name: str, db_uri: str, mail_port: int) -> KahunaNode:
    return KahunaNode(tmp, name, {
        "publicUrl": "https://127.0.0.1", "apiKey": MASTER_KEY, "adminEmail": ADMIN_EMAIL,
        "http": {"trustedProxies": 1}, "db": {"uri": db_uri, "name": "kahuna_production"},
        "smtp": {"host": "127.0.0.1", "port": mail_port, "security": "none"},
        "accounts": {"bcryptCost": 4, "loginFailuresPerSource": 3, "loginFailuresPerAccount": 100},
        "ha": {"enabled": True, "leaseSeconds": LEASE_SECONDS, "nodeName": name}})


def api(caddy: Caddy) -> k.ApiClient:
    configuration = k.Configuration(host=f"{caddy.url}/api/v1", ssl_ca_cert=str(caddy.ca))
    configuration.api_key = {"ApiKeyAuth": MASTER_KEY}
    return k.ApiClient(configuration)


@pytest.fixture
def cluster(tmp_path, ferretdb, mail_server):
    first = node(tmp_path, "first", ferretdb.uri, mail_server.port)
    wait_until(lambda: first.role() == "active", 30, "first node active")
    second = node(tmp_path, "second", ferretdb.uri, mail_server.port)
    caddy = Caddy(tmp_path, [first.port, second.port])
    yield first, second, caddy
    caddy.stop()
    for each in (first, second):
        each.stop()
    ferretdb_client = __import__("pymongo").MongoClient(ferretdb.uri)
    ferretdb_client.drop_database("kahuna_production")
    ferretdb_client.close()


def create_agent(caddy: Caddy, mail_server, name: str) -> tuple[str, str]:
    agents = k.AgentApi(api(caddy))
    agent = agents.create_agent(k.Agent(name=name, type="Kaktus"))
    count = mail_server.count(ADMIN_EMAIL, "agent API key") + 1
    agents.set_agent_api_token(agent.id)
    letter = mail_server.wait_for(ADMIN_EMAIL, "agent API key", count=count)
    return agent.id, fact_in(letter, "API key")


def test_caddy_serves_the_api_the_web_app_and_agents_over_tls(cluster, mail_server):
    first, second, caddy = cluster
    assert caddy.http.request("GET", caddy.url + "/").data == b"<html>Kowabunga web app</html>"
    assert_the_web_app_and_kahuna_share_the_site(caddy)
    region = k.RegionApi(api(caddy)).create_region(k.Region(name="eu-west", domain="west.example"))
    assert k.RegionApi(api(caddy)).read_region(region.id).name == "eu-west"
    metrics = caddy.get("/metrics")
    assert metrics.status == 404 and b"kahuna_" not in metrics.data  # not exposed through Caddy
    agent_id, key = create_agent(caddy, mail_server, "kaktus-1")
    agent = SimulatedAgent(caddy.url.replace("https://", "wss://"), "Kaktus", agent_id, key, ca_file=str(caddy.ca))
    agent.connect()
    wait_until(lambda: agent.calls_of("Capabilities"), 10, "Capabilities through Caddy")
    agent.close()
    # The client address Kahuna sees is the one Caddy saw: a forged X-Forwarded-For does not
    # escape the per-source login throttle.
    statuses = [caddy.http.request("POST", caddy.url + "/api/v1/login", json={"email": f"u{n}@example.com",
                                                                               "password": "x"},
                                   headers={"X-Forwarded-For": f"203.0.113.{n}"}).status for n in range(4)]
    assert statuses == [401, 401, 401, 429]


def assert_the_web_app_and_kahuna_share_the_site(caddy: Caddy) -> None:
    index = b"<html>Kowabunga web app</html>"
    (caddy.webapp / "main.js").write_text("console.log('Kowabunga');")
    # Reloading a page of the history-routed web app (or a bookmark, a pasted link) gets index.html.
    for page in ("/pages/projects/123", "/auth/login", "/pages/dns/www.example.com", "/pages/", "/assets"):
        response = caddy.get(page)
        assert (response.status, response.data) == (200, index), page
        assert response.headers["Content-Type"].startswith("text/html"), page
    # Real files are served as themselves; a missing asset is a 404, not HTML run as a script.
    script = caddy.get("/main.js")
    assert (script.status, script.data) == (200, b"console.log('Kowabunga');")
    assert "javascript" in script.headers["Content-Type"]
    for asset in ("/assets/missing.js", "/styles-missing.CSS", "/favicon.ico"):
        missing = caddy.get(asset)
        assert missing.status == 404 and index not in missing.data, asset
    # Kahuna's paths are never shadowed: an unknown API path is its JSON 404, the agents' socket, the
    # metadata and the e-mailed-link pages reach it.
    nothing = caddy.get("/api/v1/nothing")
    assert nothing.status == 404 and nothing.headers["Content-Type"].startswith("application/json")
    assert nothing.json()["status"] == 404
    assert caddy.get("/api").status == 404 and caddy.get("/api").data != index
    socket = caddy.get("/ws")  # no upgrade, no credentials: Kahuna's refusal, not the web app
    assert socket.status in (400, 401, 403, 426) and socket.data != index
    metadata = caddy.get("/latest/meta-data")
    assert metadata.status == 400 and metadata.headers["Content-Type"].startswith("application/json")
    assert caddy.get("/latest/meta-data/instance-id").data != index
    for page in ("/confirm", "/confirmForgotPassword"):
        link = caddy.get(page, fields={"user": "u", "token": "t"})
        assert link.status == 200 and b"<form method='post'>" in link.data, page
    assert caddy.get("/healthz").json()["role"] == "active"
    assert caddy.get("/healthz/active").status == 200
    assert caddy.get("/version").data != index


def test_kill_9_of_the_active_node_fails_over_with_nothing_lost(cpu_hogs, cluster, mail_server):
    first, second, caddy = cluster
    agent_id, key = create_agent(caddy, mail_server, "kaktus-1")
    agent = SimulatedAgent(caddy.url.replace("https://", "wss://"), "Kaktus", agent_id, key, ca_file=str(caddy.ca))
    agent.run(Backoff(initial=0.2, cap=1.0))
    wait_until(lambda: agent.connected, 10, "agent connected")
    acknowledged = k.RegionApi(api(caddy)).create_region(k.Region(name="before", domain="before.example"))
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    wait_until(lambda: second.role() == "active", 4 * LEASE_SECONDS + 5, "second node active")
    # Caddy sends writes and the agent to the new active node.
    wait_until(lambda: caddy.status("/healthz/active") == 200, 15, "Caddy on the new active node")
    regions = k.RegionApi(api(caddy))
    after = regions.create_region(k.Region(name="after", domain="after.example"))
    assert {regions.read_region(i).name for i in regions.list_regions()} == {"before", "after"}
    assert regions.read_region(acknowledged.id).name == "before"
    wait_until(lambda: agent.connected and agent.connections >= 2, 20, "agent reconnected")
    assert after.id
    agent.close()


def test_a_frozen_active_comes_back_passive_and_cannot_write(cpu_hogs, cluster):
    first, second, caddy = cluster
    first.process.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: second.role() == "active", 4 * LEASE_SECONDS + 5, "second node active")
    finally:
        first.process.send_signal(signal.SIGCONT)
    wait_until(lambda: first.role() == "passive", 10, "first node passive again")
    response = first.http.request("POST", f"http://127.0.0.1:{first.port}/api/v1/region",
                                  json={"name": "stale", "domain": "stale.example"},
                                  headers={"X-API-Key": MASTER_KEY})
    assert response.status == 503
    assert "passive" in response.json()["reason"]
