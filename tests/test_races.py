"""Races through the REST API, the way an attacker runs them: N clients, each on its own connection, released
together by a barrier. Each test asserts the correct outcome (one winner, or the right refusal) and checks the
database and the simulated agents afterwards: whatever the interleaving, nothing may be given twice, no last
superAdmin may go, no limit may be overrun, and nothing may point to an object that is gone.

What the interleaving is varies from run to run; what is asserted does not (no timings are asserted, every wait
is bounded).
"""

from __future__ import annotations

import collections
import json
import os
import random
import typing
import urllib.parse
from dataclasses import dataclass

import bson
import gevent
import gevent.event
import kowabunga as k
import pytest
import urllib3

from tests.deployment import ADMIN_EMAIL, MASTER_KEY, Deployment
from tests.mailserver import fact_in, link_in

GIB = 1024**3
#: Bound on one whole race (every client's request answered), on a busy machine.
RACE_TIMEOUT = 120.0
WEST_KIWIS = ("kiwi-west-1", "kiwi-west-2")


# -- racing ------------------------------------------------------------------------------------------------


class Barrier:
    """Releases every party at once, when the last one arrives (greenlets: no preemption between the lines)."""

    def __init__(self, parties: int):
        self.parties = parties
        self.arrived = 0
        self.released = gevent.event.Event()

    def wait(self, timeout: float = RACE_TIMEOUT) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.released.set()
        assert self.released.wait(timeout), f"only {self.arrived} of {self.parties} parties reached the barrier"


@dataclass
class Outcome:
    status: int
    data: typing.Any = None  # the SDK model, the raw body, or the error document


def _json(raw: typing.Any) -> typing.Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def outcome_of(call: typing.Callable[[], typing.Any]) -> Outcome:
    try:
        result = call()
    except k.ApiException as exc:
        return Outcome(exc.status, _json(exc.body))
    if isinstance(result, k.ApiResponse):
        return Outcome(result.status_code, result.data)
    if isinstance(result, urllib3.BaseHTTPResponse):
        return Outcome(result.status, result.data)
    return Outcome(200, result)


def worker_client(deployment: Deployment, api_key: str | None = MASTER_KEY) -> k.ApiClient:
    """An SDK client of its own (its own urllib3 pool), its connection opened before the race starts, so that
    the barrier releases requests rather than TCP handshakes."""
    client = deployment.client(api_key=api_key)
    warm = client.rest_client.pool_manager.request("GET", f"{deployment.base_url}/version", retries=False)
    assert warm.status == 200
    return client


def race(deployment: Deployment, tasks: typing.Sequence[typing.Callable[[k.ApiClient], typing.Any]],
         api_key: str | None = MASTER_KEY) -> list[Outcome]:
    """Run each ``task(client)`` in its own greenlet with its own client, all released together by a barrier;
    return their outcomes in the order of *tasks*."""
    clients = [worker_client(deployment, api_key) for _ in tasks]
    barrier = Barrier(len(tasks))

    def run(task, client) -> Outcome:
        barrier.wait()
        return outcome_of(lambda: task(client))

    greenlets = [gevent.spawn(run, task, client) for task, client in zip(tasks, clients, strict=True)]
    gevent.joinall(greenlets, timeout=RACE_TIMEOUT)
    unfinished = [g for g in greenlets if not g.ready()]
    if unfinished:
        gevent.killall(unfinished)
        raise AssertionError(f"{len(unfinished)} of {len(greenlets)} racing requests unanswered after {RACE_TIMEOUT}s")
    for greenlet in greenlets:
        if not greenlet.successful():
            raise greenlet.exception
    return [g.value for g in greenlets]


def statuses(outcomes: typing.Iterable[Outcome]) -> collections.Counter:
    return collections.Counter(o.status for o in outcomes)


def assert_documented_error(outcome: Outcome, allowed: typing.Collection[int]) -> None:
    assert outcome.status in allowed, f"expected one of {sorted(allowed)}, got {outcome.status}: {outcome.data}"
    body = outcome.data
    assert isinstance(body, dict) and set(body) == {"status", "error", "reason"}, body
    assert body["status"] == outcome.status and body["error"] and body["reason"], body


def after(delay: float, task: typing.Callable[[k.ApiClient], typing.Any]) -> typing.Callable[[k.ApiClient], typing.Any]:
    """*task*, started *delay* seconds after the release: spreads the racers over the window of a slower request."""
    def delayed(client: k.ApiClient) -> typing.Any:
        gevent.sleep(delay)
        return task(client)
    return delayed


# -- the platform ------------------------------------------------------------------------------------------


def db_of(platform_or_deployment) -> typing.Any:
    deployment = getattr(platform_or_deployment, "deployment", platform_or_deployment)
    return deployment.kahuna.db.db


def new_project(platform, name: str, quotas: k.ProjectResources | None = None) -> k.Project:
    return k.ProjectApi(platform.api).create_project(k.Project(
        name=name, domain=f"{name}.acme.internal", teams=[], regions=[platform.regions["eu-west"].id],
        quotas=quotas), subnet_size=26)


def add_private_subnets(platform, count: int) -> None:
    """*count* more /26 private subnets in eu-west (10.50.1.0/26 on), each with a gateway per zone."""
    vnets = k.VnetApi(platform.api)
    private = platform.vnets["eu-west-private"]
    for n in range(count):
        third, base = 1 + n // 4, (n % 4) * 64
        prefix = f"10.50.{third}"
        platform.subnets[f"eu-west-extra-{n}"] = vnets.create_subnet(private.id, k.Subnet(
            name=f"extra-{n}", cidr=f"{prefix}.{base}/26", gateway=f"{prefix}.{base + 1}",
            reserved=[k.IpRange(first=f"{prefix}.{base + 2}", last=f"{prefix}.{base + 5}")],
            gw_pool=[k.IpRange(first=f"{prefix}.{base + 6}", last=f"{prefix}.{base + 7}")]))


# -- 1. private subnets --------------------------------------------------------------------------------------


def test_projects_created_at_once_get_distinct_subnets(platform):
    add_private_subnets(platform, 8)
    west = platform.regions["eu-west"].id
    db = db_of(platform)
    free = db["subnet"].count_documents({"region_id": west, "private": True, "project_id": "", "prefix_length": 26})
    assert free >= 10, f"the region has only {free} free /26 subnets"
    names = [f"tenant-{n}" for n in range(10)]

    outcomes = race(platform.deployment, [
        lambda client, name=name: k.ProjectApi(client).create_project_with_http_info(k.Project(
            name=name, domain=f"{name}.acme.internal", teams=[], regions=[west]), subnet_size=26)
        for name in names])

    assert statuses(outcomes) == {201: 10}, [(o.status, o.data) for o in outcomes]
    given = {o.data.id: o.data.private_subnets[0].value for o in outcomes}
    shares = sorted(collections.Counter(given.values()).values())
    assert len(shares) == 10, f"10 projects got {len(shares)} distinct subnets (projects per subnet: {shares})"
    # As stored: each subnet held by the one project that lists it, the zone gateways different for each.
    holders = {str(s["_id"]): s["project_id"] for s in db["subnet"].find({"project_id": {"$ne": ""}})}
    assert holders == {subnet: project for project, subnet in given.items()}
    gateways = [address for p in db["project"].find() for address in p["zone_gateways"].values()]
    assert len(gateways) == len(set(gateways)) == 20, sorted(gateways)


# -- 2. password-reset link ------------------------------------------------------------------------------------


def test_a_password_reset_link_followed_at_once_works_once(deployment):
    bob = deployment.create_account("bob")
    for round_ in range(1, 5):  # a few links: each one's race is short
        k.UserApi(deployment.admin).reset_user_password(bob.id)
        request = deployment.mail.wait_for(bob.email, "Forgot about your Kowabunga password", count=round_)
        link = urllib.parse.urlsplit(link_in(request))
        url = f"{deployment.base_url}{link.path}"
        form = urllib.parse.urlencode(dict(urllib.parse.parse_qsl(link.query)))

        def press_the_button(client, url=url, form=form):  # the page's form POST, as Deployment.follow sends it
            return client.rest_client.pool_manager.request(
                "POST", url, body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}, retries=False)

        outcomes = race(deployment, [press_the_button] * 12, api_key=None)

        accepted = statuses(outcomes)[200]
        assert accepted == 1, f"link #{round_}, followed 12 times at once, was accepted {accepted} times"
        assert statuses(outcomes) == {200: 1, 403: 11}
        # Kahuna hands each letter to the relay before answering: every request answered, every letter delivered.
        letter = deployment.mail.wait_for(bob.email, "password has been reset", count=round_)
        sent = deployment.mail.count(bob.email, "password has been reset") - (round_ - 1)
        assert sent == 1, f"{sent} new-password e-mails were sent for link #{round_}"
        k.UserApi(deployment.anonymous()).login(k.UserCredentials(email=bob.email,
                                                                  password=fact_in(letter, "Password")))


# -- 3. one volume, one adapter --------------------------------------------------------------------------------


def _instances_at_once(platform, project, volume_sets, adapter_sets) -> list[Outcome]:
    zone = platform.zones["a"].id
    return race(platform.deployment, [
        lambda client, n=n: k.ProjectApi(client).create_project_zone_instance_with_http_info(
            project.id, zone, k.Instance(name=f"vm-{n}", vcpus=1, memory=GIB, volumes=volume_sets[n],
                                         adapters=adapter_sets[n]))
        for n in range(len(volume_sets))])


def _one_winner(platform, outcomes: list[Outcome], what: str, query: dict) -> None:
    winners = [o.data.name for o in outcomes if o.status == 201]
    assert len(winners) == 1, f"{len(outcomes)} instances given one {what} at once: {len(winners)} got it ({winners})"
    for outcome in outcomes:
        if outcome.status != 201:
            assert_documented_error(outcome, (409, 422))
    db = db_of(platform)
    assert [i["name"] for i in db["instance"].find(query)] == winners
    # The losers left nothing behind: no document, no domain, no seed.
    assert [i["name"] for i in db["instance"].find()] == winners
    assert set(platform.agents["kaktus-a"].instances) == set(winners)
    seeds = {v["name"] for v in db["volume"].find({"type": "iso"})}
    assert seeds == {f"{winners[0]}-cloudinit"}


def test_one_volume_given_to_five_instances_at_once_goes_to_one(platform):
    project = new_project(platform, "shop")
    shared = k.ProjectApi(platform.api).create_project_region_volume(
        project.id, platform.regions["eu-west"].id, k.Volume(name="shared-os", type="os", size=10 * GIB))
    subnets = k.SubnetApi(platform.api)
    adapters = [subnets.create_adapter(project.private_subnets[0].value, k.Adapter(name=f"nic-{n}"), assign_ip=True)
                for n in range(5)]

    outcomes = _instances_at_once(platform, project, [[shared.id]] * 5, [[a.id] for a in adapters])

    _one_winner(platform, outcomes, "volume", {"volume_ids": shared.id})


def test_one_adapter_given_to_five_instances_at_once_goes_to_one(platform):
    project = new_project(platform, "shop")
    projects = k.ProjectApi(platform.api)
    volumes = [projects.create_project_region_volume(project.id, platform.regions["eu-west"].id,
                                                     k.Volume(name=f"os-{n}", type="os", size=10 * GIB))
               for n in range(5)]
    shared = k.SubnetApi(platform.api).create_adapter(project.private_subnets[0].value, k.Adapter(name="shared-nic"),
                                                      assign_ip=True)

    outcomes = _instances_at_once(platform, project, [[v.id] for v in volumes], [[shared.id]] * 5)

    _one_winner(platform, outcomes, "adapter", {"adapter_ids": shared.id})


# -- 4. the last superAdmin ------------------------------------------------------------------------------------


@pytest.mark.parametrize("removal", ["delete", "demote"])
def test_super_admins_removed_at_once_leave_one(deployment, removal):
    assert deployment.kahuna.bootstrap_admin() is not None  # the first superAdmin, before any other user
    admins = [deployment.create_account(f"root{n}", role="superAdmin") for n in range(3)]
    db = db_of(deployment)
    everyone = [str(u["_id"]) for u in db["user"].find({"role": "superAdmin", "enabled": True})]
    assert len(everyone) == 4 and {a.id for a in admins} < set(everyone)
    users = {user_id: k.UserApi(deployment.admin).read_user(user_id) for user_id in everyone}
    assert ADMIN_EMAIL in {u.email for u in users.values()}

    if removal == "delete":
        refusal = 409
        tasks = [lambda client, uid=uid: k.UserApi(client).delete_user_with_http_info(uid) for uid in everyone]
    else:
        refusal = 422
        tasks = [lambda client, uid=uid: k.UserApi(client).update_user_with_http_info(uid, k.User(
            name=users[uid].name, email=users[uid].email, role="user")) for uid in everyone]
    outcomes = race(deployment, tasks)

    left = [str(u["_id"]) for u in db["user"].find({"role": "superAdmin", "enabled": True})]
    assert left, f"4 superAdmins removed at once ({removal}): none is left ({statuses(outcomes)})"
    refused = [uid for uid, o in zip(everyone, outcomes, strict=True) if o.status != 200]
    for outcome in outcomes:
        if outcome.status != 200:
            assert_documented_error(outcome, (refusal,))
    assert len(refused) == 1, f"{len(refused)} removals refused, expected the last one only"
    assert left == refused


# -- 5. deleting a project while things are created in it ------------------------------------------------------


def test_a_project_deleted_while_things_are_created_in_it_keeps_them_or_leaves_nothing(platform):
    west, zone = platform.regions["eu-west"].id, platform.zones["a"].id
    db = db_of(platform)
    add_private_subnets(platform, 4)  # a subnet for each round's project, kept or not
    for round_ in range(6):
        tag = f"r{round_}"
        project = new_project(platform, f"doomed-{tag}")
        domain = f"doomed-{tag}.acme.internal"
        creates = (
            [lambda c, n=n, p=project, t=tag: k.ProjectApi(c).create_project_region_volume_with_http_info(
                p.id, west, k.Volume(name=f"{t}-data-{n}", type="raw", size=GIB)) for n in range(3)]
            + [lambda c, n=n, p=project, t=tag: k.ProjectApi(c).create_project_dns_record_with_http_info(
                p.id, k.DnsRecord(name=f"{t}-host-{n}", addresses=[f"10.50.0.{20 + n}"])) for n in range(3)]
            + [lambda c, n=n, p=project, t=tag: k.ProjectApi(c).create_project_zone_kompute_with_http_info(
                p.id, zone, k.Kompute(name=f"{t}-vm-{n}", vcpus=1, memory=GIB, disk=2 * GIB))
               for n in range(2)])
        # The creations spread over ~40 ms, the deletion a little later each round: some land inside its window.
        tasks = [after(0.004 * round_, lambda c, p=project: k.ProjectApi(c).delete_project_with_http_info(p.id))]
        tasks += [after(0.005 * n, create) for n, create in enumerate(creates)]

        outcomes = race(platform.deployment, tasks)

        deletion, made = outcomes[0], outcomes[1:]
        assert deletion.status == 200 or deletion.status == 409, (deletion.status, deletion.data)
        for outcome in made:
            assert outcome.status == 201 or outcome.status in (404, 409, 422), (outcome.status, outcome.data)
        if db["project"].find_one({"_id": bson.ObjectId(project.id)}):
            continue  # the project stays, with whatever was made in it
        left = {c: [d.get("name") for d in db[c].find({"project_id": project.id})]
                for c in ("instance", "volume", "kompute", "dns_record", "kylo", "kawaii", "konvey")}
        left["subnet"] = [s["name"] for s in db["subnet"].find({"project_id": project.id})]
        left["adapter"] = [a["name"] for a in db["adapter"].find({"name": {"$regex": f"^{tag}-"}})]
        assert not any(left.values()), \
            f"round {round_}: project deleted ({statuses(outcomes)}), yet still referenced: " \
            f"{ {c: names for c, names in left.items() if names} }"
        for name in WEST_KIWIS:
            agent = platform.agents[name]
            assert domain not in agent.dns_zones, (name, agent.dns_zones)
            assert not agent.dns_records.get(domain), f"{name} still serves {agent.dns_records.get(domain)}"
        for name in ("kaktus-a", "kaktus-b"):
            agent = platform.agents[name]
            assert not [i for i in agent.instances if i.startswith(f"{tag}-")], (name, list(agent.instances))
            assert not [v for _, v in agent.volumes if v.startswith(f"{tag}-")], (name, list(agent.volumes))


# -- 6. login throttling -------------------------------------------------------------------------------------


def _login(client, base_url: str, email: str, password: str) -> urllib3.BaseHTTPResponse:
    return client.rest_client.pool_manager.request("POST", f"{base_url}/api/v1/login", retries=False,
                                                   json={"email": email, "password": password})


def test_a_burst_of_wrong_passwords_is_held_to_the_per_account_limit(deployment):
    limit = deployment.kahuna.config.global_.accounts.loginFailuresPerAccount
    bob = deployment.create_account("bob")
    wrong, answered = 40, []
    limit_reached = gevent.event.Event()

    def guess(client):
        try:
            response = _login(client, deployment.base_url, bob.email, "not-bobs-password")
            answered.append(response.status)
            return response
        finally:
            if answered.count(401) >= limit or len(answered) == wrong:
                limit_reached.set()

    def owner(client):
        # Still inside the burst: as soon as the limit's worth of failures have been answered.
        assert limit_reached.wait(RACE_TIMEOUT)
        return _login(client, deployment.base_url, bob.email, bob.password)

    outcomes = race(deployment, [guess] * wrong + [owner], api_key=None)

    guesses, right = statuses(outcomes[:-1]), outcomes[-1]
    assert guesses[401] <= limit, f"{wrong} wrong passwords at once: {guesses[401]} were checked (401), limit {limit}"
    assert guesses[401] >= 1 and guesses[401] + guesses[429] == wrong, guesses
    assert right.status == 429, f"the right password after {limit} failures got {right.status}, not 429"
    for outcome in outcomes:
        if outcome.status == 429:
            assert json.loads(outcome.data)["status"] == 429


def test_a_burst_of_logins_from_one_source_is_held_to_the_per_source_limit(deployment):
    limit = deployment.kahuna.config.global_.accounts.loginFailuresPerSource
    tasks = [lambda client, n=n: _login(client, deployment.base_url, f"guess{n}@example.com", "password-guess")
             for n in range(100)]

    outcomes = race(deployment, tasks, api_key=None)

    counted = statuses(outcomes)
    assert counted[401] <= limit, \
        f"100 logins at once from one address: {counted[401]} were checked (401), limit {limit}"
    assert counted[401] >= 1 and counted[401] + counted[429] == 100, counted


# -- 7. randomized: many writers on shared objects ---------------------------------------------------------------

SEED = int(os.environ.get("KAHUNA_RACE_SEED", "1307"))
OPERATIONS, WORKERS, ROUNDS = 60, 8, 3
QUOTAS = {"instances": 2, "vcpus": 2, "memory": 2 * GIB, "storage": 3 * GIB}
KINDS = {  # operation: weight
    "create_project": 3, "update_project": 2, "delete_project": 4,
    "create_volume": 6, "grow_volume": 3, "delete_volume": 4,
    "create_adapter": 4, "delete_adapter": 3,
    "create_instance": 10, "delete_instance": 3,
    "create_record": 3, "remove_admin": 4, "promote_admin": 1,
}
NOWHERE = "0" * 24


def plan_operations(seed: int) -> list[tuple[int, str, int, int]]:
    """(index, kind, target seed, parameter seed): in bursts of 2 to 5 that aim at the same objects; the workers
    take them in order, so a burst's operations run at the same time."""
    r = random.Random(seed)
    operations: list[tuple[int, str, int, int]] = []
    while len(operations) < OPERATIONS:
        target = r.randrange(1 << 30)
        for _ in range(r.randint(2, 5)):
            kind = r.choices(list(KINDS), weights=list(KINDS.values()))[0]
            operations.append((len(operations), kind, target, r.randrange(1 << 30)))
    return operations[:OPERATIONS]


class Shared:
    """What the clients know of, from the answers they got (stale entries only make refusals)."""

    def __init__(self, platform):
        self.platform = platform
        self.projects: dict[str, k.Project] = {}
        self.volumes: dict[str, tuple[k.Volume, str]] = {}  # id: (volume, project id)
        self.adapters: dict[str, k.Adapter] = {}
        self.instances: dict[str, k.Instance] = {}
        self.admins: dict[str, k.User] = {}

    def populate(self, client: k.ApiClient) -> None:
        """A few of everything, before the race."""
        for n in range(3):
            self.run(client, "create_project", random.Random(n), random.Random(n), name=f"t{n}")
            for _ in range(2):
                self.run(client, "create_volume", random.Random(n), random.Random(len(self.volumes)),
                         name=f"v{len(self.volumes)}", project=sorted(self.projects)[-1])
        for n in range(4):
            self.run(client, "create_adapter", random.Random(n), random.Random(1), name=f"n{n}")
        users = k.UserApi(client)
        self.admins = {uid: users.read_user(uid) for uid in users.list_users()}

    def run(self, client: k.ApiClient, kind: str, target: random.Random, param: random.Random,
            name: str | None = None, project: str | None = None) -> typing.Any:
        p = self.platform
        west, zone, public = p.regions["eu-west"].id, p.zones["a"].id, p.subnets["eu-west-public"].id
        projects, volumes = k.ProjectApi(client), k.VolumeApi(client)

        def pick(known: typing.Iterable[str], r: random.Random = target) -> str:
            known = sorted(known)
            return r.choice(known) if known else NOWHERE

        if kind == "create_project":
            name = name or f"t{param.randrange(5)}"
            made = projects.create_project_with_http_info(k.Project(
                name=name, domain=f"{name}.acme.internal", teams=[], regions=[west],
                quotas=k.ProjectResources(**QUOTAS)), subnet_size=26)
            self.projects[made.data.id] = made.data
            return made
        if kind == "update_project":
            project = self.projects.get(pick(self.projects))
            if project is None:
                return projects.read_project_with_http_info(NOWHERE)
            return projects.update_project_with_http_info(project.id, k.Project(
                name=project.name, description=f"touched {param.randrange(1000)}", teams=[], regions=[west],
                quotas=k.ProjectResources(**QUOTAS)))
        if kind == "delete_project":
            project_id = pick(self.projects)
            done = projects.delete_project_with_http_info(project_id)
            self.projects.pop(project_id, None)
            return done
        if kind == "create_volume":
            project = project or pick(self.projects)
            made = projects.create_project_region_volume_with_http_info(
                project, west, k.Volume(name=name or f"v{param.randrange(10)}", type="os", size=GIB))
            self.volumes[made.data.id] = (made.data, project)
            return made
        if kind == "grow_volume":
            volume, _ = self.volumes.get(pick(self.volumes), (None, None))
            if volume is None:
                return volumes.read_volume_with_http_info(NOWHERE)
            return volumes.update_volume_with_http_info(volume.id, k.Volume(name=volume.name, type=volume.type,
                                                                           size=volume.size + GIB))
        if kind == "delete_volume":
            volume_id = pick(self.volumes)
            done = volumes.delete_volume_with_http_info(volume_id)
            self.volumes.pop(volume_id, None)
            return done
        if kind == "create_adapter":
            # Some addresses asked for by name (they collide), the others handed out.
            addresses = [f"198.51.50.{10 + param.randrange(4)}"] if not name and param.random() < 0.5 else None
            made = k.SubnetApi(client).create_adapter_with_http_info(
                public, k.Adapter(name=name or f"n{param.randrange(12)}", addresses=addresses),
                assign_ip=addresses is None)
            self.adapters[made.data.id] = made.data
            return made
        if kind == "delete_adapter":
            adapter_id = pick(self.adapters)
            done = k.AdapterApi(client).delete_adapter_with_http_info(adapter_id)
            self.adapters.pop(adapter_id, None)
            return done
        if kind == "create_instance":
            project = pick(self.projects)
            volume = pick([v for v, (_, owner) in self.volumes.items() if owner == project] or self.volumes)
            made = projects.create_project_zone_instance_with_http_info(project, zone, k.Instance(
                name=f"i{param.randrange(8)}", vcpus=1, memory=GIB, volumes=[volume],
                adapters=[pick(self.adapters)]))
            self.instances[made.data.id] = made.data
            return made
        if kind == "delete_instance":
            instance_id = pick(self.instances)
            done = k.InstanceApi(client).delete_instance_with_http_info(instance_id)
            self.instances.pop(instance_id, None)
            return done
        if kind == "create_record":
            return projects.create_project_dns_record_with_http_info(pick(self.projects), k.DnsRecord(
                name=f"h{param.randrange(4)}", addresses=[f"10.50.0.{20 + param.randrange(4)}"]))
        user = self.admins[pick(self.admins, param)]  # different superAdmins at once
        if kind == "remove_admin" and param.random() < 0.5:
            return k.UserApi(client).delete_user_with_http_info(user.id)
        role = "superAdmin" if kind == "promote_admin" else "user"
        return k.UserApi(client).update_user_with_http_info(user.id, k.User(name=user.name, email=user.email,
                                                                            role=role))


def invariant_violations(platform) -> list[str]:
    """Everything wrong in the database and on the simulated agents once every request has been answered."""
    db = db_of(platform)
    problems = []
    projects = {str(p["_id"]): p for p in db["project"].find()}
    instances = list(db["instance"].find())
    volumes = {str(v["_id"]): v for v in db["volume"].find()}
    adapters = {str(a["_id"]): a for a in db["adapter"].find()}
    # No subnet in two projects; a subnet held is held by the project that lists it.
    listed = collections.defaultdict(list)
    for project_id, project in projects.items():
        for entry in project.get("private_subnets", []):
            listed[entry["value"]].append(project_id)
    for subnet_id, holders in listed.items():
        if len(holders) > 1:
            problems.append(f"subnet {subnet_id} is the private subnet of {len(holders)} projects")
    for subnet in db["subnet"].find({"project_id": {"$ne": ""}}):
        if subnet["project_id"] not in projects:
            problems.append(f"subnet {subnet['name']} is held by deleted project {subnet['project_id']}")
        elif listed.get(str(subnet["_id"])) != [subnet["project_id"]]:
            problems.append(f"subnet {subnet['name']} is held by {subnet['project_id']}, listed by "
                            f"{listed.get(str(subnet['_id']))}")
    # No address twice in a subnet.
    taken = collections.Counter((a["subnet_id"], address) for a in adapters.values()
                                for address in a.get("addresses", []))
    problems += [f"address {address} is given {n} times" for (_, address), n in taken.items() if n > 1]
    # No volume or adapter in two instances; nothing an instance uses is gone.
    for field, existing in (("volume_ids", volumes), ("adapter_ids", adapters)):
        users = collections.Counter(x for i in instances for x in i.get(field, []))
        problems += [f"{field[:-4]} {x} is in {n} instances" for x, n in users.items() if n > 1]
        problems += [f"instance {i['name']} uses deleted {field[:-4]} {x}"
                     for i in instances for x in i.get(field, []) if x not in existing]
    # Nothing owned by a deleted project.
    for collection in ("instance", "volume", "kompute", "dns_record"):
        for document in db[collection].find({"project_id": {"$nin": ["", *projects]}}):
            problems.append(f"{collection} {document.get('name')} belongs to deleted project {document['project_id']}")
    # Nothing left half made.
    for collection in ("instance", "volume"):
        problems += [f"{collection} {d['name']} is still being created"
                     for d in db[collection].find({"state": "creating"})]
    # Quotas held.
    for project_id, project in projects.items():
        mine = [i for i in instances if i["project_id"] == project_id]
        usage = {"instances": len(mine), "vcpus": sum(i["vcpus"] for i in mine),
                 "memory": sum(i["memory"] for i in mine),
                 "storage": sum(v["size"] for v in volumes.values()
                                if v["project_id"] == project_id and v["type"] in ("os", "raw"))}
        problems += [f"project {project['name']} holds {usage[q]} {q}, quota {limit}"
                     for q, limit in project["quotas"].items() if limit and usage[q] > limit]
    # At least one superAdmin.
    if not db["user"].count_documents({"role": "superAdmin", "enabled": True}):
        problems.append("no enabled superAdmin is left")
    # The agents hold what the database says, and nothing else.
    domains = set(platform.agents["kaktus-a"].instances)
    named = {i["name"] for i in instances}
    if domains != named:
        problems.append(f"Kaktus domains {sorted(domains)} but instances {sorted(named)}")
    images = {name for (_, name) in platform.agents["kaktus-a"].volumes} - {"ubuntu-24"}
    stored = {v["name"] for v in volumes.values()}
    if images != stored:
        problems.append(f"pool images {sorted(images)} but volumes {sorted(stored)}")
    return problems


def test_random_writers_on_shared_objects_keep_the_invariants(platform):
    deployment = platform.deployment
    assert deployment.kahuna.bootstrap_admin() is not None
    for n in range(2):
        deployment.create_account(f"root{n}", role="superAdmin")
    shared = Shared(platform)
    shared.populate(platform.api)
    for round_ in range(ROUNDS):  # a few rounds, each checked: the state of one is where the next starts
        seed = SEED + round_
        operations = collections.deque(plan_operations(seed))
        log: list[tuple[int, str, int, typing.Any]] = []

        def worker(client, operations=operations, log=log):
            while operations:
                index, kind, target, param = operations.popleft()
                outcome = outcome_of(lambda kind=kind, target=target, param=param: shared.run(
                    client, kind, random.Random(target), random.Random(param)))
                log.append((index, kind, outcome.status, outcome.data if outcome.status >= 400 else None))
            return Outcome(200)

        race(deployment, [worker] * WORKERS)

        assert len(log) == OPERATIONS
        summary = collections.Counter((kind, status) for _, kind, status, _ in log)
        failures = [entry for entry in log if entry[2] >= 500 and entry[2] not in (503, 507)]  # 507: a quota
        assert not failures, f"seed {seed}: server errors {failures}"
        problems = invariant_violations(platform)
        assert not problems, f"seed {seed} ({sorted(summary.items())}): " + "; ".join(problems)
