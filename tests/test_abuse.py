"""Abuse of authentication: guessing is throttled per account and per source, without telling accounts apart."""

import kowabunga as k
import pytest

from tests.deployment import Deployment, expect_error

LIMITS = {"global.accounts.loginFailuresPerAccount": 3, "global.accounts.loginFailuresPerSource": 6,
          "global.accounts.resetMailsPerAccount": 2, "global.accounts.resetRequestsPerSource": 4}


@pytest.fixture
def strict(ferretdb, mail_server):
    running = Deployment.start(ferretdb.uri, "kahuna_abuse", mail_server, **LIMITS)
    yield running
    running.stop()


def login(deployment, email, password):
    return k.UserApi(deployment.anonymous()).login(k.UserCredentials(email=email, password=password))


def raw_login(deployment, email, password):
    return deployment.http.request("POST", f"{deployment.base_url}/api/v1/login", retries=False,
                                   json={"email": email, "password": password})


def test_an_account_is_locked_after_its_failures_and_others_are_not(strict):
    bob = strict.create_account("bob")
    alice = strict.create_account("alice")
    for _ in range(3):
        expect_error(401, login, strict, bob.email, "wrong")
    response = raw_login(strict, bob.email, bob.password)  # even the right password now
    assert response.status == 429
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["status"] == 429 and "retry in" in response.json()["reason"]
    assert login(strict, alice.email, alice.password).jwt


def test_an_unknown_address_is_throttled_the_same_way(strict):
    statuses = [raw_login(strict, "nobody@example.com", "x").status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_a_source_guessing_many_accounts_is_throttled(strict):
    alice = strict.create_account("alice")
    statuses = [raw_login(strict, f"user{n}@example.com", "x").status for n in range(6)]
    assert statuses == [401] * 6
    assert raw_login(strict, alice.email, alice.password).status == 429


def test_password_reset_mails_are_limited(strict):
    bob = strict.create_account("bob")
    anonymous = k.UserApi(strict.anonymous())
    for _ in range(2):
        anonymous.reset_password(k.UserEmail(email=bob.email))
    response = strict.http.request("PUT", f"{strict.base_url}/api/v1/resetPassword", retries=False,
                                   json={"email": bob.email})
    assert response.status == 429
    strict.mail.wait_for(bob.email, "Forgot about", count=2)  # sent after the answer (the same for any address)
    assert strict.mail.count(bob.email, "Forgot about") == 2


def test_a_successful_login_resets_the_account_counter(strict):
    bob = strict.create_account("bob")
    for _ in range(2):
        expect_error(401, login, strict, bob.email, "wrong")
    assert login(strict, bob.email, bob.password).jwt
    for _ in range(2):
        expect_error(401, login, strict, bob.email, "wrong")
    assert login(strict, bob.email, bob.password).jwt
