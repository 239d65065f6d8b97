"""kahuna.access: identities, roles and the one table of access rules."""

import pytest

from kahuna import access
from kahuna.access import AuthMethod, Identity, Role
from kahuna.errors import Forbidden
from tests.contract import operation_ids

SUPER = Identity(AuthMethod.MASTER_KEY, Role.SUPER_ADMIN)
PADMIN = Identity(AuthMethod.BEARER, Role.PROJECT_ADMIN, "u1", "s1")
USER = Identity(AuthMethod.API_KEY, Role.USER, "u2")


def contract_operations() -> set[str]:
    """The operations of both contracts served (0.53.2 and 0.58.0)."""
    return operation_ids("0.53.2") | operation_ids("0.58.0")


@pytest.mark.parametrize(("identity", "super_admin", "project_admin"), [
    (SUPER, True, True),
    (PADMIN, False, True),
    (USER, False, False),
])
def test_identity_roles(identity, super_admin, project_admin):
    assert (identity.is_super_admin, identity.is_project_admin) == (super_admin, project_admin)


@pytest.mark.parametrize(("rule", "allowed"), [
    # (rule, which of superAdmin, projectAdmin, user pass on their role alone)
    (access.PUBLIC, (True, False, False)),  # the HTTP layer lets anyone through before asking the role
    (access.ANY_USER, (True, True, True)),
    (access.SUPER_ADMIN, (True, False, False)),
    (access.PROJECT_ADMIN, (True, True, False)),
    (access.SELF, (True, False, False)),  # the others pass only as the user named in the path
    (access.MEMBER, (True, False, False)),  # ... as members of the project's teams
    (access.ADMIN_MEMBER, (True, False, False)),
    (access.owned("volume"), (True, False, False)),
])
def test_what_each_rule_grants_on_the_role_alone(rule, allowed):
    assert tuple(rule.role_allows(identity) for identity in (SUPER, PADMIN, USER)) == allowed
    assert rule.description


@pytest.mark.parametrize(("operation", "rule"), [
    ("Login", access.PUBLIC),
    ("ResetPassword", access.PUBLIC),
    ("Logout", access.ANY_USER),
    ("ListRegions", access.ANY_USER),
    ("CreateRegion", access.SUPER_ADMIN),
    ("ReadAgent", access.SUPER_ADMIN),
    ("ListTeams", access.SUPER_ADMIN),
    ("CreateProject", access.PROJECT_ADMIN),
    ("ReadUser", access.SELF),
    ("SetUserApiToken", access.SELF),
    ("ReadProject", access.MEMBER),
    ("DeleteProject", access.ADMIN_MEMBER),
    ("CreateProjectZoneInstance", access.MEMBER),
    ("ReadVolume", access.OwnedObject(kind="volume", param="volumeId")),
    ("RebootInstance", access.OwnedObject(kind="instance", param="instanceId")),
    ("ShutdownKompute", access.OwnedObject(kind="kompute", param="komputeId")),
    ("DeleteKawaiiIpSec", access.OwnedObject(kind="kawaii", param="kawaiiId")),
    ("UpdateDnsRecord", access.OwnedObject(kind="record", param="recordId")),
    ("ListInstances", access.SUPER_ADMIN),
])
def test_rule_for(operation, rule):
    assert access.rule_for(operation) == rule


def test_an_operation_without_a_rule_is_denied():
    with pytest.raises(Forbidden) as caught:
        access.rule_for("DropEverything")
    assert caught.value.reason == "operation DropEverything has no access rule"


def test_every_operation_of_the_contract_has_a_rule():
    assert sorted(contract_operations() - set(access.RULES)) == []


def test_every_rule_is_an_operation_of_the_contract():
    assert sorted(set(access.RULES) - contract_operations()) == []


def test_only_login_and_password_reset_are_public():
    assert sorted(op for op, rule in access.RULES.items() if isinstance(rule, access.Public)) == [
        "Login", "ResetPassword"]


def test_owned_rules_name_their_path_parameter():
    assert access.owned("kawaii") == access.OwnedObject(kind="kawaii", param="kawaiiId")
    assert access.owned("record", "dnsRecordId").param == "dnsRecordId"
    for operation, rule in access.RULES.items():
        if isinstance(rule, access.OwnedObject):
            assert rule.kind and rule.param, operation
