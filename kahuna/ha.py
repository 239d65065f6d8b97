"""The active-passive pair: one lease in the database says which Kahuna node is active.

The lease is one document (``lease/_id="active"``) holding the node that owns it, an
expiry, and a fencing token that grows by one at every change of owner. A node
takes the lease when it has expired (or was its own), and keeps it by renewing it
well before expiry; each step is a single conditional ``find_one_and_update``, the
only atomicity FerretDB v1 offers and all this needs.

A node considers itself active only while its *local* view of the lease is valid:
renewed less than ``ttl - margin`` seconds ago on the monotonic clock. So a node
that was frozen (SIGSTOP, a long GC, a lost network) comes back already passive,
before it could renew: it cannot write, and its renewal fails because the lease now
carries another owner and a higher token.
"""

from __future__ import annotations

import datetime
import socket
import typing
import uuid
from dataclasses import dataclass

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from kahuna.storage import Database, utcnow

LEASE_ID = "active"


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
    def __init__(self, db: Database, ttl_seconds: float):
        self.collection = db.db["lease"]
        self.ttl = datetime.timedelta(seconds=ttl_seconds)

    def try_acquire(self, node: str) -> LeaseView:
        """Take or renew the lease for *node* if it is free, expired or already *node*'s."""
        now = utcnow()
        current = self.collection.find_one({"_id": LEASE_ID})
        if current is None:
            try:
                self.collection.insert_one({"_id": LEASE_ID, "holder": node, "token": 1, "expires_at": now + self.ttl,
                                            "acquired_at": now})
                return LeaseView(node, 1, True)
            except (DuplicateKeyError, OperationFailure):
                current = self.collection.find_one({"_id": LEASE_ID}) or {}
        if current.get("holder") == node:
            update: dict[str, typing.Any] = {"$set": {"expires_at": now + self.ttl}}
            query = {"_id": LEASE_ID, "holder": node, "token": current["token"]}
        else:
            # Conditional on the token read: two nodes taking an expired lease at once cannot both win.
            update = {"$set": {"holder": node, "expires_at": now + self.ttl, "acquired_at": now},
                      "$inc": {"token": 1}}
            query = {"_id": LEASE_ID, "token": current.get("token", 0), "expires_at": {"$lt": now}}
        taken = self.collection.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        if taken is not None:
            return LeaseView(node, taken["token"], True)
        latest = self.collection.find_one({"_id": LEASE_ID}) or {}
        return LeaseView(latest.get("holder", ""), latest.get("token", 0), False)

    def release(self, node: str) -> None:
        """Give the lease up at once (a clean shutdown), so the other node need not wait for expiry."""
        self.collection.update_one({"_id": LEASE_ID, "holder": node}, {"$set": {"expires_at": utcnow()}})

    def holder(self) -> LeaseView:
        current = self.collection.find_one({"_id": LEASE_ID}) or {}
        return LeaseView(current.get("holder", ""), current.get("token", 0), False)
