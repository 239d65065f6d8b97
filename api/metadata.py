"""``/latest/meta-data``: an instance's own profile, for the agents and tools inside it.

Any method, no credentials: the instance names itself with its id and private
address (see kahuna.services.metadata). Unlike the Go Kahuna, errors are not an
empty 200: 400 when a header is missing, 404 when the pair names no instance, 429
(with ``Retry-After``) for a client address that failed too many times: failures are
counted per client address as Kahuna sees it (``global.http.trustedProxies`` makes
that the address Caddy saw), never per the ``X-Kowabunga-Source-Ip`` a client claims.
"""

from __future__ import annotations

from flask import Blueprint, Response, json, request

from api.blueprint import services

blp = Blueprint("metadata", __name__)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@blp.route("/latest/meta-data", methods=METHODS, strict_slashes=False)
def instance_metadata() -> Response:
    meta = services().metadata.for_instance(request.headers.get("X-Kowabunga-Instance-Id", ""),
                                            request.headers.get("X-Kowabunga-Source-Ip", ""),
                                            request.remote_addr or "")
    return Response(json.dumps(meta, sort_keys=False) + "\n", mimetype="application/json")
