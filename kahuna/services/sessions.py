"""Login sessions: JWT bearer tokens that logout, a password change or a deletion really revoke.

Each login stores a session document; the JWT carries its id (``jti``). A token
is accepted only while its session exists, so revocation takes effect on the
next request. Expired sessions are swept at login, since FerretDB has no TTL
indexes.
"""

from __future__ import annotations

import datetime
import secrets
import time
import typing

import jwt

from kahuna.access import AuthMethod, Identity, Role
from kahuna.credentials import PasswordHasher
from kahuna.errors import NotFound, Unauthorized
from kahuna.services.throttling import Guard
from kahuna.storage import Database, models, utcnow

ISSUER = "Kowabunga"
ALGORITHM = "HS256"
#: Bearer tokens whose signature and claims were checked, remembered so that each request need not redo it.
VERIFIED_TOKENS = 4096


class SessionService:
    def __init__(self, db: Database, hasher: PasswordHasher, signing_key: str, lifetime: datetime.timedelta,
                 guard: Guard):
        self.db = db
        self.hasher = hasher
        self.signing_key = signing_key
        self.lifetime = lifetime
        self.guard = guard
        # token -> its claims, once jwt.decode accepted it (a pure function of the token and the key)
        self._verified: dict[str, dict[str, typing.Any]] = {}

    def login(self, email: str, password: str, source: str) -> str:
        """A new JWT for valid credentials; the same 401 whatever was wrong, so nothing is disclosed.

        Failures are counted per account and per client address; past the limits, 429.
        """
        self.guard.reserve(email, source)
        user = self.db.users.find_one({"email": email.strip().lower()})
        valid = self.hasher.verify(password, user.get("password_hash") if user else None)
        if not (user and valid and user.get("enabled")):
            raise Unauthorized("invalid e-mail or password")
        self.guard.succeeded(email, source)
        now = utcnow()
        self.db.sessions.delete_many({"expires_at": {"$lt": now}})
        session = self.db.sessions.insert({"_id": secrets.token_hex(16), "user_id": str(user["_id"]),
                                           "expires_at": now + self.lifetime})
        return self._sign(user, session["_id"], now)

    def _sign(self, user: models.User, session_id: str, now: datetime.datetime) -> str:
        claims = {
            "iss": ISSUER,
            "sub": str(user["_id"]),
            # uid, email and role are read by the Koala web UI.
            "uid": str(user["_id"]),
            "email": user["email"],
            "role": user["role"],
            "jti": session_id,
            "iat": int(now.timestamp()),
            "exp": int((now + self.lifetime).timestamp()),
        }
        return jwt.encode(claims, self.signing_key, algorithm=ALGORITHM)

    def identify(self, token: str) -> Identity:
        try:
            claims = self._claims(token)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("bearer token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid bearer token") from None
        session = self.db.sessions.find_one({"_id": claims["jti"]})
        if session is None or session["user_id"] != claims["sub"] or session["expires_at"] < utcnow():
            raise Unauthorized("session has ended, log in again")
        # The role comes from the user as stored now, never from the token's claims.
        user = self._user(claims["sub"])
        return Identity(AuthMethod.BEARER, Role(user["role"]), str(user["_id"]), session_id=claims["jti"])

    def _claims(self, token: str) -> dict[str, typing.Any]:
        """The token's claims, checked as jwt.decode does; a token seen before only has its expiry checked again
        (verifying the HMAC and parsing the token was most of the cost of a bearer-authenticated request)."""
        claims = self._verified.get(token)
        if claims is None:
            claims = jwt.decode(token, self.signing_key, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "jti", "iss"]})
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.pop(next(iter(self._verified)), None)
            self._verified[token] = claims
        elif claims["exp"] <= time.time():  # as jwt.decode: expired at exp (no leeway)
            raise jwt.ExpiredSignatureError("Signature has expired")
        return claims

    def _user(self, user_id: str) -> models.User:
        try:
            user = self.db.users.get(user_id)
        except NotFound:
            raise Unauthorized("session has ended, log in again") from None
        if not user.get("enabled"):
            raise Unauthorized("account is disabled")
        return user

    def logout(self, identity: Identity) -> None:
        if identity.session_id:
            self.db.sessions.delete_many({"_id": identity.session_id})

    def revoke_all(self, user_id: str) -> None:
        self.db.sessions.delete_many({"user_id": user_id})
