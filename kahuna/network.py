"""Addresses, ranges and MACs: parsing with clear errors, and allocation that never repeats itself."""

from __future__ import annotations

import collections.abc
import ipaddress
import re
import secrets
import socket
import sys
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
    if int(low) > int(high):  # both of *network*, hence of one IP version
        raise Unprocessable(f"{what} {low}-{high} ends before it starts")
    return low, high


def range_size(first: str, last: str) -> int:
    return int(ipaddress.ip_address(last)) - int(ipaddress.ip_address(first)) + 1


class RangeAddresses(collections.abc.Sequence[str]):
    """The addresses of *ranges*, one range after the other, as a lazy sequence.

    Its length and any item are computed from the ranges' bounds, and iterating makes one address at a time:
    a caller that takes a few addresses of a huge range (an IPv6 /64) does work for those few only.
    ``len()`` saturates at ``sys.maxsize`` (Python's limit); :attr:`size` is exact.
    """

    def __init__(self, ranges: typing.Iterable[typing.Mapping[str, typing.Any]]):
        self._bounds: list[tuple[int, int, int]] = []
        for item in ranges:
            low, high = ipaddress.ip_address(item["first"]), ipaddress.ip_address(item["last"])
            if low.version == high.version and int(low) <= int(high):  # else empty, as is a reversed range
                self._bounds.append((int(low), int(high), low.version))

    @property
    def size(self) -> int:
        return sum(high - low + 1 for low, high, _ in self._bounds)

    def __len__(self) -> int:
        return min(self.size, sys.maxsize)

    def __iter__(self) -> typing.Iterator[str]:
        for low, high, version in self._bounds:
            for value in range(low, high + 1):
                yield str(_address(value, version))

    @typing.overload
    def __getitem__(self, index: int) -> str: ...

    @typing.overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        if index < 0:
            index += self.size
        if index >= 0:
            for low, high, version in self._bounds:
                if index <= high - low:
                    return str(_address(low + index, version))
                index -= high - low + 1
        raise IndexError("address index out of range")


def expand_ranges(ranges: typing.Iterable[typing.Mapping[str, typing.Any]]) -> RangeAddresses:
    """The addresses of *ranges* in order (lazily: see :class:`RangeAddresses`)."""
    return RangeAddresses(ranges)


def in_ranges(address: Address, ranges: typing.Iterable[typing.Mapping[str, typing.Any]]) -> bool:
    """Whether *address* is in one of *ranges* (an address is in no range of the other IP version)."""
    value = int(address)
    for item in ranges:
        low, high = ipaddress.ip_address(item["first"]), ipaddress.ip_address(item["last"])
        if low.version == high.version == address.version and int(low) <= value <= int(high):
            return True
    return False


def _address(value: int, version: int) -> Address:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def host_bounds(network: Network) -> tuple[int, int]:
    """The first and last addresses (as integers) that :meth:`Network.hosts` would give, without iterating:
    IPv4 leaves out the network and broadcast addresses, IPv6 the Subnet-Router anycast (network) address,
    except in /31, /32 (IPv4) and /127, /128 (IPv6) networks, where every address is a host."""
    low, high = int(network.network_address), int(network.broadcast_address)
    if network.num_addresses > 2:
        low += 1
        if network.version == 4:
            high -= 1
    return low, high


def lowest_free_address(subnet: typing.Mapping[str, typing.Any], taken: typing.Iterable[str]) -> str:
    """The lowest address of *subnet* that is not the network, broadcast or gateway address, not in a
    reserved or gateway-pool range, and not in *taken*.

    Interval arithmetic: the excluded ranges and addresses are sorted by their start and swept once, so the
    work is O(n log n) in their number, whatever the size of the subnet or of the ranges (a /64 is fine).
    """
    network = parse_network(subnet["cidr"])
    low, high = host_bounds(network)
    excluded: list[tuple[int, int]] = []
    for item in (*subnet.get("reserved", []), *subnet.get("gw_pool", [])):
        bounds = _bounds(item.get("first"), item.get("last"), network.version)
        if bounds is not None:
            excluded.append(bounds)
    for text in (subnet.get("gateway"), *taken):
        bounds = _bounds(text, text, network.version)
        if bounds is not None:
            excluded.append(bounds)
    free = first_free(low, high, excluded)
    if free is None:
        raise Unprocessable(f"no IP address can be assigned: subnet {subnet['name']} ({network}) is full")
    return str(_address(free, network.version))


def first_free(low: int, high: int, excluded: typing.Iterable[tuple[int, int]]) -> int | None:
    """The lowest integer of [low, high] in none of the closed intervals *excluded* (which may overlap,
    touch, or stick out of [low, high]), or None when they cover it all."""
    candidate = low
    for first, last in sorted(excluded):
        if first > candidate:
            break
        candidate = max(candidate, last + 1)
        if candidate > high:
            return None
    return candidate if candidate <= high else None


def _bounds(first: typing.Any, last: typing.Any, version: int) -> tuple[int, int] | None:
    """A range's bounds as integers; None for what is not a range of addresses of *version* (an empty
    gateway, a stored value that does not parse)."""
    low, high = _to_int(first, version), _to_int(last, version)
    if low is None or high is None or low > high:
        return None
    return low, high


def _to_int(text: typing.Any, version: int) -> int | None:
    """An address of *version* as an integer, or None. ``inet_pton`` (C) rather than ``ipaddress`` (Python,
    ~20 times slower): a subnet may hold thousands of taken addresses, parsed at each allocation."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET if version == 4 else socket.AF_INET6, text), "big")
    except (OSError, TypeError, ValueError):
        pass
    try:  # what inet_pton does not read but ipaddress does (a scoped IPv6 address)
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return int(address) if address.version == version else None


def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def normalize_mac(text: str) -> str:
    """A MAC in any usual notation (aa:bb:.., aa-bb-.., aabb.ccdd.eeff) as lowercase aa:bb:cc:dd:ee:ff."""
    digits = re.sub(r"[:.\-]", "", text.strip().lower())
    notations = r"^([0-9a-f]{2}([:-])){5}[0-9a-f]{2}$|^([0-9a-f]{4}\.){2}[0-9a-f]{4}$"
    if not _MAC_HEX.match(digits) or not re.match(notations, text.strip().lower()):
        raise Unprocessable(f"invalid MAC address {text!r}")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
