"""The collections Kahuna keeps, their indexes and their schema versions.

Schema versions continue the original Go Kahuna's numbering: its documents are
version 2 (version 0/1 before its 0.60 renames), ours are version 3. ``kahuna
migrate`` converts a Go Kahuna database of either generation
(:mod:`kahuna.storage.go_import`); a normal start only creates missing indexes and
refuses a database that still needs migrating.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

import pymongo

from kahuna.storage import go_import
from kahuna.storage.cache import AnyDatabase

log = logging.getLogger(__name__)

CURRENT_VERSION = 3


@dataclass(frozen=True)
class Index:
    keys: tuple[str, ...]
    unique: bool = False

    @property
    def name(self) -> str:
        return "_".join(self.keys) + ("_unique" if self.unique else "")


@dataclass(frozen=True)
class Kind:
    collection: str
    indexes: tuple[Index, ...] = ()
    version: int = CURRENT_VERSION


KINDS: tuple[Kind, ...] = (
    # Accounts. Membership is kept on the team only; tokens and sessions point to the user.
    Kind("user", indexes=(Index(("name",), unique=True), Index(("email",), unique=True))),
    Kind("team", indexes=(Index(("name",), unique=True), Index(("user_ids",)))),
    # A key is found by its digest; a token converted from the Go Kahuna holds a unique placeholder there
    # until its key is first presented (see kahuna.services.tokens).
    Kind("token", indexes=(Index(("api_key_sha256",), unique=True), Index(("parent_type", "parent_id"), unique=True))),
    Kind("api_key"),
    Kind("session", indexes=(Index(("user_id",)),)),
    Kind("agent", indexes=(Index(("name",), unique=True), Index(("type",)))),
    Kind("agent_nonce", indexes=(Index(("created_at",)),)),
    # Children point to their project; the project does not list them.
    Kind("project", indexes=(Index(("name",), unique=True), Index(("team_ids",)))),
    Kind("region", indexes=(Index(("name",), unique=True),)),
    # Infrastructure: names are unique within their parent; children point to their parent,
    # and parents keep no list of children (one source of truth, no lost updates).
    Kind("zone", indexes=(Index(("region_id", "name"), unique=True),)),
    Kind("kaktus", indexes=(Index(("zone_id", "name"), unique=True), Index(("agent_ids",)))),
    Kind("kiwi", indexes=(Index(("region_id", "name"), unique=True), Index(("agent_ids",)))),
    Kind("storage_pool", indexes=(Index(("region_id", "name"), unique=True), Index(("agent_ids",)))),
    Kind("nfs", indexes=(Index(("region_id", "name"), unique=True),)),
    Kind("template", indexes=(Index(("storage_pool_id", "name"), unique=True),)),
    Kind("vnet", indexes=(Index(("region_id", "name"), unique=True),)),
    Kind("subnet", indexes=(Index(("vnet_id", "name"), unique=True), Index(("project_id",)))),
    Kind("adapter", indexes=(Index(("subnet_id", "name"), unique=True), Index(("mac",)))),
    Kind("dns_record", indexes=(Index(("domain", "name"), unique=True), Index(("project_id",)),
                                Index(("region_id",)))),
    # Compute and services. Volume and instance names are the names the agents know them by
    # (RBD image, libvirt domain), hence unique where the agents need them to be.
    Kind("volume", indexes=(Index(("storage_pool_id", "name"), unique=True), Index(("project_id",)),
                            Index(("instance_id",)))),
    Kind("instance", indexes=(Index(("name",), unique=True), Index(("project_id",)), Index(("kaktus_id",)),
                              Index(("local_ip",)), Index(("adapter_ids",)), Index(("kwarantine_ids",)))),
    Kind("kompute", indexes=(Index(("name",), unique=True), Index(("project_id",)), Index(("instance_id",)))),
    # One Kawaii per project and region: it is the region's gateway of the project.
    Kind("kawaii", indexes=(Index(("project_id", "region_id"), unique=True),)),
    Kind("kawaii_ipsec", indexes=(Index(("kawaii_id", "name"), unique=True),
                                  Index(("kawaii_id", "remote_ip"), unique=True))),
    Kind("konvey", indexes=(Index(("project_id", "name"), unique=True),)),
    Kind("kylo", indexes=(Index(("nfs_id", "name"), unique=True), Index(("project_id",)))),
    # API 0.58: anti-affinity groups (members point to them: instance.kwarantine_ids) and kMotion plans.
    Kind("kwarantine", indexes=(Index(("project_id", "name"), unique=True),)),
    Kind("kmotion_plan", indexes=(Index(("instance_id",)),)),
    # Settings and leases: small singleton documents keyed by name.
    Kind("settings"),
)

KINDS_BY_COLLECTION = {kind.collection: kind for kind in KINDS}
VERSION_COLLECTION = "schema"


class SchemaError(Exception):
    """The database does not match this Kahuna; the message says what to run."""


def ensure_indexes(db: AnyDatabase) -> None:
    for kind in KINDS:
        collection = db[kind.collection]
        for index in kind.indexes:
            collection.create_index([(key, pymongo.ASCENDING) for key in index.keys], name=index.name,
                                    unique=index.unique)


def check(db: AnyDatabase) -> None:
    """Refuse to serve a database that needs ``kahuna migrate`` or that a newer Kahuna wrote."""
    recorded = {doc["_id"]: doc["version"] for doc in db[VERSION_COLLECTION].find()}
    for kind in KINDS:
        version = recorded.get(kind.collection)
        if version is not None and version > kind.version:
            raise SchemaError(
                f"collection {kind.collection} is at schema version {version}, newer than this Kahuna "
                f"({kind.version}): upgrade Kahuna")
        if version is not None and version < kind.version:
            raise SchemaError(f"collection {kind.collection} is at schema version {version}: run `kahuna migrate`")
    # Collections whose version is not recorded yet may hold a Go Kahuna's documents (once recorded, they cannot).
    unrecorded = [name for name in go_import.GO_COLLECTIONS if name not in recorded]
    found = go_import.pending(db, unrecorded)
    if found:
        raise SchemaError(f"collection(s) {', '.join(found)} hold Go Kahuna documents: run `kahuna migrate` first")


def initialize(db: AnyDatabase) -> None:
    """Prepare a database for serving: indexes, and versions recorded for new collections."""
    check(db)
    ensure_indexes(db)
    for kind in KINDS:
        db[VERSION_COLLECTION].update_one({"_id": kind.collection}, {"$setOnInsert": {"version": kind.version}},
                                          upsert=True)


def migrate(db: AnyDatabase, registration_lifetime: datetime.timedelta = datetime.timedelta(hours=72),
            reset_lifetime: datetime.timedelta = datetime.timedelta(hours=1)) -> go_import.Report:
    """Convert whatever a Go Kahuna left in *db* to the current schema, record the versions, build the indexes.

    Idempotent: a second run finds nothing to convert and changes nothing. The lifetimes are those of the
    e-mailed links still pending in the Go database (they keep working that long from now).
    """
    recorded = {doc["_id"]: doc["version"] for doc in db[VERSION_COLLECTION].find()}
    newer = [f"{name} ({version})" for name, version in recorded.items()
             if name in KINDS_BY_COLLECTION and version > KINDS_BY_COLLECTION[name].version]
    if newer:
        raise SchemaError(f"collection(s) {', '.join(newer)} are at a schema version newer than this Kahuna "
                          f"({CURRENT_VERSION}): upgrade Kahuna")
    try:
        report = go_import.convert(db, KINDS_BY_COLLECTION, (VERSION_COLLECTION, *go_import.OWN_COLLECTIONS),
                                   registration_lifetime, reset_lifetime)
    except go_import.ConversionError as exc:
        raise SchemaError(str(exc)) from None
    for kind in KINDS:
        db[VERSION_COLLECTION].update_one({"_id": kind.collection}, {"$set": {"version": kind.version}}, upsert=True)
    ensure_indexes(db)
    return report
