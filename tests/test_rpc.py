"""The typed RPC catalog and the wire encoding (what the Go agents send and accept)."""

import json

import pytest

from kahuna import rpc

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
    assert list(rpc.CATALOG[agent_type]) == GO_AGENT_METHODS[agent_type].split(", ")
    for name, method in rpc.CATALOG[agent_type].items():
        assert method.wire_name == f"{agent_type}.{name}"
        assert method.timeout > 0 and method.since


def test_requests_carry_exact_names_and_never_null_params():
    message = json.loads(rpc.request_message(7, rpc.method(rpc.KIWI, "Reload"), {"Domains": []}))
    assert message == {"id": 7, "method": "Kiwi.Reload", "params": {"Domains": []}}
    assert json.loads(rpc.request_message(0, rpc.method(rpc.KAKTUS, "NodeCapabilities"), {}))["params"] == {}
    iso = json.loads(rpc.request_message(1, rpc.method(rpc.KAKTUS, "CreateIsoVolume"),
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
        rpc.method(rpc.KAKTUS, "CreateRawVolume").encode_params(params)


def test_results_are_read_as_go_writes_them():
    node = rpc.method(rpc.KAKTUS, "NodeCapabilities")
    # Go matches names case-insensitively; numbers may come back as floats; absent fields are zero.
    assert node.decode_result({"arch": "x86_64", "Memory": 1024.0})["Memory"] == 1024
    assert node.decode_result({})["Cores"] == 0
    assert rpc.method(rpc.KAKTUS, "ListFileSystems").decode_result({"FS": None}) == {"FS": []}
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
