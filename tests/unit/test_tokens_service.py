"""kahuna.services.tokens through the fakes: keys e-mailed once and stored as digests, rotation, revocation (which
disconnects an agent), expiry, and Go Kahuna keys upgraded on first use."""

import datetime

import bcrypt
import pytest

from kahuna import credentials
from kahuna.errors import Unauthorized, Unprocessable
from kahuna.services.tokens import AGENT, KEY_REVOKED, USER, TokenService, has_expired
from tests.unit import factories as make
from tests.unit.fakes import fact

ADMIN = "ops@acme.example"
TODAY = datetime.datetime.now(datetime.UTC).date()


@pytest.fixture
def tokens(db, mailer, owners, agents):
    return TokenService(db, mailer, owners, ADMIN, agents)


@pytest.fixture
def alice(db):
    return make.user(db, "alice")


def key_of(letter):
    return fact(letter, "API key")


def test_a_users_key_is_mailed_to_the_user_and_only_its_digest_is_kept(db, mailer, owners, tokens, alice):
    token = tokens.rotate_user_key(alice, False, None)
    letter = mailer.last("alice@example.com", "A new Kowabunga API key")
    key = key_of(letter)
    assert len(key) == 64 and fact(letter, "User") == "alice"
    assert token["api_key_sha256"] == credentials.digest(key) != key
    assert (token["parent_type"], token["parent_id"], token["name"]) == (USER, str(alice["_id"]), "alice-api-key")
    assert key not in repr([db.tokens.find(), db.api_keys.find()])
    assert tokens.find_by_key(key, USER)["_id"] == token["_id"]
    assert owners.keys == [f"token:user:{alice['_id']}"]


def test_rotating_replaces_the_key_at_once(db, mailer, tokens, alice):
    first = tokens.rotate_user_key(alice, False, None)
    old = key_of(mailer.last("alice@example.com"))
    second = tokens.rotate_user_key(alice, False, None)
    new = key_of(mailer.last("alice@example.com"))
    assert second["_id"] == first["_id"] and db.tokens.count() == 1  # one token per user
    assert db.api_keys.count() == 1
    with pytest.raises(Unauthorized, match="invalid API key"):
        tokens.find_by_key(old, USER)
    assert tokens.find_by_key(new, USER)["_id"] == first["_id"]


def test_a_key_is_delivered_before_it_is_stored(db, mailer, tokens, alice):
    tokens.rotate_user_key(alice, False, None)
    old = key_of(mailer.last("alice@example.com"))
    mailer.fail()
    with pytest.raises(Unprocessable, match="the mail relay is unavailable"):
        tokens.rotate_user_key(alice, False, None)
    assert tokens.find_by_key(old, USER)["parent_id"] == str(alice["_id"])  # the old key still works


@pytest.mark.parametrize(("presented", "parent_type"), [
    ("alice's key", AGENT),  # a user's key is no agent's
    ("k" * 64, USER),
    ("", USER),
])
def test_keys_that_open_nothing(tokens, mailer, alice, presented, parent_type):
    tokens.rotate_user_key(alice, False, None)
    if presented == "alice's key":
        presented = key_of(mailer.last("alice@example.com"))
    with pytest.raises(Unauthorized, match="invalid API key"):
        tokens.find_by_key(presented, parent_type)


def test_an_agents_key_goes_to_the_administrator_and_its_connection_is_closed(db, mailer, agents, tokens):
    agent = make.agent(db, "kaktus-a")
    agents.connect(str(agent["_id"]))
    tokens.rotate_agent_key(agent, False, None)
    letter = mailer.last(ADMIN, "agent API key")
    assert (fact(letter, "Agent ID"), fact(letter, "Agent name"), fact(letter, "Agent type")) == (
        str(agent["_id"]), "kaktus-a", "Kaktus")
    assert tokens.find_by_key(key_of(letter), AGENT)["parent_id"] == str(agent["_id"])
    assert agents.disconnections == [(str(agent["_id"]), "API key rotated", KEY_REVOKED)]


def test_an_instance_agents_key_is_returned_not_mailed(db, mailer, agents, tokens):
    agent = make.agent(db, "kontroller-web-1", "Kontroller")
    key = tokens.issue_instance_agent_key(agent)
    assert mailer.sent == []
    assert tokens.find_by_key(key, AGENT)["parent_id"] == str(agent["_id"])
    assert agents.disconnections[0][2] == KEY_REVOKED


def test_deleting_a_token_revokes_its_key_and_disconnects_its_agent(db, mailer, agents, tokens):
    agent = make.agent(db, "kiwi-1", "Kiwi")
    token = tokens.rotate_agent_key(agent, False, None)
    key = key_of(mailer.last(ADMIN))
    agents.disconnections.clear()
    tokens.delete(str(token["_id"]))
    with pytest.raises(Unauthorized):
        tokens.find_by_key(key, AGENT)
    assert (db.tokens.count(), db.api_keys.count()) == (0, 0)
    assert agents.disconnections == [(str(agent["_id"]), "API key revoked", KEY_REVOKED)]


def test_delete_for_a_user(db, mailer, agents, tokens, alice):
    tokens.rotate_user_key(alice, False, None)
    tokens.delete_for(USER, str(alice["_id"]))
    tokens.delete_for(USER, str(alice["_id"]))  # nothing left: nothing done
    assert (db.tokens.count(), db.api_keys.count(), agents.disconnections) == (0, 0, [])


@pytest.mark.parametrize(("token", "expired"), [
    ({"expire": False, "expiration_date": "2000-01-01"}, False),
    ({"expire": True, "expiration_date": TODAY.isoformat()}, False),  # valid through its whole last day
    ({"expire": True, "expiration_date": (TODAY + datetime.timedelta(days=1)).isoformat()}, False),
    ({"expire": True, "expiration_date": (TODAY - datetime.timedelta(days=1)).isoformat()}, True),
    ({"expire": True, "expiration_date": None}, True),
    ({}, False),
])
def test_has_expired(token, expired):
    assert has_expired(token) is expired


@pytest.mark.parametrize(("expire", "date", "reason"), [
    (True, None, "expiration_date is required when expire is true"),
    (True, datetime.date(2000, 1, 1), "expiration_date 2000-01-01 is in the past"),
])
def test_expiry_is_checked_before_anything_happens(db, mailer, tokens, alice, expire, date, reason):
    with pytest.raises(Unprocessable) as caught:
        tokens.rotate_user_key(alice, expire, date)
    assert caught.value.reason == reason
    assert (mailer.sent, db.tokens.count()) == ([], 0)


def test_an_expired_key_is_refused_and_an_update_can_extend_it(db, mailer, tokens, alice):
    token = tokens.rotate_user_key(alice, True, TODAY)
    key = key_of(mailer.last("alice@example.com"))
    db.tokens.update(token["_id"], {"expiration_date": "2000-01-01"})  # time passes
    with pytest.raises(Unauthorized, match="API key has expired"):
        tokens.find_by_key(key, USER)
    updated = tokens.update(str(token["_id"]), "renamed", "", True, TODAY + datetime.timedelta(days=30))
    assert (updated["name"], updated["expire"]) == ("renamed", True)
    assert tokens.find_by_key(key, USER)["_id"] == token["_id"]
    assert tokens.update(str(token["_id"]), "renamed", "", False, None)["expiration_date"] is None


def test_an_expired_token_can_be_renamed_and_stays_expired(db, mailer, tokens, alice):
    token = tokens.rotate_user_key(alice, True, TODAY)
    key = key_of(mailer.last("alice@example.com"))
    db.tokens.update(token["_id"], {"expiration_date": "2000-01-01"})  # time passes
    # The expiry it carries is the stored one (what a partial update merges in): only the name changes.
    renamed = tokens.update(str(token["_id"]), "old-key", "kept for the audit", True, datetime.date(2000, 1, 1))
    assert (renamed["name"], renamed["description"], renamed["expire"], renamed["expiration_date"]) == (
        "old-key", "kept for the audit", True, "2000-01-01")
    with pytest.raises(Unauthorized, match="API key has expired"):
        tokens.find_by_key(key, USER)
    # Changing the expiry is checked as before: not to another date in the past.
    with pytest.raises(Unprocessable, match="1999-12-31 is in the past"):
        tokens.update(str(token["_id"]), "old-key", "", True, datetime.date(1999, 12, 31))


def test_a_go_kahuna_key_is_upgraded_to_a_digest_when_first_presented(db, tokens):
    agent = make.agent(db, "kaktus-legacy")
    agent_id = str(agent["_id"])
    key = "legacy-key-" + "x" * 20
    token = db.tokens.insert({"name": "legacy", "description": "", "parent_type": AGENT, "parent_id": agent_id,
                              "api_key_sha256": "go-placeholder-1", "expire": False, "expiration_date": None,
                              "api_key_bcrypt": bcrypt.hashpw(key.encode(), bcrypt.gensalt(4)).decode()})
    assert tokens.upgrade_legacy_key("wrong key", AGENT, agent_id) is None
    upgraded = tokens.upgrade_legacy_key(key, AGENT, agent_id)
    assert upgraded["_id"] == token["_id"] and "api_key_bcrypt" not in upgraded
    assert tokens.find_by_key(key, AGENT)["_id"] == token["_id"]
    assert tokens.upgrade_legacy_key(key, AGENT, agent_id) is None  # from now on found by its digest
    assert tokens.upgrade_legacy_key(key, AGENT, "0" * 24) is None
