"""Authentication (who is calling) and authorization (may they call this operation on this object)."""

from __future__ import annotations

import typing

from kahuna import access, storage
from kahuna.access import AuthMethod, Identity, Role
from kahuna.credentials import same_secret
from kahuna.errors import Forbidden, NotFound, Unauthorized
from kahuna.services.projects import ProjectService
from kahuna.services.sessions import SessionService
from kahuna.services.tokens import USER, TokenService
from kahuna.storage import Database

#: Where the objects of an :class:`access.OwnedObject` rule are stored.
OWNED_KIND_COLLECTIONS = {
    "instance": "instance", "volume": "volume", "kompute": "kompute", "kylo": "kylo", "kawaii": "kawaii",
    "konvey": "konvey", "record": "dns_record", "kwarantine": "kwarantine",
}


class AccessControl:
    def __init__(self, db: Database, master_key: str, tokens: TokenService, sessions: SessionService,
                 projects: ProjectService):
        self.db = db
        self.master_key = master_key
        self.tokens = tokens
        self.sessions = sessions
        self.projects = projects

    def identify(self, api_key: str | None, authorization: str | None) -> Identity | None:
        """The caller behind the request's headers; None when it sent no credentials."""
        if api_key:
            if self.master_key and same_secret(api_key, self.master_key):
                return Identity(AuthMethod.MASTER_KEY, Role.SUPER_ADMIN)
            token = self.tokens.find_by_key(api_key, USER)
            try:
                user = self.db.users.get(token["parent_id"])
            except NotFound:
                raise Unauthorized("invalid API key") from None
            if not user.get("enabled"):
                raise Unauthorized("account is disabled")
            return Identity(AuthMethod.API_KEY, Role(user["role"]), str(user["_id"]))
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise Unauthorized("expected an Authorization header of the form 'Bearer <token>'")
            return self.sessions.identify(credentials.strip())
        return None

    def authorize(self, identity: Identity | None, rule: access.Rule, params: typing.Mapping[str, str]) -> None:
        """Return if *identity* may call an operation guarded by *rule*; raise 401/403/404 otherwise."""
        if isinstance(rule, access.Public):
            return
        if identity is None:
            raise Unauthorized("authentication required: send X-API-Key or Authorization: Bearer")
        if rule.role_allows(identity):
            return
        if isinstance(rule, access.SelfOrSuperAdmin):
            if identity.user_id is not None and identity.user_id == params.get(rule.param):
                return
            raise Forbidden("this operation is reserved to the user themself and to superAdmins")
        if isinstance(rule, access.ProjectMember):
            self._require_member(identity, params[rule.param])
            if rule.admin and not identity.is_project_admin:
                raise Forbidden("this operation needs the projectAdmin role")
            return
        if isinstance(rule, access.OwnedObject):
            object_id = params[rule.param]
            owned = self.db.db[OWNED_KIND_COLLECTIONS[rule.kind]].find_one(
                {"_id": storage.object_id(object_id, rule.kind)}, {"project_id": 1})
            if owned is None:
                raise NotFound(f"{rule.kind} {object_id} does not exist")
            self._require_member(identity, owned["project_id"])
            return
        raise Forbidden(f"this operation is reserved to: {rule.description}")

    def _require_member(self, identity: Identity, project_id: str) -> None:
        project = self.projects.get(project_id)
        if not self.projects.is_member(identity, project):
            raise Forbidden("you are not a member of this project's teams")

