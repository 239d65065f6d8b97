"""The team tag through the SDK."""

import kowabunga
import pytest

from tests.deployment import expect_error


@pytest.fixture
def teams(deployment):
    return kowabunga.TeamApi(deployment.admin)


def test_crud(deployment, teams):
    alice = deployment.create_account("alice")
    bob = deployment.create_account("bob")
    assert teams.list_teams() == []
    ops = teams.create_team(kowabunga.Team(name="ops", description="operations", users=[alice.id, alice.id]))
    assert (ops.name, ops.description, ops.users) == ("ops", "operations", [alice.id])
    assert teams.list_teams() == [ops.id]
    updated = teams.update_team(ops.id, kowabunga.Team(name="ops", users=[bob.id]))
    assert updated.users == [bob.id]
    assert teams.read_team(ops.id).users == [bob.id]
    teams.update_team(ops.id, kowabunga.Team(name="ops", users=[]))
    teams.delete_team(ops.id)
    assert teams.list_teams() == []
    expect_error(404, teams.read_team, ops.id)


def test_validation_and_conflicts(teams):
    expect_error(422, teams.create_team, kowabunga.Team(name="ops", users=["5f0000000000000000000000"]))
    expect_error(422, teams.create_team, kowabunga.Team(name="ops", users=["garbage"]))
    teams.create_team(kowabunga.Team(name="ops", users=[]))
    expect_error(409, teams.create_team, kowabunga.Team(name="ops", users=[]))


def test_a_team_with_members_or_projects_is_not_deleted(deployment, teams):
    alice = deployment.create_account("alice")
    ops = teams.create_team(kowabunga.Team(name="ops", users=[alice.id]))
    body = expect_error(409, teams.delete_team, ops.id)
    assert "member" in body["reason"]
    teams.update_team(ops.id, kowabunga.Team(name="ops", users=[]))
    kowabunga.ProjectApi(deployment.admin).create_project(kowabunga.Project(name="web", teams=[ops.id], regions=[]))
    body = expect_error(409, teams.delete_team, ops.id)
    assert "web" in body["reason"]


def test_only_super_admins_manage_teams(deployment, teams):
    ops = teams.create_team(kowabunga.Team(name="ops", users=[]))
    for role in ("user", "projectAdmin"):
        account = deployment.create_account(f"someone-{role.lower()}", role=role)
        api = kowabunga.TeamApi(deployment.login(account))
        expect_error(403, api.list_teams)
        expect_error(403, api.read_team, ops.id)
        expect_error(403, api.create_team, kowabunga.Team(name="mine", users=[account.id]))
        expect_error(403, api.update_team, ops.id, kowabunga.Team(name="ops", users=[account.id]))
        expect_error(403, api.delete_team, ops.id)
