"""Crash recovery: finish or undo every multi-step operation that a dead process left half-way.

A creation or deletion that needs agents moves an object through ``creating`` ->
``ready`` (or ``deleting`` -> gone), and writes down, before each agent call, what it
is about to make: volumes carry ``instance_id``, adapters and Kontroller agents
``made_for``, an instance its ``dns_domain`` before its host name reaches the Kiwis, a
Kompute's instance ``kompute: true``. So the documents alone say what a crash left
behind, whatever the moment of the kill -9.

When a node becomes the writer (start-up, or taking the HA lease), no operation of its
own is in flight; every object still ``creating`` or ``deleting`` is then a leftover:
:meth:`Recovery.sweep` marks it ``failed`` at once (nothing stays ``creating``), and
takes back any half-made change (``updating``: the size before the change). Then
:meth:`Recovery.clean_up` destroys the ``failed`` objects, on the agents and in the
database; one whose agents are not connected yet is left ``failed`` and tried again on
the next call (the daemon calls it periodically). A ``failed`` object can also be
deleted through the API like any other.

A kMotion cut short (an instance ``updating`` with a ``kmotion`` record) is neither: the sweep marks the move
stranded, and the clean-up asks both Kaktus nodes where the domain is defined, then finishes the move on the
target or rolls it back to the source (:meth:`kahuna.services.kmotion.KMotionService.resolve`). The clean-up also
prunes the expired kMotion plans.
"""

from __future__ import annotations

import logging
import typing
from dataclasses import dataclass, field

from bson import ObjectId

from kahuna.errors import AgentError, KahunaError
from kahuna.services._common import CREATING, DELETING, FAILED, UPDATING
from kahuna.storage import Database, models

log = logging.getLogger(__name__)

#: The collections whose objects are made in several steps, in the order their leftovers are cleaned up
#: (an owner before what it owns: a Kawaii before its Komputes, a Kompute before its instance).
MULTI_STEP = ("kawaii", "konvey", "kylo", "kompute", "instance", "volume", "project")


@dataclass
class Report:
    failed: dict[str, int] = field(default_factory=dict)  # leftovers found, by collection
    restored: int = 0  # half-made changes taken back
    stranded: int = 0  # kMotions cut short, left for the clean-up to resolve
    moves: dict[str, int] = field(default_factory=dict)  # kMotions resolved: finished, rolled back
    cleaned: dict[str, int] = field(default_factory=dict)  # leftovers destroyed, by collection
    waiting: int = 0  # leftovers whose agents are not connected yet

    @property
    def anything(self) -> bool:
        return bool(self.failed or self.restored or self.cleaned or self.waiting or self.stranded or self.moves)


class Recovery:
    def __init__(self, db: Database, services: typing.Any):
        self.db = db
        self.services = services
        # The lease token this process last swept for; touched only by whoever makes this node the writer
        # (start-up, or the HA lease keeper actor), one at a time.
        self._swept_for: int | None = None

    def take_over(self, lease_token: int = 0) -> Report:
        """This node becomes the writer under *lease_token*: sweep, unless it already did for that token (it
        held the lease all along, so what is in flight is its own, and alive)."""
        if lease_token == self._swept_for:
            return Report()
        report = self.sweep()
        self._swept_for = lease_token
        return report

    def sweep(self) -> Report:
        """Mark every leftover ``failed`` and take back half-made changes (database only, no agent)."""
        report = Report()
        for collection in MULTI_STEP:
            result = self.db.db[collection].update_many({"state": {"$in": [CREATING, DELETING]}},
                                                        {"$set": {"state": FAILED}})
            if result.modified_count:
                report.failed[collection] = result.modified_count
        # A Kompute's instance whose Kompute record was never written.
        kompute_instance_ids = {k["instance_id"] for k in self.db.komputes.find({}, projection={"instance_id": 1})}
        for instance in self.db.instances.find({"kompute": True}, projection={"_id": 1}):
            if str(instance["_id"]) not in kompute_instance_ids:
                self.db.instances.update(instance["_id"], {"state": FAILED})
                report.failed["instance"] = report.failed.get("instance", 0) + 1
        # A Kompute whose instance is gone (its deletion was cut short).
        for kompute in self.db.komputes.find({"state": {"$ne": FAILED}}):
            if not self.db.instances.exists({"_id": ObjectId(kompute["instance_id"])}):
                self.db.komputes.update(kompute["_id"], {"state": FAILED})
                report.failed["kompute"] = report.failed.get("kompute", 0) + 1
        # A kMotion cut short: the agents must say where the domain is; the clean-up resolves it.
        stranded = self.db.db["instance"].update_many({"state": UPDATING, "kmotion": {"$exists": True}},
                                                      {"$set": {"kmotion.stranded": True}})
        report.stranded = stranded.modified_count
        # A resize or a growth cut short: back to the size before (the agent may have applied the new
        # definition; it takes effect only at the next change, and the quota never counted less).
        for collection in ("instance", "volume"):
            for document in self.db.db[collection].find({"state": UPDATING, "kmotion": {"$exists": False}}):
                self.db.db[collection].update_one({"_id": document["_id"]},
                                                  {"$set": {**document.get("previous", {}), "state": "ready"},
                                                   "$unset": {"previous": ""}})
                report.restored += 1
        if report.failed or report.restored or report.stranded:
            log.warning("crash recovery: leftovers marked failed %s, changes taken back %d, kMotions to resolve %d",
                        report.failed, report.restored, report.stranded)
        return report

    def clean_up(self) -> Report:
        """Destroy the ``failed`` objects whose agents are reachable; the others wait for the next call."""
        report = Report()
        s = self.services
        # Each takes a document of its own collection (read below by collection name, hence Any).
        destroyers: dict[str, typing.Callable[[typing.Any], None]] = {
            "kawaii": s.kawaiis.destroy_leftover,
            "konvey": s.konveys.destroy_leftover,
            "kylo": lambda kylo: s.kylos.delete(str(kylo["_id"])),
            "kompute": s.komputes.destroy_leftover,
            "instance": self._destroy_instance,
            "volume": s.volumes.destroy,
            "project": s.projects.finish_deletion,
        }
        s.kmotion.prune()
        for instance in self.db.instances.find({"kmotion.stranded": True}):
            try:
                outcome = s.kmotion.resolve(instance)
            except (AgentError, KahunaError) as exc:
                report.waiting += 1
                log.info("crash recovery: the kMotion of instance %s waits: %s", instance["name"], exc.reason)
                continue
            report.moves[outcome] = report.moves.get(outcome, 0) + 1
        touched_projects: set[str] = set()
        for collection in MULTI_STEP:
            for document in self.db.db[collection].find({"state": FAILED}):
                try:
                    destroyers[collection](document)
                except (AgentError, KahunaError) as exc:
                    report.waiting += 1
                    log.info("crash recovery: %s %s waits: %s", collection, document.get("name"), exc.reason)
                    continue
                report.cleaned[collection] = report.cleaned.get(collection, 0) + 1
                if collection in ("kawaii", "konvey"):
                    touched_projects.add(document["project_id"])
        for project_id in touched_projects:
            if self.db.projects.exists({"_id": ObjectId(project_id)}):
                s.projects.reclaim_vrrp_ids(project_id)
        if report.cleaned or report.moves:
            log.warning("crash recovery: leftovers destroyed %s, kMotions resolved %s (%d waiting for their agents)",
                        report.cleaned, report.moves, report.waiting)
        return report

    def _destroy_instance(self, instance: models.Instance) -> None:
        kompute = self.db.komputes.find_one({"instance_id": str(instance["_id"])})
        if kompute is not None:
            self.services.komputes.destroy_leftover(kompute)
        else:
            self.services.instances.destroy_leftover(instance)

    def pending(self) -> int:
        moves: int = self.db.instances.count({"kmotion.stranded": True}) + self.services.kmotion.expired_plans()
        failed: int = sum(self.db.db[collection].count_documents({"state": FAILED}) for collection in MULTI_STEP)
        return failed + moves
