"""kahuna.cloudinit: the seed's documents rendered from templates, and the cidata ISO.

Shipped templates are checked for what the domain guarantees (NoCloud meta-data, #cloud-config user-data,
network-config per NIC), read as YAML, not for their text.
"""

import base64
import dataclasses

import pytest
import yaml

from kahuna.cloudinit import DOCUMENTS, Interface, Seed, Templates, build_iso, read_iso
from kahuna.errors import Unprocessable

PUBLIC = Interface(device="ens3", mac="da:1e:70:00:00:01", private=False, addresses=["198.51.50.10/24"],
                   gateway="198.51.50.1", dns="198.51.50.1")
PRIVATE = Interface(device="ens4", mac="da:1e:70:00:00:02", private=True, addresses=["10.50.0.10/26"],
                    gateway="10.50.0.6", dns="10.50.0.1", domain="shop.acme.internal", routes=["10.60.0.0/26"])
SEED = Seed(instance_id="6650c0ffee", hostname="web-1", domain="shop.acme.internal", profile="", region="eu-west",
            zone="a", local_ip="10.50.0.10", metadata_uri="https://kahuna.acme.example/latest/meta-data",
            root_password_hash="$2b$10$abcdefghijklmnopqrstuv", service_user="kowabunga",
            service_user_pubkey="ssh-ed25519 AAAAC3Nza test", interfaces=[PUBLIC, PRIVATE])


@pytest.fixture(scope="module")
def shipped():
    return Templates()


def rendered(templates, os="linux", **changes):
    return {name: text.decode() for name, text in templates.render(os, dataclasses.replace(SEED, **changes)).items()}


@pytest.mark.parametrize("os", ["linux", "windows"])
def test_every_document_is_rendered(shipped, os):
    documents = rendered(shipped, os)
    assert set(documents) == set(DOCUMENTS)
    assert yaml.safe_load(documents["meta-data"])["instance-id"] == SEED.instance_id


def test_linux_meta_data_is_nocloud(shipped):
    meta = yaml.safe_load(rendered(shipped)["meta-data"])
    assert (meta["instance-id"], meta["local-hostname"]) == ("6650c0ffee", "web-1")
    assert (meta["region"], meta["availability-zone"]) == ("eu-west", "a")
    assert "kowabunga_controller_agent_id" not in meta
    meta = yaml.safe_load(rendered(shipped, controller_uri="wss://kahuna.acme.example/ws",
                                   controller_agent_id="agent-7", controller_agent_token="t0ken")["meta-data"])
    assert (meta["kowabunga_controller_agent_id"], meta["kowabunga_controller_agent_token"]) == ("agent-7", "t0ken")


@pytest.mark.parametrize("value", [
    "$2b$10$abcdefghijklmnopqrstuv",
    '$6$salt$with"quote',
    "back\\slash: and # hash, [brackets] {braces} & *star !tag %pct @at `tick",
    "tab\tnew\nline\r\x00\x1b\x7f\x85",
    "l\u00e9gume \u2028 \ufeff \U0001f600 \U0010fffd",
    "- dash\n  indented: yes",
])
def test_linux_user_data_keeps_any_value_exactly(shipped, value):
    text = rendered(shipped, root_password_hash=value, service_user_pubkey=value)["user-data"]
    assert text.startswith("#cloud-config\n")
    users = {user["name"]: user for user in yaml.safe_load(text)["users"]}
    assert users["root"]["hashed_passwd"] == value
    assert users["kowabunga"]["ssh_authorized_keys"] == [value]


def test_linux_user_data_names_the_host_and_ships_the_metadata_helper(shipped):
    config = yaml.safe_load(rendered(shipped)["user-data"])
    assert (config["hostname"], config["fqdn"]) == ("web-1", "web-1.shop.acme.internal")
    helper = next(f for f in config["write_files"] if f["path"] == "/usr/bin/kw-meta")
    script = base64.b64decode(helper["content"]).decode()
    assert SEED.instance_id in script and SEED.metadata_uri in script and SEED.local_ip in script
    assert "packages" not in config
    assert "fqdn" not in yaml.safe_load(rendered(shipped, domain="")["user-data"])


@pytest.mark.parametrize("profile", ["kawaii", "konvey"])
def test_linux_user_data_of_a_service_vm_installs_its_agent(shipped, profile):
    config = yaml.safe_load(rendered(shipped, profile=profile)["user-data"])
    assert f"kowabunga-{profile}-agent" in config["packages"]


def test_linux_network_config_matches_each_nic_by_mac(shipped):
    ethernets = yaml.safe_load(rendered(shipped)["network-config"])["ethernets"]
    assert set(ethernets) == {"ens3", "ens4"}
    for nic in (PUBLIC, PRIVATE):
        config = ethernets[nic.device]
        assert config["match"]["macaddress"] == nic.mac
        assert config["addresses"] == nic.addresses
        assert config["nameservers"]["addresses"] == [nic.dns]
        assert {"to": "default", "via": nic.gateway} in [
            {key: route[key] for key in ("to", "via")} for route in config["routes"]]
    assert {"to": "10.60.0.0/26", "via": "10.50.0.6"} in ethernets["ens4"]["routes"]
    assert ethernets["ens4"]["nameservers"]["search"] == ["shop.acme.internal"]


def test_unknown_os(shipped):
    with pytest.raises(Unprocessable) as caught:
        shipped.render("plan9", SEED)
    assert caught.value.reason == "no cloud-init templates for OS 'plan9': expected one of linux, windows"


def operator_templates(tmp_path, user_data):
    for os in ("linux", "windows"):
        (tmp_path / os).mkdir()
        (tmp_path / os / "meta-data.j2").write_text("instance-id: {{ seed.instance_id }}\n")
        (tmp_path / os / "network-config.j2").write_text("version: 2\n")
    (tmp_path / "linux" / "user-data.j2").write_text(user_data)
    return Templates(tmp_path)


def test_an_operators_templates_get_the_seed_and_the_filters(tmp_path):
    templates = operator_templates(tmp_path, "#cloud-config\nhostname: {{ seed.hostname }}\n"
                                             "b64: {{ seed.hostname | b64encode }}\n"
                                             "quoted: {{ 'say \"hi\" \U0001f600' | tojson }}\n")
    user_data = yaml.safe_load(templates.render("linux", SEED)["user-data"])
    assert user_data == {"hostname": "web-1", "b64": base64.b64encode(b"web-1").decode(),
                         "quoted": 'say "hi" \U0001f600'}


def test_a_template_referring_to_an_undefined_value_fails_naming_the_template(tmp_path):
    templates = operator_templates(tmp_path, "hostname: {{ seed.host_name }}\n")
    with pytest.raises(Unprocessable) as caught:
        templates.render("linux", SEED)
    assert caught.value.reason.startswith(f"cloud-init template {tmp_path / 'linux' / 'user-data.j2'} failed: ")
    assert "host_name" in caught.value.reason


def test_a_missing_template_fails_naming_it(tmp_path):
    templates = operator_templates(tmp_path, "#cloud-config\n")
    with pytest.raises(Unprocessable) as caught:
        templates.render("windows", SEED)
    assert caught.value.reason.startswith(f"cloud-init template {tmp_path / 'windows' / 'user-data.j2'} failed")


def test_a_broken_template_fails_when_rendered_not_when_loaded(tmp_path):
    templates = operator_templates(tmp_path, "{% if %}\n")
    with pytest.raises(Unprocessable) as caught:
        templates.render("linux", SEED)
    assert caught.value.reason.startswith(f"cloud-init template {tmp_path / 'linux' / 'user-data.j2'} failed")


def test_the_iso_holds_the_documents_under_the_cidata_label():
    documents = {"user-data": b"#cloud-config\nhostname: web-1\n", "meta-data": b"instance-id: i-1\n",
                 "network-config": b""}
    image = build_iso(documents)
    assert read_iso(image) == documents
    # ISO 9660 primary volume descriptor (sector 16): the volume identifier at byte 40, 32 bytes, space padded.
    assert image[16 * 2048 + 40:16 * 2048 + 72].rstrip() == b"cidata"
