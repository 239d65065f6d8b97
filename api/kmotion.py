"""kMotion (API 0.58): moving an instance or a Kompute to another Kaktus node, planned then committed.

The same two operations for each kind (``PlanInstanceKMotion``, ``CommitKomputeKMotion``...): the service is told
what is moved (an instance, or a Kompute through its instance) and does the rest.
"""

from __future__ import annotations

import typing

from flask.views import MethodView

from api.blueprint import Blueprint, empty, services
from api.schemas.kmotion import KMotionCommitRequestSchema, KMotionPlanRequestSchema, KMotionPlanSchema
from kahuna.services.kmotion import KMotionService, Subject

blp = Blueprint("kmotion", __name__, description="kMotion: host migration of instances and Komputes.")


def _kmotion_routes(kind: str, subject: typing.Callable[[KMotionService, str], Subject]) -> None:
    """``POST /<kind>/{id}/kmotion/plan`` and ``PATCH /<kind>/{id}/kmotion/commit``."""
    name = kind.capitalize()

    def post(self: MethodView, request: dict[str, typing.Any], **ids: str) -> typing.Any:
        kmotion = services().kmotion
        return kmotion.plan(subject(kmotion, ids[f"{kind}Id"]), request["destination"], request["kaktus"],
                            request["live"])

    def patch(self: MethodView, request: dict[str, typing.Any], **ids: str) -> typing.Any:
        kmotion = services().kmotion
        kmotion.commit(subject(kmotion, ids[f"{kind}Id"]), request["plan"])
        return empty()

    plan = blp.operation(f"Plan{name}KMotion")(blp.arguments(KMotionPlanRequestSchema)(
        blp.response(201, KMotionPlanSchema)(post)))
    commit = blp.operation(f"Commit{name}KMotion")(blp.arguments(KMotionCommitRequestSchema)(
        blp.response(200)(patch)))
    blp.route(f"/{kind}/<{kind}Id>/kmotion/plan")(type(f"{name}KMotionPlan", (MethodView,), {"post": plan}))
    blp.route(f"/{kind}/<{kind}Id>/kmotion/commit")(type(f"{name}KMotionCommit", (MethodView,), {"patch": commit}))


_kmotion_routes("instance", KMotionService.instance_subject)
_kmotion_routes("kompute", KMotionService.kompute_subject)
