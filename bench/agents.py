"""Agents at scale: memory per connection, connect rate, RPC round trips under load.

The agents are known ones (a restart or a failover of Kahuna: their records and capabilities
stored as after their first connection), dialling a Kahuna just started.

Kahuna runs in this process (on a private FerretDB) so that calls can be timed at
the source; the simulated agents run in a second process (bench.swarm). All on
loopback. Prints a table.
"""

from __future__ import annotations

import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gevent
from bson import ObjectId

from kahuna import collector, credentials, rpc
from kahuna.config import Config
from kahuna.daemon import Kahuna
from kahuna.errors import AgentError
from kahuna.storage import Database, schema, utcnow
from kahuna.storage.embedded import EmbeddedFerretDB
from tests.simulator import VERSIONS

NODE = rpc.kaktus.NodeCapabilities
#: What a simulated Kaktus answers to Capabilities (tests/simulator.py).
KNOWN_CAPABILITIES = {"version": VERSIONS[rpc.KAKTUS], "methods": sorted(
    name for name, method in rpc.CATALOG[rpc.KAKTUS].items() if method.since != rpc.kaktus.PROPOSAL)}


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def provision_documents(uri: str, name: str, count: int) -> list[tuple[str, str]]:
    """*count* known Kaktus agents and their keys, written in the database at *uri*; their (id, key)."""
    db = Database(uri, name)
    try:
        return _provision(db, count)
    finally:
        db.close()


def _provision(db: Database, count: int) -> list[tuple[str, str]]:
    """Agents and keys written in bulk, in the documents the services write (the API path is one
    request per agent plus an e-mail, and is not what this bench measures)."""
    now = utcnow()
    agents, tokens, keys, result = [], [], [], []
    for n in range(count):
        agent_id, token_id, key = ObjectId(), ObjectId(), credentials.generate_api_key()
        digest = credentials.digest(key)
        common = {"created_at": now, "updated_at": now, "schema_version": schema.CURRENT_VERSION}
        # Known agents (a restart or a failover): their capabilities stored as after their first connection.
        agents.append({"_id": agent_id, "name": f"kaktus-{n:05d}", "description": "", "type": rpc.KAKTUS,
                       "capabilities": KNOWN_CAPABILITIES, **common})
        tokens.append({"_id": token_id, "name": f"kaktus-{n:05d}-api-key", "description": "", "parent_type": "agent",
                       "parent_id": str(agent_id), "api_key_sha256": digest, "expire": False,
                       "expiration_date": None, **common})
        keys.append({"_id": digest, "token_id": str(token_id), **common})
        result.append((str(agent_id), key))
    for documents, batch in ((db.agents, agents), (db.tokens, tokens), (db.api_keys, keys)):
        for start in range(0, len(batch), 1000):
            documents.collection.insert_many(batch[start:start + 1000], ordered=False)
    return result


def timed_calls(kahuna: Kahuna, agent_ids: list[str], calls: int, concurrency: int) -> tuple[list[float], int]:
    """Round-trip times in ms of the calls that succeeded, and how many failed."""
    latencies: list[float] = []
    failures = 0

    def worker(share: int) -> None:
        nonlocal failures
        for _ in range(share):
            started = time.perf_counter()
            try:
                kahuna.plane.call(random.choice(agent_ids), NODE)
            except AgentError:
                failures += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    gevent.joinall([gevent.spawn(worker, calls // concurrency) for _ in range(concurrency)], raise_error=True)
    return latencies, failures


def run(agent_count: int, calls: int = 2000) -> list[tuple[str, str]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as scratch:
        ferret = EmbeddedFerretDB(Path(scratch) / "db").start()
        config = Config().with_overrides({"global.db.uri": ferret.uri, "global.db.name": "bench",
                                          "global.logLevel": "WARNING", "global.watchdog.thresholdMs": 20})
        # The agents are known before Kahuna starts, as at a restart: it preloads their credentials.
        provisioned = provision_documents(ferret.uri, "bench", agent_count)
        kahuna = Kahuna.start(config)
        server = kahuna.listen("127.0.0.1", 0)
        collector.keep_long_lived_aside()  # as `kahuna serve` does
        try:
            agents_file = Path(scratch) / "agents.txt"
            agents_file.write_text("".join(f"{i} {k}\n" for i, k in provisioned))
            deadline = time.monotonic() + 60  # the preload, which the baseline must include
            while kahuna.db.cache.stats().entries < 3 * agent_count and time.monotonic() < deadline:
                gevent.sleep(0.1)
            gevent.sleep(0.5)
            baseline = rss_mib()
            storm_started = time.time()
            swarm = subprocess.Popen(
                [sys.executable, "-m", "bench.swarm", "--url", f"ws://127.0.0.1:{server.address[1]}",
                 "--agents", str(agents_file)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            # The swarm reports once every agent has connected or given up (3 attempts each).
            swarm_line = swarm.stdout.readline().strip()  # cooperative: subprocess is patched by gevent
            connect_seconds = float(swarm_line.split()[2])
            deadline = time.monotonic() + 30  # the last capability probes
            while sum(1 for agent in kahuna.plane.connected() if agent.methods) < agent_count and \
                    time.monotonic() < deadline:
                gevent.sleep(0.2)
            connected = kahuna.plane.connected()
            welcomed = [a.id for a in connected if a.methods]
            gevent.sleep(1)
            loaded = rss_mib()
            ids = [a.id for a in connected]
            calls_started = time.time()
            sequential, sequential_failures = timed_calls(kahuna, ids, calls // 2, 1)
            concurrent, concurrent_failures = timed_calls(kahuna, ids, calls, 50)
            still_connected = len(kahuna.plane.connected())
            storm_stalls = kahuna.watchdog.stalls(since=storm_started) if kahuna.watchdog else []
            call_stalls = kahuna.watchdog.stalls(since=calls_started) if kahuna.watchdog else []
            swarm.stdin.close()
            swarm.wait(timeout=120)
        finally:
            kahuna.stop()
            ferret.stop()
    per_connection = (loaded - baseline) * 1024 / max(1, len(connected))
    return [
        ("agents connected / asked", f"{len(connected)} / {agent_count} ({len(welcomed)} capability-probed)"),
        ("swarm report", swarm_line),
        ("connect rate", f"{len(connected) / connect_seconds:,.0f} agents/s ({connect_seconds:.1f} s)"),
        ("Kahuna RSS before / with agents", f"{baseline:,.0f} MiB / {loaded:,.0f} MiB"),
        ("RSS per connected agent", f"{per_connection:,.1f} KiB"),
        ("RPC round trip, 1 caller", f"p50 {statistics.median(sequential):.2f} ms, "
                                     f"p99 {percentile(sequential, 0.99):.2f} ms ({len(sequential)} calls, "
                                     f"{sequential_failures} failed)"),
        ("RPC round trip, 50 callers", f"p50 {statistics.median(concurrent):.2f} ms, "
                                       f"p99 {percentile(concurrent, 0.99):.2f} ms ({len(concurrent)} calls, "
                                       f"{concurrent_failures} failed)"),
        ("agents still connected after the calls", f"{still_connected}"),
        ("watchdog: hub stalls, connect storm and calls", _stalls(storm_stalls)),
        ("watchdog: hub stalls, calls only", _stalls(call_stalls)),
    ]


def _stalls(stalls: list) -> str:
    if not stalls:
        return "none over the threshold"
    longest = max(stalls, key=lambda stall: stall.seconds)
    over_50 = sum(stall.seconds > 0.050 for stall in stalls)
    return f"{len(stalls)} over the threshold, {over_50} over 50 ms; longest: {longest}"

