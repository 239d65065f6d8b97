"""REST throughput and latency, and failover time with agents connected: Kahuna as real `kahuna serve`
processes on one FerretDB, the load and the agents from other processes, all on loopback.

- ``rest``: authenticated reads (API key; JWT bearer) and writes, by a load generator in its own
  process (``bench.load``) talking straight to one Kahuna (no TLS), *concurrency* keep-alive
  connections for *seconds* each; with the CPU time Kahuna and FerretDB spent per request.
- ``failover``: an HA pair behind Caddy, N agents connected over wss through it; the active node is
  killed with SIGKILL and the table says when the other took the lease and when all agents were back.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

import urllib3

from kahuna.storage.embedded import EmbeddedFerretDB
from tests.harness import Caddy, KahunaNode, wait_until

MASTER_KEY = "bench-master-key-" + "x" * 40
ADMIN = "admin@example.com"


def _settings(db_uri: str, **extra: typing.Any) -> dict[str, typing.Any]:
    return {"apiKey": MASTER_KEY, "adminEmail": ADMIN, "logLevel": "WARNING",
            "db": {"uri": db_uri, "name": "bench"}, "accounts": {"bcryptCost": 10}, **extra}


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process used so far, from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _load(url: str, method: str, path: str, headers: dict[str, str], body: str | None, concurrency: int,
          seconds: float) -> dict[str, typing.Any]:
    """Run the load generator (bench.load) in its own process; its JSON summary."""
    command = [sys.executable, "-m", "bench.load", "--url", url, "--method", method, "--path", path,
               "--connections", str(concurrency), "--seconds", str(seconds)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if body is not None:
        command += ["--body", body]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def rest(concurrency: int = 32, seconds: float = 10.0) -> list[tuple[str, str]]:
    """Each scenario: req/s and latency percentiles as the clients saw them, and the CPU time Kahuna and
    FerretDB spent per request (which depends less than req/s on what else the machine runs)."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        database = EmbeddedFerretDB(workdir / "db").start()
        node = KahunaNode(workdir, "rest", _settings(database.uri))
        try:
            http = urllib3.PoolManager()
            key = {"X-API-Key": MASTER_KEY}
            region = http.request("POST", f"{node.url}/api/v1/region", headers=key,
                                  json={"name": "eu-west", "domain": "west.example"}).json()["id"]
            # The bootstrap superAdmin that `kahuna serve` printed on its first start.
            printed = (workdir / "rest.log").read_text()
            password = printed.split(" and password ", 1)[1].split()[0] if " and password " in printed else ""
            login = http.request("POST", f"{node.url}/api/v1/login", json={"email": ADMIN, "password": password})
            bearer = {"Authorization": f"Bearer {login.json().get('jwt', '')}"} if login.status in (200, 201) else None
            read = ("GET", f"/api/v1/region/{region}", None)
            scenarios: list[tuple[str, dict[str, str], tuple[str, str, str | None]]] = [
                ("read, API key (GET /region/{id})", key, read),
                ("write, API key (POST /region/{id}/zone)", key,
                 ("POST", f"/api/v1/region/{region}/zone", '{"name": "z{n}"}')),
            ]
            if bearer:
                scenarios.insert(1, ("read, JWT bearer (GET /region/{id})", bearer, read))
            for title, headers, (method, path, body) in scenarios:
                kahuna_before, db_before = cpu_seconds(node.process.pid), cpu_seconds(database.process.pid)
                result = _load(node.url, method, path, headers, body, concurrency, seconds)
                kahuna_after, db_after = cpu_seconds(node.process.pid), cpu_seconds(database.process.pid)
                count = max(result["requests"], 1)
                cpu = ""
                if None not in (kahuna_before, kahuna_after, db_before, db_after):
                    cpu = (f"; CPU per request: Kahuna {(kahuna_after - kahuna_before) / count * 1e6:,.0f} us, "
                           f"FerretDB {(db_after - db_before) / count * 1e6:,.0f} us")
                rows.append((title, f"{result['requests'] / result['seconds']:,.0f} req/s, "
                                    f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms "
                                    f"({result['failures']} failed){cpu}"))
            if not bearer:
                rows.append(("read, JWT bearer", f"not measured: login answered {login.status}"))
        finally:
            node.stop()
            database.stop()
    return [(f"{name} [{concurrency} connections, {seconds:g} s]", value) for name, value in rows]


def failover(agent_count: int = 1000, lease_seconds: float = 5.0) -> list[tuple[str, str]]:
    from bench.agents import provision_documents

    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        database = EmbeddedFerretDB(workdir / "db").start()
        # A cloud that exists: its agents known before the nodes start.
        provisioned = provision_documents(database.uri, "bench", agent_count)
        ha = {"http": {"trustedProxies": 1}, "ha": {"enabled": True, "leaseSeconds": lease_seconds}}
        first = KahunaNode(workdir, "first", _settings(database.uri, **ha))
        wait_until(lambda: first.role() == "active", 30, "first node active")
        second = KahunaNode(workdir, "second", _settings(database.uri, **ha))
        caddy = Caddy(workdir, [first.port, second.port])
        swarm = None
        try:
            agents_file = workdir / "agents.txt"
            agents_file.write_text("".join(f"{i} {k}\n" for i, k in provisioned))
            # Caddy holds two descriptors per agent (the agent's, the upstream's): past the machine's limit,
            # the agents dial the two nodes directly, in turn, as they would through a virtual IP.
            through_caddy = 2 * agent_count + 1000 <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            urls = ["--url", caddy.url.replace("https://", "wss://"), "--ca", str(caddy.ca)] if through_caddy else \
                ["--url", first.url.replace("http://", "ws://"), "--url", second.url.replace("http://", "ws://")]
            swarm = subprocess.Popen(
                [sys.executable, "-m", "bench.swarm", *urls, "--agents", str(agents_file), "--reconnect"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
            started = time.monotonic()
            wait_until(lambda: first.metric("kahuna_agents_connected", 'type="Kaktus"') >= agent_count, 600,
                       "agents connected", interval=0.5)
            connected_in = time.monotonic() - started
            killed = time.monotonic()
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=10)
            wait_until(lambda: second.role() == "active", 10 * lease_seconds, "takeover", interval=0.05)
            takeover = time.monotonic() - killed
            wait_until(lambda: caddy.status("/healthz/active") == 200, 60, "Caddy on the new node", interval=0.1)
            writable = time.monotonic() - killed
            wait_until(lambda: second.metric("kahuna_agents_connected", 'type="Kaktus"') >= agent_count, 600,
                       "agents back", interval=0.25)
            back = time.monotonic() - killed
        finally:
            if swarm is not None:
                swarm.stdin.close()
                swarm.wait(timeout=120)
            caddy.stop()
            second.stop()
            first.stop()
            database.stop()
    path = "over wss through Caddy" if through_caddy else \
        (f"over ws to the nodes in turn (through Caddy they would need {2 * agent_count:,} descriptors, over this "
         f"machine's limit of {resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,})")
    return [
        (f"{agent_count} agents connected {path}", f"{connected_in:.1f} s"),
        ("kill -9 of the active node -> passive holds the lease", f"{takeover:.1f} s (lease {lease_seconds:g} s)"),
        ("-> Caddy routes requests to it", f"{writable:.1f} s"),
        (f"-> all {agent_count} agents reconnected to it", f"{back:.1f} s"),
    ]
