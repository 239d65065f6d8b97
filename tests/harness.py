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

    def __init__(self, workdir: Path, name: str, settings: dict[str, typing.Any], port: int | None = None,
                 command: typing.Sequence[str] = (sys.executable, "-m", "kahuna.cli"), cwd: Path = ROOT):
        """*port*: listen there (a node restarted where its agents and clients expect it); a free one if None.
        *command*: the ``kahuna`` command to run (``serve -c FILE`` is appended), by default this interpreter's
        ``python -m kahuna.cli`` in the repository (*cwd*); e.g. ``[venv / "bin" / "kahuna"]`` and a *cwd* outside
        the repository to run an installed Kahuna."""
        self.command = [str(part) for part in command]
        self.cwd = cwd
        self.name = name
        self.port = port or free_loopback_port()
        self.config = workdir / f"{name}.yml"
        merged = {"http": {"address": "127.0.0.1", "port": self.port}, **settings}
        merged["http"] = {**settings.get("http", {}), "address": "127.0.0.1", "port": self.port}
        self.config.write_text(yaml.safe_dump({"global": merged}))
        self.log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([*self.command, "serve", "-c", str(self.config)],
                                        stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd)
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = urllib3.PoolManager(retries=False, timeout=5)
        wait_until(lambda: self.answers() or self.process.poll() is not None, 60, f"{name} up", interval=0.1)
        if self.process.poll() is not None:
            self.log.close()
            tail = (workdir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {self.process.returncode} while starting:\n{tail}")

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

    def kill(self) -> None:
        """kill -9: no shutdown, no rollback, nothing flushed; returns once the process is gone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.log.close()


class CpuHogs:
    """*count* busy-loop processes, a loaded machine for tests: ``with CpuHogs(2): ...``.

    Each hog also exits by itself after *lifetime* seconds, should its owner never stop it.
    """

    def __init__(self, count: int = 2, lifetime: float = 600.0):
        loop = f"import time\nend = time.monotonic() + {lifetime!r}\nwhile time.monotonic() < end:\n    pass\n"
        self.processes = [subprocess.Popen([sys.executable, "-c", loop], stdin=subprocess.DEVNULL)
                          for _ in range(count)]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> CpuHogs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Caddy:
    """Caddy with the repository's Caddyfile, TLS from its internal CA, in front of *upstreams*."""

    def __init__(self, workdir: Path, upstreams: list[int]):
        self.port = free_loopback_port()
        # The web app's directory: tests may write more static files there (Caddy reads them per request).
        self.webapp = webapp = workdir / "webapp"
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

    def get(self, path: str, **kwargs: typing.Any) -> urllib3.BaseHTTPResponse:
        """GET *path* through Caddy, as a browser reloading that address would."""
        return self.http.request("GET", self.url + path, **kwargs)

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.log.close()
