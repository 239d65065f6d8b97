"""kMotion (API 0.58): moving an instance or a Kompute to another Kaktus node, planned then committed."""

from __future__ import annotations

from api.blueprint import Blueprint

blp = Blueprint("kmotion", __name__, description="kMotion: host migration of instances and Komputes.")
