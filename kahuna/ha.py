"""The active-passive pair: a lease in the database says which Kahuna node is active.

Why not one lease document taken with a conditional update
----------------------------------------------------------
The obvious lease, one document taken with ``find_one_and_update({holder/expiry as
read}, {$set: {holder: me}})``, is unsafe on FerretDB v1 (SQLite backend): its
conditional updates are not atomic (twenty nodes racing on one document produce
several winners). What *is* atomic there, as on MongoDB, is an insert into a unique
``_id``: exactly one of the racing inserts succeeds, the others get a duplicate-key
error. The lease is built on that alone.

The grant log
-------------
The lease is a log of grants, the ``lease_grants`` collection, ``_id`` = 1, 2, 3...
The newest grant says who holds the lease. Every step, taking over, renewing or
releasing, is the insert of the *next* grant, ``_id = newest + 1``, so every step
competes for the same slot with every other step that read the same newest grant:
one wins. In particular a renewal and a takeover racing each other cannot both
succeed (with one document per owner, renewed in place, a late renewal could land
after another node's takeover had read the lease expired: two actives).

A grant is ``{_id, holder, token, granted_at, expires_at}``. ``token`` is the
fencing token: the token of the previous grant when the holder is the same, that
plus one when the holder changes. So it grows strictly at each change of owner, and
a token belongs to exactly one holder (the grants are one linear sequence). A clean
stop appends a release grant (holder ``""``), which anyone may follow at once.
After inserting, a node reads the newest grant again and counts the slot as won
only if it is still the newest (old grants are pruned, and a node frozen for a long
time between its read and its insert could otherwise fill a pruned slot).

Time: nobody compares clocks
----------------------------
``granted_at``/``expires_at`` are written for people reading the database; no
decision uses them, so the nodes' wall clocks need not agree. Each node uses its own
monotonic clock:

* the holder counts itself active until ``start + ttl * (1 - SAFETY_MARGIN)``,
  *start* being taken before it read the log for the grant it then won;
* another node takes over only when the same grant has stayed the newest for a full
  ``ttl`` since it first saw it, *seen* being taken after the read that showed it.

The grant existed when it was seen, so it was inserted after the holder's *start*:
the takeover comes at least ``ttl`` after *start*, i.e. at least
``ttl * SAFETY_MARGIN`` after the holder stopped counting itself active. That gap
absorbs clock-rate differences (parts per million) and is the time a write admitted
just before the end of the active period has to land before another node can be
active. A node frozen (SIGSTOP, a long pause) wakes up already passive on its own
clock, and its next insert loses to the grant the other node appended meanwhile.

Upgrading from the single-document lease
----------------------------------------
Kahuna before the grant log kept the lease in ``lease/_id="active"``. While the log is
empty, a node does not take the lease if that document names a holder whose expiry
has not passed: in a rolling upgrade (old passive replaced by a new node, then the
old active stopped) the new node waits for the old active. Do not run old and new
versions side by side otherwise: the old ones do not read the log.

Timing (``ttl`` is ``global.ha.leaseSeconds``, 10 s by default)
-------------------------------------------------------------
* the holder renews every ``ttl / 3`` (3.3 s);
* it stays active ``ttl * 0.75`` (7.5 s) after the start of each renewal, so
  renewals may come up to ``ttl * (0.75 - 1/3)`` (4.2 s) late, a starved process or
  a slow database, before the node drops to passive (it comes back, same token, with
  its next renewal if nobody took over);
* a dead active is replaced ``ttl`` to ``ttl * 4/3`` (10 to 13.3 s) after its last
  renewal; a clean stop hands over within ``ttl / 3``.
"""

from __future__ import annotations

import datetime
import socket
import time
import typing
import uuid
from dataclasses import dataclass

import pymongo
from pymongo.errors import DuplicateKeyError

from kahuna.storage import Database, utcnow

COLLECTION = "lease_grants"
#: The single lease document of Kahuna before the grant log (honoured while the log is empty).
LEGACY_COLLECTION, LEGACY_ID = "lease", "active"

#: Share of the lease at its end during which the holder no longer counts itself active.
SAFETY_MARGIN = 0.25
#: The holder renews every RENEW_FRACTION of the lease.
RENEW_FRACTION = 1 / 3


@dataclass(frozen=True)
class Grant:
    """One entry of the lease log: *holder* ("" for a release) holds the lease under *token*."""

    seq: int
    holder: str
    token: int

    @classmethod
    def of(cls, document: typing.Mapping[str, typing.Any]) -> Grant:
        return cls(int(document["_id"]), document.get("holder", ""), int(document.get("token", 0)))


@dataclass(frozen=True)
class LeaseView:
    """What a node knows of the lease after its last attempt."""

    holder: str
    token: int
    mine: bool


def node_identity(name: str = "") -> str:
    """This process's name in the lease: the configured node name (or host name) plus a unique suffix."""
    return f"{name or socket.gethostname()}/{uuid.uuid4().hex[:8]}"


class LeaseStore:
    """The grant log in the database; every change is one insert into the next ``_id``."""

    def __init__(self, db: Database, ttl_seconds: float, keep: int = 100, prune_every: int = 50):
        # Straight from the client: the lease is never served from the document cache.
        self.collection = db.client[db.name][COLLECTION]
        self.legacy = db.client[db.name][LEGACY_COLLECTION]
        self.ttl = datetime.timedelta(seconds=ttl_seconds)
        self.keep, self.prune_every = keep, prune_every

    def close(self) -> None:
        """Close the database client the store was opened on."""
        self.collection.database.client.close()

    def latest(self) -> Grant | None:
        document = self.collection.find_one({}, sort=[("_id", pymongo.DESCENDING)])
        return Grant.of(document) if document else None

    def append(self, holder: str, after: Grant | None) -> Grant | None:
        """Insert the grant that follows *after* (None: the first); the new grant if this call won its slot."""
        seq = after.seq + 1 if after else 1
        if after is None:
            token = 1
        elif holder == after.holder or not holder:  # a renewal, or a release: same owner's tenure
            token = after.token
        else:
            token = after.token + 1
        grant = Grant(seq, holder, token)
        now = utcnow()
        try:
            self.collection.insert_one({"_id": seq, "holder": holder, "token": token, "granted_at": now,
                                        "expires_at": now + self.ttl if holder else now})
        except DuplicateKeyError:
            # Someone else's insert won, unless this is ours, retried by the driver after a lost reply.
            existing = self.collection.find_one({"_id": seq})
            if existing is None or Grant.of(existing) != grant:
                return None
        newest = self.latest()
        if newest != grant:  # a slot freed by pruning, filled by a node whose read was long out of date
            return None
        if holder and seq % self.prune_every == 0:
            self.collection.delete_many({"_id": {"$lt": seq - self.keep}})
        return grant

    def legacy_holder(self) -> str:
        """The holder of a lease taken by a Kahuna from before the grant log and not expired yet, or ""."""
        document = self.legacy.find_one({"_id": LEGACY_ID}) or {}
        expires_at = document.get("expires_at")
        return document.get("holder", "") if expires_at is not None and expires_at > utcnow() else ""

    def release(self, node: str, held: Grant) -> bool:
        """Give the lease up at once (a clean shutdown): append a release, if *held* is still the newest grant."""
        return self.append("", held) is not None

    def holder(self) -> LeaseView:
        latest = self.latest()
        return LeaseView(latest.holder, latest.token, False) if latest else LeaseView("", 0, False)


@dataclass(frozen=True)
class Step:
    """The outcome of :meth:`Contender.step`."""

    mine: bool
    holder: str
    token: int
    valid_until: float  # on the contender's clock; 0 when not mine
    next_step: float  # seconds until the next step is due
    lapsed_for: float = 0.0  # the holder was passive this long before renewing (a late renewal)


class Contender:
    """One node's side of the lease: takes, renews and releases it, and remembers what it saw.

    Not thread-safe: one caller at a time (the lease keeper actor). *clock* is a monotonic clock.
    """

    def __init__(self, store: LeaseStore, node: str, ttl: float,
                 clock: typing.Callable[[], float] = time.monotonic):
        self.store, self.node, self.ttl, self.clock = store, node, ttl, clock
        self.held: Grant | None = None  # the newest grant this node won
        self.valid_until = 0.0
        self.seen: Grant | None = None  # the newest grant of another node, and since when it is the newest
        self.seen_since = 0.0

    def is_active(self) -> bool:
        return self.held is not None and self.clock() < self.valid_until

    def step(self) -> Step:
        """Renew the lease if this node holds it; take it if free or silent for ``ttl``; else note who holds it."""
        started = self.clock()
        was_valid_until = self.valid_until if self.held else None
        latest = self.store.latest()
        seen_at = self.clock()
        if latest is None and (legacy := self.store.legacy_holder()):
            return Step(False, legacy, 0, 0.0, self.ttl * RENEW_FRACTION)
        if latest is not None and latest.holder and latest.holder != self.node:
            self.held = None
            if self.seen != latest:
                self.seen, self.seen_since = latest, seen_at
            wait = self.seen_since + self.ttl - seen_at
            if wait > 0:
                return self._passive(latest, min(wait, self.ttl * RENEW_FRACTION))
        won = self.store.append(self.node, latest)
        if won is None:
            self.held = None
            newest = self.store.latest()
            if newest is not None and newest != self.seen:
                self.seen, self.seen_since = newest, self.clock()
            return self._passive(newest, self.ttl * RENEW_FRACTION)
        self.held, self.seen = won, None
        self.valid_until = started + self.ttl * (1 - SAFETY_MARGIN)
        lapsed = max(0.0, started - was_valid_until) if was_valid_until is not None else 0.0
        return Step(True, self.node, won.token, self.valid_until,
                    max(0.0, started + self.ttl * RENEW_FRACTION - self.clock()), lapsed)

    def _passive(self, latest: Grant | None, next_step: float) -> Step:
        return Step(False, latest.holder if latest else "", latest.token if latest else 0, 0.0, max(0.0, next_step))

    def release(self) -> bool:
        """Hand the lease over now (clean shutdown); this node is passive afterwards."""
        held, self.held, self.valid_until = self.held, None, 0.0
        return held is not None and self.store.release(self.node, held)

    def abandon(self) -> None:
        """Stop counting as active without telling anyone: the lease runs out (as if the process died)."""
        self.held, self.valid_until = None, 0.0
