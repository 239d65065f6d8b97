"""Real processes on loopback, for the tests and the benchmarks: `kahuna serve` nodes and Caddy in front
of them with the repository's Caddyfile. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import typing
from pathlib import Path

import urllib3
import yaml

from kahuna.storage.embedded import free_loopback_port, stop_process

ROOT = Path(__file__).resolve().parents[1]


def wait_until(condition: typing.Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        time.sleep(interval)


class KahunaNode:
    """``kahuna serve`` with a generated configuration (*settings* are merged into ``global``)."""

    def __init__(self, workdir: Path, name: str, settings: dict[str, typing.Any]):
        self.name = name
        self.port = free_loopback_port()
        self.config = workdir / f"{name}.yml"
        merged = {"http": {"address": "127.0.0.1", "port": self.port}, **settings}
        merged["http"] = {**settings.get("http", {}), "address": "127.0.0.1", "port": self.port}
        self.config.write_text(yaml.safe_dump({"global": merged}))
        self.log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "kahuna.cli", "serve", "-c", str(self.config)],
                                        stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = urllib3.PoolManager(retries=False, timeout=5)
        wait_until(self.answers, 60, f"{name} up", interval=0.1)

    def health(self) -> dict[str, typing.Any] | None:
        try:
            return self.http.request("GET", f"{self.url}/healthz").json()
        except (urllib3.exceptions.HTTPError, ValueError):
            return None

    def answers(self) -> bool:
        return self.health() is not None

    def role(self) -> str:
        health = self.health()
        return health["role"] if health else "dead"

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of this node's /metrics, e.g. ``metric("kahuna_agents_connected", 'type="Kaktus"')``."""
        text = self.http.request("GET", f"{self.url}/metrics").data.decode()
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen node must be able to exit
        stop_process(self.process, timeout=20)
        self.log.close()


class Caddy:
    """Caddy with the repository's Caddyfile, TLS from its internal CA, in front of *upstreams*."""

    def __init__(self, workdir: Path, upstreams: list[int]):
        self.port = free_loopback_port()
        webapp = workdir / "webapp"
        webapp.mkdir(exist_ok=True)
        (webapp / "index.html").write_text("<html>Kowabunga web app</html>")
        storage = workdir / "caddy"
        env = {**os.environ, "CADDY_STORAGE": str(storage), "XDG_CONFIG_HOME": str(workdir / "xdg-config"),
               "XDG_DATA_HOME": str(workdir / "xdg-data"), "KAHUNA_SITE": f"https://127.0.0.1:{self.port}",
               "CADDY_BIND": "127.0.0.1", "CADDY_HTTPS_PORT": str(self.port),
               "CADDY_HTTP_PORT": str(free_loopback_port()), "KAHUNA_TLS": "internal",
               "KAHUNA_UPSTREAMS": " ".join(f"127.0.0.1:{p}" for p in upstreams), "KAHUNA_WEBAPP": str(webapp)}
        self.log = open(workdir / "caddy.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(["caddy", "run", "--config", str(ROOT / "Caddyfile"), "--adapter",
                                         "caddyfile"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.ca = storage / "pki" / "authorities" / "local" / "root.crt"
        self.url = f"https://127.0.0.1:{self.port}"
        wait_until(self.ca.exists, 30, "Caddy's CA")
        self.http = urllib3.PoolManager(cert_reqs=ssl.CERT_REQUIRED, ca_certs=str(self.ca), retries=False, timeout=10)
        wait_until(lambda: self.status("/healthz") == 200, 30, "Caddy proxying to the active node")

    def status(self, path: str) -> int:
        try:
            return self.http.request("GET", self.url + path).status
        except urllib3.exceptions.HTTPError:
            return 0

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.log.close()
