"""Drives the official SDK ``kowabunga==0.58.0`` for the tests, in its own virtualenv (``.venv-sdk058``).

Both SDK versions are named ``kowabunga``: the 0.53.2 one is in the test process (tests/deployment.py), this one
runs here, in a child process spoken to by tests/sdk058/harness.py. Imports nothing but the SDK and the standard
library.

Usage: ``python child.py BASE_URL AUTH_JSON`` (``BASE_URL`` ends with ``/api/v1``; ``AUTH_JSON`` is
``{"api_key": ..., "token": ...}``, either may be null). Then one JSON request per line on stdin, one JSON answer per
line on stdout:

- ``{"api": "KwarantineApi", "method": "create_project_kwarantine", "args": [...], "kwargs": {...}, "auth": {...}}``
  calls ``<method>_with_http_info`` (``auth``, optional, replaces the default credentials for this call). Arguments
  are JSON, where ``{"__model__": "Name", "fields": {...}}`` is ``kowabunga.Name(**fields)`` (what an SDK user
  writes, so the SDK's defaults apply) and ``{"__date__": "YYYY-MM-DD"}`` is a ``datetime.date``. The answer is
  ``{"ok": true, "status": 200, "data": ...}`` (models as ``model_dump(by_alias=True, exclude_none=True)``: not
  ``to_dict``, which leaves read-only fields such as ``id`` out), ``{"ok": false, "status": 422, "body": "..."}``
  for an ``ApiException``, or ``{"ok": false, "status": null, "error": "ValidationError: ..."}`` for an error raised
  in the SDK itself (a response it cannot read, a value it refuses before sending).
- ``{"seen": true}`` answers ``{"ok": true, "data": {method: [status, ...]}}``: the SDK methods that returned a
  2xx so far, with those statuses (an SDK returns ``None`` on a 2xx its contract does not list: the parent keeps
  the documented ones only).
"""

import datetime
import json
import sys
import traceback

import kowabunga


def decode(value):
    if isinstance(value, list):
        return [decode(item) for item in value]
    if isinstance(value, dict):
        if "__model__" in value:
            fields = {key: decode(item) for key, item in value.get("fields", {}).items()}
            return getattr(kowabunga, value["__model__"])(**fields)
        if "__date__" in value:
            return datetime.date.fromisoformat(value["__date__"])
        return {key: decode(item) for key, item in value.items()}
    return value


def encode(value):
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, exclude_none=True, mode="json")
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


class Child:
    def __init__(self, base_url, auth):
        self.base_url = base_url
        self.default_auth = auth
        self.clients = {}
        self.seen = {}

    def client(self, auth):
        key = (auth.get("api_key"), auth.get("token"))
        if key not in self.clients:
            configuration = kowabunga.Configuration(host=self.base_url, access_token=key[1])
            if key[0]:
                configuration.api_key = {"ApiKeyAuth": key[0]}
            self.clients[key] = kowabunga.ApiClient(configuration)
        return self.clients[key]

    def handle(self, request):
        if request.get("seen"):
            return {"ok": True, "data": {method: sorted(codes) for method, codes in self.seen.items()}}
        auth = request.get("auth")
        api = getattr(kowabunga, request["api"])(self.client(self.default_auth if auth is None else auth))
        call = getattr(api, request["method"] + "_with_http_info")
        try:
            response = call(*decode(request.get("args", [])), **decode(request.get("kwargs", {})))
        except kowabunga.ApiException as exc:
            body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
            return {"ok": False, "status": exc.status, "body": body}
        except Exception as exc:  # noqa: BLE001 - reported to the test: a response or argument the SDK refuses
            return {"ok": False, "status": None, "error": f"{type(exc).__name__}: {exc}"}
        status = int(response.status_code)
        if 200 <= status < 300:
            self.seen.setdefault(request["method"], set()).add(status)
        return {"ok": True, "status": status, "data": encode(response.data)}


def main():
    child = Child(sys.argv[1], json.loads(sys.argv[2]))
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = child.handle(json.loads(line))
        except Exception as exc:  # noqa: BLE001 - a malformed request: the test reads why
            answer = {"ok": False, "status": None, "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
