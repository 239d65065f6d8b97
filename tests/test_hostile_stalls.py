"""No request holds the gevent hub: heavy operations are measured by the hub-stall watchdog (kahuna/watchdog.py).

Every request, actor and agent connection shares the hub's thread; a request that computes without yielding
freezes all of them (an ``assignIP`` in an IPv6 /64 with a 2^20-address reserved range used to freeze
``/healthz`` for 27-69 s and drop every agent). Here each heavy operation runs under a watchdog, and no greenlet
of the server may run longer than :data:`BOUND` of CPU without yielding.

Why :data:`BOUND` is 25 ms and not the 10 ms the daemon warns about (``global.watchdog.thresholdMs``): the
watchdog measures *CPU time of the hub's thread* between two greenlet switches, so time the process spends
descheduled on a busy machine, or waiting for the GIL while the thread pool hashes passwords or builds ISOs,
is not counted, and garbage collection (a full collection of the test process, which holds the suite's
objects, takes ~130 ms) is timed apart and left out. What remains varies with the CPU's speed, not with the
machine's load: the longest stretch of a server greenlet in these tests is ~1.5 ms warm and ~4.5 ms on a cold
code path (the first e-mail rendered), measured on the 2-core development machine while three other suites
ran. SMT siblings and shared caches can slow the same work 2x on a contended host, and a CI CPU may be slower:
25 ms keeps room for that, while the regressions guarded against cost seconds to minutes. The 10 ms figure is
checked as a benchmark: ``STALL_BOUND=0.010 pytest tests/test_hostile_stalls.py`` (any bound, in seconds).

The test's own greenlet (the SDK client, pytest) is not part of the server and is not held to the bound;
the simulated agents' greenlets are, like the server's.
"""

from __future__ import annotations

import gc
import os
import time

import gevent
import gevent.monkey
import greenlet
import kowabunga as k
import pytest
import urllib3

from kahuna.watchdog import HubWatchdog
from tests import topology
from tests.deployment import Deployment, expect_error

#: Longest CPU stretch without yielding allowed to a server greenlet here (see the module's documentation).
BOUND = float(os.environ.get("STALL_BOUND", "0.025"))

GIB = 1024**3


class Watched:
    """A watchdog over a block; asserts on leaving it that no server greenlet stalled the hub."""

    def __init__(self, bound: float = BOUND):
        self.watchdog = HubWatchdog(bound, report=False)

    def __enter__(self) -> HubWatchdog:
        return self.watchdog.start()

    def __exit__(self, kind, *_) -> None:
        self.watchdog.stop()
        if kind is None:
            assert_no_stall(self.watchdog)


def assert_no_stall(watchdog: HubWatchdog) -> None:
    stalls = [stall for stall in watchdog.stalls(exclude=[greenlet.getcurrent()])
              if stall.seconds - stall.gc_seconds >= watchdog.threshold]
    assert not stalls, "the hub was held:\n" + "\n".join(str(stall) for stall in stalls)


def metric(deployment: Deployment, name: str) -> float:
    text = deployment.http.request("GET", f"{deployment.base_url}/metrics").data.decode()
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


# -- the watchdog itself ------------------------------------------------------------------------------------

def _burn(seconds: float) -> None:
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


def test_the_watchdog_counts_cpu_work_without_yielding_not_waiting():
    sleep_blocking = gevent.monkey.get_original("time", "sleep")

    def hog():
        _burn(0.030)
        gevent.sleep(0)

    def waiter():
        sleep_blocking(0.100)  # blocks the hub, but uses no CPU: like being descheduled by a busy machine
        gevent.sleep(0)

    def offloaded():
        gevent.get_hub().threadpool.apply(_burn, (0.050,))  # CPU on another thread

    with HubWatchdog(0.010, report=False) as watchdog:
        hogs = [gevent.spawn(hog), gevent.spawn(waiter), gevent.spawn(offloaded)]
        gevent.joinall(hogs, raise_error=True)
    stalls = watchdog.stalls()
    assert len(stalls) == 1, [str(s) for s in stalls]
    assert 0.030 <= stalls[0].seconds < 0.030 + BOUND
    assert stalls[0].greenlet.endswith(".hog)") and "test_hostile_stalls.py" in stalls[0].where
    assert stalls[0].origin() is hogs[0]
    assert watchdog.stalls_total == 1 and watchdog.max_seconds == stalls[0].seconds
    assert not watchdog.running


def test_garbage_collection_is_told_apart():
    garbage = [[n] for n in range(200_000)]  # enough objects for a full collection to take a few ms
    with HubWatchdog(0.001, report=False) as watchdog:
        collector = gevent.spawn(gc.collect)
        collector.join()
    del garbage
    stall = next(stall for stall in watchdog.stalls() if stall.origin() is collector)
    assert stall.gc_seconds >= 0.9 * stall.seconds and "collecting garbage" in str(stall)


def test_the_daemon_exports_the_watchdog_in_metrics(deployment):
    watchdog = deployment.kahuna.watchdog
    assert watchdog is not None and watchdog.running and watchdog.threshold == 0.010
    before = metric(deployment, "kahuna_hub_stalls_total")
    gevent.spawn(_burn, 0.025).join()
    assert metric(deployment, "kahuna_hub_stalls_total") == before + 1
    assert metric(deployment, "kahuna_hub_stretch_max_seconds") >= 0.025
    assert metric(deployment, "kahuna_hub_stall_threshold_seconds") == 0.010
    assert metric(deployment, 'kahuna_hub_stretch_seconds_bucket{le="0.025"}') < \
        metric(deployment, 'kahuna_hub_stretch_seconds_bucket{le="0.05"}')


def test_the_watchdog_can_be_turned_off(ferretdb, mail_server):
    running = Deployment.start(ferretdb.uri, "kahuna_test_no_watchdog", mail_server,
                               **{"global.watchdog.enabled": False})
    try:
        assert running.kahuna.watchdog is None
        assert "kahuna_hub_stalls_total" not in running.http.request("GET", f"{running.base_url}/metrics").data.decode()
    finally:
        running.stop()


# -- addresses --------------------------------------------------------------------------------------------

@pytest.fixture
def region(deployment):
    api = deployment.admin
    region = k.RegionApi(api).create_region(k.Region(name="eu-north", domain="north.acme.internal"))
    vnet = k.RegionApi(api).create_v_net(region.id, k.VNet(name="wan6", vlan=0, interface="br0", private=False))
    # Warm the code paths once on a small subnet: what is measured below is what the range sizes cost.
    small = k.VnetApi(api).create_subnet(vnet.id, k.Subnet(name="small", cidr="2a01:db8:1::/120",
                                                          gateway="2a01:db8:1::1"))
    k.SubnetApi(api).create_adapter(small.id, k.Adapter(name="warm"), assign_ip=True)
    return region, vnet


def test_assign_ip_in_an_ipv6_64_with_a_2_20_reserved_range(deployment, region):
    """A superAdmin's subnet whose reserved range covers 2^20 addresses: the lowest free address comes from
    interval arithmetic, and neither the allocation nor concurrent requests stall."""
    api = deployment.admin
    _, vnet = region
    with Watched():
        subnet = k.VnetApi(api).create_subnet(vnet.id, k.Subnet(
            name="big", cidr="2a01:db8::/64", gateway="2a01:db8::1",
            reserved=[k.IpRange(first="2a01:db8::2", last="2a01:db8::10:1")],
            gw_pool=[k.IpRange(first="2a01:db8::8000:0:0:0", last="2a01:db8::ffff:ffff:ffff:ffff")]))
        adapters = k.SubnetApi(api)
        first = adapters.create_adapter(subnet.id, k.Adapter(name="nic-0"), assign_ip=True)
        assert first.addresses == ["2a01:db8::10:2"]
        # Concurrent allocations in the subnet: lowest first, never twice.
        made = [gevent.spawn(adapters.create_adapter, subnet.id, k.Adapter(name=f"nic-{n}"), assign_ip=True)
                for n in range(1, 6)]
        gevent.joinall(made, raise_error=True)
        # An explicit address above the reserved range, then the next allocation skips it.
        adapters.create_adapter(subnet.id, k.Adapter(name="fixed", addresses=["2a01:db8::10:8"]))
        last = adapters.create_adapter(subnet.id, k.Adapter(name="nic-6"), assign_ip=True)
    got = sorted(g.value.addresses[0] for g in made)
    assert got == [f"2a01:db8::10:{n}" for n in range(3, 8)]
    assert last.addresses == ["2a01:db8::10:9"]


def test_a_full_huge_subnet_is_a_clear_422_quickly(deployment, region):
    """Every address of a /64 reserved: a 422 that says the subnet is full, never a 500 or a hang."""
    api = deployment.admin
    _, vnet = region
    subnet = k.VnetApi(api).create_subnet(vnet.id, k.Subnet(
        name="full", cidr="2a01:db8:2::/64", gateway="2a01:db8:2::1",
        reserved=[k.IpRange(first="2a01:db8:2::", last="2a01:db8:2::ffff:ffff:ffff:ffff")]))
    with Watched():
        body = expect_error(422, k.SubnetApi(api).create_adapter, subnet.id, k.Adapter(name="nic"), assign_ip=True)
    assert "is full" in body["reason"] and "2a01:db8:2::/64" in body["reason"]


def test_a_project_takes_its_zone_gateways_from_a_huge_pool(deployment):
    """A project in a region whose private subnet is an IPv6 /24 with a gateway pool of 2^100 addresses:
    one gateway per zone is taken from the pool without expanding it."""
    api = deployment.admin
    regions = k.RegionApi(api)
    region = regions.create_region(k.Region(name="eu-south", domain="south.acme.internal"))
    zones = [regions.create_zone(region.id, k.Zone(name=name)) for name in ("s1", "s2")]
    agent = deployment.simulated_agent("kiwi-south", "Kiwi")
    regions.create_kiwi(region.id, k.Kiwi(name="kiwi-south", agents=[agent.id]))
    vnet = regions.create_v_net(region.id, k.VNet(name="private", vlan=10, interface="br10", private=True))
    k.VnetApi(api).create_subnet(vnet.id, k.Subnet(
        name="vpc6", cidr="fd00::/24", gateway="fd00::1",
        gw_pool=[k.IpRange(first="fd00:0:10::", last="fd00:f0::")]))
    with Watched():
        project = k.ProjectApi(api).create_project(k.Project(
            name="shop", domain="shop.acme.internal", teams=[], regions=[region.id]), subnet_size=24)
    stored = deployment.kahuna.db.projects.get(project.id)
    assert stored["zone_gateways"] == {zones[0].id: "fd00:0:10::", zones[1].id: "fd00:0:10::1"}


# -- passwords ------------------------------------------------------------------------------------------

@pytest.fixture
def real_bcrypt(ferretdb, mail_server):
    """A Kahuna hashing passwords at the production cost (12: 100-300 ms of CPU per hash)."""
    running = Deployment.start(ferretdb.uri, f"kahuna_test_bcrypt_{time.monotonic_ns()}", mail_server,
                               **{"global.accounts.bcryptCost": 12})
    yield running
    running.stop()


def test_bcrypt_runs_off_the_hub(real_bcrypt):
    """Logins and password changes at bcrypt cost 12: /healthz keeps answering while a hash runs."""
    deployment = real_bcrypt
    with Watched():
        bob = deployment.create_account("bob")
        answered = []
        http = urllib3.PoolManager()

        def probe():
            while True:
                if http.request("GET", f"{deployment.base_url}/healthz").status == 200:
                    answered.append(time.monotonic())
                gevent.sleep(0.005)

        prober = gevent.spawn(probe)
        try:
            gevent.sleep(0.05)
            started = time.monotonic()
            client = deployment.login(bob)  # a real hash checked: >= 100 ms of CPU on the thread pool
            ended = time.monotonic()
            k.UserApi(client).set_user_password(bob.id, k.Password(value="Tr0ub4dor&3-horse-Battery"))
            expect_error(401, k.UserApi(deployment.anonymous()).login,
                         k.UserCredentials(email=bob.email, password="not-the-password"))
            expect_error(401, k.UserApi(deployment.anonymous()).login,
                         k.UserCredentials(email="nobody@example.com", password="whatever"))
        finally:
            prober.kill()
    assert [t for t in answered if started < t < ended], "/healthz did not answer during a login"


# -- cloud-init seeds --------------------------------------------------------------------------------------

def test_komputes_are_seeded_without_stalling(deployment):
    """Instance creation renders the cloud-init templates and builds the ISO on the thread pool."""
    platform = topology.build(deployment, with_templates=True)
    project = k.ProjectApi(platform.api).create_project(k.Project(
        name="shop", domain="shop.acme.internal", teams=[], root_password="S3cret-root-pw",
        regions=[platform.regions["eu-west"].id]), subnet_size=26)
    komputes = k.ProjectApi(platform.api)

    def kompute(name, zone):
        return komputes.create_project_zone_kompute(project.id, platform.zones[zone].id, k.Kompute(
            name=name, vcpus=2, memory=4 * GIB, disk=20 * GIB, data_disk=GIB), public=True)

    kompute("warm", "a")  # first use of the code paths, not measured
    with Watched():
        made = [kompute("web-1", "a"), kompute("web-2", "b")]
    assert all(m.ip.startswith("10.50.0.") for m in made)
