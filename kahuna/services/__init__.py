"""Kahuna's domain services, wired together; independent of Flask and of the actor runtime."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from kahuna import cloudinit, credentials
from kahuna.config import Config
from kahuna.costs import Pricing
from kahuna.credentials import PasswordHasher
from kahuna.mail import Mailer
from kahuna.rpc import KAKTUS, KIWI, KONTROLLER, AgentPlane
from kahuna.services._common import Owners
from kahuna.services.access_control import AccessControl
from kahuna.services.agents import AgentService
from kahuna.services.dns import DnsService
from kahuna.services.instances import InstanceService
from kahuna.services.kawaii import KawaiiService
from kahuna.services.kmotion import KMotionService
from kahuna.services.komputes import KomputeService
from kahuna.services.konvey import KonveyService
from kahuna.services.kwarantines import KwarantineService
from kahuna.services.kylos import KyloService
from kahuna.services.metadata import MetadataService
from kahuna.services.networks import AdapterService, SubnetService, VNetService
from kahuna.services.nodes import KaktusService, KiwiService
from kahuna.services.projects import ProjectService
from kahuna.services.regions import RegionService, ZoneService
from kahuna.services.sessions import SessionService
from kahuna.services.storage_pools import NfsService, PoolService, TemplateService
from kahuna.services.teams import TeamService
from kahuna.services.throttling import AttemptLimiter, Guard
from kahuna.services.tokens import TokenService
from kahuna.services.users import UserService
from kahuna.services.volumes import VolumeService
from kahuna.storage import Database

__all__ = ["Services", "build_services"]


@dataclass
class Services:
    config: Config
    db: Database
    mailer: Mailer
    serializer: Owners
    agent_plane: AgentPlane
    hasher: PasswordHasher
    sessions: SessionService
    tokens: TokenService
    users: UserService
    teams: TeamService
    projects: ProjectService
    access: AccessControl
    agents: AgentService
    regions: RegionService
    zones: ZoneService
    kaktuses: KaktusService
    kiwis: KiwiService
    pools: PoolService
    nfs: NfsService
    templates: TemplateService
    vnets: VNetService
    subnets: SubnetService
    adapters: AdapterService
    dns: DnsService
    volumes: VolumeService
    instances: InstanceService
    komputes: KomputeService
    kylos: KyloService
    kwarantines: KwarantineService
    kmotion: KMotionService
    kawaiis: KawaiiService
    konveys: KonveyService
    metadata: MetadataService


def build_services(config: Config, db: Database, mailer: Mailer, serializer: Owners,
                   agent_plane: AgentPlane, limiter: AttemptLimiter) -> Services:
    g = config.global_
    accounts = g.accounts
    hasher = PasswordHasher(accounts.bcryptCost)
    login_guard = Guard(limiter, "login", accounts.loginFailuresPerAccount, accounts.loginFailuresPerSource,
                        accounts.loginWindowMinutes * 60)
    reset_guard = Guard(limiter, "password reset", accounts.resetMailsPerAccount, accounts.resetRequestsPerSource,
                        accounts.resetWindowMinutes * 60)
    # A configured secret wins; otherwise one generated once and shared through the database.
    signing_key = g.jwt.signature or db.setting("jwt_signing_key", credentials.generate_signing_key)
    sessions = SessionService(db, hasher, signing_key, datetime.timedelta(hours=g.jwt.lifetimeHours), login_guard)
    tokens = TokenService(db, mailer, serializer, g.adminEmail, agent_plane)
    users = UserService(db, mailer, hasher, sessions, tokens, g.publicUrl,
                        datetime.timedelta(hours=g.accounts.registrationLinkHours),
                        datetime.timedelta(minutes=g.accounts.passwordResetLinkMinutes), reset_guard, serializer)
    teams = TeamService(db)
    subnets = SubnetService(db, serializer)
    dns = DnsService(db, agent_plane, serializer)
    pricing = Pricing(db)
    projects = ProjectService(db, teams, subnets, dns, g.bootstrap.user, g.bootstrap.pubkey, serializer, pricing)
    access_control = AccessControl(db, g.apiKey, tokens, sessions, projects)
    agents = AgentService(db, tokens, agent_plane, g.agents.hmacWindowSeconds, g.agents.requireHmac)
    kaktuses = KaktusService(db, agent_plane, serializer)
    pools = PoolService(db, agent_plane, serializer)

    agents.connection_hooks.update({KAKTUS: [kaktuses.on_agents_connected, pools.on_agents_connected],
                                    KIWI: [dns.on_agents_connected]})
    adapters = AdapterService(db, serializer)
    volumes = VolumeService(db, pools, projects)
    kwarantines = KwarantineService(db, serializer, projects)
    # Cloud-init seeds only need a root password hash that the guest's crypt(3) reads: a cheap bcrypt will do.
    instances = InstanceService(db, agent_plane, serializer, projects, pools, volumes, adapters, dns, tokens,
                                cloudinit.Templates(g.cloudinit.templates), g.publicUrl, PasswordHasher(10),
                                kwarantines)
    komputes = KomputeService(db, projects, instances, volumes)
    agents.connection_hooks[KONTROLLER] = [instances.on_controllers_connected]
    kmotion = KMotionService(db, agent_plane, serializer, instances, kwarantines,
                             datetime.timedelta(seconds=g.kmotion.planTtlSeconds), g.kmotion.shutdownGraceSeconds)
    compute = (db, agent_plane, projects, instances, komputes, volumes, adapters)
    return Services(config=config, db=db, mailer=mailer, serializer=serializer, agent_plane=agent_plane, hasher=hasher,
                    sessions=sessions, tokens=tokens, users=users, teams=teams, projects=projects,
                    access=access_control, agents=agents, regions=RegionService(db, serializer, dns),
                    zones=ZoneService(db, serializer),
                    kaktuses=kaktuses, kiwis=KiwiService(db, agent_plane, dns, serializer), pools=pools,
                    nfs=NfsService(db, serializer),
                    templates=TemplateService(db, pools), vnets=VNetService(db, serializer), subnets=subnets,
                    adapters=adapters, dns=dns, volumes=volumes, instances=instances, komputes=komputes,
                    kylos=KyloService(db, projects, pools),
                    kwarantines=kwarantines, kmotion=kmotion, kawaiis=KawaiiService(*compute),
                    konveys=KonveyService(*compute), metadata=MetadataService(db, pricing, limiter))
