"""XUpdate schemas (api.schemas.updates) and the merge of a partial update over the current object (api.updates).

Each XUpdate of the 0.58 contract has the contract's property set, requires nothing and documents no default; a
loaded body holds only the keys it carried; read-only, creation-only and tolerated keys are dropped; validators and
nested schemas are kept; null is refused.
"""

from __future__ import annotations

import importlib
import pkgutil

import marshmallow
import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

import api.schemas
from api.schemas import compute, infrastructure, projects, teams
from api.schemas.common import ApiSchema
from api.schemas.updates import update_schema
from api.updates import merged
from tests.contract import contract

CONTRACT = contract("0.58.0")["components"]["schemas"]

#: The XUpdates of this package (User, Agent, ApiToken and Kwarantine live with their own views).
OWN = {
    "VolumeUpdate": compute, "InstanceUpdate": compute, "KomputeUpdate": compute, "KyloUpdate": compute,
    "KawaiiUpdate": compute, "KawaiiIpSecUpdate": compute, "KonveyUpdate": compute,
    "RegionUpdate": infrastructure, "ZoneUpdate": infrastructure, "KaktusUpdate": infrastructure,
    "KiwiUpdate": infrastructure, "StoragePoolUpdate": infrastructure, "StorageNFSUpdate": infrastructure,
    "TemplateUpdate": infrastructure, "VNetUpdate": infrastructure, "SubnetUpdate": infrastructure,
    "AdapterUpdate": infrastructure, "DnsRecordUpdate": infrastructure, "ProjectUpdate": projects,
    "TeamUpdate": teams,
}
ELSEWHERE = {"UserUpdate", "AgentUpdate", "ApiTokenUpdate", "KwarantineUpdate"}


def _all_update_schemas() -> dict[str, type[marshmallow.Schema]]:
    found = {}
    for module_info in pkgutil.iter_modules(api.schemas.__path__):
        module = importlib.import_module(f"api.schemas.{module_info.name}")
        for name in dir(module):
            value = getattr(module, name)
            if name.endswith("UpdateSchema") and isinstance(value, type) and issubclass(value, marshmallow.Schema):
                found[name.removesuffix("Schema")] = value
    return found


def _documented(name: str, schema: type[marshmallow.Schema]) -> dict:
    spec = APISpec("t", "1", "3.1.0", plugins=[MarshmallowPlugin()])
    spec.components.schema(name, schema=schema)
    return spec.to_dict()["components"]["schemas"][name]


def test_every_contract_update_is_derived_here_or_by_its_owner():
    contract_updates = {name for name in CONTRACT if name.endswith("Update")}
    assert set(OWN) <= contract_updates
    assert contract_updates - set(OWN) == ELSEWHERE


@pytest.mark.parametrize("name", sorted(OWN))
def test_update_schema_matches_the_contract(name):
    schema = getattr(OWN[name], f"{name}Schema")
    assert schema.__name__ == f"{name}Schema"
    documented = _documented(name, schema)
    assert set(documented["properties"]) == set(CONTRACT[name]["properties"])
    assert "required" not in documented
    assert not [key for key, prop in documented["properties"].items() if "default" in prop]
    assert not [key for key, prop in documented["properties"].items() if prop.get("readOnly")]
    assert schema().load({}) == {}


def test_the_other_update_schemas_found_match_the_contract_too():
    for name, schema in _all_update_schemas().items():
        if name in CONTRACT:
            documented = _documented(name, schema)
            assert set(documented["properties"]) == set(CONTRACT[name]["properties"]), name
            assert "required" not in documented, name


def test_a_partial_body_loads_only_what_it_carries():
    assert compute.InstanceUpdateSchema().load({"memory": 2}) == {"memory": 2}
    assert compute.KomputeUpdateSchema().load({"kmotion_enabled": False}) == {"kmotion_enabled": False}
    assert infrastructure.KiwiUpdateSchema().load({"agents": ["a"]}) == {"agent_ids": ["a"]}


def test_read_only_creation_only_and_tolerated_keys_are_dropped():
    full_053 = {"id": "0123456789abcdef01234567", "name": "vm", "memory": 1, "vcpus": 1}
    assert compute.InstanceUpdateSchema().load(full_053) == {"name": "vm", "memory": 1, "vcpus": 1}
    assert compute.InstanceUpdateSchema().load({"uefi": True, "kwarantines": ["g"]}) == {}
    assert infrastructure.VNetUpdateSchema().load({"name": "n", "private": False}) == {"name": "n"}
    assert infrastructure.SubnetUpdateSchema().load({"cidr": "10.0.0.0/8"}) == {}
    assert infrastructure.TemplateUpdateSchema().load({"os": "windows", "source": "http://x/y"}) == {}
    assert compute.VolumeUpdateSchema().load({"type": "iso"}) == {}
    assert compute.KonveyUpdateSchema().load({"failover": False}) == {}
    assert projects.ProjectUpdateSchema().load({"domain": "x.example"}) == {}
    assert infrastructure.KaktusUpdateSchema().load({"maintenance": True, "description": "d"}) == {"description": "d"}
    kawaii = {"name": "given", "ipsec_connections": [{"anything": 1}], "vpc_peerings": [], "netip": {}}
    assert compute.KawaiiUpdateSchema().load(kawaii) == {}


def test_unknown_keys_and_null_are_refused_and_validators_kept():
    with pytest.raises(marshmallow.ValidationError, match="Unknown field"):
        compute.InstanceUpdateSchema().load({"colour": "red"})
    with pytest.raises(marshmallow.ValidationError, match="may not be null"):
        compute.InstanceUpdateSchema().load({"description": None})
    for schema, key in ((compute.InstanceUpdateSchema, "adapters"), (infrastructure.StoragePoolUpdateSchema, "cost")):
        with pytest.raises(marshmallow.ValidationError, match="may not be null"):
            schema().load({key: None})  # their full schemas default to None
    with pytest.raises(marshmallow.ValidationError) as error:
        compute.InstanceUpdateSchema().load({"memory": 0})
    assert "memory" in error.value.messages
    with pytest.raises(marshmallow.ValidationError) as error:
        compute.InstanceUpdateSchema().load({"memory": "2"})
    assert error.value.messages["memory"][0].startswith("Not a valid")


def test_nested_objects_are_loaded_whole_with_their_own_rules():
    loaded = compute.KawaiiIpSecUpdateSchema().load({"firewall": {"ingress": [{"ports": "22"}]}})
    assert loaded == {"firewall": {"ingress": [{"source": "0.0.0.0/0", "protocol": "tcp", "ports": "22"}]}}
    with pytest.raises(marshmallow.ValidationError):
        compute.KawaiiIpSecUpdateSchema().load({"firewall": {"ingress": [{"protocol": "tcp"}]}})
    with pytest.raises(marshmallow.ValidationError):
        compute.KonveyUpdateSchema().load({"endpoints": [{"name": "e", "port": 0, "protocol": "tcp",
                                                          "backends": {"hosts": ["10.0.0.1"], "port": 80}}]})


def test_ipsec_firewall_is_ingress_only_and_tolerates_053_egress_keys():
    loaded = compute.KawaiiIpSecUpdateSchema().load(
        {"firewall": {"ingress": [], "egress_policy": "accept", "egress": [{"ports": "80"}]}})
    assert loaded == {"firewall": {"ingress": []}}


@pytest.mark.parametrize(("given", "stored"), [("start", "restart"), ("restart", "restart"), ("trap", "trap"),
                                               ("clear", "clear")])
def test_dpd_timeout_action_start_is_stored_and_read_as_restart(given, stored):
    assert compute.KawaiiIpSecUpdateSchema().load({"dpd_timeout_action": given}) == {"dpd_timeout_action": stored}
    assert compute.KawaiiIpSecSchema(only=("dpd_timeout_action",)).dump({"dpd_timeout_action": given}) == {
        "dpd_timeout_action": stored}


def test_ports_of_konvey_endpoints_and_backends_are_bounded():
    endpoint = {"name": "e", "port": 65535, "protocol": "tcp", "backends": {"hosts": ["10.0.0.1"], "port": 1}}
    assert compute.KonveyEndpointSchema().load(endpoint)["port"] == 65535
    for bad in ({**endpoint, "port": 65536}, {**endpoint, "backends": {"hosts": [], "port": 0}}):
        with pytest.raises(marshmallow.ValidationError):
            compute.KonveyEndpointSchema().load(bad)


def test_058_shapes_are_dumped_with_their_defaults():
    instance = {"_id": "i", "name": "vm", "description": "", "memory": 1, "vcpus": 1, "adapter_ids": [],
                "volume_ids": []}
    dumped = compute.InstanceSchema().dump(instance)
    assert (dumped["kwarantines"], dumped["uefi"], dumped["kmotion_enabled"]) == ([], False, True)
    dumped = compute.InstanceSchema().dump({**instance, "kwarantine_ids": ["g"], "uefi": True,
                                            "kmotion_enabled": False})
    assert (dumped["kwarantines"], dumped["uefi"], dumped["kmotion_enabled"]) == (["g"], True, False)
    assert infrastructure.KaktusSchema().dump({"name": "k", "agent_ids": []})["maintenance"] is False
    assert infrastructure.KaktusSchema().dump({"name": "k", "agent_ids": [], "maintenance": True})["maintenance"]
    assert infrastructure.StorageNFSSchema().dump({"name": "n", "endpoint": "e"})["backends"] == []
    assert infrastructure.KaktusCapsSchema(only=("memory",)).dump({"memory": -1}) == {"memory": 0}
    assert infrastructure.KaktusCapsSchema(only=("memory",)).dump({"memory": 2048}) == {"memory": 2048}
    assert "ipsec_connections" not in _documented("Kawaii", compute.KawaiiSchema)["properties"]


def test_creation_loads_uefi_as_bios_when_absent_and_kmotion_enabled():
    loaded = compute.InstanceSchema().load({"name": "vm", "memory": 1, "vcpus": 1})
    assert (loaded["kwarantine_ids"], loaded["uefi"], loaded["kmotion_enabled"]) == ([], False, True)
    loaded = compute.InstanceSchema().load({"name": "vm", "memory": 1, "vcpus": 1, "uefi": True,
                                            "kmotion_enabled": False, "kwarantines": ["g"]})
    assert (loaded["kwarantine_ids"], loaded["uefi"], loaded["kmotion_enabled"]) == (["g"], True, False)
    assert compute.VolumeSchema().load({"name": "v", "type": "template", "size": 1})["type"] == "template"


@pytest.mark.parametrize(("size", "status"), [(8, "floor"), (15, "floor"), (16, None), (30, None), (7, "range"),
                                              (31, "range")])
def test_subnet_size_is_documented_8_to_30_and_refused_below_16(size, status):
    if status is None:
        assert projects.SubnetSizeQuerySchema().load({"subnetSize": str(size)}) == {"subnetSize": size}
        return
    with pytest.raises(marshmallow.ValidationError) as error:
        projects.SubnetSizeQuerySchema().load({"subnetSize": str(size)})
    message = error.value.messages["subnetSize"][0]
    assert ("/16" in message) == (status == "floor")
    documented = _documented("Q", projects.SubnetSizeQuerySchema)["properties"]["subnetSize"]
    assert (documented["minimum"], documented["maximum"]) == (8, 30)


# -- merged --------------------------------------------------------------------------------------------------------

INSTANCE = {"_id": "0123456789abcdef01234567", "name": "vm", "description": "web", "memory": 4, "vcpus": 2,
            "adapter_ids": ["a"], "volume_ids": ["v"], "kaktus_id": "k", "state": "ready"}


def test_merged_gives_the_full_loaded_dict_with_the_changes_over_it():
    full = merged(compute.InstanceSchema, INSTANCE, {"memory": 8})
    assert full == {"name": "vm", "description": "web", "memory": 8, "vcpus": 2, "adapter_ids": ["a"],
                    "volume_ids": ["v"], "kwarantine_ids": [], "uefi": False, "kmotion_enabled": True}
    assert merged(compute.InstanceSchema, INSTANCE, {}) == {**full, "memory": 4}
    assert full == compute.InstanceSchema().load({**compute.InstanceSchema().dump(INSTANCE), "memory": 8})


def test_merged_replaces_nested_objects_whole():
    kiwi_firewall = {"ingress": [{"source": "10.0.0.0/8", "protocol": "udp", "ports": "53"}],
                     "egress_policy": "drop", "egress": [{"destination": "0.0.0.0/0", "protocol": "tcp",
                                                           "ports": "443"}]}
    ipsec = {"_id": "0123456789abcdef01234567", "name": "t", "description": "", "remote_ip": "192.0.2.1",
             "remote_subnet": "10.1.0.0/16", "pre_shared_key": "k", "phase1_dh_group_number": 14,
             "phase1_integrity_algorithm": "SHA256", "phase1_encryption_algorithm": "AES256",
             "phase2_dh_group_number": 14, "phase2_integrity_algorithm": "SHA256",
             "phase2_encryption_algorithm": "AES256", "firewall": {"ingress": kiwi_firewall["ingress"]}}
    changes = compute.KawaiiIpSecUpdateSchema().load({"firewall": {"ingress": []}})
    assert merged(compute.KawaiiIpSecSchema, ipsec, changes)["firewall"] == {"ingress": []}
    assert merged(compute.KawaiiIpSecSchema, ipsec, {})["firewall"] == {"ingress": kiwi_firewall["ingress"]}


def test_merged_merges_the_by_key_objects_key_by_key():
    stored = {"_id": "0123456789abcdef01234567", "name": "shop", "description": "", "team_ids": [], "region_ids": [],
              "quotas": {"vcpus": 16, "memory": 2**34, "storage": 0, "instances": 10}}
    changes = projects.ProjectUpdateSchema().load({"quotas": {"vcpus": 32}})
    assert merged(projects.ProjectSchema, stored, changes, by_key=("quotas",))["quotas"] == {
        "vcpus": 32, "memory": 2**34, "storage": 0, "instances": 10}
    assert merged(projects.ProjectSchema, stored, changes)["quotas"] == {"vcpus": 32}  # whole, without by_key
    assert merged(projects.ProjectSchema, stored, {}, by_key=("quotas",))["quotas"] == stored["quotas"]


def test_merged_passes_a_stored_value_todays_rules_refuse_as_stored():
    old = {**INSTANCE, "vcpus": 4096}
    assert merged(compute.InstanceSchema, old, {"description": "x"})["vcpus"] == 4096
    # A key the changes carry is not read from the stored object at all.
    assert merged(compute.InstanceSchema, old, {"vcpus": 8})["vcpus"] == 8


def test_merged_takes_the_details_a_get_dumps():
    kawaii = {"_id": "0123456789abcdef01234567", "name": "kawaii-eu", "description": "gw",
              "firewall": {"ingress": [], "egress_policy": "drop", "egress": []}, "dnat": [], "vpc_peerings": [],
              "zones": []}
    from kahuna.services.kawaii import KawaiiDetails
    details = KawaiiDetails(kawaii, {})
    full = merged(compute.KawaiiSchema, details, compute.KawaiiUpdateSchema().load({"description": "new"}))
    assert full == {"description": "new", "firewall": {"ingress": [], "egress_policy": "drop", "egress": []},
                    "dnat": [], "vpc_peerings": []}


def test_update_schema_refuses_unknown_names_and_unhandled_load_hooks():
    with pytest.raises(TypeError, match="no field"):
        update_schema(infrastructure.ZoneSchema, "ZoneUpdate", creation_only=("colour",))

    class Hooked(ApiSchema):
        name = marshmallow.fields.String()

        @marshmallow.post_load
        def _twist(self, data, **_):
            return data

    with pytest.raises(TypeError, match="load hooks"):
        update_schema(Hooked, "HookedUpdate")

    class Validated(ApiSchema):  # a field validator is a schema hook too: the update would lose it
        name = marshmallow.fields.String()

        @marshmallow.validates("name")
        def _check(self, value, **_):
            if value == "x":
                raise marshmallow.ValidationError("no x")

    with pytest.raises(TypeError, match=r"load hooks \['_check'\]"):
        update_schema(Validated, "ValidatedUpdate")
