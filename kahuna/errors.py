"""Domain errors. Each maps to one HTTP status of the contract's error model.

Services raise these; the HTTP layer turns them into the documented
``{"status", "error", "reason"}`` body. ``reason`` is always a sentence meant for
the API user and never holds a secret.
"""

from __future__ import annotations


class KahunaError(Exception):
    """Base of every error Kahuna reports to a client."""

    status = 422
    title = "Server can't process request."

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BadRequest(KahunaError):
    status = 400
    title = "Bad request (wrong input parameters)."


class Unauthorized(KahunaError):
    status = 401
    title = "Unauthorized resource access (wrong auth/credentials)."


class Forbidden(KahunaError):
    status = 403
    title = "Forbidden resource access (restricted access control)."


class NotFound(KahunaError):
    status = 404
    title = "Specified resource does not exist."


class Conflict(KahunaError):
    status = 409
    title = "A similar resource already exists or resource is still being referenced somewhere."


class Unprocessable(KahunaError):
    status = 422
    title = "Server can't process request."


class TooManyRequests(KahunaError):
    status = 429
    title = "Too many requests."

    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.retry_after = retry_after


class QuotaExceeded(KahunaError):
    status = 507
    title = "Server can't allocate resources (logical quotas or physical limits hit)."


class Unavailable(KahunaError):
    """Refused for now: retry after ``retry_after`` seconds (the answer carries ``Retry-After``)."""

    status = 503
    title = "Service unavailable."

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
    title = Unavailable.title
    retry_after = 5


class AgentDisconnected(AgentError):
    """The agent's connection ended before it answered."""


class AgentCallFailed(AgentError):
    """The agent answered with an error."""
