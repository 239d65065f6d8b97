"""Crash recovery, with real processes: ``kahuna serve`` is killed with kill -9 in the middle of a burst
of multi-step creations (Komputes, instances made from volumes and adapters, volumes, projects, a
Konvey), restarted on the same database and port, and must settle to a consistent state:

* nothing half made: no object ``creating`` (or ``deleting``), no project without its networks;
* nothing leaked: addresses/adapters, volumes, Kontroller agents and their keys, VRRP ids, subnets,
  quota held by objects that do not exist;
* the agents hold what the database says (domains on the Kaktus, images on the pool, names and
  zones on the Kiwis), and what was acknowledged before the kill is still there;
* everything the API lists can be deleted through the API, after which the agents hold nothing.

The simulated agents are slowed down (each creation call takes a few hundred ms) and the kill lands
after the K-th creation call of the burst, K drawn (seeded) in an early, a middle and a late band.
The agents keep what they were doing when the node died (a call in flight completes on the agent,
its answer is lost). After the restart they come back late (all of them, or the Kiwis only) or at
once, so that recovery runs both before and after its agents are there.
Every round is checked and cleaned up; the test fails at the end with the report of every round.
``KAHUNA_CRASH_SEED`` changes the seed, ``KAHUNA_CRASH_SETTLE`` the settle timeout (seconds).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import typing
from dataclasses import dataclass, field

import gevent
import gevent.event
import kowabunga as k
import pytest
import urllib3
from bson import ObjectId

from tests.deployment import MASTER_KEY
from tests.harness import wait_until
from tests.process_platform import AGENT_BACKOFF, NodePlatform, build
from tests.simulator import Backoff

pytestmark = pytest.mark.slow

GIB = 1024**3
SEED = int(os.environ.get("KAHUNA_CRASH_SEED", "1729"))
SETTLE_SECONDS = float(os.environ.get("KAHUNA_CRASH_SETTLE", "40"))
# Kill after the K-th creation call of the burst, K in this band (one band per round): while the
# first volumes are made, in the middle (seeds, host names), late (domains, autostart, Konvey VMs).
KILL_BANDS = ((2, 12), (14, 26), (28, 40))
# The agents kept away for HOLD_SECONDS after the restart, per round: the restarted node's first
# recovery pass then runs without them (as after a real crash: the agents come back with back-off),
# without the Kiwis only, or racing with agents that come back at once.
HELD_BACK = (("Kaktus", "Kiwi"), ("Kiwi",), ())
HOLD_SECONDS = 2.0
#: The agent calls creations are made of; each one is slowed during the burst.
CREATE_STEPS = ("CreateOsVolume", "CreateRawVolume", "CreateIsoVolume", "CreateDnsRecord", "CreateDnsZone",
                "NodeCapabilities", "CreateInstance", "InstanceOperation")
#: Collections whose documents have a life state (and must be ``ready`` once the node settled).
STATEFUL = ("instance", "volume", "kompute", "kawaii", "konvey", "kylo", "project")
COLLECTIONS = STATEFUL + ("adapter", "agent", "subnet", "dns_record", "template", "storage_pool", "kaktus", "kiwi",
                          "region", "zone", "token")


# -- the burst ---------------------------------------------------------------------------------


class Stop(Exception):
    """A step of an attempt failed or the node was killed: the attempt ends there."""


@dataclass
class Attempt:
    kind: str
    name: str
    outcome: str = "not started"
    acknowledged: list[tuple[str, str, str]] = field(default_factory=list)  # (collection, id, name)

    def line(self) -> str:
        return f"{self.kind} {self.name}: {self.outcome}"


def _reason(exc: k.ApiException) -> str:
    try:
        return json.loads(exc.body)["reason"]
    except (TypeError, ValueError, KeyError):
        return str(exc.body or exc.reason)[:200]


class Burst:
    """The creations of one round, run in parallel against the node until it is killed."""

    def __init__(self, platform: NodePlatform, t, project: k.Project, number: int, standalone_adapters: set[str]):
        self.platform = platform
        self.t = t
        self.project = project
        self.prefix = f"r{number}"
        self.standalone_adapters = standalone_adapters
        self.killed = gevent.event.Event()
        self.attempts: list[Attempt] = []
        self.greenlets: list[gevent.Greenlet] = []

    def step(self, attempt: Attempt, what: str, call: typing.Callable[[], typing.Any]) -> typing.Any:
        if self.killed.is_set():
            attempt.outcome = f"{what}: not sent (node killed)"
            raise Stop
        try:
            return call()
        except k.ApiException as exc:
            attempt.outcome = f"{what}: HTTP {exc.status} {_reason(exc)}"
        except Exception as exc:  # noqa: BLE001 - the node died under the request
            attempt.outcome = f"{what}: no answer ({type(exc).__name__})"
        raise Stop

    def private_subnet(self, region: str) -> str:
        region_id = self.t.regions[region].id
        return next(entry.value for entry in self.project.private_subnets if entry.key == region_id)

    # -- the creations ---------------------------------------------------------------------

    def kompute(self, attempt: Attempt, zone: str, data_disk: int, public: bool) -> None:
        api = k.ProjectApi(self.platform.client())
        made = self.step(attempt, "POST kompute", lambda: api.create_project_zone_kompute(
            self.project.id, self.t.zones[zone].id,
            k.Kompute(name=attempt.name, vcpus=2, memory=4 * GIB, disk=20 * GIB, data_disk=data_disk), public=public))
        attempt.acknowledged.append(("kompute", made.id, attempt.name))

    def raw_instance(self, attempt: Attempt, zone: str, region: str) -> None:
        """As a user makes one: an OS volume, an adapter with an address, then the instance on both."""
        client = self.platform.client()
        projects, subnets = k.ProjectApi(client), k.SubnetApi(client)
        volume = self.step(attempt, "POST volume", lambda: projects.create_project_region_volume(
            self.project.id, self.t.regions[region].id, k.Volume(name=f"{attempt.name}-os", type="os", size=10 * GIB)))
        attempt.acknowledged.append(("volume", volume.id, volume.name))
        nic_name = f"{attempt.name}-nic"
        self.standalone_adapters.add(nic_name)
        nic = self.step(attempt, "POST adapter", lambda: subnets.create_adapter(
            self.private_subnet(region), k.Adapter(name=nic_name), assign_ip=True))
        attempt.acknowledged.append(("adapter", nic.id, nic_name))
        instance = self.step(attempt, "POST instance", lambda: projects.create_project_zone_instance(
            self.project.id, self.t.zones[zone].id,
            k.Instance(name=attempt.name, vcpus=1, memory=2 * GIB, volumes=[volume.id], adapters=[nic.id])))
        attempt.acknowledged.append(("instance", instance.id, attempt.name))

    def volume(self, attempt: Attempt, region: str) -> None:
        api = k.ProjectApi(self.platform.client())
        made = self.step(attempt, "POST volume", lambda: api.create_project_region_volume(
            self.project.id, self.t.regions[region].id, k.Volume(name=attempt.name, type="raw", size=3 * GIB)))
        attempt.acknowledged.append(("volume", made.id, attempt.name))

    def new_project(self, attempt: Attempt) -> None:
        api = k.ProjectApi(self.platform.client())
        made = self.step(attempt, "POST project", lambda: api.create_project(k.Project(
            name=attempt.name, domain=f"{attempt.name}.acme.internal", teams=[], root_password="S3cret-root-pw",
            regions=[self.t.regions["eu-west"].id]), subnet_size=26))
        attempt.acknowledged.append(("project", made.id, attempt.name))

    def konvey(self, attempt: Attempt) -> None:
        api = k.ProjectApi(self.platform.client())
        made = self.step(attempt, "POST konvey", lambda: api.create_project_region_konvey(
            self.project.id, self.t.regions["eu-west"].id, k.Konvey(name=attempt.name, failover=True, endpoints=[
                k.KonveyEndpoint(name="https", port=443, protocol="tcp",
                                 backends=k.KonveyBackends(hosts=["10.50.0.30"], port=8443))])))
        attempt.acknowledged.append(("konvey", made.id, attempt.name))

    def launch(self) -> None:
        p = self.prefix
        plan: list[tuple[str, str, typing.Callable[..., None], tuple]] = [
            ("kompute", f"{p}-web-a", self.kompute, ("a", 5 * GIB, True)),
            ("kompute", f"{p}-web-b", self.kompute, ("b", 0, False)),
            ("kompute", f"{p}-web-c", self.kompute, ("c", 5 * GIB, False)),
            ("instance", f"{p}-db-a", self.raw_instance, ("a", "eu-west")),
            ("instance", f"{p}-db-c", self.raw_instance, ("c", "eu-east")),
            ("volume", f"{p}-data-west", self.volume, ("eu-west",)),
            ("volume", f"{p}-data-east", self.volume, ("eu-east",)),
            ("project", f"{p}-p0", self.new_project, ()),
            ("project", f"{p}-p1", self.new_project, ()),
            ("konvey", f"{p}-lb", self.konvey, ()),
        ]
        for kind, name, run, args in plan:
            attempt = Attempt(kind, name)
            self.attempts.append(attempt)

            def body(attempt=attempt, run=run, args=args) -> None:
                try:
                    run(attempt, *args)
                    attempt.outcome = "ok"
                except Stop:
                    pass

            self.greenlets.append(gevent.spawn(body))

    def done(self) -> bool:
        return all(g.ready() for g in self.greenlets)


# -- the invariants ----------------------------------------------------------------------------


class Snapshot:
    """The database and the agents, read once."""

    def __init__(self, platform: NodePlatform, t):
        self.docs = {c: list(platform.db[c].find()) for c in COLLECTIONS}
        self.by_id = {c: {str(d["_id"]): d for d in docs} for c, docs in self.docs.items()}
        self.agents = {agent.id: agent for agent in t.agents.values()}

    def name(self, collection: str, doc_id: str) -> str:
        return str(self.by_id[collection].get(doc_id, {}).get("name", doc_id))

    def agents_of(self, holder: dict) -> list:
        return [self.agents[a] for a in holder.get("agent_ids", []) if a in self.agents]


def ready(doc: dict) -> bool:
    return doc.get("state", "ready") == "ready"


def invariants(platform: NodePlatform, t, standalone_adapters: set[str],
               acknowledged: list[tuple[str, str, str]]) -> list[str]:
    s = Snapshot(platform, t)
    problems: list[str] = []
    region_name = lambda region_id: s.name("region", region_id)  # noqa: E731
    instances, volumes = s.docs["instance"], s.docs["volume"]

    # Nothing half made.
    for collection in STATEFUL:
        for doc in s.docs[collection]:
            if not ready(doc):
                problems.append(f"{collection} {doc.get('name')} left in state {doc['state']!r}")
    for project in s.docs["project"]:
        have = {entry["key"] for entry in project.get("private_subnets", [])}
        for region_id in project.get("region_ids", []):
            if region_id not in have:
                problems.append(f"project {project['name']} half created: no private subnet in "
                                f"{region_name(region_id)}")
    for subnet in s.docs["subnet"]:
        owner = subnet.get("project_id")
        if not owner:
            continue
        project = s.by_id["project"].get(owner)
        if project is None:
            problems.append(f"subnet {subnet['cidr']} held by a project that does not exist")
        elif str(subnet["_id"]) not in {entry["value"] for entry in project.get("private_subnets", [])}:
            problems.append(f"subnet {subnet['cidr']} held by project {project['name']}, which does not list it")

    # Komputes, Konveys and their VMs hang together.
    kompute_of = {kompute["instance_id"]: kompute for kompute in s.docs["kompute"]}
    for kompute in s.docs["kompute"]:
        if kompute["instance_id"] not in s.by_id["instance"]:
            problems.append(f"kompute {kompute['name']} has no instance")
    for konvey in s.docs["konvey"]:
        for kompute_id in konvey.get("kompute_ids", []):
            if kompute_id not in s.by_id["kompute"]:
                problems.append(f"konvey {konvey['name']} lists a Kompute that does not exist")
    for instance in instances:
        iid = str(instance["_id"])
        profile = instance.get("profile")
        if profile in ("konvey", "kawaii") and instance.get("profile_id") not in s.by_id[profile]:
            problems.append(f"instance {instance['name']}: VM of a {profile} that does not exist")
        made_for = [v["name"] for v in volumes if v.get("instance_id") == iid and v["type"] != "iso"]
        if made_for and iid not in kompute_of:
            problems.append(f"instance {instance['name']} has disks made for a Kompute ({', '.join(made_for)}) "
                            f"but no Kompute")

    # Adapters and addresses.
    plugged = {a for instance in instances for a in instance.get("adapter_ids", [])}
    virtual = {konvey.get("vip_adapter_id") for konvey in s.docs["konvey"]} | {
        zone.get("vip_adapter_id") for kawaii in s.docs["kawaii"] for zone in kawaii.get("zones", [])}
    taken: dict[tuple[str, str], list[str]] = {}
    for adapter in s.docs["adapter"]:
        for address in adapter.get("addresses", []):
            taken.setdefault((adapter["subnet_id"], address), []).append(adapter["name"])
        aid = str(adapter["_id"])
        if aid in plugged or aid in virtual or adapter["name"] in standalone_adapters:
            continue
        problems.append(f"adapter {adapter['name']} leaked ({', '.join(adapter.get('addresses', [])) or 'no address'}"
                        f"): in no instance, Konvey or Kawaii, and not made through the API")
    for (_, address), names in taken.items():
        if len(names) > 1:
            problems.append(f"address {address} given to several adapters: {', '.join(names)}")
    for instance in instances:
        for aid in instance.get("adapter_ids", []):
            if aid not in s.by_id["adapter"]:
                problems.append(f"instance {instance['name']} plugs an adapter that does not exist")

    # Volumes: their instance, and the pool's images.
    for volume in volumes:
        if volume.get("instance_id") and volume["instance_id"] not in s.by_id["instance"]:
            problems.append(f"volume {volume['name']} ({volume['type']}) made for an instance that does not exist")
    for instance in instances:
        for vid in instance.get("volume_ids", []) + [instance.get("seed_volume_id") or None]:
            if vid and vid not in s.by_id["volume"]:
                problems.append(f"instance {instance['name']} uses a volume that does not exist")
    for pool in s.docs["storage_pool"]:
        pid, where = str(pool["_id"]), f"{pool['pool']}@{region_name(pool['region_id'])}"
        images = {name for agent in s.agents_of(pool) for (pool_name, name) in agent.volumes
                  if pool_name == pool["pool"]}
        templates = {template["volume"] for template in s.docs["template"] if template["storage_pool_id"] == pid}
        documented = {v["name"]: v for v in volumes if v["storage_pool_id"] == pid}
        for name in sorted(images - templates - set(documented)):
            problems.append(f"image {name} on pool {where} has no volume document")
        for name, volume in sorted(documented.items()):
            if ready(volume) and name not in images:
                problems.append(f"volume {name} is ready but pool {where} has no such image")

    # Domains on the Kaktus.
    for kaktus in s.docs["kaktus"]:
        domains = {name for agent in s.agents_of(kaktus) for name in agent.instances}
        hosted = {i["name"]: i for i in instances if i.get("kaktus_id") == str(kaktus["_id"])}
        for name in sorted(domains - set(hosted)):
            problems.append(f"domain {name} on Kaktus {kaktus['name']} has no instance document")
        for name, instance in sorted(hosted.items()):
            if ready(instance) and name not in domains:
                problems.append(f"instance {name} is ready but Kaktus {kaktus['name']} has no such domain")

    # Names and zones on the Kiwis.
    for kiwi in s.docs["kiwi"]:
        region_id = kiwi["region_id"]
        projects = [p for p in s.docs["project"] if region_id in p.get("region_ids", [])]
        project_ids = {str(p["_id"]) for p in projects}
        expected = {(r["domain"], r["name"]) for r in s.docs["dns_record"]
                    if r.get("region_id") == region_id or r.get("project_id") in project_ids}
        hosts = {(i["dns_domain"], i["name"]): i for i in instances
                 if i.get("region_id") == region_id and i.get("dns_domain")}
        zones = {p["domain"]: p for p in projects if p.get("domain")}
        for agent in s.agents_of(kiwi):
            held = {(domain, entry) for domain, records in agent.dns_records.items() for entry in records}
            for domain, entry in sorted(held - expected - set(hosts)):
                problems.append(f"Kiwi agent {agent.name} serves {entry}.{domain}, of no instance or record")
            for (domain, entry), instance in sorted(hosts.items()):
                if ready(instance) and (domain, entry) not in held:
                    problems.append(f"Kiwi agent {agent.name} does not serve {entry}.{domain} of a ready instance")
            for zone in sorted(agent.dns_zones - set(zones)):
                problems.append(f"Kiwi agent {agent.name} holds DNS zone {zone} of no project")
            for zone, project in sorted(zones.items()):
                if ready(project) and zone not in agent.dns_zones:
                    problems.append(f"Kiwi agent {agent.name} lacks DNS zone {zone} of project {project['name']}")

    # Kontroller agents and agent keys.
    controllers = {instance.get("agent_id") for instance in instances if instance.get("agent_id")}
    for agent in s.docs["agent"]:
        if agent["type"] == "Kontroller" and str(agent["_id"]) not in controllers:
            problems.append(f"Kontroller agent {agent['name']} belongs to no instance")
    for token in s.docs["token"]:
        if token.get("parent_type") == "agent" and token.get("parent_id") not in s.by_id["agent"]:
            problems.append(f"API key {token.get('name')} of an agent that does not exist")

    # VRRP ids and quota usage.
    for project in s.docs["project"]:
        pid = str(project["_id"])
        used = {konvey.get("vrrp_id") for konvey in s.docs["konvey"] if konvey["project_id"] == pid} | {
            vip["vrrp_id"] for kawaii in s.docs["kawaii"] if kawaii["project_id"] == pid
            for vip in kawaii.get("virtual_ips", [])}
        unused = sorted(set(project.get("reserved_vrrp_ids", [])) - used)
        if unused:
            problems.append(f"project {project['name']} reserves VRRP id(s) {unused} that no Konvey/Kawaii uses")
        held = {"instances": 0, "vcpus": 0, "memory": 0, "storage": 0}
        for instance in instances:
            if instance["project_id"] == pid and not ready(instance):
                held["instances"] += 1
                held["vcpus"] += instance["vcpus"]
                held["memory"] += instance["memory"]
        for volume in volumes:
            orphan = bool(volume.get("instance_id")) and volume["instance_id"] not in s.by_id["instance"]
            if volume["project_id"] == pid and volume["type"] != "iso" and (not ready(volume) or orphan):
                held["storage"] += volume["size"]
        if any(held.values()):
            problems.append(f"project {project['name']}: quota held by half-made or orphaned objects: "
                            f"{', '.join(f'{key}={value}' for key, value in held.items() if value)}")
        if ready(project):
            try:
                usage = k.ProjectApi(platform.client()).read_project_usage(pid)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"GET project {project['name']} usage failed: {exc}")
                continue
            mine = [i for i in instances if i["project_id"] == pid]
            expected_usage = (len(mine), sum(i["vcpus"] for i in mine), sum(i["memory"] for i in mine),
                              sum(v["size"] for v in volumes if v["project_id"] == pid and v["type"] != "iso"))
            if (usage.instances, usage.vcpus, usage.memory, usage.storage) != expected_usage:
                problems.append(f"project {project['name']}: usage {usage} differs from its objects {expected_usage}")

    # What was acknowledged before the kill is still there.
    for collection, doc_id, name in acknowledged:
        doc = s.by_id[collection].get(doc_id)
        if doc is None:
            problems.append(f"{collection} {name} acknowledged before the kill, lost after the restart")
        elif not ready(doc):
            problems.append(f"{collection} {name} acknowledged before the kill, {doc['state']!r} after the restart")
    return problems


# -- deleting everything through the API ---------------------------------------------------------


def delete_everything(platform: NodePlatform) -> list[str]:
    """Delete what the API lists, kind after kind; every failure (and every listing failure) reported."""
    client = platform.client()
    failures: list[str] = []
    kinds = [("konvey", k.KonveyApi(client).list_konveys, k.KonveyApi(client).delete_konvey),
             ("kawaii", k.KawaiiApi(client).list_kawaiis, k.KawaiiApi(client).delete_kawaii),
             ("kompute", k.KomputeApi(client).list_komputes, k.KomputeApi(client).delete_kompute),
             ("instance", k.InstanceApi(client).list_instances, k.InstanceApi(client).delete_instance),
             ("volume", k.VolumeApi(client).list_volumes, k.VolumeApi(client).delete_volume),
             ("adapter", k.AdapterApi(client).list_adapters, k.AdapterApi(client).delete_adapter),
             ("project", k.ProjectApi(client).list_projects, k.ProjectApi(client).delete_project)]
    for kind, listing, delete in kinds:
        try:
            ids = listing()
        except k.ApiException as exc:
            failures.append(f"GET /{kind} answers {exc.status}: {_reason(exc)}")
            continue
        for object_id in ids:
            doc = platform.db[kind].find_one({"_id": ObjectId(object_id)}) or {}
            try:
                delete(object_id)
            except k.ApiException as exc:
                if exc.status == 404 and platform.db[kind].find_one({"_id": ObjectId(object_id)}) is None:
                    continue  # gone meanwhile (crash recovery got there first)
                failures.append(f"DELETE /{kind} {doc.get('name', object_id)} answers {exc.status}: {_reason(exc)}")
    return failures


def leftovers(platform: NodePlatform, t) -> list[str]:
    """What remains in the database or on the agents once everything was deleted through the API."""
    s = Snapshot(platform, t)
    found = [f"{collection} {doc.get('name')} still in the database"
             for collection in STATEFUL + ("adapter", "dns_record") for doc in s.docs[collection]]
    found += [f"Kontroller agent {a['name']} still in the database" for a in s.docs["agent"]
              if a["type"] == "Kontroller"]
    found += [f"subnet {subnet['cidr']} still held by a project" for subnet in s.docs["subnet"]
              if subnet.get("project_id")]
    templates = {template["volume"] for template in s.docs["template"]}
    for agent in t.agents.values():
        found += [f"domain {name} still on {agent.name}" for name in sorted(agent.instances)]
        if agent.name != "kaktus-b":  # shares kaktus-a's pool
            found += [f"image {name} still on the pool of {agent.name}" for _, name in sorted(agent.volumes)
                      if name not in templates]
        found += [f"name {entry}.{domain} still on {agent.name}"
                  for domain, records in sorted(agent.dns_records.items()) for entry in sorted(records)]
        found += [f"DNS zone {zone} still on {agent.name}" for zone in sorted(agent.dns_zones)]
    return found


# -- the test ---------------------------------------------------------------------------------------


@pytest.fixture
def node_platform(tmp_path, ferretdb, mail_server):
    """A ``kahuna serve`` process that the test kills and restarts, with the agents simulated for it
    (tests/process_platform.py); unlike ``platform``, the test builds the topology on it."""
    running = NodePlatform(tmp_path, ferretdb.uri, f"kahuna_crash_{os.getpid()}_{int(time.time())}", mail_server)
    try:
        yield running
    finally:
        running.stop()


def of_round(line: str, number: int) -> bool:
    """Whether *line* is about an object of round *number* (names carry their round: r2-web-a, konvey-r2-lb)."""
    rounds = {int(n) for n in re.findall(r"(?<![a-z0-9.])r(\d+)-", line)}
    return not rounds or number in rounds


def node_log_notes(platform: NodePlatform) -> list[str]:
    """The distinct warnings and errors of the restarted node's log (reported, not asserted)."""
    text = (platform.workdir / f"{platform.node.name}.log").read_text(errors="replace")
    lines = [line for line in text.splitlines() if re.match(r"^\d{4}-\S+ \S+ (WARNING|ERROR|CRITICAL) ", line)]
    distinct = dict.fromkeys(re.sub(r"^\d{4}-\d\d-\d\d [\d:,]+ +", "", line)[:300] for line in lines)
    return [f"(log) {line}" for line in distinct][:12]


def describe(call: tuple[str, str, dict]) -> str:
    agent, method, params = call
    what = params.get("Volume") or params.get("Name") or (
        f"{params['Entry']}.{params['Domain']}" if "Entry" in params else params.get("Domain", ""))
    return f"{agent} {method} {what}".rstrip()


def crash_round(platform: NodePlatform, t, number: int, band: tuple[int, int], held_types: tuple[str, ...],
                standalone_adapters: set[str], seen: set[str], report: list[str]) -> bool:
    """One round: a burst, a kill -9, a restart, the invariants, everything deleted; True if anything is wrong."""
    agents = list(t.agents.values())
    rng = random.Random(SEED * 100 + number)
    project = k.ProjectApi(platform.client()).create_project(k.Project(
        name=f"r{number}-shop", domain=f"r{number}-shop.acme.internal", teams=[], root_password="S3cret-root-pw",
        regions=[t.regions["eu-west"].id, t.regions["eu-east"].id]), subnet_size=26)
    # Every creation call answers after 150-450 ms: a creation is several calls, and seconds, long.
    for method in CREATE_STEPS:
        delay = rng.uniform(0.15, 0.45)
        for agent in agents:
            agent.behaviour.delays[method] = delay
    kill_at, extra = rng.randint(*band), rng.uniform(0.0, 0.3)
    marks = {agent.id: len(agent.calls) for agent in agents}
    log: list[tuple[str, str, dict]] = []

    def collect() -> None:
        for agent in agents:
            fresh = agent.calls[marks[agent.id]:]
            marks[agent.id] += len(fresh)
            log.extend((agent.name, method, params) for method, params in fresh if method in CREATE_STEPS)

    burst = Burst(platform, t, project, number, standalone_adapters)
    burst.launch()
    deadline = time.monotonic() + 60
    while len(log) < kill_at and not burst.done() and time.monotonic() < deadline:
        gevent.sleep(0.005)
        collect()
    late = burst.done()
    gevent.sleep(extra)
    collect()
    calls_at_kill = len(log)
    burst.killed.set()
    platform.kill()
    held = [agent for agent in agents if agent.type in held_types]
    for agent in held:
        agent.close()  # stops reconnecting
    gevent.joinall(burst.greenlets, timeout=20)
    for agent in agents:
        agent.behaviour.delays.clear()
    kill_line = (f"killed after creation call #{calls_at_kill} (K={kill_at} +{extra:.2f}s)"
                 + (" - LATE: the burst had already finished" if late else "")
                 + "; last calls: " + "; ".join(describe(c) for c in log[-3:])
                 + (f"; {'/'.join(held_types)} agents kept away {HOLD_SECONDS:.0f}s after the restart" if held
                    else "; agents back at once"))

    platform.restart()
    restarted = time.monotonic()
    if held:
        gevent.sleep(HOLD_SECONDS)
        for agent in held:
            agent.run(Backoff(**AGENT_BACKOFF))
    wait_until(lambda: platform.connected_agents() == {"Kaktus": 3.0, "Kiwi": 3.0}, 30, "agents reconnected")
    acknowledged = [entry for attempt in burst.attempts for entry in attempt.acknowledged]
    while True:
        problems = invariants(platform, t, standalone_adapters, acknowledged)
        # Settled when nothing is wrong but what earlier rounds already left for good.
        settled = not set(problems) - seen
        if settled or time.monotonic() - restarted > SETTLE_SECONDS:
            break
        gevent.sleep(1.0)
    settle = (f"settled {time.monotonic() - restarted:.1f}s after the restart" if settled
              else f"NOT settled {SETTLE_SECONDS:.0f}s after the restart")

    log_notes = node_log_notes(platform)
    failures = delete_everything(platform)
    remaining = leftovers(platform, t)
    report += [f"round {number}: {kill_line}",
               "  creations: " + " | ".join(attempt.line() for attempt in burst.attempts), f"  {settle}"]
    for title, lines in (("invariant violations", problems), ("deletion through the API failed", failures),
                         ("left after deleting everything", remaining), ("restarted node's log", log_notes)):
        fresh = [line for line in lines if line not in seen]
        seen.update(fresh)
        report.append(f"  {title}: {len(lines)}" + (f" ({len(lines) - len(fresh)} already reported)"
                                                   if len(fresh) < len(lines) else ""))
        report += [f"    - {line}" + ("" if of_round(line, number) else "  [object of an earlier round]")
                   for line in fresh]
    return bool(problems or failures or remaining)


def test_kill_9_during_creations_leaves_nothing_half_made(node_platform):
    t = build(node_platform)
    standalone_adapters: set[str] = set()
    seen: set[str] = set()
    report: list[str] = [f"seed {SEED}"]
    failed = False
    started = time.monotonic()
    for number, (band, held_types) in enumerate(zip(KILL_BANDS, HELD_BACK, strict=True), 1):
        try:
            failed = crash_round(node_platform, t, number, band, held_types, standalone_adapters, seen,
                                 report) or failed
        except Exception as exc:  # noqa: BLE001 - the report so far is what the lead needs
            report.append(f"round {number}: ABORTED by {type(exc).__name__}: {exc}")
            failed = True
            break
    report.append(f"total {time.monotonic() - started:.0f}s")
    text = "\n".join(report)
    print(text)
    (node_platform.workdir / "crash-report.txt").write_text(text)
    assert not failed, "crash recovery left things behind:\n" + text


# -- a kMotion cut short ----------------------------------------------------------------------------


def _raw(platform: NodePlatform, method: str, path: str, body: dict) -> tuple[int, typing.Any]:
    """A raw 0.58 request (no 0.58 SDK here) as superAdmin; (status, decoded body)."""
    response = urllib3.request(method, f"{platform.node.url}/api/v1{path}", body=json.dumps(body), retries=False,
                               headers={"X-API-Key": MASTER_KEY, "Content-Type": "application/json"}, timeout=60)
    return response.status, (json.loads(response.data) if response.data else None)


@pytest.mark.parametrize("target_answers", ["an error", "success"])
def test_kill_9_during_a_kmotion_finishes_it_or_rolls_it_back(node_platform, target_answers):
    """The node dies while the target Kaktus defines the domain (the source has already undefined it): the
    restarted node asks both nodes where the domain is and finishes the move on the target (the definition got
    there) or defines it again on the source, running as it was, from the definition written down before."""
    t = build(node_platform, extra_subnets=0)
    project = k.ProjectApi(node_platform.client()).create_project(k.Project(
        name="moves", domain="moves.acme.internal", teams=[], root_password="S3cret-root-pw",
        regions=[t.regions["eu-west"].id]), subnet_size=26)
    made = k.ProjectApi(node_platform.client()).create_project_zone_kompute(
        project.id, t.zones["a"].id, k.Kompute(name="mv-1", vcpus=1, memory=2 * GIB, disk=10 * GIB))
    source, target = t.agents["kaktus-a"], t.agents["kaktus-b"]
    status, plan = _raw(node_platform, "POST", f"/kompute/{made.id}/kmotion/plan",
                        {"destination": "manual", "kaktus": t.kaktuses["b"].id, "live": False})
    assert status == 201, plan
    release = gevent.event.Event()
    target.behaviour.hold["CreateInstance"] = release
    committing = gevent.spawn(_raw, node_platform, "PATCH", f"/kompute/{made.id}/kmotion/commit", {"plan": plan["id"]})
    target.wait_for_call("CreateInstance", timeout=30)
    assert "mv-1" not in source.instances  # undefined on the source, not yet defined on the target
    node_platform.kill()
    if target_answers == "an error":
        target.behaviour.failures["CreateInstance"] = "virError(Code=1, Message='internal error')"
    release.set()  # the agent finishes the call; its answer is lost with the node
    del target.behaviour.hold["CreateInstance"]
    committing.join(timeout=30)
    node_platform.restart()
    instance_id = str(node_platform.db.kompute.find_one({"_id": ObjectId(made.id)})["instance_id"])

    def settled() -> bool:
        doc = node_platform.db.instance.find_one({"_id": ObjectId(instance_id)})
        return doc is not None and doc.get("state") == "ready" and "kmotion" not in doc

    wait_until(settled, SETTLE_SECONDS, "the kMotion resolved after the restart")
    doc = node_platform.db.instance.find_one({"_id": ObjectId(instance_id)})
    if target_answers == "success":
        assert doc["kaktus_id"] == t.kaktuses["b"].id and doc["zone_id"] == t.zones["b"].id
        assert "mv-1" not in source.instances
        wait_until(lambda: target.instances.get("mv-1", {}).get("State") == "Running", 10, "mv-1 running on k-b")
    else:
        assert doc["kaktus_id"] == t.kaktuses["a"].id and doc["zone_id"] == t.zones["a"].id
        assert "mv-1" not in target.instances
        wait_until(lambda: source.instances.get("mv-1", {}).get("State") == "Running", 10, "mv-1 running on k-a")
    # It is whole: the Kompute can be deleted, everywhere.
    k.KomputeApi(node_platform.client()).delete_kompute(made.id)
    assert not any("mv-1" in agent.instances for agent in (source, target))
