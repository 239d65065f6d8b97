"""The walk of every operation of an API version through its official SDK, against one Kahuna.

The same steps for both versions: the accounts go through the mail server as tests/deployment.py does, on the
platform of tests/topology.py (built with the 0.53.2 SDK in this process); then one client drives the CRUD of every
resource with partial updates, maintenance, region-wide creations, Kwarantine, kMotion plan and commit against the
simulated agents. Through the 0.58 SDK (:class:`tests.sdk058.harness.Sdk058`, a child process) that is the 187
operations of 0.58.0; through the 0.53.2 SDK in this process (:class:`Sdk053`) the operations 0.53.2 lacks are left
out, the 12 renamed ones go by their old names, and an update is what a 0.53.2 client does: read the object, change
it, send it whole.

The walk goes on after a failed step (the steps that need its result are skipped, and noted), so that one run names
every operation that does not work; the tests then fail with that list.
"""

from __future__ import annotations

import datetime
import typing

import kowabunga

from tests import topology
from tests.deployment import ADMIN_EMAIL, Account, Deployment
from tests.mailserver import fact_in, link_in
from tests.sdk058.harness import Result, model, operation_ids_of

GIB = 1024**3
STRONG = "Tr0ub4dor&3-horse-Battery"
IPSEC = {"phase1_dh_group_number": 14, "phase1_integrity_algorithm": "SHA256",
         "phase1_encryption_algorithm": "AES256", "phase2_dh_group_number": 14,
         "phase2_integrity_algorithm": "SHA256", "phase2_encryption_algorithm": "AES256"}


class Skipped:
    """The result of a step not done: the steps given it are not sent either."""

    def __init__(self, why: str):
        self.why = why

    def __repr__(self) -> str:
        return f"<{self.why}>"


FAILED = Skipped("a step that failed")
ABSENT = Skipped("an operation this SDK version does not have")


def missing(value: typing.Any) -> bool:
    return isinstance(value, Skipped)


def listed(value: typing.Any) -> typing.Any:
    """``[value]``, or the Skipped *value* itself."""
    return value if missing(value) else [value]


def _holding(value: typing.Any) -> Skipped | None:
    """FAILED or ABSENT if *value* holds one (FAILED first), else None."""
    if isinstance(value, dict):
        found = [_holding(item) for item in value.values()]
    elif isinstance(value, (list, tuple)):
        found = [_holding(item) for item in value]
    else:
        return value if isinstance(value, Skipped) else None
    return FAILED if FAILED in found else ABSENT if ABSENT in found else None


class Driver(typing.Protocol):
    def call(self, api: str, method: str, *args: typing.Any, auth: dict[str, str | None] | None = None,
             **kwargs: typing.Any) -> Result | None: ...

    def operations(self) -> set[str]: ...


class Walk:
    """Calls through one client, noting what failed (and why) instead of stopping at the first failure."""

    def __init__(self, client: Driver, tag: str):
        self.client = client
        self.tag = tag
        self.failures: list[str] = []

    def __call__(self, api: str, method: str, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        held = _holding((args, kwargs))
        if held is ABSENT:
            return ABSENT
        if held is FAILED:
            self.failures.append(f"{api}.{method}: skipped, a step it needs failed")
            return FAILED
        result = self.client.call(api, method, *args, **kwargs)
        if result is None:
            return ABSENT
        if not result.ok:
            self.failures.append(f"{api}.{method}: {result}")
            return FAILED
        return result.data

    def check(self, condition: bool, what: str) -> None:
        if not condition:
            self.failures.append(f"check failed: {what}")

    @staticmethod
    def get(data: typing.Any, key: str) -> typing.Any:
        return data if missing(data) else data[key]


# The operations 0.58.0 renamed (CHANGES-0.58.md), by their SDK methods: 0.58.0 -> 0.53.2.
RENAMED_053 = {
    "list_kaktuses": "list_kaktuss", "list_storage_nf_ses": "list_storage_nfss",
    "list_region_storage_nf_ses": "list_region_storage_nfss", "create_storage_pool_template": "create_template",
    "create_region_kiwi": "create_kiwi", "create_region_storage_nfs": "create_storage_nfs",
    "create_region_storage_pool": "create_storage_pool", "create_region_v_net": "create_v_net",
    "create_region_zone": "create_zone", "create_subnet_adapter": "create_adapter",
    "create_v_net_subnet": "create_subnet", "create_zone_kaktus": "create_kaktus",
}


def _decode053(value: typing.Any) -> typing.Any:
    if isinstance(value, list):
        return [_decode053(item) for item in value]
    if isinstance(value, dict):
        if "__model__" in value:
            fields = {key: _decode053(item) for key, item in value["fields"].items()}
            return getattr(kowabunga, value["__model__"])(**fields)
        return {key: _decode053(item) for key, item in value.items()}
    return value


def _encode(value: typing.Any) -> typing.Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, exclude_none=True, mode="json")
    if isinstance(value, list):
        return [_encode(item) for item in value]
    return value


class Sdk053:
    """The walk's calls through the 0.53.2 SDK, in this process: the 0.58 names of the renamed operations are
    mapped to the old ones, the new operations are absent (None), and an ``XUpdate`` is sent as a 0.53.2 client
    does: ``read_x``, then the whole ``X`` with the changes."""

    def __init__(self, deployment: Deployment, api_key: str):
        self.deployment = deployment
        self.default_auth: dict[str, str | None] = {"api_key": api_key, "token": None}
        self.seen: dict[str, set[int]] = {}

    def _method(self, api: str, method: str, auth: dict[str, str | None]) -> typing.Any:
        cls = getattr(kowabunga, api, None)
        name = RENAMED_053.get(method, method)
        if cls is None or not hasattr(cls, name):
            return None
        return getattr(cls(self.deployment.client(api_key=auth.get("api_key"), token=auth.get("token"))),
                       name + "_with_http_info")

    def call(self, api: str, method: str, *args: typing.Any, auth: dict[str, str | None] | None = None,
             **kwargs: typing.Any) -> Result | None:
        auth = self.default_auth if auth is None else auth
        call = self._method(api, method, auth)
        if call is None:
            return None
        try:
            if method.startswith("update_") and args[-1]["__model__"].endswith("Update"):
                read = self._method(api, "read_" + method.removeprefix("update_"), auth)
                current = read(*args[:-1]).data.model_dump(exclude_none=True)
                whole = model(args[-1]["__model__"].removesuffix("Update"), **{**current, **args[-1]["fields"]})
                args = (*args[:-1], whole)
            response = call(*_decode053(list(args)), **_decode053(kwargs))
        except kowabunga.ApiException as exc:
            body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
            return Result(ok=False, status=exc.status, body=body)
        except Exception as exc:  # noqa: BLE001 - reported by the walk: a response or argument the SDK refuses
            return Result(ok=False, status=None, error=f"{type(exc).__name__}: {exc}")
        status = int(response.status_code)
        self.seen.setdefault(RENAMED_053.get(method, method), set()).add(status)
        return Result(ok=True, status=status, data=_encode(response.data))

    def operations(self) -> set[str]:
        """The operationIds of the 0.53.2 contract this client called with a documented 2xx answer."""
        return operation_ids_of(self.seen, "0.53.2")


def confirmed(deployment: Deployment, email: str) -> str:
    """The password e-mailed once the welcome link is followed."""
    assert deployment.follow(link_in(deployment.mail.wait_for(email, "Welcome to Kowabunga"))).status == 200
    return fact_in(deployment.mail.wait_for(email, "account is ready"), "Password")


def recovered(deployment: Deployment, email: str, count: int) -> str:
    """The new password e-mailed once the *count*-th recovery link is followed."""
    request = deployment.mail.wait_for(email, "Forgot about your Kowabunga password", count=count)
    assert deployment.follow(link_in(request)).status == 200
    return fact_in(deployment.mail.wait_for(email, "password has been reset", count=count), "Password")


def walk_accounts(w: Walk, deployment: Deployment) -> dict[str, typing.Any]:
    """Users, passwords, sessions, API keys, teams, agents."""
    email = f"walker-{w.tag}@example.com"
    user = w("UserApi", "create_user", model("User", name="walker", email=email, role="user"))
    password = confirmed(deployment, email)
    anonymous: dict[str, str | None] = {"api_key": None, "token": None}

    def login(password: str) -> typing.Any:
        credentials = w("UserApi", "login", model("UserCredentials", email=email, password=password), auth=anonymous)
        w.check(missing(credentials) or bool(credentials.get("jwt")), f"Login gives a JWT: {credentials}")
        jwt = w.get(credentials, "jwt") if credentials else FAILED
        if missing(jwt):  # the rest of the walk still needs a session: the 0.53.2 SDK's login gives one
            jwt = deployment.login(Account(uid, email, password, "user")).configuration.access_token
        return {"api_key": None, "token": jwt}

    uid = w.get(user, "id")
    session = login(password)
    w.check(missing(user) or w("UserApi", "read_user", uid) == user, "ReadUser reads what CreateUser made")
    users = w("UserApi", "list_users")
    w.check(missing(users) or uid in users, "ListUsers lists the new user")
    updated = w("UserApi", "update_user", uid, model("UserUpdate", description="walks every operation"))
    w.check(missing(updated) or (updated["description"], updated["email"], updated["role"]) ==
            ("walks every operation", email, "user"), "a partial UpdateUser keeps the other fields")
    if not missing(w("UserApi", "set_user_password", uid, model("Password", value=STRONG), auth=session)):
        session = login(STRONG)
    recoveries = 0
    if not missing(w("UserApi", "reset_user_password", uid)):
        recoveries += 1
        session = login(recovered(deployment, email, recoveries))
    if not missing(w("UserApi", "reset_password", model("UserEmail", email=email), auth=anonymous)):
        recoveries += 1
        session = login(recovered(deployment, email, recoveries))
    expiry = datetime.date.today() + datetime.timedelta(days=30)
    before = w("TokenApi", "list_api_tokens")
    token = w("UserApi", "set_user_api_token", uid, expire=True, expiration_date=expiry, auth=session)
    api_key = token if missing(token) else fact_in(deployment.mail.wait_for(email, "A new Kowabunga API key"),
                                                     "API key")
    after = w("TokenApi", "list_api_tokens")
    new = [] if missing(before) or missing(after) else sorted(set(after) - set(before))
    w.check(len(new) == 1, f"ListApiTokens lists the new key: {new}")
    token_id = new[0] if len(new) == 1 else FAILED
    # The 0.53.2 SDK reads no body here (its contract documents none); 0.58's reads the ApiToken.
    w.check(missing(token) or token is None or (token["id"], token.get("expiration_date")) ==
            (token_id, expiry.isoformat()), f"SetUserApiToken answers the key, with its expirationDate: {token}")
    w("TokenApi", "read_api_token", token_id)
    renamed = w("TokenApi", "update_api_token", token_id, model("ApiTokenUpdate", description="the walk's key"))
    w.check(missing(renamed) or renamed["expire"], "a partial UpdateApiToken keeps the expiry")
    if not missing(api_key):
        w("UserApi", "read_user", uid, auth={"api_key": api_key, "token": None})
    w("UserApi", "logout", auth=session)

    team = w("TeamApi", "create_team", model("Team", name="walkers", users=listed(uid)))
    team_id = w.get(team, "id")
    w("TeamApi", "read_team", team_id)
    w("TeamApi", "list_teams")
    w("TeamApi", "update_team", team_id, model("TeamUpdate", description="the walk's team"))

    count = deployment.mail.count(ADMIN_EMAIL, "agent API key")
    agent = w("AgentApi", "create_agent", model("Agent", name="walk-kaktus", type="Kaktus"))
    agent_id = w.get(agent, "id")
    w("AgentApi", "read_agent", agent_id)
    w("AgentApi", "list_agents")
    w("AgentApi", "update_agent", agent_id, model("AgentUpdate", description="a Kaktus that never connects"))
    if not missing(w("AgentApi", "set_agent_api_token", agent_id, expire=True, expiration_date=expiry)):
        deployment.mail.wait_for(ADMIN_EMAIL, "agent API key", count=count + 1)
    kiwi_agent = w.get(w("AgentApi", "create_agent", model("Agent", name="walk-kiwi", type="Kiwi")), "id")
    return {"user": uid, "team": team_id, "token": token_id, "agent": agent_id, "kiwi_agent": kiwi_agent}


def walk_infrastructure(w: Walk, platform: topology.Topology, ids: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """A region of its own (made and deleted with everything in it), and the topology's objects read and
    updated in part."""
    region = w.get(w("RegionApi", "create_region", model("Region", name="walk-r", domain="walk.acme.internal")), "id")
    w("RegionApi", "read_region", region)
    w("RegionApi", "list_regions")
    updated = w("RegionApi", "update_region", region, model("RegionUpdate", description="the walk's region"))
    w.check(missing(updated) or updated["domain"] == "walk.acme.internal", "a partial UpdateRegion keeps the domain")
    zone = w.get(w("RegionApi", "create_region_zone", region, model("Zone", name="walk-z")), "id")
    w("RegionApi", "list_region_zones", region)
    w("ZoneApi", "read_zone", zone)
    w("ZoneApi", "list_zones")
    w("ZoneApi", "update_zone", zone, model("ZoneUpdate", description="the walk's zone"))
    agents = listed(ids["agent"])
    kaktus = w.get(w("ZoneApi", "create_zone_kaktus", zone, model("Kaktus", name="walk-k", agents=agents)), "id")
    w("ZoneApi", "list_zone_kaktuses", zone)
    w("KaktusApi", "read_kaktus", kaktus)
    kiwi_agents = listed(ids["kiwi_agent"])
    kiwi = w.get(w("RegionApi", "create_region_kiwi", region, model("Kiwi", name="walk-kiwi", agents=kiwi_agents)),
                 "id")
    w("RegionApi", "list_region_kiwis", region)
    w("KiwiApi", "read_kiwi", kiwi)
    w("KiwiApi", "list_kiwis")
    w("KiwiApi", "update_kiwi", kiwi, model("KiwiUpdate", description="the walk's Kiwi"))
    pool = w.get(w("RegionApi", "create_region_storage_pool", region, model(
        "StoragePool", name="walk-pool", pool="rbd-walk", agents=agents)), "id")
    w("RegionApi", "list_region_storage_pools", region)
    w("RegionApi", "set_region_default_storage_pool", region, pool)
    w("PoolApi", "read_storage_pool", pool)
    vnet = w.get(w("RegionApi", "create_region_v_net", region, model("VNet", name="walk-net", vlan=300,
                                                                       interface="br300")), "id")
    w("RegionApi", "list_region_v_nets", region)
    w("VnetApi", "read_v_net", vnet)
    w("VnetApi", "list_v_nets")
    w("VnetApi", "update_v_net", vnet, model("VNetUpdate", description="the walk's network"))
    subnet = w.get(w("VnetApi", "create_v_net_subnet", vnet, model(
        "Subnet", name="walk-sub", cidr="10.99.0.0/24", gateway="10.99.0.1",
        gw_pool=[model("IpRange", first="10.99.0.2", last="10.99.0.2")])), "id")
    w("VnetApi", "list_v_net_subnets", vnet)
    w("VnetApi", "set_v_net_default_subnet", vnet, subnet)
    w("SubnetApi", "read_subnet", subnet)
    w("SubnetApi", "list_subnets")
    w("SubnetApi", "update_subnet", subnet, model("SubnetUpdate", dns="10.99.0.53"))
    adapter = w.get(w("SubnetApi", "create_subnet_adapter", subnet, model("Adapter", name="walk-nic"),
                      assign_ip=True), "id")
    w("SubnetApi", "list_subnet_adapters", subnet)
    w("AdapterApi", "read_adapter", adapter)
    w("AdapterApi", "list_adapters")
    w("AdapterApi", "update_adapter", adapter, model("AdapterUpdate", description="the walk's adapter"))
    # A region's records are served by its Kiwi: the topology's, whose agents are connected.
    west = platform.regions["eu-west"].id
    record = w.get(w("RegionApi", "create_region_dns_record", west, model(
        "DnsRecord", name="www", addresses=["10.50.0.10"])), "id")
    w("RegionApi", "list_region_dns_records", west)

    # The topology's eu-east Kaktus, in maintenance and back: its caps, its instances, a partial update.
    east = platform.kaktuses["c"].id
    w("KaktusApi", "list_kaktuses")
    w("KaktusApi", "read_kaktus_caps", east)
    w("KaktusApi", "list_kaktus_instances", east)
    w("KaktusApi", "update_kaktus", east, model("KaktusUpdate", overcommit_cpu_ratio=4))
    on = w("KaktusApi", "enable_kaktus_maintenance", east)
    w.check(missing(on) or w.get(w("KaktusApi", "read_kaktus", east), "maintenance") is True,
            "EnableKaktusMaintenance shows in ReadKaktus")
    w("KaktusApi", "disable_kaktus_maintenance", east)
    west_pool = platform.pools["eu-west"].id
    w("PoolApi", "list_storage_pools")
    w("PoolApi", "update_storage_pool", west_pool, model("StoragePoolUpdate", description="the west's SSD"))
    template = w.get(w("PoolApi", "create_storage_pool_template", west_pool, model(
        "Template", name="debian-13", source="https://images.example/debian-13.qcow2")), "id")
    w("PoolApi", "list_storage_pool_templates", west_pool)
    w("TemplateApi", "read_template", template)
    w("TemplateApi", "list_templates")
    w("TemplateApi", "update_template", template, model("TemplateUpdate", description="Debian 13"))
    w("PoolApi", "set_storage_pool_default_template", west_pool, platform.templates["eu-west"].id)
    return {"region": region, "zone": zone, "kaktus": kaktus, "kiwi": kiwi, "pool": pool, "vnet": vnet,
            "subnet": subnet, "adapter": adapter, "record": record, "template": template}


def walk_project(w: Walk, platform: topology.Topology, ids: dict[str, typing.Any]) -> None:
    """A project and everything in it; Kwarantine, kMotion; then deleted."""
    west, zone_a = platform.regions["eu-west"].id, platform.zones["a"].id
    teams = listed(ids["team"])
    project = w("ProjectApi", "create_project", model("Project", name="walk", domain="walk.example.org",
                                                      teams=teams, regions=[west]), subnet_size=26)
    pid = w.get(project, "id")
    w("ProjectApi", "read_project", pid)
    w("ProjectApi", "list_projects")
    updated = w("ProjectApi", "update_project", pid, model("ProjectUpdate", tags=["walk"]))
    w.check(missing(updated) or updated["domain"] == "walk.example.org", "a partial UpdateProject keeps the domain")
    w("ProjectApi", "read_project_cost", pid)
    w("ProjectApi", "read_project_usage", pid)
    record = w.get(w("ProjectApi", "create_project_dns_record", pid, model(
        "DnsRecord", name="api", addresses=["10.50.0.100"])), "id")
    w("ProjectApi", "list_project_dns_records", pid)
    w("RecordApi", "read_dns_record", record)
    w("RecordApi", "update_dns_record", record, model("DnsRecordUpdate", addresses=["10.50.0.101"]))

    # Storage: a volume, an NFS share and a Kylo.
    volume = w.get(w("ProjectApi", "create_project_region_volume", pid, west, model(
        "Volume", name="db-os", type="os", size=10 * GIB)), "id")
    w("ProjectApi", "list_project_region_volumes", pid, west)
    w("VolumeApi", "read_volume", volume)
    w("VolumeApi", "list_volumes")
    w("VolumeApi", "update_volume", volume, model("VolumeUpdate", size=12 * GIB))
    spread_os = w.get(w("ProjectApi", "create_project_region_volume", pid, west, model(
        "Volume", name="spread-os", type="os", size=10 * GIB)), "id")
    w("PoolApi", "list_storage_pool_volumes", platform.pools["eu-west"].id)
    nfs = w.get(w("RegionApi", "create_region_storage_nfs", west, model(
        "StorageNFS", name="share", endpoint="nfs.west.acme.internal", backends=["10.50.0.250"])), "id")
    w("RegionApi", "list_region_storage_nf_ses", west)
    w("RegionApi", "set_region_default_storage_nfs", west, nfs)
    w("NfsApi", "read_storage_nfs", nfs)
    w("NfsApi", "list_storage_nf_ses")
    w("NfsApi", "update_storage_nfs", nfs, model("StorageNFSUpdate", description="the west's share"))
    kylo = w.get(w("ProjectApi", "create_project_region_kylo", pid, west, model("Kylo", name="assets")), "id")
    w("ProjectApi", "list_project_region_kylos", pid, west)
    w("NfsApi", "list_storage_nfs_kylos", nfs)
    w("KyloApi", "read_kylo", kylo)
    w("KyloApi", "list_kylos")
    w("KyloApi", "update_kylo", kylo, model("KyloUpdate", access="RO"))

    # Compute: an instance in a zone (from a volume and an adapter), one region-wide; Komputes likewise.
    private = project if missing(project) else project["private_subnets"][0]["value"]
    adapter = w.get(w("SubnetApi", "create_subnet_adapter", private, model("Adapter", name="db-nic"),
                      assign_ip=True), "id")
    instance = w.get(w("ProjectApi", "create_project_zone_instance", pid, zone_a, model(
        "Instance", name="db", vcpus=1, memory=2 * GIB, uefi=False,
        volumes=listed(volume), adapters=listed(adapter))), "id")
    w("ProjectApi", "list_project_zone_instances", pid, zone_a)
    # Region-wide creations in a Kwarantine group (host policy): Kahuna puts them on distinct Kaktus.
    group = w.get(w("ProjectApi", "create_project_kwarantine", pid, model("Kwarantine", name="spread")), "id")
    w("ProjectApi", "list_project_kwarantines", pid)
    w("KwarantineApi", "list_kwarantines")
    spread = w.get(w("ProjectApi", "create_project_region_instance", pid, west, model(
        "Instance", name="spread", vcpus=1, memory=GIB, volumes=[spread_os], kwarantines=[group])), "id")
    w("ProjectApi", "list_project_region_instances", pid, west)
    kompute = w.get(w("ProjectApi", "create_project_zone_kompute", pid, zone_a, model(
        "Kompute", name="web-1", vcpus=1, memory=GIB, disk=10 * GIB)), "id")
    w("ProjectApi", "list_project_zone_komputes", pid, zone_a)
    regional = w.get(w("ProjectApi", "create_project_region_kompute", pid, west, model(
        "Kompute", name="web-2", vcpus=1, memory=GIB, disk=10 * GIB, kwarantines=[group])), "id")
    w("ProjectApi", "list_project_region_komputes", pid, west)

    for name, target in (("instance", instance), ("kompute", kompute)):
        api = "InstanceApi" if name == "instance" else "KomputeApi"
        w(api, f"read_{name}", target)
        w(api, f"list_{name}s")
        w(api, f"read_{name}_state", target)
        for action in ("stop", "start", "suspend", "resume", "reboot", "reset", "shutdown"):
            w(api, f"{action}_{name}", target)
        w(api, f"start_{name}", target)
        w(api, f"update_{name}", target, model(f"{name.capitalize()}Update", description=f"the walk's {name}"))
    w("InstanceApi", "read_instance_remote_connection", instance)

    # Kwarantine: its members, out and back in (their Kaktus differ), the group emptied and deleted.
    members = w("KwarantineApi", "read_kwarantine", group)
    w.check(missing(members) or (members.get("instances"), members.get("komputes")) == ([spread], [regional]),
            f"ReadKwarantine lists the members it was given at creation: {members}")
    w("KwarantineApi", "remove_kwarantine_instance", group, spread)
    w("KwarantineApi", "remove_kwarantine_kompute", group, regional)
    w("KwarantineApi", "add_kwarantine_instance", group, spread)
    w("KwarantineApi", "add_kwarantine_kompute", group, regional)
    renamed = w("KwarantineApi", "update_kwarantine", group, model("KwarantineUpdate", description="never together"))
    w.check(missing(renamed) or (renamed["name"], renamed.get("instances")) == ("spread", [spread]),
            f"a partial UpdateKwarantine keeps the name and the members: {renamed}")
    w("KwarantineApi", "remove_kwarantine_instance", group, spread)
    w("KwarantineApi", "remove_kwarantine_kompute", group, regional)
    w("KwarantineApi", "delete_kwarantine", group)

    # kMotion: cold moves from zone a's Kaktus to zone b's (one Ceph cluster serves both).
    k_a, k_b = platform.kaktuses["a"].id, platform.kaktuses["b"].id
    for name, target in (("instance", instance), ("kompute", kompute)):
        api = "InstanceApi" if name == "instance" else "KomputeApi"
        plan = w(api, f"plan_{name}_k_motion", target, model("KMotionPlanRequest", destination="region", live=False))
        w.check(missing(plan) or (plan["source"], plan["target"], plan["live"]) == (k_a, k_b, False),
                f"the {name}'s kMotion plan moves it from k-a to k-b, cold: {plan}")
        committed = w(api, f"commit_{name}_k_motion", target, model("KMotionCommitRequest", plan=w.get(plan, "id")))
        if name == "instance" and not missing(committed):
            on_b = w("KaktusApi", "list_kaktus_instances", k_b)
            w.check(missing(on_b) or target in on_b, f"the instance is on k-b after kMotion: {on_b}")

    # Network appliances: a Kawaii with an IPsec tunnel, Konveys.
    kawaii = w.get(w("ProjectApi", "create_project_region_kawaii", pid, west, model(
        "Kawaii", netip=model("KawaiiNetIp", public=[], private=[], zones=[]))), "id")
    w("ProjectApi", "list_project_region_kawaiis", pid, west)
    w("KawaiiApi", "read_kawaii", kawaii)
    w("KawaiiApi", "list_kawaiis")
    w("KawaiiApi", "update_kawaii", kawaii, model("KawaiiUpdate", description="the walk's gateway"))
    tunnel = w.get(w("KawaiiApi", "create_kawaii_ip_sec", kawaii, model(
        "KawaiiIpSec", name="office", remote_ip="203.0.113.10", remote_subnet="192.168.0.0/24",
        pre_shared_key="s3cr3t-psk", **IPSEC)), "id")
    w("KawaiiApi", "list_kawaii_ip_secs", kawaii)
    w("KawaiiApi", "read_kawaii_ip_sec", kawaii, tunnel)
    w("KawaiiApi", "update_kawaii_ip_sec", kawaii, tunnel, model("KawaiiIpSecUpdate", dpd_timeout="120s"))
    endpoint = model("KonveyEndpoint", name="http", port=80, protocol="tcp",
                     backends=model("KonveyBackends", hosts=["10.50.0.30"], port=8080))
    konvey = w.get(w("ProjectApi", "create_project_region_konvey", pid, west, model(
        "Konvey", name="front", endpoints=[endpoint])), "id")
    w("ProjectApi", "list_project_region_konveys", pid, west)
    single = w.get(w("ProjectApi", "create_project_zone_konvey", pid, zone_a, model(
        "Konvey", name="side", failover=False, endpoints=[endpoint])), "id")
    w("ProjectApi", "list_project_zone_konveys", pid, zone_a)
    w("KonveyApi", "read_konvey", konvey)
    w("KonveyApi", "list_konveys")
    w("KonveyApi", "update_konvey", konvey, model("KonveyUpdate", description="the walk's balancer"))

    # Everything deleted, the project last.
    w("KonveyApi", "delete_konvey", single)
    w("KonveyApi", "delete_konvey", konvey)
    w("KawaiiApi", "delete_kawaii_ip_sec", kawaii, tunnel)
    w("KawaiiApi", "delete_kawaii", kawaii)
    w("KomputeApi", "delete_kompute", kompute)
    w("KomputeApi", "delete_kompute", regional)
    w("InstanceApi", "delete_instance", instance)
    w("InstanceApi", "delete_instance", spread)
    w("VolumeApi", "delete_volume", volume)
    w("VolumeApi", "delete_volume", spread_os)
    w("AdapterApi", "delete_adapter", adapter)
    w("KyloApi", "delete_kylo", kylo)
    w("NfsApi", "delete_storage_nfs", nfs)
    w("RecordApi", "delete_dns_record", record)
    w("ProjectApi", "delete_project", pid)


def walk_deletions(w: Walk, ids: dict[str, typing.Any], infra: dict[str, typing.Any]) -> None:
    w("TemplateApi", "delete_template", infra["template"])
    w("RecordApi", "delete_dns_record", infra["record"])
    w("AdapterApi", "delete_adapter", infra["adapter"])
    w("SubnetApi", "delete_subnet", infra["subnet"])
    w("VnetApi", "delete_v_net", infra["vnet"])
    w("PoolApi", "delete_storage_pool", infra["pool"])
    w("KiwiApi", "delete_kiwi", infra["kiwi"])
    w("KaktusApi", "delete_kaktus", infra["kaktus"])
    w("ZoneApi", "delete_zone", infra["zone"])
    w("RegionApi", "delete_region", infra["region"])
    w("AgentApi", "delete_agent", ids["agent"])
    w("AgentApi", "delete_agent", ids["kiwi_agent"])
    w("TokenApi", "delete_api_token", ids["token"])
    emptied = w("TeamApi", "update_team", ids["team"], model("TeamUpdate", users=[]))
    w.check(missing(emptied) or emptied["name"] == "walkers", "a partial UpdateTeam keeps the name")
    w("TeamApi", "delete_team", ids["team"])
    w("UserApi", "delete_user", ids["user"])


def walk(deployment: Deployment, platform: topology.Topology, client: Driver, tag: str) -> Walk:
    """The whole walk through *client* (*tag* names its user); its failures are in the returned Walk."""
    w = Walk(client, tag)
    ids = walk_accounts(w, deployment)
    infra = walk_infrastructure(w, platform, ids)
    walk_project(w, platform, ids)
    walk_deletions(w, ids, infra)
    return w
