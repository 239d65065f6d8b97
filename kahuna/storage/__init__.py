"""MongoDB storage: the client, the collections of each kind, and schema upkeep."""

from __future__ import annotations

import datetime
import typing

import pymongo
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from kahuna.storage import go_import, models, schema
from kahuna.storage.cache import CachedDatabase, DocumentCache
from kahuna.storage.documents import Document, Documents, Query, is_transient, object_id, utcnow

__all__ = ["Database", "Document", "DocumentCache", "Documents", "Query", "is_transient", "models", "object_id",
           "schema", "utcnow"]


#: Collections whose documents are kept in memory on the active node (kahuna.storage.cache): every
#: kind of object, not the shared state between nodes (lease, settings, schema) nor agent nonces.
CACHED_COLLECTIONS = frozenset(kind.collection for kind in schema.KINDS) - {"settings", "agent_nonce"}


class Database:
    """The Kahuna database: ``db.users``, ``db.teams``… are :class:`Documents`.

    ``db.db`` hands out collections whose reads by ``_id`` are served from ``db.cache`` once
    :meth:`DocumentCache.attach` enabled it (the daemon does, for its active node).
    """

    def __init__(self, uri: str, name: str, timeout_seconds: float = 5.0,
                 event_listeners: typing.Sequence[typing.Any] = ()):
        """*event_listeners*: pymongo monitoring listeners of this client only (the tests count commands)."""
        timeout_ms = int(timeout_seconds * 1000)
        # Majority write concern: a write Kahuna acknowledged survives a replica-set failover.
        self.client: pymongo.MongoClient[Document] = pymongo.MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 4, 10_000),
            w="majority",
            tz_aware=True,
            appname="kahuna",
            event_listeners=list(event_listeners),
        )
        self.cache = DocumentCache()
        self.db = CachedDatabase(self.client[name], self.cache, CACHED_COLLECTIONS)
        self.name = name
        version = schema.CURRENT_VERSION
        self.users: Documents[models.User] = Documents(self.db["user"], "user", version)
        self.teams: Documents[models.Team] = Documents(self.db["team"], "team", version)
        self.tokens: Documents[models.Token] = Documents(self.db["token"], "token", version)
        # API key digest (as _id) -> token id: finding a key's token never scans.
        self.api_keys: Documents[models.ApiKey] = Documents(self.db["api_key"], "API key", version)
        self.sessions: Documents[models.Session] = Documents(self.db["session"], "session", version)
        self.projects: Documents[models.Project] = Documents(self.db["project"], "project", version)
        self.regions: Documents[models.Region] = Documents(self.db["region"], "region", version)
        self.zones: Documents[models.Zone] = Documents(self.db["zone"], "zone", version)
        self.kaktuses: Documents[models.Kaktus] = Documents(self.db["kaktus"], "kaktus", version)
        self.kiwis: Documents[models.Kiwi] = Documents(self.db["kiwi"], "kiwi", version)
        self.pools: Documents[models.StoragePool] = Documents(self.db["storage_pool"], "storage pool", version)
        self.nfs: Documents[models.Nfs] = Documents(self.db["nfs"], "NFS storage", version)
        self.templates: Documents[models.Template] = Documents(self.db["template"], "template", version)
        self.vnets: Documents[models.VNet] = Documents(self.db["vnet"], "virtual network", version)
        self.subnets: Documents[models.Subnet] = Documents(self.db["subnet"], "subnet", version)
        self.adapters: Documents[models.Adapter] = Documents(self.db["adapter"], "adapter", version)
        self.records: Documents[models.DnsRecord] = Documents(self.db["dns_record"], "DNS record", version)
        self.volumes: Documents[models.Volume] = Documents(self.db["volume"], "volume", version)
        self.instances: Documents[models.Instance] = Documents(self.db["instance"], "instance", version)
        self.komputes: Documents[models.Kompute] = Documents(self.db["kompute"], "Kompute", version)
        self.kawaiis: Documents[models.Kawaii] = Documents(self.db["kawaii"], "Kawaii", version)
        self.ipsecs: Documents[models.KawaiiIpsec] = Documents(self.db["kawaii_ipsec"], "IPsec connection", version)
        self.konveys: Documents[models.Konvey] = Documents(self.db["konvey"], "Konvey", version)
        self.kylos: Documents[models.Kylo] = Documents(self.db["kylo"], "Kylo", version)
        self.kwarantines: Documents[models.Kwarantine] = Documents(self.db["kwarantine"], "Kwarantine", version)
        self.kmotion_plans: Documents[models.KMotionPlan] = Documents(self.db["kmotion_plan"], "kMotion plan",
                                                                      version)
        self.agents: Documents[models.Agent] = Documents(self.db["agent"], "agent", version)
        self.agent_nonces: Documents[models.AgentNonce] = Documents(self.db["agent_nonce"], "agent handshake nonce",
                                                                    version)
        # Shared between nodes, hence never cached (see CACHED_COLLECTIONS).
        self.settings: Collection[Document] = self.db.uncached["settings"]

    def ping(self) -> None:
        self.client.admin.command("ping")

    def is_reachable(self) -> bool:
        try:
            self.ping()
        except PyMongoError:
            return False
        return True

    def initialize(self) -> None:
        schema.initialize(self.db)

    def migrate(self, **lifetimes: datetime.timedelta) -> go_import.Report:
        """Convert a Go Kahuna's database (see :func:`schema.migrate`); the report says what was done."""
        return schema.migrate(self.db, **lifetimes)

    def setting(self, name: str, default_factory: typing.Callable[[], str]) -> str:
        """A value kept once for the whole deployment, created on first use (by whichever node is first)."""
        self.settings.update_one({"_id": name}, {"$setOnInsert": {"value": default_factory()}}, upsert=True)
        stored = self.settings.find_one({"_id": name})
        value = None if stored is None else stored["value"]
        if not isinstance(value, str):
            raise TypeError(f"setting {name!r} holds {value!r}, not a string")
        return value

    def close(self) -> None:
        self.client.close()
