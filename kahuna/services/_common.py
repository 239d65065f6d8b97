"""Helpers shared by the services of objects that have parents and children."""

from __future__ import annotations

import typing

from bson import ObjectId

from kahuna.errors import Conflict, NotFound, Unprocessable
from kahuna.storage import Database, Documents, models

T = typing.TypeVar("T")
P = typing.ParamSpec("P")
DocT = typing.TypeVar("DocT", bound=typing.Mapping[str, typing.Any])

#: The life of an object made in several steps: ``creating`` (claimed, agents at work), then
#: ``ready``; ``updating`` while agents apply a change claimed for it; ``deleting`` once its deletion
#: started; ``failed`` when no operation is at work on it any more but it is not whole (a crash, or a
#: deletion that could not finish): the clean-up of failed objects takes it back. Only ``ready`` objects
#: are used by others or changed.
CREATING, READY, UPDATING, DELETING, FAILED = "creating", "ready", "updating", "deleting", "failed"


class Owners(typing.Protocol):
    """Runs a check-then-act in the owner of each key (``actors.Serializer``)."""

    def run(self, key: str, function: typing.Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    def run_all(self, keys: typing.Iterable[str], function: typing.Callable[[], T]) -> T: ...


class _HasProjects(typing.Protocol):
    def get(self, project_id: str) -> models.Project: ...


def live_project(db: Database, project_id: str) -> models.Project:
    """The project, which must exist and not be half created or being deleted (to be called in its owner)."""
    project = db.projects.get(project_id)
    if project.get("state", READY) != READY:
        raise NotFound(f"project {project_id} does not exist")
    return project


def insert_owned(owners: Owners, db: Database, project_id: str, documents: Documents[DocT],
                 fields: typing.Mapping[str, typing.Any], conflict: str) -> DocT:
    """Insert an object of *project_id* in the project's owner, so that it cannot outlive a deletion of the
    project decided at the same moment."""
    def insert() -> DocT:
        live_project(db, project_id)
        return documents.insert({**fields, "project_id": project_id}, conflict=conflict)

    return owners.run(f"project:{project_id}", insert)


def insert_child(owners: Owners, parent_key: str, parents: Documents[typing.Any], parent_id: str,
                 documents: Documents[DocT], fields: typing.Mapping[str, typing.Any], conflict: str) -> DocT:
    """Insert a child of *parent_id* in the parent's owner (``<parent_key>:<id>``), where the parent is deleted
    only if childless: the child never outlives its parent."""
    def insert() -> DocT:
        parents.get(parent_id)
        return documents.insert(fields, conflict=conflict)

    return owners.run(f"{parent_key}:{parent_id}", insert)


def delete_if_childless(owners: Owners, db: Database, key: str, documents: Documents[DocT], doc_id: str, what: str,
                        children: typing.Iterable[tuple[str, str, str]]) -> DocT:
    """Delete *doc_id* in its owner (``<key>:<id>``), where its children are inserted, unless it still has
    some (409); return it as it was."""
    def delete() -> DocT:
        parent = documents.get(doc_id)
        refuse_if_children(db, parent, what, children)
        documents.delete(doc_id)
        return parent

    return owners.run(f"{key}:{doc_id}", delete)


def refuse_if_children(db: Database, parent: typing.Mapping[str, typing.Any], what: str,
                       children: typing.Iterable[tuple[str, str, str]]) -> None:
    """409 when any (collection, parent field, label) still holds a child of *parent*."""
    parent_id = str(parent["_id"])
    held = [label for collection, field, label in children
            if db.db[collection].find_one({field: parent_id}, {"_id": 1})]
    if held:
        raise Conflict(f"{what} {parent['name']} still has {', '.join(held)}: delete them first")


def child_of(documents: Documents[DocT], child_id: str, parent_field: str, parent_id: str) -> DocT:
    """The child *child_id*, which must belong to *parent_id* (404 otherwise)."""
    child = documents.get(child_id)
    if child.get(parent_field) != parent_id:
        raise NotFound(f"{documents.kind} {child_id} does not belong to this parent")
    return child


def agents_of_type(db: Database, agent_ids: list[str], agent_type: str) -> list[str]:
    """*agent_ids* de-duplicated; 422 naming any that is unknown or not a *agent_type* agent."""
    wanted = list(dict.fromkeys(agent_ids))
    found = {str(a["_id"]): a["type"] for a in db.agents.find(
        {"_id": {"$in": [ObjectId(i) for i in wanted if ObjectId.is_valid(i)]}}, projection={"type": 1})}
    wrong = [i for i in wanted if found.get(i) != agent_type]
    if wrong:
        raise Unprocessable(f"not {agent_type} agent(s): {', '.join(wrong)}")
    return wanted


def set_default_if_none(documents: Documents[typing.Any], parent_id: str, field: str, child_id: str) -> None:
    """Make *child_id* the parent's default *field* unless it has one (atomic, so two creations cannot both win)."""
    documents.collection.update_one(
        {"_id": ObjectId(parent_id), "$or": [{field: {"$exists": False}}, {field: ""}, {field: None}]},
        {"$set": {field: child_id}})


def clear_default(documents: Documents[typing.Any], parent_id: str, field: str, child_id: str) -> None:
    documents.collection.update_one({"_id": ObjectId(parent_id), field: child_id}, {"$set": {field: ""}})


def owned_ids(documents: Documents[typing.Any], projects: _HasProjects, project_id: str | None,
              **scope: typing.Any) -> list[str]:
    """Every id of a kind of project-owned object, or those of one project (404 for an unknown project), in
    the *scope* given (e.g. ``region_id=...``: only those of that region)."""
    if project_id is None:
        return documents.ids(scope or None)
    projects.get(project_id)
    return documents.ids({"project_id": project_id, **scope})


def child_ids(parents: Documents[typing.Any], documents: Documents[typing.Any], parent_field: str,
              parent_id: str | None) -> list[str]:
    """Every id of *documents*, or those whose *parent_field* is *parent_id* (404 for an unknown parent)."""
    if parent_id is None:
        return documents.ids()
    parents.get(parent_id)
    return documents.ids({parent_field: parent_id})


def instance_ids_in_zone(db: Database, zone_id: str) -> list[str]:
    """The instances of zone *zone_id*, which Komputes and Konvey VMs are (404 for an unknown zone)."""
    db.zones.get(zone_id)
    return db.instances.ids({"zone_id": zone_id})
