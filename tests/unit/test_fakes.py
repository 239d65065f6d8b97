"""The fakes are only worth the confidence they give: the in-memory database answers as MongoDB does for what
the services ask, and refuses what it does not implement; the agent plane, as the real one does."""

import datetime
import re
from types import SimpleNamespace

import pytest
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from kahuna.errors import AgentCallFailed, AgentUnavailable, Conflict, NotFound, Unprocessable
from kahuna.mail import Letter
from tests.unit import factories as make
from tests.unit.fakes import FakeAgentPlane, FakeMailer, InlineOwners, MemoryCollection, matches
from tests.unit.fakes import collection as collection_of

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
DOC = {"_id": 1, "name": "web", "tags": ["a", "b"], "count": 3, "flag": True, "none": None, "empty": "",
       "defaults": {"subnet_id": ""}, "at": T0, "ids": [ObjectId("0" * 24)]}


@pytest.mark.parametrize(("query", "matched"), [
    ({}, True),
    ({"name": "web"}, True),
    ({"name": "db"}, False),
    ({"tags": "a"}, True),  # an array matches one of its elements
    ({"tags": ["a", "b"]}, True),  # ... or as a whole
    ({"tags": ["b", "a"]}, False),
    ({"missing": None}, True),  # null matches a missing field
    ({"none": None}, True),
    ({"empty": None}, False),
    ({"count": 3.0}, True),
    ({"flag": 1}, False),  # a boolean is not a number
    ({"count": True}, False),
    ({"ids": "0" * 24}, False),  # an ObjectId is not its hex string
    ({"ids": ObjectId("0" * 24)}, True),
    ({"defaults.subnet_id": ""}, True),
    ({"defaults.subnet_id": {"$exists": False}}, False),
    ({"defaults.pool_id": {"$exists": False}}, True),
    ({"defaults": {"subnet_id": ""}}, True),
    ({"name": {"$in": ["db", "web"]}}, True),
    ({"name": {"$in": []}}, False),
    ({"tags": {"$in": ["x", "b"]}}, True),
    ({"missing": {"$in": ["", None]}}, True),
    ({"name": {"$nin": ["", None]}}, True),
    ({"none": {"$nin": ["", None]}}, False),
    ({"missing": {"$nin": ["", None]}}, False),
    ({"empty": {"$nin": ["", None]}}, False),
    ({"name": {"$ne": "db"}}, True),
    ({"tags": {"$ne": "a"}}, False),  # no element may equal it
    ({"missing": {"$ne": "x"}}, True),
    ({"missing": {"$ne": None}}, False),
    ({"at": {"$lt": T0 + datetime.timedelta(seconds=1)}}, True),
    ({"at": {"$lt": T0}}, False),
    ({"count": {"$lt": 3.5}}, True),
    ({"name": {"$lt": 4}}, False),  # other types never compare
    ({"missing": {"$lt": 4}}, False),
    ({"count": {"$in": [3], "$ne": 4}}, True),
    ({"$or": [{"name": "db"}, {"count": 3}]}, True),
    ({"$or": [{"name": "db"}, {"count": 4}]}, False),
    ({"$or": [{"name": "web"}], "count": 4}, False),
])
def test_filters_match_as_mongodb_does(query, matched):
    assert matches(DOC, query) is matched


@pytest.mark.parametrize(("query", "operator"), [
    ({"count": {"$gt": 1}}, "$gt"),
    ({"count": {"$lte": 1}}, "$lte"),
    ({"name": {"$regex": "^w"}}, "$regex"),
    ({"$and": [{"name": "web"}]}, "$and"),
    ({"$where": "true"}, "$where"),
    ({"tags": {"$elemMatch": {"$eq": "a"}}}, "$elemMatch"),
    ({"name": {"$eq": "web"}}, "$eq"),
])
def test_other_query_operators_are_refused_by_name(query, operator):
    with pytest.raises(NotImplementedError, match="the query operator " + re.escape(operator)):
        matches(DOC, query)


@pytest.fixture
def coll():
    docs = MemoryCollection("thing", unique=[("name_unique", ("name",)), ("a_b_unique", ("a", "b"))])
    for n, name in enumerate(["one", "two", "three"]):
        docs.insert_one({"_id": n, "name": name, "a": n, "b": "x", "list": [], "sub": {"k": n}})
    return docs


def test_find_sorts_limits_and_projects(coll):
    assert [d["name"] for d in coll.find()] == ["one", "two", "three"]  # natural order: insertion
    assert [d["name"] for d in coll.find(sort=[("name", 1)])] == ["one", "three", "two"]
    assert [d["name"] for d in coll.find({}, sort=[("name", -1)], limit=2)] == ["two", "three"]
    assert list(coll.find({"a": {"$in": [0, 2]}}, {"_id": 1}).sort("_id", -1)) == [{"_id": 2}, {"_id": 0}]
    assert coll.find_one({"name": "two"}, {"a": 1, "_id": 0}) == {"a": 1}
    assert coll.find_one({"name": "two"}, projection=["name"]) == {"_id": 1, "name": "two"}
    assert coll.find_one(2)["name"] == "three"
    assert coll.find_one({"name": "four"}) is None
    assert coll.count_documents({"b": "x"}) == 3


def test_documents_are_copied_in_and_out(coll):
    found = coll.find_one({"_id": 0})
    found["sub"]["k"] = 99
    assert coll.find_one({"_id": 0})["sub"] == {"k": 0}
    doc = {"name": "four", "a": 4, "list": [1]}
    coll.insert_one(doc)
    assert isinstance(doc["_id"], ObjectId)  # as pymongo: the caller's document gets its _id
    doc["list"].append(2)
    assert coll.find_one({"name": "four"})["list"] == [1]


def test_updates(coll):
    after = coll.find_one_and_update({"_id": 0}, {"$set": {"sub.k": 5, "new.deep": 1}, "$unset": {"b": ""}},
                                     return_document=ReturnDocument.AFTER)
    assert (after["sub"], after["new"], "b" in after) == ({"k": 5}, {"deep": 1}, False)
    before = coll.find_one_and_update({"_id": 1}, {"$addToSet": {"list": 7}})
    assert before["list"] == []
    coll.update_one({"_id": 1}, {"$addToSet": {"list": 7}})  # already there
    coll.update_one({"_id": 1}, {"$addToSet": {"list": 8}})
    assert coll.find_one({"_id": 1})["list"] == [7, 8]
    result = coll.update_many({"list": 7}, {"$pull": {"list": 7}})
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert coll.find_one({"_id": 1})["list"] == [8]
    assert coll.update_many({"b": "x"}, {"$set": {"b": "y"}}).modified_count == 2  # _id 0 has no b any more
    assert coll.find_one_and_update({"_id": 9}, {"$set": {"a": 1}}) is None
    assert coll.update_one({"_id": 9}, {"$set": {"a": 1}}).matched_count == 0


def test_upserts(coll):
    result = coll.update_one({"_id": "setting"}, {"$setOnInsert": {"value": "first"}}, upsert=True)
    assert result.upserted_id == "setting"
    coll.update_one({"_id": "setting"}, {"$setOnInsert": {"value": "second"}}, upsert=True)
    assert coll.find_one({"_id": "setting"}) == {"_id": "setting", "value": "first"}


def test_deletes(coll):
    assert coll.delete_one({"b": "x"}).deleted_count == 1
    assert coll.delete_many({"b": "x"}).deleted_count == 2
    assert coll.delete_many({}).deleted_count == 0


@pytest.mark.parametrize(("document", "index"), [
    ({"_id": 0, "name": "zero"}, "_id_"),
    ({"name": "one", "a": 9}, "name_unique"),
    ({"name": "nine", "a": 1, "b": "x"}, "a_b_unique"),
])
def test_unique_indexes_refuse_inserts(coll, document, index):
    with pytest.raises(DuplicateKeyError, match=f"index: {index} "):
        coll.insert_one(document)
    assert coll.count_documents({}) == 3


def test_unique_indexes_refuse_updates_and_treat_missing_fields_as_null(coll):
    with pytest.raises(DuplicateKeyError, match="name_unique"):
        coll.update_one({"_id": 1}, {"$set": {"name": "one"}})
    assert coll.find_one({"_id": 1})["name"] == "two"
    coll.insert_one({"_id": 10, "name": "ten", "a": 10})  # no b
    with pytest.raises(DuplicateKeyError, match="a_b_unique"):
        coll.insert_one({"_id": 11, "name": "eleven", "a": 10, "b": None})
    coll.update_one({"_id": 1}, {"$set": {"name": "two", "a": 1}})  # a document does not clash with itself


@pytest.mark.parametrize(("call", "what"), [
    (lambda c: c.update_one({"_id": 0}, {"name": "replaced"}), "replacement documents"),
    (lambda c: c.update_one({"_id": 0}, {"$inc": {"a": 1}}), "the update operator $inc"),
    (lambda c: c.update_one({"_id": 0}, {"$push": {"list": 1}}), "the update operator $push"),
    (lambda c: c.update_one({"_id": 0}, {"$addToSet": {"list": {"$each": [1, 2]}}}), "modifiers and conditions"),
    (lambda c: c.update_one({"_id": 0}, {"$pull": {"list": {"$gt": 1}}}), "modifiers and conditions"),
    (lambda c: c.find({}, {"name": 0}), "exclusion projections"),
    (lambda c: c.find({}, {"sub.k": 1}), "the projection"),
    (lambda c: c.find({}, batch_size=10), "find() with batch_size"),
    (lambda c: c.find({}, skip=1), "find() with skip"),
    (lambda c: c.insert_one({"a": 1}, bypass_document_validation=True), "insert_one() with bypass"),
    (lambda c: c.aggregate([]), "Collection.aggregate()"),
    (lambda c: c.bulk_write([]), "Collection.bulk_write()"),
    (lambda c: c.find_one({"list.x": 1}), "paths through arrays"),
])
def test_what_is_not_implemented_is_refused_by_name(coll, call, what):
    with pytest.raises(NotImplementedError, match="does not implement " + re.escape(what)):
        call(coll)


@pytest.mark.parametrize("update", [
    {"$set": {"sub": {}}, "$unset": {"sub.k": ""}},
    {"$set": {"a": 1}, "$unset": {"a": ""}},
])
def test_conflicting_updates_are_refused_as_mongodb_does(coll, update):
    with pytest.raises(OperationFailure, match="would create a conflict"):
        coll.update_one({"_id": 0}, update)


def test_the_id_cannot_change(coll):
    with pytest.raises(OperationFailure, match="immutable field '_id'"):
        coll.update_one({"_id": 0}, {"$set": {"_id": 5}})


def test_memory_database_is_a_kahuna_database_with_the_schemas_unique_indexes(db):
    west = make.region(db, "eu-west")
    assert db.regions.get(str(west["_id"]))["name"] == "eu-west"
    with pytest.raises(Conflict, match="a region with the same name already exists"):
        make.region(db, "eu-west")
    make.zone(db, west, "a")
    make.zone(db, make.region(db, "eu-east"), "a")  # unique within the region only
    with pytest.raises(Conflict, match="region already has a zone named a"):
        db.zones.insert({"region_id": str(west["_id"]), "name": "a"}, conflict="region already has a zone named a")
    with pytest.raises(NotFound):
        db.zones.get("0" * 24)
    assert db.regions.ids() == sorted(db.regions.ids())
    assert collection_of(db, "region").count_documents({}) == 2
    assert db.db["region"] is collection_of(db, "region")
    db.ping()


def test_the_agent_plane():
    plane = FakeAgentPlane(connected={"k1", "k2"})
    method = SimpleNamespace(wire_name="Kaktus.NodeCapabilities")  # all the fake reads of an rpc.Method
    plane.answer("Kaktus.NodeCapabilities", {"Threads": 8})
    plane.answer("Kaktus.NodeCapabilities", error=AgentCallFailed("agent k2: boom"), agent_id="k2")
    plane.answer("Kaktus.NodeCapabilities", lambda agent_id, params: {"Threads": params["n"]}, times=1)
    assert plane.call("k1", method, {"n": 4}) == {"Threads": 4}  # the latest script, once
    assert plane.call("k1", method) == {"Threads": 8}
    assert plane.call_any(["k3", "k1"], method) == {"Threads": 8}
    with pytest.raises(AgentUnavailable, match="agent k3 is not connected"):
        plane.call("k3", method)
    with pytest.raises(AgentUnavailable, match="no connected agent can serve Kaktus.NodeCapabilities"):
        plane.call_any(["k3"], method)
    results = plane.broadcast(["k1", "k2", "k3", "k1"], method)
    assert list(results) == ["k1", "k2", "k3"]
    assert results["k1"] == {"Threads": 8}
    assert isinstance(results["k2"], AgentCallFailed) and isinstance(results["k3"], AgentUnavailable)
    assert plane.methods("k1") == ["Kaktus.NodeCapabilities"] * 4
    assert plane.params_of("Kaktus.NodeCapabilities", "k1")[0] == {"n": 4}
    assert plane.connected_ids(["k3", "k2", "k1", "k2"]) == ["k2", "k1"]
    assert plane.disconnect("k2", "bye", 4001) is True
    assert plane.disconnect("k2", "bye", 4001) is False
    assert plane.disconnections == [("k2", "bye", 4001)] * 2 and plane.connected == {"k1"}


def test_the_mailer_and_the_owners():
    mailer = FakeMailer()
    mailer.fail(times=1)
    with pytest.raises(Unprocessable, match="cannot send e-mail to a@x.example"):
        mailer.send(Letter("a@x.example", "Hello", "intro"))
    mailer.send(Letter("a@x.example", "Hello again", "intro"))
    assert [letter.subject for letter in mailer.to("a@x.example")] == ["Hello again"]
    owners = InlineOwners()
    assert owners.run("project:1", lambda a, b=0: a + b, 1, b=2) == 3
    assert owners.run_all(iter(["zone:1", "adapter:2"]), lambda: "done") == "done"
    assert owners.keys == ["project:1", ("zone:1", "adapter:2")]
