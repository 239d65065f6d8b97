"""Crash recovery on the simulated platform: the states a kill -9 leaves at each step of a multi-step
operation, swept when a node becomes the writer and destroyed on the agents and in the database once the
agents are there. (tests/test_crash_recovery.py kills real processes; here each crash point is set up
exactly, from a real creation.)"""

from __future__ import annotations

import kowabunga as k
import pytest
from bson import ObjectId

from kahuna.services.recovery import FAILED, Recovery
from tests.harness import wait_until
from tests.test_compute import GIB, host, kompute, stored


@pytest.fixture
def project(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], regions=[platform.regions["eu-west"].id]),
        subnet_size=26)


def restart_recovery(platform, lease_token: int = 2) -> Recovery:
    """What a new writer does: a fresh Recovery taking over under a new lease token."""
    recovery = Recovery(platform.deployment.kahuna.db, platform.deployment.kahuna.services)
    recovery.take_over(lease_token)
    return recovery


def nothing_left_of(platform, name: str) -> None:
    for agent in platform.agents.values():
        assert name not in agent.instances
        assert not [v for _, v in agent.volumes if v.startswith(name)]
    assert host(platform.agents["kiwi-west-1"], name) is None
    assert not [a for a in stored(platform, "adapter") if a["name"].startswith(name)]


def test_a_kompute_cut_short_before_its_record_is_taken_back_everywhere(platform, project):
    made = kompute(platform, project, data_disk=GIB)
    db = platform.deployment.kahuna.db
    instance_id = db.komputes.get(made.id)["instance_id"]
    # The crash: the instance and its disks were made, the Kompute record was not written yet.
    db.komputes.delete(made.id)
    recovery = restart_recovery(platform)
    assert db.instances.get(instance_id)["state"] == FAILED
    report = recovery.clean_up()
    assert report.cleaned == {"instance": 1} and report.waiting == 0
    nothing_left_of(platform, "web-1")
    for collection in ("kompute", "instance", "volume"):
        assert not stored(platform, collection, project_id=project.id), collection
    usage = k.ProjectApi(platform.api).read_project_usage(project.id)
    assert (usage.instances, usage.vcpus, usage.storage) == (0, 0, 0)
    k.ProjectApi(platform.api).delete_project(project.id)


def test_an_instance_left_creating_waits_for_its_kaktus_then_goes(platform, project):
    made = kompute(platform, project)
    db = platform.deployment.kahuna.db
    instance_id = db.komputes.get(made.id)["instance_id"]
    db.instances.update(instance_id, {"state": "creating"})
    kaktus = next(a for a in platform.agents.values() if "web-1" in a.instances)
    plane = platform.deployment.kahuna.plane
    kaktus.close()
    wait_until(lambda: not plane.connected_ids([kaktus.id]), 10, "the Kaktus seen away")
    recovery = restart_recovery(platform)
    # Nothing stays "creating", even with its agent away; the API can still delete it (once the agent is back).
    assert db.instances.get(instance_id)["state"] == FAILED
    report = recovery.clean_up()
    assert report.waiting >= 1 and recovery.pending() >= 1
    kaktus.connect()
    wait_until(lambda: plane.connected_ids([kaktus.id]), 10, "the Kaktus seen back")
    recovery.clean_up()
    assert recovery.pending() == 0
    nothing_left_of(platform, "web-1")
    assert not stored(platform, "kompute", project_id=project.id)


def test_a_project_left_half_created_gives_its_subnet_back(platform, project):
    db = platform.deployment.kahuna.db
    subnet_id = db.projects.get(project.id)["private_subnets"][0]["value"]
    db.projects.update(project.id, {"state": "creating"})
    recovery = restart_recovery(platform)
    recovery.clean_up()
    assert not db.projects.exists({"_id": ObjectId(project.id)})
    assert db.subnets.get(subnet_id)["project_id"] == ""


def test_a_growth_cut_short_is_taken_back_and_a_failed_volume_is_deletable(platform, project):
    volumes = k.ProjectApi(platform.api)
    region = platform.regions["eu-west"].id
    volume = volumes.create_project_region_volume(project.id, region, k.Volume(name="data", type="raw", size=GIB))
    other = volumes.create_project_region_volume(project.id, region, k.Volume(name="scratch", type="raw", size=GIB))
    db = platform.deployment.kahuna.db
    db.volumes.update(volume.id, {"size": 3 * GIB, "state": "updating", "previous": {"size": GIB}})
    db.volumes.update(other.id, {"state": "deleting"})
    restart_recovery(platform)
    assert (db.volumes.get(volume.id)["size"], db.volumes.get(volume.id)["state"]) == (GIB, "ready")
    assert db.volumes.get(other.id)["state"] == FAILED
    k.VolumeApi(platform.api).delete_volume(other.id)
    assert not [v for agent in platform.agents.values() for _, v in agent.volumes if v == "scratch"]


def test_the_same_writer_does_not_sweep_its_own_operations_again(platform, project):
    db = platform.deployment.kahuna.db
    recovery = Recovery(db, platform.deployment.kahuna.services)
    recovery.take_over(7)
    db.projects.update(project.id, {"state": "creating"})  # as if one of its own creations were in flight
    recovery.take_over(7)  # its lease renewed after a stall: same token, nothing is a leftover
    assert db.projects.get(project.id)["state"] == "creating"
    recovery.take_over(8)  # another writer came in between: now it is one
    assert db.projects.get(project.id)["state"] == FAILED
