"""What one hostile agent costs the REST API: the REST read of ``bench.production.rest`` measured alone,
then again while an authenticated agent floods (``bench.flood``, written as fast as the socket takes them,
and a new connection at once each time Kahuna drops it):

- useless frames: replies matching no call, the black-box probe's flood (it had 100,000 of them move the
  REST API's maximum latency from 7 ms to 5-19 s and write one log line per frame);
- pings: frames Kahuna must answer (a pong each), which no garbage limit stops.

Kahuna is a real ``kahuna serve`` process (log level INFO, as in production) on a private FerretDB; the
load generator and the flooding agent are two more processes; all on loopback, on the same cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import urllib3

from bench.agents import provision_documents
from bench.production import MASTER_KEY, _load, _settings, cpu_seconds
from kahuna.storage.embedded import EmbeddedFerretDB
from tests.harness import KahunaNode

ROOT = Path(__file__).resolve().parents[1]


def _figures(result: dict) -> str:
    return (f"{result['requests'] / result['seconds']:,.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms ({result['failures']} failed)")


def run(concurrency: int = 32, seconds: float = 10.0) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        database = EmbeddedFerretDB(workdir / "db").start()
        node = KahunaNode(workdir, "hostile", _settings(database.uri, logLevel="INFO"))
        log_file = workdir / "hostile.log"
        try:
            key = {"X-API-Key": MASTER_KEY}
            region = urllib3.PoolManager().request("POST", f"{node.url}/api/v1/region", headers=key,
                                                   json={"name": "eu-west", "domain": "west.example"}).json()["id"]
            path = f"/api/v1/region/{region}"
            agents = provision_documents(database.uri, "bench", 2)
            quiet = _load(node.url, "GET", path, key, None, concurrency, seconds)
            rows.append((f"REST read alone [{concurrency} connections, {seconds:g} s]", _figures(quiet)))
            for kind, (agent_id, agent_key) in zip(("garbage", "ping"), agents, strict=True):
                log_before, cpu_before = log_file.stat().st_size, cpu_seconds(node.process.pid)
                flooder = subprocess.Popen([sys.executable, "-m", "bench.flood", "--url", node.url, "--id", agent_id,
                                            "--key", agent_key, "--seconds", str(seconds + 2), "--kind", kind],
                                           stdout=subprocess.PIPE, text=True, cwd=ROOT)
                time.sleep(1)  # the flood is on before the load starts, and outlasts it
                flooded = _load(node.url, "GET", path, key, None, concurrency, seconds)
                flood = json.loads(flooder.communicate(timeout=60)[0])
                cpu_after = cpu_seconds(node.process.pid)
                time.sleep(0.5)
                lines = log_file.read_bytes()[log_before:].decode(errors="replace").splitlines()
                what = "useless frames" if kind == "garbage" else "pings"
                cpu = f", Kahuna CPU {cpu_after - cpu_before:.1f} s" if None not in (cpu_before, cpu_after) else ""
                rows += [
                    (f"REST read, one agent flooding {what}", _figures(flooded)),
                    ("  p99 moved by", f"{flooded['p99_ms'] - quiet['p99_ms']:+.1f} ms"),
                    ("  the flooding agent", f"{flood['connections']:,} connections ({flood['refused']:,} handshakes "
                                             f"refused), {flood['frames_taken']:,} frames written, close codes "
                                             f"{flood['close_codes']}"),
                    ("  Kahuna's log meanwhile", f"{len(lines):,} lines, {sum(len(x) + 1 for x in lines) / 1024:,.1f} "
                                                 f"KiB{cpu}"),
                ]
        finally:
            node.stop()
            database.stop()
    return rows
