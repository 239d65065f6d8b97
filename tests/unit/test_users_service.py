"""kahuna.services.users through the fakes: the flows that send mail (registration, password reset, change of
address), single-use expiring links, and the last superAdmin."""

import datetime
import urllib.parse

import pytest

from kahuna.access import AuthMethod, Identity, Role
from kahuna.errors import Conflict, Forbidden, TooManyRequests, Unprocessable
from kahuna.services.sessions import SessionService
from kahuna.services.throttling import Guard
from kahuna.services.tokens import USER, TokenService
from kahuna.services.users import InvalidLink, UserService, normalize_email
from tests.unit import factories as make
from tests.unit.fakes import collection, fact

PUBLIC_URL = "https://kowabunga.acme.example"
ADMIN = Identity(AuthMethod.MASTER_KEY, Role.SUPER_ADMIN)


@pytest.fixture
def sessions(db, hasher, limiter):
    return SessionService(db, hasher, "s" * 32, datetime.timedelta(hours=1), Guard(limiter, "login", 5, 20, 900))


class Later:
    """A background that keeps the work it is given until :meth:`run` (the service's default is a greenlet)."""

    def __init__(self):
        self.jobs = []

    def __call__(self, function, *args):
        self.jobs.append((function, args))

    def run(self):
        jobs, self.jobs = self.jobs, []
        for function, args in jobs:
            function(*args)


def user_service(db, mailer, hasher, sessions, owners, agents, limiter, background):
    tokens = TokenService(db, mailer, owners, "ops@acme.example", agents)
    return UserService(db, mailer, hasher, sessions, tokens, PUBLIC_URL + "/", datetime.timedelta(hours=72),
                       datetime.timedelta(minutes=60), Guard(limiter, "password reset", 3, 10, 3600), owners,
                       background=background)


@pytest.fixture
def users(db, mailer, hasher, sessions, owners, agents, limiter):
    """What the public reset leaves to the background is done at once."""
    return user_service(db, mailer, hasher, sessions, owners, agents, limiter, lambda function, *args: function(*args))


@pytest.fixture
def later():
    return Later()


@pytest.fixture
def users_later(db, mailer, hasher, sessions, owners, agents, limiter, later):
    """What the public reset leaves to the background waits for ``later.run()``."""
    return user_service(db, mailer, hasher, sessions, owners, agents, limiter, later)


def link_of(letter, path):
    """The (user id, token) of the e-mailed link, which must lead to *path* of the public URL."""
    label, url = letter.action
    parts = urllib.parse.urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == PUBLIC_URL + path, url
    query = dict(urllib.parse.parse_qsl(parts.query))
    return query["user"], query["token"]


def registered(users, mailer, name="alice", role=Role.USER):
    """An account created and confirmed; returns (user, password)."""
    user = users.create(name, f"{name}@example.com", role)
    users.confirm_registration(*link_of(mailer.last(f"{name}@example.com", "Welcome"), "/confirm"))
    return users.get(str(user["_id"])), fact(mailer.last(f"{name}@example.com", "account is ready"), "Password")


@pytest.mark.parametrize(("address", "normalized"), [
    ("alice@example.com", "alice@example.com"),
    ("Alice@Example.COM", "alice@example.com"),
    ("  bob@example.com ", None),
    ("no-at-sign", None),
    ("a@b", None),
])
def test_normalize_email(address, normalized):
    if normalized is None:
        with pytest.raises(Unprocessable, match=f"invalid e-mail address {address!r}"):
            normalize_email(address)
    else:
        assert normalize_email(address) == normalized


def test_a_new_account_is_disabled_until_its_emailed_link_is_followed(db, mailer, users, hasher):
    user = users.create("alice", "Alice@Example.com", Role.PROJECT_ADMIN, notifications=True)
    assert (user["email"], user["enabled"], user["password_hash"]) == ("alice@example.com", False, None)
    welcome = mailer.last("alice@example.com", "Welcome to Kowabunga")
    assert (fact(welcome, "Name"), fact(welcome, "Role"), fact(welcome, "Email Notifications")) == (
        "alice", "projectAdmin", "Enabled")
    user_id, token = link_of(welcome, "/confirm")
    assert user_id == str(user["_id"])
    assert token not in repr(db.users.get(user_id))  # only its digest is kept

    users.confirm_registration(user_id, token)
    password = fact(mailer.last("alice@example.com", "Your Kowabunga account is ready"), "Password")
    confirmed = db.users.get(user_id)
    assert confirmed["enabled"] is True and "registration" not in confirmed
    assert hasher.verify(password, confirmed["password_hash"])
    with pytest.raises(InvalidLink):
        users.confirm_registration(user_id, token)  # single use


def test_an_account_whose_welcome_cannot_be_sent_is_not_kept(db, mailer, users):
    mailer.fail()
    with pytest.raises(Unprocessable, match="cannot send e-mail to alice@example.com"):
        users.create("alice", "alice@example.com", Role.USER)
    assert db.users.count() == 0


def test_names_and_addresses_are_unique(users):
    users.create("alice", "alice@example.com", Role.USER)
    for name, email in (("alice", "other@example.com"), ("other", "ALICE@example.com")):
        with pytest.raises(Conflict, match="a user with the same name or e-mail address already exists"):
            users.create(name, email, Role.USER)


@pytest.mark.parametrize("token", ["", "not-the-token", None])
def test_a_wrong_token_is_an_invalid_link(mailer, users, token):
    user = users.create("alice", "alice@example.com", Role.USER)
    with pytest.raises(InvalidLink):
        users.confirm_registration(str(user["_id"]), token)
    with pytest.raises(InvalidLink):
        users.confirm_registration("0" * 24, link_of(mailer.last("alice@example.com"), "/confirm")[1])


def test_an_expired_link_is_invalid(db, mailer, users):
    user = users.create("alice", "alice@example.com", Role.USER)
    user_id, token = link_of(mailer.last("alice@example.com"), "/confirm")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    collection(db, "user").update_one({"_id": user["_id"]}, {"$set": {"registration.expires_at": past}})
    with pytest.raises(InvalidLink, match="this link is invalid, was used already, or has expired"):
        users.confirm_registration(user_id, token)


def test_a_link_whose_password_cannot_be_mailed_can_be_followed_again(db, mailer, users):
    users.create("alice", "alice@example.com", Role.USER)
    link = link_of(mailer.last("alice@example.com"), "/confirm")
    mailer.fail(times=1)
    with pytest.raises(Unprocessable):
        users.confirm_registration(*link)
    assert db.users.find_one({"name": "alice"})["enabled"] is False
    users.confirm_registration(*link)
    assert db.users.find_one({"name": "alice"})["enabled"] is True


def test_password_reset_mails_a_link_then_a_new_password_and_ends_every_session(db, mailer, users, sessions, hasher):
    user, password = registered(users, mailer)
    sessions.login("alice@example.com", password, "203.0.113.1")
    assert db.sessions.count() == 1
    users.request_password_reset("ALICE@example.com", "203.0.113.1")
    users.confirm_password_reset(*link_of(mailer.last("alice@example.com", "Forgot about your"),
                                          "/confirmForgotPassword"))
    new_password = fact(mailer.last("alice@example.com", "password has been reset"), "Password")
    assert new_password != password
    assert hasher.verify(new_password, db.users.get(user["_id"])["password_hash"])
    assert db.sessions.count() == 0


@pytest.mark.parametrize("address", ["nobody@example.com", "not an address"])
def test_a_reset_for_an_unknown_address_is_silent(mailer, users, address):
    users.request_password_reset(address, "203.0.113.1")
    assert mailer.sent == []


@pytest.mark.parametrize("relay", ["up", "down"])
def test_a_public_reset_answers_alike_for_a_known_and_an_unknown_address(db, mailer, users_later, later, relay,
                                                                         caplog):
    """The request returns before the look-up, the link and the mail; a failure there is logged, not raised."""
    user, _ = registered(users_later, mailer)
    sent_before = len(mailer.sent)
    if relay == "down":
        mailer.fail()
    for address in ("alice@example.com", "nobody@example.com"):
        assert users_later.request_password_reset(address, "203.0.113.1") is None
    assert (len(later.jobs), len(mailer.sent), "password_reset" in db.users.get(user["_id"])) == (
        2, sent_before, False)
    later.run()  # must not raise, relay up or down
    if relay == "up":
        assert [letter.to for letter in mailer.sent[sent_before:]] == ["alice@example.com"]
        assert "password_reset" in db.users.get(user["_id"])
    else:
        assert len(mailer.sent) == sent_before
        assert "password reset requested for alice@example.com: no link sent" in caplog.text


def test_resets_are_throttled_before_anything_is_looked_up(mailer, users, limiter):
    limiter.wait = 42.5
    with pytest.raises(TooManyRequests) as caught:
        users.request_password_reset("alice@example.com", "203.0.113.1")
    assert (caught.value.retry_after, caught.value.reason) == (
        43, "too many password reset attempts: retry in 43 seconds")
    assert limiter.reserved == [(("password reset:account:alice@example.com", 3),
                                 ("password reset:source:203.0.113.1", 10))]


def test_a_change_of_address_takes_a_confirmation_from_the_new_one(db, mailer, users):
    user, _ = registered(users, mailer)
    user_id = str(user["_id"])
    answered = users.update(ADMIN, user_id, "alice", "alice@new.example", Role.USER)
    assert answered["email"] == "alice@example.com"  # until confirmed
    notice = mailer.last("alice@example.com", "about to change")
    assert fact(notice, "New address") == "alice@new.example"
    link = link_of(mailer.last("alice@new.example", "Confirm your new Kowabunga e-mail address"), "/confirmEmail")
    users.confirm_email_change(*link)
    assert db.users.get(user_id)["email"] == "alice@new.example"
    assert len(mailer.to("alice@new.example", "has changed")) == len(mailer.to("alice@example.com", "has changed")) == 1
    with pytest.raises(InvalidLink):
        users.confirm_email_change(*link)


def test_an_address_taken_by_another_account_gets_a_notice_not_a_link(db, mailer, users):
    user, _ = registered(users, mailer)
    registered(users, mailer, "bob")
    mailer.sent.clear()
    users.update(ADMIN, str(user["_id"]), "alice", "bob@example.com", Role.USER)
    assert [letter.subject for letter in mailer.to("bob@example.com")] == ["Your address and Kowabunga"]
    assert mailer.to("bob@example.com")[0].action is None
    assert len(mailer.to("alice@example.com", "about to change")) == 1
    assert "email_change" not in db.users.get(user["_id"])


def test_an_unannounced_change_of_address_cannot_be_confirmed(db, mailer, users):
    user, _ = registered(users, mailer)
    mailer.fail()
    with pytest.raises(Unprocessable):
        users.update(ADMIN, str(user["_id"]), "alice", "alice@new.example", Role.USER)
    assert "email_change" not in db.users.get(user["_id"])


def test_only_a_super_admin_changes_roles(mailer, users):
    user, _ = registered(users, mailer)
    myself = Identity(AuthMethod.BEARER, Role.USER, str(user["_id"]))
    with pytest.raises(Forbidden, match="only a superAdmin can change a user's role"):
        users.update(myself, str(user["_id"]), "alice", "alice@example.com", Role.SUPER_ADMIN)
    assert users.update(myself, str(user["_id"]), "alice2", "alice@example.com", Role.USER)["name"] == "alice2"


def test_the_last_super_admin_stays(db, mailer, users, owners):
    root, _ = registered(users, mailer, "root", Role.SUPER_ADMIN)
    root_id = str(root["_id"])
    with pytest.raises(Conflict, match="this is the last superAdmin: promote another user first"):
        users.update(ADMIN, root_id, "root", "root@example.com", Role.USER)
    with pytest.raises(Conflict, match="last superAdmin"):
        users.delete(root_id)
    make.user(db, "disabled-admin", role="superAdmin", enabled=False)  # does not count
    with pytest.raises(Conflict):
        users.delete(root_id)
    assert ("superadmins", f"user:{root_id}") in owners.keys
    make.user(db, "second-admin", role="superAdmin")
    users.update(ADMIN, root_id, "root", "root@example.com", Role.USER)
    assert db.users.get(root_id)["role"] == "user"


def test_deleting_a_user_takes_it_out_of_its_teams_and_revokes_its_key_and_sessions(db, mailer, users, sessions):
    user, password = registered(users, mailer)
    user_id = str(user["_id"])
    other = make.user(db, "bob")
    team = make.team(db, "ops", users=[user, other])
    users.tokens.rotate_user_key(user, False, None)
    sessions.login("alice@example.com", password, "203.0.113.1")
    users.delete(user_id)
    assert db.teams.get(team["_id"])["user_ids"] == [str(other["_id"])]
    assert (db.users.count(), db.tokens.count(), db.api_keys.count(), db.sessions.count()) == (1, 0, 0, 0)
    assert users.tokens.token_of(USER, user_id) is None


def test_the_bootstrap_admin_is_made_once_and_only_on_an_empty_database(db, users, hasher):
    user, password = users.ensure_bootstrap_admin("Ops@Acme.example")
    assert (user["email"], user["role"], user["enabled"]) == ("ops@acme.example", "superAdmin", True)
    assert hasher.verify(password, user["password_hash"])
    assert users.ensure_bootstrap_admin("ops@acme.example") is None
