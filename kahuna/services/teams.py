"""Teams of users. Membership is stored once, on the team (``user_ids``)."""

from __future__ import annotations

from kahuna.errors import Conflict
from kahuna.storage import Database, models


class TeamService:
    def __init__(self, db: Database):
        self.db = db

    def list_ids(self) -> list[str]:
        return self.db.teams.ids()

    def get(self, team_id: str) -> models.Team:
        return self.db.teams.get(team_id)

    def team_ids_of(self, user_id: str) -> list[str]:
        return self.db.teams.ids({"user_ids": user_id})

    def create(self, name: str, description: str, user_ids: list[str]) -> models.Team:
        return self.db.teams.insert({"name": name, "description": description,
                                     "user_ids": self.db.users.existing_ids(user_ids)})

    def update(self, team_id: str, name: str, description: str, user_ids: list[str]) -> models.Team:
        return self.db.teams.update(team_id, {"name": name, "description": description,
                                              "user_ids": self.db.users.existing_ids(user_ids)})

    def delete(self, team_id: str) -> None:
        team = self.db.teams.get(team_id)
        if team["user_ids"]:
            raise Conflict(f"team {team['name']} still has {len(team['user_ids'])} member(s): remove them first")
        projects = self.db.projects.find({"team_ids": team_id}, projection={"name": 1})
        if projects:
            names = ", ".join(sorted(p["name"] for p in projects))
            raise Conflict(f"team {team['name']} is still attached to project(s) {names}")
        self.db.teams.delete(team_id)
