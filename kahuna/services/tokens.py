"""API tokens of users and agents: server-generated keys, stored as digests, with expiry.

A key is 64 random characters; only its SHA-256 digest is stored, under a
unique index, so finding the token of a presented key is one indexed lookup
(the Go Kahuna bcrypt-checked every stored token). Each user or agent has at
most one token; rotating it replaces the digest, so the old key stops working
at once. The key itself is shown once: in the e-mail that announces it.

Tokens converted from a Go Kahuna database (``kahuna migrate``) hold the Go bcrypt hash
(``api_key_bcrypt``) and a placeholder that no key's digest equals. An agent's handshake
names the agent, hence its one token: its key is checked against that hash once (off the
gevent hub), then stored as its digest like any other (:meth:`TokenService.upgrade_legacy_key`).
A user's key names nothing, so a user's converted key must be re-issued.
"""

from __future__ import annotations

import datetime
import typing

import bcrypt

from kahuna import credentials
from kahuna.errors import Unauthorized, Unprocessable
from kahuna.mail import Letter, Mailer
from kahuna.rpc import AgentPlane
from kahuna.services._common import Owners
from kahuna.storage import Database, models, object_id
from kahuna.watchdog import off_hub

USER = "user"
AGENT = "agent"
#: WebSocket close code sent to an agent whose key was rotated or revoked.
KEY_REVOKED = 4001


def has_expired(token: models.Token, today: datetime.date | None = None) -> bool:
    """A token that expires is valid through the whole of its expiration date (UTC)."""
    if not token.get("expire"):
        return False
    date = token.get("expiration_date")
    if not date:
        return True
    today = today or datetime.datetime.now(datetime.UTC).date()
    return datetime.date.fromisoformat(date) < today


def _expiry(expire: bool, expiration_date: datetime.date | None) -> dict[str, typing.Any]:
    if not expire:
        return {"expire": False, "expiration_date": None}
    if expiration_date is None:
        raise Unprocessable("expiration_date is required when expire is true")
    if expiration_date < datetime.datetime.now(datetime.UTC).date():
        raise Unprocessable(f"expiration_date {expiration_date.isoformat()} is in the past")
    return {"expire": True, "expiration_date": expiration_date.isoformat()}


class TokenService:
    def __init__(self, db: Database, mailer: Mailer, serializer: Owners, admin_email: str,
                 agents: AgentPlane):
        self.db = db
        self.mailer = mailer
        self.serializer = serializer
        self.admin_email = admin_email
        # An agent whose key stops working (rotated or deleted) is disconnected at once.
        self.agents = agents

    # -- administration (/token routes) ---------------------------------------

    def list_ids(self) -> list[str]:
        return self.db.tokens.ids()

    def get(self, token_id: str) -> models.Token:
        return self.db.tokens.get(token_id)

    def update(self, token_id: str, name: str, description: str, expire: bool,
               expiration_date: datetime.date | None) -> models.Token:
        """Rename, describe, or change the expiry; the expiry is checked only when it changes, so an expired token
        can still be renamed (and stays expired)."""
        current = self.db.tokens.get(token_id)
        fields: dict[str, typing.Any] = {"name": name, "description": description}
        stored = (bool(current.get("expire")), current.get("expiration_date") if current.get("expire") else None)
        given = (expire, expiration_date.isoformat() if expire and expiration_date is not None else None)
        if given != stored:
            fields.update(_expiry(expire, expiration_date))
        return self.db.tokens.update(token_id, fields)

    def delete(self, token_id: str) -> None:
        token = self.db.tokens.get(token_id)
        self.db.tokens.delete(token_id)
        self.db.api_keys.delete_many({"_id": token.get("api_key_sha256")})
        if token["parent_type"] == AGENT:
            self.agents.disconnect(token["parent_id"], "API key revoked", KEY_REVOKED)

    def delete_for(self, parent_type: str, parent_id: str) -> None:
        token = self.token_of(parent_type, parent_id)
        if token is not None:
            self.db.tokens.delete_many({"_id": token["_id"]})
            self.db.api_keys.delete_many({"_id": token.get("api_key_sha256")})

    def token_of(self, parent_type: str, parent_id: str) -> models.Token | None:
        return self.db.tokens.find_one({"parent_type": parent_type, "parent_id": parent_id})

    # -- issuing keys ------------------------------------------------------------

    def rotate_user_key(self, user: models.User, expire: bool, expiration_date: datetime.date | None) -> models.Token:
        def letter(key: str) -> Letter:  # the key exists only inside rotate()
            return Letter(
                to=user["email"],
                subject="A new Kowabunga API key has been set !",
                intro="Here's your new API key. Keep it safe: it is shown only in this e-mail.",
                facts=(("User", user["name"]), ("API key", key)),
                outro="This email is a one-timer. The previous key, if any, no longer works.",
            )
        return self._rotate(USER, str(user["_id"]), f"{user['name']}-api-key", expire, expiration_date,
                            lambda key: self.mailer.send(letter(key)))

    def rotate_agent_key(self, agent: models.Agent, expire: bool,
                         expiration_date: datetime.date | None) -> models.Token:
        def letter(key: str) -> Letter:
            return Letter(
                to=self.admin_email,
                subject="A new Kowabunga agent API key has been set !",
                intro="Here's the new API key of a Kowabunga agent. Keep it safe: it is shown only in this e-mail.",
                facts=(("Agent type", agent["type"]), ("Agent name", agent["name"]), ("Agent ID", str(agent["_id"])),
                       ("API key", key)),
                outro="This email is a one-timer. The previous key, if any, no longer works.",
            )
        token = self._rotate(AGENT, str(agent["_id"]), f"{agent['name']}-api-key", expire, expiration_date,
                             lambda key: self.mailer.send(letter(key)))
        self.agents.disconnect(str(agent["_id"]), "API key rotated", KEY_REVOKED)
        return token

    def issue_instance_agent_key(self, agent: models.Agent) -> str:
        """A new key for the Kontroller agent inside an instance, returned for the instance's cloud-init seed only."""
        issued: list[str] = []
        self._rotate(AGENT, str(agent["_id"]), f"{agent['name']}-api-key", False, None, issued.append)
        self.agents.disconnect(str(agent["_id"]), "API key rotated", KEY_REVOKED)
        return issued[0]

    def _rotate(self, parent_type: str, parent_id: str, name: str, expire: bool,
                expiration_date: datetime.date | None, deliver: typing.Callable[[str], None]) -> models.Token:
        expiry = _expiry(expire, expiration_date)

        def rotate() -> models.Token:
            key = credentials.generate_api_key()
            # Deliver first: if the mail relay is down the old key keeps working and nothing is lost.
            deliver(key)
            digest = credentials.digest(key)
            token = self.token_of(parent_type, parent_id)
            if token is None:
                token = self.db.tokens.insert({"name": name, "description": "", "parent_type": parent_type,
                                               "parent_id": parent_id, "api_key_sha256": digest, **expiry})
            else:
                previous = token.get("api_key_sha256")
                token = self.db.tokens.update(token["_id"], {"api_key_sha256": digest, **expiry},
                                              extra={"$unset": {"api_key_bcrypt": ""}})
                self.db.api_keys.delete_many({"_id": previous})
            self.db.api_keys.insert({"_id": digest, "token_id": str(token["_id"])})
            return token

        return self.serializer.run(f"token:{parent_type}:{parent_id}", rotate)

    # -- checking keys -------------------------------------------------------------

    def find_by_key(self, key: str, parent_type: str) -> models.Token:
        """The token of a presented key, or :class:`Unauthorized`.

        Two lookups by ``_id`` (the key's digest, then its token): the only lookups every
        MongoDB-wire server indexes, FerretDB's SQLite backend included. The token must
        still hold that digest, so a key left behind by an interrupted rotation is void.
        """
        digest = credentials.digest(key)
        entry = self.db.api_keys.find_one({"_id": digest})
        token = self.db.tokens.find_one({"_id": object_id(entry["token_id"], "token")}) if entry else None
        if token is None or token.get("api_key_sha256") != digest or token["parent_type"] != parent_type:
            raise Unauthorized("invalid API key")
        if has_expired(token):
            raise Unauthorized("API key has expired")
        return token

    def upgrade_legacy_key(self, key: str, parent_type: str, parent_id: str) -> models.Token | None:
        """The token of *parent_id* if it still holds a Go Kahuna bcrypt hash that *key* matches, now holding the
        key's digest instead (None otherwise). The bcrypt check runs off the gevent hub, and only until the right
        key has been presented once: from then on the key is found by its digest."""
        token = self.token_of(parent_type, parent_id)
        hashed = token.get("api_key_bcrypt") if token is not None else None
        if token is None or not hashed or has_expired(token) or len(key.encode()) > credentials.BCRYPT_MAX_BYTES:
            return None
        try:
            if not off_hub(bcrypt.checkpw, key.encode(), hashed.encode()):
                return None
        except ValueError:  # not a bcrypt hash
            return None
        digest = credentials.digest(key)

        def upgrade() -> models.Token | None:
            current = self.token_of(parent_type, parent_id)
            if current is None or current.get("api_key_sha256") == digest:
                return current  # a handshake in parallel upgraded it first
            if current.get("api_key_bcrypt") != hashed:
                return None  # rotated meanwhile: the old key is void
            if self.db.api_keys.find_one({"_id": digest}) is None:
                self.db.api_keys.insert({"_id": digest, "token_id": str(current["_id"])})
            return self.db.tokens.update(current["_id"], {"api_key_sha256": digest},
                                         extra={"$unset": {"api_key_bcrypt": ""}})

        return self.serializer.run(f"token:{parent_type}:{parent_id}", upgrade)
