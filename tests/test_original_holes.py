"""The holes of the Go Kahuna (kahuna-auth-config.md §11), each shown closed."""

import kowabunga

from tests.deployment import MASTER_KEY, expect_error


def raw(deployment, method, path, **headers):
    response = deployment.http.request(method, f"{deployment.base_url}{path}", headers=headers)
    return response.status, response.data


def test_1_a_user_cannot_promote_themself(deployment):
    bob = deployment.create_account("bob")
    api = kowabunga.UserApi(deployment.login(bob))
    expect_error(403, api.update_user, bob.id, kowabunga.User(name="bob", email=bob.email, role="superAdmin"))
    expect_error(403, api.update_user, bob.id, kowabunga.User(name="bob", email=bob.email, role="projectAdmin"))


def test_2_the_query_string_grants_nothing(deployment):
    bob = deployment.create_account("bob")
    padmin = deployment.create_account("padmin", role="projectAdmin")
    team = kowabunga.TeamApi(deployment.admin).create_team(kowabunga.Team(name="t", users=[bob.id]))
    project = kowabunga.ProjectApi(deployment.admin).create_project(
        kowabunga.Project(name="p", teams=[team.id], regions=[]))
    token = kowabunga.UserApi(deployment.anonymous()).login(
        kowabunga.UserCredentials(email=bob.email, password=bob.password)).jwt
    bearer = {"Authorization": f"Bearer {token}"}
    for path in (f"/api/v1/user?x=/api/v1/user/{bob.id}", f"/api/v1/team?x=/api/v1/user/{bob.id}",
                 f"/api/v1/token?p={project.id}", f"/api/v1/team/{team.id}?x={project.id}"):
        assert raw(deployment, "GET", path, **bearer)[0] == 403, path
    padmin_token = kowabunga.UserApi(deployment.anonymous()).login(
        kowabunga.UserCredentials(email=padmin.email, password=padmin.password)).jwt
    assert raw(deployment, "GET", "/api/v1/user?x=/api/v1/project",
               Authorization=f"Bearer {padmin_token}")[0] == 403


def test_3_permissions_are_never_stale(deployment):
    bob = deployment.create_account("bob")
    team = kowabunga.TeamApi(deployment.admin).create_team(kowabunga.Team(name="t", users=[]))
    projects = kowabunga.ProjectApi(deployment.login(bob))
    project = kowabunga.ProjectApi(deployment.admin).create_project(
        kowabunga.Project(name="p", teams=[team.id], regions=[]))
    expect_error(403, projects.read_project, project.id)
    kowabunga.TeamApi(deployment.admin).update_team(team.id, kowabunga.Team(name="t", users=[bob.id]))
    assert projects.read_project(project.id).id == project.id


def test_4_logout_revokes(deployment):
    bob = deployment.create_account("bob")
    client = deployment.login(bob)
    kowabunga.UserApi(client).logout()
    expect_error(401, kowabunga.UserApi(client).read_user, bob.id)


def test_5_login_does_not_echo_the_password(deployment):
    bob = deployment.create_account("bob")
    reply = kowabunga.UserApi(deployment.anonymous()).login(
        kowabunga.UserCredentials(email=bob.email, password=bob.password))
    assert bob.password not in reply.to_json()


def test_6_an_empty_token_forces_no_password_rotation(deployment):
    bob = deployment.create_account("bob")
    assert deployment.follow(f"/confirmForgotPassword?user={bob.id}&token=").status == 403
    assert deployment.mail.count(bob.email, "password has been reset") == 0


def test_7_no_enumeration_by_login_or_reset(deployment):
    bob = deployment.create_account("bob")
    anonymous = kowabunga.UserApi(deployment.anonymous())
    known = expect_error(401, anonymous.login, kowabunga.UserCredentials(email=bob.email, password="wrong"))
    unknown = expect_error(401, anonymous.login, kowabunga.UserCredentials(email="x@example.com", password="wrong"))
    assert known == unknown
    assert anonymous.reset_password(kowabunga.UserEmail(email=bob.email)) is None
    assert anonymous.reset_password(kowabunga.UserEmail(email="x@example.com")) is None


def test_8_unknown_ids_are_not_found_and_deleted_users_are_out(deployment):
    bob = deployment.create_account("bob")
    client = deployment.login(bob)
    admin = deployment.admin
    for call in (kowabunga.UserApi(admin).read_user, kowabunga.TeamApi(admin).read_team,
                 kowabunga.ProjectApi(admin).read_project, kowabunga.TokenApi(admin).read_api_token):
        expect_error(404, call, "0" * 24)
    kowabunga.UserApi(admin).delete_user(bob.id)
    expect_error(401, kowabunga.UserApi(client).read_user, bob.id)


def test_9_a_project_admin_can_create_a_project_with_a_subnet_size(deployment):
    padmin = deployment.create_account("padmin", role="projectAdmin")
    team = kowabunga.TeamApi(deployment.admin).create_team(kowabunga.Team(name="t", users=[padmin.id]))
    project = kowabunga.ProjectApi(deployment.login(padmin)).create_project(
        kowabunga.Project(name="p", teams=[team.id], regions=[]), subnet_size=26)
    assert project.name == "p"


def test_10_unique_emails_valid_roles_and_removable_expiry(deployment):
    users = kowabunga.UserApi(deployment.admin)
    users.create_user(kowabunga.User(name="a", email="same@example.com", role="user"))
    expect_error(409, users.create_user, kowabunga.User(name="b", email="same@example.com", role="user"))
    response = deployment.http.request(
        "POST", f"{deployment.base_url}/api/v1/user", json={"name": "c", "email": "c@example.com", "role": "god"},
        headers={"X-API-Key": MASTER_KEY})
    assert response.status == 422


def test_11_deletions_leave_no_dangling_references(deployment):
    bob = deployment.create_account("bob")
    team = kowabunga.TeamApi(deployment.admin).create_team(kowabunga.Team(name="t", users=[bob.id]))
    kowabunga.UserApi(deployment.admin).delete_user(bob.id)
    assert kowabunga.TeamApi(deployment.admin).read_team(team.id).users == []


def test_12_empty_lists_are_arrays(deployment):
    for path in ("/api/v1/user", "/api/v1/team", "/api/v1/project", "/api/v1/token"):
        status, body = raw(deployment, "GET", path, **{"X-API-Key": MASTER_KEY})
        assert (status, body.strip()) == (200, b"[]")


def test_13_errors_carry_their_own_status(deployment):
    status, body = raw(deployment, "GET", "/api/v1/team/" + "0" * 24, **{"X-API-Key": MASTER_KEY})
    assert status == 404 and b'"status":404' in body
