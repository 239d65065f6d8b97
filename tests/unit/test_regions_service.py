"""kahuna.services.regions through the fakes: names unique within their parent, domains no project holds, parents
deleted only when childless, defaults that must be the region's own."""

import pytest

from kahuna.errors import Conflict, NotFound
from kahuna.services.dns import DnsService
from kahuna.services.regions import RegionService, ZoneService
from tests.unit import factories as make


@pytest.fixture
def regions(db, agents, owners):
    return RegionService(db, owners, DnsService(db, agents, owners))


@pytest.fixture
def zones(db, owners):
    return ZoneService(db, owners)


def test_a_region_is_made_in_the_owner_of_all_domains(db, owners, regions):
    region = regions.create("eu-west", "Paris", "west.acme.internal")
    assert (region["name"], region["domain"], region["defaults"]) == ("eu-west", "west.acme.internal",
                                                                     {"pool_id": "", "nfs_id": ""})
    assert owners.keys == ["domains"]
    assert regions.list_ids() == [str(region["_id"])]
    with pytest.raises(Conflict, match="a region with the same name already exists"):
        regions.create("eu-west", "", "")


@pytest.mark.parametrize("domain", ["shop.acme.internal", "acme.internal", "eu.shop.acme.internal"])
def test_a_region_cannot_take_a_projects_domain(db, regions, domain):
    make.project(db, "shop", domain="shop.acme.internal")
    with pytest.raises(Conflict, match=f"domain {domain} is not available"):
        regions.create("eu-west", "", domain)
    region = regions.create("eu-west", "", "west.acme.internal")
    with pytest.raises(Conflict):
        regions.update(str(region["_id"]), "eu-west", "", domain)
    assert db.regions.get(region["_id"])["domain"] == "west.acme.internal"


def test_a_region_keeping_its_domain_is_not_checked_again(db, regions):
    region = regions.create("eu-west", "", "west.acme.internal")
    make.project(db, "legacy", domain="app.west.acme.internal")  # from before domains were exclusive
    assert regions.update(str(region["_id"]), "eu-west-1", "renamed", "west.acme.internal")["name"] == "eu-west-1"


@pytest.mark.parametrize(("children", "held"), [
    (["zone"], "zones"),
    (["kiwi", "vnet"], "Kiwis, virtual networks"),
    (["pool", "record"], "storage pools, DNS records"),
])
def test_a_region_with_children_is_not_deleted(db, regions, children, held):
    region = make.region(db, "eu-west", domain="west.acme.internal")
    builders = {"zone": lambda: make.zone(db, region), "kiwi": lambda: make.kiwi(db, region),
                "vnet": lambda: make.vnet(db, region), "pool": lambda: make.pool(db, region),
                "record": lambda: make.record(db, "gw", "west.acme.internal", ["10.0.0.1"], region=region)}
    for child in children:
        builders[child]()
    with pytest.raises(Conflict) as caught:
        regions.delete(str(region["_id"]))
    assert caught.value.reason == f"region eu-west still has {held}: delete them first"
    assert db.regions.count() == 1


def test_a_childless_region_is_deleted_in_its_owner(db, owners, regions):
    region = make.region(db)
    make.zone(db, make.region(db, "eu-east"))  # another region's
    regions.delete(str(region["_id"]))
    assert owners.keys == [f"region:{region['_id']}"]
    with pytest.raises(NotFound, match=f"region {region['_id']} does not exist"):
        regions.get(str(region["_id"]))
    with pytest.raises(NotFound):
        regions.delete(str(region["_id"]))


def test_zones_are_named_uniquely_within_their_region(db, owners, zones):
    west, east = make.region(db, "eu-west"), make.region(db, "eu-east")
    zone = zones.create(str(west["_id"]), "a", "first")
    assert (zone["region_id"], zone["name"]) == (str(west["_id"]), "a")
    assert owners.keys == [f"region:{west['_id']}"]  # where the region is deleted: no orphan zone
    with pytest.raises(Conflict, match="region already has a zone named a"):
        zones.create(str(west["_id"]), "a", "")
    assert zones.create(str(east["_id"]), "a", "")["region_id"] == str(east["_id"])
    other = zones.create(str(west["_id"]), "b", "")
    with pytest.raises(Conflict, match="region already has a zone named a"):
        zones.update(str(other["_id"]), "a", "")
    with pytest.raises(NotFound, match="region 000000000000000000000000 does not exist"):
        zones.create("0" * 24, "z", "")
    with pytest.raises(NotFound, match="region 'nonsense' does not exist"):
        zones.create("nonsense", "z", "")


def test_a_zone_with_a_kaktus_is_not_deleted(db, zones):
    zone = make.zone(db, make.region(db))
    kaktus = make.kaktus(db, zone, "k-a")
    with pytest.raises(Conflict, match="zone a still has Kaktus nodes: delete them first"):
        zones.delete(str(zone["_id"]))
    db.kaktuses.delete(kaktus["_id"])
    zones.delete(str(zone["_id"]))
    assert db.zones.count() == 0


def test_a_default_must_be_the_regions_own(db, regions):
    west, east = make.region(db, "eu-west"), make.region(db, "eu-east")
    pool = make.pool(db, west)
    regions.set_default(str(west["_id"]), "pool_id", db.pools, str(pool["_id"]))
    assert db.regions.get(west["_id"])["defaults"] == {"pool_id": str(pool["_id"]), "nfs_id": ""}
    with pytest.raises(NotFound, match=f"storage pool {pool['_id']} does not belong to this parent"):
        regions.set_default(str(east["_id"]), "pool_id", db.pools, str(pool["_id"]))
    assert db.regions.get(east["_id"])["defaults"]["pool_id"] == ""
