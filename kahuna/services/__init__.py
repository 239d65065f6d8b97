"""Kahuna's domain services, wired together; independent of Flask and of the actor runtime."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from kahuna import credentials
from kahuna.config import Config
from kahuna.credentials import PasswordHasher
from kahuna.mail import Mailer
from kahuna.rpc import AgentGateway
from kahuna.services.access_control import AccessControl
from kahuna.services.agents import AgentService
from kahuna.services.projects import ProjectService
from kahuna.services.sessions import SessionService
from kahuna.services.teams import TeamService
from kahuna.services.tokens import Serializer, TokenService
from kahuna.services.users import UserService
from kahuna.storage import Database

__all__ = ["Services", "build_services"]


@dataclass
class Services:
    config: Config
    db: Database
    mailer: Mailer
    serializer: Serializer
    gateway: AgentGateway
    hasher: PasswordHasher
    sessions: SessionService
    tokens: TokenService
    users: UserService
    teams: TeamService
    projects: ProjectService
    access: AccessControl
    agents: AgentService


def build_services(config: Config, db: Database, mailer: Mailer, serializer: Serializer,
                   gateway: AgentGateway) -> Services:
    g = config.global_
    hasher = PasswordHasher(g.accounts.bcryptCost)
    # A configured secret wins; otherwise one generated once and shared through the database.
    signing_key = g.jwt.signature or db.setting("jwt_signing_key", credentials.generate_signing_key)
    sessions = SessionService(db, hasher, signing_key, datetime.timedelta(hours=g.jwt.lifetimeHours))
    tokens = TokenService(db, mailer, serializer, g.adminEmail, gateway)
    users = UserService(db, mailer, hasher, sessions, tokens, g.publicUrl,
                        datetime.timedelta(hours=g.accounts.registrationLinkHours),
                        datetime.timedelta(minutes=g.accounts.passwordResetLinkMinutes))
    teams = TeamService(db)
    projects = ProjectService(db, teams, g.bootstrap.user, g.bootstrap.pubkey)
    access_control = AccessControl(db, g.apiKey, tokens, sessions, projects)
    agents = AgentService(db, tokens, gateway, g.agents.hmacWindowSeconds, g.agents.requireHmac)
    return Services(config=config, db=db, mailer=mailer, serializer=serializer, gateway=gateway, hasher=hasher,
                    sessions=sessions, tokens=tokens, users=users, teams=teams, projects=projects,
                    access=access_control, agents=agents)
