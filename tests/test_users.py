"""The user tag through the official SDK: creation in 2 steps, reads, updates, deletion."""

import kowabunga
import pytest

from tests.deployment import MASTER_KEY, expect_error
from tests.mailserver import link_in


@pytest.fixture
def users(deployment):
    return kowabunga.UserApi(deployment.admin)


def new_user(name="bob", email=None, role="user", **extra):
    return kowabunga.User(name=name, email=email or f"{name}@example.com", role=role, **extra)


def test_created_account_is_disabled_until_the_link_is_followed(deployment, users):
    user = users.create_user(new_user("bob", description="builder", notifications=True))
    assert (user.name, user.email, user.role, user.description, user.notifications) == \
        ("bob", "bob@example.com", "user", "builder", True)
    welcome = deployment.mail.wait_for("bob@example.com", "Welcome to Kowabunga")
    # No password exists yet: nothing can log in.
    expect_error(401, kowabunga.UserApi(deployment.anonymous()).login,
                 kowabunga.UserCredentials(email="bob@example.com", password="x"))
    # Opening the link shows a page; only its button confirms (mail scanners prefetch links).
    assert deployment.follow(link_in(welcome), "GET").status == 200
    assert deployment.mail.count("bob@example.com", "account is ready") == 0
    assert deployment.follow(link_in(welcome)).status == 200
    assert deployment.mail.wait_for("bob@example.com", "account is ready")
    # The link is single-use.
    assert deployment.follow(link_in(welcome)).status == 403


def test_list_and_read(deployment, users):
    assert users.list_users() == []
    alice = deployment.create_account("alice")
    bob = deployment.create_account("bob")
    assert users.list_users() == [alice.id, bob.id]
    assert users.read_user(bob.id).email == "bob@example.com"


def test_unknown_ids_are_404(users):
    expect_error(404, users.read_user, "5f0000000000000000000000")
    expect_error(404, users.read_user, "not-an-id")
    expect_error(404, users.update_user, "5f0000000000000000000000", new_user())
    expect_error(404, users.delete_user, "5f0000000000000000000000")


def test_names_and_addresses_are_unique(users):
    users.create_user(new_user("bob"))
    expect_error(409, users.create_user, new_user("bob", email="other@example.com"))
    expect_error(409, users.create_user, new_user("robert", email="BOB@example.com"))


def test_bad_input(deployment, users):
    body = expect_error(422, users.create_user, new_user("bob", email="not-an-address"))
    assert "e-mail" in body["reason"]
    api = deployment.admin
    # The SDK validates its own models, so send raw bodies for what it would refuse to send.
    for payload, status, words in (
        ({"name": "x", "email": "x@example.com"}, 422, "role"),
        ({"name": "x", "email": "x@example.com", "role": "god"}, 422, "role"),
        ({"name": "x", "email": "x@example.com", "role": "user", "color": "red"}, 400, "color"),
        ({"name": 3, "email": "x@example.com", "role": "user"}, 400, "name"),
        ([1, 2], 400, "Invalid input type"),
    ):
        response = api.rest_client.request("POST", f"{deployment.base_url}/api/v1/user",
                                           headers={"X-API-Key": api.configuration.api_key["ApiKeyAuth"],
                                                    "Content-Type": "application/json"},
                                           body=payload)
        response.read()
        assert response.status == status, (payload, response.data)
        assert words in response.data.decode()
    response = api.rest_client.request("POST", f"{deployment.base_url}/api/v1/user",
                                       headers={"X-API-Key": api.configuration.api_key["ApiKeyAuth"],
                                                "Content-Type": "application/json"}, body="{not json")
    response.read()
    assert response.status == 400


def test_user_updates_themself_but_not_their_role(deployment):
    bob = deployment.create_account("bob")
    as_bob = kowabunga.UserApi(deployment.login(bob))
    updated = as_bob.update_user(bob.id, new_user("bobby", email="bob@example.com", description="renamed"))
    assert (updated.name, updated.description) == ("bobby", "renamed")
    expect_error(403, as_bob.update_user, bob.id, new_user("bobby", email="bob@example.com", role="superAdmin"))
    assert kowabunga.UserApi(deployment.admin).read_user(bob.id).role == "user"


def test_users_cannot_read_or_change_others(deployment):
    alice = deployment.create_account("alice")
    bob = deployment.create_account("bob")
    as_bob = kowabunga.UserApi(deployment.login(bob))
    expect_error(403, as_bob.read_user, alice.id)
    expect_error(403, as_bob.update_user, alice.id, new_user("alice"))
    expect_error(403, as_bob.list_users)
    expect_error(403, as_bob.create_user, new_user("eve"))
    expect_error(403, as_bob.delete_user, alice.id)


def test_super_admin_changes_roles(deployment, users):
    bob = deployment.create_account("bob")
    users.update_user(bob.id, new_user("bob", role="projectAdmin"))
    assert users.read_user(bob.id).role == "projectAdmin"


def test_update_to_a_taken_name_is_refused(deployment, users):
    deployment.create_account("alice")
    bob = deployment.create_account("bob")
    # The contract lists no 409 for PUT: a clash is a 422.
    body = expect_error(422, users.update_user, bob.id, new_user("alice", email="bob@example.com"))
    assert "already exists" in body["reason"]


def test_delete_removes_memberships_tokens_and_sessions(deployment, users):
    bob = deployment.create_account("bob")
    bob_client = deployment.login(bob)
    team = kowabunga.TeamApi(deployment.admin).create_team(kowabunga.Team(name="ops", users=[bob.id]))
    users.set_user_api_token(bob.id)
    assert kowabunga.TokenApi(deployment.admin).list_api_tokens() != []
    users.delete_user(bob.id)
    assert users.list_users() == []
    assert kowabunga.TeamApi(deployment.admin).read_team(team.id).users == []
    assert kowabunga.TokenApi(deployment.admin).list_api_tokens() == []
    expect_error(401, kowabunga.UserApi(bob_client).read_user, bob.id)


def test_the_last_super_admin_cannot_be_removed_or_demoted(deployment, users):
    root = deployment.create_account("root", role="superAdmin")
    expect_error(409, users.delete_user, root.id)
    expect_error(422, users.update_user, root.id, new_user("root", role="user"))
    other = deployment.create_account("other", role="superAdmin")
    users.delete_user(root.id)
    assert users.list_users() == [other.id]


def test_mail_relay_failure_keeps_nothing(deployment, users):
    deployment.kahuna.services.mailer.config = deployment.kahuna.services.mailer.config.__class__(
        host="127.0.0.1", port=1, security="none")
    body = expect_error(422, users.create_user, new_user("bob"))
    assert "mail relay" in body["reason"]
    assert users.list_users() == []


# -- API 0.58: partial updates (UserUpdate) ------------------------------------------------------------------


def _put_user(deployment, user_id, body, headers=None):
    return deployment.http.request("PUT", f"{deployment.base_url}/api/v1/user/{user_id}", json=body,
                                   headers=headers or {"X-API-Key": MASTER_KEY})


def test_a_partial_update_changes_only_what_it_carries(deployment, users):
    created = users.create_user(new_user("bob", description="builder", notifications=True))
    before = users.read_user(created.id)
    response = _put_user(deployment, created.id, {"description": "architect"})
    assert response.status == 200 and response.json()["description"] == "architect"
    after = users.read_user(created.id)
    assert after == before.model_copy(update={"description": "architect"})
    # An empty update changes nothing; a read-only id is accepted and ignored.
    assert _put_user(deployment, created.id, {}).json() == response.json()
    assert _put_user(deployment, created.id, {"id": "0" * 24, "name": "robert"}).json()["name"] == "robert"
    assert users.read_user(created.id) == after.model_copy(update={"name": "robert"})


def test_a_partial_update_is_validated_as_a_full_one(deployment, users):
    bob = deployment.create_account("bob")
    before = users.read_user(bob.id)
    assert _put_user(deployment, bob.id, {"description": None}).status == 400  # null is not "unchanged"
    assert _put_user(deployment, bob.id, {"notifications": "yes"}).status == 400
    assert _put_user(deployment, bob.id, {"role": "emperor"}).status == 422
    assert _put_user(deployment, bob.id, {"colour": "blue"}).status == 400
    # Rules still hold: a user cannot raise their own role, even in a partial body.
    as_bob = {"Authorization": f"Bearer {deployment.login(bob).configuration.access_token}"}
    assert _put_user(deployment, bob.id, {"role": "superAdmin"}, as_bob).status == 403
    assert _put_user(deployment, bob.id, {"description": "mine"}, as_bob).status == 200
    assert users.read_user(bob.id) == before.model_copy(update={"description": "mine"})


def test_a_0_53_2_body_keeps_an_optional_field_it_leaves_out(deployment, users):
    """The 0.53.2 SDK leaves an unset description out of its body: kept now, where it used to be reset."""
    created = users.create_user(new_user("bob", description="builder"))
    updated = users.update_user(created.id, new_user("bobby"))
    assert (updated.name, updated.description) == ("bobby", "builder")
