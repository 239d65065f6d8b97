"""Schemas of the compute and service tags: volume, instance, kompute, kylo, kawaii, konvey."""

from __future__ import annotations

import typing

from marshmallow import fields, pre_dump, validate

from api.schemas.common import ApiSchema, Boolean, Integer, List, ObjectIdString, QuerySchema, read_only
from api.schemas.updates import update_schema
from kahuna.services.kawaii import KawaiiDetails
from kahuna.services.komputes import KomputeDetails
from kahuna.services.kylos import KyloDetails

NAME = validate.Length(min=1, max=63)
DESCRIPTION = validate.Length(max=1024)
POSITIVE64 = validate.Range(min=1, max=2**63 - 1)
PROTOCOL = validate.OneOf(["tcp", "udp"])
POLICY = validate.OneOf(["accept", "drop"])
DH_GROUPS = validate.OneOf([2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24])
INTEGRITY = validate.OneOf(["SHA1", "SHA256", "SHA384", "SHA512"])
ENCRYPTION = validate.OneOf(["AES128", "AES256", "CAMELLIA128", "CAMELLIA256"])


def _name():
    return fields.String(required=True, validate=NAME)


def _description():
    return fields.String(load_default="", validate=DESCRIPTION)


def _int64(**kwargs):
    return Integer(metadata={"format": "int64"}, **kwargs)


PORT = validate.Range(min=1, max=65535)


def _kwarantines():
    """Creation-only: the Kwarantine groups a new instance joins; then read back, changed by the Kwarantine routes."""
    return List(fields.String(), attribute="kwarantine_ids", load_default=list, dump_default=list,
                metadata={"description": "IDs of the Kwarantine groups it belongs to (set at creation, then through "
                                         "the Kwarantine routes; ignored on updates)."})


def _uefi():
    """Creation-only. Absent means BIOS, as before 0.58 (the 0.58 SDK always sends it; a 0.53.2 client never)."""
    return Boolean(load_default=False, dump_default=False,
                   metadata={"description": "Boots with UEFI firmware rather than BIOS (set at creation, ignored on "
                                            "updates; absent: BIOS)."})


def _kmotion_enabled():
    return Boolean(load_default=True, dump_default=True,
                   metadata={"description": "Whether kMotion may move it to another Kaktus."})


#: Fields set at creation only: an update carrying them leaves them as they are.
INSTANCE_CREATION_ONLY = ("kwarantines", "uefi")


class VolumeSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    # "iso" and "template" are listed by the contract but not created through the API (422).
    type = fields.String(required=True, validate=validate.OneOf(["os", "iso", "raw", "template"]))
    size = _int64(required=True, validate=POSITIVE64)


class InstanceSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    memory = _int64(required=True, validate=POSITIVE64)
    vcpus = _int64(required=True, validate=validate.Range(min=1, max=1024))
    adapters = List(fields.String(), attribute="adapter_ids", load_default=None)
    volumes = List(fields.String(), attribute="volume_ids", load_default=None)
    kwarantines = _kwarantines()
    uefi = _uefi()
    kmotion_enabled = _kmotion_enabled()


class InstanceStateSchema(ApiSchema):
    state = fields.String(required=True)
    reason = fields.String(required=True)


class InstanceRemoteAccessSchema(ApiSchema):
    url = fields.String(required=True)


class KomputeSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    memory = _int64(required=True, validate=POSITIVE64)
    vcpus = _int64(required=True, validate=validate.Range(min=1, max=1024))
    disk = _int64(required=True, validate=POSITIVE64)
    data_disk = _int64(load_default=0, validate=validate.Range(min=0, max=2**63 - 1))
    ip = read_only(fields.String())
    kwarantines = _kwarantines()
    uefi = _uefi()
    kmotion_enabled = _kmotion_enabled()

    @pre_dump
    def _from_details(self, details: KomputeDetails, **_: typing.Any) -> dict[str, typing.Any]:
        # A Kompute's Kwarantine membership, firmware and kMotion switch are its instance's.
        instance, sizes = details.instance, details.disk_sizes
        return {"_id": details.kompute["_id"], "name": instance["name"], "description": instance["description"],
                "memory": instance["memory"], "vcpus": instance["vcpus"], "disk": sizes[0] if sizes else 0,
                "data_disk": sizes[1] if len(sizes) > 1 else None, "ip": details.private_ip,
                "kwarantine_ids": instance.get("kwarantine_ids", []), "uefi": instance.get("uefi", False),
                "kmotion_enabled": instance.get("kmotion_enabled", True)}


class KomputeQuerySchema(QuerySchema):
    poolId = fields.String(load_default=None)
    templateId = fields.String(load_default=None)
    public = fields.Boolean(load_default=False)


class VolumeQuerySchema(QuerySchema):
    poolId = fields.String(load_default=None)
    templateId = fields.String(load_default=None)


class NfsQuerySchema(QuerySchema):
    nfsId = fields.String(load_default=None)


class KyloSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    access = fields.String(load_default="RW", validate=validate.OneOf(["RO", "RW"]))
    protocols = List(Integer(validate=validate.OneOf([3, 4])), load_default=lambda: [3, 4])
    endpoint = read_only(fields.String())
    size = read_only(_int64())

    @pre_dump
    def _from_details(self, details: KyloDetails, **_: typing.Any) -> dict[str, typing.Any]:
        return {**details.kylo, "endpoint": details.endpoint}


# -- Kawaii -------------------------------------------------------------------------


class KawaiiNetIpZoneSchema(ApiSchema):
    zone = fields.String(required=True)
    public = fields.String(required=True)
    private = fields.String(required=True)


class KawaiiNetIpSchema(ApiSchema):
    public = List(fields.String(), required=True)
    private = List(fields.String(), required=True)
    zones = List(fields.Nested(KawaiiNetIpZoneSchema), required=True)


class KawaiiFirewallIngressRuleSchema(ApiSchema):
    source = fields.String(load_default="0.0.0.0/0")
    protocol = fields.String(load_default="tcp", validate=PROTOCOL)
    ports = fields.String(required=True)


class KawaiiFirewallEgressRuleSchema(ApiSchema):
    destination = fields.String(load_default="0.0.0.0/0")
    protocol = fields.String(load_default="tcp", validate=PROTOCOL)
    ports = fields.String(required=True)


class KawaiiFirewallSchema(ApiSchema):
    ingress = List(fields.Nested(KawaiiFirewallIngressRuleSchema), load_default=list)
    egress_policy = fields.String(load_default="accept", validate=POLICY)
    egress = List(fields.Nested(KawaiiFirewallEgressRuleSchema), load_default=list)


class KawaiiDNatRuleSchema(ApiSchema):
    destination = fields.String(required=True)
    protocol = fields.String(load_default="tcp", validate=PROTOCOL)
    ports = fields.String(required=True)


class KawaiiVpcForwardRuleSchema(ApiSchema):
    protocol = fields.String(load_default="tcp", validate=PROTOCOL)
    ports = fields.String(required=True)


class KawaiiVpcNetIpZoneSchema(ApiSchema):
    zone = fields.String(required=True)
    private = fields.String(required=True)


class KawaiiVpcPeeringSchema(ApiSchema):
    subnet = fields.String(required=True)
    policy = fields.String(load_default="drop", validate=POLICY)
    ingress = List(fields.Nested(KawaiiVpcForwardRuleSchema), load_default=list)
    egress = List(fields.Nested(KawaiiVpcForwardRuleSchema), load_default=list)
    netip = read_only(List(fields.Nested(KawaiiVpcNetIpZoneSchema)))


class KawaiiIpSecFirewallSchema(ApiSchema):
    """An IPsec connection's firewall: ingress only (0.53.2 shared KawaiiFirewall, whose egress keys a 0.53.2 client
    still sends: accepted and ignored, as they always were for IPsec)."""

    TOLERATED = frozenset({"egress_policy", "egress"})

    ingress = List(fields.Nested(KawaiiFirewallIngressRuleSchema), load_default=list)


class DpdTimeoutAction(fields.String):
    """0.58's clear, trap or restart; 0.53.2's "start" is accepted and stored as "restart" (strongSwan takes both
    as ACTION_RESTART), so that both SDKs can read it back. A "start" stored earlier is shown as "restart"."""

    def _deserialize(self, value: typing.Any, attr: typing.Any, data: typing.Any, **kwargs: typing.Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        return "restart" if text == "start" else text

    def _serialize(self, value: typing.Any, attr: typing.Any, obj: typing.Any, **kwargs: typing.Any) -> str | None:
        text = super()._serialize(value, attr, obj, **kwargs)
        return "restart" if text == "start" else text


class KawaiiIpSecSchema(ApiSchema):
    id = ObjectIdString()
    name = _name()
    description = _description()
    ip = read_only(fields.String())
    remote_ip = fields.String(required=True)
    remote_subnet = fields.String(required=True)
    pre_shared_key = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    dpd_timeout_action = DpdTimeoutAction(load_default="restart", validate=validate.OneOf(["clear", "trap", "restart"]))
    dpd_timeout = fields.String(load_default="240s")
    start_action = fields.String(load_default="start", validate=validate.OneOf(["none", "start", "trap"]))
    rekey_time = fields.String(load_default="2h")
    phase1_lifetime = fields.String(load_default="1h")
    phase1_dh_group_number = _int64(required=True, validate=DH_GROUPS)
    phase1_integrity_algorithm = fields.String(required=True, validate=INTEGRITY)
    phase1_encryption_algorithm = fields.String(required=True, validate=ENCRYPTION)
    phase2_lifetime = fields.String(load_default="1h")
    phase2_dh_group_number = _int64(required=True, validate=DH_GROUPS)
    phase2_integrity_algorithm = fields.String(required=True, validate=INTEGRITY)
    phase2_encryption_algorithm = fields.String(required=True, validate=ENCRYPTION)
    firewall = fields.Nested(KawaiiIpSecFirewallSchema, load_default=dict)


class KawaiiSchema(ApiSchema):
    id = ObjectIdString()
    name = read_only(fields.String())
    description = _description()
    # Required by the SDK, computed by Kahuna: what a client sends is ignored.
    netip = read_only(fields.Nested(KawaiiNetIpSchema))
    firewall = fields.Nested(KawaiiFirewallSchema, load_default=dict)
    dnat = List(fields.Nested(KawaiiDNatRuleSchema), load_default=list)
    vpc_peerings = List(fields.Nested(KawaiiVpcPeeringSchema), load_default=list)
    # 0.53.2's ipsec_connections: IPsec connections are managed through /kawaii/{id}/ipsec, never here.
    TOLERATED = frozenset({"ipsec_connections"})

    @pre_dump
    def _from_details(self, details: KawaiiDetails, **_: typing.Any) -> dict[str, typing.Any]:
        kawaii = details.kawaii
        zones = kawaii.get("zones", [])
        peerings = [{**peering, "netip": [{"zone": zone["zone"],
                                           "private": details.peering_addresses[peering["subnet"]][zone["zone"]]}
                                          for zone in zones]}
                    for peering in kawaii.get("vpc_peerings", [])]
        return {**kawaii, "vpc_peerings": peerings,
                "netip": {"public": sorted(z["public"] for z in zones), "private": sorted(z["private"] for z in zones),
                          "zones": [{"zone": z["zone"], "public": z["public"], "private": z["private"]}
                                    for z in zones]}}


# -- Konvey -------------------------------------------------------------------------


class KonveyBackendsSchema(ApiSchema):
    hosts = List(fields.String(), required=True)
    port = _int64(required=True, validate=PORT)


class KonveyEndpointSchema(ApiSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    port = _int64(required=True, validate=PORT)
    protocol = fields.String(required=True, validate=PROTOCOL)
    backends = fields.Nested(KonveyBackendsSchema, required=True)


class KonveySchema(ApiSchema):
    id = ObjectIdString()
    name = fields.String(load_default="", validate=validate.Length(max=40))
    description = _description()
    vip = read_only(fields.String())
    failover = Boolean(load_default=True)
    endpoints = List(fields.Nested(KonveyEndpointSchema), required=True)


# -- partial updates (PUT bodies) -----------------------------------------------------

VolumeUpdateSchema = update_schema(VolumeSchema, "VolumeUpdate", creation_only=("type",))
InstanceUpdateSchema = update_schema(InstanceSchema, "InstanceUpdate", creation_only=INSTANCE_CREATION_ONLY)
KomputeUpdateSchema = update_schema(KomputeSchema, "KomputeUpdate", creation_only=INSTANCE_CREATION_ONLY)
KyloUpdateSchema = update_schema(KyloSchema, "KyloUpdate")
# The contract lists name in KawaiiUpdate, but a Kawaii's name is made by Kahuna: accepted and ignored.
KawaiiUpdateSchema = update_schema(KawaiiSchema, "KawaiiUpdate", creation_only=("vpc_peerings",), keep=("name",))
KawaiiIpSecUpdateSchema = update_schema(KawaiiIpSecSchema, "KawaiiIpSecUpdate")
KonveyUpdateSchema = update_schema(KonveySchema, "KonveyUpdate", creation_only=("failover",))
