"""Kwarantine anti-affinity groups (API 0.58) end to end, as raw JSON over HTTP (the 0.53.2 SDK has no Kwarantine):
groups under a project, membership of instances and Komputes checked against the group's policy, deletion rules,
what another project's members and users get, and anti-affinity holding when instances are created in a group at
once."""

from __future__ import annotations

import collections
import json
import typing
from dataclasses import dataclass

import gevent
import kowabunga as k
import pytest

from tests.deployment import MASTER_KEY, NO_BODY, Account
from tests.test_races import RACE_TIMEOUT, Barrier, worker_client

GIB = 1024**3


@dataclass
class Reply:
    status: int
    body: typing.Any


def call(deployment, method: str, path: str, body: typing.Any = None, *, token: str | None = None,
         api_key: str | None = MASTER_KEY) -> Reply:
    """One request to /api/v1 with a raw JSON body, as the master key (superAdmin) or a user's JWT."""
    return Reply(*deployment.api_request(method, path, NO_BODY if body is None else body, token=token,
                                         api_key=api_key))


def ok(reply: Reply, status: int = 200) -> typing.Any:
    assert reply.status == status, f"expected {status}, got {reply.status}: {reply.body}"
    return reply.body


def refused(reply: Reply, status: int) -> str:
    """The reason of a documented error reply of *status*."""
    assert reply.status == status, f"expected {status}, got {reply.status}: {reply.body}"
    assert set(reply.body) == {"status", "error", "reason"} and reply.body["status"] == status, reply.body
    return reply.body["reason"]


def new_project(platform, name: str, teams: typing.Sequence[str] = ()) -> k.Project:
    return k.ProjectApi(platform.api).create_project(k.Project(
        name=name, domain=f"{name}.acme.internal", teams=list(teams), regions=[platform.regions["eu-west"].id]),
        subnet_size=26)


def new_kompute(platform, project: k.Project, name: str, zone: str) -> k.Kompute:
    return k.ProjectApi(platform.api).create_project_zone_kompute(project.id, platform.zones[zone].id, k.Kompute(
        name=name, vcpus=1, memory=GIB, disk=10 * GIB))


def new_group(deployment, project_id: str, name: str, policy: str | None = None, **kwargs) -> dict:
    body = {"name": name} if policy is None else {"name": name, "policy": policy}
    return ok(call(deployment, "POST", f"/project/{project_id}/kwarantine", body, **kwargs), 201)


def stored(platform, collection: str, **query) -> list[dict]:
    return list(platform.deployment.kahuna.db.db[collection].find(query))


def instance_of(platform, kompute: k.Kompute) -> str:
    return stored(platform, "kompute", name=kompute.name)[0]["instance_id"]


# -- groups ------------------------------------------------------------------------------------------------


def test_groups_are_created_read_updated_in_part_and_deleted(platform):
    d = platform.deployment
    shop, other = new_project(platform, "shop"), new_project(platform, "other")
    db = new_group(d, shop.id, "db")
    assert db == {"id": db["id"], "name": "db", "description": "", "policy": "host", "instances": [],
                  "komputes": []}
    web = new_group(d, shop.id, "web", "zone")
    assert web["policy"] == "zone"
    assert "already has a Kwarantine named db" in refused(call(d, "POST", f"/project/{shop.id}/kwarantine",
                                                              {"name": "db", "policy": "zone"}), 409)
    assert new_group(d, other.id, "db")["name"] == "db"  # names are unique per project
    refused(call(d, "POST", f"/project/{shop.id}/kwarantine", {"name": "x", "policy": "rack"}), 422)
    refused(call(d, "POST", f"/project/{shop.id}/kwarantine", {"policy": "host"}), 422)
    refused(call(d, "POST", f"/project/{shop.id}/kwarantine", {"name": 5}), 400)
    refused(call(d, "POST", f"/project/{'0' * 24}/kwarantine", {"name": "x"}), 404)

    assert ok(call(d, "GET", f"/project/{shop.id}/kwarantines")) == [db["id"], web["id"]]
    assert len(ok(call(d, "GET", "/kwarantine"))) == 3
    assert ok(call(d, "GET", f"/kwarantine/{db['id']}")) == db

    path = f"/kwarantine/{db['id']}"
    assert ok(call(d, "PUT", path, {"description": "primaries"})) == {**db, "description": "primaries"}
    assert ok(call(d, "PUT", path, {})) == {**db, "description": "primaries"}
    # What a client read back is accepted: read-only keys are dropped, not applied.
    assert ok(call(d, "PUT", path, {"id": web["id"], "instances": ["x"], "komputes": ["y"], "policy": "zone"})) == \
        {**db, "description": "primaries", "policy": "zone"}
    assert "named web" in refused(call(d, "PUT", path, {"name": "web"}), 422)  # PUT documents no 409
    refused(call(d, "PUT", path, {"name": None}), 400)
    refused(call(d, "PUT", path, {"policy": "rack"}), 422)
    refused(call(d, "PUT", f"/kwarantine/{'0' * 24}", {"description": "x"}), 404)

    # A project holding groups is not deleted; once they are gone it is.
    projects = k.ProjectApi(platform.api)
    with pytest.raises(k.ApiException) as kept:
        projects.delete_project(other.id)
    assert kept.value.status == 409 and "kwarantine" in json.loads(kept.value.body)["reason"]
    (other_db,) = ok(call(d, "GET", f"/project/{other.id}/kwarantines"))
    ok(call(d, "DELETE", f"/kwarantine/{other_db}"))
    projects.delete_project(other.id)

    ok(call(d, "DELETE", path))
    refused(call(d, "GET", path), 404)
    refused(call(d, "DELETE", path), 404)
    refused(call(d, "GET", "/kwarantine/not-an-id"), 404)
    assert ok(call(d, "GET", f"/project/{shop.id}/kwarantines")) == [web["id"]]


# -- membership --------------------------------------------------------------------------------------------


def test_members_join_and_leave_as_their_groups_policy_allows(platform):
    d = platform.deployment
    shop = new_project(platform, "shop")
    web_1, web_2, web_3 = (new_kompute(platform, shop, name, zone)
                           for name, zone in (("web-1", "a"), ("web-2", "b"), ("web-3", "a")))
    hosts = new_group(d, shop.id, "hosts")
    group = f"/kwarantine/{hosts['id']}"

    for _ in range(2):  # idempotent
        assert ok(call(d, "PUT", f"{group}/kompute/{web_1.id}"))["komputes"] == [web_1.id]
    assert ok(call(d, "PUT", f"{group}/kompute/{web_2.id}"))["komputes"] == [web_1.id, web_2.id]
    # web-3 is on web-1's node (zone a has one Kaktus): the reason names the member in the way, never the node
    # (only superAdmins may read Kaktus nodes).
    reason = refused(call(d, "PUT", f"{group}/kompute/{web_3.id}"), 422)
    assert "web-3" in reason and "web-1" in reason and "on the same Kaktus node" in reason, reason
    assert "k-a" not in reason and platform.kaktuses["a"].id not in reason, reason
    # The same group seen from a member: an instance's kwarantines are its current groups.
    assert ok(call(d, "GET", f"/instance/{instance_of(platform, web_1)}"))["kwarantines"] == [hosts["id"]]
    assert ok(call(d, "GET", f"/kompute/{web_1.id}"))["kwarantines"] == [hosts["id"]]

    # Through the instance routes, a Kompute's instance is the same member, shown as the Kompute.
    zones = new_group(d, shop.id, "zones", "zone")
    by_zone = f"/kwarantine/{zones['id']}"
    assert ok(call(d, "PUT", f"{by_zone}/instance/{instance_of(platform, web_2)}"))["komputes"] == [web_2.id]
    assert ok(call(d, "PUT", f"{by_zone}/kompute/{web_1.id}"))["komputes"] == [web_1.id, web_2.id]
    reason = refused(call(d, "PUT", f"{by_zone}/kompute/{web_3.id}"), 422)
    assert "web-1" in reason and "in the same zone (a)" in reason, reason
    assert sorted(stored(platform, "instance", name="web-1")[0]["kwarantine_ids"]) == sorted([hosts["id"],
                                                                                            zones["id"]])

    assert "web-1, web-2" in refused(call(d, "DELETE", group), 409)
    assert call(d, "DELETE", f"{group}/kompute/{web_1.id}") == Reply(200, None)
    assert call(d, "DELETE", f"{group}/kompute/{web_1.id}") == Reply(200, None)  # no longer a member: no-op
    assert call(d, "DELETE", f"{group}/instance/{instance_of(platform, web_3)}") == Reply(200, None)
    assert ok(call(d, "GET", group))["komputes"] == [web_2.id]
    # Now web-3 may join: web-1 left.
    assert ok(call(d, "PUT", f"{group}/kompute/{web_3.id}"))["komputes"] == [web_2.id, web_3.id]

    # A deleted member has left its groups: nothing to clean up, and the group can go.
    komputes = k.KomputeApi(platform.api)
    for kompute in (web_2, web_3):
        komputes.delete_kompute(kompute.id)
    assert ok(call(d, "GET", group))["komputes"] == []
    assert ok(call(d, "GET", by_zone))["komputes"] == [web_1.id]
    ok(call(d, "DELETE", group))
    refused(call(d, "PUT", f"{group}/kompute/{web_1.id}"), 404)
    refused(call(d, "DELETE", f"{group}/kompute/{web_1.id}"), 404)
    refused(call(d, "PUT", f"{by_zone}/kompute/{web_2.id}"), 404)  # deleted
    refused(call(d, "PUT", f"{by_zone}/instance/{'0' * 24}"), 404)


def test_a_plain_instance_is_a_member_like_a_kompute(platform):
    d = platform.deployment
    shop = new_project(platform, "shop")
    projects = k.ProjectApi(platform.api)
    disk = projects.create_project_region_volume(shop.id, platform.regions["eu-west"].id,
                                                 k.Volume(name="db-os", type="os", size=10 * GIB))
    nic = k.SubnetApi(platform.api).create_adapter(shop.private_subnets[0].value, k.Adapter(name="db-nic"),
                                                   assign_ip=True)
    db = projects.create_project_zone_instance(shop.id, platform.zones["b"].id, k.Instance(
        name="db", vcpus=1, memory=GIB, volumes=[disk.id], adapters=[nic.id]))
    web = new_kompute(platform, shop, "web", "b")
    group = new_group(d, shop.id, "spread")
    path = f"/kwarantine/{group['id']}"

    assert ok(call(d, "PUT", f"{path}/instance/{db.id}")) == {**group, "instances": [db.id]}
    reason = refused(call(d, "PUT", f"{path}/kompute/{web.id}"), 422)
    assert "instance db" in reason and "on the same Kaktus node" in reason and "k-b" not in reason, reason
    k.InstanceApi(platform.api).delete_instance(db.id)
    assert ok(call(d, "PUT", f"{path}/kompute/{web.id}")) == {**group, "komputes": [web.id]}


# -- other projects ---------------------------------------------------------------------------------------


def jwt_of(deployment, account: Account) -> str:
    return k.UserApi(deployment.anonymous()).login(
        k.UserCredentials(email=account.email, password=account.password)).jwt


def test_another_projects_members_and_users_are_kept_out(platform):
    d = platform.deployment
    alice, bob = d.create_account("alice"), d.create_account("bob")
    teams = k.TeamApi(platform.api)
    team_a = teams.create_team(k.Team(name="team-a", users=[alice.id]))
    team_b = teams.create_team(k.Team(name="team-b", users=[bob.id]))
    atlas, borealis = new_project(platform, "atlas", [team_a.id]), new_project(platform, "borealis", [team_b.id])
    theirs = new_kompute(platform, borealis, "secret-db", "b")
    ours = new_kompute(platform, atlas, "web", "a")
    as_alice, as_bob = jwt_of(d, alice), jwt_of(d, bob)

    group = new_group(d, atlas.id, "spread", token=as_alice)
    path = f"/kwarantine/{group['id']}"
    assert ok(call(d, "GET", f"/project/{atlas.id}/kwarantines", token=as_alice)) == [group["id"]]
    # Another project's member is not found, whoever asks: nothing about it is told.
    for token in (as_alice, None):
        for route in (f"{path}/kompute/{theirs.id}", f"{path}/instance/{instance_of(platform, theirs)}"):
            for method in ("PUT", "DELETE"):
                reason = refused(call(d, method, route, token=token), 404)
                assert "secret" not in reason, reason
    assert not stored(platform, "instance", name="secret-db")[0].get("kwarantine_ids")

    # A user of another project cannot read, change, fill or list the group.
    for method, route, body in (("GET", path, None), ("PUT", path, {"description": "mine"}), ("DELETE", path, None),
                                ("PUT", f"{path}/kompute/{theirs.id}", None),
                                ("PUT", f"{path}/kompute/{ours.id}", None),
                                ("DELETE", f"{path}/kompute/{ours.id}", None),
                                ("PUT", f"{path}/instance/{instance_of(platform, ours)}", None),
                                ("POST", f"/project/{atlas.id}/kwarantine", {"name": "intruder"}),
                                ("GET", f"/project/{atlas.id}/kwarantines", None),
                                ("GET", "/kwarantine", None)):
        refused(call(d, method, route, body, token=as_bob), 403)
    assert ok(call(d, "PUT", f"{path}/kompute/{ours.id}", token=as_alice))["komputes"] == [ours.id]
    assert ok(call(d, "GET", path, token=as_alice)) == {**group, "komputes": [ours.id]}
    refused(call(d, "GET", "/kwarantine", token=as_alice), 403)  # the global list is superAdmins'
    refused(call(d, "GET", path, api_key=None), 401)


# -- anti-affinity at creation, at once --------------------------------------------------------------------


def at_once(deployment, requests: typing.Sequence[tuple[str, str, typing.Any]]) -> list[Reply]:
    """Each (method, path, body) as the master key, on its own connection, all released together (greenlets and a
    barrier, as tests/test_races.py races)."""
    pools = [worker_client(deployment).rest_client.pool_manager for _ in requests]
    barrier = Barrier(len(requests))

    def send(n: int) -> Reply:
        method, path, body = requests[n]
        barrier.wait()
        response = pools[n].request(method, f"{deployment.base_url}/api/v1{path}", retries=False, headers={
            "Content-Type": "application/json", "X-API-Key": MASTER_KEY},
            body=None if body is None else json.dumps(body))
        return Reply(response.status, json.loads(response.data) if response.data else None)

    greenlets = [gevent.spawn(send, n) for n in range(len(requests))]
    gevent.joinall(greenlets, timeout=RACE_TIMEOUT, raise_error=True)
    assert all(g.ready() for g in greenlets), f"requests unanswered after {RACE_TIMEOUT}s"
    return [g.value for g in greenlets]


def test_members_on_one_node_added_at_once_do_not_both_join(platform):
    d = platform.deployment
    shop = new_project(platform, "shop")
    neighbours = [new_kompute(platform, shop, f"web-{n}", "a") for n in range(4)]  # zone a: one Kaktus
    group = new_group(d, shop.id, "spread")

    replies = at_once(d, [("PUT", f"/kwarantine/{group['id']}/kompute/{kompute.id}", None) for kompute in neighbours])

    assert collections.Counter(r.status for r in replies) == {200: 1, 422: 3}, [(r.status, r.body) for r in replies]
    (joined,) = [kompute.id for kompute, reply in zip(neighbours, replies, strict=True) if reply.status == 200]
    assert ok(call(d, "GET", f"/kwarantine/{group['id']}"))["komputes"] == [joined]
    assert len(stored(platform, "instance", kwarantine_ids=group["id"])) == 1


@pytest.mark.parametrize(("policy", "spread"), [("host", "kaktus_id"), ("zone", "zone_id")])
def test_creations_in_a_group_at_once_never_share_what_its_policy_keeps_apart(platform, policy, spread):
    """eu-west has two Kaktus nodes, one in each of its two zones: three creations at once in one group get two
    distinct nodes (zones), and the third a 507 saying why."""
    d = platform.deployment
    shop = new_project(platform, "shop")
    group = new_group(d, shop.id, "spread", policy)

    path = f"/project/{shop.id}/region/{platform.regions['eu-west'].id}/kompute"
    replies = at_once(d, [("POST", path, {"name": f"node-{n}", "vcpus": 1, "memory": GIB, "disk": 10 * GIB,
                                          "kwarantines": [group["id"]]}) for n in range(3)])

    counts = collections.Counter(reply.status for reply in replies)
    assert counts == {201: 2, 507: 1}, [(r.status, r.body) for r in replies]
    (full,) = [r.body for r in replies if r.status == 507]
    assert set(full) == {"status", "error", "reason"} and full["reason"], full
    made = [r.body for r in replies if r.status == 201]
    assert all(m["kwarantines"] == [group["id"]] for m in made), made
    members = stored(platform, "instance", kwarantine_ids=group["id"])
    assert sorted(m["name"] for m in members) == sorted(m["name"] for m in made)
    assert len({m[spread] for m in members}) == 2
    assert sorted(ok(call(d, "GET", f"/kwarantine/{group['id']}"))["komputes"]) == sorted(m["id"] for m in made)
    # Nothing is left of the refused one.
    assert len(stored(platform, "instance")) == 2
