"""Virtual networks, their subnets, and the adapters (NICs) that take addresses in them.

Addresses and MACs are allocated inside the subnet's serializer actor: two
allocations in one subnet never run at once, so an address is never handed out
twice, while allocations in different subnets proceed in parallel.
"""

from __future__ import annotations

import typing

from kahuna import network
from kahuna.errors import Conflict, Unprocessable
from kahuna.services._common import (
    Owners,
    child_ids,
    child_of,
    clear_default,
    delete_if_childless,
    insert_child,
    refuse_if_children,
    set_default_if_none,
)
from kahuna.storage import Database, models

MAX_VLAN = 4094
APPLICATIONS = ("user", "ceph")
SMALLEST_PROJECT_PREFIX = 16  # a /16 or larger is never given to one project


class VNetService:
    def __init__(self, db: Database, owners: Owners):
        self.db = db
        self.owners = owners

    def list_ids(self, region_id: str | None = None) -> list[str]:
        return child_ids(self.db.regions, self.db.vnets, "region_id", region_id)

    def get(self, vnet_id: str) -> models.VNet:
        return self.db.vnets.get(vnet_id)

    @staticmethod
    def _fields(fields: dict[str, typing.Any]) -> dict[str, typing.Any]:
        vlan = fields.get("vlan") or 0
        if not 0 <= vlan <= MAX_VLAN:
            raise Unprocessable(f"VLAN {vlan} is out of range: expected 0 (untagged) to {MAX_VLAN}")
        if not fields["interface"].strip():
            raise Unprocessable("interface (the host bridge, e.g. br0) must not be empty")
        return {"name": fields["name"], "description": fields.get("description", ""), "vlan": vlan,
                "interface": fields["interface"]}

    def create(self, region_id: str, fields: dict[str, typing.Any]) -> models.VNet:
        return insert_child(self.owners, "region", self.db.regions, region_id, self.db.vnets,
                            {"region_id": region_id, **self._fields(fields), "private": fields.get("private", True),
                             "defaults": {"subnet_id": ""}},
                            conflict=f"region already has a virtual network named {fields['name']}")

    def update(self, vnet_id: str, fields: dict[str, typing.Any]) -> models.VNet:
        vnet = self.get(vnet_id)
        if fields.get("private", True) != vnet["private"]:
            raise Unprocessable("a virtual network cannot change between private and public")
        return self.db.vnets.update(vnet_id, self._fields(fields),
                                    conflict=f"region already has a virtual network named {fields['name']}")

    def delete(self, vnet_id: str) -> None:
        delete_if_childless(self.owners, self.db, "vnet", self.db.vnets, vnet_id, "virtual network",
                            (("subnet", "vnet_id", "subnets"),))

    def subnet_ids(self, vnet_id: str) -> list[str]:
        self.get(vnet_id)
        return self.db.subnets.ids({"vnet_id": vnet_id})

    def set_default_subnet(self, vnet_id: str, subnet_id: str) -> None:
        self.get(vnet_id)
        child_of(self.db.subnets, subnet_id, "vnet_id", vnet_id)
        self.db.vnets.update(vnet_id, {"defaults.subnet_id": subnet_id})


class SubnetService:
    def __init__(self, db: Database, serializer: Owners):
        self.db = db
        # Which private subnet goes to which project is decided in the region's owner
        # (``region-subnets:<id>``): two projects never get the same one.
        self.serializer = serializer

    def list_ids(self) -> list[str]:
        return self.db.subnets.ids()

    def get(self, subnet_id: str) -> models.Subnet:
        return self.db.subnets.get(subnet_id)

    def _validated(self, vnet: models.VNet, fields: dict[str, typing.Any], cidr: str) -> dict[str, typing.Any]:
        net = network.parse_network(cidr)
        if net.is_private != vnet["private"]:
            kind = "private" if vnet["private"] else "public"
            raise Unprocessable(f"subnet {net} is {'not ' if vnet['private'] else ''}a private range, "
                                f"but virtual network {vnet['name']} is {kind}")
        gateway = network.address_in(net, fields["gateway"], "gateway")
        if net.num_addresses > 2 and gateway in (net.network_address, net.broadcast_address):
            raise Unprocessable(f"gateway {gateway} is the network or broadcast address of {net}")
        dns = str(network.parse_address(fields["dns"], "DNS server")) if fields.get("dns") else str(gateway)
        routes = [str(network.parse_network(route, "extra route")) for route in fields.get("extra_routes") or []]
        ranges: dict[str, list[models.AddressRange]] = {}
        for key, what in (("reserved", "reserved range"), ("gw_pool", "gateway pool range")):
            ranges[key] = []
            for item in fields.get(key) or []:
                low, high = network.parse_range(net, item["first"], item["last"], what)
                ranges[key].append({"first": str(low), "last": str(high)})
        zones = self.db.zones.count({"region_id": vnet["region_id"]})
        pool_size = sum(network.range_size(r["first"], r["last"]) for r in ranges["gw_pool"])
        if vnet["private"] and pool_size < zones:
            raise Unprocessable(f"the gateway pool holds {pool_size} address(es), fewer than the region's "
                                f"{zones} zone(s): each zone needs one")
        application = fields.get("application") or "user"
        return {"name": fields["name"], "description": fields.get("description", ""), "gateway": str(gateway),
                "dns": dns, "extra_routes": routes, "reserved": ranges["reserved"], "gw_pool": ranges["gw_pool"],
                "application": application}

    def create(self, vnet_id: str, fields: dict[str, typing.Any]) -> models.Subnet:
        vnet = self.db.vnets.get(vnet_id)
        net = network.parse_network(fields["cidr"])
        subnet = insert_child(
            self.serializer, "vnet", self.db.vnets, vnet_id, self.db.subnets,
            {"vnet_id": vnet_id, "region_id": vnet["region_id"], "cidr": str(net), "prefix_length": net.prefixlen,
             "private": vnet["private"], "project_id": "", **self._validated(vnet, fields, fields["cidr"])},
            conflict=f"virtual network already has a subnet named {fields['name']}")
        set_default_if_none(self.db.vnets, vnet_id, "defaults.subnet_id", str(subnet["_id"]))
        return subnet

    def update(self, subnet_id: str, fields: dict[str, typing.Any]) -> models.Subnet:
        subnet = self.get(subnet_id)
        if str(network.parse_network(fields["cidr"])) != subnet["cidr"]:
            raise Unprocessable("a subnet's CIDR cannot be changed")
        vnet = self.db.vnets.get(subnet["vnet_id"])
        return self.db.subnets.update(subnet_id, self._validated(vnet, fields, subnet["cidr"]),
                                      conflict=f"virtual network already has a subnet named {fields['name']}")

    def delete(self, subnet_id: str) -> None:
        def remove() -> models.Subnet:
            subnet = self.get(subnet_id)
            refuse_if_children(self.db, subnet, "subnet", (("adapter", "subnet_id", "adapters"),))
            if subnet.get("project_id"):
                raise Conflict(f"subnet {subnet['name']} is the private network of a project")
            self.db.subnets.delete(subnet_id)
            return subnet

        region_id = self.get(subnet_id)["region_id"]
        subnet = self.serializer.run_all((f"region-subnets:{region_id}", f"subnet:{subnet_id}"), remove)
        clear_default(self.db.vnets, subnet["vnet_id"], "defaults.subnet_id", subnet_id)

    def adapter_ids(self, subnet_id: str) -> list[str]:
        self.get(subnet_id)
        return self.db.adapters.ids({"subnet_id": subnet_id})

    # -- project networks ------------------------------------------------------------

    def reserve_private(self, region_id: str, prefix_length: int, project_id: str) -> models.Subnet:
        """Give *project_id* a free private subnet of the region: a /prefix_length, or the next larger."""
        def claim() -> models.Subnet:
            private_vnets = self.db.vnets.ids({"region_id": region_id, "private": True})
            for length in range(prefix_length, SMALLEST_PROJECT_PREFIX, -1):
                free = self.db.subnets.find({"vnet_id": {"$in": private_vnets}, "project_id": "",
                                             "prefix_length": length}, sort=[("_id", 1)], limit=1)
                if free:
                    return self.db.subnets.update(free[0]["_id"], {"project_id": project_id})
            region = self.db.regions.get(region_id)
            raise Unprocessable(f"no free private subnet of /{prefix_length} or larger in region {region['name']}")

        return self.serializer.run(f"region-subnets:{region_id}", claim)

    def release(self, subnet_id: str, project_id: str) -> None:
        subnet = self.get(subnet_id)

        def give_back() -> None:
            if self.get(subnet_id).get("project_id") == project_id:
                self.db.subnets.update(subnet_id, {"project_id": ""})

        self.serializer.run(f"region-subnets:{subnet['region_id']}", give_back)

    def release_all(self, project_id: str) -> None:
        """Every private subnet *project_id* holds goes back to its region (an undone or deleted project)."""
        for subnet in self.db.subnets.find({"project_id": project_id}, projection={"_id": 1}):
            self.release(str(subnet["_id"]), project_id)


class AdapterService:
    def __init__(self, db: Database, serializer: Owners):
        self.db = db
        self.serializer = serializer

    def list_ids(self) -> list[str]:
        return self.db.adapters.ids()

    def get(self, adapter_id: str) -> models.Adapter:
        return self.db.adapters.get(adapter_id)

    def create(self, subnet_id: str, fields: dict[str, typing.Any], assign_ip: bool = False,
               made_for: str = "") -> models.Adapter:
        """A new adapter; *made_for* names the instance (or Kawaii/Konvey) whose creation makes it, so that
        crash recovery can take it back with that creation."""
        subnet = self.db.subnets.get(subnet_id)

        def allocate() -> models.Adapter:
            mac, addresses = self._checked(subnet, fields, None, assign_ip)
            return self.db.adapters.insert(
                {"subnet_id": subnet_id, "name": fields["name"], "description": fields.get("description", ""),
                 "mac": mac, "addresses": addresses, "reserved": fields.get("reserved", False),
                 "made_for": made_for},
                conflict=f"subnet already has an adapter named {fields['name']}")

        return self.serializer.run(f"subnet:{subnet_id}", allocate)

    def update(self, adapter_id: str, fields: dict[str, typing.Any]) -> models.Adapter:
        adapter = self.get(adapter_id)
        subnet = self.db.subnets.get(adapter["subnet_id"])

        def change() -> models.Adapter:
            mac, addresses = self._checked(subnet, {**fields, "mac": fields.get("mac") or adapter["mac"]}, adapter,
                                           False)
            return self.db.adapters.update(adapter_id, {
                "name": fields["name"], "description": fields.get("description", ""), "mac": mac,
                "addresses": addresses, "reserved": fields.get("reserved", False)},
                conflict=f"subnet already has an adapter named {fields['name']}")

        return self.serializer.run(f"subnet:{subnet['_id']}", change)

    def delete(self, adapter_id: str) -> None:
        def remove() -> None:
            # In the adapter's owner, where instances claim it: it cannot be plugged in meanwhile.
            adapter = self.get(adapter_id)
            if self.db.db["instance"].find_one({"adapter_ids": adapter_id}, {"_id": 1}):
                raise Conflict(f"adapter {adapter['name']} is still plugged in an instance")
            self.db.adapters.delete(adapter_id)

        self.serializer.run(f"adapter:{adapter_id}", remove)

    def _checked(self, subnet: models.Subnet, fields: dict[str, typing.Any], current: models.Adapter | None,
                 assign_ip: bool) -> tuple[str, list[str]]:
        """The adapter's MAC and addresses, checked against the subnet and every other adapter."""
        others = {"_id": {"$ne": current["_id"]}} if current else {}
        if fields.get("mac"):
            mac = network.normalize_mac(fields["mac"])
            clash = self.db.adapters.find_one({"mac": mac, **others})
            if clash is not None and not (clash.get("reserved") and fields.get("reserved")):
                raise Unprocessable(f"MAC address {mac} is already used by adapter {clash['name']}; only two "
                                    f"reserved adapters may share one")
        else:
            mac = network.random_mac()
            while self.db.adapters.exists({"mac": mac}):
                mac = network.random_mac()
        net = network.parse_network(subnet["cidr"])
        taken = {address for adapter in self.db.adapters.find({"subnet_id": str(subnet["_id"]), **others},
                                                              projection={"addresses": 1})
                 for address in adapter.get("addresses", [])}
        addresses = []
        for text in dict.fromkeys(fields.get("addresses") or []):
            address = network.address_in(net, text, "address")
            if net.num_addresses > 2 and address in (net.network_address, net.broadcast_address):
                raise Unprocessable(f"address {address} is the network or broadcast address of {net}")
            if str(address) in taken or str(address) == subnet["gateway"]:
                raise Unprocessable(f"address {address} is already in use in subnet {subnet['name']}")
            addresses.append(str(address))
        if assign_ip and not addresses:
            addresses.append(network.lowest_free_address(subnet, taken))
        return mac, addresses

