"""Prometheus metrics of one Kahuna process (served on ``/metrics``, not proxied by Caddy).

Counters and histograms are updated where things happen (HTTP requests, agent RPCs; the hub-stall
watchdog keeps its own and is read at scrape time);
gauges that describe state (connected agents, objects, HA role) are read at scrape
time from their owners, so they are never stale. Each Kahuna has its own registry.
"""

from __future__ import annotations

import gc
import logging
import time
import typing

import gevent
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from kahuna.storage import Database, schema

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NOT_OBJECTS = {"settings", "api_key", "agent_nonce", "session"}
#: Seconds between two counts of the stored objects (see _StateCollector).
OBJECT_COUNT_SECONDS = 15.0
#: Seconds the first scrape waits for the first count.
FIRST_COUNT_WAIT = 5.0

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter("kahuna_http_requests_total", "HTTP requests answered.",
                                     ["method", "status"], registry=self.registry)
        self.http_seconds = Histogram("kahuna_http_request_duration_seconds", "Time to answer an HTTP request.",
                                      ["method"], registry=self.registry)
        self.rpc_calls = Counter("kahuna_agent_rpc_calls_total", "RPC calls to agents, by outcome.",
                                 ["method", "outcome"], registry=self.registry)
        self.rpc_seconds = Histogram("kahuna_agent_rpc_duration_seconds", "Round trip of RPC calls to agents.",
                                     ["method"], registry=self.registry,
                                     buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120))
        self._rpc_children: dict[tuple[str, str], tuple[typing.Any, typing.Any]] = {}
        self._http_children: dict[tuple[str, int], tuple[typing.Any, typing.Any]] = {}

    def observe_rpc(self, method: str, outcome: str, seconds: float) -> None:
        children = self._rpc_children.get((method, outcome))  # found once each, as for observe_http
        if children is None:
            children = self._rpc_children[(method, outcome)] = (self.rpc_calls.labels(method, outcome),
                                                                self.rpc_seconds.labels(method))
        children[0].inc()
        children[1].observe(seconds)

    def observe_http(self, method: str, status: int, seconds: float) -> None:
        # The labelled children, found once per (method, status): labels() validates and locks at every call.
        children = self._http_children.get((method, status))
        if children is None:
            children = self._http_children[(method, status)] = (self.http_requests.labels(method, str(status)),
                                                                self.http_seconds.labels(method))
        children[0].inc()
        children[1].observe(seconds)

    def watch(self, db: Database, connected_by_type: typing.Callable[[], dict[str, int]],
              is_active: typing.Callable[[], bool]) -> None:
        """Gauges read at scrape time: agents connected by type, objects by kind, HA role."""
        self.registry.register(_StateCollector(db, connected_by_type, is_active))

    def watch_hub(self, watchdog: typing.Any) -> None:
        """The hub-stall watchdog's metrics (kahuna/watchdog.py): kahuna_hub_stalls_total,
        kahuna_hub_stretch_seconds, kahuna_hub_stretch_max_seconds, kahuna_hub_stall_threshold_seconds."""
        self.registry.register(watchdog)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    """Gauges read at scrape time. The object counts are the database's, counted in the background at most
    every OBJECT_COUNT_SECONDS and reported as last counted: on FerretDB a count reads the whole collection, and
    a scrape during a reconnect storm waited seconds for them behind the storm's queries."""

    def __init__(self, db: Database, connected_by_type: typing.Callable[[], dict[str, int]],
                 is_active: typing.Callable[[], bool]):
        self.db = db
        self.connected_by_type = connected_by_type
        self.is_active = is_active
        self._objects: dict[str, int] = {}
        self._counted_at = -OBJECT_COUNT_SECONDS
        self._counting: typing.Any = None  # the greenlet counting now, if any

    def _count_objects(self) -> None:
        try:
            self._objects = {kind.collection: self.db.db[kind.collection].estimated_document_count()
                             for kind in schema.KINDS if kind.collection not in _NOT_OBJECTS}
        except Exception:  # noqa: BLE001 - a database outage: the last counts stay
            log.info("objects not counted for /metrics: the database did not answer")
        finally:
            self._counted_at = time.monotonic()

    def _object_counts(self) -> dict[str, int]:
        """The last counts; a new count starts when they are older than OBJECT_COUNT_SECONDS (the first scrape
        waits for it, a bounded while)."""
        if time.monotonic() - self._counted_at >= OBJECT_COUNT_SECONDS and \
                (self._counting is None or self._counting.dead):
            self._counting = gevent.spawn(self._count_objects)
            if not self._objects:
                self._counting.join(timeout=FIRST_COUNT_WAIT)
        return self._objects

    def describe(self) -> list:
        return []

    def collect(self) -> typing.Iterator[Metric]:
        agents = GaugeMetricFamily("kahuna_agents_connected", "Agents connected to this node.", labels=["type"])
        counts = {"Kaktus": 0, "Kiwi": 0, "Kontroller": 0, **self.connected_by_type()}
        for agent_type, count in sorted(counts.items()):
            agents.add_metric([agent_type], count)
        yield agents
        active = GaugeMetricFamily("kahuna_ha_active", "1 when this node is the active one of its pair.")
        active.add_metric([], 1 if self.is_active() else 0)
        yield active
        stats = self.db.cache.stats()
        hits = CounterMetricFamily("kahuna_cache_hits", "Reads by id served from the document cache.")
        hits.add_metric([], stats.hits)
        misses = CounterMetricFamily("kahuna_cache_misses", "Reads by id the document cache sent to the database.")
        misses.add_metric([], stats.misses)
        yield from (hits, misses, GaugeMetricFamily("kahuna_cache_documents", "Documents in the cache.",
                                                    value=stats.entries))
        yield GaugeMetricFamily("kahuna_gc_frozen_objects", "Long-lived objects set aside from the garbage "
                                "collector's passes (kahuna/collector.py).", value=gc.get_freeze_count())
        objects = GaugeMetricFamily("kahuna_objects", "Objects stored, by kind (as last counted).", labels=["kind"])
        for collection, count in sorted(self._object_counts().items()):
            objects.add_metric([collection], count)
        yield objects
