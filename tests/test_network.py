"""Address allocation by interval arithmetic (kahuna/network.py): table tests, a brute-force cross-check on
small subnets, and huge ranges that must cost no more than small ones."""

import ipaddress
import random
import sys

import pytest

from kahuna import network
from kahuna.errors import Unprocessable


def subnet(cidr, gateway="", reserved=(), gw_pool=()):
    return {"name": "vpc", "cidr": cidr, "gateway": gateway,
            "reserved": [{"first": a, "last": b} for a, b in reserved],
            "gw_pool": [{"first": a, "last": b} for a, b in gw_pool]}


@pytest.mark.parametrize("case, expected", [
    # IPv4: the network address is never given, the gateway neither.
    (subnet("10.0.0.0/24", "10.0.0.1"), "10.0.0.2"),
    (subnet("10.0.0.0/24", "10.0.0.254"), "10.0.0.1"),
    (subnet("10.0.0.0/24", "10.0.0.1", reserved=[("10.0.0.2", "10.0.0.9")]), "10.0.0.10"),
    # Overlapping, nested and unsorted ranges.
    (subnet("10.0.0.0/24", "10.0.0.1", reserved=[("10.0.0.5", "10.0.0.20"), ("10.0.0.2", "10.0.0.6"),
                                                  ("10.0.0.8", "10.0.0.9")]), "10.0.0.21"),
    # Adjacent ranges (reserved, then gateway pool) merge.
    (subnet("10.0.0.0/24", "10.0.0.1", reserved=[("10.0.0.2", "10.0.0.4")], gw_pool=[("10.0.0.5", "10.0.0.6")]),
     "10.0.0.7"),
    # A hole between two ranges is found.
    (subnet("10.0.0.0/24", "10.0.0.1", reserved=[("10.0.0.2", "10.0.0.4"), ("10.0.0.6", "10.0.0.9")]), "10.0.0.5"),
    # A range starting at the network address.
    (subnet("10.0.0.0/24", "10.0.0.254", reserved=[("10.0.0.0", "10.0.0.3")]), "10.0.0.4"),
    # The last usable address (not the broadcast one).
    (subnet("10.0.0.0/29", "10.0.0.1", reserved=[("10.0.0.2", "10.0.0.5")]), "10.0.0.6"),
    # /31 and /32: every address is a host.
    (subnet("10.0.0.0/31", "10.0.0.1"), "10.0.0.0"),
    (subnet("10.0.0.7/32", ""), "10.0.0.7"),
    # IPv6: the Subnet-Router anycast (network) address is never given; the last address is a host.
    (subnet("2001:db8::/64", "2001:db8::1"), "2001:db8::2"),
    (subnet("2001:db8::/126", "2001:db8::1", reserved=[("2001:db8::2", "2001:db8::2")]), "2001:db8::3"),
    (subnet("2001:db8::/127", ""), "2001:db8::"),
    # Huge ranges: 2^20 and 2^63 addresses reserved in a /64.
    (subnet("2001:db8::/64", "2001:db8::1", reserved=[("2001:db8::2", "2001:db8::10:1")]), "2001:db8::10:2"),
    (subnet("2001:db8::/64", "2001:db8::1", reserved=[("2001:db8::", "2001:db8::7fff:ffff:ffff:ffff")]),
     "2001:db8:0:0:8000::"),
    # IPv4 /8 with everything but its last usable address reserved.
    (subnet("10.0.0.0/8", "10.0.0.1", reserved=[("10.0.0.0", "10.255.255.253")]), "10.255.255.254"),
])
def test_lowest_free_address(case, expected):
    assert network.lowest_free_address(case, set()) == expected


@pytest.mark.parametrize("case, taken, expected", [
    (subnet("10.0.0.0/24", "10.0.0.1"), {"10.0.0.2", "10.0.0.3", "10.0.0.5"}, "10.0.0.4"),
    # Taken addresses next to a range, inside a range, out of the subnet, of the other version, or garbage.
    (subnet("10.0.0.0/24", "10.0.0.1", reserved=[("10.0.0.3", "10.0.0.9")]),
     {"10.0.0.2", "10.0.0.5", "10.0.0.10", "192.168.0.2", "2001:db8::2", "not an address", ""}, "10.0.0.11"),
    (subnet("2001:db8::/64", "2001:db8::1", reserved=[("2001:db8::2", "2001:db8::10:1")]),
     {"2001:db8::10:2", "2001:db8::10:4"}, "2001:db8::10:3"),
])
def test_taken_addresses_are_skipped(case, taken, expected):
    assert network.lowest_free_address(case, taken) == expected


@pytest.mark.parametrize("case, taken", [
    (subnet("10.0.0.0/30", "10.0.0.1"), {"10.0.0.2"}),
    (subnet("10.0.0.0/24", "10.0.0.1", reserved=[("10.0.0.0", "10.0.0.255")]), set()),
    (subnet("10.0.0.0/24", "10.0.0.1", reserved=[("10.0.0.2", "10.0.0.100")], gw_pool=[("10.0.0.101", "10.0.0.254")]),
     set()),
    (subnet("10.0.0.5/32", "10.0.0.5"), set()),
    (subnet("2001:db8::/64", "2001:db8::1", reserved=[("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff")]), set()),
    (subnet("2001:db8::/127", "2001:db8::"), {"2001:db8::1"}),
])
def test_a_full_subnet_is_a_clear_422(case, taken):
    with pytest.raises(Unprocessable, match=r"no IP address can be assigned: subnet vpc \(.*\) is full") as info:
        network.lowest_free_address(case, taken)
    assert info.value.status == 422


def _brute_force(case, taken):
    """The former address-by-address search, for small subnets only."""
    net = ipaddress.ip_network(case["cidr"])
    ranges = [*case["reserved"], *case["gw_pool"]]
    for address in net.hosts():
        if str(address) == case["gateway"] or str(address) in taken or network.in_ranges(address, ranges):
            continue
        return str(address)
    return None


@pytest.mark.parametrize("cidr", ["10.1.2.0/27", "10.1.2.0/30", "10.1.2.0/31", "2001:db8::/123", "2001:db8::/127"])
def test_agrees_with_the_address_by_address_search(cidr):
    net = ipaddress.ip_network(cidr)
    base, size = int(net.network_address), net.num_addresses
    draw = random.Random(cidr)
    for _ in range(300):
        def address():
            return str(ipaddress.ip_address(base + draw.randrange(size)))

        ranges = []
        for _ in range(draw.randrange(4)):
            first, last = sorted((address(), address()), key=ipaddress.ip_address)
            ranges.append((first, last))
        case = subnet(cidr, address(), reserved=ranges[:2], gw_pool=ranges[2:])
        taken = {address() for _ in range(draw.randrange(size // 2 + 1))}
        expected = _brute_force(case, taken)
        if expected is None:
            with pytest.raises(Unprocessable):
                network.lowest_free_address(case, taken)
        else:
            assert network.lowest_free_address(case, taken) == expected, (case, taken)


@pytest.mark.parametrize("low, high, excluded, expected", [
    (1, 10, [], 1),
    (1, 10, [(1, 1)], 2),
    (1, 10, [(0, 4), (3, 7)], 8),
    (1, 10, [(5, 7), (1, 4)], 8),
    (1, 10, [(1, 4), (6, 7)], 5),
    (1, 10, [(2, 9)], 1),
    (1, 10, [(1, 9), (10, 12)], None),
    (1, 10, [(-5, 100)], None),
    (5, 4, [], None),
    (0, 2 ** 128 - 1, [(0, 2 ** 127)], 2 ** 127 + 1),
])
def test_first_free(low, high, excluded, expected):
    assert network.first_free(low, high, excluded) == expected


def test_huge_ranges_cost_what_small_ones_do():
    """Work depends on the number of ranges and taken addresses, never on their size: 10^4 taken addresses and
    ranges covering a whole /64 but one address are answered (walking the addresses of a /64 would never end;
    the time it takes is measured nowhere here: timing belongs in bench/)."""
    taken = {f"2001:db8::{n:x}" for n in range(2, 10002)}
    ranges = [(f"2001:db8::{n:x}:0", f"2001:db8::{n:x}:ffff") for n in range(1, 5000)]
    ranges.append(("2001:db8::1388:0", "2001:db8::ffff:ffff:ffff:fffe"))
    case = subnet("2001:db8::/64", "2001:db8::1", reserved=ranges)
    assert network.lowest_free_address(case, taken) == "2001:db8::2712"
    case["reserved"].append({"first": "2001:db8::2712", "last": "2001:db8::ffff"})
    assert network.lowest_free_address(case, taken) == "2001:db8::ffff:ffff:ffff:ffff"


@pytest.mark.parametrize("ranges, length, head, item_at", [
    ([], 0, [], {}),
    ([("10.0.0.5", "10.0.0.7")], 3, ["10.0.0.5", "10.0.0.6", "10.0.0.7"], {-1: "10.0.0.7", 1: "10.0.0.6"}),
    # Concatenated in order, overlaps kept (as the list form did).
    ([("10.0.0.9", "10.0.0.9"), ("10.0.0.1", "10.0.0.2"), ("10.0.0.2", "10.0.0.2")], 4,
     ["10.0.0.9", "10.0.0.1", "10.0.0.2", "10.0.0.2"], {2: "10.0.0.2", -4: "10.0.0.9"}),
    ([("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff")], 2 ** 64,
     ["2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"],
     {-1: "2001:db8::ffff:ffff:ffff:ffff", 2 ** 32: "2001:db8::1:0:0"}),
])
def test_expand_ranges_is_lazy(ranges, length, head, item_at):
    addresses = network.expand_ranges([{"first": a, "last": b} for a, b in ranges])
    assert addresses.size == length
    assert len(addresses) == min(length, sys.maxsize)
    assert [a for a, _ in zip(addresses, range(4), strict=False)] == head
    for index, expected in item_at.items():
        assert addresses[index] == expected
    with pytest.raises(IndexError):
        addresses[length]
    assert addresses[:2] == head[:2]


def test_expand_ranges_serves_project_gateway_pools_without_expanding():
    """What projects.py does with a gateway pool: its length, and one address per zone."""
    # 2^64 - 16 addresses: expanded, they would not fit in memory; the pool is a lazy sequence over the range.
    pool = network.expand_ranges([{"first": "2001:db8::10", "last": "2001:db8::ffff:ffff:ffff:ffff"}])
    assert not isinstance(pool, (list, tuple)) and len(pool) == sys.maxsize
    assert dict(zip(["a", "b", "c"], pool, strict=False)) == {"a": "2001:db8::10", "b": "2001:db8::11",
                                                             "c": "2001:db8::12"}


@pytest.mark.parametrize("cidr", ["10.0.0.0/24", "10.0.0.0/30", "10.0.0.0/31", "10.0.0.0/32", "2001:db8::/120",
                                  "2001:db8::/127", "2001:db8::/128"])
def test_host_bounds_match_hosts(cidr):
    net = ipaddress.ip_network(cidr)
    hosts = list(net.hosts())
    assert network.host_bounds(net) == (int(hosts[0]), int(hosts[-1]))
