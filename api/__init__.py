"""Kahuna's HTTP layer: the Kowabunga REST API under /api/v1, and the pages around it.

``create_app(services)`` returns the WSGI application. Views validate input with
the contract's schemas, ask a service, and shape the reply; they hold no logic.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
import typing
from dataclasses import dataclass
from wsgiref.types import WSGIApplication

import flask_smorest
from flask import Flask, Response
from pymongo.errors import PyMongoError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from api import (
    agents,
    compute,
    errors,
    kawaii,
    kmotion,
    konvey,
    kwarantine,
    legacy,
    metadata,
    networks,
    nodes,
    pages,
    placement,
    projects,
    records,
    regions,
    storage,
    teams,
    tokens,
    users,
    versions,
    zones,
)
from api.agent_socket import PATH as AGENT_SOCKET_PATH
from api.agent_socket import AgentSocket
from api.blueprint import document_errors
from api.schemas.common import ApiErrorSchema
from kahuna import API_VERSION
from kahuna.errors import KahunaError, error_body
from kahuna.metrics import Metrics
from kahuna.services import Services

API_PREFIX = "/api/v1"
RESOURCE_BLUEPRINTS = (
    users.blp, teams.blp, tokens.blp, projects.blp, agents.blp, regions.blp, zones.blp, nodes.kaktus_blp,
    nodes.kiwi_blp, storage.pool_blp, storage.nfs_blp, storage.template_blp, networks.vnet_blp,
    networks.subnet_blp, networks.adapter_blp, records.blp, compute.volume_blp, compute.instance_blp,
    compute.kompute_blp, compute.kylo_blp, kawaii.blp, konvey.blp,
    kwarantine.blp, kmotion.blp, placement.blp,
)

__all__ = ["API_PREFIX", "AgentSocket", "NodeState", "create_app"]

#: Methods a passive node still answers (reads from the shared database).
READ_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class NodeState:
    """What the HTTP layer needs to know of this node: its HA role and its metrics."""

    is_active: typing.Callable[[], bool]
    metrics: Metrics


class _Flask(Flask):
    """Flask, remembering which functions are coroutines.

    Flask asks ``inspect.iscoroutinefunction`` of every view, wrapper and handler it calls, at every
    request (nine times for a read); the answer never changes for a function.
    """

    def __init__(self, *args: typing.Any, **kwargs: typing.Any):
        super().__init__(*args, **kwargs)
        self._synchronous: dict[typing.Any, bool] = {}

    def ensure_sync(self, func: typing.Callable) -> typing.Callable:
        key = getattr(func, "__func__", func)  # a bound method is new at each request; its function is not
        try:
            synchronous = self._synchronous[key]
        except (KeyError, TypeError):
            synchronous = not inspect.iscoroutinefunction(func)
            if len(self._synchronous) < 4096:
                try:
                    self._synchronous[key] = synchronous
                except TypeError:  # unhashable
                    pass
        return func if synchronous else self.async_to_sync(func)


class _Api(flask_smorest.Api):
    """flask-smorest's Api, serving one OpenAPI document per API version (api.versions), each built once."""

    #: What handle_http_exception replies with, as the document's default error reply says.
    ERROR_SCHEMA = ApiErrorSchema

    def __init__(self, app: Flask):
        self._documents: dict[str, bytes] = {}
        super().__init__(app)
        # The current document is also flask-smorest's own /openapi.json.
        for version in versions.VERSIONS:
            app.add_url_rule(f"/openapi-{version}.json", endpoint=f"openapi_json_{version}",
                             view_func=functools.partial(self._openapi_document, version))

    def handle_http_exception(self, error: HTTPException) -> Response:  # the contract's error shape
        return errors.handle_http_exception(error)

    def _openapi_json(self) -> Response:
        return self._openapi_document(versions.CURRENT)

    def _openapi_document(self, version: str) -> Response:
        document = self._documents.get(version)
        if document is None:  # the generated document is complete once every blueprint is registered
            document = json.dumps(versions.document(self.spec.to_dict(), version), indent=2).encode()
            self._documents[version] = document
        return Response(document, mimetype="application/json")


def _register_error_handlers(app: Flask) -> None:
    app.register_error_handler(KahunaError, errors.handle_kahuna_error)
    app.register_error_handler(HTTPException, errors.handle_http_exception)
    app.register_error_handler(PyMongoError, errors.handle_database_error)
    app.register_error_handler(Exception, errors.handle_unexpected)


def create_api_app(services: Services) -> Flask:
    app = _Flask("kahuna.api")
    app.extensions["kahuna"] = services
    app.config.update(
        API_TITLE="Kowabunga API",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=services.config.global_.http.maxBodyBytes,
        API_SPEC_OPTIONS={
            "info": {"description": "Kvm Orchestrator With A BUNch of Goods Added",
                     "license": {"name": "Apache 2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0.txt"}},
            "servers": [{"url": API_PREFIX}],
            "security": [{"ApiKeyAuth": []}, {"BearerAuth": []}],
        },
    )
    api = _Api(app)
    api.spec.components.security_scheme(
        "ApiKeyAuth", {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "API key to authorize machine-to-machine requests."})
    api.spec.components.security_scheme("BearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    document_errors(api.spec)
    for blueprint in RESOURCE_BLUEPRINTS:
        api.register_blueprint(blueprint)
    legacy.register(app)  # the 0.53.2 routes 0.58 moved: served, not documented (api/versions.py documents them)
    _register_error_handlers(app)
    return app


_PASSIVE_BODY = json.dumps(error_body(503, "this Kahuna node is passive: writes go to the active node")).encode()


class _PassiveGate:
    """On a passive node, refuse writes to the API with 503: they belong to the active node."""

    def __init__(self, application: typing.Callable, is_active: typing.Callable[[], bool]):
        self.application = application
        self.is_active = is_active

    def __call__(self, environ: dict, start_response: typing.Callable) -> typing.Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in READ_METHODS and not self.is_active():
            start_response("503 Service Unavailable", [("Content-Type", "application/json"), ("Retry-After", "2")])
            return [_PASSIVE_BODY]
        return self.application(environ, start_response)


class _Measured:
    """Count and time every HTTP request (the agents' long-lived sockets excepted)."""

    def __init__(self, application: typing.Callable, metrics: Metrics):
        self.application = application
        self.metrics = metrics

    def __call__(self, environ: dict, start_response: typing.Callable) -> typing.Iterable[bytes]:
        if environ.get("PATH_INFO") == AGENT_SOCKET_PATH:
            return self.application(environ, start_response)
        started = time.monotonic()
        status = [500]

        def recording_start_response(status_line: str, headers: list, *args: typing.Any) -> typing.Callable:
            status[0] = int(status_line.split(" ", 1)[0])
            return start_response(status_line, headers, *args)

        try:
            return self.application(environ, recording_start_response)
        finally:
            self.metrics.observe_http(environ.get("REQUEST_METHOD", ""), status[0], time.monotonic() - started)


def create_app(services: Services, agent_socket: AgentSocket, node: NodeState) -> WSGIApplication:
    """The whole WSGI application: pages at the root, the REST API under /api/v1, agents on /ws."""
    site = _Flask("kahuna")
    site.extensions["kahuna"] = services
    site.extensions["kahuna.node"] = node
    site.register_blueprint(pages.blp)
    site.register_blueprint(metadata.blp)
    _register_error_handlers(site)
    application: WSGIApplication = _Measured(
        DispatcherMiddleware(site, {API_PREFIX: _PassiveGate(create_api_app(services), node.is_active),
                                    AGENT_SOCKET_PATH: agent_socket}),
        node.metrics)
    proxies = services.config.global_.http.trustedProxies
    if proxies:
        # Only the configured number of proxies (Caddy) is trusted for the client address and scheme.
        application = ProxyFix(application, x_for=proxies, x_proto=proxies, x_host=proxies)
    return application
