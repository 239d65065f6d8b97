"""The production shape, with real processes: Debian's Caddy in front (the repository's Caddyfile),
two `kahuna serve` processes on one database as an active-passive pair, an agent on wss through
Caddy, a kill -9 of the active node, and the systemd units checked by systemd-analyze."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import kowabunga as k
import pytest
import urllib3
import yaml

from kahuna.simulator import Backoff, SimulatedAgent
from kahuna.storage.embedded import free_loopback_port
from tests.deployment import ADMIN_EMAIL, MASTER_KEY, Deployment
from tests.mailserver import fact_in

ROOT = Path(__file__).resolve().parents[1]
LEASE_SECONDS = 2.0


def wait_until(condition, timeout: float, what: str) -> None:
    Deployment.wait_until(condition, timeout=timeout, what=what)


def test_the_systemd_units_verify(tmp_path):
    kahuna = shutil.which("kahuna") or str(Path(sys.executable).with_name("kahuna"))
    for unit in ("kahuna.service", "kahuna-caddy.service"):
        text = (ROOT / "systemd" / unit).read_text().replace("/usr/bin/kahuna", kahuna)
        (tmp_path / unit).write_text(text)
        result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0 and not result.stderr.strip(), (unit, result.stderr)


class Node:
    """One `kahuna serve` process."""

    def __init__(self, tmp: Path, name: str, db_uri: str, mail_port: int):
        self.name = name
        self.port = free_loopback_port()
        self.config = tmp / f"{name}.yml"
        self.config.write_text(yaml.safe_dump({"global": {
            "publicUrl": "https://127.0.0.1", "apiKey": MASTER_KEY, "adminEmail": ADMIN_EMAIL,
            "http": {"address": "127.0.0.1", "port": self.port, "trustedProxies": 1},
            "db": {"uri": db_uri, "name": "kahuna_production"},
            "smtp": {"host": "127.0.0.1", "port": mail_port, "security": "none"},
            "accounts": {"bcryptCost": 4, "loginFailuresPerSource": 3, "loginFailuresPerAccount": 100},
            "ha": {"enabled": True, "leaseSeconds": LEASE_SECONDS, "nodeName": name}}}))
        self.log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "kahuna.cli", "serve", "-c", str(self.config)],
                                        stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.http = urllib3.PoolManager(retries=False, timeout=5)
        wait_until(self.answers, 30, f"{name} up")

    def answers(self) -> bool:
        try:
            return self.http.request("GET", f"http://127.0.0.1:{self.port}/healthz").status == 200
        except urllib3.exceptions.HTTPError:
            return False

    def role(self) -> str:
        try:
            return self.http.request("GET", f"http://127.0.0.1:{self.port}/healthz").json()["role"]
        except urllib3.exceptions.HTTPError:
            return "dead"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


class Caddy:
    def __init__(self, tmp: Path, upstreams: list[int]):
        self.port = free_loopback_port()
        webapp = tmp / "webapp"
        webapp.mkdir()
        (webapp / "index.html").write_text("<html>Kowabunga web app</html>")
        storage = tmp / "caddy"
        env = {**os.environ, "CADDY_STORAGE": str(storage), "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
               "XDG_DATA_HOME": str(tmp / "xdg-data"), "KAHUNA_SITE": f"https://127.0.0.1:{self.port}",
               "CADDY_BIND": "127.0.0.1", "CADDY_HTTPS_PORT": str(self.port),
               "CADDY_HTTP_PORT": str(free_loopback_port()), "KAHUNA_TLS": "internal",
               "KAHUNA_UPSTREAMS": " ".join(f"127.0.0.1:{p}" for p in upstreams), "KAHUNA_WEBAPP": str(webapp)}
        self.log = open(tmp / "caddy.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(["caddy", "run", "--config", str(ROOT / "Caddyfile"), "--adapter",
                                         "caddyfile"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.ca = storage / "pki" / "authorities" / "local" / "root.crt"
        self.url = f"https://127.0.0.1:{self.port}"
        wait_until(self.ca.exists, 30, "Caddy's CA")
        self.http = urllib3.PoolManager(cert_reqs=ssl.CERT_REQUIRED, ca_certs=str(self.ca), retries=False, timeout=10)
        wait_until(lambda: self._status("/healthz") == 200, 30, "Caddy proxying to the active node")

    def _status(self, path: str) -> int:
        try:
            return self.http.request("GET", self.url + path).status
        except urllib3.exceptions.HTTPError:
            return 0

    def api(self) -> k.ApiClient:
        configuration = k.Configuration(host=f"{self.url}/api/v1", ssl_ca_cert=str(self.ca))
        configuration.api_key = {"ApiKeyAuth": MASTER_KEY}
        return k.ApiClient(configuration)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def cluster(tmp_path, ferretdb, mail_server):
    first = Node(tmp_path, "first", ferretdb.uri, mail_server.port)
    wait_until(lambda: first.role() == "active", 10, "first node active")
    second = Node(tmp_path, "second", ferretdb.uri, mail_server.port)
    caddy = Caddy(tmp_path, [first.port, second.port])
    yield first, second, caddy
    caddy.stop()
    for node in (first, second):
        node.stop()
    ferretdb_client = __import__("pymongo").MongoClient(ferretdb.uri)
    ferretdb_client.drop_database("kahuna_production")
    ferretdb_client.close()


def create_agent(caddy: Caddy, mail_server, name: str) -> tuple[str, str]:
    agents = k.AgentApi(caddy.api())
    agent = agents.create_agent(k.Agent(name=name, type="Kaktus"))
    count = mail_server.count(ADMIN_EMAIL, "agent API key") + 1
    agents.set_agent_api_token(agent.id)
    letter = mail_server.wait_for(ADMIN_EMAIL, "agent API key", count=count)
    return agent.id, fact_in(letter, "API key")


def test_caddy_serves_the_api_the_web_app_and_agents_over_tls(cluster, mail_server):
    first, second, caddy = cluster
    assert caddy.http.request("GET", caddy.url + "/").data == b"<html>Kowabunga web app</html>"
    region = k.RegionApi(caddy.api()).create_region(k.Region(name="eu-west", domain="west.example"))
    assert k.RegionApi(caddy.api()).read_region(region.id).name == "eu-west"
    assert caddy.http.request("GET", caddy.url + "/metrics").status == 404  # not exposed through Caddy
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


def test_kill_9_of_the_active_node_fails_over_with_nothing_lost(cluster, mail_server):
    first, second, caddy = cluster
    agent_id, key = create_agent(caddy, mail_server, "kaktus-1")
    agent = SimulatedAgent(caddy.url.replace("https://", "wss://"), "Kaktus", agent_id, key, ca_file=str(caddy.ca))
    agent.run(Backoff(initial=0.2, cap=1.0))
    wait_until(lambda: agent.connected, 10, "agent connected")
    acknowledged = k.RegionApi(caddy.api()).create_region(k.Region(name="before", domain="before.example"))
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    wait_until(lambda: second.role() == "active", 4 * LEASE_SECONDS + 5, "second node active")
    # Caddy sends writes and the agent to the new active node.
    wait_until(lambda: caddy._status("/healthz/active") == 200, 15, "Caddy on the new active node")
    regions = k.RegionApi(caddy.api())
    after = regions.create_region(k.Region(name="after", domain="after.example"))
    assert {regions.read_region(i).name for i in regions.list_regions()} == {"before", "after"}
    assert regions.read_region(acknowledged.id).name == "before"
    wait_until(lambda: agent.connected and agent.connections >= 2, 20, "agent reconnected")
    assert after.id
    agent.close()


def test_a_frozen_active_comes_back_passive_and_cannot_write(cluster):
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
