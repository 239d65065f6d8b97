"""The collections Kahuna keeps, their indexes and their schema versions.

Schema versions continue the original Go Kahuna's numbering: its documents are
version 2 (version 0/1 before its 0.60 renames), ours are version 3. ``kahuna
migrate`` brings a database of either generation up to date; a normal start only
creates missing indexes and refuses a database that still needs migrating.
"""

from __future__ import annotations

import logging
import typing
from dataclasses import dataclass, field

import pymongo
from pymongo.database import Database

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
class Step:
    """One upgrade of a document: fields renamed, then fields dropped."""

    to_version: int
    rename: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kind:
    collection: str
    indexes: tuple[Index, ...] = ()
    legacy_collection: str | None = None
    steps: tuple[Step, ...] = ()
    version: int = CURRENT_VERSION


def _v2(**renames: str) -> Step:
    return Step(to_version=2, rename=renames)


KINDS: tuple[Kind, ...] = (
    Kind(
        "user",
        indexes=(Index(("name",), unique=True), Index(("email",), unique=True)),
        legacy_collection="users",
        steps=(
            _v2(groups="team_ids"),
            # Membership is kept on the team only; tokens and sessions point to the user.
            Step(3, unset=("team_ids", "jwt", "token", "registration_token", "password_renewal_token")),
        ),
    ),
    Kind(
        "team",
        indexes=(Index(("name",), unique=True), Index(("user_ids",))),
        legacy_collection="groups",
        steps=(_v2(users="user_ids"), Step(3)),
    ),
    Kind(
        "token",
        indexes=(
            Index(("api_key_sha256",), unique=True),
            Index(("parent_type", "parent_id"), unique=True),
        ),
        legacy_collection="tokens",
        # Go Kahuna kept bcrypt hashes that need a scan of every token to check;
        # they cannot be converted, so migrated tokens must be rotated.
        steps=(_v2(agent="agent_id", user="user_id"), Step(3, unset=("api_key_hash",))),
    ),
    Kind("api_key"),
    Kind("session", indexes=(Index(("user_id",)),)),
    Kind(
        "agent",
        indexes=(Index(("name",), unique=True), Index(("type",))),
        legacy_collection="agents",
        steps=(_v2(token="token_id"), Step(3, unset=("token_id",))),
    ),
    Kind("agent_nonce", indexes=(Index(("created_at",)),)),
    Kind(
        "project",
        indexes=(Index(("name",), unique=True), Index(("team_ids",))),
        legacy_collection="projects",
        steps=(
            _v2(groups="team_ids", regions="region_ids", instances="instance_ids", volumes="volume_ids",
                kces="kompute_ids", kgws="kawaii_ids", kfs="kylo_ids", records="record_ids"),
            # Children point to their project; the project no longer lists them.
            Step(3, unset=("instance_ids", "volume_ids", "kompute_ids", "kawaii_ids", "konvey_ids",
                           "kylo_ids", "record_ids", "usage", "cost")),
        ),
    ),
    Kind("region", indexes=(Index(("name",), unique=True),), legacy_collection="regions",
         steps=(_v2(**{"defaults.pool": "defaults.pool_id", "defaults.nfs": "defaults.nfs_id"}),
                Step(3, unset=("zone_ids", "kiwi_ids", "vnet_ids", "storage_pool_ids", "nfs_ids", "record_ids")))),
    # Infrastructure: names are unique within their parent; children point to their parent,
    # and parents keep no list of children (one source of truth, no lost updates).
    Kind("zone", indexes=(Index(("region_id", "name"), unique=True),), legacy_collection="zones",
         steps=(_v2(region="region_id"), Step(3, unset=("kaktus_ids",)))),
    Kind("kaktus", indexes=(Index(("zone_id", "name"), unique=True), Index(("agent_ids",))),
         legacy_collection="hosts",
         steps=(_v2(zone="zone_id", agents="agent_ids"), Step(3, unset=("instance_ids",)))),
    Kind("kiwi", indexes=(Index(("region_id", "name"), unique=True), Index(("agent_ids",))),
         legacy_collection="netgws", steps=(_v2(region="region_id", agents="agent_ids"), Step(3))),
    Kind("storage_pool", indexes=(Index(("region_id", "name"), unique=True), Index(("agent_ids",))),
         legacy_collection="pools",
         steps=(_v2(region="region_id", agents="agent_ids", **{"defaults.templates": "defaults.template_ids"}),
                Step(3, unset=("template_ids", "volume_ids")))),
    Kind("nfs", indexes=(Index(("region_id", "name"), unique=True),),
         steps=(_v2(region="region_id", pool="storage_pool_id"), Step(3, unset=("kylo_ids",)))),
    Kind("template", indexes=(Index(("storage_pool_id", "name"), unique=True),), legacy_collection="templates",
         steps=(_v2(pool="storage_pool_id", volume="volume_id"), Step(3))),
    Kind("vnet", indexes=(Index(("region_id", "name"), unique=True),), legacy_collection="vnets",
         steps=(_v2(region="region_id", **{"defaults.subnet": "defaults.subnet_id"}), Step(3, unset=("subnet_ids",)))),
    Kind("subnet", indexes=(Index(("vnet_id", "name"), unique=True), Index(("project_id",))),
         legacy_collection="subnets",
         steps=(_v2(project="project_id", vnet="vnet_id"), Step(3, unset=("adapter_ids",)))),
    Kind("adapter", indexes=(Index(("subnet_id", "name"), unique=True), Index(("mac",))), legacy_collection="adapters",
         steps=(_v2(subnet="subnet_id"), Step(3))),
    Kind("dns_record", indexes=(Index(("domain", "name"), unique=True), Index(("project_id",)),
                                Index(("region_id",))),
         legacy_collection="records", steps=(_v2(project="project_id"), Step(3))),
    # Compute and services. Volume and instance names are the names the agents know them by
    # (RBD image, libvirt domain), hence unique where the agents need them to be.
    Kind("volume", indexes=(Index(("storage_pool_id", "name"), unique=True), Index(("project_id",)),
                            Index(("instance_id",)))),
    Kind("instance", indexes=(Index(("name",), unique=True), Index(("project_id",)), Index(("kaktus_id",)),
                              Index(("local_ip",)), Index(("adapter_ids",)))),
    Kind("kompute", indexes=(Index(("name",), unique=True), Index(("project_id",)), Index(("instance_id",)))),
    # One Kawaii per project and region: it is the region's gateway of the project.
    Kind("kawaii", indexes=(Index(("project_id", "region_id"), unique=True),)),
    Kind("kawaii_ipsec", indexes=(Index(("kawaii_id", "name"), unique=True),
                                  Index(("kawaii_id", "remote_ip"), unique=True))),
    Kind("konvey", indexes=(Index(("project_id", "name"), unique=True),)),
    Kind("kylo", indexes=(Index(("nfs_id", "name"), unique=True), Index(("project_id",)))),
    # Settings and leases: small singleton documents keyed by name.
    Kind("settings"),
)

KINDS_BY_COLLECTION = {kind.collection: kind for kind in KINDS}
VERSION_COLLECTION = "schema"


class SchemaError(Exception):
    """The database does not match this Kahuna; the message says what to run."""


def ensure_indexes(db: Database) -> None:
    for kind in KINDS:
        collection = db[kind.collection]
        for index in kind.indexes:
            collection.create_index([(key, pymongo.ASCENDING) for key in index.keys], name=index.name,
                                    unique=index.unique)


def check(db: Database) -> None:
    """Refuse to serve a database that needs ``kahuna migrate`` or that a newer Kahuna wrote."""
    recorded = {doc["_id"]: doc["version"] for doc in db[VERSION_COLLECTION].find()}
    existing = set(db.list_collection_names())
    for kind in KINDS:
        version = recorded.get(kind.collection)
        if version is None:
            if kind.legacy_collection in existing or (kind.collection in existing and db[kind.collection].find_one(
                    {"schema_version": {"$lt": kind.version}}, {"_id": 1})):
                raise SchemaError(f"collection {kind.collection} holds older documents: run `kahuna migrate` first")
            continue
        if version > kind.version:
            raise SchemaError(
                f"collection {kind.collection} is at schema version {version}, newer than this Kahuna "
                f"({kind.version}): upgrade Kahuna")
        if version < kind.version:
            raise SchemaError(f"collection {kind.collection} is at schema version {version}: run `kahuna migrate`")


def initialize(db: Database) -> None:
    """Prepare a database for serving: indexes, and versions recorded for new collections."""
    check(db)
    ensure_indexes(db)
    for kind in KINDS:
        db[VERSION_COLLECTION].update_one({"_id": kind.collection}, {"$setOnInsert": {"version": kind.version}},
                                          upsert=True)


def migrate(db: Database) -> dict[str, int]:
    """Upgrade every collection to the current schema; return documents upgraded per collection."""
    existing = set(db.list_collection_names())
    upgraded: dict[str, int] = {}
    for kind in KINDS:
        if kind.legacy_collection in existing and kind.collection not in existing:
            log.info("renaming collection %s to %s", kind.legacy_collection, kind.collection)
            db[kind.legacy_collection].rename(kind.collection)
        upgraded[kind.collection] = _upgrade_documents(db, kind)
        db[VERSION_COLLECTION].update_one({"_id": kind.collection}, {"$set": {"version": kind.version}}, upsert=True)
    ensure_indexes(db)
    return upgraded


def _upgrade_documents(db: Database, kind: Kind) -> int:
    collection = db[kind.collection]
    count = 0
    for step in kind.steps:
        outdated = {"$or": [{"schema_version": {"$lt": step.to_version}}, {"schema_version": {"$exists": False}}]}
        update: dict[str, typing.Any] = {"$set": {"schema_version": step.to_version}}
        if step.rename:
            update["$rename"] = dict(step.rename)
        if step.unset:
            update["$unset"] = {name: "" for name in step.unset}
        count = max(count, collection.update_many(outdated, update).modified_count)
    return count
