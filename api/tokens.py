"""The token tag: administration of every API token (users' and agents')."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.tokens import ApiTokenSchema, ApiTokenUpdateSchema
from api.updates import update_merged

blp = Blueprint("token", __name__, description="Server-to-server API tokens.")


@blp.route("/token")
class Tokens(MethodView):
    @blp.operation("ListApiTokens")
    @blp.ids_response()
    def get(self):
        return services().tokens.list_ids()


@blp.route("/token/<tokenId>")
class TokenById(MethodView):
    @blp.operation("ReadApiToken")
    @blp.response(200, ApiTokenSchema)
    def get(self, tokenId):
        return services().tokens.get(tokenId)

    @blp.operation("UpdateApiToken")
    @blp.arguments(ApiTokenUpdateSchema)
    @blp.response(200, ApiTokenSchema)
    def put(self, changes, tokenId):
        tokens = services().tokens
        return update_merged(f"token:{tokenId}", ApiTokenSchema, lambda: tokens.get(tokenId), changes,
                             lambda token: tokens.update(tokenId, token["name"], token["description"], token["expire"],
                                                         token["expiration_date"]))

    @blp.operation("DeleteApiToken")
    @blp.response(200)
    def delete(self, tokenId):
        services().tokens.delete(tokenId)
        return empty()
