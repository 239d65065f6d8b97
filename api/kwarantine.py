"""The kwarantine tag (API 0.58): a project's anti-affinity groups of instances and Komputes."""

from __future__ import annotations

from api.blueprint import Blueprint

blp = Blueprint("kwarantine", __name__, description="Kwarantine: anti-affinity groups of a project's instances.")
