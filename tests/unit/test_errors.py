"""kahuna.errors: each domain error maps to one HTTP status of the contract's error model."""

import pytest

from kahuna import errors
from tests.contract import contract

STATUSES = [
    (errors.KahunaError, 422),
    (errors.BadRequest, 400),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.Unprocessable, 422),
    (errors.QuotaExceeded, 507),
    (errors.Unavailable, 503),
    (errors.OperationTimeout, 503),
    (errors.AgentError, 422),
    (errors.AgentUnavailable, 422),
    (errors.AgentDisconnected, 422),
    (errors.AgentCallFailed, 422),
    (errors.AgentTimeout, 503),
]


@pytest.mark.parametrize(("error", "status"), STATUSES)
def test_status_and_reason(error, status):
    exc = error("the reason, for the API user")
    assert isinstance(exc, errors.KahunaError)
    assert exc.status == status
    assert exc.status in errors.STATUSES
    assert exc.reason == str(exc) == "the reason, for the API user"


def test_every_error_of_the_module_has_a_status():
    defined = {value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, errors.KahunaError)}
    assert defined == {error for error, _ in STATUSES} | {errors.TooManyRequests}
    assert errors.TooManyRequests("slow down", retry_after=1).status == 429


@pytest.mark.parametrize(("error", "retry_after"), [
    (errors.Unavailable("busy"), 5),
    (errors.Unavailable("busy", retry_after=30), 30),
    (errors.OperationTimeout("still running"), 5),
    (errors.AgentTimeout("no answer"), 5),
    (errors.TooManyRequests("slow down", retry_after=12), 12),
])
def test_refusals_for_now_say_when_to_retry(error, retry_after):
    assert error.retry_after == retry_after
    assert error.status in (429, 503)


def test_agent_errors_are_unprocessable_but_a_timeout_is_unavailable():
    assert issubclass(errors.AgentTimeout, errors.AgentError)
    for error in (errors.AgentUnavailable, errors.AgentDisconnected, errors.AgentCallFailed):
        assert issubclass(error, errors.Unprocessable)


@pytest.mark.parametrize(("status", "title"), [
    (404, "Specified resource does not exist."),
    (429, "Too many requests."),
    (503, "Service unavailable."),
    (418, "Error."),  # outside the error model
])
def test_error_body(status, title):
    assert errors.title(status) == title
    assert errors.error_body(status, "why") == {"status": status, "error": title, "reason": "why"}


def test_the_statuses_the_contract_names_are_named_and_titled_alike():
    responses = contract()["components"]["responses"]
    named = {status: known for status, known in errors.STATUSES.items() if known.name in responses}
    assert sorted(named) == [400, 401, 403, 404, 409, 422, 507]
    for known in named.values():
        assert responses[known.name]["description"] == f"{known.name} error: {known.title}"
