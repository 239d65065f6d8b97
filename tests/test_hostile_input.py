"""Hostile request bodies and query strings, sent as a client would (raw HTTP, no SDK to tidy them up).

Whatever a body holds, the answer is the contract's JSON error and nothing is stored: JSON nested tens of thousands
deep, a lone UTF-16 surrogate, an integer of thousands of digits, NaN, or a value of the wrong JSON type. Query
parameters an operation does not declare are ignored.
"""

from __future__ import annotations

import itertools
import json
import os
import re

import kowabunga as k
import pytest
from marshmallow import fields

import api.schemas.agents
import api.schemas.compute
import api.schemas.infrastructure
import api.schemas.kmotion
import api.schemas.kwarantine
import api.schemas.projects
import api.schemas.teams
import api.schemas.tokens
import api.schemas.users  # noqa: F401 - every schema module, for test_request_schemas_are_strict
from api.schemas import common
from kahuna import access
from tests.contract import contract
from tests.deployment import MASTER_KEY, Deployment

NO_SUCH_ID = "5f0000000000000000000000"

DEEP_ARRAY = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT = '{"a":' * 30_000 + "1" + "}" * 30_000
DEEPEST = "[" * 100_000 + "]" * 100_000
LONE_SURROGATE = "\\ud800"  # the JSON escape, as a client writes it: six characters
HUGE_INTEGER = "1" * 5_000
HOSTILE_BODIES = {
    "deep-array": DEEP_ARRAY,
    "deep-object": DEEP_OBJECT,
    "lone-surrogate": '{"name": "%s"}' % LONE_SURROGATE,
    "huge-integer": '{"size": %s}' % HUGE_INTEGER,
}

_databases = itertools.count()


def call(deployment: Deployment, method: str, path: str, body: str | bytes | None = None, key: bool = True,
         **headers: str):
    headers = {"Content-Type": "application/json", **headers}
    if key:
        headers["X-API-Key"] = MASTER_KEY
    if isinstance(body, str):
        body = body.encode()
    return deployment.http.request(method, f"{deployment.base_url}/api/v1{path}", body=body, headers=headers,
                                   retries=False, timeout=30)


def error(response, status: int) -> dict:
    """The contract's error body of *response*, which must have *status*."""
    assert response.status == status, (response.status, response.data[:300])
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "error", "reason"} and body["status"] == status, body
    assert body["error"] and body["reason"], body
    return body


def stored(deployment: Deployment) -> dict[str, int]:
    db = deployment.kahuna.db.db
    return {name: db[name].count_documents({}) for name in ("user", "session", "region", "project", "volume",
                                                            "vnet", "storage_pool")}


@pytest.fixture
def places(deployment):
    """A region and a project: somewhere for the bodies that need one."""
    region = k.RegionApi(deployment.admin).create_region(k.Region(name="eu-west", domain="west.acme.internal"))
    project = k.ProjectApi(deployment.admin).create_project(k.Project(name="shop", teams=[], regions=[]))
    return {"region": region.id, "project": project.id}


# -- bodies no schema could describe ----------------------------------------------------------------

@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT, DEEPEST, '{"email": %s, "password": "x"}' % DEEP_ARRAY,
                                  "[" * 33 + "]" * 33],
                         ids=["array-50000", "object-30000", "array-100000", "in-a-field", "just-too-deep"])
def test_deeply_nested_json_is_a_bad_request(deployment, body):
    before = stored(deployment)
    # Anonymous: Login decodes the body of anyone.
    assert "nested deeper" in error(call(deployment, "POST", "/login", body, key=False), 400)["reason"]
    assert "nested deeper" in error(call(deployment, "POST", "/region", body), 400)["reason"]
    assert stored(deployment) == before
    # A body as deep as a contract's schema can be is no trouble.
    assert call(deployment, "POST", "/region", "[" * 32 + "]" * 32).status == 400  # an array is not a Region


def test_a_lone_surrogate_is_a_bad_request(deployment):
    before = stored(deployment)
    login = '{"email": "%s@example.com", "password": "x"}' % LONE_SURROGATE
    assert "surrogate" in error(call(deployment, "POST", "/login", login, key=False), 400)["reason"]
    for body in ('{"name": "eu%s", "domain": "west.acme.internal"}' % LONE_SURROGATE,
                 '{"name": "eu", "domain": "west.acme.internal", "description": "\\udfff"}',
                 '{"name": "eu", "domain": "west.acme.internal", "\\ud800": 1}',  # in a key
                 '{"name": "eu", "domain": "west.acme.internal", "description": "\\ude00\\ud83d"}'):  # reversed pair
        assert "surrogate" in error(call(deployment, "POST", "/region", body), 400)["reason"]
    # Encoded as UTF-8 bytes instead of escaped: not UTF-8 at all.
    raw = b'{"name": "eu\xed\xa0\x80", "domain": "west.acme.internal"}'
    assert "UTF-8" in error(call(deployment, "POST", "/region", raw), 400)["reason"]
    assert stored(deployment) == before
    # A pair of surrogates is one character, and welcome.
    made = call(deployment, "POST", "/region",
                '{"name": "eu", "domain": "west.acme.internal", "description": "\\ud83c\\udf0a"}')
    assert made.status == 201 and made.json()["description"] == "\N{WATER WAVE}"


def test_numbers_json_cannot_carry_are_a_bad_request(deployment, places):
    before = stored(deployment)
    login = '{"email": %s, "password": "x"}' % HUGE_INTEGER
    assert "digits" in error(call(deployment, "POST", "/login", login, key=False), 400)["reason"]
    assert "digits" in error(call(deployment, "POST", "/login", HUGE_INTEGER, key=False), 400)["reason"]
    volume = f"/project/{places['project']}/region/{places['region']}/volume"
    for size in (HUGE_INTEGER, "-" + HUGE_INTEGER, "NaN", "Infinity", "-Infinity", "1e400"):
        body = '{"name": "data", "type": "raw", "size": %s}' % size
        error(call(deployment, "POST", volume, body), 400)
    project = '{"name": "big", "teams": [], "regions": [], "quotas": {"memory": %s}}' % HUGE_INTEGER
    error(call(deployment, "POST", "/project", project), 400)
    assert stored(deployment) == before
    # Past int64 but short: a number JSON carries, that breaks the contract's rule (422), and is not stored.
    body = '{"name": "big", "teams": [], "regions": [], "quotas": {"memory": %d}}' % 2**64
    assert "memory" in error(call(deployment, "POST", "/project", body), 422)["reason"]
    assert stored(deployment) == before


# -- values of the wrong JSON type -----------------------------------------------------------------

WRONG_TYPES = [
    # (name, path template, anonymous, body, the field the reason names)
    ("login-email-number", "/login", True, {"email": 10, "password": "x"}, "email"),
    ("login-password-true", "/login", True, {"email": "a@example.com", "password": True}, "password"),
    ("login-email-list", "/login", True, {"email": ["a@example.com"], "password": "x"}, "email"),
    ("region-name-number", "/region", False, {"name": 10, "domain": "west.acme.internal"}, "name"),
    ("region-description-float", "/region", False, {"name": "r", "domain": "r.acme.internal", "description": 1.5},
     "description"),
    ("volume-size-string", "/project/{project}/region/{region}/volume", False,
     {"name": "data", "type": "raw", "size": "10"}, "size"),
    ("volume-size-fraction", "/project/{project}/region/{region}/volume", False,
     {"name": "data", "type": "raw", "size": 1.5}, "size"),
    ("volume-size-float", "/project/{project}/region/{region}/volume", False,
     {"name": "data", "type": "raw", "size": 10.0}, "size"),
    ("volume-size-true", "/project/{project}/region/{region}/volume", False,
     {"name": "data", "type": "raw", "size": True}, "size"),
    ("project-quota-string", "/project", False, {"name": "p", "teams": [], "regions": [], "quotas": {"vcpus": "10"}},
     "vcpus"),
    ("project-quota-fraction", "/project", False,
     {"name": "p", "teams": [], "regions": [], "quotas": {"memory": 1.5}}, "memory"),
    ("project-quota-true", "/project", False,
     {"name": "p", "teams": [], "regions": [], "quotas": {"instances": True}}, "instances"),
    ("project-tags-numbers", "/project", False, {"name": "p", "teams": [], "regions": [], "tags": [1, 2]}, "tags"),
    ("project-quotas-list", "/project", False, {"name": "p", "teams": [], "regions": [], "quotas": [1]}, "quotas"),
    ("user-notifications-string", "/user", False,
     {"name": "eve", "email": "eve@example.com", "role": "user", "notifications": "true"}, "notifications"),
    ("user-notifications-one", "/user", False,
     {"name": "eve", "email": "eve@example.com", "role": "user", "notifications": 1}, "notifications"),
    ("user-name-number", "/user", False, {"name": 10, "email": "eve@example.com", "role": "user"}, "name"),
    ("vnet-vlan-string", "/region/{region}/vnet", False, {"name": "v", "interface": "br0", "vlan": "10"}, "vlan"),
    ("vnet-private-string", "/region/{region}/vnet", False,
     {"name": "v", "interface": "br0", "private": "false"}, "private"),
    ("pool-price-string", "/region/{region}/pool", False,
     {"name": "ssd", "pool": "rbd", "agents": [], "cost": {"price": "500", "currency": "EUR"}}, "price"),
    ("pool-price-true", "/region/{region}/pool", False,
     {"name": "ssd", "pool": "rbd", "agents": [], "cost": {"price": True, "currency": "EUR"}}, "price"),
]


@pytest.mark.parametrize("path, anonymous, body, field", [case[1:] for case in WRONG_TYPES],
                         ids=[case[0] for case in WRONG_TYPES])
def test_a_value_of_the_wrong_json_type_is_a_bad_request(deployment, places, path, anonymous, body, field):
    before = stored(deployment)
    reason = error(call(deployment, "POST", path.format(**places), json.dumps(body), key=not anonymous), 400)["reason"]
    assert field in reason and ("Not a valid" in reason or "Invalid input type" in reason), reason
    assert stored(deployment) == before


def test_the_same_bodies_with_the_right_types_pass_validation(deployment, places):
    """The control of the test above: raw HTTP with proper JSON types gets past the schemas."""
    assert call(deployment, "POST", "/region", json.dumps({"name": "r", "domain": "r.acme.internal"})).status == 201
    made = call(deployment, "POST", "/project", json.dumps({"name": "p", "teams": [], "regions": [], "quotas": {
        "vcpus": 10, "memory": 2**34, "instances": 0}, "tags": ["a"]}))
    assert made.status == 201 and made.json()["quotas"]["vcpus"] == 10
    made = call(deployment, "POST", "/user", json.dumps({"name": "eve", "email": "eve@example.com", "role": "user",
                                                          "notifications": True}))
    assert made.status == 201 and made.json()["notifications"] is True
    assert call(deployment, "POST", "/region/{region}/vnet".format(**places), json.dumps(
        {"name": "v", "interface": "br0", "vlan": 10, "private": False})).status == 201
    error(call(deployment, "POST", "/login", json.dumps({"email": "a@example.com", "password": "x"}), key=False), 401)
    # A volume passes its schema, then finds no storage pool in the region: not a 400.
    response = call(deployment, "POST", "/project/{project}/region/{region}/volume".format(**places),
                    json.dumps({"name": "data", "type": "raw", "size": 10}))
    assert 400 < response.status < 500, response.data


def test_request_schemas_are_strict():
    """Every schema a body is read with takes only JSON's own types: strict integers, numbers and booleans."""
    converting = (fields.Integer, fields.Float, fields.Boolean, fields.Number)
    strict = (common.Integer, common.Float, common.Boolean)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    checked = 0
    for schema in subclasses(common.ApiSchema):
        if issubclass(schema, common.QuerySchema):
            continue  # query strings are text: their fields convert it
        for name, field in schema._declared_fields.items():
            while isinstance(field, fields.List):
                field = field.inner
            assert not isinstance(field, (fields.Raw, fields.Dict, fields.Decimal)), f"{schema.__name__}.{name}"
            if isinstance(field, converting):
                assert isinstance(field, strict), f"{schema.__name__}.{name} converts its input"
                checked += 1
    assert checked >= 30


# -- query strings ---------------------------------------------------------------------------------

def test_query_parameters_an_operation_does_not_use_are_ignored(deployment):
    project = k.ProjectApi(deployment.admin).create_project(k.Project(name="shop", teams=[], regions=[]))
    # ListProjects declares subnetSize but documents neither 400 nor 422: the value is ignored.
    for query in ("subnetSize=abc", "subnetSize=8", "subnetSize=1.5&subnetSize=x", "cachebuster=1&subnetSize="):
        response = call(deployment, "GET", f"/project?{query}")
        assert response.status == 200 and response.json() == [project.id], (query, response.data)
    # Operations that declare no query parameter ignore them all.
    assert call(deployment, "GET", "/region?subnetSize=abc&poolId=%00").status == 200
    assert call(deployment, "GET", f"/project/{project.id}?expire=maybe").status == 200
    # Where one is declared, unknown ones are ignored too.
    created = call(deployment, "POST", "/project?subnetSize=26&unknown=abc",
                   json.dumps({"name": "other", "teams": [], "regions": []}))
    assert created.status == 201, created.data


def test_an_ill_typed_query_parameter_is_refused_where_the_contract_documents_it(deployment):
    before = stored(deployment)
    body = json.dumps({"name": "shop", "teams": [], "regions": []})
    # CreateProject documents 400: a subnet size that is not a number is malformed...
    assert "subnetSize" in error(call(deployment, "POST", "/project?subnetSize=abc", body), 400)["reason"]
    # ... and one out of range breaks a rule.
    assert "subnetSize" in error(call(deployment, "POST", "/project?subnetSize=8", body), 422)["reason"]
    assert stored(deployment) == before


# -- every operation that may take a body ----------------------------------------------------------

def _writes():
    """The writes of both contracts (0.58.0 first), once per route: a route both have is walked once."""
    seen = set()
    for version in ("0.58.0", "0.53.2"):
        for path, item in contract(version)["paths"].items():
            for method in ("post", "put", "patch"):
                route = (method, re.sub(r"\{[^}]+\}", "{}", path))
                if method in item and route not in seen:
                    seen.add(route)
                    operation = item[method]
                    yield operation["operationId"], method.upper(), path, "requestBody" in operation


WRITES = sorted(_writes())


@pytest.fixture(scope="module")
def shared_deployment(ferretdb, mail_server):
    """One Kahuna for the walk below: its requests are refused before they reach anything."""
    running = Deployment.start(ferretdb.uri, f"kahuna_test_{os.getpid()}_hostile_{next(_databases)}", mail_server)
    yield running
    running.stop()


def test_the_walk_covers_every_write_of_both_contracts():
    # 0.53.2: 72 writes, 50 with a body; 0.58 adds 12 operations that write (8 with a body) and POST /resetPassword.
    assert len(WRITES) == 85 and sum(1 for *_, takes_body in WRITES if takes_body) == 59
    assert ("ResetPassword", "PUT", "/resetPassword", True) in WRITES
    assert ("ResetPassword", "POST", "/resetPassword", True) in WRITES


@pytest.mark.parametrize("hostile", sorted(HOSTILE_BODIES))
@pytest.mark.parametrize("operation_id, method, path, takes_body", WRITES, ids=[f"{w[1]}-{w[0]}" for w in WRITES])
def test_no_hostile_body_makes_any_write_fail(shared_deployment, operation_id, method, path, takes_body, hostile):
    url = re.sub(r"\{[^}]+\}", NO_SUCH_ID, path)
    public = isinstance(access.rule_for(operation_id), access.Public)
    before = stored(shared_deployment)
    for key in (True, False):
        response = call(shared_deployment, method, url, HOSTILE_BODIES[hostile], key=key)
        assert response.status < 500, (operation_id, key, response.status, response.data[:300])
        if response.status >= 400:
            error(response, response.status)
        if takes_body and (key or public):
            # Decoded before anything is looked up: the body is refused, whatever the ids in the path.
            assert error(response, 400)["reason"].startswith("Invalid JSON body"), operation_id
        elif takes_body:
            error(response, 401)  # the caller is checked before the body is even read
    assert stored(shared_deployment) == before


def test_a_list_longer_than_any_real_object_needs_is_refused(deployment):
    """10,000 reserved ranges in one subnet held the server for a quarter of a second: lists are bounded."""
    from api.schemas.common import MAX_LIST_ITEMS
    region = deployment.http.request("POST", f"{deployment.base_url}/api/v1/region", json={
        "name": "r", "domain": "r.example"}, headers={"X-API-Key": MASTER_KEY}).json()
    vnet = deployment.http.request("POST", f"{deployment.base_url}/api/v1/region/{region['id']}/vnet", json={
        "name": "v", "vlan": 0, "interface": "br0", "private": True}, headers={"X-API-Key": MASTER_KEY}).json()
    ranges = [{"first": f"10.{n // 256}.{n % 256}.1", "last": f"10.{n // 256}.{n % 256}.2"}
              for n in range(MAX_LIST_ITEMS + 1)]
    response = deployment.http.request("POST", f"{deployment.base_url}/api/v1/vnet/{vnet['id']}/subnet", json={
        "name": "s", "cidr": "10.0.0.0/8", "gateway": "10.255.255.254", "reserved": ranges},
        headers={"X-API-Key": MASTER_KEY})
    assert response.status == 422
    assert "reserved" in response.json()["reason"]
    assert deployment.kahuna.db.subnets.count() == 0
