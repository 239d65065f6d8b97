"""Passwords: the strength rule, and recovery in 2 steps by e-mail."""

import datetime
import os

import gevent.event
import kowabunga
import pytest

from tests.deployment import Deployment, expect_error
from tests.mailserver import fact_in, link_in


def can_login(deployment, email, password):
    try:
        kowabunga.UserApi(deployment.anonymous()).login(kowabunga.UserCredentials(email=email, password=password))
    except kowabunga.ApiException as exc:
        assert exc.status == 401
        return False
    return True


def test_a_user_sets_a_strong_password_and_other_sessions_end(deployment):
    bob = deployment.create_account("bob")
    client = deployment.login(bob)
    api = kowabunga.UserApi(client)
    body = expect_error(422, api.set_user_password, bob.id, kowabunga.Password(value="password1"))
    assert body["reason"].startswith("insecure password, try")
    expect_error(422, api.set_user_password, bob.id, kowabunga.Password(value="Aa1!" * 20))  # > 72 bytes
    api.set_user_password(bob.id, kowabunga.Password(value="Tr0ub4dor&3-horse-Battery"))
    assert can_login(deployment, bob.email, "Tr0ub4dor&3-horse-Battery")
    assert not can_login(deployment, bob.email, bob.password)
    expect_error(401, api.read_user, bob.id)


def test_a_user_cannot_set_someone_elses_password(deployment):
    alice = deployment.create_account("alice")
    bob = deployment.create_account("bob")
    expect_error(403, kowabunga.UserApi(deployment.login(bob)).set_user_password, alice.id,
                 kowabunga.Password(value="Tr0ub4dor&3-horse-Battery"))


def test_public_recovery_in_two_steps(deployment):
    bob = deployment.create_account("bob")
    session = deployment.login(bob)
    kowabunga.UserApi(deployment.anonymous()).reset_password(kowabunga.UserEmail(email="bob@example.com"))
    request = deployment.mail.wait_for(bob.email, "Forgot about your Kowabunga password")
    # Until the link is followed, the old password still works.
    assert can_login(deployment, bob.email, bob.password)
    assert deployment.follow(link_in(request), "GET").status == 200
    assert can_login(deployment, bob.email, bob.password)
    assert deployment.follow(link_in(request)).status == 200
    new_password = fact_in(deployment.mail.wait_for(bob.email, "password has been reset"), "Password")
    assert new_password != bob.password
    assert can_login(deployment, bob.email, new_password)
    assert not can_login(deployment, bob.email, bob.password)
    expect_error(401, kowabunga.UserApi(session).read_user, bob.id)
    # Single use.
    assert deployment.follow(link_in(request)).status == 403


def test_recovery_for_an_unknown_address_answers_the_same_and_sends_nothing(deployment):
    deployment.create_account("bob")
    anonymous = kowabunga.UserApi(deployment.anonymous())
    assert anonymous.reset_password(kowabunga.UserEmail(email="nobody@example.com")) is None
    assert anonymous.reset_password(kowabunga.UserEmail(email="not an address")) is None
    assert deployment.mail.messages("nobody@example.com") == []


def test_only_the_newest_link_works_and_links_expire(deployment):
    bob = deployment.create_account("bob")
    api = kowabunga.UserApi(deployment.login(bob))
    api.reset_user_password(bob.id)
    first = link_in(deployment.mail.wait_for(bob.email, "Forgot about"))
    api.reset_user_password(bob.id)
    second = link_in(deployment.mail.wait_for(bob.email, "Forgot about", count=2))
    assert deployment.follow(first).status == 403
    # Age the pending link past its lifetime.
    deployment.kahuna.db.db["user"].update_one(
        {"email": bob.email},
        {"$set": {"password_reset.expires_at": datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)}})
    assert deployment.follow(second).status == 403
    assert can_login(deployment, bob.email, bob.password)


def test_an_empty_or_forged_token_does_nothing(deployment):
    bob = deployment.create_account("bob")
    for link in (f"/confirmForgotPassword?user={bob.id}&token=",
                 f"/confirmForgotPassword?user={bob.id}&token=forged",
                 f"/confirm?user={bob.id}&token=",
                 "/confirmForgotPassword?user=nobody&token=x"):
        assert deployment.follow(link).status == 403
    assert deployment.mail.count(bob.email, "password has been reset") == 0
    assert can_login(deployment, bob.email, bob.password)


# -- API 0.58: POST /resetPassword (public), beside 0.53.2's PUT -------------------------------------------------


def _reset(deployment, email, method="POST", **headers):
    return deployment.http.request(method, f"{deployment.base_url}/api/v1/resetPassword", json={"email": email},
                                   headers=headers, retries=False)


def test_the_0_58_post_starts_the_same_recovery(deployment):
    bob = deployment.create_account("bob")
    response = _reset(deployment, bob.email)  # no credentials: the operation is public
    assert (response.status, response.data) == (200, b"")
    request = deployment.mail.wait_for(bob.email, "Forgot about your Kowabunga password")
    # The e-mailed link still confirms first: an anonymous request alone changes no password.
    assert can_login(deployment, bob.email, bob.password)
    assert deployment.follow(link_in(request)).status == 200
    new_password = fact_in(deployment.mail.wait_for(bob.email, "password has been reset"), "Password")
    assert can_login(deployment, bob.email, new_password)
    assert not can_login(deployment, bob.email, bob.password)


def test_post_and_put_answer_the_same_for_an_unknown_address(deployment):
    deployment.create_account("bob")
    for method in ("POST", "PUT"):
        for email in ("nobody@example.com", "not an address"):
            response = _reset(deployment, email, method)
            assert (response.status, response.data) == (200, b""), (method, email)
    assert deployment.mail.messages("nobody@example.com") == []
    # Credentials a 0.53.2 client sends along are ignored, whatever they are.
    assert _reset(deployment, "stranger@example.com", "PUT", **{"X-API-Key": "wrong"}).status == 200
    missing = deployment.http.request("POST", f"{deployment.base_url}/api/v1/resetPassword", json={})
    assert missing.status == 422 and "email" in missing.json()["reason"]


@pytest.fixture
def strict(ferretdb, mail_server):
    running = Deployment.start(ferretdb.uri, f"kahuna_passwords_{os.getpid()}", mail_server,
                               **{"global.accounts.resetMailsPerAccount": 2,
                                  "global.accounts.resetRequestsPerSource": 4})
    yield running
    running.stop()


def test_post_and_put_share_one_throttle(strict):
    bob = strict.create_account("bob")
    assert _reset(strict, bob.email, "POST").status == 200
    assert _reset(strict, bob.email, "PUT").status == 200
    for method in ("POST", "PUT"):
        response = _reset(strict, bob.email, method)
        assert response.status == 429 and int(response.headers["Retry-After"]) > 0, method
    strict.mail.wait_for(bob.email, "Forgot about", count=2)  # mailed after the answers
    assert strict.mail.count(bob.email, "Forgot about") == 2


def test_a_known_and_an_unknown_address_answer_alike_with_the_relay_down(deployment, monkeypatch):
    """The look-up, the link and the mail happen after the answer: a known address cannot be told from an
    unknown one by a 422 (relay down) or by a mail that only it gets sent before answering."""
    bob = deployment.create_account("bob")
    mailer = deployment.kahuna.services.mailer
    working = mailer.config
    attempts, both_tried = [], gevent.event.Event()

    def send(letter):
        attempts.append(letter.to)
        if len(attempts) == 2:
            both_tried.set()
        return type(mailer).send(mailer, letter)

    monkeypatch.setattr(mailer, "send", send)
    mailer.config = working.__class__(host="127.0.0.1", port=1, security="none")  # nothing listens there
    try:
        for method in ("POST", "PUT"):
            answers = [_reset(deployment, email, method) for email in (bob.email, "nobody@example.com")]
            assert [(r.status, r.data) for r in answers] == [(200, b""), (200, b"")], method
        assert both_tried.wait(60), attempts  # the two links to bob, tried after the answers, and failed
    finally:
        mailer.config = working
    assert attempts == [bob.email, bob.email]
    # With the relay back, the same request mails the link to the known address only.
    assert (_reset(deployment, "nobody@example.com").status, _reset(deployment, bob.email).status) == (200, 200)
    request = deployment.mail.wait_for(bob.email, "Forgot about your Kowabunga password")
    assert deployment.mail.count(bob.email, "Forgot about") == 1  # none of the requests made while it was down
    assert deployment.mail.messages("nobody@example.com") == []
    assert deployment.follow(link_in(request)).status == 200
