"""Who may call what: identities, roles, and the one table of access rules.

Every operation of the contract has exactly one rule in :data:`RULES`, keyed by
its operationId. The HTTP layer looks the rule up for each request; the RBAC
matrix test walks the same table. Rules decide on the objects named in the
path (their owning project and its teams), never on the text of the URL.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kahuna.errors import Forbidden


class Role(enum.StrEnum):
    SUPER_ADMIN = "superAdmin"
    PROJECT_ADMIN = "projectAdmin"
    USER = "user"


class AuthMethod(enum.StrEnum):
    MASTER_KEY = "master-key"
    API_KEY = "api-key"
    BEARER = "bearer"


@dataclass(frozen=True)
class Identity:
    """The authenticated caller of one request."""

    method: AuthMethod
    role: Role
    user_id: str | None = None
    # The JWT's session (for logout), when the caller used a bearer token.
    session_id: str | None = None

    @property
    def is_super_admin(self) -> bool:
        return self.role is Role.SUPER_ADMIN

    @property
    def is_project_admin(self) -> bool:
        return self.role in (Role.SUPER_ADMIN, Role.PROJECT_ADMIN)


# -- rules -------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Base rule: which identities pass, before looking at any object."""

    description = ""

    def role_allows(self, identity: Identity) -> bool:
        return identity.is_super_admin


@dataclass(frozen=True)
class Public(Rule):
    description = "anyone, no credentials"


@dataclass(frozen=True)
class Authenticated(Rule):
    description = "any authenticated user"

    def role_allows(self, identity: Identity) -> bool:
        return True


@dataclass(frozen=True)
class SuperAdmin(Rule):
    description = "superAdmin only"


@dataclass(frozen=True)
class ProjectAdmin(Rule):
    description = "projectAdmin or superAdmin"

    def role_allows(self, identity: Identity) -> bool:
        return identity.is_project_admin


@dataclass(frozen=True)
class SelfOrSuperAdmin(Rule):
    """The user named by path parameter *param*, or a superAdmin."""

    param: str = "userId"
    description = "the user themself, or superAdmin"


@dataclass(frozen=True)
class ProjectMember(Rule):
    """A member of a team of the project named by *param* (or superAdmin).

    With *admin*, the member must also hold the projectAdmin role.
    """

    param: str = "projectId"
    admin: bool = False
    description = "member of the project's teams, or superAdmin"


@dataclass(frozen=True)
class OwnedObject(Rule):
    """A member of the project that owns the *kind* object named by *param* (or superAdmin)."""

    kind: str = ""
    param: str = ""
    description = "member of the owning project's teams, or superAdmin"


PUBLIC = Public()
ANY_USER = Authenticated()
SUPER_ADMIN = SuperAdmin()
PROJECT_ADMIN = ProjectAdmin()
SELF = SelfOrSuperAdmin()
MEMBER = ProjectMember()
ADMIN_MEMBER = ProjectMember(admin=True)


def owned(kind: str, param: str | None = None) -> OwnedObject:
    return OwnedObject(kind=kind, param=param or f"{kind}Id")


_POWER_ACTIONS = ("Reboot", "Reset", "Suspend", "Resume", "Start", "Stop", "Shutdown")

RULES: dict[str, Rule] = {
    # session and account
    "Login": PUBLIC,
    "ResetPassword": PUBLIC,
    "Logout": ANY_USER,
    "ListUsers": SUPER_ADMIN,
    "CreateUser": SUPER_ADMIN,
    "ReadUser": SELF,
    "UpdateUser": SELF,
    "DeleteUser": SUPER_ADMIN,
    "SetUserPassword": SELF,
    "ResetUserPassword": SELF,
    "SetUserApiToken": SELF,
    **{f"{verb}Team": SUPER_ADMIN for verb in ("Create", "Read", "Update", "Delete")},
    "ListTeams": SUPER_ADMIN,
    **{f"{verb}ApiToken": SUPER_ADMIN for verb in ("Read", "Update", "Delete")},
    "ListApiTokens": SUPER_ADMIN,
    # projects and what they own
    "ListProjects": ANY_USER,
    "CreateProject": PROJECT_ADMIN,
    "ReadProject": MEMBER,
    "UpdateProject": MEMBER,
    "DeleteProject": ADMIN_MEMBER,
    "ReadProjectCost": MEMBER,
    "ReadProjectUsage": MEMBER,
    "CreateProjectDnsRecord": MEMBER,
    "ListProjectDnsRecords": MEMBER,
    "CreateProjectRegionVolume": MEMBER,
    "ListProjectRegionVolumes": MEMBER,
    "CreateProjectZoneInstance": MEMBER,
    "ListProjectZoneInstances": MEMBER,
    "CreateProjectZoneKompute": MEMBER,
    "ListProjectZoneKomputes": MEMBER,
    "CreateProjectRegionKylo": MEMBER,
    "ListProjectRegionKylos": MEMBER,
    "CreateProjectRegionKawaii": MEMBER,
    "ListProjectRegionKawaiis": MEMBER,
    "CreateProjectZoneKonvey": MEMBER,
    "ListProjectZoneKonveys": MEMBER,
    "CreateProjectRegionKonvey": MEMBER,
    "ListProjectRegionKonveys": MEMBER,
    # API 0.58: region-wide creation (Kahuna elects the zone), Kwarantine anti-affinity groups (a group is its
    # project's; adding or removing a member also needs the member to be the group's project's, which the service
    # checks), kMotion (an operator's move between hypervisors: a plan names Kaktus nodes, which only superAdmins
    # may read) and Kaktus maintenance.
    "CreateProjectRegionInstance": MEMBER,
    "ListProjectRegionInstances": MEMBER,
    "CreateProjectRegionKompute": MEMBER,
    "ListProjectRegionKomputes": MEMBER,
    "CreateProjectKwarantine": MEMBER,
    "ListProjectKwarantines": MEMBER,
    "ListKwarantines": SUPER_ADMIN,
    **{f"{verb}Kwarantine": owned("kwarantine") for verb in ("Read", "Update", "Delete")},
    **{f"{verb}Kwarantine{kind}": owned("kwarantine")
       for verb in ("Add", "Remove") for kind in ("Instance", "Kompute")},
    **{f"{verb}{kind}KMotion": SUPER_ADMIN for verb in ("Plan", "Commit") for kind in ("Instance", "Kompute")},
    **{f"{verb}KaktusMaintenance": SUPER_ADMIN for verb in ("Enable", "Disable")},
    **{f"{verb}Volume": owned("volume") for verb in ("Read", "Update", "Delete")},
    **{f"{verb}Instance": owned("instance") for verb in ("Read", "Update", "Delete", *_POWER_ACTIONS)},
    "ReadInstanceState": owned("instance"),
    "ReadInstanceRemoteConnection": owned("instance"),
    **{f"{verb}Kompute": owned("kompute") for verb in ("Read", "Update", "Delete", *_POWER_ACTIONS)},
    "ReadKomputeState": owned("kompute"),
    **{f"{verb}Kylo": owned("kylo") for verb in ("Read", "Update", "Delete")},
    **{f"{verb}Kawaii": owned("kawaii") for verb in ("Read", "Update", "Delete")},
    **{f"{verb}KawaiiIpSec": owned("kawaii") for verb in ("Create", "Read", "Update", "Delete")},
    "ListKawaiiIpSecs": owned("kawaii"),
    **{f"{verb}Konvey": owned("konvey") for verb in ("Read", "Update", "Delete")},
    **{f"{verb}DnsRecord": owned("record") for verb in ("Read", "Update", "Delete")},
    # global lists of project objects
    **{f"List{kinds}": SUPER_ADMIN for kinds in ("Volumes", "Instances", "Komputes", "Kylos", "Kawaiis", "Konveys")},
    # regions and zones: readable by every user, managed by superAdmin
    "ListRegions": ANY_USER,
    "ReadRegion": ANY_USER,
    "ListZones": ANY_USER,
    "ReadZone": ANY_USER,
    **{op: SUPER_ADMIN for op in (
        "CreateRegion", "UpdateRegion", "DeleteRegion", "CreateZone", "ListRegionZones", "UpdateZone", "DeleteZone",
        "CreateStoragePool", "CreateKiwi", "ListRegionKiwis", "CreateVNet", "ListRegionVNets",
        "SetRegionDefaultStoragePool", "ListRegionStoragePools", "ListRegionStorageNFSs", "CreateStorageNFS",
        "SetRegionDefaultStorageNFS", "CreateRegionDnsRecord", "ListRegionDnsRecords",
        "CreateKaktus", "ListZoneKaktuses",
    )},
    # infrastructure: superAdmin only
    **{f"{verb}{kind}": SUPER_ADMIN
       for kind in ("Adapter", "Agent", "Kaktus", "Kiwi", "StorageNFS", "StoragePool", "Subnet", "Template", "VNet")
       for verb in ("Read", "Update", "Delete")},
    **{op: SUPER_ADMIN for op in (
        "ListAdapters", "ListAgents", "CreateAgent", "SetAgentApiToken", "ListKaktuss", "ReadKaktusCaps",
        "ListKaktusInstances", "ListKiwis", "ListStorageNFSs", "ListStorageNFSKylos", "ListStoragePools",
        "ListStoragePoolVolumes", "CreateTemplate", "SetStoragePoolDefaultTemplate", "ListStoragePoolTemplates",
        "ListSubnets", "CreateAdapter", "ListSubnetAdapters", "ListTemplates", "ListVNets", "CreateSubnet",
        "SetVNetDefaultSubnet", "ListVNetSubnets",
    )},
}


#: Operations API 0.58 renamed (the generated names only; method and path unchanged): new name -> 0.53.2 name.
#: Both names are served, with one rule.
RENAMED_OPERATIONS = {
    "ListKaktuses": "ListKaktuss", "ListStorageNFSes": "ListStorageNFSs",
    "ListRegionStorageNFSes": "ListRegionStorageNFSs", "CreateSubnetAdapter": "CreateAdapter",
    "CreateRegionKiwi": "CreateKiwi", "CreateRegionStorageNFS": "CreateStorageNFS",
    "CreateRegionStoragePool": "CreateStoragePool", "CreateRegionVNet": "CreateVNet",
    "CreateRegionZone": "CreateZone", "CreateVNetSubnet": "CreateSubnet", "CreateZoneKaktus": "CreateKaktus",
    "CreateStoragePoolTemplate": "CreateTemplate",
}
RULES.update({new: RULES[old] for new, old in RENAMED_OPERATIONS.items()})


def rule_for(operation_id: str) -> Rule:
    try:
        return RULES[operation_id]
    except KeyError:
        # An operation without a rule is a programming error; deny rather than guess.
        raise Forbidden(f"operation {operation_id} has no access rule") from None
