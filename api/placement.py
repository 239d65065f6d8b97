"""Placement routes of API 0.58: Kaktus maintenance, and instances and Komputes created region-wide (Kahuna
elects the zone and the node)."""

from __future__ import annotations

from api.blueprint import Blueprint

blp = Blueprint("placement", __name__, description="Kaktus maintenance and region-wide placement.")
