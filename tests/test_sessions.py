"""Login, logout and bearer tokens: revocation is real, and nothing tells accounts apart."""

import base64
import datetime

import jwt as pyjwt
import kowabunga

from tests.deployment import MASTER_KEY, expect_error


def login(deployment, email, password):
    return kowabunga.UserApi(deployment.anonymous()).login(kowabunga.UserCredentials(email=email, password=password))


def test_login_returns_a_jwt_and_never_the_password(deployment):
    bob = deployment.create_account("bob")
    credentials = login(deployment, "Bob@Example.com", bob.password)
    assert credentials.password == ""
    claims = pyjwt.decode(credentials.jwt, options={"verify_signature": False})
    assert claims["uid"] == claims["sub"] == bob.id
    assert claims["role"] == "user" and claims["iss"] == "Kowabunga"
    assert claims["exp"] - claims["iat"] == 3600


def test_wrong_password_and_unknown_address_look_the_same(deployment):
    bob = deployment.create_account("bob")
    wrong = expect_error(401, login, deployment, bob.email, bob.password + "x")
    unknown = expect_error(401, login, deployment, "nobody@example.com", bob.password)
    assert wrong == unknown


def test_logout_revokes_the_token(deployment):
    bob = deployment.create_account("bob")
    client = deployment.login(bob)
    other_session = deployment.login(bob)
    kowabunga.UserApi(client).logout()
    expect_error(401, kowabunga.UserApi(client).read_user, bob.id)
    # Only that session ended.
    assert kowabunga.UserApi(other_session).read_user(bob.id).id == bob.id


def test_logout_with_an_api_key_is_a_no_op(deployment):
    kowabunga.UserApi(deployment.admin).logout()
    assert kowabunga.UserApi(deployment.admin).list_users() is not None


def test_forged_tokens_are_refused(deployment):
    bob = deployment.create_account("bob")
    token = login(deployment, bob.email, bob.password).jwt
    claims = pyjwt.decode(token, options={"verify_signature": False})
    header, payload, signature = token.split(".")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    forged = [
        pyjwt.encode(claims, "not-the-key-but-long-enough-for-hs256!!", algorithm="HS256"),
        pyjwt.encode({**claims, "role": "superAdmin"}, "x" * 40, algorithm="HS256"),
        f"{none_header}.{payload}.",
        f"{header}.{payload}.{signature[:-4]}AAAA",
        "garbage",
    ]
    for token in forged:
        expect_error(401, kowabunga.UserApi(deployment.client(token=token)).read_user, bob.id)


def test_expired_tokens_and_other_algorithms_are_refused(deployment):
    bob = deployment.create_account("bob")
    token = login(deployment, bob.email, bob.password).jwt
    claims = pyjwt.decode(token, options={"verify_signature": False})
    key = deployment.kahuna.services.sessions.signing_key
    past = int((datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)).timestamp())
    expired = pyjwt.encode({**claims, "exp": past}, key, algorithm="HS256")
    body = expect_error(401, kowabunga.UserApi(deployment.client(token=expired)).read_user, bob.id)
    assert "expired" in body["reason"]
    other_algorithm = pyjwt.encode(claims, key, algorithm="HS512")
    expect_error(401, kowabunga.UserApi(deployment.client(token=other_algorithm)).read_user, bob.id)


def test_the_role_comes_from_the_database_not_the_token(deployment):
    deployment.create_account("root", role="superAdmin")
    boss = deployment.create_account("boss", role="superAdmin")
    client = deployment.login(boss)
    assert kowabunga.UserApi(client).list_users()
    kowabunga.UserApi(deployment.admin).update_user(
        boss.id, kowabunga.User(name="boss", email=boss.email, role="user"))
    expect_error(403, kowabunga.UserApi(client).list_users)


def test_a_deleted_users_token_stops_working(deployment):
    bob = deployment.create_account("bob")
    client = deployment.login(bob)
    kowabunga.UserApi(deployment.admin).delete_user(bob.id)
    expect_error(401, kowabunga.UserApi(client).read_user, bob.id)


def test_missing_or_malformed_credentials(deployment):
    bob = deployment.create_account("bob")
    expect_error(401, kowabunga.UserApi(deployment.anonymous()).read_user, bob.id)
    expect_error(401, kowabunga.UserApi(deployment.client(api_key=MASTER_KEY + "x")).list_users)
    http = deployment.http
    for header in ({"Authorization": "Basic Ym9iOnB3"}, {"Authorization": "Bearer"}, {"Authorization": "x"}):
        response = http.request("GET", f"{deployment.base_url}/api/v1/user/{bob.id}", headers=header)
        assert response.status == 401
        assert response.json()["status"] == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_0_53_2_sdk_is_told_201_by_its_user_agent(deployment):
    """Login answers 200 (API 0.58), and 201 to a Python SDK older than 0.58, which reads nothing else: its
    User-Agent is the only sign of its version. One that sends another User-Agent is answered 200, and that
    SDK then returns None (README)."""
    bob = deployment.create_account("bob")
    client = deployment.anonymous()
    assert client.user_agent == "OpenAPI-Generator/0.53.2/python"
    reply = kowabunga.UserApi(client).login_with_http_info(
        kowabunga.UserCredentials(email=bob.email, password=bob.password))
    assert reply.status_code == 201 and reply.data.jwt
    client.user_agent = "my-tool/1.0"
    reply = kowabunga.UserApi(client).login_with_http_info(
        kowabunga.UserCredentials(email=bob.email, password=bob.password))
    assert reply.status_code == 200 and reply.data is None
    # What was answered is a session all the same.
    assert reply.raw_data and b'"jwt"' in reply.raw_data
