"""The team tag."""

from __future__ import annotations

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.teams import TeamSchema, TeamUpdateSchema
from api.updates import update_merged

blp = Blueprint("team", __name__, description="Teams of users, attached to projects.")


@blp.route("/team")
class Teams(MethodView):
    @blp.operation("ListTeams")
    @blp.ids_response()
    def get(self):
        return services().teams.list_ids()

    @blp.operation("CreateTeam")
    @blp.arguments(TeamSchema)
    @blp.response(201, TeamSchema)
    def post(self, team):
        return services().teams.create(team["name"], team["description"], team["user_ids"])


@blp.route("/team/<teamId>")
class TeamById(MethodView):
    @blp.operation("ReadTeam")
    @blp.response(200, TeamSchema)
    def get(self, teamId):
        return services().teams.get(teamId)

    @blp.operation("UpdateTeam")
    @blp.arguments(TeamUpdateSchema)
    @blp.response(200, TeamSchema)
    def put(self, changes, teamId):
        teams = services().teams
        return update_merged(f"team:{teamId}", TeamSchema, lambda: teams.get(teamId), changes,
                             lambda team: teams.update(teamId, team["name"], team["description"], team["user_ids"]))

    @blp.operation("DeleteTeam")
    @blp.response(200)
    def delete(self, teamId):
        services().teams.delete(teamId)
        return empty()
