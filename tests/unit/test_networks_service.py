"""kahuna.services.networks through the fakes: virtual networks, subnet validation, private subnets given to
projects, and adapters' MACs and addresses (never handed out twice)."""

import re
from types import SimpleNamespace

import pytest

from kahuna.errors import Conflict, NotFound, Unprocessable
from kahuna.services.networks import AdapterService, SubnetService, VNetService
from tests.unit import factories as make


@pytest.fixture
def t(db, owners):
    """eu-west (zones a, b) with a private and a public virtual network; eu-east (zone c)."""
    west, east = make.region(db, "eu-west"), make.region(db, "eu-east")
    make.zone(db, west, "a")
    make.zone(db, west, "b")
    make.zone(db, east, "c")
    return SimpleNamespace(
        west=west, east=east, private=make.vnet(db, west, "private"),
        public=make.vnet(db, west, "public", private=False, vlan=0, interface="br0"),
        vnets=VNetService(db, owners), subnets=SubnetService(db, owners), adapters=AdapterService(db, owners))


def fields(name="vpc", cidr="10.50.0.0/24", gateway="10.50.0.1", **extra):
    return {"name": name, "cidr": cidr, "gateway": gateway, "gw_pool": [{"first": "10.50.0.6", "last": "10.50.0.7"}],
            **extra}


# -- virtual networks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "reason"), [
    ({"vlan": 4095}, "VLAN 4095 is out of range: expected 0 (untagged) to 4094"),
    ({"vlan": -1}, "VLAN -1 is out of range: expected 0 (untagged) to 4094"),
    ({"interface": "  "}, "interface (the host bridge, e.g. br0) must not be empty"),
])
def test_vnet_fields_are_checked(db, t, changes, reason):
    with pytest.raises(Unprocessable) as caught:
        t.vnets.create(str(t.west["_id"]), {"name": "lan", "interface": "br9", **changes})
    assert caught.value.reason == reason


def test_vnets(db, t):
    vnet = t.vnets.create(str(t.east["_id"]), {"name": "lan", "interface": "br9", "vlan": None})
    assert (vnet["vlan"], vnet["private"], vnet["defaults"]) == (0, True, {"subnet_id": ""})
    assert t.vnets.list_ids(str(t.east["_id"])) == [str(vnet["_id"])]
    with pytest.raises(Conflict, match="region already has a virtual network named lan"):
        t.vnets.create(str(t.east["_id"]), {"name": "lan", "interface": "br9"})
    with pytest.raises(Unprocessable, match="a virtual network cannot change between private and public"):
        t.vnets.update(str(vnet["_id"]), {"name": "lan", "interface": "br9", "private": False})
    make.subnet(db, vnet, "10.9.0.0/24")
    with pytest.raises(Conflict, match="virtual network lan still has subnets: delete them first"):
        t.vnets.delete(str(vnet["_id"]))


# -- subnets -----------------------------------------------------------------------------------------------


def test_a_subnet_is_normalized_and_becomes_the_default_of_its_vnet(db, t):
    subnet = t.subnets.create(str(t.private["_id"]), fields(cidr="10.50.0.77/24", extra_routes=["10.60.0.1/24"]))
    assert (subnet["cidr"], subnet["prefix_length"], subnet["private"], subnet["project_id"]) == (
        "10.50.0.0/24", 24, True, "")
    assert (subnet["dns"], subnet["extra_routes"], subnet["application"]) == ("10.50.0.1", ["10.60.0.0/24"], "user")
    assert subnet["region_id"] == str(t.west["_id"])
    assert db.vnets.get(t.private["_id"])["defaults"]["subnet_id"] == str(subnet["_id"])
    second = t.subnets.create(str(t.private["_id"]), fields("vpc-2", "10.51.0.0/24", "10.51.0.1",
                                                            gw_pool=[{"first": "10.51.0.6", "last": "10.51.0.7"}]))
    assert db.vnets.get(t.private["_id"])["defaults"]["subnet_id"] == str(subnet["_id"])  # the first stays
    t.subnets.delete(str(subnet["_id"]))
    assert db.vnets.get(t.private["_id"])["defaults"]["subnet_id"] == ""
    assert t.vnets.subnet_ids(str(t.private["_id"])) == [str(second["_id"])]


@pytest.mark.parametrize(("vnet", "changes", "reason"), [
    ("private", {"cidr": "198.51.50.0/24", "gateway": "198.51.50.1"},
     "subnet 198.51.50.0/24 is not a private range, but virtual network private is private"),
    ("public", {"cidr": "10.50.0.0/24"},
     "subnet 10.50.0.0/24 is a private range, but virtual network public is public"),
    ("private", {"cidr": "10.50.0.0/33"}, "invalid CIDR '10.50.0.0/33': expected an address and a prefix length, "
                                          "such as 10.0.0.0/24"),
    ("private", {"gateway": "10.51.0.1"}, "gateway 10.51.0.1 is not part of subnet 10.50.0.0/24"),
    ("private", {"gateway": "10.50.0.0"}, "gateway 10.50.0.0 is the network or broadcast address of 10.50.0.0/24"),
    ("private", {"gateway": "10.50.0.255"}, "gateway 10.50.0.255 is the network or broadcast address of 10.50.0.0/24"),
    ("private", {"dns": "dns.acme"}, "invalid DNS server 'dns.acme'"),
    ("private", {"extra_routes": ["10.60.0.0/40"]},
     "invalid extra route '10.60.0.0/40': expected an address and a prefix length, such as 10.0.0.0/24"),
    ("private", {"reserved": [{"first": "10.50.0.9", "last": "10.50.0.2"}]},
     "reserved range 10.50.0.9-10.50.0.2 ends before it starts"),
    ("private", {"reserved": [{"first": "10.50.0.2", "last": "10.50.1.9"}]},
     "reserved range end 10.50.1.9 is not part of subnet 10.50.0.0/24"),
    ("private", {"gw_pool": [{"first": "10.50.0.6", "last": "10.50.0.6"}]},
     "the gateway pool holds 1 address(es), fewer than the region's 2 zone(s): each zone needs one"),
    ("private", {"gw_pool": []}, "the gateway pool holds 0 address(es), fewer than the region's 2 zone(s): each "
                                 "zone needs one"),
])
def test_subnet_validation(db, t, vnet, changes, reason):
    vnet_id = str(getattr(t, vnet)["_id"])
    with pytest.raises(Unprocessable) as caught:
        t.subnets.create(vnet_id, {**fields(), **changes})
    assert caught.value.reason == reason
    assert db.subnets.count() == 0


@pytest.mark.parametrize("changes", [
    {"cidr": "10.50.0.0/31", "gateway": "10.50.0.0", "gw_pool": [{"first": "10.50.0.0", "last": "10.50.0.1"}]},
    {"cidr": "fd00:50::/64", "gateway": "fd00:50::1", "gw_pool": [{"first": "fd00:50::6", "last": "fd00:50::7"}]},
    {"dns": "10.50.0.53", "reserved": [{"first": "10.50.0.2", "last": "10.50.0.2"}]},
])
def test_valid_subnets(t, changes):
    assert t.subnets.create(str(t.private["_id"]), {**fields(), **changes})["name"] == "vpc"


def test_a_public_subnet_needs_no_gateway_pool(t):
    subnet = t.subnets.create(str(t.public["_id"]), fields("wan", "198.51.50.0/24", "198.51.50.1", gw_pool=[]))
    assert subnet["private"] is False


def test_a_subnets_cidr_cannot_change(t):
    subnet = t.subnets.create(str(t.private["_id"]), fields())
    assert t.subnets.update(str(subnet["_id"]), fields(cidr="10.50.0.1/24", description="same"))["description"] == \
        "same"
    with pytest.raises(Unprocessable, match="a subnet's CIDR cannot be changed"):
        t.subnets.update(str(subnet["_id"]), fields(cidr="10.50.0.0/25"))


def test_a_subnet_in_use_is_not_deleted(db, t):
    subnet = make.subnet(db, t.private, "10.50.0.0/26", name="vpc-0")
    adapter = make.adapter(db, subnet)
    with pytest.raises(Conflict, match="subnet vpc-0 still has adapters: delete them first"):
        t.subnets.delete(str(subnet["_id"]))
    db.adapters.delete(adapter["_id"])
    db.subnets.update(subnet["_id"], {"project_id": "p1"})
    with pytest.raises(Conflict, match="subnet vpc-0 is the private network of a project"):
        t.subnets.delete(str(subnet["_id"]))


# -- private subnets of projects ----------------------------------------------------------------------------


@pytest.fixture
def pool_of_subnets(db, t):
    """eu-west's private subnets: two /26 (the second taken), a /25, a /24; a free /26 of a public vnet and one
    of another region."""
    make.subnet(db, t.public, "10.99.0.0/26")  # not a private network: never given to a project
    make.subnet(db, make.vnet(db, t.east), "10.60.0.0/26")
    return SimpleNamespace(
        first=make.subnet(db, t.private, "10.50.0.0/26"),
        taken=make.subnet(db, t.private, "10.50.0.64/26", project="other"),
        half=make.subnet(db, t.private, "10.50.1.0/25"),
        whole=make.subnet(db, t.private, "10.50.2.0/24"))


def test_a_project_gets_the_first_free_subnet_of_the_size_asked_or_the_next_larger(db, owners, t, pool_of_subnets):
    west = str(t.west["_id"])
    assert t.subnets.reserve_private(west, 26, "p1")["_id"] == pool_of_subnets.first["_id"]
    assert owners.keys == [f"region-subnets:{west}"]
    assert t.subnets.reserve_private(west, 26, "p2")["_id"] == pool_of_subnets.half["_id"]
    assert t.subnets.reserve_private(west, 28, "p3")["_id"] == pool_of_subnets.whole["_id"]
    with pytest.raises(Unprocessable) as caught:
        t.subnets.reserve_private(west, 26, "p4")
    assert caught.value.reason == "no free private subnet of /26 or larger in region eu-west"
    assert db.subnets.get(pool_of_subnets.first["_id"])["project_id"] == "p1"


def test_a_project_gives_back_only_what_it_holds(db, t, pool_of_subnets):
    west = str(t.west["_id"])
    first = str(t.subnets.reserve_private(west, 26, "p1")["_id"])
    second = str(t.subnets.reserve_private(west, 25, "p1")["_id"])
    t.subnets.release(first, "someone-else")
    assert db.subnets.get(first)["project_id"] == "p1"
    t.subnets.release_all("p1")
    assert [db.subnets.get(i)["project_id"] for i in (first, second)] == ["", ""]
    assert db.subnets.get(pool_of_subnets.taken["_id"])["project_id"] == "other"


# -- adapters -------------------------------------------------------------------------------------------------


@pytest.fixture
def lan(db, t):
    return make.subnet(db, t.private, "10.50.0.0/28", name="lan", gateway="10.50.0.1",
                       reserved=[("10.50.0.2", "10.50.0.3")], gw_pool=[("10.50.0.4", "10.50.0.5")])


def test_assigned_addresses_are_the_lowest_free_and_never_twice(db, owners, t, lan):
    lan_id = str(lan["_id"])
    made = [t.adapters.create(lan_id, {"name": f"nic-{n}"}, assign_ip=True) for n in range(3)]
    assert [a["addresses"] for a in made] == [["10.50.0.6"], ["10.50.0.7"], ["10.50.0.8"]]
    assert owners.keys == [f"subnet:{lan_id}"] * 3
    db.adapters.delete(made[1]["_id"])
    assert t.adapters.create(lan_id, {"name": "again"}, assign_ip=True)["addresses"] == ["10.50.0.7"]
    assert t.adapters.create(lan_id, {"name": "none"})["addresses"] == []
    for n in range(9, 15):
        t.adapters.create(lan_id, {"name": f"fill-{n}"}, assign_ip=True)
    with pytest.raises(Unprocessable, match=re.escape("subnet lan (10.50.0.0/28) is full")):
        t.adapters.create(lan_id, {"name": "one-too-many"}, assign_ip=True)


@pytest.mark.parametrize(("addresses", "reason"), [
    (["10.50.0.6"], "address 10.50.0.6 is already in use in subnet lan"),
    (["10.50.0.1"], "address 10.50.0.1 is already in use in subnet lan"),  # the gateway
    (["10.50.0.0"], "address 10.50.0.0 is the network or broadcast address of 10.50.0.0/28"),
    (["10.50.0.15"], "address 10.50.0.15 is the network or broadcast address of 10.50.0.0/28"),
    (["10.50.1.6"], "address 10.50.1.6 is not part of subnet 10.50.0.0/28"),
    (["fd00::6"], "address fd00::6 is not part of subnet 10.50.0.0/28"),
    (["ten"], "invalid address 'ten'"),
])
def test_explicit_addresses_are_checked(db, t, lan, addresses, reason):
    make.adapter(db, lan, "taken", addresses=["10.50.0.6"], mac="da:1e:70:00:00:06")
    with pytest.raises(Unprocessable) as caught:
        t.adapters.create(str(lan["_id"]), {"name": "nic", "addresses": addresses})
    assert caught.value.reason == reason


def test_explicit_addresses_may_be_reserved_ones_and_are_de_duplicated(t, lan):
    adapter = t.adapters.create(str(lan["_id"]), {"name": "vip", "addresses": ["10.50.0.2", "10.50.0.9", "10.50.0.2"]},
                                assign_ip=True)
    assert adapter["addresses"] == ["10.50.0.2", "10.50.0.9"]


def test_macs(db, t, lan):
    lan_id = str(lan["_id"])
    generated = t.adapters.create(lan_id, {"name": "random"})
    assert re.fullmatch(r"da:1e:70(:[0-9a-f]{2}){3}", generated["mac"])
    given = t.adapters.create(lan_id, {"name": "given", "mac": "52-54-00-AA-BB-CC"})
    assert given["mac"] == "52:54:00:aa:bb:cc"
    with pytest.raises(Unprocessable) as caught:
        t.adapters.create(lan_id, {"name": "clash", "mac": "52:54:00:aa:bb:cc"})
    assert caught.value.reason == ("MAC address 52:54:00:aa:bb:cc is already used by adapter given; only two reserved "
                                   "adapters may share one")
    with pytest.raises(Unprocessable, match="invalid MAC address 'nope'"):
        t.adapters.create(lan_id, {"name": "bad", "mac": "nope"})
    first = t.adapters.create(lan_id, {"name": "vip-1", "mac": "52:54:00:00:00:01", "reserved": True})
    t.adapters.create(lan_id, {"name": "vip-2", "mac": "52:54:00:00:00:01", "reserved": True})
    assert first["reserved"] is True


def test_an_adapter_update_keeps_its_own_addresses_and_mac(db, t, lan):
    adapter = t.adapters.create(str(lan["_id"]), {"name": "nic", "mac": "52:54:00:00:00:09"}, assign_ip=True)
    updated = t.adapters.update(str(adapter["_id"]), {"name": "renamed", "addresses": adapter["addresses"]})
    assert (updated["name"], updated["mac"], updated["addresses"]) == ("renamed", "52:54:00:00:00:09", ["10.50.0.6"])
    with pytest.raises(Conflict, match="subnet already has an adapter named renamed"):
        t.adapters.create(str(lan["_id"]), {"name": "renamed"})


def test_an_adapter_plugged_in_an_instance_is_not_deleted(db, t, lan):
    adapter = make.adapter(db, lan)
    project = make.project(db)
    make.instance(db, project, make.kaktus(db, make.zone(db, t.west, "z")), adapter_ids=[str(adapter["_id"])])
    with pytest.raises(Conflict, match="adapter nic is still plugged in an instance"):
        t.adapters.delete(str(adapter["_id"]))
    db.instances.delete_many({})
    t.adapters.delete(str(adapter["_id"]))
    with pytest.raises(NotFound):
        t.adapters.get(str(adapter["_id"]))
