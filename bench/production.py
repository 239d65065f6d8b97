"""REST throughput and latency, and failover time with agents connected: Kahuna as real `kahuna serve`
processes on one FerretDB, the load and the agents from other processes, all on loopback.

- ``rest``: authenticated reads (API key; JWT bearer) and writes, by a load generator in this process
  talking straight to one Kahuna (no TLS), *concurrency* connections for *seconds* each.
- ``failover``: an HA pair behind Caddy, N agents connected over wss through it; the active node is
  killed with SIGKILL and the table says when the other took the lease and when all agents were back.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

import gevent
import gevent.pool
import urllib3

from kahuna.harness import Caddy, KahunaNode, wait_until
from kahuna.storage.embedded import EmbeddedFerretDB

MASTER_KEY = "bench-master-key-" + "x" * 40
ADMIN = "admin@example.com"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _settings(db_uri: str, **extra: typing.Any) -> dict[str, typing.Any]:
    return {"apiKey": MASTER_KEY, "adminEmail": ADMIN, "logLevel": "WARNING",
            "db": {"uri": db_uri, "name": "bench"}, "accounts": {"bcryptCost": 10}, **extra}


def _load(url: str, concurrency: int, seconds: float,
          request: typing.Callable[[urllib3.PoolManager, int], int]) -> tuple[int, int, list[float]]:
    """Requests answered, failures, latencies (ms), from *concurrency* keep-alive connections."""
    http = urllib3.PoolManager(maxsize=concurrency, retries=False, timeout=30)
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    def worker(n: int) -> None:
        nonlocal failures
        sequence = 0
        while time.monotonic() < deadline:
            sequence += 1
            started = time.perf_counter()
            status = request(http, n * 1_000_000 + sequence)
            if status >= 400:
                failures += 1
            latencies.append((time.perf_counter() - started) * 1000)

    gevent.joinall([gevent.spawn(worker, n) for n in range(concurrency)], raise_error=True)
    return len(latencies), failures, latencies


def rest(concurrency: int = 32, seconds: float = 10.0) -> list[tuple[str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        database = EmbeddedFerretDB(workdir / "db").start()
        node = KahunaNode(workdir, "rest", _settings(database.uri))
        try:
            http = urllib3.PoolManager()
            key = {"X-API-Key": MASTER_KEY, "Content-Type": "application/json"}
            region = http.request("POST", f"{node.url}/api/v1/region", headers=key,
                                  json={"name": "eu-west", "domain": "west.example"}).json()["id"]
            # The bootstrap superAdmin that `kahuna serve` printed on its first start.
            printed = (workdir / "rest.log").read_text()
            password = printed.split(" and password ", 1)[1].split()[0] if " and password " in printed else ""
            login = http.request("POST", f"{node.url}/api/v1/login", json={"email": ADMIN, "password": password})
            bearer = {"Authorization": f"Bearer {login.json().get('jwt', '')}"} if login.status in (200, 201) else None
            scenarios: list[tuple[str, typing.Callable[[urllib3.PoolManager, int], int]]] = [
                ("read, API key (GET /region/{id})",
                 lambda h, n: h.request("GET", f"{node.url}/api/v1/region/{region}", headers=key).status),
                ("write, API key (POST /region/{id}/zone)",
                 lambda h, n: h.request("POST", f"{node.url}/api/v1/region/{region}/zone", headers=key,
                                        json={"name": f"z{n}"}).status),
            ]
            if bearer:
                scenarios.insert(1, ("read, JWT bearer (GET /region/{id})",
                                     lambda h, n: h.request("GET", f"{node.url}/api/v1/region/{region}",
                                                            headers=bearer).status))
            for title, request in scenarios:
                count, failures, latencies = _load(node.url, concurrency, seconds, request)
                rows.append((title, f"{count / seconds:,.0f} req/s, p50 {statistics.median(latencies):.1f} ms, "
                                    f"p99 {_percentile(latencies, 0.99):.1f} ms ({failures} failed)"))
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
        ha = {"http": {"trustedProxies": 1}, "ha": {"enabled": True, "leaseSeconds": lease_seconds}}
        first = KahunaNode(workdir, "first", _settings(database.uri, **ha))
        wait_until(lambda: first.role() == "active", 30, "first node active")
        second = KahunaNode(workdir, "second", _settings(database.uri, **ha))
        caddy = Caddy(workdir, [first.port, second.port])
        swarm = None
        try:
            agents_file = workdir / "agents.txt"
            agents_file.write_text("".join(f"{i} {k}\n" for i, k in provision_documents(database.uri, "bench",
                                                                                       agent_count)))
            swarm = subprocess.Popen(
                [sys.executable, "-m", "bench.swarm", "--url", caddy.url.replace("https://", "wss://"),
                 "--agents", str(agents_file), "--reconnect", "--ca", str(caddy.ca)],
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
    return [
        (f"{agent_count} agents connected over wss through Caddy", f"{connected_in:.1f} s"),
        ("kill -9 of the active node -> passive holds the lease", f"{takeover:.1f} s (lease {lease_seconds:g} s)"),
        ("-> Caddy routes requests to it", f"{writable:.1f} s"),
        (f"-> all {agent_count} agents reconnected to it", f"{back:.1f} s"),
    ]
