"""Monthly costs, computed from the current prices whenever they are asked for.

Prices are monthly figures set on Kaktus nodes (``cpu_cost``, ``memory_cost``) and
storage pools (``cost``). A unit's price is the node's price divided by what it
sells (threads x CPU overcommit vCPUs; GiB x memory overcommit of memory; GiB of
pool capacity); a zone's or region's unit price is the mean over its nodes or
pools. A unit counted zero times costs 0 (never NaN). Nothing is stored: a
changed price shows in every cost at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from kahuna.storage import Database, models

GIB = 1024**3
DEFAULT_CURRENCY = "EUR"


@dataclass(frozen=True)
class Price:
    amount: float
    currency: str


def _per_unit(price: float, units: int) -> float:
    return price / units if units > 0 else 0.0


def _mean(prices: list[Price]) -> Price:
    if not prices:
        return Price(0.0, DEFAULT_CURRENCY)
    return Price(sum(p.amount for p in prices) / len(prices), prices[-1].currency)


class Pricing:
    def __init__(self, db: Database):
        self.db = db

    def zone_prices(self, zone_id: str) -> tuple[Price, Price]:
        """The zone's (vCPU, GiB of memory) monthly prices."""
        cpu, memory = [], []
        for kaktus in self.db.kaktuses.find({"zone_id": zone_id}, sort=[("_id", 1)]):
            caps = kaktus.get("capabilities") or {}
            threads = int((caps.get("cpu") or {}).get("threads") or 0)
            cpu.append(Price(_per_unit(kaktus["cpu_cost"]["price"], threads * kaktus["overcommit_cpu_ratio"]),
                             kaktus["cpu_cost"]["currency"]))
            gib = int(caps.get("memory") or 0) // GIB
            memory.append(Price(_per_unit(kaktus["memory_cost"]["price"], gib * kaktus["overcommit_memory_ratio"]),
                                kaktus["memory_cost"]["currency"]))
        return _mean(cpu), _mean(memory)

    def region_storage_price(self, region_id: str) -> Price:
        """The region's monthly price of one GiB of pool storage."""
        prices = [Price(_per_unit(pool["cost"]["price"], int(pool.get("stats", {}).get("capacity") or 0) // GIB),
                        pool["cost"]["currency"])
                  for pool in self.db.pools.find({"region_id": region_id}, sort=[("_id", 1)])]
        return _mean(prices)

    def instance_cost(self, instance: models.Instance) -> Price:
        cpu, memory = self.zone_prices(instance["zone_id"])
        return Price(instance["vcpus"] * cpu.amount + instance["memory"] // GIB * memory.amount, cpu.currency)

    def volume_cost(self, volume: models.Volume) -> Price:
        price = self.region_storage_price(volume["region_id"])
        return Price(volume["size"] // GIB * price.amount, price.currency)

    def total(self, instances: list[models.Instance], volumes: list[models.Volume]) -> Price:
        costs = [self.instance_cost(i) for i in instances] + [self.volume_cost(v) for v in volumes]
        return Price(round(sum(c.amount for c in costs), 2), costs[-1].currency if costs else DEFAULT_CURRENCY)
