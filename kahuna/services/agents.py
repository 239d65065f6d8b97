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

After a restart or a failover every agent reconnects at once (up to 10,000 of them within
some 30 s), so both ends of a connection are made to cost the database little:

- **handshakes**: a static-key handshake reads the agent, its key's digest and its token
  by ``_id``, which the document cache serves; :meth:`AgentService.preload_credentials`
  loads all three for every agent in one query per collection as each active term starts
  (see :mod:`kahuna.storage.cache` for why that is safe), so the storm's handshakes need
  no database round trip. A signed handshake finds its token by its agent: through the
  token's ``_id`` as last seen for that agent (the preload records them), so from the cache
  too; it still records its nonce, where both nodes of a pair see it (one insert; old nonces
  are pruned every NONCE_PRUNE_INTERVAL, not at every handshake).
- **post-connection work**: the agent plane hands over the agents that connected and told
  their capabilities in batches (:meth:`AgentService.on_agents_connected`). A batch's
  stored capabilities are read at once, only those that changed are written, and each
  agent type's hook (scan a Kaktus and its pools, resynchronize a Kiwi, reload a
  Kontroller) takes the batch's agents of its type: it finds the objects they serve with
  one query per collection, then works on each, WELCOME_CONCURRENCY at a time.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import logging
import random
import re
import time
import typing
from dataclasses import dataclass

import gevent.event
import gevent.pool
from bson import ObjectId
from pymongo.errors import OperationFailure

from kahuna import credentials
from kahuna.errors import Conflict, NotFound, Unauthorized, Unprocessable
from kahuna.rpc import AGENT_TYPES, KAKTUS, KIWI, KONTROLLER, AgentPlane
from kahuna.services.tokens import AGENT, KEY_REVOKED, TokenService, has_expired
from kahuna.storage import Database, is_transient, models, utcnow
from kahuna.storage.cache import PRELOAD_SHARE

log = logging.getLogger(__name__)

T = typing.TypeVar("T")

TYPE_HEADER = "X-WS-Kowabunga-Agent"
ID_HEADER = "X-WS-Kowabunga-Id"
KEY_HEADER = "X-WS-Kowabunga-Api-Key"
TIMESTAMP_HEADER = "X-WS-Kowabunga-Timestamp"
NONCE_HEADER = "X-WS-Kowabunga-Nonce"
SIGNATURE_HEADER = "X-WS-Kowabunga-Signature"

#: The types the REST API creates (the contract's enum; Kontroller since API 0.58). The Kontrollers Kahuna makes
#: for its Kawaii and Konvey VMs (``made_for`` names the VM) belong to their VM, not to the REST API: hidden.
REST_TYPES = (KAKTUS, KIWI, KONTROLLER)
#: The agents the REST API lists and reads: all but those Kahuna made.
_REST_AGENTS = {"made_for": {"$exists": False}}
TRANSIENT_RETRIES = 5
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
#: Collections whose documents list agents in ``agent_ids``.
AGENT_HOLDERS = ("kaktus", "kiwi", "storage_pool")
#: Seconds between two prunings of the nonces too old to matter. Pruning at every signed handshake would read
#: the whole nonce collection each time: a reconnect storm of signed handshakes would cost quadratic time.
NONCE_PRUNE_INTERVAL = 10.0
#: Seconds a handshake waits for the credentials' preload of a new active term (see expect_preload).
PRELOAD_WAIT = 10.0
#: Objects worked on at once in a batch's post-connection work (each: RPCs to its agents, then its writes);
#: so many the agent plane's welcomes ran at once before it handed them over in batches.
WELCOME_CONCURRENCY = 8


class Headers(typing.Protocol):
    """The handshake's request headers, looked up by name (werkzeug's, or a plain dict in tests)."""

    def get(self, name: str, default: str, /) -> str: ...


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


class ConnectedAgent(typing.Protocol):
    """An agent that connected and told its capabilities (the agent plane's ``AgentInfo``)."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def methods(self) -> typing.Sequence[str]: ...


def run_each_concurrently(items: typing.Iterable[T], work: typing.Callable[[T], None],
                          describe: typing.Callable[[T], str]) -> None:
    """``work(item)`` for every item, WELCOME_CONCURRENCY at a time, until all are done; a failure is logged
    (``describe(item)`` says whose) and stops none of the others."""
    def guarded(item: T) -> None:
        try:
            work(item)
        except Exception:
            log.exception("post-connection work for %s failed", describe(item))

    pool = gevent.pool.Pool(WELCOME_CONCURRENCY)
    try:
        for item in items:
            pool.spawn(guarded, item)  # waits for a free slot
        pool.join()
    finally:
        pool.kill(block=False)  # only if this greenlet was stopped (shutdown): so is the work it started


def _retry_transient(operation: typing.Callable[[], T]) -> T:
    """*operation*, again a few times while the database refuses it for now (contention)."""
    attempt = 1
    while True:
        try:
            return operation()
        except OperationFailure as exc:
            if not is_transient(exc) or attempt == TRANSIENT_RETRIES:
                raise
            time.sleep(0.1 * attempt * (1 + random.random()))
            attempt += 1


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
    def __init__(self, db: Database, tokens: TokenService, agents: AgentPlane, hmac_window: int,
                 require_hmac: bool):
        self.db = db
        self.tokens = tokens
        self.agents = agents
        self.hmac_window = hmac_window
        self.require_hmac = require_hmac
        self._next_nonce_prune = 0.0  # time.monotonic()
        # Agent id -> the _id of its token, as last seen: a signed handshake then reads its token by _id (from the
        # document cache) instead of querying it by its agent. Only a hint: checked against the token read.
        self._token_ids: dict[str, typing.Any] = {}
        # Agent type -> what to do when some of its agents connected (scan their Kaktuses, reload their Kiwis…),
        # each called with their ids; each finds what those agents serve and works on it (run_each_concurrently).
        self.connection_hooks: dict[str, list[typing.Callable[[list[str]], None]]] = {}
        # Cleared while a preload is expected or running; set when one is wanted (see expect_preload).
        self._credentials_ready = gevent.event.Event()
        self._credentials_ready.set()
        self._preload_requested = gevent.event.Event()

    # -- records ---------------------------------------------------------------------

    def list_ids(self) -> list[str]:
        return self.db.agents.ids({"type": {"$in": list(REST_TYPES)}, **_REST_AGENTS})

    def get(self, agent_id: str) -> models.Agent:
        agent = self.db.agents.get(agent_id)
        if agent["type"] not in REST_TYPES or "made_for" in agent:
            # The Kontroller of a Kawaii/Konvey VM belongs to its VM, not to the REST API.
            raise NotFound(f"agent {agent_id} does not exist")
        return agent

    def create(self, name: str, description: str, agent_type: str) -> models.Agent:
        if agent_type not in REST_TYPES:
            raise Unprocessable(f"an agent's type is one of {', '.join(REST_TYPES)}, not {agent_type}")
        return self.db.agents.insert({"name": name, "description": description, "type": agent_type},
                                     conflict=f"an agent named {name} already exists")

    def update(self, agent_id: str, name: str, description: str) -> models.Agent:
        """Rename or describe an agent; its type is set at creation only (API 0.58: ignored on updates)."""
        self.get(agent_id)
        return self.db.agents.update(agent_id, {"name": name, "description": description},
                                     conflict=f"an agent named {name} already exists")

    def delete(self, agent_id: str) -> None:
        agent = self.get(agent_id)
        holders = [c for c in AGENT_HOLDERS if self.db.db[c].find_one({"agent_ids": agent_id}, {"_id": 1})]
        if holders:
            raise Conflict(f"agent {agent['name']} is still attached to a {', '.join(holders)}")
        self.db.agents.delete(agent_id)
        self.tokens.delete_for(AGENT, agent_id)
        self.agents.disconnect(agent_id, "agent deleted", KEY_REVOKED)

    def rotate_key(self, agent_id: str, expire: bool, expiration_date: datetime.date | None) -> models.Token:
        return self.tokens.rotate_agent_key(self.get(agent_id), expire, expiration_date)

    def on_agents_connected(self, agents: typing.Sequence[ConnectedAgent]) -> None:
        """Agents connected and told their capabilities (a batch of them): record the capabilities that
        changed, then run each of a type's hooks once for the batch's agents of that type.

        The batch costs the database a few queries whatever its size (see the module's docstring).
        Writing only on change matters: after a restart or a failover every agent reconnects at once, and
        their capabilities are what they were. A failure is logged and stops none of the rest.
        """
        # An agent that connected twice within the batch is welcomed once, as its latest connection.
        latest = {agent.id: agent for agent in agents}
        try:
            self._record_capabilities(list(latest.values()))
        except Exception:
            log.exception("capabilities of %d connected agents not recorded", len(latest))
        by_type: dict[str, list[str]] = {}
        for agent in latest.values():
            by_type.setdefault(agent.type, []).append(agent.id)
        for agent_type, agent_ids in by_type.items():
            for hook in self.connection_hooks.get(agent_type, ()):
                try:
                    hook(agent_ids)
                except Exception:
                    log.exception("post-connection work of %d %s agents failed", len(agent_ids), agent_type)

    def _record_capabilities(self, agents: list[ConnectedAgent]) -> None:
        """Store each agent's capabilities if they changed: one read for all (served from the cache when their
        handshakes or the preload put them there), then one write by ``_id`` per change. A write the database
        refuses for now (contention) is retried a few times."""
        by_id = {ObjectId(agent.id): agent for agent in agents if ObjectId.is_valid(agent.id)}
        stored = _retry_transient(lambda: self.db.agents.find_by_ids(by_id, {"capabilities": 1}))
        for agent_id, agent in by_id.items():
            capabilities = {"version": agent.version, "methods": list(agent.methods)}
            document = stored.get(agent_id)
            if document is None or document.get("capabilities") == capabilities:
                continue  # deleted since its handshake, or unchanged
            try:
                _retry_transient(functools.partial(self.db.agents.collection.update_one, {"_id": agent_id},
                                                   {"$set": {"capabilities": capabilities}}))
            except Exception:
                log.exception("capabilities of agent %s not recorded", agent.id)

    def expect_preload(self) -> None:
        """An active term starts (the cache just cleared, every agent about to reconnect): have
        :meth:`preload_on_request` run :meth:`preload_credentials`, and until it has, handshakes wait for it (at
        most PRELOAD_WAIT seconds) rather than each reading the database. In a reconnect storm the agents dial
        at once; read one by one they would swamp the database, and the preload with it."""
        self._credentials_ready.clear()
        self._preload_requested.set()

    def preload_on_request(self) -> None:
        """Preload the agents' credentials each time :meth:`expect_preload` asks; runs for ever (the daemon
        spawns it once the cache is attached, since attaching clears the cache)."""
        while True:
            self._preload_requested.wait()
            self._preload_requested.clear()
            try:
                log.info("credentials of %d agents preloaded for their handshakes", self.preload_credentials())
            except Exception:  # noqa: BLE001 - e.g. the database is away: the handshakes read it themselves
                log.exception("agents' credentials not preloaded")

    def preload_credentials(self) -> int:
        """Put every agent's credentials in the document cache (its token, its API key's digest, the agent
        itself), with one query per collection, so that the handshakes of a reconnect storm are answered from
        memory; called as each active term starts, right after the cache was cleared. Returns the number of
        agents whose token was read (at most as many as PRELOAD_SHARE of the cache holds)."""
        try:
            tokens = self.db.tokens.preload({"parent_type": AGENT}, limit=self._preload_capacity())
            digests = {token.get("api_key_sha256") for token in tokens}
            parents = {token.get("parent_id") for token in tokens}
            # The keys and agents are read whole and picked here: FerretDB answers `_id: {$in: <thousands>}`
            # several times slower than a plain scan of the collection.
            self.db.api_keys.preload({}, keep=lambda key: key["_id"] in digests)
            self.db.agents.preload({}, keep=lambda agent: str(agent["_id"]) in parents)
            self._token_ids = {token["parent_id"]: token["_id"] for token in tokens}
            return len(tokens)
        finally:
            self._credentials_ready.set()

    # -- handshakes ---------------------------------------------------------------------

    def authenticate(self, headers: Headers) -> AuthenticatedAgent:
        self._credentials_ready.wait(PRELOAD_WAIT)  # see expect_preload
        agent_type = _required(headers, TYPE_HEADER)
        if agent_type not in AGENT_TYPES:
            raise HandshakeRefused(403, f"unknown agent type {agent_type!r}")
        agent_id = _required(headers, ID_HEADER)
        agent = self.db.agents.find_one({"_id": ObjectId(agent_id)}) if ObjectId.is_valid(agent_id) else None
        if agent is None:
            raise HandshakeRefused(403, f"unknown agent {agent_id!r}")
        if agent["type"] != agent_type:
            raise HandshakeRefused(403, f"agent {agent_id} is a {agent['type']}, not a {agent_type}")
        if headers.get(SIGNATURE_HEADER, ""):
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
            upgraded = self.tokens.upgrade_legacy_key(key, AGENT, agent_id)
            if upgraded is None:
                raise HandshakeRefused(403, exc.reason) from None
            token = upgraded
        if token["parent_id"] != agent_id:
            raise HandshakeRefused(403, "API key of another agent")

    def _token_of(self, agent_id: str) -> models.Token | None:
        """The agent's token: by the _id last seen for it when it is still the agent's (at most one token per
        agent, so it is that one), else by a query on its agent."""
        token_id = self._token_ids.get(agent_id)
        if token_id is not None:
            token = self.db.tokens.find_one({"_id": token_id})
            if token is not None and token["parent_type"] == AGENT and token["parent_id"] == agent_id:
                return token
        token = self.tokens.token_of(AGENT, agent_id)
        if token is None:
            self._token_ids.pop(agent_id, None)
        elif len(self._token_ids) < self._preload_capacity():
            self._token_ids[agent_id] = token["_id"]
        return token

    def _preload_capacity(self) -> int:
        """Agents whose credentials (token, key digest, agent: three documents) a preload may put in the cache."""
        return int(self.db.cache.max_entries * PRELOAD_SHARE) // 3

    def _check_signature(self, headers: Headers, agent_type: str, agent_id: str) -> None:
        stamp = _required(headers, TIMESTAMP_HEADER)
        nonce = _required(headers, NONCE_HEADER)
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > self.hmac_window:
            raise HandshakeRefused(403, "handshake timestamp outside the accepted window")
        if not NONCE.match(nonce):
            raise HandshakeRefused(403, "malformed nonce")
        token = self._token_of(agent_id)
        if token is None or has_expired(token):
            raise HandshakeRefused(403, "agent has no valid API key")
        if token.get("api_key_bcrypt"):
            # Converted from the Go Kahuna: the key's digest is not known until the key is presented once.
            raise HandshakeRefused(403, "the agent must connect once with its API key before signing handshakes")
        expected = handshake_signature(token["api_key_sha256"], agent_type, agent_id, stamp, nonce)
        if not credentials.same_secret(_required(headers, SIGNATURE_HEADER), expected):
            raise HandshakeRefused(403, "bad handshake signature")
        # A nonce is accepted once: the unique _id refuses a replay, on either node of an HA pair.
        try:
            self.db.agent_nonces.insert({"_id": f"{agent_id}:{nonce}"})
        except Conflict:
            raise HandshakeRefused(403, "replayed handshake") from None
        # Nonces older than the window are refused by their timestamp already: keeping them a little longer
        # is harmless, so they are pruned now and then rather than at every handshake.
        now = time.monotonic()
        if now >= self._next_nonce_prune:
            self._next_nonce_prune = now + NONCE_PRUNE_INTERVAL
            cutoff = utcnow() - datetime.timedelta(seconds=2 * self.hmac_window)
            self.db.agent_nonces.delete_many({"created_at": {"$lt": cutoff}})


def _required(headers: Headers, name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise HandshakeRefused(400, f"missing {name} header")
    return value
