"""API keys for machines: server-generated, shown once by e-mail, rotated, expiring, revocable."""

import datetime

import kowabunga

from tests.deployment import MASTER_KEY, expect_error
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


# -- API 0.58: the expirationDate query, the key setter's reply, partial token updates ----------------------


def _raw(deployment, method, path, body=None, headers=None):
    return deployment.http.request(method, f"{deployment.base_url}/api/v1{path}", json=body,
                                   headers=headers or {"X-API-Key": MASTER_KEY})


def test_the_0_58_query_name_sets_the_expiry_and_the_reply_is_the_token(deployment):
    bob = deployment.create_account("bob")
    response = _raw(deployment, "PATCH", f"/user/{bob.id}/token?expire=true&expirationDate={TOMORROW}")
    assert response.status == 200
    token = response.json()
    assert (token["name"], token["expire"], token["expiration_date"]) == ("bob-api-key", True, TOMORROW.isoformat())
    assert "API key" not in str(token) and set(token) <= {"id", "name", "description", "expire", "expiration_date"}
    key = fact_in(deployment.mail.wait_for(bob.email, "A new Kowabunga API key"), "API key")
    assert kowabunga.UserApi(deployment.client(api_key=key)).read_user(bob.id).name == "bob"
    # The agent key setter reads it too.
    agent_id, _ = deployment.create_agent("kaktus-1")
    response = _raw(deployment, "PATCH", f"/agent/{agent_id}/token?expire=true&expirationDate={TOMORROW}")
    assert response.status == 200 and response.json()["expiration_date"] == TOMORROW.isoformat()


def test_both_query_names_must_agree(deployment):
    bob = deployment.create_account("bob")
    later = TOMORROW + datetime.timedelta(days=1)
    same = _raw(deployment, "PATCH", f"/user/{bob.id}/token?expire=true&expirationDate={TOMORROW}"
                                     f"&expiration_date={TOMORROW}")
    assert same.status == 200 and same.json()["expiration_date"] == TOMORROW.isoformat()
    deployment.mail.wait_for(bob.email, "A new Kowabunga API key")
    agent_id, _ = deployment.create_agent("kaktus-1")
    for path in (f"/user/{bob.id}/token", f"/agent/{agent_id}/token"):
        response = _raw(deployment, "PATCH", f"{path}?expire=true&expirationDate={TOMORROW}&expiration_date={later}")
        assert response.status == 422
        assert "expirationDate" in response.json()["reason"] and "expiration_date" in response.json()["reason"]
    # Refused before anything was rotated: the one key mailed so far is the first one.
    assert deployment.mail.count(bob.email, "A new Kowabunga API key") == 1
    # Without a date, expire=true is refused as before, whichever name is missing.
    assert _raw(deployment, "PATCH", f"/user/{bob.id}/token?expire=true").status == 422


def test_a_partial_token_update_changes_only_what_it_carries(deployment):
    bob = deployment.create_account("bob")
    issue_key(deployment, bob, expire=True, expiration_date=TOMORROW)
    tokens = kowabunga.TokenApi(deployment.admin)
    [token_id] = tokens.list_api_tokens()
    response = _raw(deployment, "PUT", f"/token/{token_id}", {"description": "CI"})
    assert response.status == 200
    assert tokens.read_api_token(token_id) == kowabunga.ApiToken(
        id=token_id, name="bob-api-key", description="CI", expire=True, expiration_date=TOMORROW)
    assert _raw(deployment, "PUT", f"/token/{token_id}", {}).json() == response.json()
    lifted = _raw(deployment, "PUT", f"/token/{token_id}", {"expire": False}).json()
    assert (lifted["name"], lifted["description"], lifted["expire"]) == ("bob-api-key", "CI", False)
    assert "expiration_date" not in lifted
    assert _raw(deployment, "PUT", f"/token/{token_id}", {"name": None}).status == 400


def test_an_expired_token_can_be_renamed_and_stays_expired(deployment):
    bob = deployment.create_account("bob")
    key = issue_key(deployment, bob, expire=True, expiration_date=TOMORROW)
    [token_id] = kowabunga.TokenApi(deployment.admin).list_api_tokens()
    deployment.kahuna.db.db["token"].update_one({"parent_id": bob.id}, {"$set": {"expiration_date": "2000-01-01"}})
    response = _raw(deployment, "PUT", f"/token/{token_id}", {"name": "bob-old-key"})
    assert response.status == 200, response.data
    assert {k: response.json().get(k) for k in ("name", "expire", "expiration_date")} == {
        "name": "bob-old-key", "expire": True, "expiration_date": "2000-01-01"}
    assert _raw(deployment, "GET", f"/user/{bob.id}", headers={"X-API-Key": key}).status == 401
    # A new expiry is still checked: not in the past.
    moved = _raw(deployment, "PUT", f"/token/{token_id}", {"expiration_date": "2001-01-01"})
    assert moved.status == 422 and "in the past" in moved.json()["reason"]


# -- API 0.58: agents (Kontroller by REST, partial updates, the type set at creation only) ------------------


def test_a_kontroller_agent_is_created_listed_and_read_through_rest(deployment):
    created = _raw(deployment, "POST", "/agent", {"name": "kontroller-1", "type": "Kontroller"})
    assert created.status == 201
    agent = created.json()
    assert (agent["name"], agent["type"]) == ("kontroller-1", "Kontroller")
    assert _raw(deployment, "GET", "/agent").json() == [agent["id"]]
    assert _raw(deployment, "GET", f"/agent/{agent['id']}").json() == agent
    # The Kontrollers Kahuna makes for its Kawaii and Konvey VMs stay the VMs': neither listed nor readable.
    made = deployment.kahuna.db.db["agent"].insert_one(
        {"name": "kawaii-vm", "type": "Kontroller", "description": "", "made_for": "0" * 24}).inserted_id
    assert _raw(deployment, "GET", "/agent").json() == [agent["id"]]
    assert _raw(deployment, "GET", f"/agent/{made}").status == 404
    assert _raw(deployment, "PUT", f"/agent/{made}", {"name": "mine"}).status == 404
    assert _raw(deployment, "POST", "/agent", {"name": "k", "type": "Kahuna"}).status == 422


def test_an_agent_update_is_partial_and_ignores_the_type(deployment):
    agents = kowabunga.AgentApi(deployment.admin)
    kaktus = agents.create_agent(kowabunga.Agent(name="kaktus-1", description="rack 1", type="Kaktus"))
    renamed = _raw(deployment, "PUT", f"/agent/{kaktus.id}", {"name": "kaktus-01"}).json()
    assert (renamed["name"], renamed["description"], renamed["type"]) == ("kaktus-01", "rack 1", "Kaktus")
    # A 0.53.2 full body with another type: the type is set at creation only, the rest applies.
    updated = agents.update_agent(kaktus.id, kowabunga.Agent(name="kaktus-02", type="Kiwi"))
    assert (updated.name, updated.description, updated.type) == ("kaktus-02", "rack 1", "Kaktus")
    assert agents.read_agent(kaktus.id) == updated
    agents.create_agent(kowabunga.Agent(name="kiwi-1", type="Kiwi"))
    clash = _raw(deployment, "PUT", f"/agent/{kaktus.id}", {"name": "kiwi-1"})
    assert clash.status == 422 and "already exists" in clash.json()["reason"]
