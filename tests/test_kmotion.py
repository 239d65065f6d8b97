"""kMotion (API 0.58) end to end, in raw JSON over HTTP (no 0.58 SDK here): plans elected per destination and
honouring maintenance and Kwarantine, single use, expiring and tied to their instance; cold moves between two
simulated Kaktus agents with the exact RPCs each receives, rolled back when the target fails; live moves refused
with the released agents' methods and done with the simulator's proposed live method."""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET

import gevent
import gevent.event
import kowabunga as k
import pytest
from bson import ObjectId

from kahuna import rpc
from kahuna.services.recovery import Recovery
from tests.deployment import NO_BODY

GIB = 1024**3
#: The Kaktus methods a move uses (other traffic, e.g. pool statistics, is not the move's).
MOVE_METHODS = {"InstanceIsRunning", "GetInstance", "InstanceOperation", "DeleteInstance", "CreateInstance",
                "NodeCapabilities", "GetInstanceState", "PrepareMigration", "MigrateInstance"}
SOFT, HARD, AUTO, START = (rpc.InstanceAction.SOFT_SHUTDOWN, rpc.InstanceAction.HARD_SHUTDOWN,
                           rpc.InstanceAction.AUTO_START, rpc.InstanceAction.START)


def api(platform, method, path, body=None):
    """(status, decoded JSON body or None) of a raw request as superAdmin."""
    return platform.deployment.api_request(method, path, NO_BODY if body is None else body)


def ok(platform, method, path, body=None, status=200):
    got, answer = api(platform, method, path, body)
    assert got == status, f"{method} {path}: {got} {answer}"
    return answer


def refused(platform, status, method, path, body=None):
    """The documented error body of a request that must fail with *status*."""
    got, answer = api(platform, method, path, body)
    assert got == status, f"{method} {path}: expected {status}, got {got} {answer}"
    assert set(answer) == {"status", "error", "reason"} and answer["status"] == status, answer
    return answer


def add_kaktus(platform, name, zone, **agent_options):
    """One more Kaktus node of region eu-west, on the region's Ceph (its agent sees kaktus-a's volumes and serves
    the region's pool): the topology has one node per zone."""
    agent = platform.deployment.simulated_agent(f"kaktus-{name}", "Kaktus", **agent_options)
    for shared in ("volumes", "filesystems", "nfs_exports"):
        setattr(agent, shared, getattr(platform.agents["kaktus-a"], shared))
    platform.agents[f"kaktus-{name}"] = agent
    node = k.ZoneApi(platform.api).create_kaktus(platform.zones[zone].id, k.Kaktus(
        name=f"k-{name}", agents=[agent.id], cpu_cost=k.Cost(price=500, currency="EUR"),
        memory_cost=k.Cost(price=300, currency="EUR")))
    platform.kaktuses[name] = node
    pools = k.PoolApi(platform.api)
    pool = pools.read_storage_pool(platform.pools["eu-west"].id)
    pool.agents = [*pool.agents, agent.id]
    pools.update_storage_pool(pool.id, pool)
    return node


@pytest.fixture
def project(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], root_password="S3cret-root-pw",
        regions=[platform.regions["eu-west"].id]), subnet_size=26)


def kompute(platform, project, name, zone="a", **fields):
    """A Kompute made with a raw 0.58 body (``kmotion_enabled``, ``kwarantines``...)."""
    return ok(platform, "POST", f"/project/{project.id}/zone/{platform.zones[zone].id}/kompute",
              {"name": name, "vcpus": 2, "memory": 4 * GIB, "disk": 20 * GIB, **fields}, status=201)


def instance_of(platform, made):
    return platform.deployment.kahuna.db.instances.get(
        platform.deployment.kahuna.db.komputes.get(made["id"])["instance_id"])


def plan(platform, made, status=201, **request):
    path = f"/kompute/{made['id']}/kmotion/plan"
    return ok(platform, "POST", path, request, status=status) if status == 201 \
        else refused(platform, status, "POST", path, request)


def commit(platform, made, plan_id, status=200):
    path = f"/kompute/{made['id']}/kmotion/commit"
    return ok(platform, "PATCH", path, {"plan": plan_id}) if status == 200 \
        else refused(platform, status, "PATCH", path, {"plan": plan_id})


def moves(agent):
    """What *agent* was asked for a move: (method, action) in order."""
    return [(name, params.get("Action")) if name == "InstanceOperation" else name
            for name, params in agent.calls if name in MOVE_METHODS]


def test_a_cold_move_redefines_the_domain_on_the_target_with_the_released_methods_only(platform, project):
    made = kompute(platform, project, "web-1")
    source = platform.agents["kaktus-a"]
    assert source.instances["web-1"]["State"] == "Running"
    xml = source.instances["web-1"]["XML"]
    add_kaktus(platform, "a2", "a")
    target = platform.agents["kaktus-a2"]
    # The default is a live move, which no released agent can make.
    body = plan(platform, made, 422, destination="zone")
    assert "released Kaktus agents do cold moves only: plan with live=false" in body["reason"]
    # Within the zone: the other node of zone a.
    proposed = plan(platform, made, destination="zone", live=False)
    assert proposed == {"id": proposed["id"], "instance": made["id"], "source": platform.kaktuses["a"].id,
                        "target": platform.kaktuses["a2"].id, "live": False}
    source.calls.clear()
    target.calls.clear()
    assert commit(platform, made, proposed["id"]) is None
    # The source: is it running, its definition, a graceful shutdown obeyed at once, a power-off (a no-op: it is
    # off) and a last check that it is off, undefined.
    assert moves(source) == ["InstanceIsRunning", "GetInstance", ("InstanceOperation", SOFT), "InstanceIsRunning",
                             ("InstanceOperation", HARD), "InstanceIsRunning", "DeleteInstance"]
    assert source.calls_of("GetInstance") == [{"Name": "web-1", "Migratable": True}]
    # The target: its emulator, the same domain defined, then started with autostart (AUTO_START starts it: a
    # START after it would fail, "already running").
    assert moves(target) == ["NodeCapabilities", "CreateInstance", "InstanceIsRunning", ("InstanceOperation", AUTO)]
    assert "web-1" not in source.instances
    domain = target.instances["web-1"]
    assert domain["State"] == "Running" and domain["Autostart"]
    assert "rbd-ssd/web-1-os" in domain["XML"] and "rbd-ssd/web-1-cloudinit" in domain["XML"]
    # The same definition (the simulated nodes run the same emulator).
    assert ET.tostring(ET.fromstring(domain["XML"])) == ET.tostring(ET.fromstring(xml))
    # Kahuna says where it is now, and the Kompute works there.
    moved = instance_of(platform, made)
    assert (moved["kaktus_id"], moved["zone_id"], moved["state"]) == (platform.kaktuses["a2"].id,
                                                                      platform.zones["a"].id, "ready")
    assert "kmotion" not in moved
    assert str(moved["_id"]) in k.KaktusApi(platform.api).list_kaktus_instances(platform.kaktuses["a2"].id)
    assert str(moved["_id"]) not in k.KaktusApi(platform.api).list_kaktus_instances(platform.kaktuses["a"].id)
    k.KomputeApi(platform.api).stop_kompute(made["id"])
    assert target.instances["web-1"]["State"] == "Shutoff"
    # A plan is used once.
    body = commit(platform, made, proposed["id"], 404)
    assert "does not exist or has expired" in body["reason"]
    # To a node of another zone of the region (zone b shares the pool): the instance changes zone; a stopped
    # one is not started again.
    proposed = plan(platform, made, destination="manual", kaktus=platform.kaktuses["b"].id, live=False)
    commit(platform, made, proposed["id"])
    moved = instance_of(platform, made)
    assert (moved["kaktus_id"], moved["zone_id"]) == (platform.kaktuses["b"].id, platform.zones["b"].id)
    assert not {("InstanceOperation", START), ("InstanceOperation", AUTO)} & set(moves(platform.agents["kaktus-b"]))
    assert platform.agents["kaktus-b"].instances["web-1"]["State"] == "Shutoff" and "web-1" not in target.instances
    # And it is deleted from where it is.
    k.KomputeApi(platform.api).delete_kompute(made["id"])
    assert not any("web-1" in agent.instances for agent in platform.agents.values())


def test_a_guest_that_ignores_its_shutdown_is_powered_off_after_the_grace_period(platform, project, monkeypatch):
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    monkeypatch.setattr(platform.deployment.kahuna.services.kmotion, "shutdown_grace_seconds", 0.2)
    source = platform.agents["kaktus-a"]
    source.behaviour.ignore_shutdown.add("web-1")
    proposed = plan(platform, made, destination="manual", kaktus=platform.kaktuses["a2"].id, live=False)
    source.calls.clear()
    commit(platform, made, proposed["id"])
    sent = moves(source)
    assert sent[:3] == ["InstanceIsRunning", "GetInstance", ("InstanceOperation", SOFT)]
    assert sent[-4:] == [("InstanceOperation", HARD), ("InstanceOperation", HARD), "InstanceIsRunning",
                         "DeleteInstance"]
    assert set(sent[3:-4]) == {"InstanceIsRunning"}
    assert platform.agents["kaktus-a2"].instances["web-1"]["State"] == "Running"


def test_a_failure_on_the_target_puts_the_instance_back_on_its_source_running(platform, project):
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    source, target = platform.agents["kaktus-a"], platform.agents["kaktus-a2"]
    target.behaviour.failures["CreateInstance"] = "virError(Code=9, Message='operation failed: no more room')"
    proposed = plan(platform, made, destination="zone", live=False)
    source.calls.clear()
    body = commit(platform, made, proposed["id"], 422)
    assert "no more room" in body["reason"] and "back on k-a" in body["reason"]
    # Stopped and undefined on the source, then (each step asking first) defined and started there again;
    # nothing left on the target.
    assert moves(source)[-5:] == ["DeleteInstance", "GetInstanceState", "CreateInstance", "InstanceIsRunning",
                                  ("InstanceOperation", AUTO)]
    assert source.instances["web-1"]["State"] == "Running" and source.instances["web-1"]["Autostart"]
    assert "web-1" not in target.instances
    back = instance_of(platform, made)
    assert (back["kaktus_id"], back["state"]) == (platform.kaktuses["a"].id, "ready") and "kmotion" not in back
    assert k.KomputeApi(platform.api).read_kompute_state(made["id"]).state == "Running"
    # The plan was consumed; a new one works once the target is well.
    commit(platform, made, proposed["id"], 404)
    target.behaviour.failures.clear()
    commit(platform, made, plan(platform, made, destination="zone", live=False)["id"])
    assert target.instances["web-1"]["State"] == "Running" and "web-1" not in source.instances


def test_a_live_move_needs_both_agents_to_serve_the_proposed_method(platform, project):
    # Zone b: k-b in maintenance, two nodes whose (simulated) agents serve the proposed live method.
    ok(platform, "PATCH", f"/kaktus/{platform.kaktuses['b'].id}/maintenance/enable")
    add_kaktus(platform, "live-1", "b", live_migration=True)
    add_kaktus(platform, "live-2", "b", live_migration=True)
    released = platform.deployment.kahuna.db.agents.get(platform.agents["kaktus-a"].id)["capabilities"]["methods"]
    assert "MigrateInstance" not in released and "PrepareMigration" not in released
    made = kompute(platform, project, "db-1", zone="b")
    assert instance_of(platform, made)["kaktus_id"] == platform.kaktuses["live-1"].id
    source, target = platform.agents["kaktus-live-1"], platform.agents["kaktus-live-2"]
    # To a node of the released agents: refused, naming it.
    body = plan(platform, made, 422, destination="manual", kaktus=platform.kaktuses["a"].id, live=True)
    assert "released Kaktus agents do cold moves only" in body["reason"] and "k-a" in body["reason"]
    proposed = plan(platform, made, destination="zone")
    assert (proposed["target"], proposed["live"]) == (platform.kaktuses["live-2"].id, True)
    source.calls.clear()
    target.calls.clear()
    commit(platform, made, proposed["id"])
    # Never stopped: the target prepared, the source migrated to the URI it answered.
    assert moves(source) == ["InstanceIsRunning", "GetInstance", "MigrateInstance"]
    assert moves(target) == ["NodeCapabilities", "PrepareMigration", ("InstanceOperation", AUTO)]
    migrate = source.calls_of("MigrateInstance")[0]
    assert migrate["DestinationURI"] == "qemu+tls://kaktus-live-2.simulated/system" and migrate["Live"] is True
    assert "db-1" not in source.instances and target.instances["db-1"]["State"] == "Running"
    assert instance_of(platform, made)["kaktus_id"] == platform.kaktuses["live-2"].id


def test_plans_are_single_use_expire_and_belong_to_their_instance(platform, project):
    web1, web2 = kompute(platform, project, "web-1"), kompute(platform, project, "web-2", zone="b")
    db = platform.deployment.kahuna.db
    proposed = plan(platform, web1, destination="region", live=False)
    assert proposed["target"] == platform.kaktuses["b"].id
    # Another instance's plan: refused, and still usable by its own instance.
    body = commit(platform, web2, proposed["id"], 422)
    assert "made for another instance" in body["reason"]
    for unknown in ("0" * 24, "not-an-id"):
        commit(platform, web1, unknown, 404)
    refused(platform, 422, "PATCH", f"/kompute/{web1['id']}/kmotion/commit", {})
    refused(platform, 422, "PATCH", f"/kompute/{web1['id']}/kmotion/commit", {"plan": ""})
    # An expired plan is gone (its time passed: written as if it had).
    db.kmotion_plans.update(proposed["id"], {"expires_at": datetime.datetime.now(datetime.UTC)
                                             - datetime.timedelta(seconds=1)})
    assert "has expired" in commit(platform, web1, proposed["id"], 404)["reason"]
    assert db.kmotion_plans.find_one({"_id": ObjectId(proposed["id"])}) is None
    # The clean-up prunes the expired ones it finds.
    stale = plan(platform, web1, destination="region", live=False)
    db.kmotion_plans.update(stale["id"], {"expires_at": datetime.datetime.now(datetime.UTC)})
    assert platform.deployment.kahuna.services.kmotion.prune() == 1
    # Plans of instances and Komputes go through their own routes; bad requests are refused.
    instance_id = str(instance_of(platform, web1)["_id"])
    assert "belongs to a Kompute" in refused(platform, 422, "POST", f"/instance/{instance_id}/kmotion/plan",
                                             {"live": False})["reason"]
    refused(platform, 404, "POST", f"/kompute/{'0' * 24}/kmotion/plan", {"live": False})
    refused(platform, 400, "POST", f"/kompute/{web1['id']}/kmotion/plan", {"live": "no"})
    refused(platform, 422, "POST", f"/kompute/{web1['id']}/kmotion/plan", {"destination": "anywhere"})
    assert "kaktus is required" in plan(platform, web1, 422, destination="manual", live=False)["reason"]
    assert "only used with destination manual" in plan(platform, web1, 422, kaktus=platform.kaktuses["b"].id,
                                                       live=False)["reason"]
    assert "hosts it already" in plan(platform, web1, 422, destination="manual", kaktus=platform.kaktuses["a"].id,
                                      live=False)["reason"]
    assert "not in the region" in plan(platform, web1, 422, destination="manual", kaktus=platform.kaktuses["c"].id,
                                       live=False)["reason"]
    # The zone has no other node: 507 with the reason.
    assert "no Kaktus of the zone" in plan(platform, web1, 507, destination="zone", live=False)["reason"]


def test_one_plan_committed_by_many_clients_at_once_moves_the_instance_once(platform, project):
    made = kompute(platform, project, "web-1")
    proposed = plan(platform, made, destination="region", live=False)
    source, target = platform.agents["kaktus-a"], platform.agents["kaktus-b"]
    start = gevent.event.Event()

    def commit_when_started():
        start.wait()
        return api(platform, "PATCH", f"/kompute/{made['id']}/kmotion/commit", {"plan": proposed["id"]})

    clients = [gevent.spawn(commit_when_started) for _ in range(6)]
    gevent.sleep(0)  # every client waits at the barrier
    start.set()
    statuses = sorted(client.get()[0] for client in clients)
    # One commit used the plan up; the others find it gone.
    assert statuses == [200] + [404] * 5
    assert len(target.calls_of("CreateInstance")) == 1
    assert source.calls_of("DeleteInstance") == [{"Name": "web-1"}]
    assert "web-1" not in source.instances and target.instances["web-1"]["State"] == "Running"
    assert instance_of(platform, made)["kaktus_id"] == platform.kaktuses["b"].id


def test_an_instance_with_kmotion_disabled_or_busy_is_not_planned(platform, project):
    pinned = kompute(platform, project, "pinned-1", kmotion_enabled=False)
    body = plan(platform, pinned, 422, destination="region", live=False)
    assert "kMotion is disabled" in body["reason"]
    made = kompute(platform, project, "web-1")
    platform.deployment.kahuna.db.instances.update(instance_of(platform, made)["_id"], {"state": "updating"})
    assert "being changed" in plan(platform, made, 409, destination="region", live=False)["reason"]


def test_a_plain_instance_moves_through_the_instance_routes(platform, project):
    projects = k.ProjectApi(platform.api)
    region = platform.regions["eu-west"].id
    os_volume = projects.create_project_region_volume(project.id, region, k.Volume(name="db-os", type="os",
                                                                                   size=10 * GIB))
    adapter = k.SubnetApi(platform.api).create_adapter(project.private_subnets[0].value, k.Adapter(name="db-nic"),
                                                         assign_ip=True)
    instance = projects.create_project_zone_instance(project.id, platform.zones["a"].id, k.Instance(
        name="db", vcpus=1, memory=2 * GIB, volumes=[os_volume.id], adapters=[adapter.id]))
    proposed = ok(platform, "POST", f"/instance/{instance.id}/kmotion/plan", {"live": False}, status=201)
    assert (proposed["instance"], proposed["target"]) == (instance.id, platform.kaktuses["b"].id)
    ok(platform, "PATCH", f"/instance/{instance.id}/kmotion/commit", {"plan": proposed["id"]})
    assert platform.agents["kaktus-b"].instances["db"]["State"] == "Running"
    assert "db" not in platform.agents["kaktus-a"].instances
    assert k.InstanceApi(platform.api).read_instance_state(instance.id).state == "Running"


def test_maintenance_and_kwarantine_are_honoured_when_electing(platform, project):
    group = ok(platform, "POST", f"/project/{project.id}/kwarantine", {"name": "web", "policy": "host"}, status=201)
    web1 = kompute(platform, project, "web-1", kwarantines=[group["id"]])
    web2 = kompute(platform, project, "web-2", zone="b", kwarantines=[group["id"]])
    assert instance_of(platform, web2)["kaktus_id"] == platform.kaktuses["b"].id
    # The only other node of the region holds a member of web-1's group.
    body = plan(platform, web1, 507, destination="auto", live=False)
    assert "k-b would break one of its Kwarantine groups" in body["reason"]
    body = plan(platform, web1, 422, destination="manual", kaktus=platform.kaktuses["b"].id, live=False)
    assert "Kwarantine" in body["reason"]
    # A second node in zone a, in maintenance: neither elected nor accepted by name.
    add_kaktus(platform, "a2", "a")
    a2 = platform.kaktuses["a2"].id
    ok(platform, "PATCH", f"/kaktus/{a2}/maintenance/enable")
    assert "k-a2 is in maintenance" in plan(platform, web1, 507, destination="region", live=False)["reason"]
    assert "in maintenance" in plan(platform, web1, 422, destination="manual", kaktus=a2, live=False)["reason"]
    # Out of maintenance, it is the one.
    ok(platform, "PATCH", f"/kaktus/{a2}/maintenance/disable")
    proposed = plan(platform, web1, destination="auto", live=False)
    assert proposed["target"] == a2
    # Maintenance entered after the plan: the commit checks again (and the plan is spent).
    ok(platform, "PATCH", f"/kaktus/{a2}/maintenance/enable")
    assert "in maintenance" in commit(platform, web1, proposed["id"], 422)["reason"]
    assert "web-1" in platform.agents["kaktus-a"].instances
    commit(platform, web1, proposed["id"], 404)


def test_a_rollback_the_agents_cannot_finish_is_left_to_crash_recovery(platform, project):
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    source, target = platform.agents["kaktus-a"], platform.agents["kaktus-a2"]
    proposed = plan(platform, made, destination="zone", live=False)
    # The target cannot define it, and the source cannot define it again either (for now).
    target.behaviour.failures["CreateInstance"] = "virError(Code=9, Message='operation failed')"
    source.behaviour.failures["CreateInstance"] = "virError(Code=38, Message='storage unreachable')"
    body = commit(platform, made, proposed["id"], 422)
    assert "could not finish" in body["reason"] and "crash recovery completes it" in body["reason"]
    stuck = instance_of(platform, made)
    assert stuck["state"] == "updating" and stuck["kmotion"]["stranded"] and stuck["kmotion"]["xml"]
    assert not any("web-1" in agent.instances for agent in (source, target))
    # Nothing else happens to it meanwhile, and neither node can be deleted: the move may end on either.
    assert "being changed" in plan(platform, made, 409, destination="zone", live=False)["reason"]
    for node in ("a", "a2"):
        assert "moving" in refused(platform, 409, "DELETE", f"/kaktus/{platform.kaktuses[node].id}")["reason"]
    # Once the source answers again, the periodic clean-up defines it there again, running as it was.
    recovery = Recovery(platform.deployment.kahuna.db, platform.deployment.kahuna.services)
    assert recovery.pending() == 1
    source.behaviour.failures.clear()
    report = recovery.clean_up()
    assert report.moves == {"rolled back": 1}
    back = instance_of(platform, made)
    assert (back["kaktus_id"], back["state"]) == (platform.kaktuses["a"].id, "ready") and "kmotion" not in back
    assert source.instances["web-1"]["State"] == "Running" and "web-1" not in target.instances
    assert recovery.pending() == 0
    # Resolving it again from what was read before (a stale record) does nothing: the move is read in the owner.
    calls = len(source.calls) + len(target.calls)
    assert platform.deployment.kahuna.services.kmotion.resolve(stuck) == "already resolved"
    assert len(source.calls) + len(target.calls) == calls


# -- what the released agents do, and what a move must survive -------------------------------------------------

#: What a Kaktus agent answers when its libvirt connection is down (it cannot say whether it has a domain).
LIBVIRT_DOWN = "virError(Code=38, Domain=7, Message='Cannot write data: Broken pipe')"
#: An error answered for a request that was carried out (Kahuna cannot tell it was).
LOST = "virError(Code=1, Domain=10, Message='internal error: connection reset while waiting for the reply')"


def services(platform):
    return platform.deployment.kahuna.services


def strand(platform, made, source, target, **move):
    """Write *made*'s instance as a crash left it in a move from Kaktus *source* to *target* (as the claim and
    the steps write it, marked stranded as the sweep does); the instance as it was before."""
    db = platform.deployment.kahuna.db
    instance = instance_of(platform, made)
    zone_of = {name: db.kaktuses.get(platform.kaktuses[name].id)["zone_id"] for name in (source, target)}
    db.instances.update(instance["_id"], {
        "kaktus_id": platform.kaktuses[target].id, "zone_id": zone_of[target], "state": "updating",
        "kmotion": {"plan_id": "", "source_kaktus_id": platform.kaktuses[source].id, "source_zone_id": zone_of[source],
                    "target_kaktus_id": platform.kaktuses[target].id, "target_zone_id": zone_of[target],
                    "live": False, "was_running": True, "xml": "", "step": "starting", "stranded": True, **move}})
    return instance


def test_recovery_waits_while_a_node_cannot_say_whether_it_has_the_domain(platform, project):
    """A node whose libvirt is away does not have "no such domain": recovery must not define the guest on the
    source while the target may run it (two guests on the same Ceph disks)."""
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    source, target = platform.agents["kaktus-a"], platform.agents["kaktus-a2"]
    xml = source.instances["web-1"]["XML"]
    commit(platform, made, plan(platform, made, destination="zone", live=False)["id"])
    strand(platform, made, "a", "a2", xml=xml)  # the process died before writing the move finished
    target.behaviour.failures["GetInstanceState"] = LIBVIRT_DOWN
    recovery = Recovery(platform.deployment.kahuna.db, platform.deployment.kahuna.services)
    report = recovery.clean_up()
    assert (report.waiting, report.moves) == (1, {})
    assert "web-1" not in source.instances and target.instances["web-1"]["State"] == "Running"
    # Once the target can tell, the move is finished where the guest runs.
    target.behaviour.failures.clear()
    assert recovery.clean_up().moves == {"finished": 1}
    moved = instance_of(platform, made)
    assert (moved["kaktus_id"], moved["state"]) == (platform.kaktuses["a2"].id, "ready") and "kmotion" not in moved
    assert "web-1" not in source.instances and target.instances["web-1"]["State"] == "Running"


def test_a_rollback_stops_at_its_first_failed_step_rather_than_run_the_guest_twice(platform, project):
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    source, target = platform.agents["kaktus-a"], platform.agents["kaktus-a2"]
    # The target boots the guest but its answer is lost; then it cannot power it off.
    target.behaviour.fail_after[f"InstanceOperation:{AUTO}"] = LOST
    target.behaviour.failures[f"InstanceOperation:{HARD}"] = LOST
    body = commit(platform, made, plan(platform, made, destination="zone", live=False)["id"], 422)
    assert "could not finish" in body["reason"] and "crash recovery completes it" in body["reason"], body
    # The source was left alone: the guest runs on the target only.
    assert target.instances["web-1"]["State"] == "Running" and "web-1" not in source.instances
    stuck = instance_of(platform, made)
    assert stuck["state"] == "updating" and stuck["kmotion"]["stranded"]
    # Recovery finds it defined (and running) on the target only, and finishes the move there.
    target.behaviour.failures.clear()
    target.behaviour.fail_after.clear()
    assert Recovery(platform.deployment.kahuna.db, platform.deployment.kahuna.services).clean_up().moves == {
        "finished": 1}
    assert instance_of(platform, made)["kaktus_id"] == platform.kaktuses["a2"].id
    assert target.instances["web-1"]["State"] == "Running" and "web-1" not in source.instances


@pytest.mark.parametrize("lost", ["DeleteInstance on the source", "CreateInstance on the target"])
def test_a_step_whose_answer_is_lost_is_taken_back_from_where_the_domain_is(platform, project, lost):
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    source, target = platform.agents["kaktus-a"], platform.agents["kaktus-a2"]
    method, agent = lost.split(" on the ")
    (source if agent == "source" else target).behaviour.fail_after[method] = LOST
    body = commit(platform, made, plan(platform, made, destination="zone", live=False)["id"], 422)
    assert "back on k-a" in body["reason"], body
    # Defined and running on the source again, nothing left on the target.
    assert source.instances["web-1"]["State"] == "Running" and source.instances["web-1"]["Autostart"]
    assert "web-1" not in target.instances
    back = instance_of(platform, made)
    assert (back["kaktus_id"], back["state"]) == (platform.kaktuses["a"].id, "ready") and "kmotion" not in back


def test_a_power_operation_during_a_move_waits_for_it_and_reaches_the_new_host(platform, project, monkeypatch):
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    source, target = platform.agents["kaktus-a"], platform.agents["kaktus-a2"]
    release = gevent.event.Event()
    target.behaviour.hold["CreateInstance"] = release
    committing = gevent.spawn(commit, platform, made, plan(platform, made, destination="zone", live=False)["id"])
    target.wait_for_call("CreateInstance")
    # A stop asked for while the target defines the domain: it has reached the instance service when the move
    # goes on.
    entered = gevent.event.Event()
    power = services(platform).instances.power

    def observed(instance_id, action):
        entered.set()
        return power(instance_id, action)

    monkeypatch.setattr(services(platform).instances, "power", observed)
    stopping = gevent.spawn(api, platform, "PATCH", f"/kompute/{made['id']}/stop")
    entered.wait(timeout=30)
    assert entered.is_set()
    release.set()
    committing.get(timeout=60)
    assert stopping.get(timeout=60) == (200, None)
    # Stopped where it is now, after its move; the source saw no power operation once the move had begun.
    assert target.instances["web-1"]["State"] == "Shutoff" and "web-1" not in source.instances
    assert moves(target)[-2:] == [("InstanceOperation", AUTO), ("InstanceOperation", HARD)]


def test_a_resize_reads_where_the_instance_is_in_its_owner(platform, project):
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    target = platform.agents["kaktus-a2"]
    before = instance_of(platform, made)  # as a resize decided before the move read it
    commit(platform, made, plan(platform, made, destination="zone", live=False)["id"])
    services(platform).instances.resize(before, 4, 8 * GIB)
    resized = instance_of(platform, made)
    assert (resized["kaktus_id"], resized["vcpus"], resized["memory"]) == (platform.kaktuses["a2"].id, 4, 8 * GIB)
    assert ET.fromstring(target.calls_of("UpdateInstance")[-1]["XML"]).findtext("vcpu") == "4"
    assert target.instances["web-1"]["State"] == "Running"


def test_a_moving_instance_keeps_its_source_until_the_move_is_over(platform, project):
    group = ok(platform, "POST", f"/project/{project.id}/kwarantine", {"name": "web", "policy": "host"}, status=201)
    made = kompute(platform, project, "web-1", kwarantines=[group["id"]])
    add_kaktus(platform, "a2", "a")
    target = platform.agents["kaktus-a2"]
    release = gevent.event.Event()
    target.behaviour.hold["CreateInstance"] = release
    target.behaviour.failures["CreateInstance"] = "virError(Code=9, Message='operation failed: no more room')"
    committing = gevent.spawn(api, platform, "PATCH", f"/kompute/{made['id']}/kmotion/commit",
                              {"plan": plan(platform, made, destination="zone", live=False)["id"]})
    target.wait_for_call("CreateInstance")
    # Both nodes count it: the move may end on either.
    zone_a = platform.zones["a"].id
    assert {n.name: n.instance_names for n in services(platform).instances.nodes(zone_a)} == {
        "k-a": ["web-1"], "k-a2": ["web-1"]}
    # Another member of its group goes to neither node of zone a.
    body = refused(platform, 507, "POST", f"/project/{project.id}/zone/{zone_a}/kompute",
                   {"name": "web-2", "vcpus": 2, "memory": 4 * GIB, "disk": 20 * GIB, "kwarantines": [group["id"]]})
    assert "Kwarantine" in body["reason"], body
    release.set()
    status, _ = committing.get(timeout=60)
    assert status == 422
    back = instance_of(platform, made)
    assert (back["kaktus_id"], back["state"]) == (platform.kaktuses["a"].id, "ready")


def test_a_region_wide_konvey_vm_moves_away_from_its_siblings_zone(platform, project):
    k.ProjectApi(platform.api).create_project_region_konvey(project.id, platform.regions["eu-west"].id, k.Konvey(
        name="web", endpoints=[k.KonveyEndpoint(name="https", port=443, protocol="tcp", backends=k.KonveyBackends(
            hosts=["10.50.0.30"], port=8443))]))
    db = platform.deployment.kahuna.db
    vm_b = db.instances.find_one({"profile": "konvey", "zone_id": platform.zones["b"].id})
    made = {"id": str(db.komputes.find_one({"instance_id": str(vm_b["_id"])})["_id"])}
    add_kaktus(platform, "a2", "a")  # free, but in the zone of the other VM
    body = plan(platform, made, 507, destination="region", live=False)
    assert "k-a2 is in the zone of another VM of its konvey" in body["reason"], body
    assert "Kaktus k-a2 is in the zone of another VM of its konvey" in plan(
        platform, made, 422, destination="manual", kaktus=platform.kaktuses["a2"].id, live=False)["reason"]


def test_the_target_defines_the_domain_kahuna_stores_not_the_xml_the_source_answers(platform, project):
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    source, target = platform.agents["kaktus-a"], platform.agents["kaktus-a2"]
    # The source's definition says another guest's disk, and an older machine type.
    domain = source.instances["web-1"]
    domain["XML"] = domain["XML"].replace("rbd-ssd/web-1-os", "rbd-ssd/someone-else-os").replace(
        "machine=\"pc-q35-8.2\"", "machine=\"pc-q35-7.1\"").replace("machine='pc-q35-8.2'", "machine='pc-q35-7.1'")
    assert "someone-else-os" in domain["XML"] and "pc-q35-7.1" in domain["XML"]
    commit(platform, made, plan(platform, made, destination="zone", live=False)["id"])
    moved = target.instances["web-1"]["XML"]
    assert "rbd-ssd/web-1-os" in moved and "someone-else" not in moved
    # The guest's machine type (its ABI) is kept, as libvirt migration keeps it.
    assert ET.fromstring(moved).find("os/type").get("machine") == "pc-q35-7.1"


def test_a_commit_takes_the_owners_of_the_groups_the_instance_is_in_when_it_starts(platform, project, monkeypatch):
    made = kompute(platform, project, "web-1")
    add_kaktus(platform, "a2", "a")
    kmotion = services(platform).kmotion
    subject = kmotion.kompute_subject(made["id"])  # read before it joins a group
    group = ok(platform, "POST", f"/project/{project.id}/kwarantine", {"name": "web"}, status=201)
    services(platform).kwarantines.add_kompute(group["id"], made["id"])
    proposed = plan(platform, made, destination="zone", live=False)
    taken: list[str] = []
    owners = kmotion.owners

    class Recorded:
        def run(self, key, function, *args, **kwargs):
            taken.append(key)
            return owners.run(key, function, *args, **kwargs)

        def run_all(self, keys, function):
            keys = list(keys)
            taken.extend(keys)
            return owners.run_all(keys, function)

    monkeypatch.setattr(kmotion, "owners", Recorded())
    kmotion.commit(subject, proposed["id"])
    assert f"kwarantine:{group['id']}" in taken
    assert instance_of(platform, made)["kaktus_id"] == platform.kaktuses["a2"].id
