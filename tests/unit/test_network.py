"""kahuna.network: parsing with clear errors, ranges, and address allocation that never repeats itself."""

import ipaddress
import re
import sys

import pytest

from kahuna import network
from kahuna.errors import Unprocessable


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0.0.0/24", "10.0.0.0/24"),
    ("10.0.0.7/24", "10.0.0.0/24"),  # host bits are dropped
    ("192.168.1.1", "192.168.1.1/32"),
    ("2001:db8::1/64", "2001:db8::/64"),
])
def test_parse_network(text, expected):
    assert str(network.parse_network(text)) == expected


@pytest.mark.parametrize(("text", "what", "message"), [
    ("10.0.0.0/33", "CIDR", "invalid CIDR '10.0.0.0/33': expected an address and a prefix length, such as 10.0.0.0/24"),
    ("lan", "extra route", "invalid extra route 'lan': expected an address and a prefix length, such as 10.0.0.0/24"),
    ("", "CIDR", "invalid CIDR '': expected an address and a prefix length, such as 10.0.0.0/24"),
])
def test_parse_network_errors(text, what, message):
    with pytest.raises(Unprocessable) as caught:
        network.parse_network(text, what)
    assert caught.value.reason == message


@pytest.mark.parametrize(("text", "what", "message"), [
    ("10.0.0.256", "IP address", "invalid IP address '10.0.0.256'"),
    ("10.0.0.1/24", "gateway", "invalid gateway '10.0.0.1/24'"),
    ("", "DNS server", "invalid DNS server ''"),
])
def test_parse_address_errors(text, what, message):
    with pytest.raises(Unprocessable) as caught:
        network.parse_address(text, what)
    assert caught.value.reason == message


NET = ipaddress.ip_network("10.0.0.0/24")


@pytest.mark.parametrize(("first", "last", "expected"), [
    ("10.0.0.2", "10.0.0.9", ("10.0.0.2", "10.0.0.9")),
    ("10.0.0.5", "10.0.0.5", ("10.0.0.5", "10.0.0.5")),
])
def test_parse_range(first, last, expected):
    assert tuple(str(a) for a in network.parse_range(NET, first, last, "reserved range")) == expected


@pytest.mark.parametrize(("first", "last", "message"), [
    ("10.0.0.9", "10.0.0.2", "reserved range 10.0.0.9-10.0.0.2 ends before it starts"),
    ("10.0.1.2", "10.0.0.9", "reserved range start 10.0.1.2 is not part of subnet 10.0.0.0/24"),
    ("10.0.0.2", "10.0.1.9", "reserved range end 10.0.1.9 is not part of subnet 10.0.0.0/24"),
    ("10.0.0.x", "10.0.0.9", "invalid reserved range start '10.0.0.x'"),
])
def test_parse_range_errors(first, last, message):
    with pytest.raises(Unprocessable) as caught:
        network.parse_range(NET, first, last, "reserved range")
    assert caught.value.reason == message


@pytest.mark.parametrize(("first", "last", "size"), [
    ("10.0.0.1", "10.0.0.1", 1),
    ("10.0.0.1", "10.0.0.10", 10),
    ("10.0.0.250", "10.0.1.4", 11),
    ("2001:db8::", "2001:db8::ffff", 65536),
])
def test_range_size(first, last, size):
    assert network.range_size(first, last) == size


def test_range_addresses_is_a_lazy_sequence_of_the_ranges_in_order():
    addresses = network.expand_ranges([{"first": "10.0.0.6", "last": "10.0.0.7"},
                                       {"first": "10.0.0.9", "last": "10.0.0.3"},  # backwards: no address
                                       {"first": "10.0.1.1", "last": "10.0.1.2"}])
    assert list(addresses) == ["10.0.0.6", "10.0.0.7", "10.0.1.1", "10.0.1.2"]
    assert (len(addresses), addresses.size) == (4, 4)
    assert (addresses[0], addresses[2], addresses[-1], addresses[-4]) == ("10.0.0.6", "10.0.1.1", "10.0.1.2",
                                                                          "10.0.0.6")
    assert addresses[1:3] == ["10.0.0.7", "10.0.1.1"]
    assert addresses[::-2] == ["10.0.1.2", "10.0.0.7"]
    for out_of_range in (4, -5):
        with pytest.raises(IndexError):
            addresses[out_of_range]


def test_range_addresses_of_an_ipv6_network_are_not_expanded():
    addresses = network.expand_ranges([{"first": "2001:db8::", "last": "2001:db8::ffff:ffff:ffff:ffff"}])
    assert addresses.size == 2**64
    assert len(addresses) == sys.maxsize  # len() saturates
    assert addresses[2**63 + 5] == "2001:db8::8000:0:0:5"
    assert next(iter(addresses)) == "2001:db8::"


@pytest.mark.parametrize(("address", "inside"), [
    ("10.0.0.5", True),
    ("10.0.0.9", True),
    ("10.0.0.4", False),
    ("10.0.0.10", False),
    ("10.0.0.20", True),
])
def test_in_ranges(address, inside):
    ranges = [{"first": "10.0.0.5", "last": "10.0.0.9"}, {"first": "10.0.0.20", "last": "10.0.0.20"}]
    assert network.in_ranges(ipaddress.ip_address(address), ranges) is inside


@pytest.mark.parametrize(("cidr", "first", "last"), [
    ("10.0.0.0/24", "10.0.0.1", "10.0.0.254"),
    ("10.0.0.0/30", "10.0.0.1", "10.0.0.2"),
    ("10.0.0.0/31", "10.0.0.0", "10.0.0.1"),  # point-to-point: both are hosts
    ("10.0.0.7/32", "10.0.0.7", "10.0.0.7"),
    ("2001:db8::/64", "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff"),  # no broadcast in IPv6
    ("2001:db8::/127", "2001:db8::", "2001:db8::1"),
])
def test_host_bounds_are_those_of_hosts(cidr, first, last):
    net = ipaddress.ip_network(cidr)
    low, high = network.host_bounds(net)
    assert (str(ipaddress.ip_address(low)), str(ipaddress.ip_address(high))) == (first, last)
    if net.num_addresses < 2**16:
        hosts = list(net.hosts())
        assert (hosts[0], hosts[-1]) == (ipaddress.ip_address(low), ipaddress.ip_address(high))


def subnet(cidr="10.0.0.0/29", gateway="10.0.0.1", reserved=(), gw_pool=()):
    return {"name": "vpc", "cidr": cidr, "gateway": gateway,
            "reserved": [{"first": a, "last": b} for a, b in reserved],
            "gw_pool": [{"first": a, "last": b} for a, b in gw_pool]}


@pytest.mark.parametrize(("definition", "taken", "expected"), [
    (subnet(), [], "10.0.0.2"),  # .0 is the network, .1 the gateway
    (subnet(gateway=""), [], "10.0.0.1"),
    (subnet(reserved=[("10.0.0.2", "10.0.0.3")]), [], "10.0.0.4"),
    (subnet(reserved=[("10.0.0.2", "10.0.0.3")], gw_pool=[("10.0.0.4", "10.0.0.4")]), ["10.0.0.5"], "10.0.0.6"),
    (subnet(), ["10.0.0.3", "10.0.0.2"], "10.0.0.4"),
    (subnet(), ["10.0.0.2", "10.0.0.4"], "10.0.0.3"),  # the lowest free, not the next after the highest
    # Overlapping, touching and out-of-subnet ranges are fine.
    (subnet(reserved=[("10.0.0.2", "10.0.0.4"), ("10.0.0.3", "10.0.0.5"), ("9.0.0.0", "10.0.0.1")]), [],
     "10.0.0.6"),
    # What does not parse, or is of the other IP version, is no address of the subnet.
    (subnet(reserved=[("x", "y"), ("::1", "::5")]), ["", "junk", "2001:db8::2", None], "10.0.0.2"),
    (subnet("2001:db8::/64", "2001:db8::1"), ["2001:db8::2"], "2001:db8::3"),
    (subnet("2001:db8::/64", "2001:db8::1", reserved=[("2001:db8::", "2001:db8::ffff:ffff:ffff:fff0")]), [],
     "2001:db8::ffff:ffff:ffff:fff1"),
    (subnet("10.0.0.8/31", gateway="10.0.0.8"), [], "10.0.0.9"),
])
def test_lowest_free_address(definition, taken, expected):
    assert network.lowest_free_address(definition, taken) == expected


@pytest.mark.parametrize(("definition", "taken"), [
    (subnet("10.0.0.0/30"), ["10.0.0.2"]),
    (subnet("10.0.0.0/30", reserved=[("10.0.0.0", "10.0.0.3")]), []),
    (subnet("10.0.0.0/30", gw_pool=[("10.0.0.2", "10.0.0.2")]), []),
])
def test_a_full_subnet_is_refused(definition, taken):
    with pytest.raises(Unprocessable) as caught:
        network.lowest_free_address(definition, taken)
    assert caught.value.reason == "no IP address can be assigned: subnet vpc (10.0.0.0/30) is full"


@pytest.mark.parametrize(("low", "high", "excluded", "free"), [
    (1, 10, [], 1),
    (1, 10, [(1, 1)], 2),
    (1, 10, [(3, 5)], 1),
    (1, 10, [(0, 4), (5, 6)], 7),  # touching
    (1, 10, [(2, 8), (1, 3)], 9),  # overlapping, unsorted
    (1, 10, [(1, 4), (6, 9)], 5),
    (1, 10, [(-5, 20)], None),  # sticking out on both sides
    (1, 10, [(1, 5), (6, 10)], None),
    (1, 10, [(11, 12)], 1),
])
def test_first_free(low, high, excluded, free):
    assert network.first_free(low, high, excluded) == free


def test_random_macs_are_locally_administered_and_normalized():
    macs = {network.random_mac() for _ in range(50)}
    assert len(macs) > 1
    for mac in macs:
        assert re.fullmatch(r"da:1e:70(:[0-9a-f]{2}){3}", mac)
        assert network.normalize_mac(mac) == mac
        assert int(mac.split(":")[0], 16) & 0b10  # the locally administered bit


@pytest.mark.parametrize(("text", "normalized"), [
    ("aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"),
    ("AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff"),
    ("aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:ff"),
    ("aabb.ccdd.eeff", "aa:bb:cc:dd:ee:ff"),
    ("  52:54:00:12:34:56 ", "52:54:00:12:34:56"),
])
def test_normalize_mac(text, normalized):
    assert network.normalize_mac(text) == normalized


@pytest.mark.parametrize("text", [
    "aabbccddeeff",  # no notation
    "aa:bb:cc:dd:ee",
    "aa:bb:cc:dd:ee:ff:00",
    "gg:bb:cc:dd:ee:ff",
    "aab.bccd.deeff",
    "aa:bb:cc:dd:ee:f",
    "",
])
def test_normalize_mac_refuses(text):
    with pytest.raises(Unprocessable) as caught:
        network.normalize_mac(text)
    assert caught.value.reason == f"invalid MAC address {text!r}"


@pytest.mark.parametrize(("domain", "valid"), [
    ("acme.internal", True),
    ("shop.acme.internal.", True),
    ("ACME-1.example", True),
    ("localhost", False),
    ("acme..internal", False),
    ("acme_corp.internal", False),
    (".acme.internal", False),
])
def test_domain(domain, valid):
    assert bool(network.DOMAIN.match(domain)) is valid
