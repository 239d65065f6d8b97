"""Schema upkeep: a Go Kahuna database is migrated; an unmigrated one is refused."""

import itertools
import os

import pytest
from bson import ObjectId

from kahuna.storage import Database, schema
from kahuna.storage.schema import SchemaError

_names = itertools.count()


@pytest.fixture
def db(ferretdb):
    database = Database(ferretdb.uri, f"kahuna_storage_{os.getpid()}_{next(_names)}")
    yield database
    database.client.drop_database(database.name)
    database.close()


def test_a_fresh_database_is_initialized_with_indexes_and_versions(db):
    db.initialize()
    versions = {doc["_id"]: doc["version"] for doc in db.db[schema.VERSION_COLLECTION].find()}
    assert versions["user"] == schema.CURRENT_VERSION
    assert "email_unique" in db.db["user"].index_information()
    db.initialize()  # idempotent


def test_a_legacy_go_kahuna_database_is_refused_then_migrated(db):
    team_id = ObjectId()
    db.db["users"].insert_one({"name": "bob", "email": "bob@example.com", "role": "user", "groups": [str(team_id)],
                               "jwt": "x", "token": "y", "password_hash": "$2a$10$abc", "schema_version": 1})
    db.db["groups"].insert_one({"_id": team_id, "name": "ops", "users": ["u1"], "schema_version": 1})
    db.db["project"].insert_one({"name": "p", "instance_ids": [], "team_ids": [str(team_id)], "schema_version": 2})
    with pytest.raises(SchemaError, match="kahuna migrate"):
        db.initialize()
    report = db.migrate()
    assert report.converted == {"user": 1, "team": 1, "project": 1}
    assert "collection users to user" in report.renamed and "collection groups to team" in report.renamed
    user = db.db["user"].find_one({"name": "bob"})
    assert user["schema_version"] == 3 and "team_ids" not in user and "jwt" not in user
    assert user["password_hash"] == "$2a$10$abc"  # bcrypt hashes carry over: the password still works
    team = db.db["team"].find_one({"name": "ops"})
    assert team["user_ids"] == ["u1"] and "users" not in team
    # The team's member list is kept; what disagrees with it is reported.
    assert "team ops: user_ids lists unknown user(s) u1 (kept)" in report.warnings
    assert any(line.startswith("user bob: its team_ids (ops) differ") for line in report.warnings)
    project = db.db["project"].find_one({"name": "p"})
    assert "instance_ids" not in project and project["state"] == "ready" and project["private_subnets"] == []
    assert "users" not in db.db.list_collection_names()
    db.initialize()
    assert not db.migrate().anything_converted


def test_a_database_from_a_newer_kahuna_is_refused(db):
    db.initialize()
    db.db[schema.VERSION_COLLECTION].update_one({"_id": "user"}, {"$set": {"version": 99}})
    with pytest.raises(SchemaError, match="upgrade Kahuna"):
        db.initialize()


def test_settings_are_created_once(db):
    first = db.setting("x", lambda: "one")
    assert db.setting("x", lambda: "two") == first == "one"
