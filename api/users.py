"""The user tag: accounts, login/logout, passwords and API keys."""

from __future__ import annotations

from flask import request
from flask.views import MethodView

from api.blueprint import Blueprint, empty, identity, services
from api.schemas.tokens import ApiTokenSchema, ExpiryQuerySchema
from api.schemas.users import PasswordSchema, UserCredentialsSchema, UserEmailSchema, UserSchema, UserUpdateSchema
from api.updates import update_merged
from api.versions import login_status

blp = Blueprint("user", __name__, description="Kowabunga users, their sessions, passwords and API keys.")


@blp.route("/login")
class Login(MethodView):
    @blp.operation("Login")
    @blp.arguments(UserCredentialsSchema)
    @blp.response(200, UserCredentialsSchema)
    def post(self, credentials):
        token = services().sessions.login(credentials["email"], credentials["password"], request.remote_addr or "")
        # 201 for the Python SDKs that read only 201 (API 0.53.2): api.versions.login_status.
        return ({"email": credentials["email"], "password": "", "jwt": token},
                login_status(request.headers.get("User-Agent")))


@blp.route("/logout")
class Logout(MethodView):
    @blp.operation("Logout")
    @blp.response(204)
    def post(self):
        services().sessions.logout(identity())
        return empty(204)


@blp.route("/resetPassword")
class ResetPassword(MethodView):
    """POST (API 0.58); API 0.53.2's PUT is routed here too (api.legacy). Public and throttled; the same answer
    whether the address is known or not. What it starts is the e-mailed confirmation link, for both versions: an
    anonymous request that replaced a password at once would let anyone lock users out (README)."""

    @blp.operation("ResetPassword")
    @blp.arguments(UserEmailSchema)
    @blp.response(200)
    def post(self, body):
        services().users.request_password_reset(body["email"], request.remote_addr or "")
        return empty()


@blp.route("/user")
class Users(MethodView):
    @blp.operation("ListUsers")
    @blp.ids_response()
    def get(self):
        return services().users.list_ids()

    @blp.operation("CreateUser")
    @blp.arguments(UserSchema)
    @blp.response(201, UserSchema)
    def post(self, user):
        return services().users.create(user["name"], user["email"], user["role"], user["description"],
                                       user["notifications"])


@blp.route("/user/<userId>")
class UserById(MethodView):
    @blp.operation("ReadUser")
    @blp.response(200, UserSchema)
    def get(self, userId):
        return services().users.get(userId)

    @blp.operation("UpdateUser")
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    def put(self, changes, userId):
        users, caller = services().users, identity()
        # The owners UserService.update takes (superadmins first: KEY_ORDER).
        return update_merged(("superadmins", f"user:{userId}"), UserSchema, lambda: users.get(userId), changes,
                             lambda user: users.update(caller, userId, user["name"], user["email"], user["role"],
                                                       user["description"], user["notifications"]))

    @blp.operation("DeleteUser")
    @blp.response(200)
    def delete(self, userId):
        services().users.delete(userId)
        return empty()


@blp.route("/user/<userId>/password")
class UserPassword(MethodView):
    @blp.operation("SetUserPassword")
    @blp.arguments(PasswordSchema)
    @blp.response(200)
    def put(self, password, userId):
        services().users.set_password(userId, password["value"])
        return empty()


@blp.route("/user/<userId>/resetPassword")
class UserResetPassword(MethodView):
    @blp.operation("ResetUserPassword")
    @blp.response(200)
    def patch(self, userId):
        services().users.request_password_reset_for(userId)
        return empty()


@blp.route("/user/<userId>/token")
class UserApiToken(MethodView):
    @blp.operation("SetUserApiToken")
    @blp.arguments(ExpiryQuerySchema, location="query")
    @blp.response(200, ApiTokenSchema)
    def patch(self, expiry, userId):
        user = services().users.get(userId)
        return services().tokens.rotate_user_key(user, expiry["expire"], expiry["expiration_date"])
