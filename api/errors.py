"""Every error leaves Kahuna as the contract's ``{"status", "error", "reason"}`` JSON object."""

from __future__ import annotations

import logging
import typing

from flask import Response, g, jsonify, request
from pymongo.errors import PyMongoError
from werkzeug.exceptions import HTTPException

from kahuna.errors import KahunaError, error_body

log = logging.getLogger(__name__)

#: Error statuses the contract documents, by HTTP method (and 500, for every operation: api.blueprint adds it,
#: and an operation's own extras). A domain error whose status the operation does not document is reported as 422,
#: the contract's "Server can't process request" (e.g. a name clash on PUT, which lists no 409).
DOCUMENTED_ERRORS = {
    "GET": (400, 401, 403, 404),
    "POST": (400, 401, 403, 404, 409, 422, 507),
    "PUT": (400, 401, 403, 404, 422, 507),
    "PATCH": (401, 403, 404, 422),
    "DELETE": (401, 403, 404, 409, 422),
}
#: Operational statuses any operation may answer: throttled, or the database is away.
OPERATIONAL_ERRORS = (429, 503)


def documented_errors() -> tuple[int, ...] | None:
    """The error statuses the current request's operation documents (api.blueprint.Blueprint.operation keeps them
    in ``g``); outside an operation (no such path, a method not allowed), those of the request's method."""
    documented: tuple[int, ...] | None = g.get("documented_errors")
    if documented is not None:
        return documented
    by_method = DOCUMENTED_ERRORS.get(request.method)
    return None if by_method is None else (*by_method, 500)


def documented_status(status: int) -> int:
    """*status*, or 422 when the operation does not document it."""
    documented = documented_errors()
    if documented is None or status in documented or status in OPERATIONAL_ERRORS + (405, 413):
        return status
    if status in (400, 409, 507):
        return 422
    return status


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    status = documented_status(status)
    response = jsonify(error_body(status, reason))
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="kowabunga"'
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_kahuna_error(error: KahunaError) -> Response:
    # 429 and 503 (throttled, an agent or an object's owner that did not answer in time) say when to retry.
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return error_response(error.status, error.reason, headers)


def handle_http_exception(error: HTTPException) -> Response:
    messages = getattr(error, "data", {}).get("messages") if hasattr(error, "data") else None
    if messages is not None:
        status = 400 if _is_malformed(messages) else 422
        return error_response(status, _describe(messages))
    if error.code == 404:
        return error_response(404, f"no such path: {request.path}")
    if error.code == 405:
        return error_response(405, f"method {request.method} is not allowed on {request.path}")
    return error_response(error.code or 500, error.description or error.name)


def handle_database_error(error: PyMongoError) -> Response:
    log.error("database error on %s %s: %s", request.method, request.path, error)
    return error_response(503, "the database is unavailable, try again shortly", {"Retry-After": "5"})


def handle_unexpected(error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return error_response(500, "internal error; the event was logged")


# -- input validation errors --------------------------------------------------------
# Malformed input (not JSON, JSON that api.blueprint.decode_json refuses: too deep, a lone surrogate, a huge
# integer; a value of the wrong JSON type; an unknown field) is a 400; well-formed input that breaks a rule
# (missing field, value out of range) is a 422. Most PATCHes document no 400: there, both are 422.

_MALFORMED_PREFIXES = ("Not a valid", "Invalid input type", "Invalid JSON body", "Unknown field",
                       "Field may not be null")


def _leaves(messages: typing.Any) -> typing.Iterator[str]:
    if isinstance(messages, dict):
        for value in messages.values():
            yield from _leaves(value)
    elif isinstance(messages, (list, tuple)):
        for value in messages:
            yield from _leaves(value)
    else:
        yield str(messages)


def _is_malformed(messages: typing.Any) -> bool:
    return any(leaf.startswith(_MALFORMED_PREFIXES) for leaf in _leaves(messages))


def _describe(messages: typing.Any, path: str = "") -> str:
    """``{"json": {"email": ["Missing data…"]}}`` -> ``"email: Missing data…"``."""
    parts: list[str] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if path == "" and key in ("json", "query", "path", "headers"):
                parts.append(_describe(value, key + ":" if key == "query" else ""))
            else:
                if key == "_schema":  # the value as a whole, not a field of it
                    name = path or key
                else:
                    name = f"{path}.{key}" if path and not path.endswith(":") else f"{path}{key}"
                parts.append(_describe(value, name))
    else:
        text = " ".join(_leaves(messages))
        parts.append(f"{path}: {text}" if path and path != "_schema" else text)
    return "; ".join(p for p in parts if p)

