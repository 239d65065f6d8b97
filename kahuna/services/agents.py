"""Agents: their records, their keys, and the authentication of their WebSocket handshakes.

Two handshakes are accepted on ``GET /ws``:

- **static key** (what the Go agents send): ``X-WS-Kowabunga-Agent`` (type),
  ``X-WS-Kowabunga-Id`` and ``X-WS-Kowabunga-Api-Key``. Whoever sees the key can
  replay it; only TLS protects it.
- **signed** (replay-proof): the type and id headers, plus
  ``X-WS-Kowabunga-Timestamp`` (Unix seconds), ``X-WS-Kowabunga-Nonce`` (16 to 64
  characters from [A-Za-z0-9_-]) and ``X-WS-Kowabunga-Signature``, the hex
  HMAC-SHA256 of ``"<type>\\n<id>\\n<timestamp>\\n<nonce>"`` keyed with the hex
  SHA-256 digest of the API key. The key itself never travels; a timestamp
  outside the window or a nonce seen before is refused. ``requireHmac`` refuses
  the static-key handshake altogether.

Failures are answered before the upgrade: 400 for a missing header, 403 for
anything else, with the reason logged but not told.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import logging
import random
import re
import time
import typing
from dataclasses import dataclass

from bson import ObjectId
from pymongo.errors import OperationFailure

from kahuna import credentials
from kahuna.errors import Conflict, NotFound, Unauthorized, Unprocessable
from kahuna.rpc import AGENT_TYPES, KAKTUS, KIWI, AgentGateway
from kahuna.services.tokens import AGENT, KEY_REVOKED, TokenService, has_expired
from kahuna.storage import Database, Document, is_transient, utcnow

log = logging.getLogger(__name__)

TYPE_HEADER = "X-WS-Kowabunga-Agent"
ID_HEADER = "X-WS-Kowabunga-Id"
KEY_HEADER = "X-WS-Kowabunga-Api-Key"
TIMESTAMP_HEADER = "X-WS-Kowabunga-Timestamp"
NONCE_HEADER = "X-WS-Kowabunga-Nonce"
SIGNATURE_HEADER = "X-WS-Kowabunga-Signature"

#: The types the REST API manages (the contract's enum); Kontroller agents are made by Kahuna.
REST_TYPES = (KAKTUS, KIWI)
TRANSIENT_RETRIES = 5
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
#: Collections whose documents list agents in ``agent_ids``.
AGENT_HOLDERS = ("kaktus", "kiwi", "storage_pool")


class HandshakeRefused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class AuthenticatedAgent:
    id: str
    type: str
    name: str


def handshake_signature(key_digest: str, agent_type: str, agent_id: str, timestamp: str, nonce: str) -> str:
    message = f"{agent_type}\n{agent_id}\n{timestamp}\n{nonce}".encode()
    return hmac.new(key_digest.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(api_key: str, agent_type: str, agent_id: str, nonce: str,
                   timestamp: int | None = None) -> dict[str, str]:
    """The headers of a signed handshake (what an agent sends; used by the simulator)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {TYPE_HEADER: agent_type, ID_HEADER: agent_id, TIMESTAMP_HEADER: stamp, NONCE_HEADER: nonce,
            SIGNATURE_HEADER: handshake_signature(credentials.digest(api_key), agent_type, agent_id, stamp, nonce)}


class AgentService:
    def __init__(self, db: Database, tokens: TokenService, gateway: AgentGateway, hmac_window: int,
                 require_hmac: bool):
        self.db = db
        self.tokens = tokens
        self.gateway = gateway
        self.hmac_window = hmac_window
        self.require_hmac = require_hmac
        # Agent type -> what to do when one of its agents connects (scan a Kaktus, reload a Kiwi…).
        self.connection_hooks: dict[str, typing.Callable[[str], None]] = {}

    # -- records ---------------------------------------------------------------------

    def list_ids(self) -> list[str]:
        return self.db.agents.ids({"type": {"$in": list(REST_TYPES)}})

    def get(self, agent_id: str) -> Document:
        agent = self.db.agents.get(agent_id)
        if agent["type"] not in REST_TYPES:
            # Kontroller agents belong to their Kawaii/Konvey instance, not to the REST API.
            raise NotFound(f"agent {agent_id} does not exist")
        return agent

    def create(self, name: str, description: str, agent_type: str) -> Document:
        return self.db.agents.insert({"name": name, "description": description, "type": agent_type},
                                     conflict=f"an agent named {name} already exists")

    def update(self, agent_id: str, name: str, description: str, agent_type: str) -> Document:
        agent = self.get(agent_id)
        if agent_type != agent["type"]:
            raise Unprocessable("an agent's type cannot be changed")
        return self.db.agents.update(agent_id, {"name": name, "description": description},
                                     conflict=f"an agent named {name} already exists")

    def delete(self, agent_id: str) -> None:
        agent = self.get(agent_id)
        holders = [c for c in AGENT_HOLDERS if self.db.db[c].find_one({"agent_ids": agent_id}, {"_id": 1})]
        if holders:
            raise Conflict(f"agent {agent['name']} is still attached to a {', '.join(holders)}")
        self.db.agents.delete(agent_id)
        self.tokens.delete_for(AGENT, agent_id)
        self.gateway.disconnect(agent_id, "agent deleted", KEY_REVOKED)

    def rotate_key(self, agent_id: str, expire: bool, expiration_date: datetime.date | None) -> Document:
        return self.tokens.rotate_agent_key(self.get(agent_id), expire, expiration_date)

    def on_connected(self, agent_id: str, agent_type: str, version: str, methods: typing.Sequence[str]) -> None:
        """An agent connected and told its capabilities: record them if they changed, then run its type's hook.

        Writing only on change matters: after a restart or a failover every agent reconnects at
        once, and their capabilities are what they were. A write the database refuses for now
        (contention) is retried a few times before the connection's work is given up.
        """
        capabilities = {"version": version, "methods": list(methods)}
        for attempt in range(1, TRANSIENT_RETRIES + 1):
            try:
                self.db.agents.collection.update_one(
                    {"_id": ObjectId(agent_id), "capabilities": {"$ne": capabilities}},
                    {"$set": {"capabilities": capabilities}})
                break
            except OperationFailure as exc:
                if not is_transient(exc) or attempt == TRANSIENT_RETRIES:
                    raise
                time.sleep(0.1 * attempt * (1 + random.random()))
        hook = self.connection_hooks.get(agent_type)
        if hook is not None:
            hook(agent_id)

    # -- handshakes ---------------------------------------------------------------------

    def authenticate(self, headers: typing.Mapping[str, str]) -> AuthenticatedAgent:
        agent_type = _required(headers, TYPE_HEADER)
        if agent_type not in AGENT_TYPES:
            raise HandshakeRefused(403, f"unknown agent type {agent_type!r}")
        agent_id = _required(headers, ID_HEADER)
        agent = self.db.agents.find_one({"_id": ObjectId(agent_id)}) if ObjectId.is_valid(agent_id) else None
        if agent is None:
            raise HandshakeRefused(403, f"unknown agent {agent_id!r}")
        if agent["type"] != agent_type:
            raise HandshakeRefused(403, f"agent {agent_id} is a {agent['type']}, not a {agent_type}")
        if headers.get(SIGNATURE_HEADER):
            self._check_signature(headers, agent_type, agent_id)
        elif self.require_hmac:
            raise HandshakeRefused(403, "this Kahuna accepts signed handshakes only")
        else:
            self._check_key(_required(headers, KEY_HEADER), agent_id)
        return AuthenticatedAgent(agent_id, agent_type, agent["name"])

    def _check_key(self, key: str, agent_id: str) -> None:
        try:
            token = self.tokens.find_by_key(key, AGENT)
        except Unauthorized as exc:
            # A key the Go Kahuna issued (its token converted by `kahuna migrate`): checked once, then upgraded.
            token = self.tokens.upgrade_legacy_key(key, AGENT, agent_id)
            if token is None:
                raise HandshakeRefused(403, exc.reason) from None
        if token["parent_id"] != agent_id:
            raise HandshakeRefused(403, "API key of another agent")

    def _check_signature(self, headers: typing.Mapping[str, str], agent_type: str, agent_id: str) -> None:
        stamp = _required(headers, TIMESTAMP_HEADER)
        nonce = _required(headers, NONCE_HEADER)
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > self.hmac_window:
            raise HandshakeRefused(403, "handshake timestamp outside the accepted window")
        if not NONCE.match(nonce):
            raise HandshakeRefused(403, "malformed nonce")
        token = self.tokens.token_of(AGENT, agent_id)
        if token is None or has_expired(token):
            raise HandshakeRefused(403, "agent has no valid API key")
        if token.get("api_key_bcrypt"):
            # Converted from the Go Kahuna: the key's digest is not known until the key is presented once.
            raise HandshakeRefused(403, "the agent must connect once with its API key before signing handshakes")
        expected = handshake_signature(token["api_key_sha256"], agent_type, agent_id, stamp, nonce)
        if not credentials.same_secret(headers[SIGNATURE_HEADER], expected):
            raise HandshakeRefused(403, "bad handshake signature")
        # A nonce is accepted once: the unique _id refuses a replay, on either node of an HA pair.
        try:
            self.db.agent_nonces.insert({"_id": f"{agent_id}:{nonce}"})
        except Conflict:
            raise HandshakeRefused(403, "replayed handshake") from None
        cutoff = utcnow() - datetime.timedelta(seconds=2 * self.hmac_window)
        self.db.agent_nonces.delete_many({"created_at": {"$lt": cutoff}})


def _required(headers: typing.Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise HandshakeRefused(400, f"missing {name} header")
    return value
