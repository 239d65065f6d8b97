"""Kahuna's HTTP layer: the Kowabunga REST API under /api/v1, and the pages around it.

``create_app(services)`` returns the WSGI application. Views validate input with
the contract's schemas, ask a service, and shape the reply; they hold no logic.
"""

from __future__ import annotations

import flask_smorest
from flask import Flask
from pymongo.errors import PyMongoError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from api import (agents, compute, errors, gateways, metadata, networks, nodes, pages, projects, records, regions, storage,
                 teams, tokens, users, zones)
from api.agent_socket import PATH as AGENT_SOCKET_PATH
from api.agent_socket import AgentSocket
from kahuna import API_VERSION
from kahuna.errors import KahunaError
from kahuna.services import Services

API_PREFIX = "/api/v1"
RESOURCE_BLUEPRINTS = (
    users.blp, teams.blp, tokens.blp, projects.blp, agents.blp, regions.blp, zones.blp, nodes.kaktus_blp,
    nodes.kiwi_blp, storage.pool_blp, storage.nfs_blp, storage.template_blp, networks.vnet_blp,
    networks.subnet_blp, networks.adapter_blp, records.blp, compute.volume_blp, compute.instance_blp,
    compute.kompute_blp, compute.kylo_blp, gateways.kawaii_blp, gateways.konvey_blp,
)

__all__ = ["API_PREFIX", "AgentSocket", "create_app"]


class _Api(flask_smorest.Api):
    def handle_http_exception(self, error: HTTPException):  # noqa: D102 - the contract's error shape
        return errors.handle_http_exception(error)


def _register_error_handlers(app: Flask) -> None:
    app.register_error_handler(KahunaError, errors.handle_kahuna_error)
    app.register_error_handler(HTTPException, errors.handle_http_exception)
    app.register_error_handler(PyMongoError, errors.handle_database_error)
    app.register_error_handler(Exception, errors.handle_unexpected)


def create_api_app(services: Services) -> Flask:
    app = Flask("kahuna.api")
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
    for blueprint in RESOURCE_BLUEPRINTS:
        api.register_blueprint(blueprint)
    _register_error_handlers(app)
    return app


def create_app(services: Services, agent_socket: AgentSocket):
    """The whole WSGI application: pages at the root, the REST API under /api/v1, agents on /ws."""
    site = Flask("kahuna")
    site.extensions["kahuna"] = services
    site.register_blueprint(pages.blp)
    site.register_blueprint(metadata.blp)
    _register_error_handlers(site)
    application = DispatcherMiddleware(site, {API_PREFIX: create_api_app(services), AGENT_SOCKET_PATH: agent_socket})
    proxies = services.config.global_.http.trustedProxies
    if proxies:
        # Only the configured number of proxies (Caddy) is trusted for the client address and scheme.
        application = ProxyFix(application, x_for=proxies, x_proto=proxies, x_host=proxies)
    return application
