"""Domain errors. Each maps to one HTTP status of the contract's error model.

Services raise these; the HTTP layer turns them into the documented
``{"status", "error", "reason"}`` body. ``reason`` is always a sentence meant for
the API user and never holds a secret.
"""

from __future__ import annotations

import typing


class ErrorStatus(typing.NamedTuple):
    """An HTTP status of the error model."""

    #: Its entry in the OpenAPI document's ``components/responses``, described as "<name> error: <title>" (the
    #: contract's names; it names 400, 401, 403, 404, 409, 422 and 507, the others are named alike).
    name: str
    #: The ``error`` of every body of that status.
    title: str


#: The error model, by HTTP status: the one place its names and titles are written. The error classes below, the
#: error bodies (api.errors, and those answered outside Flask: api.agent_socket, api's passive gate, kahuna.server)
#: and the OpenAPI document (api.blueprint) all take them from here.
STATUSES: dict[int, ErrorStatus] = {
    400: ErrorStatus("BadRequest", "Bad request (wrong input parameters)."),
    401: ErrorStatus("Unauthorized", "Unauthorized resource access (wrong auth/credentials)."),
    403: ErrorStatus("Forbidden", "Forbidden resource access (restricted access control)."),
    404: ErrorStatus("NotFound", "Specified resource does not exist."),
    405: ErrorStatus("MethodNotAllowed", "Method not allowed."),
    409: ErrorStatus("Conflict",
                     "A similar resource already exists or resource is still being referenced somewhere."),
    413: ErrorStatus("PayloadTooLarge", "Request body too large."),
    422: ErrorStatus("UnprocessableEntity", "Server can't process request."),
    429: ErrorStatus("TooManyRequests", "Too many requests."),
    500: ErrorStatus("InternalServerError", "Server-side failure while processing the request."),
    503: ErrorStatus("ServiceUnavailable", "Service unavailable."),
    507: ErrorStatus("InsufficientResource",
                     "Server can't allocate resources (logical quotas or physical limits hit)."),
}


def title(status: int) -> str:
    """The ``error`` of a body of *status*: its title in :data:`STATUSES`, ``"Error."`` for a status outside it."""
    known = STATUSES.get(status)
    return known.title if known is not None else "Error."


def error_body(status: int, reason: str) -> dict[str, typing.Any]:
    """The contract's error body: ``{"status", "error", "reason"}``."""
    return {"status": status, "error": title(status), "reason": reason}


class KahunaError(Exception):
    """Base of every error Kahuna reports to a client; its ``status`` says which of :data:`STATUSES`."""

    status = 422

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BadRequest(KahunaError):
    status = 400


class Unauthorized(KahunaError):
    status = 401


class Forbidden(KahunaError):
    status = 403


class NotFound(KahunaError):
    status = 404


class Conflict(KahunaError):
    status = 409


class Unprocessable(KahunaError):
    status = 422


class TooManyRequests(KahunaError):
    status = 429

    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.retry_after = retry_after


class QuotaExceeded(KahunaError):
    status = 507


class Unavailable(KahunaError):
    """Refused for now: retry after ``retry_after`` seconds (the answer carries ``Retry-After``)."""

    status = 503

    def __init__(self, reason: str, retry_after: int = 5):
        super().__init__(reason)
        self.retry_after = retry_after


class OperationTimeout(Unavailable):
    """The caller stopped waiting for an object's owner; the operation goes on and may still complete."""


class AgentError(Unprocessable):
    """An operation needed an agent, and the agent could not do it; the reason says why."""


class AgentUnavailable(AgentError):
    """No connected agent can serve the call."""


class AgentTimeout(AgentError):
    """The agent did not answer in time: 503, like every timeout (the client may retry; what the
    operation had done was undone)."""

    status = 503
    retry_after = 5


class AgentDisconnected(AgentError):
    """The agent's connection ended before it answered."""


class AgentCallFailed(AgentError):
    """The agent answered with an error."""
