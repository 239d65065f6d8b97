"""kMotion (API 0.58): moving an instance, or a Kompute's instance, to another Kaktus node of its region.

**Plan** (``POST .../kmotion/plan``): elect the destination and write it down as a short-lived, single-use plan
tied to the instance (``db.kmotion_plans``; its expiry is checked on every read, and the periodic clean-up of
crash recovery prunes the expired ones, FerretDB having no TTL index). The election never picks the current
host, and honours what any placement honours: nodes in maintenance receive nothing, the instance's Kwarantine
groups, appliance spreading (a Kawaii or Konvey VM avoids its siblings' nodes; a Kawaii VM, its zone's gateway,
moves within its zone only), the room left on the node (507 when nothing fits) and the storage: the target must
be served by every storage pool of the instance's volumes (Ceph RBD is shared, so the disks stay where they are).

**Commit** (``PATCH .../kmotion/commit``): consume the plan (404 unknown or expired, 422 another instance's),
then the pattern of every change that needs agents (README, "Ownership"):

1. *claim*, in the owners of the instance (and its Kompute) and of both zones: the target is validated again
   (exists, not in maintenance, Kwarantine, room, capabilities), the instance is written ``updating`` on the
   target (its room is held there from now on) with a ``kmotion`` record (source, target, step);
2. *agents*, no shared owner held: **cold** with the released Kaktus methods only - ``InstanceIsRunning``, a
   graceful ``SOFT_SHUTDOWN`` then ``HARD_SHUTDOWN`` once ``global.kmotion.shutdownGraceSeconds`` have passed,
   ``GetInstance`` (the XML, written down before the source forgets it), a ``HARD_SHUTDOWN`` and a last
   ``InstanceIsRunning`` (a domain undefined while it runs would run on), ``DeleteInstance`` on the source,
   ``CreateInstance`` on the target with the domain rebuilt from what Kahuna stores (same Ceph disks; the guest's
   machine type is kept, as libvirt migration keeps it, and the emulator path is the target's), then
   ``AUTO_START`` (autostart set, and started) only if it was running - never ``START``, which fails on a running
   guest; a stopped instance stays stopped (without autostart: the released agent sets it only by starting).
   Power operations and resizes run in the instance's owner, held for the whole move, so none interleaves;
   **live** with the proposed ``PrepareMigration`` (target) and ``MigrateInstance`` (source), only when the agents
   of both nodes advertise them (no released Kaktus agent does);
3. *commit* (``ready`` on the target) or *undo*: each step, registered before its call and acting on where the
   domain is, taken back newest first: the domain undefined on the target, defined again on the source, started
   again if it was running, the instance back on the source. Once a step of the undo fails, the others are skipped
   and the move is left stranded for crash recovery (going on could run the guest on both nodes). Until the move
   is over, the source's room and Kwarantine position stay held (placement counts both nodes).

A move cut short by a crash is left ``updating`` with its record: crash recovery marks it stranded and
:meth:`KMotionService.resolve` finishes it on the target or rolls it back to the source, from where the domain is
defined (:mod:`kahuna.services.recovery`).

Caveats: a UEFI domain's NVRAM is host-local and is not carried by a cold move (the firmware starts with fresh
variables); a move to another zone keeps the gateway the instance's network was configured with.
"""

from __future__ import annotations

import datetime
import logging
import time
import typing
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from bson import ObjectId

from kahuna import placement, rpc
from kahuna.errors import AgentCallFailed, AgentError, Conflict, NotFound, QuotaExceeded, Unprocessable
from kahuna.rpc import AgentPlane, InstanceAction
from kahuna.services._common import READY, UPDATING, Owners
from kahuna.services._undo import Undo
from kahuna.services.instances import InstanceService
from kahuna.services.kwarantines import KwarantineService, positions
from kahuna.storage import Database, models, utcnow

log = logging.getLogger(__name__)

MANUAL, ZONE, REGION, AUTO = "manual", "zone", "region", "auto"
DESTINATIONS = (MANUAL, ZONE, REGION, AUTO)
#: The Kaktus methods a live move needs on both nodes (proposals: no released agent serves them).
LIVE_METHODS = (rpc.kaktus.PrepareMigration.name, rpc.kaktus.MigrateInstance.name)
LIVE_REFUSED = "released Kaktus agents do cold moves only: plan with live=false"
#: What libvirt answers for a domain a node does not have (VIR_ERR_NO_DOMAIN, code 42): its message starts with the
#: first; the agent's error text may also carry the code, as the second.
DOMAIN_NOT_FOUND = ("Domain not found", "Code=42,")
#: Seconds between two checks that a guest obeyed its graceful shutdown.
SHUTDOWN_POLL_SECONDS = 0.5


Move = models.KMotionMove


def move_of(instance: models.Instance) -> Move | None:
    """The ``kmotion`` record of an instance being moved, or None."""
    return instance.get("kmotion") or None


class Rollback(Undo):
    """An :class:`Undo` that remembers which of its steps failed and, once one has, skips the agent steps left:
    each assumes the newer ones took the domain off the target, and going on could start the guest on the source
    while it runs on the target. A step pushed with *always* (the record's) runs whatever happened."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: list[str] = []
        self.skipped: list[str] = []

    def push(self, what: str, step: typing.Callable[[], typing.Any], always: bool = False) -> None:
        def guarded() -> typing.Any:
            if self.failed and not always:
                self.skipped.append(what)
                return None
            try:
                return step()
            except Exception:
                self.failed.append(what)
                raise

        super().push(what, guarded)


@dataclass(frozen=True)
class Subject:
    """What a plan or a commit is about: an instance, or a Kompute (through its instance)."""

    instance: models.Instance
    kompute_id: str = ""

    @property
    def label(self) -> str:
        return f"{'Kompute' if self.kompute_id else 'instance'} {self.instance['name']}"


class KMotionService:
    def __init__(self, db: Database, agents: AgentPlane, owners: Owners, instances: InstanceService,
                 kwarantines: KwarantineService, plan_ttl: datetime.timedelta, shutdown_grace_seconds: float):
        self.db = db
        self.agents = agents
        self.owners = owners
        self.instances = instances
        self.kwarantines = kwarantines
        self.plan_ttl = plan_ttl
        self.shutdown_grace_seconds = shutdown_grace_seconds

    # -- what is moved ------------------------------------------------------------------

    def instance_subject(self, instance_id: str) -> Subject:
        instance = self.db.instances.get(instance_id)
        kompute = self.db.komputes.find_one({"instance_id": instance_id})
        if kompute is not None:
            raise Unprocessable(f"instance {instance['name']} belongs to a Kompute: move it through "
                                f"/kompute/{kompute['_id']}/kmotion")
        return Subject(instance)

    def kompute_subject(self, kompute_id: str) -> Subject:
        kompute = self.db.komputes.get(kompute_id)
        return Subject(self.db.instances.get(kompute["instance_id"]), str(kompute["_id"]))

    # -- plan -----------------------------------------------------------------------------

    def plan(self, subject: Subject, destination: str = AUTO, kaktus_id: str | None = None,
             live: bool = True) -> models.KMotionPlan:
        """Elect where *subject* goes and write the plan down (see the module's documentation)."""
        instance = subject.instance
        if destination not in DESTINATIONS:
            raise Unprocessable(f"destination must be one of {', '.join(DESTINATIONS)}, not {destination!r}")
        if not instance.get("kmotion_enabled", True):
            raise Unprocessable(f"kMotion is disabled for {subject.label} (kmotion_enabled is false): it stays on "
                                f"its node")
        self._check_ready(subject)
        if destination == MANUAL:
            if not kaktus_id:
                raise Unprocessable("destination manual needs the target Kaktus: kaktus is required")
            target = self._check_manual(instance, kaktus_id)
        else:
            if kaktus_id:
                raise Unprocessable(f"kaktus is only used with destination manual, not {destination}")
            target = self._elect(instance, destination)
        source = self.db.kaktuses.get(instance["kaktus_id"])
        if live:
            self._check_live(source, target)
        return self.db.kmotion_plans.insert({
            "instance_id": str(instance["_id"]), "kompute_id": subject.kompute_id,
            "source_kaktus_id": str(source["_id"]), "target_kaktus_id": str(target["_id"]), "live": live,
            "expires_at": utcnow() + self.plan_ttl})

    def _check_ready(self, subject: Subject) -> None:
        state = subject.instance.get("state", READY)
        if state != READY:
            doing = {"creating": "still being created", "updating": "being changed or moved",
                     "deleting": "being deleted"}.get(state, "not whole (its creation failed): delete it")
            raise Conflict(f"{subject.label} is {doing}")

    def _candidates(self, instance: models.Instance, destination: str) -> list[models.Kaktus]:
        """The nodes *destination* may elect from, the current one included (it is excluded later)."""
        if destination == ZONE or instance["profile"] == "kawaii":
            return self.db.kaktuses.find({"zone_id": instance["zone_id"]})
        return self.db.kaktuses.find({"region_id": instance["region_id"]})

    def _exclusions(self, instance: models.Instance, candidates: list[models.Kaktus]) -> dict[str, str]:
        """Why each node of *candidates* cannot take *instance* (whatever its room), by Kaktus id."""
        instance_id = str(instance["_id"])
        excluded: dict[str, str] = {instance["kaktus_id"]: "hosts it already"}
        group_ids = instance.get("kwarantine_ids") or []
        quarantined = self.kwarantines.exclusions(group_ids, instance["project_id"], member_id=instance_id) \
            if group_ids else frozenset()
        others = self.db.instances.find({"profile_id": instance["profile_id"], "_id": {"$ne": instance["_id"]}},
                                        projection={"kaktus_id": 1, "zone_id": 1, "kmotion": 1}) \
            if instance["profile"] and instance["profile_id"] else []
        # A sibling being moved holds its source too (it may be put back there).
        siblings = {kaktus_id for other in others for kaktus_id in positions(other, "kaktus_id")}
        # A region-wide Konvey's VMs are in distinct zones: a move keeps them apart.
        sibling_zones = {zone_id for other in others for zone_id in positions(other, "zone_id")} \
            - {instance["zone_id"]} if instance["profile"] == "konvey" else set()
        pools = self._pools_of(instance)
        for kaktus in candidates:
            kaktus_id = str(kaktus["_id"])
            if kaktus_id in excluded:
                continue
            if kaktus.get("maintenance"):
                excluded[kaktus_id] = "is in maintenance"
            elif kaktus_id in quarantined:
                excluded[kaktus_id] = "would break one of its Kwarantine groups"
            elif kaktus_id in siblings:
                excluded[kaktus_id] = f"hosts another VM of its {instance['profile']}"
            elif kaktus["zone_id"] in sibling_zones:
                excluded[kaktus_id] = f"is in the zone of another VM of its {instance['profile']}"
            elif not all(set(kaktus["agent_ids"]) & set(pool["agent_ids"]) for pool in pools):
                excluded[kaktus_id] = "is not served by its storage pool(s)"
        return excluded

    def _pools_of(self, instance: models.Instance) -> list[models.StoragePool]:
        volume_ids = [*instance["volume_ids"], *([instance["seed_volume_id"]] if instance["seed_volume_id"] else [])]
        pool_ids = {v["storage_pool_id"] for v in self.db.volumes.find(
            {"_id": {"$in": [ObjectId(i) for i in volume_ids if ObjectId.is_valid(i)]}},
            projection={"storage_pool_id": 1})}
        return [self.db.pools.get(pool_id) for pool_id in sorted(pool_ids)]

    def _nodes(self, zone_ids: typing.Iterable[str]) -> list[placement.Node]:
        return [node for zone_id in sorted(set(zone_ids)) for node in self.instances.nodes(zone_id)]

    def _elect(self, instance: models.Instance, destination: str) -> models.Kaktus:
        candidates = self._candidates(instance, destination)
        excluded = self._exclusions(instance, candidates)
        by_id = {str(k["_id"]): k for k in candidates}
        nodes = [n for n in self._nodes(k["zone_id"] for k in candidates) if n.kaktus_id in by_id]
        node = placement.elect(nodes, instance["name"], instance["vcpus"], instance["memory"], frozenset(excluded))
        if node is not None:
            return by_id[node.kaktus_id]
        scope = "zone" if destination == ZONE or instance["profile"] == "kawaii" else "region"
        reasons = [f"{by_id[kaktus_id]['name']} {why}" for kaktus_id, why in sorted(excluded.items())
                   if kaktus_id in by_id and kaktus_id != instance["kaktus_id"]]
        left = [n for n in nodes if n.kaktus_id not in excluded]
        if left:
            reasons.append(placement.why_none_fits(left, instance["vcpus"], instance["memory"])
                           .replace("of the zone", "left"))
        elif not reasons:
            reasons.append(f"the {scope} has no other Kaktus")
        raise QuotaExceeded(f"no Kaktus of the {scope} can take instance {instance['name']}: {'; '.join(reasons)}")

    def _check_manual(self, instance: models.Instance, kaktus_id: str) -> models.Kaktus:
        """The target named by a manual plan, or the reason it cannot take *instance*."""
        try:
            target = self.db.kaktuses.get(kaktus_id)
        except NotFound:
            raise Unprocessable(f"Kaktus {kaktus_id} does not exist") from None
        name = target["name"]
        if target["region_id"] != instance["region_id"]:
            raise Unprocessable(f"Kaktus {name} is not in the region of instance {instance['name']}")
        if instance["profile"] == "kawaii" and target["zone_id"] != instance["zone_id"]:
            raise Unprocessable(f"instance {instance['name']} is its zone's Kawaii gateway: it moves within its "
                                f"zone only")
        why = self._exclusions(instance, [target]).get(kaktus_id)
        if why is not None:
            raise Unprocessable(f"Kaktus {name} {why}")
        node = next((n for n in self.instances.nodes(target["zone_id"]) if n.kaktus_id == kaktus_id), None)
        if node is None or not node.fits(instance["vcpus"], instance["memory"]):
            why = "it has no connected agent" if node is None or not node.online else \
                f"it has no room for {instance['vcpus']} vCPU(s) and {instance['memory'] // placement.GIB} GiB"
            raise QuotaExceeded(f"Kaktus {name} cannot take instance {instance['name']}: {why}")
        return target

    def serves_live(self, kaktus: models.Kaktus) -> bool:
        """Whether every agent of *kaktus* advertised the live-migration methods (as the agents stored them)."""
        if not kaktus["agent_ids"]:
            return False
        ids = [ObjectId(i) for i in kaktus["agent_ids"] if ObjectId.is_valid(i)]
        agents = self.db.agents.find({"_id": {"$in": ids}}, projection={"capabilities": 1})
        advertised = [set(agent["capabilities"]["methods"]) if "capabilities" in agent else set() for agent in agents]
        return len(agents) == len(kaktus["agent_ids"]) and all(set(LIVE_METHODS) <= methods for methods in advertised)

    def _check_live(self, source: models.Kaktus, target: models.Kaktus) -> None:
        lacking = [k["name"] for k in (source, target) if not self.serves_live(k)]
        if lacking:
            raise Unprocessable(f"{LIVE_REFUSED} (Kaktus {', '.join(lacking)} advertise(s) no "
                                f"{' and '.join(LIVE_METHODS)})")

    # -- plans ----------------------------------------------------------------------------

    def _live_plan(self, plan_id: str) -> models.KMotionPlan:
        """The plan *plan_id*, unless unknown or expired (404: an expired plan is deleted when seen)."""
        plan = self.db.kmotion_plans.find_one({"_id": ObjectId(plan_id)}) if ObjectId.is_valid(plan_id) else None
        if plan is not None and plan["expires_at"] <= utcnow():
            self.db.kmotion_plans.delete_many({"_id": plan["_id"]})
            plan = None
        if plan is None:
            raise NotFound(f"kMotion plan {plan_id} does not exist or has expired: plan again")
        return plan

    def prune(self) -> int:
        """Delete the expired plans; how many there were."""
        return self.db.kmotion_plans.delete_many({"expires_at": {"$lte": utcnow()}})

    def expired_plans(self) -> int:
        return self.db.kmotion_plans.count({"expires_at": {"$lte": utcnow()}})

    # -- commit ---------------------------------------------------------------------------

    def commit(self, subject: Subject, plan_id: str) -> models.Instance:
        """Consume *plan_id* (a plan of *subject*) and move the instance; on failure it is back on its source."""
        plan = self._live_plan(plan_id)
        if plan["instance_id"] != str(subject.instance["_id"]) or plan["kompute_id"] != subject.kompute_id:
            raise Unprocessable(f"kMotion plan {plan_id} was made for another instance, not for {subject.label}")
        keys = [f"kompute:{subject.kompute_id}"] if subject.kompute_id else []
        keys.append(f"instance:{subject.instance['_id']}")
        # The instance's own owners stay held for the whole move (a deletion waits for it); the zones' owners,
        # shared, for the claim only.
        return self.owners.run_all(keys, lambda: self._commit(subject, plan_id))

    def _commit(self, subject: Subject, plan_id: str) -> models.Instance:
        instance_id = str(subject.instance["_id"])
        plan = self._live_plan(plan_id)  # consumed by whoever got here first
        target = self.db.kaktuses.find_one({"_id": ObjectId(plan["target_kaktus_id"])})
        if target is None:
            self.db.kmotion_plans.delete_many({"_id": plan["_id"]})
            raise Unprocessable(f"the target Kaktus {plan['target_kaktus_id']} of kMotion plan {plan_id} no longer "
                                f"exists: plan again")
        # Read in the instance's owner, where its groups change: the owners taken below are the current ones.
        current = self.db.instances.get(instance_id)
        group_ids = list(current.get("kwarantine_ids") or [])
        zone_keys = [f"zone:{zone_id}" for zone_id in sorted({current["zone_id"], target["zone_id"]})]
        instance, move = self.owners.run_all(zone_keys + self.kwarantines.owner_keys(group_ids),
                                             lambda: self._claim(subject, plan, group_ids))
        source = self.db.kaktuses.get(move["source_kaktus_id"])
        rollback = Rollback()
        try:
            with rollback:
                rollback.push("put the instance back on its source",
                              lambda: self._back_on_source(instance_id, move, rollback.failed), always=True)
                if move["live"]:
                    self._move_live(instance, source, target, move, rollback)
                else:
                    self._move_cold(instance, source, target, move, rollback)
        except AgentError as exc:
            outcome = f"it is back on {source['name']}" if not rollback.failed else (
                f"putting it back on {source['name']} could not finish ({'; '.join(rollback.failed)}): crash "
                f"recovery completes it once the agents answer")
            raise type(exc)(f"kMotion of {subject.label} from {source['name']} to {target['name']} failed, and "
                            f"{outcome}: {exc.reason}") from exc
        return self._finish(instance_id, move)

    def _claim(self, subject: Subject, plan: models.KMotionPlan,
               group_ids: list[str]) -> tuple[models.Instance, Move]:
        """In the owners of both zones (and of the groups *group_ids*): check everything again, then take the
        target's room."""
        instance = self.db.instances.get(str(subject.instance["_id"]))
        current = Subject(instance, subject.kompute_id)
        self.db.kmotion_plans.delete(plan["_id"])  # single use, from here whatever happens
        if sorted(set(instance.get("kwarantine_ids") or [])) != sorted(set(group_ids)):
            raise Conflict(f"the Kwarantine groups of {current.label} changed meanwhile: plan again")
        if not instance.get("kmotion_enabled", True):
            raise Unprocessable(f"kMotion is disabled for {current.label} (kmotion_enabled is false)")
        self._check_ready(current)
        if instance["kaktus_id"] != plan["source_kaktus_id"]:
            raise Unprocessable(f"{current.label} is no longer on the Kaktus this plan moves it from: plan again")
        target = self._check_manual(instance, plan["target_kaktus_id"])
        source = self.db.kaktuses.get(plan["source_kaktus_id"])
        if plan["live"]:
            self._check_live(source, target)
        move: Move = {"plan_id": str(plan["_id"]), "source_kaktus_id": instance["kaktus_id"],
                      "source_zone_id": instance["zone_id"], "target_kaktus_id": str(target["_id"]),
                      "target_zone_id": target["zone_id"], "live": plan["live"], "was_running": False, "xml": "",
                      "step": "claimed"}
        # On the target from now on: its room is held there while the agents work.
        return self.db.instances.update(instance["_id"], {"kaktus_id": move["target_kaktus_id"],
                                                          "zone_id": move["target_zone_id"], "state": UPDATING,
                                                          "kmotion": move}), move

    def _step(self, instance_id: str, move: Move, step: str, was_running: bool | None = None,
              xml: str | None = None) -> None:
        """Write down the step about to be taken (and what the move learnt) before the agents hear of it."""
        move["step"] = step
        if was_running is not None:
            move["was_running"] = was_running
        if xml is not None:
            move["xml"] = xml
        self.db.instances.update(instance_id, {"kmotion": move})

    def _call(self, kaktus: models.Kaktus, method: rpc.Method[rpc.P, rpc.R], params: rpc.Params[rpc.P]) -> rpc.R:
        return self.agents.call_any(kaktus["agent_ids"], method, params)

    def _power(self, kaktus: models.Kaktus, name: str, action: int) -> None:
        self._call(kaktus, rpc.kaktus.InstanceOperation, {"Name": name, "Action": action})

    def _is_running(self, kaktus: models.Kaktus, name: str) -> bool:
        return self._call(kaktus, rpc.kaktus.InstanceIsRunning, {"Name": name})["Running"]

    def _stop(self, kaktus: models.Kaktus, name: str) -> None:
        """A graceful shutdown, then a forced power-off once the grace period is over."""
        self._power(kaktus, name, InstanceAction.SOFT_SHUTDOWN)
        deadline = time.monotonic() + self.shutdown_grace_seconds
        while self._is_running(kaktus, name):
            if time.monotonic() >= deadline:
                log.info("instance %s ignored its shutdown for %gs: powered off", name, self.shutdown_grace_seconds)
                self._power(kaktus, name, InstanceAction.HARD_SHUTDOWN)
                return
            time.sleep(min(SHUTDOWN_POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    def _move_cold(self, instance: models.Instance, source: models.Kaktus, target: models.Kaktus, move: Move,
                   undo: Undo) -> None:
        instance_id, name = str(instance["_id"]), instance["name"]
        was_running = self._is_running(source, name)
        xml = self._call(source, rpc.kaktus.GetInstance, {"Name": name, "Migratable": True})["XML"]
        retargeted = self._retarget(instance, xml, target)
        self._step(instance_id, move, "stopping", was_running=was_running, xml=xml)
        # Each undo step is registered before the call it takes back (whose answer may be lost after it was
        # carried out) and finds out where the domain is before acting.
        if was_running:
            undo.push(f"start {name} again on {source['name']}", lambda: self._start(source, name, True))
            self._stop(source, name)
        # Off for good before its definition goes (a no-op on a domain that is off): a domain undefined while it
        # runs runs on, transient, while the target starts another copy on the same disks.
        self._power(source, name, InstanceAction.HARD_SHUTDOWN)
        if self._is_running(source, name):
            raise AgentCallFailed(f"instance {name} still runs on {source['name']} after its power-off")
        self._step(instance_id, move, "undefining")
        undo.push(f"define {name} again on {source['name']}", lambda: self._define(source, name, xml))
        self._call(source, rpc.kaktus.DeleteInstance, {"Name": name})
        self._step(instance_id, move, "defining")
        undo.push(f"undefine {name} on {target['name']}", lambda: self._undefine(target, name))
        self._call(target, rpc.kaktus.CreateInstance, {"Name": name, "XML": retargeted})
        self._step(instance_id, move, "starting")
        self._start(target, name, was_running)

    def _move_live(self, instance: models.Instance, source: models.Kaktus, target: models.Kaktus, move: Move,
                   undo: Undo) -> None:
        instance_id, name = str(instance["_id"]), instance["name"]
        if not self._is_running(source, name):
            # Nothing runs, so nothing can be interrupted: the domain's definition moves as in a cold move.
            self._move_cold(instance, source, target, move, undo)
            return
        xml = self._call(source, rpc.kaktus.GetInstance, {"Name": name, "Migratable": True})["XML"]
        retargeted = self._retarget(instance, xml, target)
        self._step(instance_id, move, "migrating", was_running=True, xml=xml)
        uri = self._call(target, rpc.kaktus.PrepareMigration, {"Name": name, "XML": retargeted})["URI"]
        # A migration that failed leaves the domain on the source, but one whose answer was lost may not have:
        # wherever it is, it is brought back to the source.
        undo.push(f"bring {name} back to {source['name']}", lambda: self._recover_on_source(instance_id, move))
        self._call(source, rpc.kaktus.MigrateInstance,
                   {"Name": name, "XML": retargeted, "DestinationURI": uri, "Live": True})
        self._step(instance_id, move, "starting")
        try:  # sets autostart, then fails "already running" (the released agent starts it too): expected
            self._power(target, name, InstanceAction.AUTO_START)
        except AgentCallFailed as exc:  # it runs on the target: only its start at the node's boot may be missing
            log.info("instance %s moved live to %s; its autostart: %s", name, target["name"], exc.reason)

    def _start(self, kaktus: models.Kaktus, name: str, was_running: bool) -> None:
        """Start the guest on *kaktus* if it was running and is not: ``AUTO_START`` (autostart set, then started,
        as every creation), never ``START`` (both fail on a running guest); a stopped guest stays stopped."""
        if was_running and not self._is_running(kaktus, name):
            self._power(kaktus, name, InstanceAction.AUTO_START)

    def _define(self, kaktus: models.Kaktus, name: str, xml: str) -> None:
        """Define the domain on *kaktus* unless it is (defining does not start it)."""
        if not self._defined_on(kaktus, name):
            self._call(kaktus, rpc.kaktus.CreateInstance, {"Name": name, "XML": xml})

    def _undefine(self, kaktus: models.Kaktus, name: str) -> None:
        """Power the domain off (a no-op when it is off) and undefine it, if *kaktus* has it."""
        if self._defined_on(kaktus, name):
            self._power(kaktus, name, InstanceAction.HARD_SHUTDOWN)
            self._call(kaktus, rpc.kaktus.DeleteInstance, {"Name": name})

    def _retarget(self, instance: models.Instance, xml: str, target: models.Kaktus) -> str:
        """The domain as the target defines it, rebuilt from what Kahuna stores of the instance (disks, seed, NICs,
        firmware: :meth:`InstanceService.domain_xml`, with the target's emulator), not from the source agent's
        XML; only the guest's machine type is taken from it (libvirt keeps the guest's ABI when it migrates a
        domain, and so does a cold move)."""
        rebuilt = ET.fromstring(self.instances.domain_xml(instance, target))
        os_type, running = rebuilt.find("os/type"), ET.fromstring(xml).find("os/type")
        if os_type is not None and running is not None:
            if running.get("arch") not in (None, os_type.get("arch")):
                raise Unprocessable(f"Kaktus {target['name']} is a {os_type.get('arch')} node; the domain runs "
                                    f"{running.get('arch')}")
            if running.get("machine"):
                os_type.set("machine", running.get("machine", ""))
        return ET.tostring(rebuilt, encoding="unicode")

    def _back_on_source(self, instance_id: str, move: Move, failed: typing.Sequence[str] = ()) -> None:
        """The instance's record back on the source, unless the agents' rollback failed (*failed*): then the move
        is left stranded, for crash recovery to resolve from where the domain is (the definition is written)."""
        if failed:
            self.db.instances.update(instance_id, {"kmotion.stranded": True})
            return
        self.db.instances.update(instance_id, {"kaktus_id": move["source_kaktus_id"],
                                               "zone_id": move["source_zone_id"], "state": READY},
                                 extra={"$unset": {"kmotion": ""}})

    def _finish(self, instance_id: str, move: Move) -> models.Instance:
        return self.db.instances.update(instance_id, {"kaktus_id": move["target_kaktus_id"],
                                                      "zone_id": move["target_zone_id"], "state": READY},
                                        extra={"$unset": {"kmotion": ""}})

    # -- crash recovery -------------------------------------------------------------------

    def _defined_on(self, kaktus: models.Kaktus, name: str) -> bool:
        """Whether *kaktus* has the domain; any error but libvirt's "Domain not found" (libvirt away, no agent)
        is raised: the caller cannot tell, and must not act as if the domain were nowhere."""
        try:
            self._call(kaktus, rpc.kaktus.GetInstanceState, {"Name": name})
        except AgentCallFailed as exc:
            if any(sign in exc.reason for sign in DOMAIN_NOT_FOUND):
                return False
            raise
        return True

    def _recover_on_source(self, instance_id: str, move: Move) -> None:
        """Have the domain defined (and running, if it was) on the source and nowhere else."""
        instance = self.db.instances.get(instance_id)
        name = instance["name"]
        source = self.db.kaktuses.get(move["source_kaktus_id"])
        target = self.db.kaktuses.get(move["target_kaktus_id"])
        self._undefine(target, name)
        # The definition read from the source before it forgot it; else (the move never got that far, and the
        # source has it) what Kahuna stores.
        self._define(source, name, move["xml"] or self.instances.domain_xml(instance, source))
        self._start(source, name, move["was_running"])

    def resolve(self, instance: models.Instance) -> str:
        """Finish or roll back the move a dead process left *instance* in, from where its domain is defined
        (AgentError while the agents of both nodes cannot tell); ``"finished"`` or ``"rolled back"``, or
        ``"already resolved"`` when, read again in the instance's owner, the move is over."""
        move = move_of(instance)
        if move is None:
            raise ValueError(f"instance {instance['name']} is not being moved")
        instance_id = str(instance["_id"])
        return self.owners.run(f"instance:{instance_id}", lambda: self._resolve(instance_id))

    def _resolve(self, instance_id: str) -> str:
        # Read again in the owner: the move may have been resolved (or finished) meanwhile.
        instance = self.db.instances.find_one({"_id": ObjectId(instance_id)})
        move = move_of(instance) if instance is not None else None
        if instance is None or move is None:
            return "already resolved"
        name = instance["name"]
        source = self.db.kaktuses.get(move["source_kaktus_id"])
        target = self.db.kaktuses.get(move["target_kaktus_id"])
        on_target, on_source = self._defined_on(target, name), self._defined_on(source, name)
        if on_target and not on_source:
            # Defined where it goes: only starting it may be missing.
            self._start(target, name, move["was_running"])
            self._finish(instance_id, move)
            log.warning("kMotion of %s cut short by a crash: finished on %s", name, target["name"])
            return "finished"
        self._recover_on_source(instance_id, move)
        self._back_on_source(instance_id, move)
        log.warning("kMotion of %s cut short by a crash: rolled back to %s", name, source["name"])
        return "rolled back"
