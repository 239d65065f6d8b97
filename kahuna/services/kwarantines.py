"""Kwarantine (API 0.58): a project's anti-affinity groups. A group's members (instances, and Komputes through
their instance) never share a Kaktus node (``host`` policy) or a zone (``zone`` policy)."""

from __future__ import annotations

import typing

from kahuna.services._common import Owners
from kahuna.services.projects import ProjectService
from kahuna.storage import Database


class KwarantineService:
    def __init__(self, db: Database, owners: Owners, projects: ProjectService):
        self.db = db
        self.owners = owners
        self.projects = projects

    def exclusions(self, group_ids: typing.Iterable[str], project_id: str,
                   member_id: str | None = None) -> frozenset[str]:
        """The Kaktus ids an instance of *project_id* in the groups *group_ids* must not be placed on (the nodes,
        or every node of the zones, of the groups' other members; *member_id*: the instance itself, not counted)."""
        raise NotImplementedError("Kwarantine placement exclusions")
