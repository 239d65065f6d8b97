"""The project tag through the SDK: CRUD, membership, quotas, cost and usage."""

import kowabunga
import pytest

from tests.deployment import expect_error


@pytest.fixture
def org(deployment):
    """Two teams with one member each, a projectAdmin in team A, and a project per team."""
    admin_teams = kowabunga.TeamApi(deployment.admin)
    member_a = deployment.create_account("member-a")
    member_b = deployment.create_account("member-b")
    padmin = deployment.create_account("padmin", role="projectAdmin")
    team_a = admin_teams.create_team(kowabunga.Team(name="team-a", users=[member_a.id, padmin.id]))
    team_b = admin_teams.create_team(kowabunga.Team(name="team-b", users=[member_b.id]))
    projects = kowabunga.ProjectApi(deployment.admin)
    project_a = projects.create_project(kowabunga.Project(name="alpha", teams=[team_a.id], regions=[]))
    project_b = projects.create_project(kowabunga.Project(name="beta", teams=[team_b.id], regions=[]))
    return {"member_a": member_a, "member_b": member_b, "padmin": padmin, "team_a": team_a, "team_b": team_b,
            "project_a": project_a, "project_b": project_b}


def test_create_applies_defaults(deployment):
    projects = kowabunga.ProjectApi(deployment.admin)
    project = projects.create_project(kowabunga.Project(
        name="web", description="the shop", domain="web.acme.com", tags=["prod"],
        metadatas=[kowabunga.Metadata(key="owner", value="sre")], teams=[], regions=[],
        quotas=kowabunga.ProjectResources(vcpus=16, memory=2**34)))
    assert project.id and project.name == "web" and project.domain == "web.acme.com"
    assert project.bootstrap_user == "kowabunga"
    assert project.bootstrap_pubkey.startswith("ssh-ed25519 ")
    assert project.quotas == kowabunga.ProjectResources(vcpus=16, memory=2**34, storage=0, instances=0)
    assert project.metadatas == [kowabunga.Metadata(key="owner", value="sre")]
    assert project.private_subnets == [] and project.reserved_vrrp_ids == []
    assert projects.read_project(project.id) == project
    assert projects.list_projects() == [project.id]


def test_create_validation(deployment):
    projects = kowabunga.ProjectApi(deployment.admin)
    expect_error(422, projects.create_project, kowabunga.Project(name="x", domain="nodot", teams=[], regions=[]))
    body = expect_error(422, projects.create_project,
                        kowabunga.Project(name="x", teams=[], regions=["5f0000000000000000000000"]))
    assert "region" in body["reason"]
    expect_error(422, projects.create_project,
                 kowabunga.Project(name="x", teams=["5f0000000000000000000000"], regions=[]))
    expect_error(422, projects.create_project, kowabunga.Project(name="x", teams=[], regions=[]), subnet_size=8)
    projects.create_project(kowabunga.Project(name="x", teams=[], regions=[]), subnet_size=26)
    expect_error(409, projects.create_project, kowabunga.Project(name="x", teams=[], regions=[]))


def test_members_reach_their_projects_only(deployment, org):
    as_a = kowabunga.ProjectApi(deployment.login(org["member_a"]))
    assert as_a.list_projects() == [org["project_a"].id]
    assert as_a.read_project(org["project_a"].id).name == "alpha"
    assert as_a.read_project_usage(org["project_a"].id) == kowabunga.ProjectResources(
        vcpus=0, memory=0, storage=0, instances=0)
    assert as_a.read_project_cost(org["project_a"].id) == kowabunga.Cost(price=0.0, currency="EUR")
    beta = org["project_b"].id
    for call in (as_a.read_project, as_a.read_project_cost, as_a.read_project_usage, as_a.delete_project):
        expect_error(403, call, beta)
    expect_error(403, as_a.update_project, beta, kowabunga.Project(name="beta", teams=[], regions=[]))
    expect_error(404, as_a.read_project, "5f0000000000000000000000")


def test_membership_changes_take_effect_at_once(deployment, org):
    as_b = kowabunga.ProjectApi(deployment.login(org["member_b"]))
    alpha = org["project_a"].id
    expect_error(403, as_b.read_project, alpha)
    teams = kowabunga.TeamApi(deployment.admin)
    teams.update_team(org["team_a"].id, kowabunga.Team(name="team-a", users=[org["member_b"].id]))
    assert as_b.read_project(alpha).name == "alpha"
    teams.update_team(org["team_a"].id, kowabunga.Team(name="team-a", users=[]))
    expect_error(403, as_b.read_project, alpha)


def test_members_update_but_only_super_admins_change_quotas(deployment, org):
    alpha = org["project_a"]
    as_a = kowabunga.ProjectApi(deployment.login(org["member_a"]))
    updated = as_a.update_project(alpha.id, kowabunga.Project(
        name="alpha", description="renamed", tags=["x"], teams=[org["team_a"].id], regions=[]))
    assert (updated.description, updated.tags) == ("renamed", ["x"])
    body = expect_error(403, as_a.update_project, alpha.id, kowabunga.Project(
        name="alpha", teams=[org["team_a"].id], regions=[], quotas=kowabunga.ProjectResources(vcpus=1000)))
    assert "quota" in body["reason"]
    expect_error(422, as_a.update_project, alpha.id,
                 kowabunga.Project(name="alpha", teams=[org["team_b"].id], regions=[]))
    admin = kowabunga.ProjectApi(deployment.admin)
    admin.update_project(alpha.id, kowabunga.Project(name="alpha", teams=[org["team_a"].id], regions=[],
                                                     quotas=kowabunga.ProjectResources(instances=4)))
    assert admin.read_project(alpha.id).quotas.instances == 4
    # The domain is set at creation only: an update carrying another one leaves it as it is (API 0.58).
    domain = admin.read_project(alpha.id).domain
    kept = admin.update_project(alpha.id, kowabunga.Project(name="alpha", domain="other.acme.com",
                                                            teams=[org["team_a"].id], regions=[]))
    assert kept.domain == domain != "other.acme.com"


def test_project_creation_and_deletion_rights(deployment, org):
    as_member = kowabunga.ProjectApi(deployment.login(org["member_a"]))
    expect_error(403, as_member.create_project, kowabunga.Project(name="mine", teams=[org["team_a"].id], regions=[]))
    expect_error(403, as_member.delete_project, org["project_a"].id)
    as_padmin = kowabunga.ProjectApi(deployment.login(org["padmin"]))
    # A projectAdmin must attach a team of theirs, and may pass ?subnetSize.
    expect_error(422, as_padmin.create_project, kowabunga.Project(name="mine", teams=[org["team_b"].id], regions=[]))
    mine = as_padmin.create_project(kowabunga.Project(name="mine", teams=[org["team_a"].id], regions=[]),
                                    subnet_size=25)
    assert sorted(as_padmin.list_projects()) == sorted([org["project_a"].id, mine.id])
    expect_error(403, as_padmin.delete_project, org["project_b"].id)
    as_padmin.delete_project(mine.id)
    expect_error(404, as_padmin.read_project, mine.id)


def test_a_project_that_owns_objects_is_not_deleted(deployment, org):
    alpha = org["project_a"].id
    deployment.kahuna.db.db["volume"].insert_one({"name": "data", "type": "raw", "project_id": alpha, "size": 1 << 30})
    body = expect_error(409, kowabunga.ProjectApi(deployment.admin).delete_project, alpha)
    assert "volume" in body["reason"]
    usage = kowabunga.ProjectApi(deployment.admin).read_project_usage(alpha)
    assert usage.storage == 1 << 30
