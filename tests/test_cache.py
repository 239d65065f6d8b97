"""The document cache of the active node (kahuna.storage.cache): reads by id from memory, never stale.

Unit tests of its invalidation and generation logic on a real FerretDB collection, then through
the API: a write is seen at once on the same node, and a write made by another node while this one
was passive is seen once it takes the lease again.
"""

from __future__ import annotations

import datetime
import itertools
import os

import gevent
import gevent.event
import kowabunga as k
import pytest
from bson import ObjectId
from pymongo.collection import Collection

from kahuna.errors import Conflict
from kahuna.ha import LeaseStore
from kahuna.storage import Database
from kahuna.storage.cache import MAX_AGE, PRELOAD_MAX_AGE, PRELOAD_SHARE, CachedCollection, DocumentCache
from tests.deployment import Deployment, expect_error
from tests.mailserver import fact_in

_names = itertools.count()


@pytest.fixture
def db(ferretdb):
    database = Database(ferretdb.uri, f"kahuna_cache_{os.getpid()}_{next(_names)}")
    database.initialize()
    database.cache.attach(lambda: True)
    yield database
    database.client.drop_database(database.name)
    database.close()


def region(db: Database, name: str = "eu") -> ObjectId:
    return db.regions.insert({"name": name, "domain": f"{name}.example"})["_id"]


# -- reads -----------------------------------------------------------------------------


def test_a_read_by_id_is_served_from_memory_as_a_private_copy(db):
    rid = region(db)
    first = db.regions.get(rid)
    assert db.cache.stats().misses == 1 and db.cache.stats().hits == 0
    first["name"] = "changed by the caller"
    again = db.regions.get(str(rid))
    assert again["name"] == "eu" and again == db.regions.collection.uncached.find_one({"_id": rid})
    assert isinstance(again["created_at"], datetime.datetime) and again["created_at"].tzinfo is not None
    assert db.cache.stats().hits == 1
    # Projections are cut from the cached document; other queries always go to the database.
    assert db.db["region"].find_one({"_id": rid}, {"domain": 1}) == {"_id": rid, "domain": "eu.example"}
    assert db.db["region"].find_one({"_id": rid}, {"_id": 0, "name": 1}) == {"name": "eu"}
    assert db.db["region"].find_one({"_id": rid}, {"_id": 1}) == {"_id": rid}
    assert db.db["region"].find_one({"_id": rid}, projection=["name"]) == {"_id": rid, "name": "eu"}
    hits = db.cache.stats().hits
    assert db.regions.find_one({"name": "eu"})["_id"] == rid
    assert db.regions.find_one({"_id": rid, "name": "eu"})["_id"] == rid
    assert db.cache.stats().hits == hits


def test_a_missing_document_is_not_remembered(db):
    rid = ObjectId()
    assert db.regions.find_one({"_id": rid}) is None
    db.regions.collection.uncached.insert_one({"_id": rid, "name": "late"})  # e.g. by another process
    assert db.regions.find_one({"_id": rid})["name"] == "late"


def test_shared_state_between_nodes_is_never_cached(db):
    assert type(db.db["lease"]) is Collection
    assert type(db.settings) is Collection
    assert type(db.db["agent_nonce"]) is Collection
    assert isinstance(db.db["user"], CachedCollection) and db.db["user"] is db.users.collection


def test_an_inactive_node_reads_the_database(db):
    active = [False]
    db.cache.attach(lambda: active[0])
    rid = region(db)
    db.regions.get(rid)
    assert db.cache.stats().entries == 0
    active[0] = True
    db.regions.get(rid)
    db.regions.collection.uncached.update_one({"_id": rid}, {"$set": {"name": "elsewhere"}})
    active[0] = False
    assert db.regions.get(rid)["name"] == "elsewhere"


# -- writes ----------------------------------------------------------------------------


WRITES = {
    "Documents.update": lambda db, rid: db.regions.update(rid, {"name": "new"}),
    "update_one by id": lambda db, rid: db.db["region"].update_one({"_id": rid}, {"$set": {"name": "new"}}),
    "update_one by other field": lambda db, rid: db.regions.collection.update_one({"domain": "eu.example"},
                                                                                {"$set": {"name": "new"}}),
    "update_many": lambda db, rid: db.regions.collection.update_many({"name": {"$in": ["eu"]}},
                                                                     {"$set": {"name": "new"}}),
    "find_one_and_update": lambda db, rid: db.regions.collection.find_one_and_update(
        {"_id": rid, "name": "eu"}, {"$set": {"name": "new"}}),
    "replace_one": lambda db, rid: db.db["region"].replace_one({"_id": {"$in": [rid]}}, {"name": "new"}),
    "bulk_write": lambda db, rid: db.regions.collection.bulk_write(
        [__import__("pymongo").UpdateOne({"_id": rid}, {"$set": {"name": "new"}})]),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_every_kind_of_update_is_seen_at_once(db, write):
    rid, other = region(db), region(db, "us")
    db.regions.get(rid), db.regions.get(other)
    write(db, rid)
    assert db.regions.get(rid)["name"] == "new"


DELETES = {
    "Documents.delete": lambda db, rid: db.regions.delete(rid),
    "delete_one": lambda db, rid: db.db["region"].delete_one({"_id": rid}),
    "delete_many by other field": lambda db, rid: db.regions.delete_many({"domain": "eu.example"}),
    "find_one_and_delete": lambda db, rid: db.regions.collection.find_one_and_delete({"_id": {"$eq": rid}}),
    "drop": lambda db, rid: db.regions.collection.drop(),
    "drop_collection": lambda db, rid: db.db.drop_collection("region"),
}


@pytest.mark.parametrize("delete", DELETES.values(), ids=DELETES.keys())
def test_every_kind_of_delete_is_seen_at_once(db, delete):
    rid = region(db)
    db.regions.get(rid)
    delete(db, rid)
    assert db.regions.find_one({"_id": rid}) is None


def test_a_write_by_id_keeps_the_rest_of_the_collection_and_others(db):
    rid, other = region(db), region(db, "us")
    user = db.users.insert({"name": "bob", "email": "bob@example.com", "role": "user"})["_id"]
    for each in (rid, other):
        db.regions.get(each)
    db.users.get(user)
    db.regions.update(rid, {"name": "new"})
    hits = db.cache.stats().hits
    db.regions.get(other), db.users.get(user)
    assert db.cache.stats().hits == hits + 2
    db.regions.collection.update_many({"name": "nothing matches"}, {"$set": {"x": 1}})
    db.regions.get(other)
    db.users.get(user)
    assert db.cache.stats().hits == hits + 3  # the region went, the user stayed


def test_a_failed_write_still_invalidates(db):
    rid = region(db)
    db.users.insert({"name": "bob", "email": "bob@example.com", "role": "user"})
    uid = db.users.insert({"name": "ann", "email": "ann@example.com", "role": "user"})["_id"]
    db.users.get(uid)
    with pytest.raises(Conflict):
        db.users.update(uid, {"email": "bob@example.com"})  # unique index
    entries = db.cache.stats().entries
    db.users.get(uid)
    assert db.cache.stats().entries == entries + 1  # read again from the database
    assert db.regions.get(rid)["name"] == "eu"


# -- a read in flight during a write -----------------------------------------------------


class _SlowRead:
    """Stands for the database: returns what it read, but only when *release* is set."""

    def __init__(self, collection: CachedCollection):
        self.real = collection._raw
        self.read = gevent.event.Event()
        self.release = gevent.event.Event()

    def find_one(self, *args, **kwargs):
        found = self.real.find_one(*args, **kwargs)
        self.read.set()
        self.release.wait(5)
        return found


@pytest.mark.parametrize("writer", ["same id", "whole collection", "clear"])
def test_a_read_that_started_before_a_write_does_not_fill_the_cache(db, writer):
    rid = region(db)
    collection = db.regions.collection
    slow = collection._raw = _SlowRead(collection)
    reader = gevent.spawn(db.regions.get, rid)
    slow.read.wait(5)  # the reader holds the old document…
    if writer == "same id":
        db.regions.update(rid, {"name": "new"})
    elif writer == "whole collection":
        collection.update_many({}, {"$set": {"name": "new"}})
    else:
        db.regions.update(rid, {"name": "new"})
        db.cache.clear()  # as when the node takes the lease
    slow.release.set()  # …and gets it back after the write
    assert reader.get(timeout=5)["name"] == "eu"  # it was a read from before the write: fine to return
    collection._raw = slow.real
    assert db.regions.get(rid)["name"] == "new"  # but it did not go into the cache


def test_a_read_that_started_after_a_write_fills_the_cache(db):
    rid = region(db)
    db.regions.update(rid, {"name": "new"})
    db.regions.get(rid)
    assert db.cache.stats().entries == 1


# -- reads of many documents: preloads and find_by_ids ------------------------------------


class _Reads:
    """Stands for the database's raw collection: counts the finds, and runs *meanwhile* after each read and
    before its documents are handed back (a write that came in while the read was in flight)."""

    def __init__(self, collection: CachedCollection, meanwhile=lambda: None):
        self.real = collection._raw
        self.meanwhile = meanwhile
        self.filters = []

    def find(self, filter, *args, **kwargs):  # noqa: A002
        self.filters.append(filter)
        found = list(self.real.find(filter, *args, **kwargs))
        self.meanwhile()
        return iter(found)

    def find_one(self, filter, *args, **kwargs):  # noqa: A002
        self.filters.append(filter)
        found = self.real.find_one(filter, *args, **kwargs)
        self.meanwhile()
        return found


def test_several_documents_by_id_come_from_memory_and_the_rest_by_id(db):
    rids = [region(db, name) for name in ("eu", "us", "ap")]
    db.regions.get(rids[0])
    collection = db.regions.collection
    reads = collection._raw = _Reads(collection)
    unknown = ObjectId()
    found = collection.find_by_ids([*rids, unknown], {"name": 1})
    assert found == {rids[0]: {"_id": rids[0], "name": "eu"}, rids[1]: {"_id": rids[1], "name": "us"},
                     rids[2]: {"_id": rids[2], "name": "ap"}}
    # The first one was in memory; the others are read by _id (FerretDB scans the collection for an $in).
    assert reads.filters == [{"_id": rids[1]}, {"_id": rids[2]}, {"_id": unknown}]
    # What was read is kept: all three are in memory now, and nothing more is asked.
    assert collection.find_by_ids(rids) == {rid: db.regions.collection.uncached.find_one({"_id": rid})
                                            for rid in rids}
    assert len(reads.filters) == 3
    with pytest.raises(ValueError):
        collection.find_by_ids(rids, {"name": 0})
    # A passive node asks the database, and keeps nothing.
    db.cache.attach(lambda: False)
    assert collection.find_by_ids(rids, {"_id": 0, "name": 1}) == {rids[0]: {"name": "eu"}, rids[1]: {"name": "us"},
                                                                 rids[2]: {"name": "ap"}}
    assert db.cache.stats().entries == 0


def test_a_preload_keeps_no_document_written_while_it_was_in_flight(db):
    rids = [region(db, name) for name in ("eu", "us", "ap")]
    collection = db.regions.collection
    collection._raw = _Reads(collection, meanwhile=lambda: db.regions.update(rids[0], {"name": "new"}))
    assert len(collection.preload({})) == 3
    collection._raw = collection._raw.real
    hits = db.cache.stats().hits
    assert [db.regions.get(rid)["name"] for rid in rids] == ["new", "us", "ap"]
    assert db.cache.stats().hits == hits + 2  # the written one was read again, the others were kept


@pytest.mark.parametrize("meanwhile", ["whole collection written", "cleared"])
def test_a_bulk_read_keeps_nothing_after_a_collection_wide_write_or_a_clear(db, meanwhile):
    for name in ("eu", "us"):
        region(db, name)
    collection = db.regions.collection
    collection._raw = _Reads(collection, meanwhile=(lambda: collection.update_many({}, {"$set": {"x": 1}}))
                             if meanwhile == "whole collection written" else db.cache.clear)
    collection.preload({})
    collection._raw = collection._raw.real
    assert db.cache.stats().entries == 0


def test_preloaded_documents_live_longer_than_those_read_one_by_one(db):
    now = [0.0]
    db.cache.clock = lambda: now[0]
    preloaded, single = region(db, "eu"), region(db, "us")
    assert [doc["_id"] for doc in db.regions.collection.preload({"name": "eu"})] == [preloaded]
    db.regions.get(single)
    now[0] = MAX_AGE + 0.1
    misses = db.cache.stats().misses
    db.regions.get(preloaded)
    assert db.cache.stats().misses == misses
    db.regions.get(single)
    assert db.cache.stats().misses == misses + 1
    now[0] = PRELOAD_MAX_AGE + 0.1
    db.regions.get(preloaded)
    assert db.cache.stats().misses == misses + 2
    # A write drops a preloaded document at once, like any other.
    db.regions.collection.preload({})
    db.regions.update(preloaded, {"name": "new"})
    assert db.regions.get(preloaded)["name"] == "new"


def test_a_preload_fills_at_most_its_share_of_the_cache(db):
    db.cache.max_entries = 8
    rids = [region(db, f"r{n}") for n in range(10)]
    assert len(db.regions.collection.preload({})) == 10
    assert db.cache.stats().entries == 8 * PRELOAD_SHARE
    for rid in rids:  # reads one by one still have the whole cache
        db.regions.get(rid)
    assert db.cache.stats().entries == 8


# -- bounds ------------------------------------------------------------------------------


def test_the_least_recently_used_documents_go_first():
    cache = DocumentCache(max_entries=2)
    cache.attach(lambda: True)
    for n in (1, 2):
        cache.fill("c", n, b"x" * 10, cache.snapshot("c"))
    assert cache.lookup("c", 1) is not None  # 1 is now the most recent
    cache.fill("c", 3, b"x" * 10, cache.snapshot("c"))
    assert cache.lookup("c", 2) is None and cache.lookup("c", 1) and cache.lookup("c", 3)
    cache = DocumentCache(max_bytes=1600)
    cache.attach(lambda: True)
    for n in range(20):
        cache.fill("c", n, b"x" * 90, cache.snapshot("c"))
    assert cache.stats().bytes <= 1600 and cache.stats().entries == 17


def test_entries_expire():
    now = [0.0]
    cache = DocumentCache(max_age=5, clock=lambda: now[0])
    cache.attach(lambda: True)
    cache.fill("c", 1, b"doc", cache.snapshot("c"))
    now[0] = 4.9
    assert cache.lookup("c", 1) == b"doc"
    now[0] = 5.0
    assert cache.lookup("c", 1) is None and cache.stats().entries == 0


def test_a_collection_wide_invalidation_spares_other_collections():
    cache = DocumentCache()
    cache.attach(lambda: True)
    for collection in ("a", "b"):
        cache.fill(collection, 1, b"doc", cache.snapshot(collection))
    snapshot_b = cache.snapshot("b")
    cache.invalidate("a")
    assert cache.lookup("a", 1) is None and cache.lookup("b", 1) == b"doc"
    assert cache.fill("b", 2, b"doc", snapshot_b)  # no write to b meanwhile
    assert not cache.fill("a", 2, b"doc", snapshot_b[:1] + (0,))


# -- through the API -----------------------------------------------------------------------


def test_the_api_sees_its_own_writes_at_once(deployment):
    regions = k.RegionApi(deployment.admin)
    created = regions.create_region(k.Region(name="eu", domain="eu.example"))
    for _ in range(3):
        assert regions.read_region(created.id).name == "eu"
    regions.update_region(created.id, k.Region(name="west", domain="eu.example"))
    assert regions.read_region(created.id).name == "west"
    regions.delete_region(created.id)
    expect_error(404, regions.read_region, created.id)
    assert deployment.kahuna.db.cache.stats().hits > 0


def test_the_api_sees_credentials_revoked_at_once(deployment):
    bob = deployment.create_account("bob")
    users = k.UserApi(deployment.admin)
    users.set_user_api_token(bob.id)
    key = fact_in(deployment.mail.wait_for(bob.email, "API key"), "API key")
    as_bob = deployment.client(api_key=key)
    for _ in range(3):
        assert k.UserApi(as_bob).read_user(bob.id).name == "bob"
    # Disabled by a service that writes through the collection itself, and enabled again.
    deployment.kahuna.db.users.collection.update_many({"email": bob.email}, {"$set": {"enabled": False}})
    assert "disabled" in expect_error(401, k.UserApi(as_bob).read_user, bob.id)["reason"]
    deployment.kahuna.db.users.collection.update_many({"email": bob.email}, {"$set": {"enabled": True}})
    assert k.UserApi(as_bob).read_user(bob.id).name == "bob"
    bearer = deployment.login(bob)
    assert k.UserApi(bearer).read_user(bob.id).name == "bob"
    # A rotated key stops working at once; so do the new one and the session once the user is deleted.
    users.set_user_api_token(bob.id)
    expect_error(401, k.UserApi(as_bob).read_user, bob.id)
    as_bob = deployment.client(api_key=fact_in(deployment.mail.wait_for(bob.email, "API key", count=2), "API key"))
    assert k.UserApi(as_bob).read_user(bob.id).name == "bob"
    users.delete_user(bob.id)
    expect_error(401, k.UserApi(as_bob).read_user, bob.id)
    expect_error(401, k.UserApi(bearer).read_user, bob.id)


LEASE_SECONDS = 1.5
HA = {"global.ha.enabled": True, "global.ha.leaseSeconds": LEASE_SECONDS}


@pytest.fixture
def pair(ferretdb, mail_server):
    first = Deployment.start(ferretdb.uri, "kahuna_cache_ha", mail_server, **HA, **{"global.ha.nodeName": "first"})
    second = Deployment.start(ferretdb.uri, "kahuna_cache_ha", mail_server, keep_database=True, **HA,
                              **{"global.ha.nodeName": "second"})
    for node in (first, second):
        node.kahuna.db.cache.max_age = 3600  # only invalidation and the lease may make entries go here
    # On a busy machine a renewal can lapse (the node is passive for a moment): wait for the first's lease.
    first.wait_until(lambda: role(first) == "active", 4 * LEASE_SECONDS, "first node active")
    yield first, second
    second.stop()
    first.stop()


def role(deployment: Deployment) -> str:
    return deployment.http.request("GET", f"{deployment.base_url}/healthz").json()["role"]


def test_a_write_by_the_other_node_is_seen_after_failover(pair):
    first, second = pair
    assert role(second) == "passive"
    created = k.RegionApi(first.admin).create_region(k.Region(name="one", domain="r.example"))
    assert k.RegionApi(first.admin).read_region(created.id).name == "one"  # in the first node's cache
    # The first node dies; the second takes over, serves from its cache and writes.
    first.kahuna.lease.stop(release=False)
    second.wait_until(lambda: role(second) == "active", 4 * LEASE_SECONDS, "takeover")
    regions = k.RegionApi(second.admin)
    assert regions.read_region(created.id).name == "one"
    regions.update_region(created.id, k.Region(name="two", domain="r.example"))
    assert regions.read_region(created.id).name == "two"
    assert regions.read_region(created.id).name == "two"
    # The first node, passive now, reads the database, not what it cached while active.
    assert k.RegionApi(first.admin).read_region(created.id).name == "two"
    assert second.kahuna.db.cache.stats().hits > 0


def test_a_node_that_takes_the_lease_again_forgets_what_it_cached(pair):
    first, second = pair
    regions = k.RegionApi(first.admin)
    created = regions.create_region(k.Region(name="one", domain="r.example"))
    assert regions.read_region(created.id).name == "one"  # cached by the first node
    second.kahuna.lease.stop(release=True)  # only the first node competes for the lease from now on
    # Another node takes the lease and keeps it for a while: the first node turns passive.
    store = LeaseStore(second.kahuna.db, LEASE_SECONDS)
    writing = gevent.event.Event()

    def hold() -> None:
        while not writing.is_set():
            store.append("elsewhere/0", store.latest())
            gevent.sleep(LEASE_SECONDS / 5)

    holder = gevent.spawn(hold)
    first.wait_until(lambda: role(first) == "passive", 4 * LEASE_SECONDS, "first node passive")
    # Meanwhile another node writes (through its own storage: the first node's cache is not told).
    second.kahuna.db.regions.update(created.id, {"name": "two"})
    writing.set()
    holder.get(timeout=10)
    # The other node falls silent; the first takes the lease back and must not serve what it cached.
    first.wait_until(lambda: role(first) == "active", 4 * LEASE_SECONDS, "first node active again")
    assert regions.read_region(created.id).name == "two"
    # And the metrics tell how the cache does.
    text = first.http.request("GET", f"{first.base_url}/metrics").data.decode()
    assert "kahuna_cache_hits_total" in text and "kahuna_cache_misses_total" in text
