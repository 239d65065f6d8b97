"""The API contracts (``api/contract/openapi.yaml``: 0.53.2; ``openapi-0.58.yaml``: 0.58.0), each parsed once per
test session.

With libyaml's loader: the pure-Python one took about a second per parse of its 200 KB, and three test
modules read it when collected.
"""

import functools
import typing
from pathlib import Path

import yaml

PATHS = {"0.53.2": Path(__file__).parents[1] / "api" / "contract" / "openapi.yaml",
         "0.58.0": Path(__file__).parents[1] / "api" / "contract" / "openapi-0.58.yaml"}
PATH = PATHS["0.53.2"]


@functools.cache
def contract(version: str = "0.53.2") -> dict[str, typing.Any]:
    return yaml.load(PATHS[version].read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def operation_ids(version: str) -> set[str]:
    """The operationIds of a contract."""
    return {operation["operationId"] for item in contract(version)["paths"].values()
            for operation in item.values() if isinstance(operation, dict) and "operationId" in operation}


#: The 0.58.0 operations this server does not serve yet (their work packages land them; emptied at integration).
#: tests/test_contract.py and tests/test_rbac_matrix.py hold everything else of 0.58.0 to the contract.
NOT_YET_SERVED: frozenset[str] = frozenset()

METHODS = ("get", "post", "put", "patch", "delete")


def operations(document: dict[str, typing.Any]) -> dict[str, tuple[str, str, dict[str, typing.Any]]]:
    """operationId -> (method, path, operation) of an OpenAPI document."""
    return {operation["operationId"]: (method, path, operation) for path, item in document["paths"].items()
            for method in METHODS if method in item for operation in (item[method],)}
