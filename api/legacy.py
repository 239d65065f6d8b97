"""The 0.53.2 routes API 0.58 moved, still served, and not documented in the 0.58.0 document.

Each is routed to the very view method of its 0.58 operation, found by operationId (the one
:meth:`api.blueprint.Blueprint.operation` names): the same access rule, arguments, reply and errors. The 0.53.2
document (api.versions) documents them under their 0.53.2 routes. A route the API already serves (the view still
has its 0.53.2 route) is left as it is.

These routes are registered on the Flask application with a plain Flask blueprint, not on flask-smorest's Api:
that is what keeps them out of the generated document.
"""

from __future__ import annotations

import typing

from flask import Blueprint, Flask, current_app
from werkzeug.exceptions import HTTPException

from api.versions import RENAMED

#: (method, 0.53.2 rule) -> the 0.58 operationId, whose view answers it.
ROUTES: typing.Mapping[tuple[str, str], str] = {
    ("GET", "/region/<regionId>/nfs"): "ListRegionStorageNFSes",
    ("GET", "/nfs/<nfsId>/kylo"): "ListStorageNFSKylos",
    ("GET", "/project/<projectId>/region/<regionId>/kylo"): "ListProjectRegionKylos",
    ("PUT", "/resetPassword"): "ResetPassword",
}

_HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _view_methods(app: Flask) -> dict[str, tuple[type, str]]:
    """operationId -> (MethodView class, method name), for every operation the application serves."""
    found: dict[str, tuple[type, str]] = {}
    for view in app.view_functions.values():
        view_class = getattr(view, "view_class", None)
        if view_class is None:
            continue
        for method in _HTTP_METHODS:
            operation_id = getattr(getattr(view_class, method, None), "operation_id", None)
            if operation_id is not None:
                found[operation_id] = (view_class, method)
    return found


def _routed(app: Flask, method: str, rule: str) -> bool:
    """Whether *app* already answers *method* on *rule* (a 0.58 view may still be routed there)."""
    path = rule.replace("<", "").replace(">", "")
    try:
        app.url_map.bind("").match(path, method)
    except HTTPException:  # NotFound, MethodNotAllowed
        return False
    return True


def _calling(view_class: type, method: str) -> typing.Callable[..., typing.Any]:
    def view(**kwargs: typing.Any) -> typing.Any:
        return current_app.ensure_sync(getattr(view_class(), method))(**kwargs)

    return view


def register(app: Flask) -> None:
    """Route :data:`ROUTES` to their views, in *app* (after every resource blueprint)."""
    views = _view_methods(app)
    blueprint = Blueprint("legacy", __name__)
    for (method, rule), operation_id in ROUTES.items():
        if _routed(app, method, rule):
            continue
        name = next((n for n in (operation_id, RENAMED.get(operation_id)) if n in views), None)
        if name is None:
            raise LookupError(f"no view serves {operation_id}, the 0.58 name of {method} {rule}")
        view_class, view_method = views[name]
        blueprint.add_url_rule(rule, endpoint=f"{name}_{method.lower()}", view_func=_calling(view_class, view_method),
                               methods=[method])
    app.register_blueprint(blueprint)
