"""The HA lease against the real FerretDB (SQLite backend, whose conditional updates are not atomic):
racing nodes at the same instant, round after round, one holder per slot and per token, never two
nodes counting themselves active at once; takeover only after a whole lease of silence; a stale
holder that cannot renew; a clean release; the keeper actor telling its listeners when it lost.

Each node has its own connection, so the racing requests reach the database in parallel. Most
tests run the nodes on one fake monotonic clock, so that "a lease later" needs no waiting."""

from __future__ import annotations

import datetime
import itertools
import os
import random
import time

import gevent
import gevent.event
import pytest

from actors._lease import LeaseKeeper
from kahuna.ha import (
    COLLECTION,
    LEGACY_COLLECTION,
    LEGACY_ID,
    RENEW_FRACTION,
    SAFETY_MARGIN,
    Contender,
    Grant,
    LeaseStore,
)
from kahuna.storage import Database, utcnow

TTL = 10.0  # seconds of the fake clock
_names = itertools.count()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def connect(ferretdb):
    """A new connection to this test's own database at each call."""
    name = f"kahuna_lease_{os.getpid()}_{next(_names)}"
    opened: list[Database] = []

    def open_database() -> Database:
        opened.append(Database(ferretdb.uri, name))
        return opened[-1]

    yield open_database
    for database in opened:  # some were closed already (a lease keeper closes its own)
        database.close()
    if opened:
        cleaner = Database(ferretdb.uri, name)
        cleaner.client.drop_database(name)
        cleaner.close()


def race(calls):
    """Run *calls* at the same instant, one greenlet each; their results in order."""
    go = gevent.event.Event()

    def run(call):
        go.wait()
        return call()

    greenlets = [gevent.spawn(run, call) for call in calls]
    gevent.sleep(0)
    go.set()
    gevent.joinall(greenlets, timeout=120, raise_error=True)
    assert all(greenlet.ready() for greenlet in greenlets), "a racer did not finish"
    return [greenlet.value for greenlet in greenlets]


def grant_log(database: Database) -> list[dict]:
    return list(database.client[database.name][COLLECTION].find({}, sort=[("_id", 1)]))


def assert_one_holder_per_token(log: list[dict]) -> None:
    """Grants are a gap-free sequence; the token grows exactly when the holder changes (a release has none)."""
    assert [grant["_id"] for grant in log] == list(range(log[0]["_id"], log[0]["_id"] + len(log)))
    holders_of: dict[int, set[str]] = {}
    for previous, grant in zip([None, *log], log, strict=False):
        if grant["holder"]:
            holders_of.setdefault(grant["token"], set()).add(grant["holder"])
        if previous is None:
            continue
        if grant["holder"] and grant["holder"] != previous["holder"]:
            assert grant["token"] == previous["token"] + 1, (previous, grant)
        else:
            assert grant["token"] == previous["token"], (previous, grant)
    assert all(len(holders) == 1 for holders in holders_of.values()), holders_of


def test_racing_inserts_of_the_next_grant_have_exactly_one_winner(connect):
    """The race a conditional update loses on FerretDB: 20 nodes take the same free slot, 50 times."""
    stores = [LeaseStore(connect(), TTL) for _ in range(20)]
    for store in stores:
        store.latest()  # connected before the race
    winners = []
    for _ in range(50):
        newest = stores[0].latest()
        results = race([lambda store=store, node=f"node-{i}", newest=newest: store.append(node, newest)
                        for i, store in enumerate(stores)])
        won = [grant for grant in results if grant is not None]
        assert len(won) == 1, won
        winners.append(won[0])
    log = grant_log(connect())
    assert [grant["_id"] for grant in log] == list(range(1, 51))
    assert [(grant["_id"], grant["holder"], grant["token"]) for grant in log] == \
        [(grant.seq, grant.holder, grant.token) for grant in winners]
    assert_one_holder_per_token(log)


def test_nodes_stepping_at_the_same_instant_never_both_count_themselves_active(connect):
    """50 rounds of 4 nodes stepping at once: on a released lease, or on one silent for a whole lease
    (there the holder's renewal races the others' takeover). One winner per round, one active node."""
    clock = FakeClock()
    nodes = [Contender(LeaseStore(connect(), TTL), f"node-{i}", TTL, clock) for i in range(4)]
    for node in nodes:
        node.store.latest()
    tenures: dict[int, str] = {}
    tokens = []
    for round_number in range(50):
        holder = next((node for node in nodes if node.held), None)
        if holder is not None and round_number % 2:
            assert holder.release()
        else:
            clock.advance(TTL)  # every node has seen the newest grant a whole lease ago
        assert not any(node.is_active() for node in nodes)
        steps = race([node.step for node in nodes])
        assert sum(step.mine for step in steps) == 1, steps
        active = [node for node in nodes if node.is_active()]
        assert len(active) == 1
        token = next(step.token for step in steps if step.mine)
        assert tenures.setdefault(token, active[0].node) == active[0].node, "two holders of one token"
        tokens.append(token)
        clock.advance(TTL * RENEW_FRACTION)  # the winner is still active: one more step, no change
        assert len({node.node for node in nodes if node.is_active()}) == 1
        race([node.step for node in nodes])
        assert [node.node for node in nodes if node.is_active()] == [active[0].node]
    assert tokens == sorted(tokens) and len(set(tokens)) > 10
    assert_one_holder_per_token(grant_log(connect()))


def test_with_a_real_clock_active_periods_never_overlap(connect):
    """Three nodes on the monotonic clock; the holder goes silent (as if frozen) after a few renewals, so
    the lease changes hands. Whatever the scheduling, no two nodes' active periods overlap."""
    ttl = 1.0
    nodes = [Contender(LeaseStore(connect(), ttl), f"node-{i}", ttl) for i in range(3)]
    periods: list[tuple[str, int, float, float]] = []  # node, token, active from, active until
    done = gevent.event.Event()
    rng = random.Random(7)

    def run(node: Contender) -> None:
        renewals = 0
        while not done.is_set():
            step = node.step()
            if step.mine:
                periods.append((node.node, step.token, time.monotonic(), step.valid_until))
                renewals += 1
                if renewals >= 3:  # frozen: no step for longer than a lease
                    renewals = 0
                    done.wait(ttl * rng.uniform(1.2, 2.0))
                    continue
            done.wait(step.next_step)

    runners = [gevent.spawn(run, node) for node in nodes]
    deadline = time.monotonic() + 120
    while len({token for _, token, _, _ in periods}) < 6 and time.monotonic() < deadline:
        gevent.sleep(0.1)
    done.set()
    gevent.joinall(runners, timeout=30, raise_error=True)
    assert len({token for _, token, _, _ in periods}) >= 6, "the lease did not change hands"
    for (node_a, token_a, start_a, end_a), (node_b, token_b, start_b, end_b) in itertools.combinations(periods, 2):
        if node_a != node_b:
            assert token_a != token_b
            assert end_a <= start_b or end_b <= start_a, ((node_a, token_a, start_a, end_a),
                                                          (node_b, token_b, start_b, end_b))
    assert_one_holder_per_token(grant_log(connect()))


def test_another_node_takes_over_only_after_a_whole_lease_of_silence(connect):
    clock = FakeClock()
    a = Contender(LeaseStore(connect(), TTL), "a", TTL, clock)
    b = Contender(LeaseStore(connect(), TTL), "b", TTL, clock)
    first = a.step()
    assert first.mine and first.token == 1 and a.is_active()
    seen = b.step()
    assert (seen.mine, seen.holder, seen.token) == (False, "a", 1)
    clock.advance(TTL * (1 - SAFETY_MARGIN))
    assert not a.is_active(), "the holder is passive on its own clock before anyone may take over"
    assert not b.step().mine
    clock.advance(TTL * SAFETY_MARGIN - 0.01)
    waiting = b.step()
    assert not waiting.mine and waiting.next_step == pytest.approx(0.01)
    clock.advance(0.01)
    taken = b.step()
    assert taken.mine and taken.token == 2 and b.is_active()
    late = a.step()  # the old holder wakes up: it cannot renew
    assert (late.mine, late.holder, late.token) == (False, "b", 2) and not a.is_active()
    assert b.store.latest() == Grant(2, "b", 2)


def test_a_stale_holder_cannot_renew(connect):
    """Fencing: the holder read its grant, froze, and renews after another node took over: it loses."""
    clock = FakeClock()
    a = Contender(LeaseStore(connect(), TTL), "a", TTL, clock)
    b = Contender(LeaseStore(connect(), TTL), "b", TTL, clock)
    a.step()
    stale = a.store.latest()
    b.step()
    clock.advance(TTL)
    assert b.step().mine
    assert a.store.append("a", stale) is None  # its renewal, computed from what it read before freezing
    assert not a.step().mine and not a.is_active()
    assert [(g["holder"], g["token"]) for g in grant_log(connect())] == [("a", 1), ("b", 2)]


def test_renewals_keep_the_token_and_a_release_hands_over_at_once(connect):
    clock = FakeClock()
    a = Contender(LeaseStore(connect(), TTL), "a", TTL, clock)
    b = Contender(LeaseStore(connect(), TTL), "b", TTL, clock)
    for _ in range(5):
        assert a.step().token == 1
        assert not b.step().mine
        clock.advance(TTL * RENEW_FRACTION)
    assert a.is_active() and a.release() and not a.is_active()
    taken = b.step()  # no wait after a release
    assert taken.mine and taken.token == 2
    assert not a.step().mine
    assert_one_holder_per_token(grant_log(connect()))


def test_the_log_is_pruned_and_a_long_frozen_insert_into_a_pruned_slot_does_not_win(connect):
    clock = FakeClock()
    store = LeaseStore(connect(), TTL, keep=5, prune_every=5)
    a = Contender(store, "a", TTL, clock)
    for _ in range(40):
        assert a.step().mine
        clock.advance(TTL * RENEW_FRACTION)
    log = grant_log(connect())
    assert len(log) <= 5 + 5 + 1 and log[-1]["_id"] == 40
    # A node that read grant 1 long ago (then froze) inserts grant 2: the slot is free again, but not the newest.
    assert LeaseStore(connect(), TTL).append("b", Grant(1, "a", 1)) is None
    assert store.latest() == Grant(40, "a", 1)


def test_a_grant_whose_reply_was_lost_is_still_ours(connect):
    """The driver may retry an insert whose reply was lost: the duplicate is our own grant."""
    store = LeaseStore(connect(), TTL)
    store.collection.insert_one({"_id": 1, "holder": "a", "token": 1})
    assert store.append("a", None) == Grant(1, "a", 1)
    assert store.append("b", None) is None


def test_the_keeper_of_a_frozen_holder_finds_it_lost_and_tells_its_listeners(connect):
    """Actors on the real clock: the holder's keeper stops ticking (frozen); the other takes over; when
    the frozen one ticks again it is passive and says so (its agents are disconnected)."""
    ttl = 1.0
    lost, gained = [], []
    keepers: dict[str, LeaseKeeper] = {}

    def on_gained(name: str) -> None:
        # Runs before the node serves as active.
        gained.append((name, name in keepers and keepers[name].is_active()))

    a = keepers["a"] = LeaseKeeper(lambda: LeaseStore(connect(), ttl), "a", ttl, on_lost=lambda: lost.append("a"),
                                   on_gained=lambda token: on_gained("a"))
    b = keepers["b"] = LeaseKeeper(lambda: LeaseStore(connect(), ttl), "b", ttl, on_lost=lambda: lost.append("b"),
                                   on_gained=lambda token: on_gained("b"))
    try:
        assert a.is_active() and not b.is_active() and gained == [("a", False)]
        a.pause()
        deadline = time.monotonic() + 60
        while not b.is_active() and time.monotonic() < deadline:
            gevent.sleep(0.05)
        assert b.is_active() and not a.is_active()
        assert lost == [] and gained == [("a", False), ("b", False)]
        a.step_now()
        deadline = time.monotonic() + 30  # on_lost runs on the main hub, in a greenlet of its own
        while not lost and time.monotonic() < deadline:
            gevent.sleep(0.05)
        assert lost == ["a"]
        assert (a.role.active, a.role.holder) == (False, "b") and a.role.token == b.role.token == 2
    finally:
        a.stop(release=False)
        b.stop(release=True)


def test_a_node_that_cannot_get_ready_to_write_stays_passive_and_tries_again(connect):
    ttl = 1.0
    attempts = []

    def on_gained(token: int) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("database away")

    keeper = LeaseKeeper(lambda: LeaseStore(connect(), ttl), "a", ttl, on_lost=lambda: None, on_gained=on_gained)
    try:
        assert not keeper.is_active() and keeper.role.holder == "a"
        deadline = time.monotonic() + 60
        while not keeper.is_active() and time.monotonic() < deadline:
            gevent.sleep(0.05)
        assert keeper.is_active() and len(attempts) == 2 and keeper.role.token == 1
    finally:
        keeper.stop()


def test_a_lease_held_by_a_kahuna_from_before_the_grant_log_is_waited_for(connect):
    """Rolling upgrade: the old active still renews its single lease document; the new node waits."""
    database = connect()
    legacy = database.client[database.name][LEGACY_COLLECTION]
    legacy.insert_one({"_id": LEGACY_ID, "holder": "old/1234", "token": 7,
                       "expires_at": utcnow() + datetime.timedelta(minutes=5)})
    node = Contender(LeaseStore(database, TTL), "new", TTL, FakeClock())
    waiting = node.step()
    assert (waiting.mine, waiting.holder) == (False, "old/1234") and not node.is_active()
    legacy.update_one({"_id": LEGACY_ID}, {"$set": {"expires_at": utcnow()}})  # the old active stopped
    assert node.step().mine and node.is_active()
