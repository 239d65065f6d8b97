"""The typed RPC catalog and the wire encoding (what the Go agents send and accept)."""

import json
import pathlib
import typing

import pytest

from kahuna import rpc
from kahuna.rpc import kaktus, kiwi, kontroller

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"

GO_AGENT_METHODS = {
    rpc.KAKTUS: "Capabilities, CreateFsSubVolume, CreateInstance, CreateIsoVolume, CreateNfsBackends, CreateOsVolume, "
                "CreateRawVolume, CreateTemplateVolume, DeleteFsSubVolume, DeleteInstance, DeleteNfsBackends, "
                "DeleteVolume, GetInstance, GetInstanceRemoteConnectionUrl, GetInstanceState, GetStoragePoolStats, "
                "GetVolumeInfos, InstanceIsRunning, InstanceOperation, ListFileSystems, ListFsSubVolumes, "
                "NodeCapabilities, ResizeVolume, UpdateInstance, UpdateIsoVolume, UpdateNfsBackends",
    rpc.KIWI: "Capabilities, CreateDnsRecord, CreateDnsZone, DeleteDnsRecord, DeleteDnsZone, Reload, UpdateDnsRecord",
    rpc.KONTROLLER: "Capabilities, Reload",
}


@pytest.mark.parametrize("agent_type", rpc.AGENT_TYPES)
def test_the_catalog_is_the_go_agents_capabilities(agent_type):
    # Besides the released agents' methods, the catalog declares proposals (kMotion's live migration), marked so.
    released = [name for name, method in rpc.CATALOG[agent_type].items() if method.since != kaktus.PROPOSAL]
    assert released == GO_AGENT_METHODS[agent_type].split(", ")
    proposals = {name for name, method in rpc.CATALOG[agent_type].items() if method.since == kaktus.PROPOSAL}
    assert proposals == ({"MigrateInstance", "PrepareMigration"} if agent_type == rpc.KAKTUS else set())
    for name, method in rpc.CATALOG[agent_type].items():
        assert method.wire_name == f"{agent_type}.{name}"
        assert method.timeout > 0 and method.since


@pytest.mark.parametrize("namespace", [kaktus, kiwi, kontroller])
def test_each_method_is_declared_once_and_referenced_by_attribute(namespace):
    declared = {name: value for name, value in vars(namespace).items() if isinstance(value, rpc.Method)}
    agent_type = namespace.__name__.rpartition(".")[2].capitalize()
    assert declared == rpc.CATALOG[agent_type]
    assert all(rpc.METHODS[method.wire_name] is method for method in declared.values())
    assert rpc.capabilities(agent_type) is namespace.Capabilities
    assert namespace.Capabilities.wire_name == f"{agent_type}.Capabilities"
    assert len(rpc.METHODS) == 37


def test_field_tables_are_derived_from_the_typeddicts():
    assert kaktus.CreateIsoVolume.params == {"Pool": str, "Volume": str, "Size": int, "Content": bytes}
    assert kaktus.CreateIsoVolume.params_type is kaktus.IsoVolume and kaktus.CreateIsoVolume.result == {}
    assert kiwi.Reload.params == {"Domains": [{"Name": str, "Records": [{"Name": str, "Type": str,
                                                                         "Addresses": [str]}]}]}
    assert kaktus.CreateNfsBackends.params["Protocols"] == [int]
    assert kontroller.Reload.params == {} and kontroller.Reload.timeout == 120.0

    class Loose(typing.TypedDict, total=False):
        Name: str

    class Untyped(typing.TypedDict):
        Anything: dict

    for record, words in ((Loose, "optional fields"), (Untyped, "not a field type")):
        with pytest.raises(TypeError, match=words):
            rpc.Method(rpc.KAKTUS, "Broken", record, rpc.NoResult)


def test_requests_carry_exact_names_and_never_null_params():
    message = json.loads(rpc.request_message(7, kiwi.Reload, {"Domains": []}))
    assert message == {"id": 7, "method": "Kiwi.Reload", "params": {"Domains": []}}
    assert json.loads(rpc.request_message(0, kaktus.NodeCapabilities, {}))["params"] == {}
    assert json.loads(rpc.request_message(0, kontroller.Reload, None))["params"] == {}
    iso = json.loads(rpc.request_message(1, kaktus.CreateIsoVolume,
                                         {"Pool": "rbd", "Volume": "v", "Size": 3, "Content": b"\x00\xff\x10"}))
    assert iso["params"]["Content"] == "AP8Q"


@pytest.mark.parametrize("params, words", [
    ({"Pool": "rbd", "Volume": "v"}, "needs field Size"),
    ({"Pool": "rbd", "Volume": "v", "Size": 1, "size": 1}, "has no field size"),
    ({"Pool": "rbd", "Volume": "v", "Size": "1"}, "Size must be int"),
    ({"Pool": "rbd", "Volume": "v", "Size": True}, "Size must be int"),
])
def test_parameters_are_checked_before_sending(params, words):
    with pytest.raises(rpc.ParamsError, match=words):
        kaktus.CreateRawVolume.encode_params(params)


def test_results_are_read_as_go_writes_them():
    node = kaktus.NodeCapabilities
    # Go matches names case-insensitively; numbers may come back as floats; absent fields are zero.
    assert node.decode_result({"arch": "x86_64", "Memory": 1024.0})["Memory"] == 1024
    assert node.decode_result({})["Cores"] == 0
    assert kaktus.ListFileSystems.decode_result({"FS": None}) == {"FS": []}
    assert kaktus.CreateFsSubVolume.decode_result(None) == {"Path": "", "BytesUsed": 0}
    with pytest.raises(rpc.RpcError, match="not base64"):
        kaktus.CreateIsoVolume.decode_params({"Pool": "p", "Volume": "v", "Size": 1, "Content": 1})
    with pytest.raises(rpc.RpcError):
        node.decode_result({"Cores": "many"})
    with pytest.raises(rpc.RpcError):
        node.decode_result(["not", "an", "object"])


def test_replies_are_parsed_strictly():
    assert rpc.parse_reply(b'{"id":3,"result":{},"error":null}') == rpc.Reply(3, {}, None)
    assert rpc.parse_reply(b'{"id":3,"result":{},"error":{"code":1}}').error == '{"code": 1}'
    for garbage in (b"not json", b"[]", b'{"id":"3"}', b'{"id":true}', b"\xff"):
        with pytest.raises(rpc.RpcError):
            rpc.parse_reply(garbage)


def test_the_readme_shows_the_catalog_as_declared():
    readme = README.read_text(encoding="utf-8")
    assert rpc.README_BEGIN in readme and rpc.README_END in readme, "README.md lost its rpc-catalog markers"
    assert rpc.with_catalog_table(readme) == readme, (
        "README.md's table of the agents' methods differs from the catalog (kahuna/rpc/): regenerate it with "
        "`.venv/bin/python -m kahuna.rpc --write README.md`")
    assert rpc.catalog_table().count("\n") == 2 + len(rpc.METHODS)
