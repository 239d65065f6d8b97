"""kahuna.costs: monthly prices per unit, from the current prices of Kaktus nodes and pools, never NaN."""

import pytest

from kahuna.costs import Price, Pricing
from tests.unit import factories as make

GIB = 1024**3


@pytest.fixture
def west(db):
    return make.region(db, "eu-west")


@pytest.mark.parametrize(("kaktuses", "cpu", "memory"), [
    # (threads, memory, cpu price, memory price, cpu overcommit, memory overcommit) of each Kaktus
    ([], Price(0.0, "EUR"), Price(0.0, "EUR")),
    ([(32, 256 * GIB, 960.0, 512.0, 3, 2)], Price(10.0, "EUR"), Price(1.0, "EUR")),
    ([(32, 256 * GIB, 960.0, 512.0, 3, 2), (16, 64 * GIB, 0.0, 0.0, 1, 1)], Price(5.0, "EUR"), Price(0.5, "EUR")),
    ([(0, 0, 960.0, 512.0, 3, 2)], Price(0.0, "EUR"), Price(0.0, "EUR")),  # nothing reported: 0, not NaN
    ([(10, 10 * GIB + GIB // 2, 100.0, 100.0, 1, 1)], Price(10.0, "EUR"), Price(10.0, "EUR")),  # whole GiB only
])
def test_zone_unit_prices_are_the_mean_over_its_kaktuses(db, west, kaktuses, cpu, memory):
    zone = make.zone(db, west)
    for n, (threads, ram, cpu_price, memory_price, cpu_ratio, memory_ratio) in enumerate(kaktuses):
        make.kaktus(db, zone, f"k{n}", threads=threads, memory=ram, cpu_price=cpu_price, memory_price=memory_price,
                    cpu_overcommit=cpu_ratio, memory_overcommit=memory_ratio)
    make.kaktus(db, make.zone(db, west, "other"), "elsewhere", threads=1, memory=GIB, cpu_price=1e6)
    assert Pricing(db).zone_prices(str(zone["_id"])) == (cpu, memory)


@pytest.mark.parametrize(("pools", "price"), [
    ([], Price(0.0, "EUR")),
    ([(100 * GIB, 200.0, "EUR")], Price(2.0, "EUR")),
    ([(100 * GIB, 200.0, "USD"), (0, 200.0, "USD")], Price(1.0, "USD")),  # a pool with no stats yet counts 0
    ([(10 * GIB, 10.0, "EUR"), (10 * GIB, 30.0, "CHF")], Price(2.0, "CHF")),  # the newest pool's currency
])
def test_region_storage_price_is_the_mean_over_its_pools(db, west, pools, price):
    for n, (capacity, cost, currency) in enumerate(pools):
        make.pool(db, west, f"pool-{n}", capacity=capacity, price=cost, currency=currency)
    make.pool(db, make.region(db, "eu-east"), "elsewhere", capacity=GIB, price=1e6)
    assert Pricing(db).region_storage_price(str(west["_id"])) == price


def test_costs_of_instances_and_volumes_and_their_total(db, west):
    zone = make.zone(db, west)
    node = make.kaktus(db, zone, threads=32, memory=256 * GIB, cpu_price=960.0, memory_price=512.0)
    pool = make.pool(db, west, capacity=100 * GIB, price=200.0)
    project = make.project(db, regions=[west])
    instance = make.instance(db, project, node, vcpus=2, memory=4 * GIB + 1)
    volume = make.volume(db, project, pool, size=10 * GIB)
    pricing = Pricing(db)
    assert pricing.instance_cost(instance) == Price(2 * 10.0 + 4 * 1.0, "EUR")
    assert pricing.volume_cost(volume) == Price(10 * 2.0, "EUR")
    assert pricing.total([instance], [volume]) == Price(44.0, "EUR")
    assert pricing.total([], []) == Price(0.0, "EUR")


def test_a_changed_price_shows_at_once(db, west):
    pool = make.pool(db, west, capacity=3 * GIB, price=1.0)
    volume = make.volume(db, make.project(db), pool, size=GIB)
    pricing = Pricing(db)
    assert pricing.total([], [volume]) == Price(0.33, "EUR")  # rounded to the cent
    db.pools.update(pool["_id"], {"cost": {"price": 6.0, "currency": "EUR"}})
    assert pricing.total([], [volume]) == Price(2.0, "EUR")
