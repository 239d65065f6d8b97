"""Pages outside the REST API: the links e-mailed to users, version and health.

A link opens a page with a button; only the button's POST does the work, so a
mail scanner that prefetches the link cannot use it up.
"""

from __future__ import annotations

import typing

import jinja2
from flask import Blueprint, Response, current_app, jsonify, request

from api.blueprint import services
from kahuna import VERSION_LINE
from kahuna.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from kahuna.services.users import InvalidLink

if typing.TYPE_CHECKING:
    from api import NodeState

blp = Blueprint("pages", __name__)

#: The pages' templates. Every value is escaped (autoescape): the user and token of a link are the client's.
_TEMPLATES = jinja2.Environment(autoescape=True, loader=jinja2.DictLoader({
    "page.html": """<!doctype html><html><head><meta charset="utf-8"><title>Kowabunga</title></head>
<body style="font-family:sans-serif;margin:3em"><h1>Kowabunga</h1>{% block body %}{% endblock %}</body></html>""",
    # What a link opens: a button, whose POST (the same URL, the same user and token) does the work.
    "link.html": """{% extends "page.html" %}{% block body -%}
<p>{{ title }}</p><form method='post'>\
<input type='hidden' name='user' value='{{ user }}'>\
<input type='hidden' name='token' value='{{ token }}'>\
<button type='submit'>{{ button }}</button></form>
{%- endblock %}""",
    "message.html": """{% extends "page.html" %}{% block body %}<p>{{ message }}</p>{% endblock %}""",
}))


def _page(template: str, status: int = 200, **values: str) -> Response:
    html = _TEMPLATES.get_template(template).render(**values)
    return Response(html, status=status, mimetype="text/html")


def _link_page(title: str, button: str, action: typing.Callable[[str, str], object],
               done: str = "Done. Your password has been sent to you by e-mail.") -> Response:
    user_id = request.values.get("user", "")
    token = request.values.get("token", "")
    if request.method == "GET":
        return _page("link.html", title=title, button=button, user=user_id, token=token)
    if not _node().is_active():
        # Like every write, following a link belongs to the active node (which alone caches and writes).
        response = _page("message.html", 503, message="This Kowabunga node is on standby: try again in a moment.")
        response.headers["Retry-After"] = "2"
        return response
    try:
        action(user_id, token)
    except InvalidLink as exc:
        return _page("message.html", 403, message=f"{str(exc).capitalize()}.")
    return _page("message.html", message=done)


@blp.route("/confirm", methods=["GET", "POST"])
def confirm_registration() -> Response:
    return _link_page("Confirm your Kowabunga account.", "Confirm my account",
                      services().users.confirm_registration)


@blp.route("/confirmForgotPassword", methods=["GET", "POST"])
def confirm_password_reset() -> Response:
    return _link_page("Confirm the renewal of your Kowabunga password.", "Send me a new password",
                      services().users.confirm_password_reset)


@blp.route("/confirmEmail", methods=["GET", "POST"])
def confirm_email_change() -> Response:
    return _link_page("Confirm the new e-mail address of your Kowabunga account.", "Confirm this address",
                      services().users.confirm_email_change,
                      done="Done. This address is now your Kowabunga account's e-mail address.")


@blp.route("/version")
def version() -> Response:
    return Response(f"{VERSION_LINE}\n", mimetype="text/plain")


def _node() -> NodeState:
    return current_app.extensions["kahuna.node"]


@blp.route("/healthz")
def health() -> Response:
    """Liveness and readiness: 200 when the database answers; says whether this node is the active one."""
    reachable = services().db.is_reachable()
    response = jsonify({"status": "ok" if reachable else "degraded", "database": reachable,
                        "role": "active" if _node().is_active() else "passive"})
    response.status_code = 200 if reachable else 503
    return response


@blp.route("/healthz/active")
def health_active() -> Response:
    """200 only on the active node of an HA pair (what Caddy's health checks ask), 503 otherwise."""
    active = _node().is_active() and services().db.is_reachable()
    response = jsonify({"role": "active" if active else "passive"})
    response.status_code = 200 if active else 503
    return response


@blp.route("/metrics")
def metrics() -> Response:
    return Response(_node().metrics.exposition(), content_type=METRICS_CONTENT_TYPE)
