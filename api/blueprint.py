"""The Blueprint every resource uses: one decorator names the operation, documents it and guards it."""

from __future__ import annotations

import functools
import json
import math
import re
import typing

import flask_smorest
from apispec import APISpec
from flask import Response, current_app, g, request
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from api.errors import DOCUMENTED_ERRORS, OPERATIONAL_ERRORS
from api.schemas.common import OBJECT_IDS, ApiErrorSchema
from kahuna import access
from kahuna.access import Identity
from kahuna.errors import STATUSES, Unauthorized
from kahuna.services import Services

#: Operations that count attempts and answer 429 past their limits (kahuna.services.throttling).
THROTTLED_OPERATIONS = ("Login", "ResetPassword")
#: Error statuses the contract documents for an operation beyond those of its HTTP method (api.errors): the 0.58
#: kMotion commits (PATCH) answer 400. ``Blueprint.operation(..., errors=...)`` adds to these.
OPERATION_ERRORS: dict[str, tuple[int, ...]] = {"CommitInstanceKMotion": (400,), "CommitKomputeKMotion": (400,)}


def document_errors(spec: APISpec) -> None:
    """Add the error replies of :data:`kahuna.errors.STATUSES` to *spec*'s ``components/responses``, by the
    contract's names (``BadRequest``...), for :meth:`Blueprint.operation` to refer to. Lazily: only those an
    operation refers to are in the document."""
    # 0.58 names the body of its 500 reply (same shape as every error body); the other replies share ApiError.
    spec.components.schema("ApiErrorInternalServerError", {
        "type": "object", "required": ["error", "reason", "status"],
        "properties": {"status": {"type": "integer", "format": "int32"}, "error": {"type": "string"},
                       "reason": {"type": "string"}}})
    for status, error in STATUSES.items():
        body: typing.Any = "ApiErrorInternalServerError" if status == 500 else ApiErrorSchema
        response: dict[str, typing.Any] = {
            "description": f"{error.name} error: {error.title}",
            "content": {"application/json": {"schema": body}},
        }
        if status in OPERATIONAL_ERRORS:
            response["headers"] = {"Retry-After": {"description": "Seconds to wait before trying again.",
                                                   "schema": {"type": "integer"}}}
        spec.components.response(error.name, response, lazy=True)


def services() -> Services:
    return current_app.extensions["kahuna"]


def identity() -> Identity:
    """The caller of the current request (operations whose rule is not public only)."""
    caller = g.get("identity")
    if caller is None:
        raise Unauthorized("authentication required")
    return caller


def empty(status: int = 200) -> Response:
    """A reply without a body, for the contract's operations that return none."""
    return Response(status=status, mimetype="application/json")


# -- request bodies -------------------------------------------------------------------
# Every JSON body of the API is decoded here, once, before any schema sees it. What a client may send is bounded
# by the HTTP server (size, 413); what it holds is bounded here: a body that no contract schema could describe is
# malformed (400, "Invalid JSON body: …"), whoever sends it and to whichever operation.

#: No schema of the contract nests more than 6 levels (Kawaii > ipsec_connections > firewall > ingress > rule).
MAX_JSON_DEPTH = 32
#: No integer of the contract has more than 19 digits (int64). Python's int() is quadratic in the digits.
MAX_INTEGER_DIGITS = 100
# An escaped UTF-16 surrogate, as "\ud800" is written in JSON: decoded alone (not as a pair), it is a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedJson(ValueError):
    """A body that is not JSON, or JSON that no schema of the contract can describe."""


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise MalformedJson(f"an integer of more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJson(f"the number {text[:32]} is out of range")
    return value


def _constant(name: str) -> typing.NoReturn:
    raise MalformedJson(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_int=_integer, parse_float=_float, parse_constant=_constant)


def _check_shape(text: str, value: typing.Any) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH`, or holding a lone surrogate in a string or key.

    The walk is iterative, and skipped when the text shows it cannot find either (few brackets, no escaped
    surrogate): a body of ordinary size costs nothing more.
    """
    deep = text.count("[") + text.count("{") > MAX_JSON_DEPTH
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if not (deep or surrogates):
        return
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if surrogates and _SURROGATE.search(item):
                raise MalformedJson("a string holds a lone UTF-16 surrogate (not a character)")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise MalformedJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        else:
            pending.extend((child, depth + 1) for child in item)


def decode_json(raw: bytes) -> typing.Any:
    """The value of a JSON request body, or :class:`MalformedJson` saying why there is none."""
    try:
        text = raw.decode("utf-8")  # strict: invalid bytes, and surrogates encoded as UTF-8, are refused
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"not UTF-8 (byte {exc.start})") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"{exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise MalformedJson(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    _check_shape(text, value)
    return value


class JsonBodyParser(FlaskParser):
    """webargs' parser, decoding JSON bodies with :func:`decode_json`. Query strings are left as webargs has them."""

    def load_json(self, req: typing.Any, schema: typing.Any) -> typing.Any:
        if not is_json_request(req):
            return core.missing
        raw = req.get_data(cache=True)
        if not raw:
            return core.missing  # no body: the schema says whether one was required (422)
        try:
            return decode_json(raw)
        except MalformedJson as exc:
            abort(400, messages={"json": [f"Invalid JSON body: {exc}"]})


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonBodyParser()

    def ids_response(self) -> typing.Callable:
        """A 200 reply holding the contract's ObjectIds: a JSON array of id strings.

        Documentation only: the view returns a list, which Flask replies with as JSON (no marshmallow schema
        describes a bare array of strings, so :meth:`response` has nothing to dump it with).
        """
        return self.alt_response(200, schema=OBJECT_IDS, description="Returns an array of object IDs.",
                                 success=True)

    def operation(self, operation_id: str, *, errors: typing.Iterable[int] = ()) -> typing.Callable:
        """Decorate a MethodView method (outermost) as the contract's *operation_id*.

        Sets the operationId, documents the error replies of its HTTP method, 500 (every operation may fail), and
        the operation's own beyond its method's (:data:`OPERATION_ERRORS`, and *errors*): references to the
        responses :func:`document_errors` adds. Checks the caller against the operation's rule in
        :data:`kahuna.access.RULES` before the request body is even parsed. The statuses documented are kept for
        the request (``g``): :func:`api.errors.documented_status` answers one of them.
        """
        rule = access.rule_for(operation_id)
        public = isinstance(rule, access.Public)
        extra = (*OPERATION_ERRORS.get(operation_id, ()), *errors)

        def decorator(view: typing.Callable) -> typing.Callable:
            documented = tuple(sorted({*DOCUMENTED_ERRORS.get(view.__name__.upper(), ()), *extra, 500,
                                       *((429,) if operation_id in THROTTLED_OPERATIONS else ())}))

            @functools.wraps(view)
            def guarded(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
                g.documented_errors = documented
                if not public:
                    gate = services().access
                    environ = request.environ  # the headers X-API-Key and Authorization, as request.headers has them
                    caller = gate.identify(environ.get("HTTP_X_API_KEY"), environ.get("HTTP_AUTHORIZATION"))
                    gate.authorize(caller, rule, request.view_args or {})
                    g.identity = caller
                return view(*args, **kwargs)

            doc: dict[str, typing.Any] = {"operationId": operation_id,
                                          "responses": {status: STATUSES[status].name for status in documented}}
            if public:
                doc["security"] = []
            # One doc() for all of it: each documenting decorator is also a wrapper called at every request.
            wrapped = self.doc(**doc)(guarded)
            wrapped.operation_id = operation_id  # what api.legacy finds a view by
            return wrapped

        return decorator
