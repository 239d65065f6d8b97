"""The official SDK ``kowabunga==0.58.0`` (a child process, tests/sdk058/) beside 0.53.2's (this process), against one
Kahuna with the same data: the account flows each SDK speaks (login 200 / 201, POST / PUT /resetPassword,
``expirationDate`` / ``expiration_date``), objects made by one SDK read and updated by the other, and the harness
itself (client-side refusals, documented errors)."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import kowabunga as k
import pytest

from tests.deployment import expect_error
from tests.mailserver import fact_in, link_in
from tests.sdk058.harness import model

GIB = 1024**3
ANONYMOUS = {"api_key": None, "token": None}
STRONG = "Tr0ub4dor&3-horse-Battery"


def login058(client, account, password=None):
    """The 0.58 SDK's login: a 200 with credentials (0.58.0 documents 200, 0.53.2 201)."""
    result = client.call("UserApi", "login", model("UserCredentials", email=account.email,
                                                   password=password or account.password), auth=ANONYMOUS)
    assert result.ok and result.status == 200, result
    assert result.data["jwt"], result.data
    return result.data["jwt"]


@pytest.fixture
def project(platform):
    return k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], regions=[platform.regions["eu-west"].id]),
        subnet_size=26)


# -- accounts --------------------------------------------------------------------------------------------------------

def test_login_answers_each_sdk_its_documented_status_and_either_session_works(deployment, sdk058):
    bob = deployment.create_account("bob")
    admin = sdk058()
    jwt058 = login058(admin, bob)
    as_bob = {"api_key": None, "token": jwt058}
    credentials053 = k.UserApi(deployment.anonymous()).login_with_http_info(
        k.UserCredentials(email=bob.email, password=bob.password))
    assert credentials053.status_code == 201 and credentials053.data.jwt
    # Each SDK's session works with the other SDK.
    assert k.UserApi(deployment.client(token=jwt058)).read_user(bob.id).email == bob.email
    assert admin.ok("UserApi", "read_user", bob.id, auth={"api_key": None, "token": credentials053.data.jwt}
                    )["email"] == bob.email
    # A wrong password is the documented 401 for 0.58 too; Logout (204) ends the 0.58 session only.
    admin.error(401, "UserApi", "login", model("UserCredentials", email=bob.email, password="wrong"), auth=ANONYMOUS)
    assert admin.call("UserApi", "logout", auth=as_bob).status == 204
    admin.error(401, "UserApi", "read_user", bob.id, auth=as_bob)
    assert k.UserApi(deployment.client(token=credentials053.data.jwt)).read_user(bob.id).id == bob.id


def test_public_recovery_by_post_for_0_58_and_put_for_0_53_2(deployment, sdk058):
    bob = deployment.create_account("bob")
    client = sdk058(anonymous=True)
    assert client.call("UserApi", "reset_password", model("UserEmail", email=bob.email)).status == 200
    assert deployment.follow(link_in(deployment.mail.wait_for(bob.email, "Forgot about"))).status == 200
    by_post = fact_in(deployment.mail.wait_for(bob.email, "password has been reset"), "Password")
    login058(client, bob, by_post)
    # The same answer, and no mail, for an unknown address.
    assert client.call("UserApi", "reset_password", model("UserEmail", email="nobody@example.com")).status == 200
    k.UserApi(deployment.anonymous()).reset_password(k.UserEmail(email=bob.email))  # PUT
    assert deployment.follow(link_in(deployment.mail.wait_for(bob.email, "Forgot about", count=2))).status == 200
    by_put = fact_in(deployment.mail.wait_for(bob.email, "password has been reset", count=2), "Password")
    assert by_put != by_post
    login058(client, bob, by_put)
    assert deployment.mail.count("nobody@example.com", "Forgot about") == 0


def test_a_password_set_through_0_58_ends_the_sessions_of_both_sdks(deployment, sdk058):
    bob = deployment.create_account("bob")
    session053 = deployment.login(bob)
    client = sdk058()
    bob058 = sdk058(token=login058(client, bob))
    body = bob058.error(422, "UserApi", "set_user_password", bob.id, model("Password", value="password1"))
    assert body["reason"].startswith("insecure password")
    bob058.ok("UserApi", "set_user_password", bob.id, model("Password", value=STRONG))
    bob058.error(401, "UserApi", "read_user", bob.id)
    expect_error(401, k.UserApi(session053).read_user, bob.id)
    login058(client, bob, STRONG)


def test_an_api_key_expiry_is_set_by_either_query_name(deployment, sdk058):
    bob = deployment.create_account("bob")
    admin = sdk058()
    bob058 = sdk058(token=login058(admin, bob))
    when = datetime.date.today() + datetime.timedelta(days=10)
    token = bob058.ok("UserApi", "set_user_api_token", bob.id, expire=True, expiration_date=when)  # expirationDate
    assert (token["expire"], token["expiration_date"]) == (True, when.isoformat())
    key = fact_in(deployment.mail.wait_for(bob.email, "A new Kowabunga API key"), "API key")
    assert admin.ok("UserApi", "read_user", bob.id, auth={"api_key": key, "token": None})["id"] == bob.id
    assert k.TokenApi(deployment.admin).read_api_token(token["id"]).expiration_date == when
    # 0.53.2's expiration_date: read back through 0.58.
    later = when + datetime.timedelta(days=5)
    k.UserApi(deployment.login(bob)).set_user_api_token(bob.id, expire=True, expiration_date=later)
    replaced = admin.ok("TokenApi", "read_api_token", token["id"])  # a user's one key, renewed
    assert (replaced["expire"], replaced["expiration_date"]) == (True, later.isoformat())
    # An expiry without its date is refused, in either dialect.
    bob058.error(422, "UserApi", "set_user_api_token", bob.id, expire=True)
    expect_error(422, k.UserApi(deployment.login(bob)).set_user_api_token, bob.id, expire=True)


# -- one server, the same data -------------------------------------------------------------------------------------

def test_the_platform_made_by_0_53_2_reads_the_same_through_0_58(platform, sdk058):
    client = sdk058()
    assert set(client.ok("RegionApi", "list_regions")) == {r.id for r in platform.regions.values()}
    west = platform.regions["eu-west"]
    assert client.ok("RegionApi", "read_region", west.id) == west.model_dump(by_alias=True, exclude_none=True)
    assert set(client.ok("ZoneApi", "list_zones")) == {z.id for z in platform.zones.values()}
    assert set(client.ok("KaktusApi", "list_kaktuses")) == {node.id for node in platform.kaktuses.values()}
    kaktus = client.ok("KaktusApi", "read_kaktus", platform.kaktuses["a"].id)
    assert (kaktus["name"], kaktus["maintenance"], kaktus["agents"]) == ("k-a", False,
                                                                          platform.kaktuses["a"].agents)
    assert set(client.ok("RegionApi", "list_region_storage_nf_ses", west.id)) == set(
        k.RegionApi(platform.api).list_region_storage_nfss(west.id))
    subnet = platform.subnets["eu-west-0"]
    read = client.ok("SubnetApi", "read_subnet", subnet.id)
    assert (read["cidr"], read["gateway"], read["reserved"]) == (
        subnet.cidr, subnet.gateway, [r.model_dump() for r in subnet.reserved])


def test_instances_made_by_one_sdk_are_read_and_updated_by_the_other(platform, project, sdk058):
    client = sdk058()
    zone = platform.zones["a"].id
    # 0.58 makes a Kompute with its new fields; 0.53.2 reads it (and ignores them).
    made058 = client.ok("ProjectApi", "create_project_zone_kompute", project.id, zone, model(
        "Kompute", name="web-1", vcpus=1, memory=GIB, disk=10 * GIB, uefi=False, kmotion_enabled=False))
    assert (made058["uefi"], made058["kmotion_enabled"], made058["kwarantines"]) == (False, False, [])
    read053 = k.KomputeApi(platform.api).read_kompute(made058["id"])
    assert (read053.id, read053.name, read053.ip, read053.memory) == (made058["id"], "web-1", made058["ip"], GIB)
    # 0.53.2 updates it whole (its model has no kmotion_enabled): the 0.58-only field stays as 0.58 set it.
    k.KomputeApi(platform.api).update_kompute(made058["id"], k.Kompute(name="web-1", vcpus=2, memory=GIB,
                                                                        disk=10 * GIB))
    after = client.ok("KomputeApi", "read_kompute", made058["id"])
    assert (after["vcpus"], after["kmotion_enabled"], after["uefi"]) == (2, False, False)
    # 0.53.2 makes one (no uefi sent: BIOS, the 0.53.2 behaviour); 0.58 reads the defaults Kahuna applied.
    made053 = k.ProjectApi(platform.api).create_project_zone_kompute(project.id, zone, k.Kompute(
        name="web-2", vcpus=1, memory=GIB, disk=10 * GIB))
    read058 = client.ok("KomputeApi", "read_kompute", made053.id)
    assert (read058["name"], read058["uefi"], read058["kmotion_enabled"], read058["kwarantines"]) == (
        "web-2", False, True, [])
    # A 0.58 partial update changes what it carries, and 0.53.2 reads the rest unchanged.
    client.ok("KomputeApi", "update_kompute", made053.id, model("KomputeUpdate", description="cache"))
    again = k.KomputeApi(platform.api).read_kompute(made053.id)
    assert (again.description, again.vcpus, again.memory, again.disk) == ("cache", 1, GIB, 10 * GIB)
    assert set(client.ok("ProjectApi", "list_project_zone_komputes", project.id, zone)) == {made058["id"], made053.id}
    assert set(client.ok("ProjectApi", "list_project_region_komputes", project.id, platform.regions["eu-west"].id)
               ) == {made058["id"], made053.id}
    # Each SDK deletes what the other made.
    k.KomputeApi(platform.api).delete_kompute(made058["id"])
    client.ok("KomputeApi", "delete_kompute", made053.id)
    client.error(404, "KomputeApi", "read_kompute", made058["id"])
    expect_error(404, k.KomputeApi(platform.api).read_kompute, made053.id)


def test_a_kwarantine_made_through_0_58_holds_for_a_0_53_2_client(platform, project, sdk058):
    client = sdk058()
    group = client.ok("ProjectApi", "create_project_kwarantine", project.id, model("Kwarantine", name="ha"))
    assert (group["policy"], group["instances"], group["komputes"]) == ("host", [], [])
    web = client.ok("ProjectApi", "create_project_zone_kompute", project.id, platform.zones["a"].id, model(
        "Kompute", name="web-1", vcpus=1, memory=GIB, disk=10 * GIB, kwarantines=[group["id"]]))
    # The other member may not share web-1's node: zone a has one Kaktus, so a 0.53.2 client's Kompute
    # there cannot join; one in zone b can.
    there = k.ProjectApi(platform.api).create_project_zone_kompute(project.id, platform.zones["a"].id, k.Kompute(
        name="web-2", vcpus=1, memory=GIB, disk=10 * GIB))
    body = client.error(422, "KwarantineApi", "add_kwarantine_kompute", group["id"], there.id)
    assert "web-1" in body["reason"], body
    elsewhere = k.ProjectApi(platform.api).create_project_zone_kompute(project.id, platform.zones["b"].id, k.Kompute(
        name="web-3", vcpus=1, memory=GIB, disk=10 * GIB))
    joined = client.ok("KwarantineApi", "add_kwarantine_kompute", group["id"], elsewhere.id)
    assert sorted(joined["komputes"]) == sorted([web["id"], elsewhere.id])
    # A 0.53.2 client's delete of a member takes it out of the group.
    k.KomputeApi(platform.api).delete_kompute(elsewhere.id)
    assert client.ok("KwarantineApi", "read_kwarantine", group["id"])["komputes"] == [web["id"]]


def test_values_each_sdk_can_read(platform, project, sdk058):
    client = sdk058()
    west = platform.regions["eu-west"].id
    # A share made by 0.53.2 without backends: 0.58 requires the field, and reads [].
    nfs = k.RegionApi(platform.api).create_storage_nfs(west, k.StorageNFS(name="share", endpoint="nfs.west.internal"))
    assert client.ok("NfsApi", "read_storage_nfs", nfs.id)["backends"] == []
    # An IPsec tunnel made by 0.53.2 with dpd_timeout_action "start" (unknown to 0.58): stored as "restart".
    gateway = k.ProjectApi(platform.api).create_project_region_kawaii(project.id, west, k.Kawaii(
        netip=k.KawaiiNetIp(public=[], private=[], zones=[])))
    tunnel = k.KawaiiApi(platform.api).create_kawaii_ip_sec(gateway.id, k.KawaiiIpSec(
        name="office", remote_ip="203.0.113.10", remote_subnet="192.168.0.0/24", pre_shared_key="s3cr3t-psk",
        dpd_timeout_action="start", phase1_dh_group_number=14, phase1_integrity_algorithm="SHA256",
        phase1_encryption_algorithm="AES256", phase2_dh_group_number=14, phase2_integrity_algorithm="SHA256",
        phase2_encryption_algorithm="AES256"))
    read = client.ok("KawaiiApi", "read_kawaii_ip_sec", gateway.id, tunnel.id)
    assert (read["dpd_timeout_action"], read["remote_ip"]) == ("restart", "203.0.113.10")
    # A 0.58 partial update of the tunnel keeps what 0.53.2 set, and 0.53.2 still reads it.
    client.ok("KawaiiApi", "update_kawaii_ip_sec", gateway.id, tunnel.id, model("KawaiiIpSecUpdate",
                                                                             dpd_timeout="120s"))
    again = k.KawaiiApi(platform.api).read_kawaii_ip_sec(gateway.id, tunnel.id)
    assert (again.dpd_timeout, again.dpd_timeout_action, again.pre_shared_key) == ("120s", "restart", "s3cr3t-psk")
    assert "ipsec_connections" not in client.ok("KawaiiApi", "read_kawaii", gateway.id)


# -- the harness ---------------------------------------------------------------------------------------------------

def test_the_harness_reports_client_side_refusals_and_documented_errors(deployment, sdk058):
    client = sdk058()
    refused = client.call("RegionApi", "create_region", model("Region", name="no-domain"))
    assert not refused.ok and refused.status is None and refused.error.startswith("ValidationError")
    assert client.ok("RegionApi", "list_regions") == []  # nothing was sent
    body = client.error(404, "RegionApi", "read_region", "0" * 24)
    assert set(body) == {"status", "error", "reason"}
    client.error(401, "RegionApi", "list_regions", auth={"api_key": "not-a-key", "token": None})
    assert client.seen() == {"list_regions": {200}}
    assert client.operations() == {"ListRegions"}


def test_a_missing_sdk_venv_fails_the_tests_and_names_make_install(tmp_path):
    """Never a skip: CI must run these tests, and `make install` builds the venv."""
    env = {**os.environ, "KAHUNA_SDK058_VENV": str(tmp_path / "no-venv")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"{__file__}::test_the_harness_reports_client_side_refusals_and_documented_errors"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[1])
    assert run.returncode == 1, run.stdout[-2000:]
    assert "run `make install`" in run.stdout and "1 error" in run.stdout, run.stdout[-2000:]
    assert "skipped" not in run.stdout, run.stdout[-2000:]
