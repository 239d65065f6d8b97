"""kMotion (API 0.58): the plan request, the plan, and the commit request (KMotionPlanRequest, KMotionPlan,
KMotionCommitRequest)."""

from __future__ import annotations

import typing

from marshmallow import fields, pre_dump, validate

from api.schemas.common import ApiSchema, Boolean, ObjectIdString
from kahuna.services.kmotion import DESTINATIONS


class KMotionPlanRequestSchema(ApiSchema):
    destination = fields.String(load_default="auto", validate=validate.OneOf(DESTINATIONS), metadata={
        "description": 'How the destination Kaktus computing node must be elected: "manual" (see kaktus), "zone" '
                       '(the least busy node of the instance\'s zone), "region" (the least busy node of its region) '
                       'or "auto" (across the region).'})
    kaktus = fields.String(load_default=None, metadata={
        "description": "The explicit target Kaktus computing node ID. Only used (and required) when destination is "
                       "manual."})
    live = Boolean(load_default=True, metadata={
        "description": "Whether the kMotion must be live, without any service interruption (released Kaktus agents "
                       "cannot: plan with false), or the instance can be shut down and restarted on its new host."})


class KMotionPlanSchema(ApiSchema):
    id = ObjectIdString(metadata={"readOnly": True, "description": "The kMotion plan ID (auto-generated) (read-only)."})
    instance = fields.String(required=True, metadata={
        "description": "The ID of the virtual machine instance this kMotion plan applies to (of the Kompute, for a "
                       "Kompute's plan)."})
    source = fields.String(required=True, metadata={"description": "The ID of the Kaktus computing node currently "
                                                                   "hosting the instance."})
    target = fields.String(required=True, metadata={"description": "The ID of the Kaktus computing node elected to "
                                                                   "host the instance once the kMotion completes."})
    live = Boolean(required=True, metadata={"description": "Whether the plan is for a live kMotion."})

    @pre_dump
    def _from_plan(self, plan: typing.Mapping[str, typing.Any], **_: typing.Any) -> dict[str, typing.Any]:
        return {"_id": plan["_id"], "instance": plan["kompute_id"] or plan["instance_id"],
                "source": plan["source_kaktus_id"], "target": plan["target_kaktus_id"], "live": plan["live"]}


class KMotionCommitRequestSchema(ApiSchema):
    plan = fields.String(required=True, validate=validate.Length(min=1), metadata={
        "description": "The ID of the previously computed kMotion plan to execute."})
