"""A private FerretDB (SQLite backend) for a single-machine Kahuna and for the tests.

FerretDB speaks the MongoDB wire protocol, so Kahuna talks to it exactly as it
talks to MongoDB in production; only the process is ours to start and stop.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

REPOSITORY_BINARY = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "ferretdb"


class EmbeddedDbError(Exception):
    pass


def find_ferretdb(explicit: str = "") -> str:
    """The FerretDB binary: explicit path, $KAHUNA_FERRETDB, the repository's build, or $PATH."""
    for candidate in (explicit, os.environ.get("KAHUNA_FERRETDB", ""), str(REPOSITORY_BINARY)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("ferretdb")
    if found:
        return found
    raise EmbeddedDbError("FerretDB not found: run scripts/build-ferretdb, or set global.db.embedded.ferretdb")


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedFerretDB:
    """Start with :meth:`start`, use :attr:`uri`, end with :meth:`stop`."""

    def __init__(self, data_dir: str | os.PathLike[str], binary: str = "", port: int = 0):
        self.data_dir = Path(data_dir).resolve()
        self.binary = find_ferretdb(binary)
        self.port = port or free_loopback_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 20.0) -> EmbeddedFerretDB:
        db_dir = self.data_dir / "ferretdb"
        db_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.data_dir / "ferretdb.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                self.binary,
                "--handler=sqlite",
                f"--sqlite-url=file:{db_dir}/",
                f"--listen-addr=127.0.0.1:{self.port}",
                "--telemetry=disable",
                "--log-level=warn",
                # Its debug/metrics listener would clash between instances (default 127.0.0.1:8088).
                "--debug-addr=-",
                f"--state-dir={self.data_dir}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedDbError(f"FerretDB exited with {self.process.returncode}; "
                                      f"see {self.data_dir}/ferretdb.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EmbeddedDbError(f"FerretDB did not listen on 127.0.0.1:{self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process:
            stop_process(self.process, timeout=10)
        self.process = None


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within *timeout* seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
