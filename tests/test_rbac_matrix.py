"""The RBAC matrix: every operation of both contracts (0.58.0 and 0.53.2), for every kind of caller, allowed or
denied as the one table of rules (kahuna.access.RULES) says.

The expectation per rule kind is written once below; the operations come from the contracts and
their rules from RULES, so a new operation is covered without a line here. Each decision is
checked through the daemon's own gate (identify, then authorize) for every operation, and over
HTTP for every read (GET) operation served, 0.53.2 routes included, where allowed means "neither 401 nor 403
(nor 500)". An operation renamed by 0.58 has one rule under both names.
"""

from __future__ import annotations

import collections
import datetime
import re

import jwt
import kowabunga as k
import pytest
from bson import ObjectId

from api.versions import RENAMED
from kahuna import access
from kahuna.errors import Forbidden, NotFound, Unauthorized
from tests.contract import NOT_YET_SERVED, contract
from tests.deployment import MASTER_KEY
from tests.mailserver import fact_in

VERSIONS = ("0.58.0", "0.53.2")
#: (version, operationId, method, path) of every operation of both contracts.
OPERATIONS = [(version, item[method]["operationId"], method.upper(), path)
              for version in VERSIONS for path, item in contract(version)["paths"].items()
              for method in ("get", "post", "put", "patch", "delete") if method in item]
ALLOW = "allow"
ROLES = ("superAdmin", "projectAdmin", "memberA", "memberB", "anonymous", "revokedKey", "expiredJwt", "agentKey")
AUTHENTICATED = {"superAdmin", "projectAdmin", "memberA", "memberB"}
#: Callers that belong to project A (the project every path names) through team A.
IN_PROJECT_A = {"projectAdmin", "memberA"}
OWNED_COLLECTIONS = {"volume": "volume", "instance": "instance", "kompute": "kompute", "kylo": "kylo",
                     "kawaii": "kawaii", "konvey": "konvey", "record": "dns_record", "kwarantine": "kwarantine"}


def expected(rule: access.Rule, role: str) -> str | int:
    """The oracle: what a caller of *role* gets from an operation guarded by *rule*."""
    if isinstance(rule, access.Public):
        return ALLOW
    if role not in AUTHENTICATED:
        return 401
    if role == "superAdmin":
        return ALLOW
    if isinstance(rule, access.Authenticated):
        return ALLOW
    if isinstance(rule, access.ProjectAdmin):
        return ALLOW if role == "projectAdmin" else 403
    if isinstance(rule, access.SelfOrSuperAdmin):
        return ALLOW if role == "memberA" else 403  # the path names member A
    if isinstance(rule, access.ProjectMember):
        if role not in IN_PROJECT_A:
            return 403
        return ALLOW if not rule.admin or role == "projectAdmin" else 403
    if isinstance(rule, access.OwnedObject):
        return ALLOW if role in IN_PROJECT_A else 403
    return 403  # superAdmin-only rules


def test_every_operation_has_a_rule():
    assert collections.Counter(version for version, _, _, _ in OPERATIONS) == {"0.58.0": 187, "0.53.2": 167}
    assert sorted(op for _, op, _, _ in OPERATIONS if op not in access.RULES) == []
    # 20 new operations, 12 renamed: 167 + 20 + 12 names in all.
    assert len({op for _, op, _, _ in OPERATIONS}) == 199


def test_renamed_operations_share_their_rule():
    for new, old in RENAMED.items():
        assert access.RULES[new] is access.RULES[old], new


@pytest.fixture
def world(deployment):
    """Project A (team A: member A and a projectAdmin), project B (team B: member B), objects of project A,
    and the credentials of each kind of caller."""
    teams = k.TeamApi(deployment.admin)
    member_a, member_b = deployment.create_account("member-a"), deployment.create_account("member-b")
    padmin = deployment.create_account("padmin", role="projectAdmin")
    team_a = teams.create_team(k.Team(name="team-a", users=[member_a.id, padmin.id]))
    team_b = teams.create_team(k.Team(name="team-b", users=[member_b.id]))
    projects = k.ProjectApi(deployment.admin)
    project_a = projects.create_project(k.Project(name="alpha", teams=[team_a.id], regions=[]))
    projects.create_project(k.Project(name="beta", teams=[team_b.id], regions=[]))
    db = deployment.kahuna.db.db
    params = {"projectId": project_a.id, "userId": member_a.id}
    for kind, collection in OWNED_COLLECTIONS.items():
        params[f"{kind}Id"] = str(db[collection].insert_one(_owned_document(kind, project_a.id)).inserted_id)
    # A revoked user key: issued, then rotated.
    k.UserApi(deployment.login(member_b)).set_user_api_token(member_b.id)
    revoked = deployment.mail.wait_for(member_b.email, "API key")
    k.UserApi(deployment.login(member_b)).set_user_api_token(member_b.id)
    revoked_key = fact_in(revoked, "API key")
    _, agent_key = deployment.create_agent("kaktus-1", "Kaktus")
    sessions = deployment.kahuna.services.sessions
    now = datetime.datetime.now(datetime.UTC)
    expired = jwt.encode({"sub": member_a.id, "jti": "x", "iss": "Kowabunga", "iat": int((now - datetime.timedelta(
        hours=2)).timestamp()), "exp": int((now - datetime.timedelta(hours=1)).timestamp())}, sessions.signing_key,
        algorithm="HS256")
    credentials = {
        "superAdmin": {"X-API-Key": MASTER_KEY},
        "projectAdmin": {"Authorization": f"Bearer {_jwt(deployment, padmin)}"},
        "memberA": {"Authorization": f"Bearer {_jwt(deployment, member_a)}"},
        "memberB": {"Authorization": f"Bearer {_jwt(deployment, member_b)}"},
        "anonymous": {},
        "revokedKey": {"X-API-Key": revoked_key},
        "expiredJwt": {"Authorization": f"Bearer {expired}"},
        "agentKey": {"X-API-Key": agent_key},
    }
    return params, credentials


def _jwt(deployment, account) -> str:
    return k.UserApi(deployment.anonymous()).login(k.UserCredentials(email=account.email,
                                                                       password=account.password)).jwt


def _owned_document(kind: str, project_id: str) -> dict:
    base = {"project_id": project_id, "name": f"{kind}-1", "description": "", "state": "ready"}
    return {
        "volume": {**base, "type": "raw", "size": 1 << 30, "instance_id": "", "region_id": str(ObjectId())},
        "instance": {**base, "vcpus": 1, "memory": 1 << 30, "adapter_ids": [], "volume_ids": [],
                     "kaktus_id": str(ObjectId()), "zone_id": str(ObjectId()), "region_id": str(ObjectId())},
        "kompute": {**base, "instance_id": str(ObjectId()), "profile": ""},
        "kylo": {**base, "nfs_id": str(ObjectId()), "access": "RW", "protocols": [4], "size": 0},
        "kawaii": {**base, "firewall": {"ingress": [], "egress_policy": "accept", "egress": []}, "dnat": [],
                   "vpc_peerings": [], "zones": []},
        "konvey": {**base, "failover": False, "endpoints": [], "vip": "", "kompute_ids": []},
        "record": {**base, "domain": "alpha.example", "addresses": ["10.0.0.1"], "region_id": ""},
        "kwarantine": {**base, "policy": "host"},
    }[kind]


def _path_params(path: str, params: dict[str, str]) -> dict[str, str]:
    return {name: params.get(name, str(ObjectId())) for name in re.findall(r"{(\w+)}", path)}


def _decision(deployment, headers: dict[str, str], rule: access.Rule, path_params: dict[str, str]) -> str | int:
    gate = deployment.kahuna.services.access
    try:
        if isinstance(rule, access.Public):
            return ALLOW
        caller = gate.identify(headers.get("X-API-Key"), headers.get("Authorization"))
        gate.authorize(caller, rule, path_params)
    except Unauthorized:
        return 401
    except Forbidden:
        return 403
    except NotFound:
        return 404
    return ALLOW


def test_the_gate_decides_every_operation_for_every_caller(deployment, world):
    params, credentials = world
    wrong = []
    for operation, path in sorted({(op, path) for _, op, _, path in OPERATIONS}):
        rule = access.RULES[operation]
        path_params = _path_params(path, params)
        for role in ROLES:
            want = expected(rule, role)
            got = _decision(deployment, credentials[role], rule, path_params)
            if got != want:
                wrong.append(f"{operation} as {role}: expected {want}, got {got}")
    assert wrong == []


def test_every_read_over_http_matches_the_matrix(deployment, world):
    params, credentials = world
    wrong = []
    checked = 0
    reads = {(path, operation) for _, operation, method, path in OPERATIONS
             if method == "GET" and operation not in NOT_YET_SERVED}
    for path, operation in sorted(reads):
        url = deployment.base_url + "/api/v1" + path.format(**_path_params(path, params))
        for role in ROLES:
            want = expected(access.RULES[operation], role)
            status = deployment.http.request("GET", url, headers=credentials[role], retries=False).status
            checked += 1
            if (want == ALLOW and status in (401, 403, 500)) or (want != ALLOW and status != want):
                wrong.append(f"GET {path} ({operation}) as {role}: expected {want}, got {status}")
    assert wrong == []
    assert checked == len(reads) * len(ROLES) > 600
