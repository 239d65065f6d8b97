"""``kahuna drain``, run as an operator runs it (a real process, a client of the running Kahuna's API): it empties
a Kaktus node in maintenance with kMotions, leaves the instances whose kMotion is disabled, and reports."""

from __future__ import annotations

import subprocess
import sys

import kowabunga as k
import pytest

from kahuna.drain import ApiError, Drain, DrainError
from tests.deployment import MASTER_KEY
from tests.test_kmotion import kompute, ok

GIB = 1024**3


def drain(platform, *args):
    return subprocess.run([sys.executable, "-m", "kahuna.cli", "drain", *args, "--url",
                           f"{platform.deployment.base_url}/api/v1", "--api-key", MASTER_KEY],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], root_password="S3cret-root-pw",
        regions=[platform.regions["eu-west"].id]), subnet_size=26)


def test_a_drain_empties_a_node_in_maintenance_and_reports(platform, project):
    web1, web2 = kompute(platform, project, "web-1"), kompute(platform, project, "web-2")
    kompute(platform, project, "pinned-1", kmotion_enabled=False)
    projects = k.ProjectApi(platform.api)
    os_volume = projects.create_project_region_volume(project.id, platform.regions["eu-west"].id,
                                                      k.Volume(name="db-os", type="os", size=10 * GIB))
    adapter = k.SubnetApi(platform.api).create_adapter(project.private_subnets[0].value, k.Adapter(name="db-nic"),
                                                         assign_ip=True)
    projects.create_project_zone_instance(project.id, platform.zones["a"].id, k.Instance(
        name="db", vcpus=1, memory=2 * GIB, volumes=[os_volume.id], adapters=[adapter.id]))
    source, target = platform.agents["kaktus-a"], platform.agents["kaktus-b"]
    assert set(source.instances) == {"web-1", "web-2", "pinned-1", "db"}
    kaktus_id = platform.kaktuses["a"].id
    # Not in maintenance: refused, nothing moved.
    result = drain(platform, "k-a")
    assert result.returncode == 2 and "is not in maintenance" in result.stderr, result
    # Live only (the default) with released agents: nothing can move, and it says why.
    ok(platform, "PATCH", f"/kaktus/{kaktus_id}/maintenance/enable")
    result = drain(platform, kaktus_id)
    assert result.returncode == 1, result
    assert "--allow-cold" in result.stdout and "moved 0, skipped 1" in result.stdout
    assert set(source.instances) == {"web-1", "web-2", "pinned-1", "db"}
    # Cold allowed: every movable instance goes to zone b's node (the only other one of the region).
    result = drain(platform, "k-a", "--allow-cold")
    assert result.returncode == 1, result  # the pinned Kompute is left
    lines = result.stdout.splitlines()
    assert "draining Kaktus k-a: 4 instance(s)" in lines
    for moved in ("Kompute web-1", "Kompute web-2", "instance db"):
        assert f"  {moved}: moved cold to k-b" in lines, result.stdout
    assert "  Kompute pinned-1: skipped (kMotion disabled)" in lines
    assert lines[-1] == "moved 3, skipped 1 (kMotion disabled), failed 0; 1 instance(s) left on the node"
    assert set(source.instances) == {"pinned-1"}
    assert {"web-1", "web-2", "db"} <= set(target.instances)
    assert all(target.instances[name]["State"] == "Running" for name in ("web-1", "web-2", "db"))
    for made in (web1, web2):
        assert k.KomputeApi(platform.api).read_kompute_state(made["id"]).state == "Running"
    # With the pinned one gone, a drain (which puts it in maintenance itself) finds nothing left: status 0.
    k.KomputeApi(platform.api).delete_kompute(next(
        i for i in k.KomputeApi(platform.api).list_komputes()
        if k.KomputeApi(platform.api).read_kompute(i).name == "pinned-1"))
    ok(platform, "PATCH", f"/kaktus/{kaktus_id}/maintenance/disable")
    result = drain(platform, "k-a", "--enable-maintenance")
    assert result.returncode == 0, result
    assert "Kaktus k-a entered maintenance" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("0 instance(s) left on the node")


def test_a_drain_names_what_it_cannot_find_or_reach(platform):
    result = drain(platform, "k-nowhere")
    assert result.returncode == 2 and "no Kaktus named or identified 'k-nowhere'" in result.stderr
    result = subprocess.run([sys.executable, "-m", "kahuna.cli", "drain", "k-a", "--url",
                             f"{platform.deployment.base_url}/api/v1", "--api-key", "x" * 40],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "HTTP 401" in result.stderr


# -- the drain's decisions, against an API in memory ----------------------------------------------------------


class MemoryApi:
    """The Kowabunga API as a drain uses it: Kaktus nodes by id, the instances on each; a commit moves the
    instance to k2 (or does what *commit* says); *broken* paths answer 503."""

    def __init__(self, names: dict[str, str], hosted: dict[str, list[str]], commit=None):
        self.names = names
        self.hosted = hosted
        self.commit = commit or self.move
        self.broken: set[str] = set()

    def move(self, instance_id: str) -> None:
        self.hosted["k1"].remove(instance_id)
        self.hosted["k2"].append(instance_id)

    def __call__(self, method, path, body=None):
        if path in self.broken:
            raise ApiError(503, "the API is away")
        parts = path.strip("/").split("/")
        if path == "/kaktus":
            return list(self.names)
        if parts[0] == "kaktus":
            return list(self.hosted[parts[1]]) if parts[-1] == "instances" else {
                "name": self.names[parts[1]], "maintenance": True}
        if path == "/kompute":
            return []
        if parts[-1] == "plan":
            return {"id": "plan", "live": False, "target": "k2"}
        if parts[-1] == "commit":
            return self.commit(parts[1])
        return {"name": parts[1]}  # GET /instance/{id}


def cli_drain(monkeypatch, memory: MemoryApi, reference: str) -> int:
    """``kahuna drain REFERENCE --allow-cold`` against *memory*: its exit status."""
    import argparse

    import kahuna.drain
    from kahuna import cli

    monkeypatch.setattr(kahuna.drain, "Api", lambda url, api_key: memory)
    return cli._drain(None, argparse.Namespace(url="http://kahuna.test/api/v1", api_key="k" * 40, kaktus=reference,
                                               enable_maintenance=False, allow_cold=True))


def test_a_drain_that_failed_a_move_exits_non_zero_even_with_the_node_empty(monkeypatch):
    def commit(instance_id):  # the instance was deleted meanwhile: nothing is left, and nothing was moved
        memory.hosted["k1"].remove(instance_id)
        raise ApiError(404, f"instance {instance_id} does not exist")

    memory = MemoryApi({"k1": "node-1", "k2": "node-2"}, {"k1": ["web-1"], "k2": []}, commit)
    assert cli_drain(monkeypatch, memory, "node-1") == 1
    memory = MemoryApi({"k1": "node-1", "k2": "node-2"}, {"k1": ["web-1"], "k2": []})
    assert cli_drain(monkeypatch, memory, "node-1") == 0


def test_a_move_done_is_reported_done_even_when_the_targets_name_cannot_be_read(monkeypatch, capsys):
    def commit(instance_id):  # moved; then the API cannot read the target for a while
        memory.move(instance_id)
        memory.broken.add("/kaktus/k2")

    memory = MemoryApi({"k1": "node-1", "k2": "node-2"}, {"k1": ["web-1"], "k2": []}, commit)
    assert cli_drain(monkeypatch, memory, "node-1") == 0
    out = capsys.readouterr().out
    assert "  instance web-1: moved cold to k2" in out.splitlines() and "failed 0" in out, out


def test_a_drain_refuses_a_name_two_nodes_have(monkeypatch, capsys):
    memory = MemoryApi({"k1": "node", "k2": "node", "k3": "other"}, {"k1": ["web-1"], "k2": [], "k3": []})
    assert cli_drain(monkeypatch, memory, "node") == 2
    assert "2 Kaktus nodes are named 'node' (ids k1, k2): give the id" in capsys.readouterr().err
    with pytest.raises(DrainError, match="2 Kaktus nodes are named 'node'"):
        Drain(memory, out=lambda line: None).run("node", allow_cold=True)
    assert memory.hosted["k1"] == ["web-1"]  # nothing moved
    report = Drain(memory, out=lambda line: None).run("k1", allow_cold=True)  # by id
    assert (report.moved, report.failed, report.left) == (["web-1"], [], 0)
