"""API keys for machines: server-generated, shown once by e-mail, rotated, expiring, revocable."""

import datetime

import kowabunga

from tests.deployment import expect_error
from tests.mailserver import fact_in

TOMORROW = datetime.date.today() + datetime.timedelta(days=1)


def issue_key(deployment, account, count=1, **expiry):
    kowabunga.UserApi(deployment.login(account)).set_user_api_token(account.id, **expiry)
    return fact_in(deployment.mail.wait_for(account.email, "A new Kowabunga API key", count=count), "API key")


def test_a_user_key_authenticates_as_that_user(deployment):
    bob = deployment.create_account("bob")
    key = issue_key(deployment, bob)
    assert len(key) == 64 and key.isalnum()
    api = kowabunga.UserApi(deployment.client(api_key=key))
    assert api.read_user(bob.id).name == "bob"
    expect_error(403, api.list_users)
    # Stored as a digest only.
    token = deployment.kahuna.db.db["token"].find_one({"parent_id": bob.id})
    assert key not in str(token)


def test_rotation_replaces_the_key(deployment):
    bob = deployment.create_account("bob")
    first = issue_key(deployment, bob)
    second = issue_key(deployment, bob, count=2)
    assert first != second
    expect_error(401, kowabunga.UserApi(deployment.client(api_key=first)).read_user, bob.id)
    assert kowabunga.UserApi(deployment.client(api_key=second)).read_user(bob.id)
    assert len(kowabunga.TokenApi(deployment.admin).list_api_tokens()) == 1


def test_expiry(deployment):
    bob = deployment.create_account("bob")
    api = kowabunga.UserApi(deployment.login(bob))
    expect_error(422, api.set_user_api_token, bob.id, expire=True)
    expect_error(422, api.set_user_api_token, bob.id, expire=True,
                 expiration_date=datetime.date.today() - datetime.timedelta(days=1))
    key = issue_key(deployment, bob, expire=True, expiration_date=TOMORROW)
    tokens = kowabunga.TokenApi(deployment.admin)
    [token_id] = tokens.list_api_tokens()
    token = tokens.read_api_token(token_id)
    assert (token.name, token.expire, token.expiration_date) == ("bob-api-key", True, TOMORROW)
    assert kowabunga.UserApi(deployment.client(api_key=key)).read_user(bob.id)
    # Valid through its whole expiration date, refused the day after.
    deployment.kahuna.db.db["token"].update_one(
        {"parent_id": bob.id}, {"$set": {"expiration_date": datetime.date.today().isoformat()}})
    assert kowabunga.UserApi(deployment.client(api_key=key)).read_user(bob.id)
    deployment.kahuna.db.db["token"].update_one(
        {"parent_id": bob.id},
        {"$set": {"expiration_date": (datetime.date.today() - datetime.timedelta(days=1)).isoformat()}})
    expect_error(401, kowabunga.UserApi(deployment.client(api_key=key)).read_user, bob.id)
    # An expiry can be lifted.
    tokens.update_api_token(token_id, kowabunga.ApiToken(name="bob-api-key", expire=False))
    assert kowabunga.UserApi(deployment.client(api_key=key)).read_user(bob.id)
    assert tokens.read_api_token(token_id).expiration_date is None


def test_token_administration(deployment):
    bob = deployment.create_account("bob")
    key = issue_key(deployment, bob)
    tokens = kowabunga.TokenApi(deployment.admin)
    [token_id] = tokens.list_api_tokens()
    updated = tokens.update_api_token(token_id, kowabunga.ApiToken(name="ci-robot", description="CI", expire=True,
                                                                   expiration_date=TOMORROW))
    assert (updated.name, updated.description, updated.expire) == ("ci-robot", "CI", True)
    expect_error(403, kowabunga.TokenApi(deployment.client(api_key=key)).list_api_tokens)
    expect_error(404, tokens.read_api_token, "5f0000000000000000000000")
    tokens.delete_api_token(token_id)
    expect_error(401, kowabunga.UserApi(deployment.client(api_key=key)).read_user, bob.id)
    assert tokens.list_api_tokens() == []


def test_a_disabled_users_key_is_refused(deployment):
    bob = deployment.create_account("bob")
    key = issue_key(deployment, bob)
    deployment.kahuna.db.db["user"].update_one({"email": bob.email}, {"$set": {"enabled": False}})
    expect_error(401, kowabunga.UserApi(deployment.client(api_key=key)).read_user, bob.id)


def test_an_agent_key_is_not_accepted_on_the_rest_api(deployment):
    _, key = deployment.create_agent("kaktus-1")
    expect_error(401, kowabunga.ProjectApi(deployment.client(api_key=key)).list_projects)


def test_when_the_mail_relay_fails_the_old_key_keeps_working(deployment):
    bob = deployment.create_account("bob")
    key = issue_key(deployment, bob)
    client = deployment.login(bob)
    mailer = deployment.kahuna.services.mailer
    mailer.config = mailer.config.__class__(host="127.0.0.1", port=1, security="none")
    expect_error(422, kowabunga.UserApi(client).set_user_api_token, bob.id)
    assert kowabunga.UserApi(deployment.client(api_key=key)).read_user(bob.id)
