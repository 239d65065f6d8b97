"""The Blueprint every resource uses: one decorator names the operation, documents it and guards it."""

from __future__ import annotations

import functools
import typing

import flask_smorest
from flask import Response, current_app, g, request

from api.errors import DOCUMENTED_ERRORS
from api.schemas.common import OBJECT_IDS, ApiErrorSchema
from kahuna import access
from kahuna.access import Identity
from kahuna.errors import Unauthorized
from kahuna.services import Services

_ERROR_DESCRIPTIONS = {
    400: "BadRequest error: Bad request (wrong input parameters).",
    401: "Unauthorized error: Unauthorized resource access (wrong auth/credentials).",
    403: "Forbidden error: Forbidden resource access (restricted access control).",
    404: "NotFound error: Specified resource does not exist.",
    409: "Conflict error: A similar resource already exists or resource is still being referenced somewhere.",
    422: "UnprocessableEntity error: Server can't process request.",
    507: "InsufficientResource error: Server can't allocate resources (logical quotas or physical limits hit).",
}


#: Operations that count attempts and answer 429 past their limits (kahuna.services.throttling).
THROTTLED_OPERATIONS = ("Login", "ResetPassword")


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


class Blueprint(flask_smorest.Blueprint):
    def ids_response(self) -> typing.Callable:
        """A 200 reply holding the contract's ObjectIds: a JSON array of id strings."""

        def decorator(view: typing.Callable) -> typing.Callable:
            wrapped = self.response(200, description="Returns an array of object IDs.")(view)
            wrapped._apidoc["response"]["responses"][200][-1]["schema"] = OBJECT_IDS
            return wrapped

        return decorator

    def operation(self, operation_id: str) -> typing.Callable:
        """Decorate a MethodView method (outermost) as the contract's *operation_id*.

        Sets the operationId, documents the error replies of its HTTP method, and
        checks the caller against the operation's rule in :data:`kahuna.access.RULES`
        before the request body is even parsed.
        """
        rule = access.rule_for(operation_id)

        def decorator(view: typing.Callable) -> typing.Callable:
            @functools.wraps(view)
            def guarded(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
                if not isinstance(rule, access.Public):
                    gate = services().access
                    environ = request.environ  # the headers X-API-Key and Authorization, as request.headers has them
                    caller = gate.identify(environ.get("HTTP_X_API_KEY"), environ.get("HTTP_AUTHORIZATION"))
                    gate.authorize(caller, rule, request.view_args or {})
                    g.identity = caller
                return view(*args, **kwargs)

            guarded.operation_id = operation_id  # type: ignore[attr-defined]
            method = view.__name__.upper()
            documented = guarded
            for status in DOCUMENTED_ERRORS.get(method, ()):
                documented = self.alt_response(status, schema=ApiErrorSchema,
                                               description=_ERROR_DESCRIPTIONS[status])(documented)
            if operation_id in THROTTLED_OPERATIONS:
                documented = self.alt_response(
                    429, schema=ApiErrorSchema,
                    description="TooManyRequests error: too many attempts, see Retry-After.")(documented)
            doc: dict[str, typing.Any] = {"operationId": operation_id}
            if isinstance(rule, access.Public):
                doc["security"] = []
            documented = self.doc(**doc)(documented)
            # alt_response and doc only document: at run time their wrappers would merely call the next one
            # (six calls a request). The route serves the guarded view itself, with the documentation they built.
            guarded.__dict__.update({k: v for k, v in documented.__dict__.items() if k != "__wrapped__"})
            return guarded

        return decorator
