"""Hostile tenants and anonymous guessers, the way they attack through the API: two teams, each with its own
projectAdmin, user and project, on the simulated platform. Each test replays an attack of the black-box probe
and shows what Kahuna answers now.

- instance metadata: the (instance id, private address) pair is a secret; guessing it is throttled per client
  address (404, then 429), and ids made between two of the attacker's cannot be told from them;
- DNS: a project cannot take, sit under or above another project's domain or a region's (409); deleting a
  project leaves every other project's zone and records on the Kiwis;
- error reasons never name another tenant's objects;
- a change of e-mail address takes a confirmation from the new address and is announced to the old one;
- names that become the agents' object names cannot hold paths or control characters (422).
"""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass

import kowabunga as k
import pytest

from kahuna.services import metadata as metadata_service
from tests.deployment import Account, expect_error
from tests.mailserver import link_in, text_of
from tests.test_races import race, statuses

GIB = 1024**3
ATTACKER = "203.0.113.66"  # where the guesser's requests come from, as Caddy saw it


@pytest.fixture
def deployment_settings():
    """The Kahuna of ``deployment`` (and so of ``platform``) believes one proxy's X-Forwarded-For (as behind Caddy),
    so tests can speak from several client addresses."""
    return {"global.http.trustedProxies": 1}


@dataclass
class Tenant:
    padmin: Account
    user: Account
    team: k.Team
    project: k.Project
    api: k.ApiClient  # its projectAdmin's session
    user_api: k.ApiClient


def make_tenant(platform, letter: str, project_name: str) -> Tenant:
    deployment = platform.deployment
    padmin = deployment.create_account(f"padmin-{letter}", role="projectAdmin")
    user = deployment.create_account(f"user-{letter}")
    team = k.TeamApi(deployment.admin).create_team(k.Team(name=f"team-{letter}", users=[padmin.id, user.id]))
    api = deployment.login(padmin)
    project = k.ProjectApi(api).create_project(k.Project(
        name=project_name, domain=f"shop-{letter}.acme.internal", teams=[team.id],
        regions=[platform.regions["eu-west"].id]), subnet_size=26)
    return Tenant(padmin, user, team, project, api, deployment.login(user))


@pytest.fixture
def tenants(platform):
    """Team A's project "atlas" (shop-a.acme.internal) and team B's "borealis" (shop-b.acme.internal)."""
    return make_tenant(platform, "a", "atlas"), make_tenant(platform, "b", "borealis")


def db(platform):
    return platform.deployment.kahuna.db.db


def kompute(tenant, platform, name, zone="a"):
    return k.ProjectApi(tenant.api).create_project_zone_kompute(tenant.project.id, platform.zones[zone].id, k.Kompute(
        name=name, vcpus=1, memory=GIB, disk=10 * GIB))


def instance_id(platform, name) -> str:
    return str(db(platform)["instance"].find_one({"name": name})["_id"])


def ask_metadata(platform, instance: str, address: str, client: str):
    return platform.deployment.http.request(
        "GET", f"{platform.deployment.base_url}/latest/meta-data",
        headers={"X-Kowabunga-Instance-Id": instance, "X-Kowabunga-Source-Ip": address, "X-Forwarded-For": client},
        retries=False)  # urllib3 would otherwise sleep through a 429's Retry-After and ask again


def tail(object_id: str) -> int:
    """The 8 bytes after an ObjectId's timestamp: a process-wide value and a counter for the driver's ids."""
    return int(object_id[8:], 16)


# -- 5. instance metadata ----------------------------------------------------------------------------------


def test_ids_made_one_after_the_other_are_not_sequential(platform, tenants):
    a, b = tenants
    volumes = k.ProjectApi(b.api)
    first, second = (volumes.create_project_region_volume(b.project.id, platform.regions["eu-west"].id, k.Volume(
        name=f"v{n}", type="raw", size=GIB)).id for n in (1, 2))
    # A driver ObjectId: same middle part, counter + 1. Now: still in creation order, but far apart.
    assert first < second
    assert first[8:18] != second[8:18]
    assert abs(tail(second) - tail(first)) > 2**24  # more than a 3-byte counter ever moves


def test_guessing_a_neighbours_metadata_gets_404_then_429_and_never_its_secrets(platform, tenants, caplog):
    a, b = tenants
    caplog.set_level(logging.WARNING, logger="kahuna.services.metadata")
    # B makes a VM, A makes its Kawaii (one VM per zone) with an IPsec tunnel, B makes another VM.
    kompute(b, platform, "b-1")
    gateway = k.ProjectApi(a.api).create_project_region_kawaii(a.project.id, platform.regions["eu-west"].id, k.Kawaii(
        netip=k.KawaiiNetIp(public=[], private=[], zones=[])))
    k.KawaiiApi(a.api).create_kawaii_ip_sec(gateway.id, k.KawaiiIpSec(
        name="office", remote_ip="203.0.113.10", remote_subnet="192.168.0.0/24", pre_shared_key="atlas-psk-secret",
        phase1_dh_group_number=14, phase1_integrity_algorithm="SHA256", phase1_encryption_algorithm="AES256",
        phase2_dh_group_number=14, phase2_integrity_algorithm="SHA256", phase2_encryption_algorithm="AES256"))
    kompute(b, platform, "b-2")
    mine = instance_id(platform, "b-1"), instance_id(platform, "b-2")
    victim = db(platform)["instance"].find_one({"name": "kawaii-atlas-eu-west-a"})
    target = str(victim["_id"])
    # The victim's id lies between B's two, in creation order, but nowhere near either of them.
    assert mine[0] < target < mine[1]
    assert int(target, 16) - int(mine[0], 16) > 2**32 and int(mine[1], 16) - int(target, 16) > 2**32

    # The probe's guesses: the ids right after B's first VM, with the private addresses A's VMs could have.
    guesses = [(format(int(mine[0], 16) + n, "024x"), f"10.50.0.{n % 60 + 2}")
               for n in range(1, metadata_service.FAILURES_PER_SOURCE + 1)]
    for guess, address in guesses:
        answer = ask_metadata(platform, guess, address, ATTACKER)
        assert answer.status == 404 and b"psk" not in answer.data, answer.data
    refused = ask_metadata(platform, guesses[0][0], guesses[0][1], ATTACKER)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    assert json.loads(refused.data)["status"] == 429
    # Past the limit even the right pair is refused from there: a 429 says nothing about a guess.
    right = ask_metadata(platform, target, victim["local_ip"], ATTACKER)
    assert right.status == 429 and b"atlas-psk-secret" not in right.data
    # The VM itself, from its own address, is served, as often as it asks (successes are not counted).
    for _ in range(metadata_service.FAILURES_PER_SOURCE + 5):
        own = ask_metadata(platform, target, victim["local_ip"], "198.51.50.77")
        assert own.status == 200
    assert json.loads(own.data)["kawaii"]["ipsec_connections"][0]["pre_shared_key"] == "atlas-psk-secret"
    # Failures are logged, and the log is rate-limited.
    lines = [r for r in caplog.records if r.name == "kahuna.services.metadata"]
    assert lines and any(ATTACKER in r.getMessage() for r in lines)
    assert len(lines) <= metadata_service.LOG_LINES_PER_MINUTE

    # B cannot take A's Kawaii address either (an adapter made for A's Kawaii, on the public subnet).
    vip = db(platform)["adapter"].find_one({"made_for": gateway.id})
    body = expect_error(422, k.ProjectApi(b.api).create_project_zone_instance, b.project.id, platform.zones["a"].id,
                        k.Instance(name="b-thief", vcpus=1, memory=GIB, volumes=[], adapters=[str(vip["_id"])]))
    assert "atlas" not in body["reason"] and vip["name"] not in body["reason"]


# -- 6. DNS squatting ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", [
    "shop-a.acme.internal",         # A's
    "SHOP-A.acme.internal.",        # A's, as a Kiwi reads it
    "login.shop-a.acme.internal",   # under A's
    "acme.internal",                # above A's (and above the regions')
    "west.acme.internal",           # a region's
    "eu.west.acme.internal",        # under a region's
])
def test_a_project_cannot_take_or_surround_another_projects_or_a_regions_domain(platform, tenants, domain):
    a, b = tenants
    body = expect_error(409, k.ProjectApi(b.api).create_project, k.Project(
        name="squat", domain=domain, teams=[b.team.id], regions=[platform.regions["eu-west"].id]), subnet_size=26)
    assert "atlas" not in body["reason"] and a.project.id not in body["reason"]
    assert "squat" not in [p["name"] for p in db(platform)["project"].find()]
    for name in ("kiwi-west-1", "kiwi-west-2"):
        assert platform.agents[name].dns_zones >= {"shop-a.acme.internal", "shop-b.acme.internal"}


def test_overlapping_domains_asked_at_once_go_to_one_project(platform, tenants):
    a, b = tenants
    west = platform.regions["eu-west"].id
    domains = ["race.acme.internal", "x.race.acme.internal", "race.acme.internal", "y.x.race.acme.internal"]
    outcomes = race(platform.deployment, [
        lambda client, n=n, domain=domain: k.ProjectApi(client).create_project_with_http_info(k.Project(
            name=f"racer-{n}", domain=domain, teams=[], regions=[west]), subnet_size=26)
        for n, domain in enumerate(domains)])
    assert statuses(outcomes) == {201: 1, 409: 3}, [(o.status, o.data) for o in outcomes]
    assert sum(1 for p in db(platform)["project"].find() if "race.acme.internal" in p["domain"]) == 1


def test_deleting_a_project_leaves_other_tenants_zones_and_records(platform, tenants):
    a, b = tenants
    west_kiwis = [platform.agents[name] for name in ("kiwi-west-1", "kiwi-west-2")]
    for tenant, address in ((a, "10.50.0.20"), (b, "10.50.0.99")):
        k.ProjectApi(tenant.user_api).create_project_dns_record(tenant.project.id,
                                                                k.DnsRecord(name="login", addresses=[address]))
    for kiwi in west_kiwis:
        assert kiwi.dns_records["shop-a.acme.internal"]["login"] == ["10.50.0.20"]
        # B's records land in B's zone only, whatever their name.
        assert kiwi.dns_records["shop-b.acme.internal"]["login"] == ["10.50.0.99"]
    # B deletes its record and its project: its zone goes, A's zone and record stay.
    for record_id in k.ProjectApi(b.api).list_project_dns_records(b.project.id):
        k.RecordApi(b.api).delete_dns_record(record_id)
    k.ProjectApi(b.api).delete_project(b.project.id)
    for kiwi in west_kiwis:
        assert "shop-b.acme.internal" not in kiwi.dns_zones
        assert "shop-a.acme.internal" in kiwi.dns_zones
        assert kiwi.dns_records["shop-a.acme.internal"]["login"] == ["10.50.0.20"]
    # A project left from before domains were exclusive, holding A's very domain: deleting it keeps A's zone.
    squatter = platform.deployment.kahuna.db.projects.insert({
        "name": "old-squatter", "description": "", "domain": "shop-a.acme.internal", "team_ids": [],
        "region_ids": [platform.regions["eu-west"].id], "private_subnets": [], "zone_gateways": {},
        "reserved_vrrp_ids": [], "quotas": {}, "tags": [], "metadatas": [], "state": "ready"})
    k.ProjectApi(platform.api).delete_project(str(squatter["_id"]))
    for kiwi in west_kiwis:
        assert "shop-a.acme.internal" in kiwi.dns_zones
        assert kiwi.dns_records["shop-a.acme.internal"]["login"] == ["10.50.0.20"]


def test_region_records_do_not_land_in_a_projects_domain(platform, tenants):
    a, b = tenants
    regions = k.RegionApi(platform.api)
    # A region's domain is chosen like a project's: not over, under or equal to a project's.
    for domain in ("acme.internal", "shop-a.acme.internal", "eu.shop-a.acme.internal"):
        body = expect_error(409, regions.create_region, k.Region(name="corp", domain=domain))
        assert "atlas" not in body["reason"] and a.project.id not in body["reason"]
    west = platform.regions["eu-west"]
    expect_error(422, regions.update_region, west.id, k.Region(name=west.name, domain="acme.internal"))
    # A region left from before domains were exclusive, above a project's: its records still cannot land
    # in the project's domain.
    corp = platform.deployment.kahuna.db.regions.insert({"name": "corp", "description": "", "domain": "acme.internal",
                                                         "defaults": {"pool_id": "", "nfs_id": ""}})
    body = expect_error(409, regions.create_region_dns_record, str(corp["_id"]), k.DnsRecord(
        name="login.shop-a", addresses=["10.50.0.66"]))
    assert "atlas" not in body["reason"]
    assert not db(platform)["dns_record"].find_one({"name": "login.shop-a"})


# -- 7a. error reasons ---------------------------------------------------------------------------------------


def test_error_reasons_do_not_name_another_tenants_objects(platform, tenants):
    a, b = tenants
    west, zone = platform.regions["eu-west"].id, platform.zones["a"].id
    spare = k.SubnetApi(platform.api).create_adapter(a.project.private_subnets[0].value,
                                                     k.Adapter(name="a-nic-spare"), assign_ip=True)
    volume = k.ProjectApi(a.api).create_project_region_volume(a.project.id, west, k.Volume(
        name="atlas-db-os", type="os", size=10 * GIB))
    projects = k.ProjectApi(b.api)
    reasons = [
        expect_error(422, projects.create_project_zone_instance, b.project.id, zone, k.Instance(
            name="b-thief", vcpus=1, memory=GIB, volumes=[], adapters=[spare.id]))["reason"],
        expect_error(422, projects.create_project_zone_instance, b.project.id, zone, k.Instance(
            name="b-thief", vcpus=1, memory=GIB, volumes=[volume.id], adapters=[]))["reason"],
        expect_error(422, projects.create_project_region_kawaii, b.project.id, west, k.Kawaii(
            netip=k.KawaiiNetIp(public=[], private=[], zones=[]),
            vpc_peerings=[k.KawaiiVpcPeering(subnet=a.project.private_subnets[0].value)]))["reason"],
        expect_error(409, projects.create_project, k.Project(
            name="b-two", domain="shop-a.acme.internal", teams=[b.team.id], regions=[west]))["reason"],
    ]
    for reason in reasons:
        for secret in ("a-nic-spare", "atlas", "vpc-0", a.project.id):
            assert secret not in reason, reason
    assert spare.id in reasons[0] and volume.id in reasons[1]
    assert not db(platform)["instance"].find_one({"name": "b-thief"})


# -- 7b. change of e-mail address ------------------------------------------------------------------------------


def test_a_new_email_address_takes_a_confirmation_from_it(platform, tenants):
    a, b = tenants
    deployment, mail = platform.deployment, platform.deployment.mail
    users = k.UserApi(a.user_api)
    old, new = a.user.email, "user-a.new@example.com"
    # A stolen session asks for another address: the answer, and the account, keep the old one.
    answer = users.update_user(a.user.id, k.User(name="user-a", email=new, role="user", description="moved"))
    assert answer.email == old and answer.description == "moved"
    assert k.UserApi(deployment.admin).read_user(a.user.id).email == old
    confirm = mail.wait_for(new, "Confirm your new Kowabunga e-mail address")
    link = link_in(confirm)
    assert "/confirmEmail?" in link
    notice = mail.wait_for(old, "about to change")
    assert new in text_of(notice)
    # Until confirmed: logins and password resets use the old address only.
    k.UserApi(deployment.anonymous()).login(k.UserCredentials(email=old, password=a.user.password))
    expect_error(401, k.UserApi(deployment.anonymous()).login, k.UserCredentials(email=new, password=a.user.password))
    k.UserApi(deployment.anonymous()).reset_password(k.UserEmail(email=new))
    k.UserApi(deployment.anonymous()).reset_password(k.UserEmail(email=old))
    mail.wait_for(old, "Forgot about your Kowabunga password")
    assert mail.count(new, "Forgot about your Kowabunga password") == 0
    # The SDK's whole-body updates keep working, and do not cancel the pending change.
    assert users.update_user(a.user.id, k.User(name="user-a", email=old, role="user")).email == old
    # Opening the page does nothing (mail scanners); its button does it, once.
    assert deployment.follow(link, method="GET").status == 200
    assert k.UserApi(deployment.admin).read_user(a.user.id).email == old
    assert deployment.follow(link).status == 200
    assert k.UserApi(deployment.admin).read_user(a.user.id).email == new
    mail.wait_for(new, "has changed")
    mail.wait_for(old, "has changed")
    assert deployment.follow(link).status == 403
    k.UserApi(deployment.anonymous()).login(k.UserCredentials(email=new, password=a.user.password))
    expect_error(401, k.UserApi(deployment.anonymous()).login, k.UserCredentials(email=old, password=a.user.password))


def test_a_super_admin_changing_an_address_goes_through_the_same_confirmation(platform, tenants):
    a, b = tenants
    deployment, mail = platform.deployment, platform.deployment.mail
    admin = k.UserApi(deployment.admin)
    new = "padmin-b.elsewhere@example.com"
    assert admin.update_user(b.padmin.id, k.User(name="padmin-b", email=new, role="projectAdmin")).email \
        == b.padmin.email
    mail.wait_for(b.padmin.email, "about to change")
    link = link_in(mail.wait_for(new, "Confirm your new Kowabunga e-mail address"))
    # An expired link does nothing.
    db(platform)["user"].update_one({"_id": db(platform)["user"].find_one({"name": "padmin-b"})["_id"]},
                                    {"$set": {"email_change.expires_at": datetime.datetime(2000, 1, 1)}})
    assert deployment.follow(link).status == 403
    assert admin.read_user(b.padmin.id).email == b.padmin.email


def test_an_address_in_use_is_not_revealed_nor_taken(platform, tenants):
    a, b = tenants
    mail = platform.deployment.mail
    users = k.UserApi(b.user_api)
    # B's user asks for A's user's address: same answer as for a free one; A's user hears of it, without a link.
    assert users.update_user(b.user.id, k.User(name="user-b", email=a.user.email, role="user")).email == b.user.email
    heard = mail.wait_for(a.user.email, "Your address and Kowabunga")
    assert "?user=" not in text_of(heard)
    mail.wait_for(b.user.email, "about to change")
    assert k.UserApi(platform.api).read_user(b.user.id).email == b.user.email


# -- 7f. names that become the agents' object names ---------------------------------------------------------------


BAD_NAMES = ["../etc", "a/b", "..", "a..b", "tab\there", "line\nbreak", "nul\x00", "-dash", "ünï"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_would_be_paths_or_commands_on_the_agents_are_refused(platform, tenants, name):
    a, b = tenants
    projects = k.ProjectApi(a.user_api)
    west, zone = platform.regions["eu-west"].id, platform.zones["a"].id
    calls = [
        lambda: projects.create_project_region_volume(a.project.id, west, k.Volume(name=name, type="raw", size=GIB)),
        lambda: projects.create_project_zone_instance(a.project.id, zone, k.Instance(
            name=name, vcpus=1, memory=GIB, volumes=[], adapters=[])),
        lambda: projects.create_project_zone_kompute(a.project.id, zone, k.Kompute(
            name=name, vcpus=1, memory=GIB, disk=10 * GIB)),
        lambda: projects.create_project_region_kylo(a.project.id, west, k.Kylo(name=name)),
        lambda: projects.create_project_region_konvey(a.project.id, west, k.Konvey(name=name, endpoints=[
            k.KonveyEndpoint(name="https", port=443, protocol="tcp",
                             backends=k.KonveyBackends(hosts=["10.50.0.30"], port=8443))])),
        lambda: k.ProjectApi(a.api).create_project(k.Project(name=name, teams=[a.team.id], regions=[])),
    ]
    for call in calls:
        body = expect_error(422, call)
        assert "invalid" in body["reason"] and "name" in body["reason"], body
    agents = platform.agents
    assert not any(name in str(key) for agent in agents.values() for key in agent.volumes)
    assert not any(name in key for agent in agents.values() for key in agent.instances)
