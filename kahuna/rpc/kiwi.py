"""Kiwi, the DNS agent of a region: its zones and records (see kahuna/services/dns.py for how they are kept).

Each method is declared once, with its params and result TypedDicts just above it. Field
names are the Go agent's struct fields.
"""

from __future__ import annotations

from typing import TypedDict

from kahuna.rpc import KIWI, CapabilitiesResult, Method, NoParams, NoResult, capabilities_method

# Annotated: kahuna.rpc reads it while the two modules import each other.
Capabilities: Method[NoParams, CapabilitiesResult] = capabilities_method(KIWI)


class DnsRecord(TypedDict):
    Name: str
    Type: str
    Addresses: list[str]


class DnsDomain(TypedDict):
    Name: str
    Records: list[DnsRecord]


class ReloadParams(TypedDict):
    Domains: list[DnsDomain]


class DnsZone(TypedDict):
    Domain: str


class DnsEntry(DnsZone):
    Entry: str


class DnsAddresses(DnsEntry):
    Addresses: list[str]


Reload = Method(KIWI, "Reload", ReloadParams, NoResult,
                doc="Replace the agent's whole record table (see the replay in the DNS service).")
CreateDnsZone = Method(KIWI, "CreateDnsZone", DnsZone, NoResult)
DeleteDnsZone = Method(KIWI, "DeleteDnsZone", DnsZone, NoResult)
CreateDnsRecord = Method(KIWI, "CreateDnsRecord", DnsAddresses, NoResult, errors=("the record exists",))
UpdateDnsRecord = Method(KIWI, "UpdateDnsRecord", DnsAddresses, NoResult, errors=("the record is absent",))
DeleteDnsRecord = Method(KIWI, "DeleteDnsRecord", DnsEntry, NoResult)
