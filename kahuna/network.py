"""Addresses, ranges and MACs: parsing with clear errors, and allocation that never repeats itself."""

from __future__ import annotations

import ipaddress
import re
import secrets
import typing

from kahuna.errors import Unprocessable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: A DNS domain of at least two labels (the Go Kahuna's rule).
DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+\.?$", re.IGNORECASE)
#: Locally administered prefix of the MACs Kahuna generates (the Go Kahuna's).
MAC_PREFIX = "da:1e:70"
_MAC_HEX = re.compile(r"^[0-9a-f]{12}$")


def parse_network(text: str, what: str = "CIDR") -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise Unprocessable(f"invalid {what} {text!r}: expected an address and a prefix length, "
                            f"such as 10.0.0.0/24") from None


def parse_address(text: str, what: str = "IP address") -> Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise Unprocessable(f"invalid {what} {text!r}") from None


def address_in(network: Network, text: str, what: str) -> Address:
    address = parse_address(text, what)
    if address not in network:
        raise Unprocessable(f"{what} {address} is not part of subnet {network}")
    return address


def parse_range(network: Network, first: str, last: str, what: str) -> tuple[Address, Address]:
    low = address_in(network, first, f"{what} start")
    high = address_in(network, last, f"{what} end")
    if low > high:
        raise Unprocessable(f"{what} {low}-{high} ends before it starts")
    return low, high


def range_size(first: str, last: str) -> int:
    return int(ipaddress.ip_address(last)) - int(ipaddress.ip_address(first)) + 1


def expand_ranges(ranges: typing.Iterable[dict[str, str]]) -> list[str]:
    addresses = []
    for item in ranges:
        low, high = int(ipaddress.ip_address(item["first"])), int(ipaddress.ip_address(item["last"]))
        addresses += [str(ipaddress.ip_address(value)) for value in range(low, high + 1)]
    return addresses


def in_ranges(address: Address, ranges: typing.Iterable[dict[str, str]]) -> bool:
    return any(ipaddress.ip_address(r["first"]) <= address <= ipaddress.ip_address(r["last"]) for r in ranges)


def lowest_free_address(subnet: dict[str, typing.Any], taken: set[str]) -> str:
    """The lowest address of *subnet* that is not the network, broadcast or gateway address, not in a
    reserved or gateway-pool range, and not in *taken*."""
    network = parse_network(subnet["cidr"])
    excluded_ranges = [*subnet.get("reserved", []), *subnet.get("gw_pool", [])]
    gateway = subnet.get("gateway")
    for address in network.hosts():
        text = str(address)
        if text == gateway or text in taken or in_ranges(address, excluded_ranges):
            continue
        return text
    raise Unprocessable(f"no IP address can be assigned: subnet {subnet['name']} ({network}) is full")


def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def normalize_mac(text: str) -> str:
    """A MAC in any usual notation (aa:bb:.., aa-bb-.., aabb.ccdd.eeff) as lowercase aa:bb:cc:dd:ee:ff."""
    digits = re.sub(r"[:.\-]", "", text.strip().lower())
    if not _MAC_HEX.match(digits) or not re.match(r"^([0-9a-f]{2}([:-])){5}[0-9a-f]{2}$|^([0-9a-f]{4}\.){2}[0-9a-f]{4}$",
                                                    text.strip().lower()):
        raise Unprocessable(f"invalid MAC address {text!r}")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
