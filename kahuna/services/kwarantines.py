"""Kwarantine (API 0.58): a project's anti-affinity groups. A group's members (instances, and Komputes through
their instance) never share a Kaktus node (``host`` policy) or a zone (``zone`` policy).

Membership is stored once, on the member (``instance["kwarantine_ids"]``; a Kompute's is its instance's): a deleted
instance or Kompute leaves its groups with nothing to clean up, and a group's ``instances``/``komputes`` are queries.
Whatever depends on a group's members is decided in the group's owner (``kwarantine:<id>``): adding a member,
changing the policy, deleting the group, and electing the node of an instance created in it (the instance service
takes the owners of :meth:`KwarantineService.owner_keys` around its election), so that two of them never both pass
the check.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from bson import ObjectId

from kahuna.errors import Conflict, NotFound, Unprocessable
from kahuna.services._common import Owners, insert_owned, owned_ids
from kahuna.services.projects import ProjectService
from kahuna.storage import Database, models

Policy = typing.Literal["host", "zone"]
POLICIES: tuple[Policy, ...] = typing.get_args(Policy)
DEFAULT_POLICY: Policy = "host"
#: What a policy keeps apart: the field of an instance that no two members may share.
SPREAD_FIELD: dict[Policy, typing.Literal["kaktus_id", "zone_id"]] = {"host": "kaktus_id", "zone": "zone_id"}
#: What the checks read of a member.
_PLACEMENT = {"_id": 1, "name": 1, "kaktus_id": 1, "zone_id": 1, "kompute": 1, "kwarantine_ids": 1, "kmotion": 1}


def positions(instance: typing.Mapping[str, typing.Any], spread: typing.Literal["kaktus_id", "zone_id"]) -> set[str]:
    """Where *instance* holds a place (its node, or zone): where it is and, while kMotion moves it, its source
    too (a move that fails puts it back there; until it is over, both are its)."""
    move = instance.get("kmotion") or {}
    source = move.get("source_kaktus_id" if spread == "kaktus_id" else "source_zone_id", "")
    return {place for place in (instance.get(spread, ""), source) if place}


@dataclass(frozen=True)
class KwarantineDetails:
    """A group with its members, as the API shows them: plain instances, and Komputes (by the Kompute's id)."""

    kwarantine: models.Kwarantine
    instance_ids: list[str]
    kompute_ids: list[str]


class KwarantineService:
    def __init__(self, db: Database, owners: Owners, projects: ProjectService):
        self.db = db
        self.owners = owners
        self.projects = projects

    # -- reads -------------------------------------------------------------------------

    def list_ids(self, project_id: str | None = None) -> list[str]:
        """Every group, or those of a project (404 for an unknown project)."""
        return owned_ids(self.db.kwarantines, self.projects, project_id)

    def get(self, kwarantine_id: str) -> models.Kwarantine:
        return self.db.kwarantines.get(kwarantine_id)

    def details(self, kwarantine: models.Kwarantine) -> KwarantineDetails:
        members = [str(m["_id"]) for m in self.db.instances.find(
            {"kwarantine_ids": str(kwarantine["_id"])}, projection={"_id": 1}, sort=[("_id", 1)])]
        komputes = self.db.komputes.find({"instance_id": {"$in": members}}, projection={"_id": 1, "instance_id": 1},
                                         sort=[("_id", 1)])
        of_komputes = {k["instance_id"] for k in komputes}
        return KwarantineDetails(kwarantine, [m for m in members if m not in of_komputes],
                                 [str(k["_id"]) for k in komputes])

    # -- placement -----------------------------------------------------------------------

    @staticmethod
    def owner_keys(group_ids: typing.Iterable[str]) -> list[str]:
        """The owners that whatever depends on the members of *group_ids* runs in."""
        return [f"kwarantine:{group_id}" for group_id in dict.fromkeys(group_ids)]

    def exclusions(self, group_ids: typing.Iterable[str], project_id: str,
                   member_id: str | None = None) -> frozenset[str]:
        """The Kaktus ids an instance of *project_id* in the groups *group_ids* must not be placed on (the nodes,
        or every node of the zones, of the groups' other members; *member_id*: the instance itself, not counted).

        404 for a group that does not exist or is another project's. To be called in the owners of
        :meth:`owner_keys`, with the decision it informs.
        """
        groups = self._groups_of_project(group_ids, project_id)
        if not groups:
            return frozenset()
        kaktus_ids: set[str] = set()
        zone_ids: set[str] = set()
        for member in self._members(list(groups)):
            if str(member["_id"]) == member_id:
                continue
            for group_id in member.get("kwarantine_ids", []):
                policy = groups.get(group_id)
                if policy == "host":
                    kaktus_ids.update(positions(member, "kaktus_id"))
                elif policy == "zone":
                    zone_ids.update(positions(member, "zone_id"))
        if zone_ids:
            kaktus_ids.update(self.db.kaktuses.ids({"zone_id": {"$in": sorted(zone_ids)}}))
        return frozenset(kaktus_id for kaktus_id in kaktus_ids if kaktus_id)

    def _groups_of_project(self, group_ids: typing.Iterable[str], project_id: str) -> dict[str, Policy]:
        """The policy of each group of *group_ids* (in order, de-duplicated); 404 for one that is not the project's
        (the reason names the id the caller gave, never what another project holds)."""
        policies: dict[str, Policy] = {}
        for group_id in dict.fromkeys(group_ids):
            group = self.db.kwarantines.find_one({"_id": ObjectId(group_id)}) if ObjectId.is_valid(group_id) else None
            if group is None or group["project_id"] != project_id:
                raise NotFound(f"Kwarantine {group_id} does not exist")
            policies[group_id] = group["policy"]
        return policies

    def _members(self, group_ids: list[str]) -> list[models.Instance]:
        return self.db.instances.find({"kwarantine_ids": {"$in": group_ids}}, projection=_PLACEMENT,
                                      sort=[("_id", 1)])

    # -- groups --------------------------------------------------------------------------

    def create(self, project_id: str, fields: typing.Mapping[str, typing.Any]) -> models.Kwarantine:
        """A group of *project_id* (in the project's owner: not in a project being deleted); 409 for a name the
        project's groups already have."""
        name = fields["name"]
        return insert_owned(self.owners, self.db, project_id, self.db.kwarantines,
                            {"name": name, "description": fields.get("description", ""),
                             "policy": self._policy(fields.get("policy", DEFAULT_POLICY))},
                            conflict=f"the project already has a Kwarantine named {name}")

    def update(self, kwarantine_id: str, changes: typing.Mapping[str, typing.Any]) -> models.Kwarantine:
        """Change what *changes* carries of name, description and policy (other keys are not the group's to change);
        a policy the current members already break is refused (422, saying which members)."""
        def update() -> models.Kwarantine:
            group = self.get(kwarantine_id)
            fields = {key: changes[key] for key in ("name", "description") if key in changes}
            if "policy" in changes:
                policy = self._policy(changes["policy"])
                if policy != group["policy"]:
                    self._check_members_apart(group, policy)
                fields["policy"] = policy
            if not fields:
                return group
            name = fields.get("name", group["name"])
            return self.db.kwarantines.update(kwarantine_id, fields,
                                              conflict=f"the project already has a Kwarantine named {name}")

        return self.owners.run(f"kwarantine:{kwarantine_id}", update)

    def delete(self, kwarantine_id: str) -> None:
        """409 while the group has members (in its owner, where members are added)."""
        def delete() -> None:
            group = self.get(kwarantine_id)
            members = self._members([kwarantine_id])
            if members:
                names = ", ".join(sorted(m["name"] for m in members))
                raise Conflict(f"Kwarantine {group['name']} still has {len(members)} member(s) ({names}): "
                               f"remove them first")
            self.db.kwarantines.delete(kwarantine_id)

        self.owners.run(f"kwarantine:{kwarantine_id}", delete)

    @staticmethod
    def _policy(policy: typing.Any) -> Policy:
        if policy not in POLICIES:
            raise Unprocessable(f"a Kwarantine policy is one of {', '.join(POLICIES)}, not {policy!r}")
        return typing.cast(Policy, policy)

    def _check_members_apart(self, group: models.Kwarantine, policy: Policy) -> None:
        """422 naming two members that share what *policy* keeps apart."""
        spread = SPREAD_FIELD[policy]
        seen: dict[str, models.Instance] = {}
        for member in self._members([str(group["_id"])]):
            for where in sorted(positions(member, spread)):
                if where in seen:
                    raise Unprocessable(
                        f"Kwarantine {group['name']} cannot take the {policy} policy: {self._label(seen[where])} "
                        f"and {self._label(member)} are {self._place(policy, where)}")
                seen[where] = member

    # -- membership ----------------------------------------------------------------------

    def add_instance(self, kwarantine_id: str, instance_id: str) -> models.Kwarantine:
        """Idempotent. 404 for a missing group, or an instance that is not the group's project's; 422 when the
        instance's current placement breaks the group's policy (the reason names the member in the way)."""
        return self._change_membership(kwarantine_id, instance_id, join=True)

    def remove_instance(self, kwarantine_id: str, instance_id: str) -> models.Kwarantine:
        """Removing an instance that is not a member changes nothing."""
        return self._change_membership(kwarantine_id, instance_id, join=False)

    def add_kompute(self, kwarantine_id: str, kompute_id: str) -> models.Kwarantine:
        """As :meth:`add_instance`, for the Kompute's instance."""
        return self._change_membership(kwarantine_id, self._instance_of_kompute(kompute_id), join=True,
                                       kompute_id=kompute_id)

    def remove_kompute(self, kwarantine_id: str, kompute_id: str) -> models.Kwarantine:
        return self._change_membership(kwarantine_id, self._instance_of_kompute(kompute_id), join=False,
                                       kompute_id=kompute_id)

    def _instance_of_kompute(self, kompute_id: str) -> str:
        kompute = self.db.komputes.find_one({"_id": ObjectId(kompute_id)}) if ObjectId.is_valid(kompute_id) else None
        return "" if kompute is None else kompute["instance_id"]

    def _change_membership(self, kwarantine_id: str, instance_id: str, join: bool,
                           kompute_id: str | None = None) -> models.Kwarantine:
        """In the owners of the member (not deleted meanwhile) and of the group (no other member added, and the
        policy not changed, meanwhile)."""
        def change() -> models.Kwarantine:
            group = self.get(kwarantine_id)
            member = self._member_of_project(instance_id, group["project_id"], kompute_id)
            if join:
                if kwarantine_id in member.get("kwarantine_ids", []):
                    return group  # already a member: nothing to check, nothing to change
                self._check_may_join(group, member)
            operator = "$addToSet" if join else "$pull"
            self.db.instances.update(member["_id"], extra={operator: {"kwarantine_ids": kwarantine_id}})
            return group

        # Checked first with no owner taken too (again inside): an id of another project, or no id at all, must
        # not hold (or wait for) the owner of someone else's instance.
        self._member_of_project(instance_id, self.get(kwarantine_id)["project_id"], kompute_id)
        keys = [f"kwarantine:{kwarantine_id}"]
        if instance_id:
            keys.append(f"instance:{instance_id}")
        if kompute_id is not None:
            keys.append(f"kompute:{kompute_id}")
        return self.owners.run_all(keys, change)

    def _member_of_project(self, instance_id: str, project_id: str, kompute_id: str | None) -> models.Instance:
        """The instance (of the Kompute), which must be *project_id*'s: else 404 naming the id the caller gave."""
        instance = (self.db.instances.find_one({"_id": ObjectId(instance_id)}) if ObjectId.is_valid(instance_id)
                    else None)
        if instance is None or instance["project_id"] != project_id:
            raise NotFound(f"Kompute {kompute_id} does not exist" if kompute_id is not None
                           else f"instance {instance_id} does not exist")
        return instance

    def _check_may_join(self, group: models.Kwarantine, member: models.Instance) -> None:
        policy: Policy = group["policy"]
        spread = SPREAD_FIELD[policy]
        for other in self._members([str(group["_id"])]):
            shared = positions(other, spread) & positions(member, spread)
            if shared:
                raise Unprocessable(
                    f"{self._label(member)} cannot join Kwarantine {group['name']} ({policy} policy): group member "
                    f"{self._label(other)} is {self._place(policy, min(shared))}")

    # -- reasons -------------------------------------------------------------------------

    @staticmethod
    def _label(instance: typing.Mapping[str, typing.Any]) -> str:
        return f"{'Kompute' if instance.get('kompute') else 'instance'} {instance['name']}"

    def _place(self, policy: Policy, where: str) -> str:
        """"on the same Kaktus node" (project members may not read Kaktus nodes: never named) or "in the same zone
        (a)" (zones are readable by every user; the id when the zone is gone)."""
        if policy == "host":
            return "on the same Kaktus node"
        zone = self.db.zones.find_one({"_id": ObjectId(where)}) if ObjectId.is_valid(where) else None
        return f"in the same zone ({zone['name'] if zone else where})"
