"""The official SDK ``kowabunga==0.58.0`` in the tests, beside 0.53.2's, against the same Kahuna.

The 0.58 SDK lives in ``.venv-sdk058`` (``make install``; ``KAHUNA_SDK058_VENV`` points elsewhere) and runs in a
child process (tests/sdk058/child.py) that speaks JSON lines. The Kahuna under test serves from this process
(tests/deployment.py), so every wait here is cooperative: gevent patches ``subprocess`` (tests/conftest.py).

Fixtures (registered by tests/conftest.py's ``pytest_plugins``):

- ``sdk058_python``: the venv's interpreter; the test FAILS (never skips) when it is missing;
- ``sdk058``: ``sdk058(api_key=MASTER_KEY)`` / ``sdk058(token=jwt)`` / ``sdk058(anonymous=True)`` make clients of the
  running ``deployment``, closed after the test.

Arguments are plain JSON values, ``model("Instance", name=..., ...)`` for an SDK model and ``datetime.date``
values for dates::

    client = sdk058()
    instance = client.ok("ProjectApi", "create_project_zone_instance", project_id, zone_id,
                         model("Instance", name="vm", memory=1, vcpus=1))
    client.error(404, "InstanceApi", "read_instance", "no-such-id")
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import subprocess
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path

import gevent
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).resolve().parent / "child.py"
SDK058_VENV = Path(os.environ.get("KAHUNA_SDK058_VENV", ROOT / ".venv-sdk058"))
SDK058_PYTHON = SDK058_VENV / "bin" / "python"
SDK058_VERSION = "0.58.0"
CALL_TIMEOUT = 60.0  # seconds for one SDK call, a generous bound on a busy machine


def model(name: str, /, **fields: typing.Any) -> dict[str, typing.Any]:
    """The SDK model ``kowabunga.<name>(**fields)``, built in the child (fields may hold models too)."""
    return {"__model__": name, "fields": fields}


def _encode(value: typing.Any) -> typing.Any:
    if isinstance(value, datetime.date):
        return {"__date__": value.isoformat()}
    raise TypeError(f"not JSON: {value!r}")


def _normalized(name: str) -> str:
    return name.replace("_", "").lower()


def documented_successes(version: str) -> dict[str, set[int]]:
    """Each operationId of a contract and its documented 2xx statuses."""
    from tests.contract import contract

    return {operation["operationId"]: {int(code) for code in operation["responses"] if code.startswith("2")}
            for item in contract(version)["paths"].values()
            for operation in item.values() if isinstance(operation, dict) and "operationId" in operation}


def operation_ids_of(statuses: typing.Mapping[str, typing.Iterable[int]], version: str = SDK058_VERSION) -> set[str]:
    """The contract's operationIds of SDK methods (``list_storage_nf_ses`` -> ``ListStorageNFSes``) that were
    answered with a status their operation documents (the SDK returns ``None`` for another 2xx)."""
    documented = documented_successes(version)
    by_name = {_normalized(op): op for op in documented}
    assert len(by_name) == len(documented), "two operationIds normalize alike"
    unknown = sorted(m for m in statuses if _normalized(m) not in by_name)
    assert not unknown, f"SDK methods that are no operation of {version}: {unknown}"
    return {by_name[_normalized(method)] for method, codes in statuses.items()
            if documented[by_name[_normalized(method)]] & set(codes)}


@dataclass
class Result:
    ok: bool
    status: int | None
    data: typing.Any = None
    body: str | None = None
    error: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"{self.status}"
        return f"{self.status}: {self.body if self.error is None else self.error}"


class Sdk058:
    """One child process driving the 0.58 SDK with one set of credentials (``auth=`` overrides it per call)."""

    def __init__(self, python: Path, base_url: str, api_key: str | None = None, token: str | None = None):
        self.auth = {"api_key": api_key, "token": token}
        self.stderr = tempfile.TemporaryFile()  # a file, not a pipe: what the child writes there never blocks it
        self.proc = subprocess.Popen([str(python), str(CHILD), f"{base_url}/api/v1", json.dumps(self.auth)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, bufsize=1)

    def _exchange(self, request: dict[str, typing.Any]) -> dict[str, typing.Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with gevent.Timeout(CALL_TIMEOUT, AssertionError(f"SDK 0.58 child silent for {CALL_TIMEOUT}s: {request}")):
            try:
                self.proc.stdin.write(json.dumps(request, default=_encode) + "\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                line = ""
            else:
                line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.stderr.seek(0)
            stderr = self.stderr.read()[-2000:].decode(errors="replace")
            raise AssertionError(f"SDK 0.58 child exited ({code}): {stderr}")
        return json.loads(line)

    def call(self, api: str, method: str, *args: typing.Any, auth: dict[str, str | None] | None = None,
             **kwargs: typing.Any) -> Result:
        """``kowabunga.<api>(client).<method>_with_http_info(*args, **kwargs)``, whatever its outcome."""
        answer = self._exchange({"api": api, "method": method, "args": list(args), "kwargs": kwargs, "auth": auth})
        if "traceback" in answer:
            raise AssertionError(f"the child could not make the call {api}.{method}: {answer['traceback']}")
        return Result(ok=answer["ok"], status=answer.get("status"), data=answer.get("data"),
                      body=answer.get("body"), error=answer.get("error"))

    def ok(self, api: str, method: str, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        """The call's data; it must succeed."""
        result = self.call(api, method, *args, **kwargs)
        assert result.ok, f"{api}.{method} failed: {result}"
        return result.data

    def error(self, status: int, api: str, method: str, *args: typing.Any, **kwargs: typing.Any) -> dict:
        """The documented error body of a call that must fail with *status* (as tests.deployment.expect_error)."""
        result = self.call(api, method, *args, **kwargs)
        assert not result.ok, f"expected an error {status} from {api}.{method}, it succeeded: {result.data}"
        assert result.status == status, f"expected {status} from {api}.{method}, got {result}"
        body = json.loads(result.body or "null")
        assert isinstance(body, dict) and set(body) == {"status", "error", "reason"}, body
        assert body["status"] == status and body["error"] and body["reason"], body
        return body

    def seen(self) -> dict[str, set[int]]:
        """The SDK methods this child called with a 2xx answer, and those statuses."""
        return {method: set(codes) for method, codes in self._exchange({"seen": True})["data"].items()}

    def operations(self) -> set[str]:
        """The operationIds of the 0.58 contract this child called with a documented 2xx answer."""
        return operation_ids_of(self.seen())

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()  # the end of the child's input: it exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture(scope="session")
def sdk058_python() -> Path:
    """The interpreter of the 0.58 SDK's virtualenv: missing is a failure (CI must run these tests)."""
    if not SDK058_PYTHON.exists():
        pytest.fail(f"the SDK 0.58 virtualenv is missing ({SDK058_VENV}): run `make install`")
    version = subprocess.run([str(SDK058_PYTHON), "-c", "import kowabunga; print(kowabunga.__version__)"],
                             capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert version == SDK058_VERSION, f"{SDK058_VENV} holds kowabunga {version}: run `make install`"
    return SDK058_PYTHON


@pytest.fixture
def sdk058(sdk058_python, deployment):
    """``sdk058(api_key=..., token=..., anonymous=False)``: a 0.58 SDK client of ``deployment`` (master key by
    default)."""
    from tests.deployment import MASTER_KEY

    clients: list[Sdk058] = []

    def make(api_key: str | None = None, token: str | None = None, anonymous: bool = False) -> Sdk058:
        if not anonymous and api_key is None and token is None:
            api_key = MASTER_KEY
        client = Sdk058(sdk058_python, deployment.base_url, api_key=api_key, token=token)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
